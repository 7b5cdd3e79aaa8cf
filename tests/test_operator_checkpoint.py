"""Checkpoints: round trip, no pickle, bad files; predict checks and differentiability."""

import json

import numpy as np
import pytest
import torch

from seisfno import SeisfnoError
from seisfno.operator import (
    Normalization,
    OperatorModel,
    build_model,
    default_args,
    load_model,
    make_card,
    save_model,
)
from seisfno.physics import get_preset

torch.set_num_threads(1)
PRESET = get_preset("quick").replace(n=17, nt_out=6)
NORM = Normalization(3000.0, 150.0, 2600.0, 3400.0, 1e-8)


def _saved(tmp_path, arch="fno2d"):
    torch.manual_seed(0)
    args = {**default_args(arch, PRESET), "width": 8, "modes": 4}
    if arch == "paper3d":
        args.update(projection=8, width=4, modes=3)
    net = build_model(arch, **args).eval()
    card = make_card(arch, args, NORM, PRESET, metrics={"val_rel_l2": 0.5})
    save_model(tmp_path / "m", net, card)
    return net, card


@pytest.mark.parametrize("arch", ["fno2d", "paper3d"])
def test_roundtrip_equal_outputs_without_pickle(tmp_path, arch, monkeypatch):
    net, card = _saved(tmp_path, arch)
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load called"))
    m = load_model(tmp_path / "m")
    v = 3000 + 100 * torch.randn(2, 17, 17)
    src = np.array([[3000.0, 4000.0], [7000.0, 1000.0]])
    want = OperatorModel(net, NORM, PRESET, card).predict(v, src)
    torch.testing.assert_close(m.predict(v, src), want, rtol=0, atol=0)
    assert m.card["arch"] == arch and m.preset == PRESET
    assert load_model(tmp_path / "m.json").card == m.card
    assert m.predict(v[0].numpy(), src[0]).shape == (1, 6, 17, 17)


def test_bad_format_version_and_corrupt_files(tmp_path):
    _saved(tmp_path)
    card = json.loads((tmp_path / "m.json").read_text())
    card["format_version"] = 99
    (tmp_path / "m.json").write_text(json.dumps(card))
    with pytest.raises(SeisfnoError, match="format version 99"):
        load_model(tmp_path / "m")
    card["format_version"] = 1
    (tmp_path / "m.json").write_text(json.dumps(card))
    (tmp_path / "m.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SeisfnoError, match="corrupt"):
        load_model(tmp_path / "m")
    (tmp_path / "m.json").write_text("{not json")
    with pytest.raises(SeisfnoError, match="corrupt"):
        load_model(tmp_path / "m")
    with pytest.raises(SeisfnoError, match="no model"):
        load_model("no_such_model_name")


def test_predict_checks(tmp_path):
    _saved(tmp_path)
    m = load_model(tmp_path / "m")
    v = torch.full((1, 17, 17), 3000.0)
    with pytest.raises(SeisfnoError, match="outside the domain"):
        m.predict(v, [[20000.0, 100.0]])
    with pytest.raises(SeisfnoError):
        m.predict(torch.full((2, 17, 17), 3000.0), [[1.0, 1.0]] * 3)
    with pytest.raises(SeisfnoError):
        m.predict(torch.full((1, 1, 17, 17), 3000.0), [[1.0, 1.0]])
    with pytest.warns(UserWarning, match="training range"):
        m.predict(torch.full((1, 17, 17), 6000.0), [[1000.0, 1000.0]])
    other = PRESET.grid.__class__.from_extent(17, 17, 5000.0, 5000.0)
    with pytest.raises(SeisfnoError, match="trained on"):
        m.predict(v, [[1000.0, 1000.0]], grid=other)
    with pytest.raises(SeisfnoError, match="cannot serve"):
        m.check_preset(get_preset("paper"))
    m.check_preset(PRESET.replace(n=33))  # another sampling of the same setup is fine
    assert m.predict(torch.full((1, 33, 33), 3000.0), [[1000.0, 1000.0]]).shape == (1, 6, 33, 33)


def test_predict_is_differentiable(tmp_path):
    _saved(tmp_path)
    m = load_model(tmp_path / "m")
    src = np.array([[4000.0, 5000.0]])
    w = torch.randn(1, 6, 17, 17, dtype=torch.float64)
    v0 = 3000 + 50 * torch.randn(1, 17, 17, dtype=torch.float64)
    # float32 as loaded: gradients flow to the velocity
    v = v0.clone().float().requires_grad_()
    g32 = torch.autograd.grad((m.predict(v, src) * w.float()).sum(), v)[0]
    assert torch.isfinite(g32).all() and g32.abs().sum() > 0
    # float64: autograd matches a central finite difference along a random direction
    m.double()

    def f(v):
        return (m.predict(v, src) * w).sum()

    v = v0.clone().requires_grad_()
    g = torch.autograd.grad(f(v), v)[0]
    torch.testing.assert_close(g.float(), g32, rtol=1e-3, atol=1e-3 * float(g32.abs().max()))
    d = torch.randn_like(v0)
    eps = 1e-2
    with torch.no_grad():
        fd = (f(v0 + eps * d) - f(v0 - eps * d)) / (2 * eps)
    assert float((g * d).sum()) == pytest.approx(float(fd), rel=1e-6)


def test_saving_a_loaded_format_1_model_writes_format_2(tmp_path):
    """The shipped ``paper`` model is stored in format 1 (``quick`` in 2 since 2026-12-03); saved
    again, card and weights are format 2."""
    from seisfno.operator import FORMAT_VERSION, save_model

    m = load_model("paper")
    assert m.card["format_version"] == 1
    save_model(tmp_path / "again", m.net, m.card)
    again = load_model(tmp_path / "again")
    assert again.card["format_version"] == FORMAT_VERSION == 2
    assert all(not p.is_complex() for p in again.net.parameters())
    for a, b in zip(m.net.parameters(), again.net.parameters(), strict=True):
        assert torch.equal(a, b)
