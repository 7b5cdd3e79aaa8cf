"""Input and output encodings: physical units <-> the network's normalized channels.

The network never sees metres or m/s. Its input is four channels on the model's grid:

0. velocity, ``(v - v_mean_mps) / v_std_mps`` (training-set statistics);
1. the source as a Gaussian bump ``exp(-r^2 / w^2)``, ``r`` the distance in metres from the
   physical source position, ``w = source_width_m`` (375 m, the authors' value; they scaled it by
   3000, we keep it in [0, 1]);
2. depth ``z / depth_m`` in [0, 1];
3. ``x / width_m`` in [0, 1].

Everything is computed from physical positions, so the same model reads 64 x 64, 128 x 128 or
odd-sized grids of the same domain. The output wavefield is divided by ``u_scale`` (the training
set's root-mean-square amplitude). All statistics are stored in the model card
(:class:`Normalization`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from .._errors import SeisfnoError
from ..physics import Grid

N_INPUT_CHANNELS = 4


@dataclass(frozen=True)
class Normalization:
    """Statistics that map physical units to network units (stored in the model card).

    Attributes
    ----------
    v_mean_mps, v_std_mps : float
        Velocity mean and standard deviation over the training set (m/s).
    v_min_mps, v_max_mps : float
        The training set's velocity range (m/s); predictions far outside it warn.
    u_scale : float
        Wavefield scale: the training set's root-mean-square amplitude (wavefield units).
    source_width_m : float
        Width ``w`` of the source bump ``exp(-r^2 / w^2)`` in metres.
    """

    v_mean_mps: float
    v_std_mps: float
    v_min_mps: float
    v_max_mps: float
    u_scale: float
    source_width_m: float = 375.0

    def __post_init__(self) -> None:
        vals = asdict(self).values()
        if not all(np.isfinite(v) for v in vals):
            raise SeisfnoError(f"normalization statistics must be finite: {asdict(self)}")
        if not (self.v_std_mps > 0 and self.u_scale > 0 and self.source_width_m > 0):
            raise SeisfnoError(f"normalization scales must be positive: {asdict(self)}")

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> Normalization:
        try:
            return cls(**{k: float(v) for k, v in d.items()})
        except TypeError as e:
            raise SeisfnoError(f"bad normalization statistics in model card: {e}") from None

    @classmethod
    def fit(cls, velocity: np.ndarray | torch.Tensor, wavefield: np.ndarray | torch.Tensor,
            source_width_m: float = 375.0) -> Normalization:
        """Statistics of training ``velocity (n, nz, nx)`` and ``wavefield (n, nt, nz, nx)``."""
        v = torch.as_tensor(velocity).double()
        u = torch.as_tensor(wavefield)
        # Sum of squares in chunks (float64) so a large set needs no float64 copy.
        ss = sum(float(c.double().square().sum()) for c in u.reshape(u.shape[0], -1).split(64))
        rms = (ss / max(u.numel(), 1)) ** 0.5
        return cls(float(v.mean()), float(v.std()) or 1.0, float(v.min()), float(v.max()),
                   rms or 1.0, source_width_m)


def coordinates(grid: Grid, device=None, dtype=torch.float32) -> torch.Tensor:
    """Normalized node coordinates ``(2, nz, nx)``: ``z / depth_m`` and ``x / width_m``."""
    z = torch.as_tensor(grid.z_m / grid.depth_m, dtype=dtype, device=device)
    x = torch.as_tensor(grid.x_m / grid.width_m, dtype=dtype, device=device)
    zz, xx = torch.meshgrid(z, x, indexing="ij")
    return torch.stack([zz, xx])


def source_bump(grid: Grid, sources_xz_m: np.ndarray | torch.Tensor, width_m: float = 375.0,
                device=None, dtype=torch.float32) -> torch.Tensor:
    """Gaussian source fields ``exp(-r^2 / width_m^2)``, shape ``(B, nz, nx)``.

    Parameters
    ----------
    grid : Grid
        Any sampling of the domain; ``r`` is measured in metres between nodes and the source.
    sources_xz_m : array, shape (B, 2)
        Source positions ``(x, z)`` in metres from the top-left node.
    """
    s = torch.as_tensor(np.asarray(sources_xz_m, dtype=np.float64)).reshape(-1, 2)
    z = torch.as_tensor(grid.z_m, dtype=torch.float64)
    x = torch.as_tensor(grid.x_m, dtype=torch.float64)
    r2 = ((z[None, :, None] - s[:, 1, None, None]) ** 2
          + (x[None, None, :] - s[:, 0, None, None]) ** 2)
    return torch.exp(-r2 / width_m**2).to(device=device, dtype=dtype)


def encode_inputs(velocity_mps: torch.Tensor, sources_xz_m: np.ndarray | torch.Tensor,
                  grid: Grid, norm: Normalization) -> torch.Tensor:
    """The network input ``(B, 4, nz, nx)`` for velocities ``(B, nz, nx)`` in m/s.

    Differentiable in ``velocity_mps``. ``grid`` must match the velocity's shape.
    """
    if tuple(velocity_mps.shape[-2:]) != grid.shape:
        raise SeisfnoError(f"velocity grid {tuple(velocity_mps.shape[-2:])} != {grid.shape}")
    b = velocity_mps.shape[0]
    dev, dt = velocity_mps.device, velocity_mps.dtype
    v = (velocity_mps - norm.v_mean_mps) / norm.v_std_mps
    bump = source_bump(grid, sources_xz_m, norm.source_width_m, dev, dt)
    if bump.shape[0] != b:
        raise SeisfnoError(f"{b} velocity models but {bump.shape[0]} sources")
    xy = coordinates(grid, dev, dt).expand(b, 2, *grid.shape)
    return torch.cat([v[:, None], bump[:, None], xy], dim=1)


def encode_wavefield(u: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Physical wavefield -> network units."""
    return u / norm.u_scale


def decode_wavefield(y: torch.Tensor, norm: Normalization) -> torch.Tensor:
    """Network output -> physical wavefield."""
    return y * norm.u_scale


def decoded(net, x: torch.Tensor, norm: Normalization, module=None) -> torch.Tensor:
    """``decode_wavefield(net(x), norm)``: the physical wavefield of input ``x``.

    For a network that takes an output scale (``takes_output_scale``, as
    :class:`~seisfno.operator.fno2d.FNO2d`), ``u_scale`` enters its last GEMM instead of a pass
    over the output (and another over its gradient). ``module`` is the network to ask when
    ``net`` is a wrapper of it (``torch.compile``).
    """
    if getattr(module if module is not None else net, "takes_output_scale", False):
        return net(x, scale=norm.u_scale)
    return decode_wavefield(net(x), norm)


__all__ = ["N_INPUT_CHANNELS", "Normalization", "coordinates", "decode_wavefield", "decoded",
           "encode_inputs", "encode_wavefield", "source_bump"]
