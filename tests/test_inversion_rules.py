"""The FWI loop's stopping rules are small objects: a new rule needs no change to the loop."""

from __future__ import annotations

import numpy as np
import pytest
from test_inversion_common import SRC, TRUE
from test_inversion_pin import PINNED, ToyForward, toy_observations

from seisfno.inversion import invert
from seisfno.inversion.loop import ProgressCallback
from seisfno.inversion.rules import Rule, TimeLimit


class StopBelow(Rule):
    """Stop once the data loss is below a threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def should_stop(self, run, k):
        return f"loss below {self.threshold:g}" if run.ledger.losses[-1] < self.threshold else None


def test_a_new_rule_is_a_small_object():
    r = invert(ToyForward(), SRC, toy_observations(), TRUE, iterations=10, lr=0.03,
               rules=[StopBelow(7.0)])
    assert r.stopped_reason == "loss below 7" and r.iterations == 3
    np.testing.assert_allclose(r.loss, PINNED["nan"]["loss"][:3], rtol=1e-6)  # same trajectory
    assert len(r.misfit) == 4 and r.velocity.shape == TRUE.shape


def test_time_limit_rule_alone():
    class FakeRun:
        iterations = 10

        class ledger:  # noqa: N801
            durations = [0.4, 0.7]

    assert TimeLimit(1.0).should_stop(FakeRun, 1).startswith("time limit of 1 s")
    assert TimeLimit(2.0).should_stop(FakeRun, 1) is None
    FakeRun.iterations = 2  # the last step: completed, not stopped
    assert TimeLimit(1.0).should_stop(FakeRun, 1) is None


def test_progress_callback_counts_steps_and_forwards(monkeypatch, capsys):
    monkeypatch.setenv("SEISFNO_PROGRESS", "1")
    seen = []
    with ProgressCallback(3, then=lambda *a: seen.append(a)) as bar:
        for k in range(3):
            bar(k, 1.5, 0.25 if k else None)
    err = capsys.readouterr().err
    assert "3/3" in err and "misfit=0.25" in err and len(seen) == 3
    with ProgressCallback(3, progress=False) as bar:
        bar(0, 1.0, None)
    assert capsys.readouterr().err == ""
    with pytest.raises(TypeError):
        ProgressCallback()  # the total is required
