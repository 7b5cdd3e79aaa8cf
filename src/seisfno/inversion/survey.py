"""Acquisition for FWI: where the sources are, which nodes record, and noise on the data.

The paper's protocol (Yang et al. 2021, section 6) is the default: 20 sources and a receiver at
every grid node, noise-free. Our 20 sources sit on a regular 5 x 4 grid (5 along x, 4 along z),
each at the centre of one cell of a 5 x 4 partition of the domain, i.e. inset from the edges by
half a source spacing. On the 10 km ``paper``/``quick`` domain: x = 1, 3, 5, 7, 9 km and
z = 1.25, 3.75, 6.25, 8.75 km.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch

from .._errors import SeisfnoError
from ..physics import Grid

#: Fewer sources than this still run, with a warning: the model is poorly illuminated.
MIN_SENSIBLE_SOURCES = 4


def _layout(n: int, aspect: float) -> tuple[int, int]:
    """``(cols, rows)`` with ``cols * rows >= n`` close to the domain's aspect (width/depth)."""
    best = None
    for rows in range(1, n + 1):
        if n % rows:
            continue
        cols = n // rows
        score = abs(math.log(cols / rows / aspect))
        if best is None or score < best[0] - 1e-12 or (abs(score - best[0]) < 1e-12
                                                        and cols > best[1]):
            best = (score, cols, rows)
    _, cols, rows = best
    if max(cols, rows) > 3 * max(1, min(cols, rows)) and n > 3:  # e.g. a prime: fill rows
        rows = max(1, round(math.sqrt(n / aspect)))
        cols = math.ceil(n / rows)
    return cols, rows


def default_sources(grid: Grid, n: int = 20) -> np.ndarray:
    """``n`` sources on a regular grid inset from the edges, ``(n, 2)`` as ``(x, z)`` metres.

    The layout has ``cols x rows`` sources (for 20: 5 x 4), each at the centre of one cell of a
    ``cols x rows`` partition of the domain. When ``n`` has no near-square factorization (a
    prime), rows are filled in order and the last one is centred.
    """
    if n < 1:
        raise SeisfnoError(f"at least one source is needed, got {n}")
    cols, rows = _layout(int(n), grid.width_m / grid.depth_m)
    out = []
    for r in range(rows):
        k = min(cols, n - len(out))
        if k <= 0:
            break
        z = (r + 0.5) * grid.depth_m / rows
        # a full row uses the cell centres; a short last row is centred on the same spacing
        off = (cols - k) / 2
        out += [((off + c + 0.5) * grid.width_m / cols, z) for c in range(k)]
    return np.asarray(out, dtype=np.float64)


def receiver_mask(grid: Grid, receivers: str | int | np.ndarray | None = "all"
                  ) -> np.ndarray | None:
    """Which nodes record: ``None`` for every node, else a boolean ``(nz, nx)`` mask.

    Parameters
    ----------
    receivers : {"all", "surface"} or int or str or ndarray
        ``all`` (the paper), ``surface`` (the z = 0 row), an int k or ``"every:k"`` (every k-th
        node along both axes, starting at the corner), or a boolean ``(nz, nx)`` mask.
    """
    if receivers is None or (isinstance(receivers, str) and receivers == "all"):
        return None
    if isinstance(receivers, np.ndarray):
        if receivers.shape != grid.shape or receivers.dtype != bool:
            raise SeisfnoError(f"a receiver mask must be boolean {grid.shape}, got "
                               f"{receivers.dtype} {receivers.shape}")
        mask = receivers.copy()
    elif isinstance(receivers, str) and receivers == "surface":
        mask = np.zeros(grid.shape, dtype=bool)
        mask[0, :] = True
    else:
        text = str(receivers)
        try:
            k = int(text.split(":", 1)[1] if text.startswith("every:") else text)
        except ValueError:
            raise SeisfnoError(f"receivers must be all, surface, every:K or a mask, got "
                               f"{receivers!r}") from None
        if k < 1:
            raise SeisfnoError(f"receiver spacing must be at least 1 node, got {k}")
        mask = np.zeros(grid.shape, dtype=bool)
        mask[::k, ::k] = True
    if not mask.any():
        raise SeisfnoError("the receiver selection contains no node")
    return mask


def record(wavefield: torch.Tensor, mask: np.ndarray | torch.Tensor | None) -> torch.Tensor:
    """Traces at the receivers: ``(S, nt, nz, nx)`` -> ``(S, nt, R)``, or unchanged for ``None``."""
    if mask is None:
        return wavefield
    m = torch.as_tensor(mask, device=wavefield.device)
    return wavefield[..., m]


def lowpass(data: torch.Tensor, dt_s: float, f_hz: float | None, order: int = 4) -> torch.Tensor:
    """Zero-phase low-pass in time of recorded data ``(S, nt, ...)`` (time on axis 1).

    The gain is the magnitude of a Butterworth filter, ``1 / sqrt(1 + (f / f_hz)**(2 * order))``
    (-3 dB at ``f_hz``), applied without phase shift in the frequency domain after zero-padding
    to twice the length (no wrap-around). As that is linear, it is applied as an ``(nt, nt)``
    matrix (built once per setting and device: 10x faster than an FFT along axis 1 on CPU).
    Differentiable: FWI uses it on both the observed and the predicted data to invert the low
    frequencies first (they are not cycle-skipped from a smooth start). ``None`` returns the data
    unchanged.
    """
    if f_hz is None:
        return data
    if not (f_hz > 0 and math.isfinite(f_hz)):
        raise SeisfnoError(f"the low-pass frequency must be positive, got {f_hz} Hz")
    h = _lowpass_matrix(data.shape[1], float(dt_s), float(f_hz), int(order), str(data.device),
                        data.dtype)
    return torch.einsum("tk,sk...->st...", h, data)


@functools.lru_cache(maxsize=32)
def _lowpass_matrix(nt: int, dt_s: float, f_hz: float, order: int, device: str,
                    dtype: torch.dtype) -> torch.Tensor:
    """Row t: the filter's weights of every input sample for output sample t (float64 built)."""
    n = 2 * nt
    f = torch.fft.rfftfreq(n, d=dt_s, dtype=torch.float64)
    gain = (1.0 + (f / f_hz) ** (2 * order)) ** -0.5
    eye = torch.eye(nt, dtype=torch.float64)  # column k: an impulse at sample k
    cols = torch.fft.irfft(torch.fft.rfft(eye, n=n, dim=0) * gain[:, None], n=n, dim=0)[:nt]
    return cols.to(device=device, dtype=dtype)


def add_noise(data: torch.Tensor, snr_db: float | None, seed: int = 0) -> torch.Tensor:
    """White Gaussian noise at a signal-to-noise ratio ``snr_db`` (dB), reproducible by ``seed``.

    The noise variance is ``mean(data**2) / 10**(snr_db / 10)``, the mean taken over all the
    recorded samples (every source, time and receiver). The noise is drawn on the CPU with a
    ``torch.Generator`` seeded by ``seed``, so it is the same on every device.
    """
    if snr_db is None:
        return data
    if not math.isfinite(snr_db):
        raise SeisfnoError(f"the SNR must be a finite number of dB, got {snr_db}")
    power = float((data.detach().double() ** 2).mean())
    gen = torch.Generator().manual_seed(int(seed))
    noise = torch.randn(data.shape, generator=gen, dtype=torch.float64)
    noise *= math.sqrt(power / 10 ** (snr_db / 10))
    return data + noise.to(data.device, data.dtype)


@dataclass(frozen=True)
class Survey:
    """Acquisition geometry and data noise.

    Attributes
    ----------
    sources_xz_m : ndarray, (S, 2)
        Source positions ``(x, z)`` in metres.
    receivers : str, int or ndarray
        See :func:`receiver_mask` (default ``all``: every node).
    noise_snr_db : float, optional
        Add white noise at this SNR (dB) to the observations (default: noise-free).
    noise_seed : int
    """

    sources_xz_m: np.ndarray
    receivers: str | int | np.ndarray = "all"
    noise_snr_db: float | None = None
    noise_seed: int = 0

    @classmethod
    def paper(cls, grid: Grid, n_sources: int = 20, **kwargs) -> Survey:
        """The paper's survey: ``n_sources`` on the default grid, every node records, no noise."""
        return cls(default_sources(grid, n_sources), **kwargs)

    @property
    def n_sources(self) -> int:
        return int(np.asarray(self.sources_xz_m).reshape(-1, 2).shape[0])
