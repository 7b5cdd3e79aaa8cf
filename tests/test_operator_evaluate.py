"""evaluate(): errors per sample and per time, super-resolution inputs, the Fig. 2 figure."""

import numpy as np
import pytest
import torch

from seisfno import SeisfnoError
from seisfno.operator import (
    Normalization,
    OperatorModel,
    build_model,
    evaluate,
    fit,
    make_card,
    plot_comparison,
    synthetic_dataset,
)
from seisfno.physics import get_preset

torch.set_num_threads(1)
PRESET = get_preset("quick").replace(n=17, nt_out=6)


def _model():
    torch.manual_seed(0)
    args = {"nt_out": 6, "width": 8, "modes": 4, "n_layers": 2, "projection": 8}
    norm = Normalization(3000.0, 150.0, 2600.0, 3400.0, 1e-8)
    return OperatorModel(build_model("fno2d", **args).eval(), norm, PRESET,
                         make_card("fno2d", args, norm, PRESET))


def test_evaluate_arrays_and_resolution():
    m = _model()
    v, s, u = synthetic_dataset(PRESET, 5, seed=1)
    r = evaluate(m, (v, s, u), batch_size=2)
    assert r["n_samples"] == 5 and len(r["rel_l2_per_sample"]) == 5
    assert len(r["rel_l2_per_time"]) == 6 and r["grid"] == [17, 17]
    with torch.no_grad():
        pred = m.predict(v, s)
    want = float(((pred - torch.as_tensor(u)).flatten(1).norm(dim=1)
                  / torch.as_tensor(u).flatten(1).norm(dim=1)).mean())
    assert r["rel_l2_mean"] == pytest.approx(want, rel=1e-5)
    # resolution=33: velocities resampled to 33 x 33, compared to 33 x 33 wavefields
    _, _, u33 = synthetic_dataset(PRESET.replace(n=33), 5, seed=1)
    r33 = evaluate(m, (v, s, u33), resolution=33)
    assert r33["grid"] == [33, 33] and np.isfinite(r33["rel_l2_mean"])
    with pytest.raises(SeisfnoError, match="evaluation grid"):
        evaluate(m, (v, s, u), resolution=33)


def test_time_budget_fits_schedule(tmp_path):
    v, s, u = synthetic_dataset(PRESET, 24, seed=0)
    r = fit(v, s, u, PRESET, tmp_path, arch_args={"width": 8, "modes": 4, "n_layers": 1},
            time_budget_min=0.02, n_val=4, batch_size=4, device="cpu", progress=False)
    assert 1 <= r.epochs_run < 10_000 and r.seconds < 10


def test_figure(tmp_path):
    v, s, u = synthetic_dataset(PRESET, 1, seed=0)
    path = plot_comparison(u[0], 0.9 * u[0], v[0], s[0], PRESET, tmp_path / "f.png")
    assert path.stat().st_size > 10_000
