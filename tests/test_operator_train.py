"""Training: the loss falls, interrupted runs resume to the same weights, DDP on 2 CPU processes."""

import importlib
import json
import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp

from seisfno.operator import fit, load_model, synthetic_dataset
from seisfno.operator.checkpoint import load_tensors
from seisfno.physics import get_preset

torch.set_num_threads(1)
PRESET = get_preset("quick").replace(n=17, nt_out=6)
ARGS = {"width": 12, "modes": 5, "n_layers": 2, "projection": 16}


def _data(n=64):
    return synthetic_dataset(PRESET, n, seed=0)


def _fit(out, epochs, **kw):
    v, s, u = _data()
    return fit(v, s, u, PRESET, out, arch="fno2d", arch_args=ARGS, epochs=epochs, n_val=8,
               batch_size=8, lr=1e-2, device="cpu", progress=False, **kw)


def test_loss_decreases_and_card(tmp_path):
    r = _fit(tmp_path / "run", 10)
    hist = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in hist] == list(range(1, 11))
    assert set(hist[0]) == {"epoch", "train_rel_l2", "val_rel_l2", "lr", "seconds"}
    assert hist[-1]["train_rel_l2"] < 0.9 * hist[0]["train_rel_l2"]
    assert hist[-1]["val_rel_l2"] < hist[0]["val_rel_l2"]
    m = load_model(tmp_path / "run")
    assert m.card["metrics"]["val_rel_l2"] == pytest.approx(r.val_rel_l2)
    assert m.card["training"]["n_train"] == 56 and m.preset == PRESET
    v, s, _ = _data()
    assert m.predict(v[:2], s[:2]).shape == (2, 6, 17, 17)


def test_mse_loss_trains_and_records_the_relative_l2(tmp_path):
    """With ``loss="mse"`` the loss is the mean squared error, and the epoch's training error
    still the relative L2 (computed without a gradient, as the ``rel_l2`` loss's own terms are
    not there to reuse)."""
    tr = importlib.import_module("seisfno.operator.train")
    p = torch.randn(3, 2, 4, 4, requires_grad=True)
    t = 2 * torch.randn(3, 2, 4, 4)
    loss, per = tr._loss(p, t, "mse")
    torch.testing.assert_close(loss, ((p - t) ** 2).mean())
    torch.testing.assert_close(per, tr.rel_l2(p, t).detach())
    assert loss.requires_grad and not per.requires_grad
    loss, per = tr._loss(p, t, "rel_l2")
    torch.testing.assert_close(loss, tr.rel_l2(p, t).mean())
    assert not per.requires_grad
    r = _fit(tmp_path / "run", 6, loss="mse")
    first, last = r.history[0]["train_rel_l2"], r.history[-1]["train_rel_l2"]
    assert 0 < last < 0.9 * first < 2, (first, last)


def _fit_killed_after_epoch_2(out, epochs, monkeypatch):
    """``_fit(out, epochs)`` killed right after epoch 2's checkpoint."""
    tr = importlib.import_module("seisfno.operator.train")  # the module, not the function
    save = tr._save_state

    def save_then_die(ckpt, net, opt, counters):
        save(ckpt, net, opt, counters)
        if counters["epoch"] == 2:
            raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(tr, "_save_state", save_then_die)
        with pytest.raises(KeyboardInterrupt):
            _fit(out, epochs)


def _assert_same_weights(run_a, run_b):
    a, b = load_tensors(run_a / "model.safetensors"), load_tensors(run_b / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_resume_gives_same_weights(tmp_path, monkeypatch):
    _fit(tmp_path / "full", 4)
    _fit_killed_after_epoch_2(tmp_path / "cut", 4, monkeypatch)
    assert not (tmp_path / "cut" / "model.json").exists()
    r = _fit(tmp_path / "cut", 4)
    assert r.epochs_run == 4 and len(r.history) == 2
    _assert_same_weights(tmp_path / "full", tmp_path / "cut")
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["epoch"] for x in lines] == [1, 2, 3, 4]
    again = _fit(tmp_path / "cut", 4)  # rerunning a finished run changes nothing
    assert again.history == [] and again.val_rel_l2 == r.val_rel_l2


def test_resume_from_a_checkpoint_of_format_1(tmp_path, monkeypatch):
    """A run interrupted before 2026-12-03 saved complex spectral weights and complex AdamW
    moments; resuming it with this release converts both exactly and ends where an
    uninterrupted run ends."""
    from seisfno.operator import build_model
    from seisfno.operator.checkpoint import save_tensors
    from seisfno.operator.spectral import complex_layout

    _fit(tmp_path / "full", 3)
    _fit_killed_after_epoch_2(tmp_path / "cut", 3, monkeypatch)
    state = tmp_path / "cut" / "checkpoint" / "state.safetensors"
    t = load_tensors(state)
    names = [n for n, _ in build_model("fno2d", nt_out=PRESET.nt_out, **ARGS).named_parameters()]
    old = {}
    for k, v in t.items():
        name = k[6:] if k.startswith("model.") else names[int(k.split(".")[1])]
        spectral = name.startswith("spectral.") and v.ndim == 5
        old[k] = complex_layout(v) if spectral else v
    assert sum(v.is_complex() for v in old.values()) == 3 * ARGS["n_layers"]  # weight, 2 moments
    save_tensors(state, old)
    r = _fit(tmp_path / "cut", 3)
    assert r.epochs_run == 3 and len(r.history) == 1
    _assert_same_weights(tmp_path / "full", tmp_path / "cut")


def _ddp_worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        v, s, u = _data(24)
        # a generous time budget: its rule all-reduces the ranks' clocks (the count stays 2)
        r = fit(v, s, u, PRESET, out, arch="fno2d", arch_args=ARGS, epochs=2, n_val=4,
                batch_size=8, device="cpu", progress=False, time_budget_min=5.0)
        with open(f"{out}/rank{rank}.json", "w") as f:
            json.dump({"val": r.val_rel_l2, "hist": r.history}, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_cpu_processes(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    res = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert res[0]["val"] == res[1]["val"] and np.isfinite(res[0]["val"])
    m = load_model(tmp_path)
    assert m.card["training"]["world_size"] == 2
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2


def test_training_optimizer_is_fused_adamw_same_steps_to_round_off():
    """make_optimizer's fused AdamW (real parameters: fno2d) takes the steps of the multi-tensor
    one it replaced to round-off; complex parameters (paper3d) keep the multi-tensor one."""
    import copy

    from seisfno.operator import build_model
    from seisfno.operator.train import make_optimizer

    torch.manual_seed(0)
    a = build_model("fno2d", nt_out=3, width=4, modes=3, n_layers=2)
    b = copy.deepcopy(a)
    opt_a = torch.optim.AdamW(a.parameters(), lr=1e-2, weight_decay=1e-3, foreach=True)
    opt_b = make_optimizer(b, 1e-2, 1e-3)
    assert opt_b.defaults["fused"] is True
    x = torch.randn(2, 4, 9, 9)
    for _ in range(3):
        for net, opt in ((a, opt_a), (b, opt_b)):
            opt.zero_grad()
            net(x).square().mean().backward()
            opt.step()
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
        assert not torch.equal(pa, pb) or pa.numel() < 100  # really the other implementation
    net3 = build_model("paper3d", nt_out=4, width=4, modes=3, n_layers=1, projection=8)
    assert make_optimizer(net3, 1e-3, 0.0).defaults["foreach"] is True


def test_optimizer_falls_back_where_fused_adamw_is_missing(monkeypatch):
    """torch < 2.4 has no fused AdamW on the CPU (it raises): training then takes the
    multi-tensor one instead of failing."""
    from seisfno.operator import build_model

    tr = importlib.import_module("seisfno.operator.train")  # the module, not the function
    real = torch.optim.AdamW

    def old_adamw(params, **kw):
        if kw.get("fused"):
            raise RuntimeError("`fused=True` requires all the params to be ... CUDA")
        return real(params, **kw)

    monkeypatch.setattr(torch.optim, "AdamW", old_adamw)
    opt = tr.make_optimizer(build_model("fno2d", nt_out=3, width=4, modes=3, n_layers=1), 1e-3, 0)
    assert opt.defaults["foreach"] is True and not opt.defaults.get("fused")
