"""Full-waveform inversion with a solver, a neural operator, or both (hybrid).

The paper's protocol (Yang et al. 2021, section 6) is the default of :func:`invert`:
observations at every grid node from 20 sources, noise-free; a homogeneous 3000 m/s start;
loss = sum of squared wavefield differences; gradient by reverse-mode autodiff through the
forward model; Adam with learning rate 0.01; 1000 iterations; no regularization.

**Units of the learning rate.** The optimized parameter is the velocity in **km/s**, so Adam's
``lr = 0.01`` moves each node by about 0.01 km/s = **10 m/s per iteration** at most (Adam's step
is ~``lr`` per parameter whatever the gradient's scale).

**Loss scale.** We report the data loss ``sum((d_pred - d_obs)**2)`` in the data's units. Adam
is invariant to a constant scale of the loss, so the gradient is taken of that loss divided by
``sum(d_obs**2)`` (this keeps Adam's ``eps`` negligible for the tiny amplitudes of a point
source); the Laplacian penalty is added to that normalised loss.

**No inverse crime.** When a true model is given, the observations are always computed by
:class:`~seisfno.physics.AcousticSolver` (its fine internal grid, planned for the preset's clip
range), never by the forward model being inverted; see :func:`observe`.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .._errors import SeisfnoError
from ..physics import AcousticSolver, Preset, homogeneous, validate_velocity
from .forward import ForwardModel
from .survey import (
    MIN_SENSIBLE_SOURCES,
    add_noise,
    default_sources,
    lowpass,
    receiver_mask,
    record,
)

#: The paper's starting model, m/s.
START_MPS = 3000.0


def model_misfit(v: np.ndarray | torch.Tensor, v_true: np.ndarray | torch.Tensor) -> float:
    """Relative L2 model misfit ``||v - v_true||_2 / ||v_true||_2`` (dimensionless)."""
    a = torch.as_tensor(v).detach().double().cpu()
    b = torch.as_tensor(v_true).detach().double().cpu()
    return float(torch.linalg.vector_norm(a - b) / torch.linalg.vector_norm(b))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _device(forward: ForwardModel) -> torch.device:
    return torch.device(getattr(forward, "device", None) or "cpu")


def _batches(n: int, size: int | None) -> list[slice]:
    size = n if not size else max(1, int(size))
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def check_sources(sources_xz_m: Any, preset: Preset) -> np.ndarray:
    """Validate ``(S, 2)`` sources (metres) in the domain; ``S >= 1``, a warning if few."""
    if sources_xz_m is None:
        return default_sources(preset.grid, 20)
    s = np.asarray(sources_xz_m, dtype=np.float64)
    if s.ndim == 1 and s.shape == (2,):
        s = s[None]
    if s.ndim != 2 or s.shape[1] != 2:
        raise SeisfnoError(f"sources must be an (S, 2) array of (x, z) metres, got {s.shape}")
    if s.shape[0] < 1:
        raise SeisfnoError("FWI needs at least one source")
    if s.shape[0] < MIN_SENSIBLE_SOURCES:
        warnings.warn(f"only {s.shape[0]} source(s): FWI with fewer than "
                      f"{MIN_SENSIBLE_SOURCES} illuminates the model poorly", stacklevel=3)
    return preset.grid.check_sources(s)


def observation_solver(preset: Preset, true_velocity: np.ndarray | torch.Tensor | None = None,
                       *, device: str | torch.device | None = None,
                       **plan_options) -> AcousticSolver:
    """The solver that makes observations: the preset's clip range, widened to the true model's."""
    lo, hi = preset.velocity.clip_mps
    if true_velocity is not None:
        t = torch.as_tensor(true_velocity)
        lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
    return AcousticSolver.from_preset(preset, velocity_range_mps=(lo, hi), device=device,
                                      **plan_options)


def observe(true_velocity: np.ndarray | torch.Tensor, sources_xz_m: np.ndarray, preset: Preset,
            *, solver: AcousticSolver | None = None, device: str | torch.device | None = None,
            batch_sources: int | None = None) -> torch.Tensor:
    """Noise-free observations ``(S, nt, nz, nx)`` from the finite-difference solver.

    Parameters
    ----------
    true_velocity : (nz, nx) m/s
    sources_xz_m : (S, 2) metres
    preset : Preset
    solver : AcousticSolver, optional
        Default: :func:`observation_solver` (the fine internal grid the datasets use).
    batch_sources : int, optional
        Sources per solver call (bounds memory).
    """
    v = torch.as_tensor(np.asarray(true_velocity, dtype=np.float32)
                        if not torch.is_tensor(true_velocity) else true_velocity).float()
    validate_velocity(v, preset.grid, name="true velocity")
    if solver is None:
        solver = observation_solver(preset, v, device=device)
    if not isinstance(solver, AcousticSolver):
        raise SeisfnoError("observations must be made by an AcousticSolver (no inverse crime)")
    if device is not None:
        v = v.to(device)
    src = np.asarray(sources_xz_m, dtype=np.float64).reshape(-1, 2)
    with torch.no_grad():
        parts = [solver(v, src[b]).reshape(-1, preset.nt_out, *preset.grid.shape)
                 for b in _batches(len(src), batch_sources)]
    return torch.cat(parts, 0)


def gaussian_smooth(x: torch.Tensor, sigma_m: float, dz_m: float, dx_m: float) -> torch.Tensor:
    """Smooth a ``(nz, nx)`` field with a Gaussian of ``sigma_m`` metres (edge-replicated)."""
    if not sigma_m or sigma_m <= 0:
        return x
    out = x[None, None]
    for axis, h in ((0, dz_m), (1, dx_m)):
        s = sigma_m / h
        r = max(1, math.ceil(3 * s))
        k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=x.dtype, device=x.device) / s) ** 2)
        k = k / k.sum()
        if axis == 0:
            out = F.conv2d(F.pad(out, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
        else:
            out = F.conv2d(F.pad(out, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    return out[0, 0]


def laplacian_penalty(m: torch.Tensor) -> torch.Tensor:
    """``sum((5-point Laplacian of m)**2)`` over interior nodes, in node units (m in km/s)."""
    lap = (m[2:, 1:-1] + m[:-2, 1:-1] + m[1:-1, 2:] + m[1:-1, :-2] - 4 * m[1:-1, 1:-1])
    return (lap**2).sum()


@dataclass
class InversionResult:
    """What an inversion returns.

    Attributes
    ----------
    forward : str
        The forward model's name.
    velocity : ndarray, (nz, nx), m/s
        The final model (after the last step; the best one if a non-finite value stopped it).
    best_velocity : ndarray, (nz, nx), m/s
        The model with the lowest data loss seen.
    best_iteration : int
        Steps taken before ``best_velocity`` (0 = the start model).
    start_velocity : ndarray, (nz, nx), m/s
    loss : ndarray, (iterations,)
        Data loss ``sum((d_pred - d_obs)**2)`` at the model after k steps, k = 0..iterations-1.
    misfit : ndarray or None, (iterations + 1,)
        Model misfit after k steps, k = 0..iterations (``None`` without a true model).
    time_s : ndarray, (iterations + 1,)
        Cumulative wall-clock seconds after k steps (starts at ``time_offset_s``).
    iterations : int
        Steps completed.
    seconds_per_iteration : float
        Mean wall time of an iteration, the first (warm-up, compilation) excluded when there
        are two or more; CUDA is synchronized before each clock reading.
    first_iteration_s : float
    stopped_reason : str
        ``"completed"`` or why it stopped early.
    data_norm : float
        ``sum(d_obs**2)``: divide ``loss`` by it for a relative data misfit.
    observations : str
        Who made the observations (``solver:...`` or ``given``).
    observation_s : float
        Wall time spent making them (not in ``time_s``).
    final_misfit : float or None
        Model misfit of ``velocity``.
    checks : ndarray or None, (n, 2)
        ``(iteration, value)`` of each check (``invert(..., check=)``), ``None`` without one.
    """

    forward: str
    velocity: np.ndarray
    best_velocity: np.ndarray
    best_iteration: int
    start_velocity: np.ndarray
    loss: np.ndarray
    misfit: np.ndarray | None
    time_s: np.ndarray
    iterations: int
    seconds_per_iteration: float
    first_iteration_s: float
    stopped_reason: str
    data_norm: float
    observations: str = "given"
    observation_s: float = 0.0
    final_misfit: float | None = None
    options: dict = field(default_factory=dict)
    checks: np.ndarray | None = None

    @property
    def model_misfit(self) -> float | None:
        """Misfit of :attr:`velocity`, the final model (``None`` without a true model)."""
        return self.final_misfit

    @property
    def start_misfit(self) -> float | None:
        return None if self.misfit is None else float(self.misfit[0])

    @property
    def data_misfit(self) -> float | None:
        """Relative data misfit ``loss / sum(d_obs**2)`` at the last evaluated model."""
        return float(self.loss[-1] / self.data_norm) if len(self.loss) else None

    def summary(self) -> dict:
        """The headline numbers as a JSON-ready dict."""
        return {
            "forward": self.forward, "model_misfit": self.model_misfit,
            "start_misfit": self.start_misfit,
            "best_misfit": None if self.misfit is None else float(self.misfit[self.best_iteration]),
            "best_iteration": self.best_iteration,
            "seconds_per_iteration": self.seconds_per_iteration,
            "first_iteration_s": self.first_iteration_s, "iterations": self.iterations,
            "data_loss": float(self.loss[-1]) if len(self.loss) else None,
            "data_misfit": self.data_misfit, "stopped_reason": self.stopped_reason,
            "observations": self.observations, "observation_s": self.observation_s,
            "total_s": float(self.time_s[-1] - self.time_s[0]),
            "checks": None if self.checks is None else len(self.checks),
        }


def _prepare_observed(forward: ForwardModel, sources: np.ndarray, observed, true_velocity,
                      obs_solver, batch_sources) -> tuple[torch.Tensor, str, float]:
    preset = forward.preset
    shape = (len(sources), preset.nt_out, *preset.grid.shape)
    if observed is not None:
        d = torch.as_tensor(np.asarray(observed) if not torch.is_tensor(observed) else observed)
        if tuple(d.shape) != shape:
            raise SeisfnoError(f"observations have shape {tuple(d.shape)}, but {len(sources)} "
                               f"sources on this preset need {shape} (S, nt, nz, nx)")
        if not torch.isfinite(d).all():
            raise SeisfnoError("observations contain NaN or infinite values")
        return d.float().detach(), "given", 0.0
    if true_velocity is None:
        raise SeisfnoError("FWI needs observations or a true model to simulate them")
    dev = _device(forward)
    t0 = time.perf_counter()
    solver = obs_solver or observation_solver(preset, true_velocity, device=dev)
    d = observe(true_velocity, sources, preset, solver=solver, device=dev,
                batch_sources=batch_sources)
    _sync(dev)
    plan = solver.plan(torch.as_tensor(true_velocity))
    who = (f"solver:{solver.backend.name} refine={plan.refine} "
           f"range=[{plan.v_min_mps:.0f},{plan.v_max_mps:.0f}]")
    return d, who, time.perf_counter() - t0


def invert(forward: ForwardModel, sources: np.ndarray | None = None,
           observed: np.ndarray | torch.Tensor | None = None,
           true_velocity: np.ndarray | torch.Tensor | None = None, *,
           start: np.ndarray | torch.Tensor | None = None, iterations: int = 1000,
           lr: float = 0.01, receivers: str | int | np.ndarray = "all",
           noise_snr_db: float | None = None, noise_seed: int = 0,
           laplacian_weight: float = 0.0, smooth_grad_m: float = 0.0,
           bounds_mps: tuple[float, float] | None = None, lowpass_hz: float | None = None,
           batch_sources: int | None = None, obs_solver: AcousticSolver | None = None,
           callback: Callable[[int, float, float | None], None] | None = None,
           time_offset_s: float = 0.0, time_limit_s: float | None = None,
           check: Callable[[torch.Tensor, float | None], float] | None = None,
           check_every: int = 10, check_patience: int = 3) -> InversionResult:
    """Invert wavefield data for a velocity model with Adam (the paper's FWI).

    Parameters
    ----------
    forward : ForwardModel
        :class:`~.forward.SolverForward`, :class:`~.forward.OperatorForward` or alike.
    sources : ndarray, (S, 2), metres, optional
        Default: the paper's 20 (:func:`~.survey.default_sources`).
    observed : array, (S, nt, nz, nx), optional
        Observed wavefields at every node (receivers and noise are applied here).
    true_velocity : array, (nz, nx), m/s, optional
        Simulated by the solver when ``observed`` is not given (never by ``forward``); gives
        the model-misfit curve.
    start : array, (nz, nx), m/s, optional
        Default: homogeneous 3000 m/s. Clamped into the bounds.
    iterations : int
        Adam steps (the paper: 1000).
    lr : float
        Adam learning rate **in km/s** (0.01 = ~10 m/s per step; the paper: 0.01).
    receivers : {"all", "surface"}, int, "every:K" or bool mask
        Which nodes record (:func:`~.survey.receiver_mask`).
    noise_snr_db, noise_seed
        White noise on the observations (:func:`~.survey.add_noise`).
    laplacian_weight : float
        Weight of :func:`laplacian_penalty` (velocity in km/s, node units) added to the
        normalised data loss. 0 = none (the paper).
    smooth_grad_m : float
        Gaussian smoothing of the gradient, sigma in metres. 0 = none (the paper).
    bounds_mps : (float, float), optional
        Clamp the model after every step (m/s). Default and limit: ``forward.velocity_range_mps``.
    lowpass_hz : float, optional
        Compare observed and predicted data after the same zero-phase low-pass in time
        (:func:`~.survey.lowpass`, -3 dB at this frequency): the low frequencies are not
        cycle-skipped from a smooth start. Run stages of rising frequency with
        :func:`multiscale`. ``None`` = the full band (the paper).
    batch_sources : int, optional
        Sources per forward call; gradients are accumulated (bounds memory). Default: all.
    obs_solver : AcousticSolver, optional
        The solver making observations from ``true_velocity`` (default :func:`observation_solver`).
    callback : callable, optional
        ``callback(k, loss, misfit)`` after each step.
    time_offset_s : float
        Added to ``time_s`` (for phases of a hybrid run).
    time_limit_s : float, optional
        Stop after the iteration that brings the loop's wall time past this many seconds
        (``stopped_reason`` says so; the result is the model reached).
    check : callable, optional
        Early stopping on an independent measure: ``check(velocity (nz, nx) m/s, lowpass_hz)``
        returns a misfit, lower is better, e.g. the solver's data misfit on a few sources
        (:class:`~.hybrid.SolverCheck`). It runs at the start and every ``check_every`` steps;
        after ``check_patience`` checks without improvement the loop stops (``stopped_reason``
        starts with ``check:``), and in any case the result is the **best-checked** model (the
        last point of ``misfit`` is that model's; a time-limit stop checks the model reached
        first). Its wall time counts in the iterations' time. An operator keeps lowering its
        own data loss after the model has started to get worse (it fits its own errors); this
        stops it there without knowing the true model.

    Returns
    -------
    InversionResult
    """
    preset = forward.preset
    grid = preset.grid
    dev = _device(forward)
    if iterations < 0:
        raise SeisfnoError(f"iterations must be >= 0, got {iterations}")
    if not (lr > 0 and math.isfinite(lr)):
        raise SeisfnoError(f"the learning rate must be positive, got {lr}")
    if laplacian_weight < 0 or smooth_grad_m < 0:
        raise SeisfnoError("the Laplacian weight and the smoothing length must be >= 0")
    if lowpass_hz is not None and not (lowpass_hz > 0 and math.isfinite(lowpass_hz)):
        raise SeisfnoError(f"the low-pass frequency must be positive, got {lowpass_hz} Hz")
    if time_limit_s is not None and not time_limit_s > 0:
        raise SeisfnoError(f"the time limit must be positive, got {time_limit_s} s")
    if check is not None and (check_every < 1 or check_patience < 1):
        raise SeisfnoError("check_every and check_patience must be at least 1")
    src = check_sources(sources, preset)
    if true_velocity is not None:
        validate_velocity(torch.as_tensor(true_velocity), grid, name="true velocity")
    lo, hi = forward.velocity_range_mps
    if bounds_mps is not None:
        blo, bhi = (float(b) for b in bounds_mps)
        if not 0 < blo < bhi:
            raise SeisfnoError(f"bad velocity bounds [{blo}, {bhi}] m/s")
        if blo < lo * (1 - 1e-6) or bhi > hi * (1 + 1e-6):
            raise SeisfnoError(f"bounds [{blo:.0f}, {bhi:.0f}] m/s leave the range "
                               f"[{lo:.0f}, {hi:.0f}] m/s the forward model {forward.name} "
                               f"is valid for")
        lo, hi = blo, bhi
    d_full, who, obs_s = _prepare_observed(forward, src, observed, true_velocity, obs_solver,
                                           batch_sources)
    mask = receiver_mask(grid, receivers)
    dt = preset.dt_out_s
    d = lowpass(add_noise(record(d_full.to(dev), mask), noise_snr_db, noise_seed), dt, lowpass_hz)
    data_norm = float((d.double() ** 2).sum())
    if not data_norm > 0:
        raise SeisfnoError("the observations are all zero at the receivers")

    v0 = homogeneous(grid, START_MPS) if start is None else start
    v0 = torch.as_tensor(np.asarray(v0) if not torch.is_tensor(v0) else v0).float()
    validate_velocity(v0, grid, name="start model")
    v0 = v0.clamp(lo, hi)
    v_true = None if true_velocity is None else torch.as_tensor(true_velocity).float()

    m = torch.nn.Parameter(v0.to(dev) / 1000.0)  # km/s
    opt = torch.optim.Adam([m], lr=lr)
    batches = _batches(len(src), batch_sources)
    losses: list[float] = []
    misfits = [model_misfit(v0, v_true)] if v_true is not None else None
    times = [float(time_offset_s)]
    durations: list[float] = []
    best = (math.inf, v0.clone(), 0)
    reason = "completed"
    final = None
    checks: list[tuple[int, float]] = []
    best_check: tuple[float, torch.Tensor, int] = (math.inf, v0.clone(), 0)
    since_best = 0

    def run_check(step: int) -> None:
        nonlocal best_check, since_best
        with torch.no_grad():
            value = float(check(m.detach() * 1000.0, lowpass_hz))
        checks.append((step, value))
        if value < best_check[0]:
            best_check, since_best = (value, m.detach().cpu() * 1000.0, step), 0
        else:
            since_best += 1

    for k in range(iterations):
        _sync(dev)
        t0 = time.perf_counter()
        if check is not None and k == 0:
            run_check(0)
        opt.zero_grad(set_to_none=True)
        loss = 0.0
        for b in batches:
            r = lowpass(record(forward(m * 1000.0, src[b]), mask), dt, lowpass_hz) - d[b]
            lb = (r**2).sum()
            (lb / data_norm).backward()
            loss += float(lb.detach())
        if laplacian_weight:
            (laplacian_weight * laplacian_penalty(m)).backward()
        if not math.isfinite(loss):
            reason = f"non-finite data loss at iteration {k}; kept the best model"
            final = best_check[1] if checks else best[1]
            break
        if loss < best[0]:
            best = (loss, m.detach().cpu() * 1000.0, k)
        losses.append(loss)
        if smooth_grad_m and m.grad is not None:
            m.grad = gaussian_smooth(m.grad, smooth_grad_m, grid.dz_m, grid.dx_m)
        opt.step()
        with torch.no_grad():
            if not torch.isfinite(m).all():
                reason = f"non-finite model after iteration {k}; kept the best model"
                final = best_check[1] if checks else best[1]
                break
            m.clamp_(lo / 1000.0, hi / 1000.0)
        if check is not None and ((k + 1) % check_every == 0 or k + 1 == iterations):
            run_check(k + 1)
        _sync(dev)
        durations.append(time.perf_counter() - t0)
        times.append(times[-1] + durations[-1])
        v_now = m.detach().cpu() * 1000.0
        if misfits is not None:
            misfits.append(model_misfit(v_now, v_true))
        if callback is not None:
            callback(k, loss, misfits[-1] if misfits is not None else None)
        if check is not None and since_best >= check_patience and k + 1 < iterations:
            reason = (f"check: no improvement in {check_patience} checks; kept the model of "
                      f"iteration {best_check[2]}")
            break
        if time_limit_s is not None and sum(durations) >= time_limit_s and k + 1 < iterations:
            reason = f"time limit of {time_limit_s:g} s reached after {k + 1} iterations"
            if checks and checks[-1][0] != k + 1:  # judge the model reached too
                t1 = time.perf_counter()
                run_check(k + 1)
                durations[-1] += time.perf_counter() - t1
                times[-1] = times[-2] + durations[-1]
            break
    done = len(durations)
    if final is None:
        final = m.detach().cpu() * 1000.0 if not checks else best_check[1]
    if checks and misfits is not None and best_check[2] != len(durations):
        # The model in hand after the last step is the best-checked one: the curve's last
        # point says so (the discarded iterates before it stay in the curve).
        misfits[-1] = model_misfit(final, v_true)
    spi = (float(np.mean(durations[1:])) if done >= 2
           else (durations[0] if done else float("nan")))
    return InversionResult(
        forward=forward.name, velocity=final.numpy().astype(np.float32),
        best_velocity=best[1].numpy().astype(np.float32), best_iteration=best[2],
        start_velocity=v0.numpy().astype(np.float32), loss=np.asarray(losses),
        misfit=None if misfits is None else np.asarray(misfits), time_s=np.asarray(times),
        iterations=done, seconds_per_iteration=spi,
        first_iteration_s=durations[0] if done else float("nan"), stopped_reason=reason,
        data_norm=data_norm, observations=who, observation_s=obs_s,
        final_misfit=None if v_true is None else model_misfit(final, v_true),
        options={"lr_kmps": lr, "receivers": receivers if isinstance(receivers, (str, int))
                 else "mask", "noise_snr_db": noise_snr_db, "noise_seed": noise_seed,
                 "laplacian_weight": laplacian_weight, "smooth_grad_m": smooth_grad_m,
                 "lowpass_hz": lowpass_hz, "bounds_mps": [lo, hi], "n_sources": len(src),
                 "batch_sources": batch_sources, "time_limit_s": time_limit_s,
                 "check_every": check_every if check is not None else None,
                 "check_best_iteration": best_check[2] if checks else None},
        checks=np.asarray(checks, dtype=np.float64) if checks else None)


def parse_stages(spec: str) -> list[tuple[float | None, int]]:
    """``"3:100,full:100"`` -> ``[(3.0, 100), (None, 100)]``: a schedule for :func:`multiscale`."""
    out = []
    for part in (p.strip() for p in spec.split(",")):
        f, sep, n = part.partition(":")
        try:
            hz = None if f.strip().lower() == "full" else float(f)
            its = int(n)
        except ValueError:
            hz = its = None
        if not sep or its is None or its < 1 or (hz is not None and not hz > 0):
            raise SeisfnoError(f"bad stage {part!r} in {spec!r}: use HZ:ITERATIONS or "
                               f"full:ITERATIONS with HZ > 0 and ITERATIONS >= 1, e.g. "
                               f"3:100,full:100")
        out.append((hz, its))
    return out


def _ended_normally(reason: str) -> bool:
    """A run that completed, or that its check stopped (a normal end for a stage or a phase)."""
    return reason == "completed" or reason.startswith("check:")


def multiscale(forward: ForwardModel, sources: np.ndarray | None = None,
               observed: np.ndarray | torch.Tensor | None = None,
               true_velocity: np.ndarray | torch.Tensor | None = None, *,
               stages: Sequence[tuple[float | None, int]] = ((2.0, 75), (4.0, 75), (None, 100)),
               obs_solver: AcousticSolver | None = None, batch_sources: int | None = None,
               start: np.ndarray | torch.Tensor | None = None, time_offset_s: float = 0.0,
               **options) -> InversionResult:
    """Frequency continuation: :func:`invert` on a rising low-pass, each stage from the last.

    ``stages`` is a list of ``(lowpass_hz, iterations)``; ``None`` is the full band. Each stage
    starts a fresh Adam from the previous stage's final model; the observations are made once.
    ``time_limit_s`` (in ``options``) bounds all the stages together: the stages it leaves no
    time for are not run (``options["stages"]`` lists those that ran).
    From the homogeneous start the paper's 8 Hz data are cycle-skipped: full-band FWI first moves
    the model *away* from the truth (BENCHMARKS.md), while a 2 Hz stage does not. Options are
    those of :func:`invert` and apply to every stage.

    Returns
    -------
    InversionResult
        The stages joined: ``loss``, ``misfit`` and ``time_s`` run on across stages (each
        stage's loss is in its own band), ``best_velocity`` is the lowest-loss model of the last
        stage, and ``options["stages"]`` holds the schedule and each stage's iteration count.
    """
    stages = [(None if f is None else float(f), int(n)) for f, n in stages]
    if not stages or any(n < 0 for _, n in stages):
        raise SeisfnoError(f"stages must be a non-empty list of (lowpass_hz, iterations >= 0), "
                           f"got {stages}")
    for key in ("lowpass_hz", "iterations"):
        if key in options:
            raise SeisfnoError(f"multiscale takes {key} per stage, in stages")
    preset = forward.preset
    src = check_sources(sources, preset)
    d, who, obs_s = _prepare_observed(forward, src, observed, true_velocity, obs_solver,
                                      batch_sources)
    limit = options.pop("time_limit_s", None)
    parts: list[InversionResult] = []
    t = float(time_offset_s)
    for f, n in stages:
        if limit is not None and t - time_offset_s >= limit:
            break  # the time limit is for all the stages together
        r = invert(forward, src, d, true_velocity, start=start if not parts else parts[-1].velocity,
                   iterations=n, lowpass_hz=f, batch_sources=batch_sources, time_offset_s=t,
                   time_limit_s=None if limit is None else limit - (t - time_offset_s),
                   **options)
        parts.append(r)
        t = float(r.time_s[-1])
        if not (_ended_normally(r.stopped_reason) or r.stopped_reason.startswith("time limit")):
            break
    last = parts[-1]
    reason = next((p.stopped_reason for p in parts if not _ended_normally(p.stopped_reason)),
                  "completed")
    if reason == "completed" and len(parts) < len(stages):
        reason = (f"time limit of {limit:g} s reached; {len(stages) - len(parts)} stage(s) "
                  f"not run")
    starts = np.cumsum([0] + [p.iterations for p in parts])  # each stage's first iteration
    offset, done = int(starts[-2]), int(starts[-1])
    durations = np.concatenate([np.diff(p.time_s) for p in parts])
    checks = [p.checks + [k0, 0.0] for p, k0 in zip(parts, starts, strict=False)
              if p.checks is not None]
    misfit = None
    if last.misfit is not None:
        misfit = np.concatenate([parts[0].misfit[:1]] + [p.misfit[1:] for p in parts])
    return InversionResult(
        forward=forward.name, velocity=last.velocity, best_velocity=last.best_velocity,
        best_iteration=offset + last.best_iteration, start_velocity=parts[0].start_velocity,
        loss=np.concatenate([p.loss for p in parts]), misfit=misfit,
        time_s=np.concatenate([parts[0].time_s[:1]] + [p.time_s[1:] for p in parts]),
        iterations=done,
        seconds_per_iteration=(float(np.mean(durations[1:])) if done >= 2
                               else (float(durations[0]) if done else float("nan"))),
        first_iteration_s=parts[0].first_iteration_s,
        stopped_reason=reason,
        data_norm=last.data_norm, observations=who, observation_s=obs_s,
        final_misfit=last.final_misfit,
        options={**last.options, "lowpass_hz": None,
                 "stages": [[f, p.iterations] for (f, _), p in zip(stages, parts, strict=False)],
                 "stage_stops": [p.stopped_reason for p in parts],
                 "check_best_iteration": (None if last.options.get("check_best_iteration") is None
                                          else offset + last.options["check_best_iteration"])},
        checks=np.concatenate(checks) if checks else None)
