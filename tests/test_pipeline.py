"""The reproduce pipeline end to end on a toy setup (every stage, the report, resume)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from seisfno.pipeline import STAGES, ReproduceConfig, reproduce

TINY = ReproduceConfig(
    "quick", n_samples=24, n_val=6, train_minutes=0.05, datasize_sizes=(8, 18),
    datasize_minutes=0.02, study_samples=2, operator_iterations=4, solver_iterations=2,
    hybrid_operator_iterations=3, hybrid_solver_iterations=1, batch_size=4,
    preset_overrides=(("n", 20), ("nt_out", 10), ("spacing_m", 250.0)))


@pytest.mark.slow
def test_reproduce_tiny_writes_every_stage_and_resumes(tmp_path):
    torch.set_num_threads(2)
    m = reproduce(tmp_path, TINY, device="cpu", workers=1, progress=False)
    for stage in STAGES:
        assert stage in m["stages"], stage
        assert (tmp_path / f"{stage}.json").exists()
    report = (tmp_path / "report.md").read_text()
    assert "0.273" in report and "validation relative L2" in report
    for fig in ("fig2_best.png", "fig5_operator.png", "fwi_curves.png",
                "square/square_anomaly.png", "superres/superres.png", "datasize/datasize.png"):
        assert (tmp_path / fig).exists(), fig
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    fwi = metrics["stages"]["fwi"]["results"]
    assert set(fwi) == {"operator", "solver", "hybrid"}
    assert fwi["solver"]["model_misfit"] < fwi["solver"]["start_misfit"]
    assert 0 < metrics["stages"]["evaluate"]["rel_l2_mean"] < 5
    # A rerun finds every stage done and recomputes nothing.
    before = {s: (tmp_path / f"{s}.json").stat().st_mtime_ns for s in STAGES}
    reproduce(tmp_path, TINY, device="cpu", workers=1, progress=False)
    assert before == {s: (tmp_path / f"{s}.json").stat().st_mtime_ns for s in STAGES}
    # The FWI stage again with frequency continuations (the paper profile's kind of schedule).
    staged = dataclasses.replace(TINY, operator_stages=((3.0, 2), (None, 2)),
                                 solver_stages=((3.0, 1), (None, 1)),
                                 hybrid_operator_stages=((3.0, 2),), check_sources=2,
                                 check_every=1, check_patience=5)
    (tmp_path / "fwi.json").unlink()
    m = reproduce(tmp_path, staged, device="cpu", workers=1, progress=False, stages=("fwi",))
    fw = m["stages"]["fwi"]
    assert fw["results"]["operator"]["iterations"] == 4
    assert fw["results"]["solver"]["iterations"] == 2
    assert fw["results"]["hybrid"]["operator_iterations"] == 2
    assert fw["results"]["hybrid"]["solver_iterations"] == 1
    assert "Frequency continuation" in (tmp_path / "report.md").read_text()
    assert fw["check_sources"] == 2 and fw["results"]["operator"]["checks"] == 6
