"""Stopping rules of the FWI loop: each a small object, passed to :func:`~.loop.run_loop`.

The loop (:func:`~.loop.run_loop`) steps and records; a rule decides when to stop and, for a
referee, which model to keep. A rule overrides only the hooks it needs (all default to nothing):

* ``on_start(run)``: before the first gradient (inside the first step's time);
* ``on_loss(run, k, loss)``: after step ``k``'s loss, before the update; a returned string stops
  the run as a **failure** (the kept model is the best one, the step is not recorded);
* ``on_update(run, k)``: after the update, before the clamp; a string stops it as a failure;
* ``on_step_end(run, k)``: after the clamp, inside the step's time (e.g. a check);
* ``should_stop(run, k)``: after step ``k`` is recorded; a string stops the run normally;
* ``on_stop(run, k)``: after a normal stop at step ``k`` (e.g. judge the model reached);
* ``kept()``: the model (m/s, CPU) to return instead of the last iterate, or ``None``.

``run`` is the :class:`~.loop.Run` (``run.m`` the model in km/s, ``run.ledger`` the curves,
``run.iterations`` the most steps). The iteration count is the loop's own bound.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import torch


class Rule:
    """A stopping rule: override the hooks you need (see the module docstring)."""

    def on_start(self, run) -> None:
        pass

    def on_loss(self, run, k: int, loss: float) -> str | None:
        return None

    def on_update(self, run, k: int) -> str | None:
        return None

    def on_step_end(self, run, k: int) -> None:
        pass

    def should_stop(self, run, k: int) -> str | None:
        return None

    def on_stop(self, run, k: int) -> None:
        pass

    def kept(self) -> torch.Tensor | None:
        return None


class NonFinite(Rule):
    """Stop (a failure) on a non-finite data loss or a non-finite model after an update."""

    def on_loss(self, run, k: int, loss: float) -> str | None:
        if not math.isfinite(loss):
            return f"non-finite data loss at iteration {k}; kept the best model"
        return None

    def on_update(self, run, k: int) -> str | None:
        if not torch.isfinite(run.m).all():
            return f"non-finite model after iteration {k}; kept the best model"
        return None


class TimeLimit(Rule):
    """Stop after the step that brings the loop's wall time to ``limit_s`` seconds."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = float(limit_s)

    def should_stop(self, run, k: int) -> str | None:
        if sum(run.ledger.durations) >= self.limit_s and k + 1 < run.iterations:
            return f"time limit of {self.limit_s:g} s reached after {k + 1} iterations"
        return None


class Referee(Rule):
    """Early stopping on an independent check; keeps the best-checked model.

    ``check(velocity (nz, nx) m/s, lowpass_hz) -> float`` (lower is better) runs at the start,
    every ``every`` steps and after the last; after ``patience`` checks without improvement the
    run stops (``stopped_reason`` starts with ``check:``). On any normal stop the model reached
    is checked too (e.g. at a time limit). In any case the result is the **best-checked** model,
    and the last point of the misfit curve is that model's. Its wall time counts in the
    iterations' time. An operator keeps lowering its own data loss after the model has started
    to get worse (it fits its own errors); this stops it there without knowing the true model.
    """

    def __init__(self, check: Callable[[torch.Tensor, float | None], float], every: int,
                 patience: int, lowpass_hz: float | None, start: torch.Tensor) -> None:
        self.check, self.every, self.patience = check, every, patience
        self.lowpass_hz = lowpass_hz
        self.checks: list[tuple[int, float]] = []
        self.best: tuple[float, torch.Tensor, int] = (math.inf, start.clone(), 0)
        self.since_best = 0

    def judge(self, m: torch.Tensor, step: int) -> None:
        with torch.no_grad():
            value = float(self.check(m.detach() * 1000.0, self.lowpass_hz))
        self.checks.append((step, value))
        if value < self.best[0]:
            self.best, self.since_best = (value, m.detach().cpu() * 1000.0, step), 0
        else:
            self.since_best += 1

    def on_start(self, run) -> None:
        self.judge(run.m, 0)

    def on_step_end(self, run, k: int) -> None:
        if (k + 1) % self.every == 0 or k + 1 == run.iterations:
            self.judge(run.m, k + 1)

    def should_stop(self, run, k: int) -> str | None:
        if self.since_best >= self.patience and k + 1 < run.iterations:
            return (f"check: no improvement in {self.patience} checks; kept the model of "
                    f"iteration {self.best[2]}")
        return None

    def on_stop(self, run, k: int) -> None:
        if self.checks and self.checks[-1][0] != k + 1:  # judge the model reached too
            t0 = time.perf_counter()
            self.judge(run.m, k + 1)
            run.ledger.extend_last(time.perf_counter() - t0)

    def kept(self) -> torch.Tensor | None:
        return self.best[1] if self.checks else None


__all__ = ["NonFinite", "Referee", "Rule", "TimeLimit"]
