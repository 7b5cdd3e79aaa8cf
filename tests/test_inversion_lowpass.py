"""The time low-pass used for frequency continuation in FWI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seisfno import SeisfnoError
from seisfno.inversion.survey import lowpass

DT = 0.04  # the paper's output sampling: Nyquist 12.5 Hz


def _sines(*freqs_hz, nt=400):
    t = torch.arange(nt, dtype=torch.float64) * DT
    return torch.stack([torch.sin(2 * np.pi * f * t) for f in freqs_hz])[None]  # (1, F, nt)


def test_passes_low_and_stops_high_frequencies_without_phase_shift():
    x = _sines(1.0, 8.0).transpose(1, 2)  # (1, nt, 2): time on axis 1
    y = lowpass(x, DT, 3.0)
    mid = slice(100, 300)  # away from the ends (zero padding)
    low, high = x[0, mid, 0], x[0, mid, 1]
    np.testing.assert_allclose(y[0, mid, 0], low, atol=0.02)  # gain ~1, no delay
    # Butterworth order 4 at 8 Hz / 3 Hz: gain 1/sqrt(1 + (8/3)^8) = 0.02
    assert float(y[0, mid, 1].abs().max()) < 0.05 * float(high.abs().max())


def test_matrix_form_equals_the_frequency_domain_filter():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 37, 3, generator=g, dtype=torch.float64)
    n = 2 * 37
    f = torch.fft.rfftfreq(n, d=DT, dtype=torch.float64)
    gain = (1 + (f / 2.5) ** 8) ** -0.5
    ref = torch.fft.irfft(torch.fft.rfft(x, n=n, dim=1) * gain[:, None], n=n, dim=1)[:, :37]
    torch.testing.assert_close(lowpass(x, DT, 2.5), ref)
    # a causal impulse spreads both ways (zero phase), not only forward in time
    imp = torch.zeros(1, 37, dtype=torch.float64)
    imp[0, 18] = 1.0
    y = lowpass(imp, DT, 2.5)[0]
    assert int(y.argmax()) == 18 and y[17] == pytest.approx(float(y[19]), rel=1e-6)


def test_shape_linearity_and_none():
    g = torch.Generator().manual_seed(0)
    a, b = (torch.randn(3, 50, 4, 5, generator=g, dtype=torch.float64) for _ in range(2))
    ya = lowpass(a, DT, 4.0)
    assert ya.shape == a.shape
    torch.testing.assert_close(lowpass(2 * a - b, DT, 4.0), 2 * ya - lowpass(b, DT, 4.0))
    assert lowpass(a, DT, None) is a


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_bad_frequency(bad):
    with pytest.raises(SeisfnoError, match="low-pass frequency must be positive"):
        lowpass(torch.zeros(1, 10, 3), DT, bad)


# --- frequency continuation in FWI ---------------------------------------------------------
from test_inversion_common import (  # noqa: E402
    CHEAP,
    SRC,
    TINY,
    TRUE,
    StandInOperator,
    tiny_observations,
)

from seisfno.inversion import (  # noqa: E402
    OperatorForward,
    SolverForward,
    hybrid,
    invert,
    multiscale,
)


@pytest.fixture
def obs():
    return tiny_observations()


def test_lowpass_fwi_compares_filtered_data(obs):
    op = OperatorForward(StandInOperator(), name="fno:standin")
    full = invert(op, SRC, obs, TRUE, iterations=1)
    low = invert(op, SRC, obs, TRUE, iterations=1, lowpass_hz=0.7)
    assert low.data_norm < 0.9 * full.data_norm  # the filter removed energy above 0.7 Hz
    assert low.options["lowpass_hz"] == 0.7
    with pytest.raises(SeisfnoError, match="low-pass frequency must be positive"):
        invert(op, SRC, obs, TRUE, iterations=1, lowpass_hz=-2.0)


def test_multiscale_chains_stages(obs):
    standin = StandInOperator()
    op = OperatorForward(standin, name="fno:standin")
    r = multiscale(op, SRC, obs, TRUE, stages=[(0.7, 3), (None, 2)], lr=0.03)
    assert r.iterations == 5 and r.options["stages"] == [[0.7, 3], [None, 2]]
    assert r.misfit.shape == (6,) and r.time_s.shape == (6,) and r.loss.shape == (5,)
    assert np.all(np.diff(r.time_s) > 0)
    # stage 2 started from stage 1's final model (the 4th call is the first of stage 2)
    stage1 = invert(OperatorForward(StandInOperator(), name="s"), SRC, obs, TRUE,
                    iterations=3, lowpass_hz=0.7, lr=0.03)
    torch.testing.assert_close(standin.calls[3], torch.as_tensor(stage1.velocity))
    assert r.model_misfit == pytest.approx(r.misfit[-1]) and r.model_misfit < r.start_misfit
    assert 3 <= r.best_iteration <= 5
    with pytest.raises(SeisfnoError, match="per stage"):
        multiscale(op, SRC, obs, TRUE, stages=[(1.0, 2)], lowpass_hz=1.0)
    with pytest.raises(SeisfnoError, match="non-empty list"):
        multiscale(op, SRC, obs, TRUE, stages=[])


def test_hybrid_with_an_operator_continuation(obs):
    op = OperatorForward(StandInOperator(), name="fno:standin")
    fd = SolverForward(TINY, **CHEAP)
    h = hybrid(op, fd, SRC, obs, TRUE, operator_stages=[(0.7, 2), (None, 1)],
               solver_iterations=2, lr=0.03)
    assert h.operator_phase.iterations == 3 and h.solver_phase.iterations == 2
    assert list(h.phase) == ["start"] + ["operator"] * 3 + ["solver"] * 2
    assert h.solver_phase.options["lowpass_hz"] is None  # the solver finishes on the full band
