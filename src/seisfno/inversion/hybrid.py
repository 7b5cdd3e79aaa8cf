"""Hybrid FWI: fast operator iterations first, then solver iterations from where they ended.

The operator is cheap but approximate; the solver is exact but slow. :func:`hybrid` runs
``operator_iterations`` Adam steps with the operator, then ``solver_iterations`` with the solver
(a fresh Adam state) from the operator's final model, on the same observations (made once by the
solver). Its result holds model misfit against cumulative wall time across both phases, so
:meth:`HybridResult.time_to_misfit` tells whether it reaches a solver-only run's misfit sooner.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._errors import SeisfnoError
from .forward import ForwardModel, check_same_setup
from .fwi import (
    InversionResult,
    _device,
    _ended_normally,
    _prepare_observed,
    check_sources,
    invert,
    multiscale,
)
from .survey import add_noise, lowpass, receiver_mask, record


@dataclass
class HybridResult:
    """Both phases of a hybrid inversion.

    Attributes
    ----------
    operator_phase, solver_phase : InversionResult
    misfit : ndarray or None, (n_op + n_fd + 1,)
        Model misfit after each step of both phases (the switch point appears once).
    time_s : ndarray, (n_op + n_fd + 1,)
        Cumulative wall-clock seconds (observations excluded).
    phase : ndarray of str, (n_op + n_fd + 1,)
        ``operator`` or ``solver`` for the step that produced each point (``start`` for 0).
    """

    operator_phase: InversionResult
    solver_phase: InversionResult
    misfit: np.ndarray | None
    time_s: np.ndarray
    phase: np.ndarray
    #: The operator phase is a run made before (``hybrid(operator_phase=...)``), not run again.
    operator_phase_reused: bool = False

    @property
    def velocity(self) -> np.ndarray:
        return self.solver_phase.velocity

    @property
    def model_misfit(self) -> float | None:
        return self.solver_phase.model_misfit

    @property
    def start_misfit(self) -> float | None:
        return self.operator_phase.start_misfit

    @property
    def iterations(self) -> int:
        return self.operator_phase.iterations + self.solver_phase.iterations

    def time_to_misfit(self, target: float) -> float | None:
        """First cumulative time (s) at which the misfit is at most ``target`` (``None``: never).

        Only models the run kept count: when a check ended the operator phase at an earlier
        model, its iterates after that model are not credited.
        """
        if self.misfit is None:
            return None
        in_hand = np.ones(len(self.misfit), dtype=bool)
        op = self.operator_phase
        kept = op.options.get("check_best_iteration")
        if op.checks is not None and kept is not None and kept < op.iterations:
            in_hand[kept + 1: op.iterations] = False  # the phase's last point is the kept model
        hit = np.flatnonzero((self.misfit <= target) & in_hand)
        return float(self.time_s[hit[0]]) if hit.size else None

    def summary(self) -> dict:
        op, fd = self.operator_phase, self.solver_phase
        return {
            "forward": f"hybrid({op.forward} -> {fd.forward})",
            "model_misfit": self.model_misfit, "start_misfit": self.start_misfit,
            "switch_misfit": op.model_misfit, "iterations": self.iterations,
            "operator_checks": None if op.checks is None else len(op.checks),
            "switch_from_iteration": (op.iterations if op.checks is None
                                      else op.options.get("check_best_iteration")),
            "operator_iterations": op.iterations, "solver_iterations": fd.iterations,
            "seconds_per_iteration": float((self.time_s[-1] - self.time_s[0])
                                           / max(1, self.iterations)),
            "operator_seconds_per_iteration": op.seconds_per_iteration,
            "solver_seconds_per_iteration": fd.seconds_per_iteration,
            "total_s": float(self.time_s[-1] - self.time_s[0]),
            "data_loss": fd.summary()["data_loss"], "data_misfit": fd.data_misfit,
            "stopped_reason": (fd.stopped_reason if _ended_normally(op.stopped_reason)
                               else op.stopped_reason),
            "observations": op.observations, "observation_s": op.observation_s,
            "operator_phase_reused": self.operator_phase_reused,
        }


class SolverCheck:
    """The solver's relative data misfit on a few sources: an unbiased referee for operator FWI.

    ``check(velocity (nz, nx) m/s, lowpass_hz) -> sum((d_pred - d_obs)**2) / sum(d_obs**2)``
    over ``n_sources`` of the survey's sources (spread over the list), recorded and low-passed
    as the inversion records them. One call is one batched solver run without a gradient.
    Passed as
    ``invert(..., check=)`` it stops an operator's iterations when the true physics stops
    agreeing (see :func:`~.fwi.invert`).

    Parameters
    ----------
    solver : ForwardModel
        The finite-difference forward model (:class:`~.forward.SolverForward`).
    sources : ndarray, (S, 2), metres
    observed : tensor, (S, nt, nz, nx)
        The observations of all ``S`` sources (before receivers and noise).
    n_sources : int
        How many of them to simulate per check.
    receivers, noise_snr_db, noise_seed
        As in :func:`~.fwi.invert` (the check sees the same noisy data as the inversion).
    """

    def __init__(self, solver: ForwardModel, sources: np.ndarray, observed: torch.Tensor, *,
                 n_sources: int = 4, receivers="all", noise_snr_db: float | None = None,
                 noise_seed: int = 0) -> None:
        if n_sources < 1:
            raise SeisfnoError(f"a solver check needs at least one source, got {n_sources}")
        s = np.asarray(sources, dtype=np.float64).reshape(-1, 2)
        idx = np.unique(np.linspace(0, len(s) - 1, min(n_sources, len(s))).round().astype(int))
        self.solver, self.sources, self.indices = solver, s[idx], idx
        self.mask = receiver_mask(solver.preset.grid, receivers)
        dev = _device(solver)
        obs = torch.as_tensor(np.asarray(observed) if not torch.is_tensor(observed) else observed)
        # The noise invert() adds to all the sources, then the subset (same values).
        self.observed = add_noise(record(obs.float().to(dev), self.mask), noise_snr_db,
                                  noise_seed)[idx]

    def __call__(self, velocity: torch.Tensor, lowpass_hz: float | None = None) -> float:
        dt = self.solver.preset.dt_out_s
        with torch.no_grad():
            pred = lowpass(record(self.solver(velocity, self.sources), self.mask), dt, lowpass_hz)
            d = lowpass(self.observed, dt, lowpass_hz)
            return float(((pred - d) ** 2).sum() / (d**2).sum())


def hybrid(operator: ForwardModel, solver: ForwardModel, sources: np.ndarray | None = None,
           observed: np.ndarray | torch.Tensor | None = None,
           true_velocity: np.ndarray | torch.Tensor | None = None, *,
           operator_iterations: int = 100, solver_iterations: int = 100,
           lr: float = 0.01, solver_lr: float | None = None, batch_sources: int | None = None,
           obs_solver=None, operator_stages: Sequence[tuple[float | None, int]] | None = None,
           solver_stages: Sequence[tuple[float | None, int]] | None = None,
           solver_check_sources: int | None = None, check_every: int = 10,
           check_patience: int = 3, operator_phase: InversionResult | None = None,
           **options) -> HybridResult:
    """Operator FWI for ``operator_iterations`` steps, then solver FWI for ``solver_iterations``.

    Parameters are those of :func:`~.fwi.invert` (``start``, ``receivers``, noise,
    regularization, bounds, ...), applied to both phases. ``lr`` (km/s) is the operator phase's
    learning rate, ``solver_lr`` the solver phase's (default: ``lr``). The observations are made
    once, by the finite-difference solver, and shared.

    ``operator_stages`` / ``solver_stages`` (lists of ``(lowpass_hz, iterations)``) run that phase
    as a frequency continuation (:func:`~.fwi.multiscale`) instead of ``operator_iterations`` /
    ``solver_iterations`` full-band steps: e.g. the operator at 3 Hz then the full band, and the
    solver on the full band to finish.

    ``solver_check_sources`` (e.g. 4) makes the switch automatic: the operator phase is checked
    by the solver on that many sources every ``check_every`` steps (:class:`SolverCheck`), stops
    after ``check_patience`` checks without improvement, and hands its best-checked model to the
    solver. ``operator_iterations`` (or the stages) are then the most it may take.

    ``operator_phase``: an operator inversion already made with exactly these settings (the same
    forward model, observations, start, iterations or stages, check and options), e.g. the
    operator-only run of a side-by-side comparison. It becomes the first phase, with its own
    measured times, instead of being computed a second time; the caller vouches for the
    settings (checked: its forward model, iteration count and a normal end).
    """
    check_same_setup(operator.preset, solver.preset)
    if operator_iterations < 0 or solver_iterations < 0:
        raise SeisfnoError("iteration counts must be >= 0")
    src = check_sources(sources, solver.preset)
    observed, who, obs_s = _prepare_observed(solver, src, observed, true_velocity, obs_solver,
                                             batch_sources)
    start = options.pop("start", None)
    op_check = {}
    if solver_check_sources:
        op_check = {"check": SolverCheck(
            solver, src, observed, n_sources=solver_check_sources,
            receivers=options.get("receivers", "all"),
            noise_snr_db=options.get("noise_snr_db"), noise_seed=options.get("noise_seed", 0)),
            "check_every": check_every, "check_patience": check_patience}
    def phase(fwd, stages, iterations, **kw):
        if stages is not None:
            return multiscale(fwd, src, observed, true_velocity, stages=stages,
                              batch_sources=batch_sources, **kw, **options)
        return invert(fwd, src, observed, true_velocity, iterations=iterations,
                      batch_sources=batch_sources, **kw, **options)

    limit = options.pop("time_limit_s", None)  # for both phases together
    if operator_phase is not None:
        r1 = _reusable(operator_phase, operator, operator_stages, operator_iterations)
    else:
        r1 = phase(operator, operator_stages, operator_iterations, start=start, lr=lr,
                   time_limit_s=limit, **op_check)
    t1 = float(r1.time_s[-1] - r1.time_s[0])
    r2 = phase(solver, solver_stages,
               0 if limit is not None and t1 >= limit else solver_iterations,
               start=r1.velocity, lr=solver_lr or lr, time_offset_s=float(r1.time_s[-1]),
               time_limit_s=None if limit is None else max(limit - t1, 1e-9))
    r1.observations = r2.observations = who
    r1.observation_s = obs_s
    misfit = None
    if r1.misfit is not None:
        misfit = np.concatenate([r1.misfit[: r1.iterations + 1], r2.misfit[1:]])
    times = np.concatenate([r1.time_s[: r1.iterations + 1], r2.time_s[1:]])
    phase = np.array(["start"] + ["operator"] * r1.iterations + ["solver"] * r2.iterations)
    return HybridResult(r1, r2, misfit, times, phase,
                        operator_phase_reused=operator_phase is not None)


def _reusable(r: InversionResult, operator: ForwardModel,
              stages: Sequence[tuple[float | None, int]] | None, iterations: int
              ) -> InversionResult:
    """A copy of the earlier operator run ``r``, after checking what can be checked."""
    most = sum(n for _, n in stages) if stages is not None else iterations
    if r.forward != operator.name:
        raise SeisfnoError(f"the operator phase given was made with {r.forward!r}, "
                           f"not with {operator.name!r}")
    if not _ended_normally(r.stopped_reason) or r.iterations > most or (
            stages is None and r.stopped_reason == "completed" and r.iterations != most):
        raise SeisfnoError(
            f"the operator phase given ran {r.iterations} iterations and ended with "
            f"{r.stopped_reason!r}; this hybrid's operator phase would run {most}: run it instead")
    return copy.copy(r)
