"""The pure-PyTorch finite-difference propagator (CPU and CUDA, differentiable).

Equation: ``d2u/dt2 - v^2 lap(u) = s(t) delta(x - x_s)`` (constant density; ``delta`` in 1/m^2),
with an 8th-order Laplacian, the 4th-order modified-equation time stepper

    w       = v^2 L(u^n) + f^n
    u^{n+1} = 2 u^n - u^{n-1} + dt^2 w + m dt^4 / 12 (v^2 lap(w) + f_tt^n)

and a convolutional PML (Pasalic & McGarry, 2010) on all four sides: ``L`` is the Laplacian with
each ``d_x`` stretched inside the layer (:func:`_cpml_axis`; memory fields on edge strips only),
and the 4th-order correction's weight ``m`` is 1 in the interior and fades to 0 over the first
``plan.lw_taper`` cells of the layer, where the scheme is plain leapfrog (hence the time-step
bound in :mod:`~seisfno.physics.plan`). Sources are spread with
Kaiser-windowed sinc weights (Hicks, 2002), so they may sit anywhere, also between nodes and a
few cells from an edge (the absorbing layer lies beyond the edge and holds the spread).

:func:`propagate` is the differentiable primitive. With ``checkpoint=True`` it stores the state
only every ~sqrt(n) steps and recomputes the rest in the backward pass, so the memory of a
gradient grows as sqrt(n_steps) wavefields instead of n_steps.

Speed (what :func:`_step` is shaped for; ``torch.compile`` turns it into one fused C++ kernel on
the CPU): each axis' C-PML strips are rows (x's of the transposed field: whole rows vectorize,
where 24-node strip rows with masked tails ran 2x slower), and their corrections return to the
full grid as zero-padded strips, which fuse into the update as masked loads, not as full-size
concatenations with zeros; the Laplacian has a hand-written (self-adjoint) backward,
:class:`_FrameLaplacian`; and recorded frames are copied into one buffer, so no step's full
field outlives the step. Per step the compiled kernel then makes four full-grid passes (``L u``,
``w``, ``lap w``, ``u^{n+1}``) plus the strips. ``benchmarks/solver_cpu.py`` measures it
against deepwave on the same plan. Without a gradient on the CPU, :mod:`seisfno.physics.native`
runs the same scheme as one C loop (two passes a step, the strips inline), 2-3x faster than
this step compiled; this module stays the differentiable path, the GPU path and its oracle.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

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


class _FrameLaplacian(torch.autograd.Function):
    """:func:`laplacian` with a hand-written adjoint: the operator is ``P S P`` (``S`` the
    symmetric stencil, ``P`` zeroing the ``HALO`` frame), hence self-adjoint.

    The forward is :func:`laplacian` itself, which equals ``P S P u`` for fields that vanish on
    the frame, as both fields the time step applies it to do: ``u`` (the step masks its frame)
    and ``w`` (every term of it vanishes there, the source too, see :func:`propagate`). The
    adjoint ``P S P g`` is one more stencil pass, where autograd's own (the sum of 17 slice
    adjoints, zero-padded fields) ran ~13x slower than the forward once compiled.
    """

    @staticmethod
    def forward(u, inner, inv_dz2, inv_dx2):  # noqa: D102
        return laplacian(u, inv_dz2, inv_dx2)

    @staticmethod
    def setup_context(ctx, inputs, output):  # noqa: D102
        _, inner, ctx.inv_dz2, ctx.inv_dx2 = inputs
        ctx.save_for_backward(inner)

    @staticmethod
    def backward(ctx, g):  # noqa: D102
        (inner,) = ctx.saved_tensors
        return laplacian(g * inner, ctx.inv_dz2, ctx.inv_dx2), None, None, None


#: 8th-order central coefficients of the first derivative, c1..c4.
STENCIL1 = (4.0 / 5.0, -1.0 / 5.0, 4.0 / 105.0, -1.0 / 280.0)


def _narrow(u: torch.Tensor, dim: int, m: int) -> torch.Tensor:
    """``u`` shifted by ``m`` along ``dim`` over the axis minus its ``HALO`` frame."""
    return u.narrow(dim, HALO + m, u.shape[dim] - 2 * HALO)


def _pad(x: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero ``HALO`` frame along ``dim`` (-1 or -2)."""
    return F.pad(x, (HALO, HALO) if dim == -1 else (0, 0, HALO, HALO))


def _d1(u: torch.Tensor, dim: int) -> torch.Tensor:
    """8th-order first difference (times h) along ``dim``; zero on its ``HALO`` frame."""
    out = STENCIL1[0] * (_narrow(u, dim, 1) - _narrow(u, dim, -1))
    for m in range(2, HALO + 1):
        out = out + STENCIL1[m - 1] * (_narrow(u, dim, m) - _narrow(u, dim, -m))
    return _pad(out, dim)


def _d2(u: torch.Tensor, dim: int) -> torch.Tensor:
    """8th-order second difference (times h^2) along ``dim``; zero on its frame."""
    out = STENCIL[0] * _narrow(u, dim, 0)
    for m in range(1, HALO + 1):
        out = out + STENCIL[m] * (_narrow(u, dim, m) + _narrow(u, dim, -m))
    return _pad(out, dim)


def _strips(u: torch.Tensor, k: int, s: int, dim: int) -> torch.Tensor:
    """``(k, ...)``: the two edge strips of width ``s`` along ``dim`` (k=2), or all of it (k=1)."""
    if k == 1:
        return u[None]
    return torch.stack((u.narrow(dim, 0, s), u.narrow(dim, u.shape[dim] - s, s)))


def _unstrip(c: torch.Tensor, n: int) -> torch.Tensor:
    """Inverse of :func:`_strips` (along rows) for a correction that vanishes between them."""
    if c.shape[0] == 1:
        return c[0]
    r = n - c.shape[-2]
    # zero-padding (not a concatenation with zeros): compiled, it fuses into the consumer as a
    # masked load instead of materializing a full-size, mostly zero field
    return F.pad(c[0], (0, 0, 0, r)) + F.pad(c[1], (0, 0, r, 0))


def _cpml_axis(u: torch.Tensor, psi: torch.Tensor, zeta: torch.Tensor, a: torch.Tensor,
               b: torch.Tensor, db: torch.Tensor, inv_h: float, inv_h2: float
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """C-PML second derivative along z (Pasalic & McGarry, 2010), on the edge strips.

    With ``1/s`` the stretching operator as a recursive convolution (``a = exp(-(sigma + alpha)
    dt)``, ``b = sigma / (sigma + alpha) (a - 1)``)::

        tmp   = (1 + b) u_xx + b_x u_x + d_x(a psi)        # d_x((1/s) d_x u)
        L u   = (1 + b) tmp + a zeta                       # (1/s) tmp
        psi'  = b u_x + a psi,   zeta' = b tmp + a zeta

    Returns ``(L u - u_xx`` on the full axis, ``psi', zeta')``. The strips are rows; the step
    passes the transposed field for x.
    """
    dim = -2
    us = _strips(u, a.shape[0], a.shape[dim], dim)
    ux = _d1(us, dim) * inv_h
    uxx = _d2(us, dim) * inv_h2
    tmp = (1.0 + b) * uxx + db * ux + _d1(a * psi, dim) * inv_h
    corr = (1.0 + b) * tmp + a * zeta - uxx
    return _unstrip(corr, u.shape[dim]), b * ux + a * psi, b * tmp + a * zeta


def _step(u: torch.Tensor, u_prev: torch.Tensor, psi_z: torch.Tensor, zeta_z: torch.Tensor,
          psi_x: torch.Tensor, zeta_x: torch.Tensor, v2: torch.Tensor, src: torch.Tensor,
          s: torch.Tensor, s_tt: torch.Tensor, lw_mask: torch.Tensor, inner: torch.Tensor,
          az: torch.Tensor,
          bz: torch.Tensor, dbz: torch.Tensor, ax: torch.Tensor, bx: torch.Tensor,
          dbx: torch.Tensor, dt: float, inv_dz: float, inv_dx: float):
    inv_dz2, inv_dx2 = inv_dz * inv_dz, inv_dx * inv_dx
    cz, psi_z, zeta_z = _cpml_axis(u, psi_z, zeta_z, az, bz, dbz, inv_dz, inv_dz2)
    # x runs on the transposed field: its strips become rows too, so the compiled loops run
    # along whole rows (411 nodes on paper) instead of 24-node strip rows with masked tails;
    # measured 2x faster for the x strips (paper, 1 thread, 2026-12-02)
    cx, psi_x, zeta_x = _cpml_axis(u.transpose(-1, -2), psi_x, zeta_x, ax, bx, dbx, inv_dx,
                                   inv_dx2)
    cx = cx.transpose(-1, -2)
    lap = _FrameLaplacian.apply
    w = v2 * (lap(u, inner, inv_dz2, inv_dx2) + cz + cx) + src * s
    corr = v2 * lap(w, inner, inv_dz2, inv_dx2) + src * s_tt
    u_next = 2.0 * u - u_prev + (dt * dt) * w + (dt**4 / 12.0) * (lw_mask * corr)
    # The HALO-cell frame is never updated. Without this mask the strips' corrections reach it
    # (an unstable, anti-diffusive update there): invisible forward, where the frame stays zero,
    # but its transpose grew the adjoint by ~2x per step into NaN gradients after ~200 steps.
    return u_next * inner, u, psi_z, zeta_z, psi_x, zeta_x


_COMPILED: dict[str, Callable] = {}

#: Compiled variants of the step allowed per process (dynamo's default is 8). Each shape, dtype
#: and gradient mode compiles its own (``dynamic=False``: static-shape kernels), so a long run
#: (``reproduce``, a benchmark, a notebook) passed 8 and, with ``fullgraph=True``, failed hard.
RECOMPILE_LIMIT = 64


def _stepper(compile: bool) -> Callable:
    if not compile:
        return _step
    if "step" not in _COMPILED:
        _COMPILED["step"] = torch.compile(_step, dynamic=False, fullgraph=True)
    return _COMPILED["step"]


def _compile_scope(compile: bool):
    """Where the compiled step runs: dynamo's recompile limit raised to :data:`RECOMPILE_LIMIT`."""
    if not compile:
        return contextlib.nullcontext()
    return torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT)


def _cpml_1d(plan: Plan, n: int, h: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``a, b, db/dx`` along one padded axis of ``n`` nodes with spacing ``h``."""
    width = plan.pad - HALO
    i = np.arange(n, dtype=np.float64)
    d = np.maximum(np.maximum(plan.pad - i, i - (n - 1 - plan.pad)), 0.0)
    frac = np.minimum(d / width, 1.0)
    sigma = plan.sigma_max * frac**plan.pml_power
    alpha = math.pi * plan.f_peak_hz * (1.0 - frac)
    total = (sigma + alpha) * plan.dt_s
    a = np.where(frac > 0, np.exp(-total), 0.0)
    b = np.where(frac > 0, sigma / np.maximum(sigma + alpha, 1e-300) * np.expm1(-total), 0.0)
    db = np.zeros(n)
    hh = HALO
    for m in range(1, hh + 1):
        db[hh:n - hh] += STENCIL1[m - 1] * (b[hh + m:n - hh + m] - b[hh - m:n - hh - m])
    return a, b, db / h


def lw_mask_1d(plan: Plan, n: int) -> np.ndarray:
    """Weight of the 4th-order time correction along one padded axis: 1 in the interior,
    tapering to 0 over the first ``plan.lw_taper`` cells of the layer (plain leapfrog beyond)."""
    i = np.arange(n, dtype=np.float64)
    d = np.maximum(np.maximum(plan.pad - i, i - (n - 1 - plan.pad)), 0.0)
    if plan.lw_taper <= 0:
        return (d == 0).astype(np.float64)
    x = np.clip(d / (plan.lw_taper + 1), 0.0, 1.0)
    return 0.5 * (1 + np.cos(math.pi * x))


def cpml_profiles(plan: Plan, device=None, dtype=torch.float32) -> dict[str, torch.Tensor]:
    """The C-PML coefficients on the edge strips and the time-correction mask.

    ``a``/``b``/``db`` are ``(k, 1, S, 1)`` along each axis (x as if transposed), with ``k = 2``
    strips of ``S = pad + 2 HALO`` nodes (the layer, the stencil's reach into the interior and
    its zero frame) when the axis is long enough, else one strip spanning the whole axis
    (``k = 1``).
    """
    nz, nx = plan.padded_shape
    fine = plan.fine
    out = {}
    s = plan.pad + 2 * HALO
    for name, n, hh in (("z", nz, fine.dz_m), ("x", nx, fine.dx_m)):
        prof = _cpml_1d(plan, n, hh)
        if n >= 2 * s:
            prof = [np.stack((p[:s], p[n - s:])) for p in prof]
        else:
            prof = [p[None] for p in prof]
        for key, p in zip(("a", "b", "db"), prof, strict=True):
            out[key + name] = torch.as_tensor(p[:, None, :, None], dtype=dtype, device=device)
    mask = np.outer(lw_mask_1d(plan, nz), lw_mask_1d(plan, nx))
    out["lw_mask"] = torch.as_tensor(mask, dtype=dtype, device=device)
    inner = np.zeros((nz, nx))
    inner[HALO:nz - HALO, HALO:nx - HALO] = 1.0
    out["inner"] = torch.as_tensor(inner, dtype=dtype, device=device)
    return out


def pml_state(prof: dict[str, torch.Tensor], batch: int, nz: int, nx: int, make: Callable
              ) -> tuple[torch.Tensor, ...]:
    """``psi_z, zeta_z`` ``(kz, B, S, nx)`` and ``psi_x, zeta_x`` ``(kx, B, S, nz)`` (the x
    strips of the transposed field) from ``make(*shape)`` (e.g. ``torch.zeros``)."""
    kz, sz = prof["az"].shape[0], prof["az"].shape[-2]
    kx, sx = prof["ax"].shape[0], prof["ax"].shape[-2]
    return (make(kz, batch, sz, nx), make(kz, batch, sz, nx), make(kx, batch, sx, nz),
            make(kx, batch, sx, nz))


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
              checkpoint: bool | None = None, compile: bool = False,
              native: bool = False) -> torch.Tensor:
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
    native : bool
        Run the stretches without a gradient (a checkpointed gradient's forward segments) in
        :func:`seisfno.physics.native.run_segment` (CPU, float32; the caller checks it is
        available); their recomputation with a gradient uses the PyTorch step.

    Returns
    -------
    Tensor, (len(record_steps), B, nz, nx)
        ``u`` at the output nodes at the recorded steps, time-major (so that the time filter of
        lowpass decimation is a plain matrix product, with no copy to reorder the axes).
    """
    if record_steps is None:
        record_steps = np.arange(plan.nt_out) * plan.steps_per_output
    record = np.zeros(plan.n_steps, dtype=bool)
    record[np.asarray(record_steps)] = True
    fine, p, r = plan.fine, plan.pad, plan.refine
    sl = (slice(None), slice(p, p + fine.nz, r), slice(p, p + fine.nx, r))
    out_shape = plan.grid.shape
    prof = cpml_profiles(plan, v2.device, v2.dtype)
    step = _stepper(compile)
    args = (prof["lw_mask"], prof["inner"], prof["az"], prof["bz"], prof["dbz"], prof["ax"],
            prof["bx"], prof["dbx"], plan.dt_s, 1.0 / fine.dz_m, 1.0 / fine.dx_m)
    batch = max(v2.shape[0], src.shape[0])
    nz, nx = plan.padded_shape
    u = torch.zeros((batch, nz, nx), dtype=v2.dtype, device=v2.device)
    state = (u, torch.zeros_like(u), *pml_state(prof, batch, nz, nx, u.new_zeros))
    # No source on the never-updated frame (a spread reaches it only with a layer under 3
    # cells): every field the Laplacian sees then vanishes there, as _FrameLaplacian assumes.
    src = src * prof["inner"]

    def run(start: int, stop: int, v2: torch.Tensor, src: torch.Tensor, *state):
        grad = torch.is_grad_enabled() and any(t.requires_grad for t in (v2, src, *state))
        if native and not grad:
            from .native import run_segment

            return run_segment(plan, v2, src, wavelet[start:stop], wavelet_tt[start:stop],
                               record[start:stop], state)
        with _compile_scope(compile):
            return _steps(step, state, v2, src, wavelet, wavelet_tt, args, record, sl,
                          range(start, stop), grad, out_shape)

    if checkpoint is None:
        checkpoint = torch.is_grad_enabled() and (v2.requires_grad or src.requires_grad)
    if checkpoint:
        seg = max(1, math.isqrt(plan.n_steps))
        bounds = [(a, min(a + seg, plan.n_steps)) for a in range(0, plan.n_steps, seg)]
        return _Checkpointed.apply(run, bounds, state, v2, src)
    *_, rec = run(0, plan.n_steps, v2, src, *state)
    return rec


def _steps(step: Callable, state: tuple, v2, src, wavelet, wavelet_tt, args: tuple,
           record: np.ndarray, sl: tuple, steps: range, grad: bool, out_shape: tuple) -> tuple:
    """The PyTorch time loop over ``steps``: ``(*state, recorded frames)``.

    Without a gradient the frames are copied into one buffer, so each step's full field is freed
    at once (kept as views, they held every step's field alive: ~300 MB for 8 quick shots, and a
    cold cache); with one, autograd keeps the fields anyway.
    """
    batch = state[0].shape[0]
    buf = None if grad else state[0].new_empty((int(record[steps.start:steps.stop].sum()),
                                                batch, *out_shape))
    recs, j = [], 0
    for n in steps:
        if record[n] and grad:
            recs.append(state[0][sl])
        elif record[n]:
            buf[j].copy_(state[0][sl])
            j += 1
        state = step(*state, v2, src, wavelet[n], wavelet_tt[n], *args)
    if grad:  # a segment may record nothing (output samples sparser than the segments)
        buf = torch.stack(recs, 0) if recs else state[0][sl][None][:0]
    return (*state, buf)


class _Checkpointed(torch.autograd.Function):
    """Time stepping that stores only each segment's starting state (~sqrt(n) of them).

    The backward pass recomputes one segment at a time, last first, and chains the state
    gradients through ``torch.autograd.grad``; so memory grows as sqrt(n_steps) wavefields, and
    ``torch.autograd.grad`` and ``gradcheck`` work (torch's reentrant checkpoint refuses them,
    and its non-reentrant one kept nearly every step on torch 2.13: 7.1 GB against 0.8 GB here
    for 8 quick-preset shots).
    """

    @staticmethod
    def forward(ctx, run, bounds, state, v2, src):  # noqa: D102
        starts, recs = [], []
        with torch.no_grad():
            for a, b in bounds:
                starts.append(state)
                *state, rec = run(a, b, v2, src, *state)
                recs.append(rec)
        ctx.run, ctx.bounds, ctx.starts = run, bounds, starts
        ctx.counts = [r.shape[0] for r in recs]
        ctx.save_for_backward(v2, src)
        return torch.cat(recs, 0)

    @staticmethod
    def backward(ctx, grad_rec):  # noqa: D102
        v2, src = ctx.saved_tensors
        need_v2, need_src = ctx.needs_input_grad[3], ctx.needs_input_grad[4]
        g_v2 = torch.zeros_like(v2) if need_v2 else None
        g_src = torch.zeros_like(src) if need_src else None
        g_state = None
        offsets = np.cumsum([0, *ctx.counts])
        for k in range(len(ctx.bounds) - 1, -1, -1):
            a, b = ctx.bounds[k]
            with torch.enable_grad():
                st = [t.detach().requires_grad_() for t in ctx.starts[k]]
                v2_ = v2.detach().requires_grad_(need_v2)
                src_ = src.detach().requires_grad_(need_src)
                *out_state, rec = ctx.run(a, b, v2_, src_, *st)
                outs, grads = [rec], [grad_rec[offsets[k]:offsets[k + 1]]]
                if g_state is not None:
                    for o, g in zip(out_state, g_state, strict=True):
                        if g is not None:
                            outs.append(o)
                            grads.append(g)
                inputs = [*st] + ([v2_] if need_v2 else []) + ([src_] if need_src else [])
                got = torch.autograd.grad(outs, inputs, grads, allow_unused=True)
            g_state = got[:len(st)]
            rest = list(got[len(st):])
            if need_v2 and rest[0] is not None:
                g_v2 += rest[0]
            if need_src and rest[-1] is not None:
                g_src += rest[-1]
        return None, None, None, g_v2, g_src
