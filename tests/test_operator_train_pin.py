"""A short training run pinned bit for bit: refactoring the loop must not change its numbers.

The values were recorded from the loop as it was before it was split into named pieces
(in-memory data, no augmentation, CPU, float32, one thread). The network is a small pointwise
one registered for this test, so that the pin tests the loop (order of samples, learning-rate
schedule, loss, optimizer, validation) and not the FNO's arithmetic, which changes with
optimizations of the spectral layer.

The optimizer became the fused AdamW on 2026-12-03 (issue 12): the same arithmetic to
round-off, not bit for bit, so the run is pinned twice: with the multi-tensor AdamW of before
(``HISTORY``, ``WEIGHTS_SHA256``: the loop itself unchanged) and with the default
(``HISTORY_FUSED``, ``WEIGHTS_SHA256_FUSED``, recorded that day).
"""

import hashlib

import pytest
import torch
from torch import nn

from seisfno.operator import fit, registry, synthetic_dataset
from seisfno.operator.checkpoint import load_tensors
from seisfno.physics import get_preset

PRESET = get_preset("quick").replace(n=17, nt_out=6)
HISTORY = [  # (train_rel_l2, val_rel_l2, lr) per epoch, from the loop before the refactor
    (1.0181808948516846, 0.9764987230300903, 0.008920065838216749),
    (0.9593060255050659, 0.9476250410079956, 0.003948521376916244),
    (0.9433949828147888, 0.9429358839988708, 0.0002241068346999731),
]
WEIGHTS_SHA256 = "43903ccca6556893b24e57360ec27d537984a3da37d7f9c4f50cbb852ff74cbf"
# The fused AdamW (2026-12-03): the history equal to the last digit, the weights not.
HISTORY_FUSED = HISTORY
WEIGHTS_SHA256_FUSED = "b86144fc67bef0f839703755ef80550dc945bd26b143ce67d248398358624ecc"


class PinNet(nn.Module):
    """``(B, 4, nz, nx) -> (B, nt_out, nz, nx)`` by two 1 x 1 convolutions."""

    def __init__(self, nt_out: int, width: int = 8) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(4, width, 1), nn.Conv2d(width, nt_out, 1)

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))


def register(monkeypatch, module):
    """Make ``arch="pin"`` known to ``module`` (the training module, old or new)."""
    monkeypatch.setitem(registry.ARCHITECTURES, "pin", PinNet)
    orig = module.default_args
    monkeypatch.setattr(module, "default_args",
                        lambda arch, p: {"nt_out": p.nt_out} if arch == "pin" else orig(arch, p))


def pinned_run(fit_fn, out, **kw):
    v, s, u = synthetic_dataset(PRESET, 24, seed=3)
    r = fit_fn(v, s, u, PRESET, out, arch="pin", epochs=3, n_val=4, batch_size=4, lr=1e-2,
               device="cpu", progress=False, **kw)
    t = load_tensors(out / "model.safetensors")
    h = hashlib.sha256()
    for k in sorted(t):
        h.update(t[k].numpy().tobytes())
    return [(x["train_rel_l2"], x["val_rel_l2"], x["lr"]) for x in r.history], h.hexdigest()


@pytest.mark.parametrize("optimizer", ["foreach", "default"])
def test_short_run_is_pinned(tmp_path, monkeypatch, one_thread, optimizer):
    import importlib

    train = importlib.import_module("seisfno.operator.train")
    register(monkeypatch, train)
    if optimizer == "foreach":
        monkeypatch.setattr(train, "make_optimizer", lambda net, lr, wd: torch.optim.AdamW(
            net.parameters(), lr=lr, weight_decay=wd, foreach=True))
    history, sha = pinned_run(fit, tmp_path, augment="none")
    if optimizer == "foreach":
        assert history == HISTORY
        assert sha == WEIGHTS_SHA256
    else:
        assert history == HISTORY_FUSED
        assert sha == WEIGHTS_SHA256_FUSED
