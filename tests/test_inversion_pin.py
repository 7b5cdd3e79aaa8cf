"""Pinned curves of short deterministic FWI runs: the loop's refactors must keep them.

The numbers were recorded from the code before the loop was split into rules and stages
(``python tests/test_inversion_pin.py`` prints them again). The runs use a cheap, smooth
stand-in forward model (:class:`ToyForward`) so that they pin the loop's logic (Adam, clamping,
regularization, checks, stages, phases, NaN stops) and not the solver's floating point; one run
pins the finite-difference path with a looser tolerance.
"""

from __future__ import annotations

import numpy as np
import torch
from test_inversion_common import CHEAP, SRC, TINY, TRUE, tiny_observations

from seisfno.inversion import SolverForward, hybrid, invert, multiscale


class ToyForward:
    """A Gaussian pulse from each source reaching each node at ``r * (1 / v)`` (local slowness).

    Cheap, smooth and differentiable: enough to pin the optimization loop.
    """

    def __init__(self, preset=TINY, name="toy", width_s=0.2, nan_after=None):
        self.preset, self.name = preset, name
        self.velocity_range_mps = (2000.0, 4400.0)
        g = preset.grid
        self.z = torch.as_tensor(g.z_m, dtype=torch.float32)[:, None]
        self.x = torch.as_tensor(g.x_m, dtype=torch.float32)[None, :]
        self.t = torch.arange(preset.nt_out, dtype=torch.float32) * preset.dt_out_s
        self.width_s, self.nan_after, self.calls = width_s, nan_after, 0

    def __call__(self, velocity, sources_xz_m):
        self.calls += 1
        s = torch.as_tensor(np.asarray(sources_xz_m), dtype=torch.float32).reshape(-1, 2)
        r = torch.sqrt((self.x[None] - s[:, 0, None, None]) ** 2
                       + (self.z[None] - s[:, 1, None, None]) ** 2)  # (S, nz, nx)
        tau = r * (1.0 / velocity)[None]
        u = torch.exp(-(((self.t[None, :, None, None] - 0.3 - tau[:, None]) / self.width_s) ** 2))
        if self.nan_after is not None and self.calls > self.nan_after:
            u = u * float("nan")
        return u


def scripted(values):
    it = iter(values)
    return lambda v, lowpass_hz: next(it)


def toy_observations():
    with torch.no_grad():
        return ToyForward(width_s=0.21)(torch.as_tensor(TRUE), SRC)


def _stats(v):
    d = np.asarray(v, dtype=np.float64) - 3000.0
    return [float(d.sum()), float((d**2).sum()), float(d[5, 7])]


def scenarios() -> dict:
    """The runs pinned, each as a dict of plain numbers."""
    obs = toy_observations()
    out = {}
    r = invert(ToyForward(), SRC, obs, TRUE, iterations=6, lr=0.03, laplacian_weight=1.0,
               smooth_grad_m=300.0, receivers="every:2", noise_snr_db=30.0, noise_seed=1,
               bounds_mps=(2500.0, 3500.0))
    out["plain"] = dict(loss=r.loss.tolist(), misfit=r.misfit.tolist(), it=r.iterations,
                        best=r.best_iteration, v=_stats(r.velocity), vb=_stats(r.best_velocity),
                        reason=r.stopped_reason, norm=r.data_norm)
    r = invert(ToyForward(), SRC, obs, TRUE, iterations=12, lr=0.03,
               check=scripted([5.0, 4.0, 3.0, 3.5, 3.6, 1.0]), check_every=2, check_patience=2)
    out["check"] = dict(loss=r.loss.tolist(), misfit=r.misfit.tolist(), it=r.iterations,
                        checks=r.checks.tolist(), v=_stats(r.velocity),
                        kept=r.options["check_best_iteration"], reason=r.stopped_reason)
    r = multiscale(ToyForward(), SRC, obs, TRUE, stages=[(1.5, 4), (None, 3)], lr=0.03,
                   check=scripted([5.0, 6.0, 7.0, 1.0, 0.9, 0.8, 0.85, 0.9]), check_every=1,
                   check_patience=2)
    out["stages"] = dict(loss=r.loss.tolist(), misfit=r.misfit.tolist(), it=r.iterations,
                         checks=r.checks.tolist(), v=_stats(r.velocity), best=r.best_iteration,
                         stages=r.options["stages"], stops=r.options["stage_stops"],
                         kept=r.options["check_best_iteration"], reason=r.stopped_reason)
    h = hybrid(ToyForward(name="toy-op", width_s=0.23), ToyForward(), SRC, obs, TRUE,
               operator_stages=[(1.5, 3), (None, 2)], solver_iterations=3, lr=0.03,
               solver_lr=0.02)
    out["hybrid"] = dict(misfit=h.misfit.tolist(), phase=h.phase.tolist(), v=_stats(h.velocity),
                         loss=np.concatenate([h.operator_phase.loss, h.solver_phase.loss]).tolist(),
                         reason=h.summary()["stopped_reason"])
    r = invert(ToyForward(nan_after=4), SRC, obs, TRUE, iterations=10, lr=0.03)
    out["nan"] = dict(loss=r.loss.tolist(), misfit=r.misfit.tolist(), it=r.iterations,
                      best=r.best_iteration, v=_stats(r.velocity), reason=r.stopped_reason)
    return out


def fd_scenario() -> dict:
    r = invert(SolverForward(TINY, **CHEAP), SRC, tiny_observations(), TRUE, iterations=4,
               lr=0.03)
    return dict(loss=r.loss.tolist(), misfit=r.misfit.tolist(), v=_stats(r.velocity))


# Recorded from the code before the refactor (commit a8524a2).
# fmt: off
PINNED = {'plain': {'loss': [3.1036062240600586, 3.2830209732055664, 3.191483497619629,
                             3.3955421447753906, 3.60583233833313, 3.7191708087921143],
           'misfit': [0.018616311684279744, 0.01750069514135205, 0.016071400205852213,
                      0.015949291213822988, 0.0167573038799002, 0.017496298388121785,
                      0.017994371201138018],
           'it': 6,
           'best': 0,
           'v': [3200.637451171875, 368590.419547379, 60.457763671875],
           'vb': [0.0, 0.0, 0.0],
           'reason': 'completed',
           'norm': 674.5723288817221},
 'check': {'loss': [9.730281829833984, 10.695740699768066, 6.621886253356934, 6.156854629516602,
                    6.600100994110107, 5.931956768035889, 5.063900947570801, 4.903242111206055],
           'misfit': [0.018616311684279744, 0.017406515537159425, 0.011432316750525327,
                      0.00879592973847142, 0.008098308000043082, 0.005995004497649559,
                      0.0034598773560363823, 0.003971613470641035, 0.008098308000043082],
           'it': 8,
           'checks': [[0.0, 5.0], [2.0, 4.0], [4.0, 3.0], [6.0, 3.5], [8.0, 3.6]],
           'v': [5041.155029296875, 591714.4706192613, 115.58203125],
           'kept': 4,
           'reason': 'check: no improvement in 2 checks; kept the model of iteration 4'},
 'stages': {'loss': [7.03023624420166, 7.077744483947754, 9.730281829833984, 10.695740699768066,
                     6.621886253356934],
            'misfit': [0.018616311684279744, 0.016583338167988373, 0.018616311684279744,
                       0.017406515537159425, 0.011432316750525327, 0.011432316750525327],
            'it': 5,
            'checks': [[0.0, 5.0], [1.0, 6.0], [2.0, 7.0], [2.0, 1.0], [3.0, 0.9], [4.0, 0.8],
                       [5.0, 0.85]],
            'v': [1878.10400390625, 138908.59443342686, 59.576416015625],
            'best': 4,
            'stages': [[1.5, 2], [None, 3]],
            'stops': ['check: no improvement in 2 checks; kept the model of iteration 0',
                      'completed'],
            'kept': 4,
            'reason': 'completed'},
 'hybrid': {'misfit': [0.018616311684279744, 0.01680839551212397, 0.011389335970496656,
                       0.008947521749135696, 0.006170632120791647, 0.0041781819831199826,
                       0.002951025008038135, 0.003716197335739554, 0.0026062770746765247],
            'phase': ['start', 'operator', 'operator', 'operator', 'operator', 'operator',
                      'solver', 'solver', 'solver'],
            'v': [5390.560546875, 747629.8263168335, 142.42626953125],
            'loss': [16.99075698852539, 17.2487850189209, 14.80864429473877, 18.893535614013672,
                     18.41932487487793, 5.268331527709961, 4.920083999633789, 5.148721218109131],
            'reason': 'completed'},
 'nan': {'loss': [9.730281829833984, 10.695740699768066, 6.621886253356934, 6.156854629516602],
         'misfit': [0.018616311684279744, 0.017406515537159425, 0.011432316750525327,
                    0.00879592973847142, 0.008098308000043082],
         'it': 4,
         'best': 3,
         'v': [3665.6669921875, 324480.15524220467, 88.2958984375],
         'reason': 'non-finite data loss at iteration 4; kept the best model'}}
PINNED_FD = {'loss': [1.104143233888002e-15, 5.239882395777847e-16, 3.4841922073785355e-16,
          2.84416987726845e-16],
 'misfit': [0.018616311684279744, 0.017507310998972226, 0.017767490145452158, 0.017295120072942066,
            0.016085089028961386],
 'v': [6899.343994140625, 916405.5993259549, 108.16845703125]}

# fmt: on


def _compare(got, want, rtol, path=""):
    if isinstance(want, dict):
        assert set(got) == set(want), path
        for k in want:
            _compare(got[k], want[k], rtol, f"{path}.{k}")
    elif isinstance(want, str) or want is None:
        assert got == want, path
    elif isinstance(want, list) and any(isinstance(w, (list, str)) or w is None for w in want):
        assert len(got) == len(want), path
        for k, (g, w) in enumerate(zip(got, want, strict=True)):
            _compare(g, w, rtol, f"{path}[{k}]")
    else:
        np.testing.assert_allclose(np.asarray(got, dtype=np.float64),
                                   np.asarray(want, dtype=np.float64), rtol=rtol, atol=0,
                                   err_msg=path)


def test_loop_curves_are_pinned():
    _compare(scenarios(), PINNED, rtol=1e-6)


def test_solver_fwi_curve_is_pinned():
    # Looser: the solver's floating point may change (reordered sums) without a logic change.
    _compare(fd_scenario(), PINNED_FD, rtol=1e-4)


if __name__ == "__main__":
    torch.set_num_threads(1)
    print("PINNED =", repr(scenarios()))
    print("PINNED_FD =", repr(fd_scenario()))
