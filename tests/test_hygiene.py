"""Library hygiene: figures leave matplotlib's backend alone; tests leave torch's threads."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from seisfno.physics import Grid, get_preset


@pytest.fixture
def svg_backend():
    """A non-Agg backend, as a notebook's inline backend would be; restored afterwards."""
    before = matplotlib.get_backend()
    matplotlib.use("svg")
    yield "svg"
    matplotlib.use(before)


def test_plotting_leaves_the_backend_and_pyplot_alone(svg_backend, tmp_path):
    import matplotlib.pyplot as plt

    from seisfno.inversion.plots import plot_curves, plot_models
    from seisfno.operator.evaluate import plot_comparison
    from seisfno.operator.studies import _plot_datasize
    from seisfno.plotting import plot_wavefield

    preset = get_preset("quick", n=12, nt_out=6)
    v = np.full((12, 12), 3000.0, np.float32)
    u = np.random.default_rng(0).standard_normal((6, 12, 12)).astype(np.float32)
    figures_before = plt.get_fignums()
    paths = [
        plot_wavefield(u, v, (500.0, 500.0), preset, tmp_path / "w.png"),
        plot_comparison(u, 0.9 * u, v, (500.0, 500.0), preset, tmp_path / "c.png"),
        plot_models(Grid(12, 12, 100.0, 100.0), v, v, v, tmp_path / "m.png", title="t"),
        plot_curves({"a": {"misfit": [1.0, 0.5], "time_s": [0.0, 1.0]}}, tmp_path / "k.png"),
    ]
    _plot_datasize([{"n_train": 4, "augment": "none", "train_rel_l2": 0.5, "val_rel_l2": 0.6}],
                   tmp_path / "d.png")
    paths.append(tmp_path / "d.png")
    assert matplotlib.get_backend() == svg_backend
    assert plt.get_fignums() == figures_before  # no pyplot figure left open
    for p in paths:
        assert Path(p).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", p


def test_tests_cannot_leak_torch_threads(pytester):
    """A test that changes torch's thread count does not change it for the next one."""
    pytester.makeconftest((Path(__file__).parent / "conftest.py").read_text())
    pytester.makepyfile(test_inner="""
        import torch

        def test_a_sets_threads():
            torch.set_num_threads(3)

        def test_b_sees_the_suite_default():
            assert torch.get_num_threads() == 1
    """)
    before = torch.get_num_threads()
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert torch.get_num_threads() == before
