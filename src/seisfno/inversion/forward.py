"""Forward models for FWI: the finite-difference solver or a trained neural operator.

Both map one velocity model and S sources to S wavefields on the preset's output grid::

    forward(velocity (nz, nx) tensor in m/s, sources_xz_m (S, 2)) -> (S, nt, nz, nx)

and are differentiable in the velocity. :func:`make_forward` builds one from a spec string:

* ``fd`` or ``fd:torch`` -- :class:`~seisfno.physics.AcousticSolver` (pure PyTorch),
* ``fd:deepwave`` -- the same solver with the deepwave backend,
* ``fno:NAME`` / ``fno:RUN_DIR`` -- a trained operator, ``seisfno.operator.load_model(...)``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from .._errors import SeisfnoError
from ..physics import AcousticSolver, Preset, get_preset

#: Fraction by which the preset's clip range is widened for the iterates of an inversion.
DEFAULT_WIDEN = 0.1


@runtime_checkable
class ForwardModel(Protocol):
    """What FWI needs from a forward model.

    Attributes
    ----------
    name : str
        A short label (``fd:torch``, ``fno:quick``, ...).
    preset : Preset
        The setup it models: grid, wavelet, output sampling.
    velocity_range_mps : (float, float)
        Velocities it is valid for; iterates are clamped into it.
    """

    name: str
    preset: Preset
    velocity_range_mps: tuple[float, float]

    def __call__(self, velocity: torch.Tensor, sources_xz_m: np.ndarray) -> torch.Tensor:
        """Wavefields ``(S, nt, nz, nx)``: a ``(nz, nx)`` model (m/s), ``(S, 2)`` sources (m)."""
        ...


def inversion_range(preset: Preset, widen: float = DEFAULT_WIDEN) -> tuple[float, float]:
    """The preset's velocity clip range widened by ``widen`` on each side (m/s).

    ``quick``/``paper``: ``[2400, 3600]`` -> ``[2160, 3960]`` m/s. Wider ranges cost solver time
    (a finer internal grid for the lower bound, a shorter step for the upper one).
    """
    lo, hi = preset.velocity.clip_mps
    return (lo * (1.0 - widen), hi * (1.0 + widen))


def _as_sources(sources_xz_m: Any) -> np.ndarray:
    s = np.asarray(sources_xz_m, dtype=np.float64).reshape(-1, 2)
    if s.shape[0] < 1:
        raise SeisfnoError("at least one source is needed")
    return s


class SolverForward:
    """FWI forward model: the finite-difference :class:`~seisfno.physics.AcousticSolver`.

    The solver is planned once for a fixed velocity range (by default the preset's clip range
    widened by 10 %, :func:`inversion_range`) so that every iterate uses the same discretization;
    FWI clamps its iterates into :attr:`velocity_range_mps`. All sources run in one batched call
    (split them with ``invert(..., batch_sources=...)`` to bound memory). Gradients use the
    torch backend's checkpointing (``checkpoint=None``: on whenever a gradient is needed).

    Parameters
    ----------
    preset : Preset or str
    backend : {"torch", "deepwave"}
    device : str, optional
    velocity_range_mps : (float, float), optional
        The range to plan for (m/s).
    **plan_options
        Passed to :func:`~seisfno.physics.make_plan` (``points_per_wavelength``, ``refine``, ...).
    """

    def __init__(self, preset: Preset | str = "quick", *, backend: str = "torch",
                 device: str | torch.device | None = None,
                 velocity_range_mps: tuple[float, float] | None = None, **plan_options) -> None:
        self.preset = get_preset(preset)
        if backend not in ("torch", "deepwave"):
            raise SeisfnoError(f"unknown solver backend {backend!r}; choose 'torch' or 'deepwave'")
        self.velocity_range_mps = tuple(float(x) for x in (
            velocity_range_mps or inversion_range(self.preset)))
        lo, hi = self.velocity_range_mps
        if not 0 < lo < hi:
            raise SeisfnoError(f"bad velocity range [{lo}, {hi}] m/s for the solver")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        try:
            self.solver = AcousticSolver.from_preset(
                self.preset, velocity_range_mps=self.velocity_range_mps, backend=backend,
                device=self.device, **plan_options)
        except ImportError as e:
            raise SeisfnoError(f"the {backend} backend is not available: {e}") from e
        self.name = f"fd:{backend}"
        self.plan_options = plan_options

    @property
    def plan(self):
        """The fixed :class:`~seisfno.physics.Plan` of every call."""
        return self.solver.plan_for(*self.velocity_range_mps)

    def __call__(self, velocity: torch.Tensor, sources_xz_m: np.ndarray) -> torch.Tensor:
        v = torch.as_tensor(velocity, device=self.device)
        if v.ndim != 2:
            raise SeisfnoError(f"the forward model takes one (nz, nx) model, got {tuple(v.shape)}")
        s = _as_sources(sources_xz_m)
        out = self.solver(v, s)
        return out.reshape(s.shape[0], *out.shape[-3:])


def check_same_setup(a: Preset, b: Preset, what: str = "an operator") -> None:
    """Raise unless two presets share grid, wavelet and output sampling."""
    ga, gb = a.grid, b.grid
    same = (ga.shape == gb.shape and np.isclose(ga.dz_m, gb.dz_m, rtol=1e-6)
            and np.isclose(ga.dx_m, gb.dx_m, rtol=1e-6)
            and np.isclose(a.f_peak_hz, b.f_peak_hz) and np.isclose(a.dt_out_s, b.dt_out_s)
            and a.nt_out == b.nt_out and a.decimation == b.decimation)
    if not same:
        def desc(p: Preset) -> str:
            g = p.grid
            return (f"{p.name!r}: {g.nz} x {g.nx} nodes at {g.dz_m:.2f} x {g.dx_m:.2f} m, "
                    f"{p.f_peak_hz:g} Hz, {p.nt_out} samples at {p.dt_out_s:g} s, {p.decimation}")
        raise SeisfnoError(f"{what} made for preset {desc(a)} cannot be used with preset "
                           f"{desc(b)}")


class OperatorForward:
    """FWI forward model: a trained neural operator (``seisfno.operator.load_model``).

    For a loaded :class:`~seisfno.operator.checkpoint.LoadedModel` (anything with ``net``,
    ``norm`` and ``preset``) the call is an FWI fast path: the constant input channels (source
    bumps, coordinates) are built once per source set and kept on the device, the network's
    weights are frozen (``requires_grad`` off on the model's own parameters, for good: FWI needs
    the gradient in the velocity only; reload the model to train it further), and
    nothing is copied to the host, so a GPU iteration is not stalled by synchronizations. The
    velocity is not re-validated on every call: :func:`~.fwi.invert` validates the start model and
    clamps every iterate into :attr:`velocity_range_mps`. Other models (anything with
    ``predict``) go through ``model.predict``. On one H200 with 20 sources an iteration took
    5.8 ms (width 32) and 8.2 ms (width 64) this way, against 18.7 and 15.8 ms through
    ``predict`` (BENCHMARKS.md).

    Parameters
    ----------
    model : object
        Anything with ``predict(velocity (B, nz, nx) m/s, sources_xz_m (B, 2)) -> (B, nt, nz, nx)``
        (differentiable in velocity) and a ``preset`` attribute.
    name : str
    velocity_range_mps : (float, float), optional
        Iterates are clamped into this range (default: the preset's clip range widened by 10 %;
        the operator is only trustworthy near its training distribution).
    device : str, optional
        Where to run (a loaded operator runs where its weights are).
    compile : bool
        ``torch.compile`` the network (fast path only); on CUDA with CUDA graphs
        (``mode="reduce-overhead"``), which removes the per-kernel launch cost that dominates a
        small network's iteration. The first call compiles (tens of seconds).
    """

    def __init__(self, model: Any, name: str = "fno", *,
                 velocity_range_mps: tuple[float, float] | None = None,
                 device: str | torch.device | None = None, compile: bool = False) -> None:
        self.model = model
        self.preset = model.preset
        self.name = name
        self.velocity_range_mps = tuple(float(x) for x in (
            velocity_range_mps or inversion_range(self.preset)))
        self.device = torch.device(device) if device is not None else _model_device(model)
        net = getattr(model, "net", None)
        self._fast = isinstance(net, torch.nn.Module) and hasattr(model, "norm")
        if self._fast:
            self.device = _model_device(net)  # where the weights are
        self._cache: tuple[bytes, torch.Tensor] | None = None
        self._graphs = False
        if self._fast:
            net.requires_grad_(False)
            net.eval()
            self._dtype = next(p.dtype for p in net.parameters() if not p.is_complex())
            self._net = net
            if compile:
                self._graphs = self.device.type == "cuda"
                self._net = torch.compile(net, mode="reduce-overhead" if self._graphs else None)
        elif compile:
            raise SeisfnoError(f"{name}: compile needs a loaded operator (with net and norm)")

    @classmethod
    def load(cls, path_or_name: str, device: str | torch.device | None = None,
             **kwargs) -> OperatorForward:
        """Load a trained operator by name (``quick``) or run directory."""
        try:
            from ..operator import load_model
        except ImportError as e:
            raise SeisfnoError(f"the neural-operator package is not available: {e}") from e
        return cls(load_model(path_or_name, device=device), name=f"fno:{path_or_name}",
                   device=device, **kwargs)

    def _constant_inputs(self, s: np.ndarray) -> torch.Tensor:
        """Source-bump and coordinate channels ``(S, 3, nz, nx)``, cached for the last sources."""
        key = s.tobytes()
        if self._cache is None or self._cache[0] != key:
            from ..operator.encoding import coordinates, source_bump

            g, n = self.preset.grid, self.model.norm
            bump = source_bump(g, s, n.source_width_m, self.device, self._dtype)
            xy = coordinates(g, self.device, self._dtype).expand(len(s), 2, *g.shape)
            self._cache = (key, torch.cat([bump[:, None], xy], dim=1).contiguous())
        return self._cache[1]

    def __call__(self, velocity: torch.Tensor, sources_xz_m: np.ndarray) -> torch.Tensor:
        v = torch.as_tensor(velocity)
        if tuple(v.shape) != self.preset.grid.shape:
            raise SeisfnoError(f"the operator takes models on its {self.preset.grid.shape} grid, "
                               f"got {tuple(v.shape)}")
        s = self.preset.grid.check_sources(_as_sources(sources_xz_m))
        if not self._fast:
            v = v.to(self.device)
            vb = v.unsqueeze(0).expand(s.shape[0], *v.shape)
            src = torch.as_tensor(s, dtype=v.dtype, device=self.device)
            return self.model.predict(vb, src)
        const = self._constant_inputs(s)
        n = self.model.norm
        vn = (v.to(self.device, self._dtype) - n.v_mean_mps) / n.v_std_mps
        x = torch.cat([vn.expand(len(s), 1, *v.shape), const], dim=1)
        from ..operator.encoding import decode_wavefield, decoded

        if self._graphs:
            # The graph's output buffer is overwritten by the next replay: the decoding's
            # multiplication hands the caller a tensor of its own.
            torch.compiler.cudagraph_mark_step_begin()
            return decode_wavefield(self._net(x), n)
        return decoded(self._net, x, n, self.model.net)


def _model_device(model: Any) -> torch.device:
    dev = getattr(model, "device", None)
    if dev is not None:
        return torch.device(dev)
    params = getattr(model, "parameters", None)
    if callable(params):
        for p in params():
            return p.device
    return torch.device("cpu")


def make_forward(spec: str, preset: Preset | str | None = None, *,
                 device: str | torch.device | None = None,
                 velocity_range_mps: tuple[float, float] | None = None,
                 **plan_options) -> ForwardModel:
    """A forward model from a spec: ``fd``, ``fd:torch``, ``fd:deepwave``, ``fno:NAME|RUN_DIR``.

    For ``fd`` the preset defaults to ``quick``. For ``fno`` the operator's own preset is used;
    a ``preset`` given as well must describe the same setup, else :class:`SeisfnoError`.
    """
    kind, _, arg = spec.partition(":")
    if kind == "fd":
        return SolverForward(preset if preset is not None else "quick", backend=arg or "torch",
                             device=device, velocity_range_mps=velocity_range_mps,
                             **plan_options)
    if kind == "fno":
        if not arg:
            raise SeisfnoError("an operator spec needs a model: fno:NAME or fno:RUN_DIR")
        fwd = OperatorForward.load(arg, device=device, velocity_range_mps=velocity_range_mps)
        if preset is not None:
            check_same_setup(fwd.preset, get_preset(preset))
        return fwd
    raise SeisfnoError(f"unknown forward model {spec!r}; use fd, fd:deepwave or fno:MODEL")
