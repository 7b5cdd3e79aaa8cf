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

**No inverse crime.** When a true model is given, the observations are computed by
:class:`~seisfno.physics.AcousticSolver` on a 2x finer grid, with a finer internal grid and time
step than the inversion's, never by the forward model being inverted (:mod:`~.observations`).

The loop itself is :func:`~.loop.run_loop`; its stopping rules are objects (:mod:`~.rules`).
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

from .._errors import SeisfnoError
from ..physics import AcousticSolver, Grid, Preset, homogeneous, validate_velocity
from .forward import ForwardModel
from .loop import (
    Ledger,
    Problem,
    Run,
    batches,
    gaussian_smooth,
    laplacian_penalty,  # noqa: F401 - re-exported (seisfno.inversion.fwi.laplacian_penalty)
    model_misfit,
    run_loop,
    sync,
)
from .observations import (  # noqa: F401 - re-exported (seisfno.inversion.fwi.observe, ...)
    OBSERVATION_REFINEMENT,
    describe_observations,
    observation_solver,
    observe,
    refinement_of,
    true_on_grid,
)
from .rules import NonFinite, Referee, Rule, TimeLimit
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
_sync = sync  # older private names (used by the hybrid module and scripts)
_batches = batches


def _device(forward: ForwardModel) -> torch.device:
    return torch.device(getattr(forward, "device", None) or "cpu")


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
        The **lowest-loss** model: the iterate with the lowest data loss *of the forward model
        being inverted* (also :attr:`lowest_loss_velocity`; ``lowest_loss.npy`` from the CLI).
        It is not the result (that is :attr:`velocity`): with an operator it is the iterate
        that fits the operator's own errors best, typically over-fitted (the model misfit
        rises while the operator's loss still falls).
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
    def lowest_loss_velocity(self) -> np.ndarray:
        """The lowest-own-loss iterate (:attr:`best_velocity`), not the result."""
        return self.best_velocity

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
            "lowest_loss_misfit": (None if self.misfit is None
                                   else float(self.misfit[self.best_iteration])),
            "lowest_loss_iteration": self.best_iteration,
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
    """``(observations (S, nt, nz, nx), who made them, seconds)``: given, or simulated."""
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
    sync(dev)
    return d, describe_observations(solver, preset, true_velocity), time.perf_counter() - t0


def _check_options(iterations, lr, laplacian_weight, smooth_grad_m, lowpass_hz, time_limit_s,
                   check, check_every, check_patience) -> None:
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


def _bounds(forward: ForwardModel, bounds_mps) -> tuple[float, float]:
    """The clamp range (m/s): ``bounds_mps`` inside the forward model's valid range."""
    lo, hi = forward.velocity_range_mps
    if bounds_mps is None:
        return lo, hi
    blo, bhi = (float(b) for b in bounds_mps)
    if not 0 < blo < bhi:
        raise SeisfnoError(f"bad velocity bounds [{blo}, {bhi}] m/s")
    if blo < lo * (1 - 1e-6) or bhi > hi * (1 + 1e-6):
        raise SeisfnoError(f"bounds [{blo:.0f}, {bhi:.0f}] m/s leave the range "
                           f"[{lo:.0f}, {hi:.0f}] m/s the forward model {forward.name} "
                           f"is valid for")
    return blo, bhi


def _problem(forward, src, d_full, receivers, noise_snr_db, noise_seed, lowpass_hz,
             batch_sources, laplacian_weight) -> Problem:
    """The objective: observations recorded, made noisy and low-passed as the predictions are."""
    grid, dt = forward.preset.grid, forward.preset.dt_out_s
    mask = receiver_mask(grid, receivers)
    d = lowpass(add_noise(record(d_full, mask), noise_snr_db, noise_seed), dt, lowpass_hz)
    data_norm = float((d.double() ** 2).sum())
    if not data_norm > 0:
        raise SeisfnoError("the observations are all zero at the receivers")
    return Problem(forward, src, d, mask, dt, lowpass_hz, data_norm, batch_sources,
                   laplacian_weight)


def _start_model(start, grid: Grid, lo: float, hi: float) -> torch.Tensor:
    v0 = homogeneous(grid, START_MPS) if start is None else start
    v0 = torch.as_tensor(np.asarray(v0) if not torch.is_tensor(v0) else v0).float()
    validate_velocity(v0, grid, name="start model")
    return v0.clamp(lo, hi)


def _options(args: dict, lo: float, hi: float, n_sources: int, best_checked: int | None
             ) -> dict:
    """The options an inversion records in its result, from :func:`invert`'s arguments."""
    rec = args["receivers"]
    return dict(lr_kmps=args["lr"], receivers=rec if isinstance(rec, (str, int)) else "mask",
                **{k: args[k] for k in ("noise_snr_db", "noise_seed", "laplacian_weight",
                                        "smooth_grad_m", "lowpass_hz")},
                bounds_mps=[lo, hi], n_sources=n_sources, batch_sources=args["batch_sources"],
                time_limit_s=args["time_limit_s"],
                check_every=args["check_every"] if args["check"] is not None else None,
                check_best_iteration=best_checked)


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
           check_every: int = 10, check_patience: int = 3,
           rules: Sequence[Rule] = ()) -> InversionResult:
    """Invert wavefield data for a velocity model with Adam (the paper's FWI): an
    :class:`InversionResult`.

    Parameters
    ----------
    forward : ForwardModel
        :class:`~.forward.SolverForward`, :class:`~.forward.OperatorForward` or alike.
    sources : ndarray, (S, 2), metres, optional
        Default: the paper's 20 (:func:`~.survey.default_sources`).
    observed, true_velocity
        Wavefields ``(S, nt, nz, nx)`` at every node (receivers and noise applied here); the
        true model (m/s, on this grid or a k-times finer one), simulated by the solver on a
        finer grid when ``observed`` is not given (:func:`observe`), and the model misfit's
        reference at this grid's nodes.
    start, iterations, lr
        Start model (m/s; default homogeneous 3000 m/s, clamped into the bounds); Adam steps and
        learning rate **in km/s** (0.01 = ~10 m/s per step; the paper: 1000, 0.01).
    receivers, noise_snr_db, noise_seed
        Recording nodes (``"all"``, ``"surface"``, int, ``"every:K"`` or a mask:
        :func:`~.survey.receiver_mask`) and white noise on the data (:func:`~.survey.add_noise`).
    laplacian_weight, smooth_grad_m
        Weight of :func:`laplacian_penalty` added to the data loss; gradient smoothing sigma (m).
    bounds_mps, lowpass_hz
        Clamp after every step (m/s; default and limit ``forward.velocity_range_mps``); compare
        data after a zero-phase low-pass in time, -3 dB here (:func:`~.survey.lowpass`; rising
        stages: :func:`multiscale`; ``None``: the full band).
    batch_sources, obs_solver, callback
        Sources per forward call (gradients accumulated; default all); the solver making
        observations from ``true_velocity`` (default :func:`observation_solver`);
        ``callback(k, loss, misfit)`` after each step (e.g. :class:`~.loop.ProgressCallback`).
    time_offset_s, time_limit_s
        Added to ``time_s`` (hybrid phases); a wall-time limit (:class:`~.rules.TimeLimit`).
    check, check_every, check_patience
        Early stopping on an independent measure (:class:`~.rules.Referee`): ``check(velocity
        m/s, lowpass_hz) -> misfit`` (e.g. :class:`~.hybrid.SolverCheck`) at the start and every
        ``check_every`` steps; ``check_patience`` checks without improvement stop the loop
        (reason ``check: ...``), and the result is the best-checked model.
    rules : sequence of Rule
        Further stopping rules (:mod:`~.rules`), consulted after the built-in ones.
    """
    preset, dev = forward.preset, _device(forward)
    grid = preset.grid
    _check_options(iterations, lr, laplacian_weight, smooth_grad_m, lowpass_hz, time_limit_s,
                   check, check_every, check_patience)
    src = check_sources(sources, preset)
    v_true = None if true_velocity is None else true_on_grid(true_velocity, grid)
    lo, hi = _bounds(forward, bounds_mps)
    d_full, who, obs_s = _prepare_observed(forward, src, observed, true_velocity, obs_solver,
                                           batch_sources)
    problem = _problem(forward, src, d_full.to(dev), receivers, noise_snr_db, noise_seed,
                       lowpass_hz, batch_sources, laplacian_weight)
    v0 = _start_model(start, grid, lo, hi)
    m = torch.nn.Parameter(v0.to(dev) / 1000.0)  # km/s
    smooth = ((lambda g: gaussian_smooth(g, smooth_grad_m, grid.dz_m, grid.dx_m))
              if smooth_grad_m else None)
    run = Run(problem, m, torch.optim.Adam([m], lr=lr), Ledger(v0, v_true, time_offset_s),
              iterations, (lo, hi), smooth=smooth, callback=callback, device=dev)
    referee, chosen = _stopping_rules(check, check_every, check_patience, lowpass_hz, v0,
                                      time_limit_s, rules)
    reason, failed = run_loop(run, chosen)
    checked = referee is not None and bool(referee.checks)
    options = _options(locals(), lo, hi, len(src), referee.best[2] if checked else None)
    return _result(forward.name, run, chosen, reason, failed,
                   dict(observations=who, observation_s=obs_s, data_norm=problem.data_norm,
                        options=options,
                        checks=np.asarray(referee.checks, dtype=np.float64) if checked else None))


def _stopping_rules(check, check_every: int, check_patience: int, lowpass_hz: float | None,
                    v0: torch.Tensor, time_limit_s: float | None, rules: Sequence[Rule]
                    ) -> tuple[Referee | None, list[Rule]]:
    """The referee (if ``check``) and the rules the loop consults, built-in ones first."""
    referee = (None if check is None
               else Referee(check, check_every, check_patience, lowpass_hz, v0))
    chosen = [NonFinite(), *([referee] if referee else []),
              *([TimeLimit(time_limit_s)] if time_limit_s is not None else []), *rules]
    return referee, chosen


def _result(name: str, run: Run, rules: Sequence[Rule], reason: str, failed: bool,
            extra: dict) -> InversionResult:
    """The run's records as an :class:`InversionResult` (the kept model, its misfit, times)."""
    led = run.ledger
    kept = next((v for v in (r.kept() for r in rules) if v is not None), None)
    if kept is not None:
        final = kept
    else:
        final = led.best[1] if failed else run.m.detach().cpu() * 1000.0
    misfits = led.misfits
    if kept is not None and misfits is not None:
        # The model in hand is the kept one: the curve's last point says so (the discarded
        # iterates before it stay in the curve).
        misfits[-1] = model_misfit(final, led.v_true)
    dur, done = led.durations, len(led.durations)
    spi = float(np.mean(dur[1:])) if done >= 2 else (dur[0] if done else float("nan"))
    return InversionResult(
        forward=name, velocity=final.numpy().astype(np.float32),
        best_velocity=led.best[1].numpy().astype(np.float32), best_iteration=led.best[2],
        start_velocity=led.start.numpy().astype(np.float32), loss=np.asarray(led.losses),
        misfit=None if misfits is None else np.asarray(misfits), time_s=np.asarray(led.times),
        iterations=done, seconds_per_iteration=spi,
        first_iteration_s=dur[0] if done else float("nan"), stopped_reason=reason,
        final_misfit=None if led.v_true is None else model_misfit(final, led.v_true), **extra)


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
    src = check_sources(sources, forward.preset)
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
    reason = next((p.stopped_reason for p in parts if not _ended_normally(p.stopped_reason)),
                  "completed")
    if reason == "completed" and len(parts) < len(stages):
        reason = (f"time limit of {limit:g} s reached; {len(stages) - len(parts)} stage(s) "
                  f"not run")
    return _join_stages(forward.name, parts, stages, reason, who, obs_s)


def _join_stages(name: str, parts: list[InversionResult], stages, reason: str, who: str,
                 obs_s: float) -> InversionResult:
    """The stages' results as one: curves run on, the last stage's models and options."""
    last = parts[-1]
    starts = np.cumsum([0] + [p.iterations for p in parts])  # each stage's first iteration
    offset, done = int(starts[-2]), int(starts[-1])
    durations = np.concatenate([np.diff(p.time_s) for p in parts])
    checks = [p.checks + [k0, 0.0] for p, k0 in zip(parts, starts, strict=False)
              if p.checks is not None]
    misfit = None
    if last.misfit is not None:
        misfit = np.concatenate([parts[0].misfit[:1]] + [p.misfit[1:] for p in parts])
    kept = last.options.get("check_best_iteration")
    return InversionResult(
        forward=name, velocity=last.velocity, best_velocity=last.best_velocity,
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
                 "check_best_iteration": None if kept is None else offset + kept},
        checks=np.concatenate(checks) if checks else None)
