"""The pure-PyTorch finite-difference propagator (CPU and CUDA, differentiable).

Equation: ``d2u/dt2 - v^2 lap(u) = s(t) delta(x - x_s)`` (constant density; ``delta`` in 1/m^2),
with an 8th-order Laplacian, the 4th-order modified-equation time stepper

    w       = v^2 lap(u^n) + f^n
    u^{n+1} = 2 u^n - u^{n-1} + dt^2 w + dt^4 / 12 (v^2 lap(w) + f_tt^n)

and a damping layer (``+ 2 sigma du/dt`` inside it) on all four sides. Sources are spread with
Kaiser-windowed sinc weights (Hicks, 2002), so they may sit anywhere, also between nodes and a
few cells from an edge (the absorbing layer lies beyond the edge and holds the spread).

:func:`propagate` is the differentiable primitive. With ``checkpoint=True`` it stores the state
only every ~sqrt(n) steps and recomputes the rest in the backward pass, so the memory of a
gradient grows as sqrt(n_steps) wavefields instead of n_steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from .plan import HALO, STENCIL, Plan


def laplacian(u: torch.Tensor, inv_dz2: float, inv_dx2: float) -> torch.Tensor:
    """8th-order Laplacian of ``(..., nz, nx)``; zero on the ``HALO``-cell frame."""
    h = HALO
    nz, nx = u.shape[-2], u.shape[-1]
    c = u[..., h:nz - h, h:nx - h]
    out = (STENCIL[0] * (inv_dz2 + inv_dx2)) * c
    for m in range(1, h + 1):
        cz = STENCIL[m] * inv_dz2
        cx = STENCIL[m] * inv_dx2
        out = out + cz * (u[..., h + m:nz - h + m, h:nx - h] + u[..., h - m:nz - h - m, h:nx - h])
        out = out + cx * (u[..., h:nz - h, h + m:nx - h + m] + u[..., h:nz - h, h - m:nx - h - m])
    return F.pad(out, (h, h, h, h))


def _step(u: torch.Tensor, u_prev: torch.Tensor, v2: torch.Tensor, src: torch.Tensor,
          s: torch.Tensor, s_tt: torch.Tensor, damp_prev: torch.Tensor, damp_inv: torch.Tensor,
          dt: float, inv_dz2: float, inv_dx2: float) -> torch.Tensor:
    w = v2 * laplacian(u, inv_dz2, inv_dx2) + src * s
    corr = v2 * laplacian(w, inv_dz2, inv_dx2) + src * s_tt
    return (2.0 * u - damp_prev * u_prev + (dt * dt) * w + (dt**4 / 12.0) * corr) * damp_inv


_COMPILED: dict[str, Callable] = {}


def _stepper(compile: bool) -> Callable:
    if not compile:
        return _step
    if "step" not in _COMPILED:
        _COMPILED["step"] = torch.compile(_step, dynamic=False, fullgraph=True)
    return _COMPILED["step"]


def damping_profile(plan: Plan, device=None, dtype=torch.float32
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(1 - sigma dt, 1 / (1 + sigma dt))`` on the padded grid.

    ``sigma = sigma_max (d / L)^p`` in the layer (``d`` the depth into it, ``L`` its thickness,
    ``p = plan.sigma_power``), summed over the two axes in the corners.
    """
    nz, nx = plan.padded_shape
    width = plan.pad - HALO

    def axis(n: int) -> np.ndarray:
        i = np.arange(n, dtype=np.float64)
        d = np.maximum(np.maximum(plan.pad - i, i - (n - 1 - plan.pad)), 0.0) / width
        return plan.sigma_max * np.minimum(d, 1.0) ** plan.sigma_power

    sigma = axis(nz)[:, None] + axis(nx)[None, :]
    prev = torch.as_tensor(1.0 - sigma * plan.dt_s, dtype=dtype, device=device)
    inv = torch.as_tensor(1.0 / (1.0 + sigma * plan.dt_s), dtype=dtype, device=device)
    return prev, inv


def _hicks_1d(pos: float, n: int, halfwidth: int = 4, beta: float = 6.31) -> tuple[int, np.ndarray]:
    """Kaiser-windowed sinc weights of a point at fractional index ``pos``: (first index, w)."""
    i0 = math.floor(pos) - halfwidth + 1
    idx = np.arange(i0, i0 + 2 * halfwidth)
    x = idx - pos
    w = np.sinc(x) * np.i0(beta * np.sqrt(np.clip(1 - (x / halfwidth) ** 2, 0, None))) / np.i0(beta)
    if abs(pos - round(pos)) < 1e-9:  # on a node: exactly a delta
        w = (idx == round(pos)).astype(np.float64)
    if i0 < 0 or i0 + 2 * halfwidth > n:
        raise ValueError("source spread leaves the padded grid")
    return i0, w


def source_field(plan: Plan, sources_xz_m: np.ndarray, device=None, dtype=torch.float32
                 ) -> torch.Tensor:
    """Spatial source term ``delta(x - x_s)`` (1/m^2) on the padded grid for each shot.

    ``sources_xz_m`` is ``(B, 2)`` (one source per shot) or ``(B, S, 2)`` (S sources per shot,
    fired together).
    """
    s = np.asarray(sources_xz_m, dtype=np.float64)
    if s.ndim == 2:
        s = s[:, None, :]
    fine = plan.fine
    nz, nx = plan.padded_shape
    out = np.zeros((s.shape[0], nz, nx), dtype=np.float64)
    for b in range(s.shape[0]):
        for x_m, z_m in s[b]:
            iz, wz = _hicks_1d(plan.pad + z_m / fine.dz_m, nz)
            ix, wx = _hicks_1d(plan.pad + x_m / fine.dx_m, nx)
            out[b, iz:iz + len(wz), ix:ix + len(wx)] += np.outer(wz, wx)
    out /= fine.dz_m * fine.dx_m
    return torch.as_tensor(out, dtype=dtype, device=device)


def fine_velocity(plan: Plan, velocity: torch.Tensor) -> torch.Tensor:
    """Output-grid models ``(B, nz, nx)`` to the padded internal grid (bilinear, edge-extended)."""
    fine = plan.fine
    v = velocity.reshape(-1, 1, *velocity.shape[-2:])
    if plan.refine > 1:
        v = F.interpolate(v, size=fine.shape, mode="bilinear", align_corners=True)
    v = F.pad(v, (plan.pad,) * 4, mode="replicate")
    return v[:, 0]


def lowpass_matrix(plan: Plan) -> np.ndarray:
    """``(nt_out, n_steps)`` weights taking internal steps to output samples.

    Point decimation selects step ``k * steps_per_output``. Lowpass decimation applies a
    zero-phase Kaiser-windowed sinc with its cutoff at 0.8 x the output Nyquist frequency.
    """
    m, n = plan.steps_per_output, plan.n_steps
    mat = np.zeros((plan.nt_out, n))
    if plan.decimation == "point":
        mat[np.arange(plan.nt_out), np.arange(plan.nt_out) * m] = 1.0
        return mat
    hw = plan.lowpass_halfwidth
    j = np.arange(-hw, hw + 1)
    fc = 0.8 * 0.5 / m  # cycles per internal step
    h = 2 * fc * np.sinc(2 * fc * j) * np.kaiser(2 * hw + 1, 8.0)
    h /= h.sum()
    for k in range(plan.nt_out):
        idx = k * m + j
        ok = idx >= 0  # before t = 0 the field is zero
        mat[k, idx[ok]] = h[ok]
    return mat


def propagate(plan: Plan, v2: torch.Tensor, src: torch.Tensor, wavelet: torch.Tensor,
              wavelet_tt: torch.Tensor, *, record_steps: np.ndarray | None = None,
              checkpoint: bool | None = None, compile: bool = False) -> torch.Tensor:
    """Run ``plan.n_steps`` steps and return the output-grid wavefield at ``record_steps``.

    Parameters
    ----------
    plan : Plan
    v2 : Tensor, (B or 1, NZ, NX)
        Squared velocity on the padded grid (differentiable).
    src : Tensor, (B, NZ, NX)
        Spatial source term (see :func:`source_field`).
    wavelet, wavelet_tt : Tensor, (n_steps,)
        Source time function and its second derivative at ``n * dt``.
    record_steps : array of int, optional
        Steps to record (default: every ``steps_per_output``-th).
    checkpoint : bool, optional
        Recompute instead of storing (default: when a gradient is needed).
    compile : bool
        Use a ``torch.compile``'d step.

    Returns
    -------
    Tensor, (B, len(record_steps), nz, nx)
        ``u`` at the output nodes at the recorded steps.
    """
    if record_steps is None:
        record_steps = np.arange(plan.nt_out) * plan.steps_per_output
    record = np.zeros(plan.n_steps, dtype=bool)
    record[np.asarray(record_steps)] = True
    fine, p, r = plan.fine, plan.pad, plan.refine
    sl = (slice(None), slice(p, p + fine.nz, r), slice(p, p + fine.nx, r))
    damp_prev, damp_inv = damping_profile(plan, v2.device, v2.dtype)
    step = _stepper(compile)
    args = (damp_prev, damp_inv, plan.dt_s, 1.0 / fine.dz_m**2, 1.0 / fine.dx_m**2)
    batch = max(v2.shape[0], src.shape[0])
    u = torch.zeros((batch, *plan.padded_shape), dtype=v2.dtype, device=v2.device)
    u_prev = torch.zeros_like(u)

    def run(u, u_prev, start: int, stop: int):
        recs = []
        for n in range(start, stop):
            if record[n]:
                recs.append(u[sl])
            u, u_prev = step(u, u_prev, v2, src, wavelet[n], wavelet_tt[n], *args), u
        return u, u_prev, (torch.stack(recs, 1) if recs else u.new_zeros(batch, 0, *fine.shape))

    if checkpoint is None:
        checkpoint = torch.is_grad_enabled() and (v2.requires_grad or src.requires_grad)
    seg = max(1, math.isqrt(plan.n_steps)) if checkpoint else plan.n_steps
    out = []
    for start in range(0, plan.n_steps, seg):
        stop = min(start + seg, plan.n_steps)
        if checkpoint:
            u, u_prev, rec = _checkpoint(run, u, u_prev, start, stop, use_reentrant=False)
        else:
            u, u_prev, rec = run(u, u_prev, start, stop)
        out.append(rec)
    return torch.cat(out, 1)
