"""evaluate(): errors per sample and per time, super-resolution inputs, the Fig. 2 figure."""

from unittest.mock import patch

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


def _budget_epochs(costs, minutes=1.0, max_epochs=100, gap=0.0, counters=None,
                   other_costs=None):
    """The epoch counts :class:`TimeBudget` sets while epochs cost ``costs`` seconds in turn.

    ``gap``: seconds between epochs (checkpoint, metrics) on the run's clock; ``counters``: a
    resumed run's; ``other_costs``: a second rank's epochs (its clock and costs enter by the
    rule's all-reduce, emulated as the MAX it is). Returns (counts, clock at the end, cuts).
    """
    import importlib
    from types import SimpleNamespace

    train_mod = importlib.import_module("seisfno.operator.train")  # the module, not train()

    c = {"seconds": 0.0, "epochs_total": max_epochs, "epoch": 0, **(counters or {})}
    run = SimpleNamespace(counters=c, dev=torch.device("cpu"), world=1 if other_costs is None
                          else 2)
    rule, counts = train_mod.TimeBudget(minutes, max_epochs), []
    clock, other = c["seconds"], c["seconds"]
    for i, cost in enumerate(costs):
        epoch, t0 = c["epoch"], clock
        clock += cost
        c["seconds"], c["epoch"] = clock, epoch + 1
        theirs = None
        if other_costs is not None:
            other += other_costs[i]
            theirs = torch.tensor([other_costs[i], other], dtype=torch.float64)

        def all_reduce(t, op=None, theirs=theirs):
            t.copy_(torch.maximum(t, theirs))

        with patch.object(train_mod.time, "perf_counter", return_value=clock), \
                patch.object(train_mod.dist, "all_reduce", all_reduce):
            rule.after_epoch(run, epoch, 0.1, t0)
        counts.append(c["epochs_total"])
        clock += gap
        other += gap
        if epoch + 1 >= counts[-1]:
            break
    return counts, clock - gap, c.get("budget_cuts", 0)


def test_time_budget_holds_when_the_epochs_slow_down():
    # steady 5 s epochs after an 8 s first: 11 fit into 60 s, fixed after the second, kept
    counts, end, cuts = _budget_epochs([8.0] + [5.0] * 20)
    assert counts[1:] == [11] * 10 and end == 58.0 and cuts == 0
    # the same with 1 s of checkpoint between epochs: the cost is the whole period, so a steady
    # machine is not cut (the epoch's own 4 s as its cost fitted 14 and then cut)
    counts, end, cuts = _budget_epochs([4.0] * 20, gap=1.0)
    assert counts[1:] == [12] * 11 and end == 59.0 and cuts == 0
    # one slow epoch (a hiccup under half an epoch late) cuts nothing: the faster of the last
    # two epochs is the cost, so the rest of the run is not judged by the hiccup
    counts, end, cuts = _budget_epochs([5.0] * 5 + [7.0] + [5.0] * 20)
    assert counts[-1] == 12 and end == 62.0 and cuts == 0
    # the machine slows to 10 s an epoch after epoch 4: the count is cut and the budget holds,
    # where the count fixed after epoch 2 alone would have ended at 100 s
    slow = [5.0] * 4 + [10.0] * 20
    counts, end, cuts = _budget_epochs(slow)
    assert counts[:4] == [12, 12, 12, 12] and counts[-1] < 12 and cuts >= 1
    assert end <= 60.0 + 5.0
    # a faster machine later does not stretch a fixed count (the same steps as a steady run)
    counts, _, _ = _budget_epochs([5.0] * 3 + [2.0] * 20)
    assert set(counts[1:]) == {12}
    # two ranks: the one on time sets the counts the late one sets (no rank ends alone)
    both = _budget_epochs([5.0] * 24, other_costs=slow)
    assert both[0] == _budget_epochs(slow)[0]


def test_time_budget_resumes_a_checkpoint_without_epoch_costs():
    # written before the cuts: fixed at 12 epochs of 5 s, no cost recorded; the first resumed
    # epoch (20 s: warm-up) is not the cost alone, so the run ends on its budget, not at once
    old = {"seconds": 10.0, "epochs_total": 12, "epoch": 2, "budget_fixed": True}
    counts, end, _ = _budget_epochs([20.0] + [5.0] * 20, counters=old)
    assert counts[-1] == 9 and end == 60.0


def test_rerunning_a_finished_budgeted_run_trains_nothing(tmp_path):
    v, s, u = synthetic_dataset(PRESET, 12, seed=0)
    kw = dict(arch_args={"width": 4, "modes": 3, "n_layers": 1}, time_budget_min=0.01,
              epochs=100_000, n_val=4, batch_size=4, device="cpu", progress=False)
    r = fit(v, s, u, PRESET, tmp_path, **kw)
    assert 1 <= r.epochs_run < 100_000  # ended by the budget, far below the cap
    again = fit(v, s, u, PRESET, tmp_path, **kw)  # the same arguments: resumed, finished
    assert again.history == [] and again.epochs_run == r.epochs_run


def test_figure(tmp_path):
    v, s, u = synthetic_dataset(PRESET, 1, seed=0)
    path = plot_comparison(u[0], 0.9 * u[0], v[0], s[0], PRESET, tmp_path / "f.png")
    assert path.stat().st_size > 10_000


# --- envelope and phase misfits (Kristekova et al. 2006, 2009; time-domain variant) ----------

def _gabor(t, t0=2.0, f=5.0, width=0.5):
    """A narrow-band wavelet: its analytic signal's phase advances at ``2 pi f``."""
    return np.exp(-(((t - t0) / width) ** 2)) * np.cos(2 * np.pi * f * (t - t0))


def test_envelope_misfit_of_a_pure_scaling():
    """A scaling by s > 0 changes the envelope by s - 1 everywhere and no phase."""
    from seisfno.operator.evaluate import envelope_phase_misfit

    rng = np.random.default_rng(0)
    true = rng.standard_normal((3, 40, 5, 6))
    for s in (1.3, 0.8):
        em, pm = envelope_phase_misfit(s * true, true)
        np.testing.assert_allclose(em, s - 1, rtol=1e-9)
        np.testing.assert_allclose(pm, 0.0, atol=1e-12)
    em, pm = envelope_phase_misfit(true, true)
    assert np.all(em == 0) and np.all(np.abs(pm) < 1e-15)
    # a sign flip is a phase error of pi: |PM| = 1, no envelope error
    em, pm = envelope_phase_misfit(-true, true)
    np.testing.assert_allclose(np.abs(pm), 1.0, rtol=1e-9)
    np.testing.assert_allclose(em, 0.0, atol=1e-12)


def test_phase_misfit_of_a_small_delay():
    """A delay d of a narrow-band signal of frequency f: PM = -2 f d (late is negative, early
    positive), as its analytic signal is the reference's turned by -2 pi f d; EM is only the
    shift of the Gaussian envelope exp(-(t/w)^2), |EM| = |d| / w (5 times smaller here)."""
    from seisfno.operator.evaluate import envelope_phase_misfit

    t = np.arange(400) * 0.01
    true = np.stack([_gabor(t), _gabor(t, t0=1.5)])[:, :, None]  # (B, nt, 1 node)
    for d in (0.004, -0.004, 0.01):
        pred = np.stack([_gabor(t - d), _gabor(t - d, t0=1.5)])[:, :, None]
        em, pm = envelope_phase_misfit(pred, true)
        np.testing.assert_allclose(np.abs(em), abs(d) / 0.5, rtol=0.03)
        np.testing.assert_allclose(pm, -2 * 5.0 * d, rtol=0.03)


def test_misfit_matches_scipy_analytic_signal_on_tensors():
    """Tensors in, the same numbers as the formula on scipy's analytic signal by hand."""
    from scipy.signal import hilbert

    from seisfno.operator.evaluate import envelope_phase_misfit

    rng = np.random.default_rng(1)
    true = rng.standard_normal((1, 30, 4))
    pred = true + 0.3 * rng.standard_normal((1, 30, 4))
    w = hilbert(pred[0], N=60, axis=0)[:30]
    w0 = hilbert(true[0], N=60, axis=0)[:30]
    em_ref = np.linalg.norm(np.abs(w) - np.abs(w0)) / np.linalg.norm(np.abs(w0))
    pm_ref = (np.linalg.norm(np.abs(w0) * np.angle(w / w0) / np.pi)
              / np.linalg.norm(np.abs(w0)))
    em, pm = envelope_phase_misfit(torch.as_tensor(pred), torch.as_tensor(true))
    assert abs(em[0]) == pytest.approx(em_ref, rel=1e-9)
    assert abs(pm[0]) == pytest.approx(pm_ref, rel=1e-9)
    with pytest.raises(SeisfnoError, match="equal"):
        envelope_phase_misfit(pred, true[:, :20])


def test_evaluate_reports_misfits():
    m = _model()
    v, s, u = synthetic_dataset(PRESET, 3, seed=2)
    r = evaluate(m, (v, s, u))
    assert len(r["envelope_misfit_per_sample"]) == 3 and len(r["phase_misfit_per_sample"]) == 3
    assert r["envelope_misfit_mean"] == pytest.approx(
        np.mean(np.abs(r["envelope_misfit_per_sample"])))
    assert r["phase_misfit_mean"] > 0 and r["symmetrized"] is False


# --- symmetrized inference --------------------------------------------------------------------

def test_symmetrized_prediction_is_equivariant():
    """The average over D4 commutes with every symmetry, exactly (to float32 round-off), while
    the plain prediction of an untrained network does not."""
    from seisfno.operator.evaluate import predict_symmetrized
    from seisfno.physics.symmetry import D4, transform_field, transform_sources

    m = _model()
    v, s, _ = synthetic_dataset(PRESET, 2, seed=3)
    g = PRESET.grid
    with torch.no_grad():
        base = predict_symmetrized(m, v, s)
        plain = m.predict(v, s)
        assert base.shape == plain.shape
        gaps = []
        for k in D4[1:]:
            vk = torch.as_tensor(transform_field(v, k).copy())
            got = predict_symmetrized(m, vk, transform_sources(s, k, g))
            want = transform_field(base, k)
            assert torch.allclose(got, want, rtol=1e-4, atol=1e-5 * float(base.abs().max()))
            gaps.append(float((m.predict(vk, transform_sources(s, k, g))
                               - transform_field(plain, k)).abs().max()))
    assert max(gaps) > 1e-3 * float(plain.abs().max())


def test_symmetrize_needs_a_square_grid():
    """A model of a 17 x 21 node domain: a clear error, from the function and from evaluate."""
    from seisfno.operator.evaluate import predict_symmetrized
    from seisfno.physics import Grid

    g = PRESET.grid
    rect = PRESET.replace(grid=Grid(17, 21, g.dz_m, g.dx_m))
    args = {"nt_out": 6, "width": 8, "modes": 4, "n_layers": 2, "projection": 8}
    norm = Normalization(3000.0, 150.0, 2600.0, 3400.0, 1e-8)
    m = OperatorModel(build_model("fno2d", **args).eval(), norm, rect,
                      make_card("fno2d", args, norm, rect))
    v = np.full((1, 17, 21), 3000.0, np.float32)
    with pytest.raises(SeisfnoError, match="square grid with equal spacing"):
        predict_symmetrized(m, v, [[100.0, 100.0]])
    u = np.zeros((1, 6, 17, 21), np.float32)
    with pytest.raises(SeisfnoError, match="square grid with equal spacing"):
        evaluate(m, (v, np.array([[100.0, 100.0]]), u), symmetrize=True)
