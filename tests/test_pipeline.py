"""The reproduce pipeline: every stage and the report on a toy setup; resume rules (a changed
setting redoes its stage and the stages built on it); SIGKILL during training and during FWI."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from seisfno import SeisfnoError
from seisfno.pipeline import STAGES, ReproduceConfig, reproduce

TINY = ReproduceConfig(
    "quick", n_samples=24, n_val=6, train_minutes=0.05, datasize_sizes=(8, 18),
    datasize_minutes=0.02, study_samples=2, fwi_sources=4, operator_iterations=4,
    solver_iterations=2, hybrid_operator_iterations=3, hybrid_solver_iterations=1,
    batch_size=4, preset_overrides=(("n", 20), ("nt_out", 10), ("spacing_m", 250.0)))
#: Epoch-bound training: the same weights after an interruption and a resume.
EPOCHS = dataclasses.replace(TINY, train_minutes=None, train_epochs=2)


def _run(out, cfg, stages=STAGES):
    return reproduce(out, cfg, device="cpu", workers=1, progress=False, stages=stages)


def _mtimes(out: Path, names) -> dict:
    return {n: (out / f"{n}.json").stat().st_mtime_ns for n in names}


@pytest.mark.slow
def test_reproduce_tiny_writes_every_stage_and_resumes(tmp_path):
    m = _run(tmp_path, TINY)
    for stage in STAGES:
        assert stage in m["stages"], stage
        assert (tmp_path / f"{stage}.json").exists()
        assert not (tmp_path / f"{stage}.running.json").exists()
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
    assert metrics["stages"]["fwi"]["config"]["sources"] == 4
    # A rerun finds every stage done and recomputes nothing.
    before = _mtimes(tmp_path, STAGES)
    _run(tmp_path, TINY)
    assert before == _mtimes(tmp_path, STAGES)
    # The FWI stage again with frequency continuations (the paper profile's kind of schedule):
    # a changed FWI setting redoes the FWI stage alone.
    staged = dataclasses.replace(TINY, operator_stages=((3.0, 2), (None, 2)),
                                 solver_stages=((3.0, 1), (None, 1)),
                                 hybrid_operator_stages=((3.0, 2),), check_sources=2,
                                 check_every=1, check_patience=5,
                                 fwi_time_limits_s=(("solver", 1e-6),))
    m = _run(tmp_path, staged, stages=("fwi",))
    fw = m["stages"]["fwi"]
    assert fw["results"]["operator"]["iterations"] == 4
    # the solver's time limit ends it after its first iteration, and the report says so
    assert fw["results"]["solver"]["iterations"] == 1
    assert ("The solver run reached its time limit of 1e-06 s after 1 of 2 planned iterations"
            in (tmp_path / "report.md").read_text())
    assert fw["results"]["hybrid"]["operator_iterations"] == 2
    assert fw["results"]["hybrid"]["solver_iterations"] == 1
    assert "Frequency continuation" in (tmp_path / "report.md").read_text()
    assert fw["check_sources"] == 2 and fw["results"]["operator"]["checks"] == 6
    after = _mtimes(tmp_path, STAGES)
    assert {s for s in STAGES if after[s] != before[s]} == {"fwi"}
    assert set(m["stages"]) == set(STAGES)  # the other stages still match: still reported
    assert not fw["results"]["hybrid"]["operator_phase_reused"]  # its stages differ
    # The hybrid's operator phase the same as the operator run: that run is its first phase.
    same = dataclasses.replace(TINY, hybrid_operator_iterations=TINY.operator_iterations)
    fw = _run(tmp_path, same, stages=("fwi",))["stages"]["fwi"]["results"]
    assert fw["hybrid"]["operator_phase_reused"]
    assert fw["hybrid"]["switch_misfit"] == fw["operator"]["model_misfit"]
    assert "not computed twice" in (tmp_path / "report.md").read_text()


def test_changed_setting_redoes_its_stage_and_those_built_on_it(tmp_path, capsys):
    chosen = ("data", "train", "evaluate", "square")
    m = _run(tmp_path, EPOCHS, chosen)
    assert m["stages"]["train"]["epochs"] == 2
    assert m["stages"]["train"]["config"]["train_epochs"] == 2
    capsys.readouterr()
    before = _mtimes(tmp_path, chosen)
    model_before = (tmp_path / "model" / "model.safetensors").read_bytes()

    more = dataclasses.replace(EPOCHS, train_epochs=3)
    m = _run(tmp_path, more, chosen)
    err = capsys.readouterr().err
    assert "stage train: configuration changed (train_epochs: 2 -> 3); recomputing it" in err
    assert "stage evaluate: configuration changed (train.train_epochs: 2 -> 3)" in err
    assert "stage square: configuration changed" in err and "stage data" not in err
    after = _mtimes(tmp_path, chosen)
    assert after["data"] == before["data"]
    assert all(after[s] != before[s] for s in ("train", "evaluate", "square"))
    assert m["stages"]["train"]["epochs"] == 3
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["training"]["epochs"] == 3
    report = (tmp_path / "report.md").read_text()
    assert "3 epochs" in report and "train_epochs: 3" in report
    assert f"{m['stages']['evaluate']['rel_l2_mean']:.3f} (6 samples, 2 Hz)" in report
    # Nothing is lost: the old model and results were moved aside, not deleted.
    old = list((tmp_path / "superseded").glob("*/model/model.safetensors"))
    assert len(old) == 1 and old[0].read_bytes() == model_before
    assert len(list((tmp_path / "superseded").glob("*/evaluate.json"))) == 1

    # A setting of one late stage redoes that stage only.
    before = _mtimes(tmp_path, chosen)
    _run(tmp_path, dataclasses.replace(more, study_samples=1), chosen)
    assert "stage square: configuration changed (n_reference: 2 -> 1)" in capsys.readouterr().err
    after = _mtimes(tmp_path, chosen)
    assert [s for s in chosen if after[s] != before[s]] == ["square"]

    # A stage whose input stage is stale is refused, and nothing is moved.
    with pytest.raises(SeisfnoError, match=r"stage 'evaluate' needs stage 'train' .*"
                                           r"batch_size: 4 -> 2"):
        _run(tmp_path, dataclasses.replace(more, batch_size=2), ("evaluate",))
    assert (tmp_path / "evaluate.json").exists()


def _start(out: Path, cfg: ReproduceConfig, stages) -> subprocess.Popen:
    code = ("import json, sys, torch; torch.set_num_threads(1); "
            "from seisfno.pipeline import ReproduceConfig, reproduce; "
            "reproduce(sys.argv[1], ReproduceConfig.from_dict(json.loads(sys.argv[2])), "
            "device='cpu', workers=1, progress=False, stages=sys.argv[3].split(','))")
    return subprocess.Popen(
        [sys.executable, "-c", code, str(out), json.dumps(cfg.to_dict()), ",".join(stages)],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)


def _kill_when(proc: subprocess.Popen, ready, what: str, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"reproduce ended before {what}: {proc.stderr.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, f"no {what} within {seconds} s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stderr.close()


def _weights(run_dir: Path) -> dict:
    from seisfno.operator import load_model

    return {k: v.clone() for k, v in load_model(run_dir).state_dict().items()}


@pytest.mark.slow
def test_sigkill_during_training_then_rerun_equals_an_uninterrupted_run(tmp_path, capsys):
    cfg = dataclasses.replace(EPOCHS, train_epochs=6)
    chosen = ("data", "train", "evaluate")
    ref = _run(tmp_path / "ref", cfg, chosen)
    out = tmp_path / "killed"
    proc = _start(out, cfg, chosen)
    state = out / "model" / "checkpoint" / "state.json"
    _kill_when(proc, state.exists, "a training checkpoint")
    assert not (out / "train.json").exists(), "kill landed after training; make it longer"
    assert (out / "train.running.json").exists()
    m = _run(out, cfg, chosen)
    assert "stage train: resuming the interrupted run" in capsys.readouterr().err
    assert not (out / "superseded").exists() and not (out / "train.running.json").exists()
    assert m["stages"]["train"]["epochs"] == 6
    want, got = _weights(tmp_path / "ref" / "model"), _weights(out / "model")
    assert want.keys() == got.keys()
    assert all(np.array_equal(want[k].numpy(), got[k].numpy()) for k in want)
    assert m["stages"]["evaluate"]["rel_l2_mean"] == ref["stages"]["evaluate"]["rel_l2_mean"]


@pytest.mark.slow
def test_sigkill_during_fwi_then_rerun_completes_it(tmp_path, capsys):
    chosen = ("data", "train", "fwi")
    out = tmp_path / "killed"
    proc = _start(out, EPOCHS, chosen)
    marker = out / "fwi.running.json"
    _kill_when(proc, marker.exists, "the FWI stage")
    assert not (out / "fwi.json").exists(), "kill landed after FWI; make it longer"
    before = _mtimes(out, ("data", "train"))
    m = _run(out, EPOCHS, chosen)
    assert "stage fwi: resuming the interrupted run" in capsys.readouterr().err
    assert _mtimes(out, ("data", "train")) == before
    fw = m["stages"]["fwi"]["results"]
    assert set(fw) == {"operator", "solver", "hybrid"}
    assert m["stages"]["fwi"]["config"] == json.loads((out / "fwi.json").read_text())["config"]
    # The rerun's FWI is the uninterrupted one: the same misfits and models, bit for bit.
    got = {k: np.load(out / f"fwi_{k}.npy") for k in fw}
    (out / "fwi.json").rename(tmp_path / "fwi_rerun.json")
    again = _run(out, EPOCHS, ("fwi",))["stages"]["fwi"]["results"]
    for k in fw:
        assert again[k]["model_misfit"] == fw[k]["model_misfit"], k
        np.testing.assert_array_equal(np.load(out / f"fwi_{k}.npy"), got[k])


def _metrics(preset: str, f_peak_hz: float) -> dict:
    return {"preset": preset, "config": {"preset": preset}, "total_seconds": 60.0,
            "setup": {"f_peak_hz": f_peak_hz, "nt_out": 50, "dt_out_s": 0.08},
            "machine": {"cpu": "x86_64", "device": "cpu", "cpu_count": 2, "torch_threads": 1,
                        "torch": "2", "seisfno": "0", "date": "2026-12-02"},
            "stages": {"evaluate": {"rel_l2_mean": 0.2, "rel_l2_min": 0.1, "rel_l2_max": 0.3,
                                    "rel_l2_median": 0.2, "n_samples": 6, "figures": []}}}


def test_report_cites_only_files_in_the_repository_and_measured_numbers(tmp_path):
    import re

    from seisfno.pipeline import write_report

    root = Path(__file__).resolve().parents[1]
    for preset, f in (("quick", 2.0), ("paper", 8.0)):
        text = write_report(tmp_path / "report.md", _metrics(preset, f)).read_text()
        cited = set(re.findall(r"[\w./-]+\.(?:md|py|cff)\b", text)) - {"report.md"}
        assert cited, text
        for name in cited:
            assert (root / name).is_file(), f"the report cites {name}, not in the repository"
        # The solver disagreement is the measured one, with its source.
        assert "0.364" in text and "0.199" in text and "salvus_agreement.py --n 20" in text
        assert "about 0.27" not in text
        bench = (root / "BENCHMARKS.md").read_text()
        assert "| pooled, 20 samples | **0.364** | **0.199** |" in bench
        # The quick (2 Hz) error is not put beside the paper's 8 Hz one without saying so.
        assert ("Not the paper's problem" in text) == (preset == "quick")
        assert "0.273 (8 Hz)" in text and f"6 samples, {f:g} Hz" in text


def test_stage_progress_bar_on_a_terminal_only(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SEISFNO_PROGRESS", "1")  # as if stderr were a terminal
    reproduce(tmp_path / "a", EPOCHS, device="cpu", workers=1, progress=True, stages=("data",))
    err = capsys.readouterr().err
    assert "reproduce" in err and "stage" in err and "sample" in err  # stages, and data's bar
    reproduce(tmp_path / "b", EPOCHS, device="cpu", workers=1, progress=False, stages=("data",))
    assert capsys.readouterr().err == ""


def test_cli_quiet_and_bad_stage(tmp_path, capsys, monkeypatch):
    import seisfno.pipeline
    from seisfno.cli import main

    calls = []

    def fake(out, cfg, **kw):
        calls.append((cfg, kw))
        return {"total_seconds": 0.0, "stages": {}}

    monkeypatch.setattr(seisfno.pipeline, "reproduce", fake)
    for extra, progress in (([], True), (["--quiet"], False), (["-q"], False),
                            (["--no-progress"], False)):
        with pytest.raises(SystemExit) as e:
            main(["reproduce", "--out", str(tmp_path / "r"), *extra])
        assert e.value.code in (0, None)
        assert calls[-1][1]["progress"] is progress, extra
    main_args = ["reproduce", "--out", str(tmp_path / "r"), "--small", "--train-epochs", "3"]
    with pytest.raises(SystemExit):
        main(main_args)
    assert calls[-1][0].train_epochs == 3 and calls[-1][0].n_samples == 360
    monkeypatch.undo()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--out", str(tmp_path / "bad"), "--stages", "data,bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("seisfno: error: unknown stage(s) ['bogus']")
    assert not (tmp_path / "bad").exists()


def test_stage_runner_rules_on_toy_stages(tmp_path):
    """Torn results, interruptions with other settings, repeated changes: nothing is lost."""
    from seisfno.pipeline import Stage, StageRunner

    said: list[str] = []

    def stage(value, fail=False):
        def run():
            (tmp_path / "out.txt").write_text(str(value))
            if fail:
                raise KeyboardInterrupt  # as if killed after writing part of its outputs
            return {"value": value}
        return Stage("toy", {"value": value}, run, outputs=("out.txt",))

    def go(st):
        return StageRunner(tmp_path, said.append).run(st, {})

    assert go(stage(1))["value"] == 1 and not said
    assert go(stage(1))["value"] == 1 and not said  # kept
    for v in (2, 3):  # two changes within the same second: two distinct folders
        assert go(stage(v))["value"] == v
    kept = sorted(p.read_text() for p in (tmp_path / "superseded").glob("*/out.txt"))
    assert kept == ["1", "2"] and said[0].startswith("stage toy: configuration changed (value")
    with pytest.raises(KeyboardInterrupt):
        go(stage(4, fail=True))
    assert (tmp_path / "toy.running.json").exists() and not (tmp_path / "toy.json").exists()
    said.clear()
    assert go(stage(5))["value"] == 5
    assert said[0] == ("stage toy: interrupted with another configuration (value: 4 -> 5); "
                       "starting again")
    (tmp_path / "toy.json").write_text('{"value": 5, "conf')  # torn
    said.clear()
    assert go(stage(5))["value"] == 5 and "no configuration recorded" in said[0]
    assert not (tmp_path / "toy.running.json").exists()
    assert sorted(p.read_text() for p in (tmp_path / "superseded").glob("*/out.txt")) == \
        ["1", "2", "3", "4", "5"]


# --------------------------------------------------------------------------- the paper profile
#: Fields that :func:`smoke_profile` may shrink; every other one is the real profile's.
_SMOKE_SIZES = {"n_samples", "n_val", "train_minutes", "train_epochs", "datasize_sizes",
                "datasize_minutes", "study_samples", "operator_iterations", "solver_iterations",
                "hybrid_operator_iterations", "hybrid_solver_iterations", "operator_stages",
                "solver_stages", "hybrid_operator_stages", "check_every", "batch_size",
                "shard_size", "superres_nodes", "preset_overrides"}


def _bands(stages):
    return None if stages is None else [hz for hz, _ in stages]


def test_paper_smoke_profile_is_the_real_profile_at_toy_size():
    from seisfno.physics import get_preset
    from seisfno.pipeline import stage_configs
    from seisfno.pipeline.config import PROFILES, get_profile, smoke_profile

    real = PROFILES["paper"]
    smoke = get_profile("paper", smoke=True)
    assert smoke == smoke_profile(real)
    for f in dataclasses.fields(ReproduceConfig):
        if f.name not in _SMOKE_SIZES:
            assert getattr(smoke, f.name) == getattr(real, f.name), f.name
    # The same FWI protocol: the same bands in the same order, refereed, a few steps each.
    for k in ("operator_stages", "solver_stages", "hybrid_operator_stages"):
        assert _bands(getattr(smoke, k)) == _bands(getattr(real, k)) == [3.0, None], k
        assert all(0 < it <= 2 for _, it in getattr(smoke, k)), k
    assert smoke.check_sources == real.check_sources == 4 and smoke.fwi_sources == 20
    assert real.train_in_memory is False and smoke.train_in_memory is False  # streamed
    assert smoke.shard_size and smoke.n_samples % smoke.shard_size == 0
    assert smoke.n_samples // smoke.shard_size >= 4  # streaming crosses several chunks
    # The same data-size study shape: as many sizes, in the same ratios, the largest all.
    assert len(smoke.datasize_sizes) == len(real.datasize_sizes)
    assert smoke.datasize_sizes[-1] == smoke.n_samples - smoke.n_val
    assert real.datasize_sizes[-1] == real.n_samples - real.n_val
    # The paper's physics; only the domain and the record are smaller.
    p, q = get_preset("paper"), get_preset(smoke.preset, **dict(smoke.preset_overrides))
    for name in ("f_peak_hz", "dt_out_s", "velocity", "decimation", "source_margin_m"):
        assert getattr(q, name) == getattr(p, name), name
    assert q.grid.dx_m == pytest.approx(p.grid.dx_m) and q.grid.nz < p.grid.nz
    assert smoke.superres_nodes / q.grid.nz == real.superres_nodes / p.grid.nz == 2
    # Every stage has a configuration of the same shape (the same code paths).
    a, b = stage_configs(real), stage_configs(smoke)
    assert a.keys() == b.keys()
    assert all(a[k].keys() == b[k].keys() for k in a)


def test_paper_profile_fits_one_ten_minute_gpu_call():
    from seisfno.pipeline.config import H200_RATES, PROFILES, _fwi_seconds, gpu_budget

    real = PROFILES["paper"]
    budget = gpu_budget(real)
    assert set(budget) == {"startup", *STAGES}
    assert 360 <= sum(budget.values()) <= 510, budget  # ~8 minutes of the call's 600 s
    # Each FWI run ends before its time limit, and even with every run at its limit (a slower
    # GPU: the limits stop them there) the call still fits in 600 s.
    limits = dict(real.fwi_time_limits_s)
    runs = _fwi_seconds(real, H200_RATES)
    assert set(limits) == {"operator", "solver", "hybrid"}
    assert all(runs[k] < limits[k] for k in limits), (runs, limits)
    slow = gpu_budget(real, {k: v * 2 for k, v in H200_RATES.items() if k.endswith("_it_s")})
    assert slow["fwi"] > budget["fwi"]
    worst = sum(budget.values()) - sum(runs[k] for k in limits) + sum(limits.values())
    assert worst <= 600, worst
    # Twice the data would not fit: the estimate can fail.
    assert sum(gpu_budget(dataclasses.replace(real, n_samples=10000)).values()) > 510


def test_profile_settings_are_checked_and_round_trip():
    from seisfno.pipeline.config import PROFILES

    real = PROFILES["paper"]
    assert ReproduceConfig.from_dict(real.to_dict()) == real
    for bad in ({"shard_size": 0}, {"fwi_time_limits_s": (("bogus", 3.0),)},
                {"fwi_time_limits_s": (("solver", -1.0),)}, {"superres_nodes": 1}):
        with pytest.raises(SeisfnoError):
            dataclasses.replace(real, **bad)


def test_cli_smoke_and_streaming_flags(tmp_path, monkeypatch):
    import seisfno.pipeline
    from seisfno.cli import main
    from seisfno.pipeline.config import PROFILES, smoke_profile

    calls = []
    monkeypatch.setattr(seisfno.pipeline, "reproduce",
                        lambda out, cfg, **kw: calls.append(cfg) or {"total_seconds": 0.0,
                                                                     "stages": {}})
    for extra, want in (([], PROFILES["paper"]), (["--smoke"], smoke_profile(PROFILES["paper"])),
                        (["--in-memory"], dataclasses.replace(PROFILES["paper"],
                                                              train_in_memory=True))):
        with pytest.raises(SystemExit) as e:
            main(["reproduce", "--preset", "paper", "--out", str(tmp_path), *extra])
        assert e.value.code in (0, None)
        assert calls[-1] == want, extra


@pytest.mark.slow
def test_paper_smoke_streams_data_and_datasize_from_shards(tmp_path):
    """The smoke profile's first stages: the paper's physics, shards, streamed training."""
    from seisfno.data import open_store
    from seisfno.pipeline.config import get_profile

    smoke = get_profile("paper", smoke=True)
    m = _run(tmp_path, smoke, stages=("data", "train", "datasize"))
    store = open_store(tmp_path / "data.zarr")
    assert store.shard_size == smoke.shard_size and store.preset.f_peak_hz == 8.0
    card = json.loads((tmp_path / "model" / "model.json").read_text())
    assert card["training"]["data_mode"] == "stream"  # trained from the store, not loaded
    ds = m["stages"]["datasize"]
    assert ds["streamed"] and [r["n_train"] for r in ds["rows"]] == list(smoke.datasize_sizes)
    for n in smoke.datasize_sizes:
        card = json.loads((tmp_path / "datasize" / f"n{n}" / "model.json").read_text())
        assert card["training"]["data_mode"] == "stream" and card["training"]["n_train"] == n
    assert (tmp_path / "datasize" / "datasize.png").exists()
    assert m["stages"]["train"]["config"]["in_memory"] is False
    assert m["stages"]["data"]["config"]["shard_size"] == smoke.shard_size


def test_report_says_when_a_budgeted_datasize_study_measures_training_time():
    """A time-budgeted study whose larger sets ran a few epochs must not read as Fig. 3."""
    from seisfno.pipeline.report import _datasize_caveat

    def study(vals, epochs, minutes=0.4):
        rows = [{"n_train": n, "train_rel_l2": v, "val_rel_l2": v, "epochs": e}
                for n, v, e in zip((250, 500, 1000), vals, epochs, strict=True)]
        return {"rows": rows, "config": {"minutes": minutes}}

    few = _datasize_caveat(study((0.63, 0.64, 0.63), (4, 2, 1)))
    assert few and "does not resolve" in few[0] and "(4, 2, 1)" in few[0]
    assert _datasize_caveat(study((0.30, 0.31, 0.20), (40, 20, 10)))  # not falling with size
    assert _datasize_caveat(study((0.30, 0.20, 0.12), (40, 20, 10))) == []
    assert _datasize_caveat(study((0.63, 0.64, 0.63), (4, 2, 1), minutes=None)) == []


def test_report_says_which_fwi_runs_stopped_early_and_why():
    from seisfno.pipeline.report import _early_stops

    cfg = {"operator_iterations": 150, "solver_iterations": 5, "hybrid_operator_iterations": 150,
           "hybrid_solver_iterations": 2, "operator_stages": None, "solver_stages": None,
           "hybrid_operator_stages": None}
    fw = {"config": cfg, "time_limits_s": {"operator": 120.0, "hybrid": 180.0},
          "results": {
              "operator": {"stopped_reason": "time limit of 120 s reached after 90 iterations",
                           "iterations": 90},
              "solver": {"stopped_reason": "non-finite data loss at iteration 3; kept the best "
                                           "model", "iterations": 3},
              "hybrid": {"stopped_reason": "completed", "iterations": 150,
                         "solver_iterations": 0}}}
    text = " ".join(_early_stops(fw))
    assert "operator run reached its time limit of 120 s after 90 of 150 planned" in text
    assert "solver run stopped after 3 of 5 planned iterations: non-finite data loss" in text
    assert "hybrid's solver phase did not run" in text and "180 s" in text
    done = {k: {"stopped_reason": "completed", "iterations": 1, "solver_iterations": 2}
            for k in ("operator", "solver", "hybrid")}
    assert _early_stops({**fw, "results": done}) == []
    checked = {**done, "operator": {"stopped_reason": "check: no improvement", "iterations": 9}}
    assert _early_stops({**fw, "results": checked}) == []
