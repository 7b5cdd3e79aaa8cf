"""The shipped models: loadable by name, documented, small, and as accurate as their cards say.

Accuracy is checked on fresh solver wavefields (a data seed the models never saw), so a broken
file, a wrong normalization or a layout bug in the network would fail here.
"""

import numpy as np
import pytest
import torch

from seisfno.data import draw_sample
from seisfno.operator import load_model
from seisfno.operator.checkpoint import model_paths
from seisfno.operator.train import rel_l2
from seisfno.physics import AcousticSolver, get_preset


@pytest.mark.parametrize("name", ["quick", "paper"])
def test_card_and_size(name):
    m = load_model(name)
    card = m.card
    assert m.preset == get_preset(name)
    weights, _ = model_paths(name)
    assert weights.stat().st_size <= 20 * 2**20
    assert {"command", "machine", "date"} <= set(card["provenance"])
    assert 0 < card["metrics"]["val_rel_l2"] < 1
    assert card["data"]["n_train"] >= 1000


@pytest.mark.parametrize(("name", "n", "bound"), [("quick", 6, 0.09), ("paper", 2, 0.38)])
def test_accuracy_on_fresh_samples(name, n, bound, one_thread):
    """Relative L2 on unseen samples, within ~1.5x of the validation error on the card."""
    m = load_model(name)
    preset = m.preset
    draws = [draw_sample(preset, seed=987_654, index=i) for i in range(n)]
    v = np.stack([d[0] for d in draws])
    s = np.stack([d[1] for d in draws])
    u = AcousticSolver.from_preset(preset)(torch.as_tensor(v), s)
    with torch.no_grad():
        p = m.predict(v, s)
    err = rel_l2(p, u).mean().item()
    assert err < bound, f"{name}: relative L2 {err:.3f} on fresh samples"
    assert bound < 1.6 * m.card["metrics"]["val_rel_l2"] + 0.01
