"""The acoustic solver: one interface, interchangeable backends.

>>> from seisfno.physics import AcousticSolver, get_preset, von_karman, sample_rng
>>> preset = get_preset("quick")
>>> solver = AcousticSolver.from_preset(preset)
>>> v = von_karman(preset.grid, sample_rng(0, 0))
>>> u = solver(v, [5000.0, 3000.0])          # (nt_out, nz, nx), sample k at k * dt_out
"""

from __future__ import annotations

import functools
import itertools
import math
import shutil
import sys
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from .._errors import SeisfnoError
from . import fd, native
from .grid import Grid
from .plan import Plan, make_plan
from .presets import Preset
from .velocity import validate_velocity
from .wavelets import ricker, ricker_second_derivative


class Backend(Protocol):
    """A wave-equation engine: ``run(plan, v (B, nz, nx), sources (B, 2)) -> (B, nt, nz, nx)``."""

    name: str

    def run(self, plan: Plan, velocity: torch.Tensor, sources_xz_m: np.ndarray) -> torch.Tensor:
        ...


#: Default :attr:`TorchBackend.cpu_batch_cells`. Measured on a 2-core AMD EPYC (2026-12-03, per
#: simulation, 1 and 2 threads): ``paper`` (169 k padded cells a simulation) ran 1.7-2.0x faster
#: one simulation per call than 16 at once, and 2 or 4 per call gained little; ``quick`` (25 k)
#: ran 1.7-1.8x faster 4 per call than 32 at once, and 8 per call was 1.5x slower than 4 at one
#: thread. So: about four ``quick`` simulations, or one ``paper``, per call.
CPU_BATCH_CELLS: int | None = 110_000


@dataclass
class TorchBackend:
    """Our pure-PyTorch finite differences (:mod:`seisfno.physics.fd`), CPU or CUDA.

    Parameters
    ----------
    device : str or torch.device, optional
        Default: the device of the velocity tensor.
    compile : bool, optional
        ``torch.compile`` the time step. Default: on CUDA; on CPU for runs whose work (cells x
        steps x batch) is at least ``compile_min_cell_updates`` when a C compiler is on the PATH
        (inductor, after a one-off compile per process and shape of ~10-40 s; compiled against
        eager and deepwave: ``benchmarks/solver_cpu.py``). The eager step is the oracle it is
        tested against, forward and gradient.
    checkpoint : bool, optional
        Trade compute for memory in gradients (default: whenever a gradient is needed).
    cpu_batch_cells : int, optional
        On the CPU and without a gradient, a batch is simulated in near-equal chunks of at
        most this many padded grid cells (at least one simulation each; at most two chunk
        sizes, each compiled once). A step streams several fields of every simulation in the
        batch; chunks keep them in the cache. ``None``: the whole batch at once. Eagerly the
        results are those of the whole batch to round-off; compiled, each chunk size runs its
        own kernel.
    native : bool, optional
        Run the forward time loop without a gradient, on the CPU in float32, as one C function
        (:mod:`seisfno.physics.native`: the same scheme, built on first use; 2-3x faster than
        the compiled step and without its start-up). Default: when it builds (a C compiler is
        on the PATH and ``SEISFNO_NATIVE`` is not ``0``); ``True`` requires it for CPU float32
        runs (CUDA and float64 always use the PyTorch step). A gradient runs
        its checkpointed forward segments there too, and recomputes them with the PyTorch step
        for the backward pass.
    """

    device: str | torch.device | None = None
    compile: bool | None = None
    checkpoint: bool | None = None
    compile_min_cell_updates: float = 5e7
    cpu_batch_cells: int | None = CPU_BATCH_CELLS
    native: bool | None = None
    name: str = field(default="torch", init=False)

    def _use_compile(self, dev: torch.device, work: float) -> bool:
        if self.compile is not None:
            return self.compile
        if dev.type == "cuda":
            return True
        return (dev.type == "cpu" and work >= self.compile_min_cell_updates
                and _have_c_compiler())

    def _use_native(self, dev: torch.device, dtype: torch.dtype) -> bool:
        if self.native is False or dev.type != "cpu" or dtype != torch.float32:
            return False
        if native.available():
            return True
        if self.native:
            raise SeisfnoError("the native solver loop is not available (no C compiler on the "
                               "PATH, SEISFNO_NATIVE=0, or its build failed; see stderr)")
        return False

    def _chunks(self, dev: torch.device, plan: Plan, batch: int, grad: bool
                ) -> list[tuple[int, int]]:
        """``(start, stop)`` of the simulations of each :func:`fd.propagate` call: near-equal
        chunks of at most ``cpu_batch_cells`` cells (at most two sizes, so two compiled shapes)."""
        cells = plan.padded_shape[0] * plan.padded_shape[1]
        if dev.type != "cpu" or self.cpu_batch_cells is None or grad or batch <= 1:
            return [(0, batch)]
        n = math.ceil(batch / max(1, self.cpu_batch_cells // cells))
        bounds = np.cumsum([0] + [batch // n + (k < batch % n) for k in range(n)])
        return [(int(a), int(b)) for a, b in itertools.pairwise(bounds)]

    def run(self, plan: Plan, velocity: torch.Tensor, sources_xz_m: np.ndarray) -> torch.Tensor:
        dev = torch.device(self.device) if self.device is not None else velocity.device
        velocity = velocity.to(dev)
        dtype = velocity.dtype
        v2 = fd.fine_velocity(plan, velocity) ** 2
        src = fd.source_field(plan, sources_xz_m, dev, dtype)
        t = torch.arange(plan.n_steps, dtype=torch.float64) * plan.dt_s
        wav = ricker(t, plan.f_peak_hz).to(dev, dtype)
        wav_tt = ricker_second_derivative(t, plan.f_peak_hz).to(dev, dtype)
        work = float(plan.cell_updates) * max(velocity.shape[0], len(sources_xz_m))
        compile_ = self._use_compile(dev, work)
        mat = fd.lowpass_matrix(plan)
        steps = np.flatnonzero(mat.any(axis=0))
        grad = torch.is_grad_enabled() and (v2.requires_grad or src.requires_grad)
        weights = torch.as_tensor(mat[:, steps], dtype=dtype, device=dev)
        use_native = self._use_native(dev, dtype)
        outs = []
        for a, b in self._chunks(dev, plan, max(v2.shape[0], src.shape[0]), grad):
            v2_, src_ = v2 if v2.shape[0] == 1 else v2[a:b], src if src.shape[0] == 1 else src[a:b]
            if use_native and not grad:
                rec = native.propagate(plan, v2_, src_, wav, wav_tt, steps)
            else:  # a gradient: its forward segments in the C loop when there
                rec = _propagate_checked(plan, v2_, src_, wav, wav_tt, steps, self.checkpoint,
                                         compile_, use_native)
            if plan.decimation != "point":
                rec = (weights @ rec.reshape(len(steps), -1)).reshape(plan.nt_out, *rec.shape[1:])
            outs.append(rec.transpose(0, 1))
        return outs[0].contiguous() if len(outs) == 1 else torch.cat(outs, 0)


#: (batch, internal grid, steps, dtype, device type) whose compiled step failed (see below).
_COMPILE_FAILED: set[tuple] = set()


def _propagate_checked(plan: Plan, v2, src, wav, wav_tt, steps, checkpoint, compile_: bool,
                       native_: bool = False) -> torch.Tensor:
    """:func:`fd.propagate`, compiled when asked, with the eager step as the fallback.

    Why: the compiled step gave NaN for some batch sizes (1 and 8 on ``quick``, 2026-12-02,
    torch 2.13) in runs that emulated AVX2 (``ATEN_CPU_CAPABILITY=avx2``) on an AVX-512 machine
    and shared torch's compile cache with runs that did not; the same mix later aborted with heap
    corruption, which :mod:`seisfno._isa` now prevents. A compiled result that is not finite is
    still recomputed eagerly, said once on stderr, and that shape runs eagerly from then on, as a
    guard against any such compiler fault. Costs one ``isfinite`` pass over the output. A shape
    past the step's limit of compiled variants (:data:`fd.RECOMPILE_LIMIT`) runs eagerly too.
    """
    batch = max(v2.shape[0], src.shape[0])  # one model may serve many sources
    key = (batch, *v2.shape[-2:], plan.n_steps, v2.dtype, v2.device.type)
    compile_ = compile_ and key not in _COMPILE_FAILED
    try:
        rec = fd.propagate(plan, v2, src, wav, wav_tt, record_steps=steps,
                           checkpoint=checkpoint, compile=compile_, native=native_)
        why = None if not compile_ or bool(torch.isfinite(rec).all()) else "gave non-finite values"
    except torch._dynamo.exc.FailOnRecompileLimitHit:
        why = f"reached its limit of {fd.RECOMPILE_LIMIT} compiled variants"
    if why is not None:
        _COMPILE_FAILED.add(key)
        print(f"seisfno: the compiled solver step {why} for batch {batch} on a "
              f"{v2.shape[-2]} x {v2.shape[-1]} grid; recomputed with the eager step (used for "
              "this shape from now on)", file=sys.stderr)
        rec = fd.propagate(plan, v2, src, wav, wav_tt, record_steps=steps,
                           checkpoint=checkpoint, compile=False, native=native_)
    return rec


@functools.lru_cache(maxsize=1)
def _have_c_compiler() -> bool:
    return any(shutil.which(c) for c in ("gcc", "cc", "clang"))


def get_backend(backend: str | Backend, device: str | torch.device | None = None) -> Backend:
    """A backend by name (``torch``, ``deepwave``) or the object itself."""
    if not isinstance(backend, str):
        return backend
    if backend == "torch":
        return TorchBackend(device=device)
    if backend == "deepwave":
        from .deepwave_backend import DeepwaveBackend

        return DeepwaveBackend(device=device)
    raise SeisfnoError(f"unknown backend {backend!r}; choose 'torch' or 'deepwave'")


class AcousticSolver:
    """Solve the 2-D constant-density acoustic wave equation on an output grid.

    Parameters
    ----------
    grid : Grid
        Output grid: models are given and wavefields returned on its nodes.
    f_peak_hz : float
        Ricker peak frequency (the wavelet peaks at ``1.5 / f_peak_hz``).
    dt_out_s, nt_out : float, int
        Output sampling (sample k at ``k * dt_out_s``).
    velocity_range_mps : (float, float), optional
        The range to plan for. Fixed ranges give identical discretizations for every model (what
        datasets need); by default each call plans for its own models' range.
    decimation : {"point", "lowpass"}
    backend : str or Backend
    device : str, optional
    **plan_options
        Passed to :func:`~seisfno.physics.plan.make_plan` (``points_per_wavelength``, ...).
    """

    def __init__(self, grid: Grid, f_peak_hz: float, dt_out_s: float, nt_out: int, *,
                 velocity_range_mps: tuple[float, float] | None = None,
                 decimation: str = "point", backend: str | Backend = "torch",
                 device: str | torch.device | None = None, **plan_options) -> None:
        self.grid = grid
        self.f_peak_hz = f_peak_hz
        self.dt_out_s = dt_out_s
        self.nt_out = nt_out
        self.velocity_range_mps = velocity_range_mps
        self.decimation = decimation
        self.backend = get_backend(backend, device)
        self.device = device
        self.plan_options = plan_options
        if velocity_range_mps is not None:  # fail early on impossible setups
            self.plan_for(*velocity_range_mps)

    @classmethod
    def from_preset(cls, preset: Preset, **kwargs) -> AcousticSolver:
        kwargs.setdefault("velocity_range_mps", preset.velocity.clip_mps)
        kwargs.setdefault("decimation", preset.decimation)
        return cls(preset.grid, preset.f_peak_hz, preset.dt_out_s, preset.nt_out, **kwargs)

    def plan_for(self, v_min_mps: float, v_max_mps: float) -> Plan:
        return make_plan(self.grid, self.f_peak_hz, self.dt_out_s, self.nt_out, v_min_mps,
                         v_max_mps, decimation=self.decimation, **self.plan_options)

    def plan(self, velocity: torch.Tensor | np.ndarray) -> Plan:
        """The plan used for these models (checks they fit a fixed velocity range)."""
        t = torch.as_tensor(velocity)
        lo, hi = float(t.min()), float(t.max())
        if self.velocity_range_mps is None:
            return self.plan_for(lo, hi)
        v_min, v_max = self.velocity_range_mps
        if lo < v_min * (1 - 1e-6) or hi > v_max * (1 + 1e-6):
            raise SeisfnoError(
                f"velocities span [{lo:.0f}, {hi:.0f}] m/s, outside the range "
                f"[{v_min:.0f}, {v_max:.0f}] m/s this solver was planned for")
        return self.plan_for(v_min, v_max)

    def __call__(self, velocity: torch.Tensor | np.ndarray,
                 sources_xz_m: np.ndarray | list | tuple) -> torch.Tensor:
        """Wavefields for models ``(nz, nx)`` or ``(B, nz, nx)`` and sources ``(2,)`` or ``(B, 2)``.

        A single model is shared by all sources. Returns ``(B, nt_out, nz, nx)``, or
        ``(nt_out, nz, nx)`` for one model and one source. Differentiable in ``velocity``
        (torch backend and deepwave).
        """
        v = torch.as_tensor(velocity)
        if not v.is_floating_point():
            v = v.float()
        validate_velocity(v.detach(), self.grid)
        src = self.grid.check_sources(np.asarray(sources_xz_m, dtype=np.float64))
        single = v.ndim == 2 and src.ndim == 1
        v = v.reshape(-1, *self.grid.shape)
        src = src.reshape(-1, 2)
        if v.shape[0] not in (1, src.shape[0]):
            raise SeisfnoError(f"{v.shape[0]} models but {src.shape[0]} sources")
        plan = self.plan(v.detach())
        out = self.backend.run(plan, v, src)
        return out[0] if single else out


def simulate(velocity: np.ndarray | torch.Tensor, source_xz_m, preset: str | Preset = "quick",
             backend: str | Backend = "torch", device: str | None = None,
             **overrides) -> np.ndarray:
    """One wavefield ``(nt, nz, nx)`` float32 (a convenience over :class:`AcousticSolver`).

    ``overrides`` replace preset fields (``f_peak_hz``, ``dt_out_s``, ``nt_out``,
    ``spacing_m``, ``decimation``). The model's grid is the preset's with the model's shape.
    """
    from .presets import get_preset

    v = np.asarray(velocity, dtype=np.float32) if not torch.is_tensor(velocity) else velocity
    p = get_preset(preset, **overrides)
    if tuple(v.shape) != p.grid.shape:
        if v.ndim != 2:
            raise SeisfnoError(f"velocity must be 2-D (nz, nx), got shape {tuple(v.shape)}")
        p = p.replace(grid=Grid(v.shape[0], v.shape[1], p.grid.dz_m, p.grid.dx_m)) \
            if "spacing_m" in overrides else p.replace(
                grid=Grid.from_extent(v.shape[0], v.shape[1], p.grid.depth_m, p.grid.width_m))
    solver = AcousticSolver(p.grid, p.f_peak_hz, p.dt_out_s, p.nt_out,
                            decimation=p.decimation, backend=backend, device=device)
    with torch.no_grad():
        return solver(v, source_xz_m).cpu().numpy().astype(np.float32)
