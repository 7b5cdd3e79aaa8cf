"""``seisfno invert``: JSON output, files, and clear errors."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from test_inversion_common import CHEAP, TINY, tiny_obs_solver

import seisfno.physics.solver as solver_mod
from seisfno.cli import main
from seisfno.inversion import default_sources, observe
from seisfno.physics import PRESETS, square_anomaly


@pytest.fixture(autouse=True)
def tiny_preset(monkeypatch):
    monkeypatch.setitem(PRESETS, "tiny", TINY.replace(name="tiny"))
    monkeypatch.setattr(solver_mod, "make_plan", functools.partial(solver_mod.make_plan, **CHEAP))


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(["invert", *map(str, args)])
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def test_cli_inversion_writes_results(tmp_path, capsys):
    code, out, err = run(capsys, "--true-model", "square", "--forward", "fd", "--preset", "tiny",
                         "--sources", 6, "--iterations", 3, "--lr", 0.03, "--out", tmp_path)
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 1
    res = json.loads(lines[0])
    assert res["iterations"] == 3 and res["forward"] == "fd:torch"
    assert res["model_misfit"] < res["start_misfit"] and res["seconds_per_iteration"] > 0
    assert res["stopped_reason"] == "completed" and res["data_misfit"] > 0
    for name in ("inverted.npy", "lowest_loss.npy", "curves.csv", "result.json", "inversion.png",
                 "misfit.png"):
        assert (tmp_path / name).is_file(), name
    assert np.load(tmp_path / "inverted.npy").shape == TINY.grid.shape
    assert len((tmp_path / "curves.csv").read_text().splitlines()) == 1 + 4


def test_cli_observed_file(tmp_path, capsys):
    src = default_sources(TINY.grid, 4)
    obs = observe(square_anomaly(TINY.grid), src, TINY, solver=tiny_obs_solver()).numpy()
    good = tmp_path / "obs.npz"
    np.savez(good, wavefield=obs, source_xz_m=src, preset=json.dumps(TINY.to_dict()))
    code, out, err = run(capsys, "--observed", good, "--preset", "tiny", "--iterations", 2,
                         "--receivers", "surface", "--noise-snr", 20, "--out", tmp_path / "o")
    assert code == 0, err
    res = json.loads(out)
    assert res["model_misfit"] is None and res["n_sources"] == 4 and res["iterations"] == 2

    bad = tmp_path / "bad.npz"
    np.savez(bad, wavefield=obs[:, :, :8, :8], source_xz_m=src)
    code, out, err = run(capsys, "--observed", bad, "--preset", "tiny", "--out", tmp_path / "b")
    assert code == 2 and "grid" in err and "Traceback" not in err

    other = tmp_path / "other.npz"
    np.savez(other, wavefield=obs, source_xz_m=src,
             preset=json.dumps(TINY.replace(f_peak_hz=3.0).to_dict()))
    code, out, err = run(capsys, "--observed", other, "--preset", "tiny", "--out", tmp_path / "c")
    assert code == 2 and "observations made for preset" in err


@pytest.mark.parametrize("args, message", [
    (["--sources", 0, "--true-model", "square"], "at least 1"),
    (["--true-model", "square", "--true", "x.npy"], "one true model"),
    ([], "give --true"),
    (["--true-model", "square", "--hybrid-switch", 2], "needs an operator"),
    (["--true-model", "marmousi"], "unknown benchmark"),
    (["--true-model", "square", "--forward", "fno:no-such-model-xyz"], "no model"),
    (["--true-model", "square", "--vmin", 3500, "--vmax", 2500], "bad velocity range"),
    (["--true-model", "square", "--vmin", 2500], "both --vmin and --vmax"),
])
def test_cli_errors(tmp_path, capsys, args, message):
    code, out, err = run(capsys, "--preset", "tiny", "--out", tmp_path, *args)
    assert code == 2, err
    assert message in err and "Traceback" not in err and out == ""


def test_cli_wrong_grid_true_model(tmp_path, capsys):
    np.save(tmp_path / "v.npy", np.full((10, 12), 3000.0, np.float32))
    code, out, err = run(capsys, "--true", tmp_path / "v.npy", "--preset", "tiny",
                         "--out", tmp_path)
    assert code == 2 and "10 x 12" in err


def test_cli_nan_stops_with_a_clear_message(tmp_path, capsys, monkeypatch):
    import seisfno.inversion.forward as fwd_mod

    real = fwd_mod.SolverForward.__call__
    monkeypatch.setattr(fwd_mod.SolverForward, "__call__",
                        lambda self, v, s: real(self, v, s) * float("nan"))
    code, out, err = run(capsys, "--true-model", "square", "--preset", "tiny", "--sources", 4,
                         "--iterations", 3, "--out", tmp_path)
    assert code == 2 and "non-finite" in err and "Traceback" not in err
    assert json.loads(out)["stopped_reason"].startswith("non-finite")
    assert (tmp_path / "lowest_loss.npy").is_file()


def test_cli_hybrid_with_a_saved_operator(tmp_path, capsys):
    from test_inversion_operator import _save_tiny_fno

    _save_tiny_fno(tmp_path / "run", TINY)
    code, out, err = run(capsys, "--true-model", "square", "--forward", f"fno:{tmp_path / 'run'}",
                         "--hybrid-switch", 2, "--iterations", 3, "--sources", 4,
                         "--out", tmp_path / "h")
    assert code == 0, err
    res = json.loads(out)
    assert res["operator_iterations"] == 2 and res["solver_iterations"] == 1
    assert res["iterations"] == 3 and res["observations"].startswith("solver:")
    phases = [r.split(",")[-1] for r in (tmp_path / "h" / "curves.csv").read_text().split()[1:]]
    assert phases == ["start", "operator", "operator", "solver"]
    code, out, err = run(capsys, "--true-model", "square", "--forward", f"fno:{tmp_path / 'run'}",
                         "--preset", "quick", "--out", tmp_path / "x")
    assert code == 2 and "cannot be used with preset" in err


def test_cli_frequency_continuation(tmp_path, capsys):
    code, out, err = run(capsys, "--true-model", "square", "--preset", "tiny", "--sources", 4,
                         "--stages", "0.7:2,full:1", "--lr", 0.03, "--out", tmp_path / "ms")
    assert code == 0, err
    res = json.loads(out)
    assert res["iterations"] == 3 and res["stages"] == [[0.7, 2], [None, 1]]
    code, out, err = run(capsys, "--true-model", "square", "--preset", "tiny", "--sources", 4,
                         "--lowpass-hz", 0.7, "--iterations", 1, "--out", tmp_path / "lp")
    assert code == 0, err
    assert json.loads(out)["lowpass_hz"] == 0.7
    for args, msg in ((("--stages", "3:x"), "bad stage '3:x' in"),
                      (("--stages", "full:2", "--iterations", 5), "give one of them"),
                      (("--stages", "1:2", "--lowpass-hz", 1), "not both"),
                      (("--stages", "1:2", "--hybrid-switch", 3), "must total 3")):
        code, out, err = run(capsys, "--true-model", "square", "--preset", "tiny", *args,
                             "--out", tmp_path / "bad")
        assert code == 2 and msg in err and "Traceback" not in err, (args, err)


def test_cli_hybrid_with_operator_stages(tmp_path, capsys):
    from test_inversion_operator import _save_tiny_fno

    _save_tiny_fno(tmp_path / "run", TINY)
    code, out, err = run(capsys, "--true-model", "square", "--forward", f"fno:{tmp_path / 'run'}",
                         "--hybrid-switch", 2, "--stages", "0.7:1,full:1", "--iterations", 3,
                         "--sources", 4, "--out", tmp_path / "h")
    assert code == 0, err
    res = json.loads(out)
    assert res["operator_iterations"] == 2 and res["solver_iterations"] == 1


def test_cli_operator_refereed_by_the_solver(tmp_path, capsys):
    from test_inversion_operator import _save_tiny_fno

    _save_tiny_fno(tmp_path / "run", TINY)
    fno = f"fno:{tmp_path / 'run'}"
    code, out, err = run(capsys, "--true-model", "square", "--forward", fno, "--sources", 4,
                         "--iterations", 4, "--check-sources", 2, "--check-every", 2,
                         "--out", tmp_path / "c")
    assert code == 0, err
    res = json.loads(out)
    assert res["checks"] == 3 and res["observations"].startswith("solver:torch on a 2x finer")
    code, out, err = run(capsys, "--true-model", "square", "--forward", fno, "--sources", 4,
                         "--hybrid-switch", 2, "--iterations", 3, "--check-sources", 2,
                         "--check-every", 1, "--out", tmp_path / "h")
    assert code == 0, err
    assert json.loads(out)["solver_iterations"] == 1
    code, out, err = run(capsys, "--true-model", "square", "--check-sources", 2,
                         "--out", tmp_path / "bad")
    assert code == 2 and "referees an operator" in err


def test_cli_check_stop_is_a_normal_end(tmp_path, capsys, monkeypatch):
    """The referee stopping the operator is the check working: exit 0, not an error."""
    from test_inversion_operator import _save_tiny_fno

    from seisfno.inversion import SolverCheck

    values = iter([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    monkeypatch.setattr(SolverCheck, "__call__", lambda self, v, f=None: next(values))
    _save_tiny_fno(tmp_path / "run", TINY)
    code, out, err = run(capsys, "--true-model", "square", "--forward", f"fno:{tmp_path / 'run'}",
                         "--sources", 4, "--iterations", 5, "--check-sources", 2,
                         "--check-every", 1, "--check-patience", 1, "--out", tmp_path / "c")
    assert code == 0, err
    res = json.loads(out)
    assert res["stopped_reason"].startswith("check:") and res["iterations"] == 1
    assert "error" not in err
    assert json.loads((tmp_path / "c" / "result.json").read_text())["stopped_reason"] == \
        res["stopped_reason"]


def test_cli_shows_progress_on_a_terminal_and_is_quiet_otherwise(tmp_path, capsys, monkeypatch):
    args = ("--true-model", "square", "--forward", "fd", "--preset", "tiny", "--sources", 4,
            "--iterations", 3, "--lr", 0.03)
    code, out, err = run(capsys, *args, "--out", tmp_path / "a")
    assert code == 0 and err == ""  # not a terminal (tests, pipes): nothing
    monkeypatch.setenv("SEISFNO_PROGRESS", "1")  # as on a terminal
    code, out, err = run(capsys, *args, "--out", tmp_path / "b")
    assert code == 0, err
    assert "3/3" in err and "loss=" in err and "misfit=" in err
    code, out, err = run(capsys, *args, "--quiet", "--log-every", 1, "--out", tmp_path / "c")
    assert code == 0 and err == ""
    assert json.loads(out)["iterations"] == 3


def test_cli_names_the_lowest_loss_model_for_what_it_is(tmp_path, capsys):
    code, out, err = run(capsys, "--true-model", "square", "--forward", "fd", "--preset", "tiny",
                         "--sources", 4, "--iterations", 2, "--out", tmp_path)
    assert code == 0, err
    assert not (tmp_path / "best.npy").exists()
    rec = json.loads((tmp_path / "result.json").read_text())
    assert "not the result" in rec["files"]["lowest_loss.npy"]
    assert "best_misfit" not in rec and "lowest_loss_iteration" in rec
    # observations from a 2x finer true model and discretization (no inverse crime)
    assert rec["observations"].startswith("solver:torch on a 2x finer grid (31 x 31 nodes)")
    assert "given at that resolution" in rec["observations"]
