"""The native (C) forward loop against the PyTorch step it replaces without a gradient.

The reference is the eager PyTorch step in float64: the C loop (float32) is within ~1e-5 of it,
closer than the PyTorch step in float32 (2.9e-5 on the multi-source case, 2026-12-03).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from seisfno._errors import SeisfnoError
from seisfno.physics import AcousticSolver, Grid, TorchBackend, get_preset, native, sample_rng
from seisfno.physics import solver as solver_mod
from seisfno.physics.velocity import von_karman

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler to build it")


def _pair(preset):
    return (AcousticSolver.from_preset(preset, backend=TorchBackend(native=True)),
            AcousticSolver.from_preset(preset, backend=TorchBackend(native=False, compile=False)))


def _models(grid, n, seed=5):
    return torch.as_tensor(np.stack([von_karman(grid, sample_rng(seed, i), clip_mps=(2400, 3600))
                                     for i in range(n)]), dtype=torch.float32)


def _close(a, b):
    """float32 round-off against the float64 reference, over the whole record and its peak."""
    a, b = a.double(), b.double()
    assert float(b.abs().max()) > 0
    assert float((a - b).norm() / b.norm()) < 2e-5
    assert float((a - b).abs().max() / b.abs().max()) < 5e-5


@pytest.mark.parametrize("shape,decimation", [
    ((24, 40), "lowpass"),  # not square: rows and columns kept apart; both strips per axis
    ((40, 24), "point"),
    ((6, 30), "point"),     # z shorter than two strips: one strip spans it
    ((30, 6), "point"),     # x shorter than two strips
])
def test_native_loop_matches_the_pytorch_step(shape, decimation):
    """Batches of models with one source each, sources between nodes and near an edge."""
    q = get_preset("quick")
    grid = Grid(*shape, q.grid.dz_m, q.grid.dx_m)
    p = get_preset("quick", grid=grid, nt_out=30, decimation=decimation)  # deep into the PML
    v = _models(grid, 3)
    src = np.array([[0.37 * grid.width_m, 0.61 * grid.depth_m], [101.0, 55.0],
                    [grid.width_m - 90.0, 0.5 * grid.depth_m]])
    fast, ref = _pair(p)
    with torch.no_grad():
        a, b = fast(v, src), ref(v.double(), src)
    assert a.shape == b.shape == (3, 30, *shape) and a.dtype == torch.float32
    _close(a, b)


def test_native_loop_one_model_many_shots_and_multi_source_shots():
    """One model shared by every shot (FWI's observations), and shots of two sources fired
    together (through the backends: the solver's interface takes one source a shot)."""
    p = get_preset("quick", n=32, nt_out=30)
    v = _models(p.grid, 1)
    src = np.array([[[1000.0, 2000.0], [8000.0, 7000.0]], [[5000.0, 5000.0], [2500.0, 9000.0]]])
    plan = AcousticSolver.from_preset(p).plan(v)
    fast, ref = TorchBackend(native=True), TorchBackend(native=False, compile=False)
    with torch.no_grad():
        a, b = fast.run(plan, v, src), ref.run(plan, v.double(), src)
        single = fast.run(plan, v, src[:, 0])
    assert a.shape == (2, 30, 32, 32)
    _close(a, b)
    assert float((a - single).abs().max()) > 1e-3 * float(a.abs().max())  # the second source


def test_native_is_the_default_on_the_cpu_in_float32(monkeypatch):
    """Float32 forward runs take the C loop, and so do a gradient's checkpointed forward
    segments (recomputed with the PyTorch step for the backward pass: the gradient equals the
    PyTorch step's to round-off); float64 keeps the PyTorch step throughout."""
    calls = []
    for name in ("propagate", "run_segment"):
        real = getattr(native, name)

        def counted(*args, _real=real, _name=name, **kw):
            calls.append(_name)
            return _real(*args, **kw)

        monkeypatch.setattr(native, name, counted)
    p = get_preset("quick", n=24, nt_out=20)
    v = _models(p.grid, 1)[0]
    with torch.no_grad():
        AcousticSolver.from_preset(p)(v, (4000.0, 5000.0))
    assert calls[0] == "propagate"
    n = len(calls)
    AcousticSolver.from_preset(p)(v.double(), (4000.0, 5000.0))
    assert len(calls) == n
    grads = {}
    for use in (True, False):
        calls.clear()
        vg = v.clone().requires_grad_()
        solver = AcousticSolver.from_preset(p, backend=TorchBackend(native=use, compile=False))
        solver(vg, (4000.0, 5000.0)).square().sum().backward()
        grads[use] = vg.grad
        assert ("run_segment" in calls) == use and "propagate" not in calls
    assert float(grads[False].abs().max()) > 0
    assert float((grads[True] - grads[False]).norm() / grads[False].norm()) < 1e-4


@pytest.mark.parametrize("shape", [(24, 40), (30, 6)])
def test_native_segment_state_is_the_pytorch_steps(shape):
    """The full state ``run_segment`` hands back after two segments (an odd number of steps in
    all, the waves well into the absorbing layer) equals the float64 PyTorch step's, field by
    field: the fields, both axes' memory fields (x's transposed back) and the buffer swaps."""
    from seisfno.physics import fd
    from seisfno.physics.wavelets import ricker, ricker_second_derivative

    q = get_preset("quick")
    grid = Grid(*shape, q.grid.dz_m, q.grid.dx_m)
    p = get_preset("quick", grid=grid, nt_out=40, decimation="point")
    v = _models(grid, 2).double()
    src = np.array([[101.0, 55.0], [grid.width_m - 90.0, 0.5 * grid.depth_m]])
    plan = AcousticSolver.from_preset(p).plan(v)
    v2, s = fd.fine_velocity(plan, v) ** 2, fd.source_field(plan, src, dtype=torch.float64)
    n = 151
    t = torch.arange(n, dtype=torch.float64) * plan.dt_s
    w, wtt = ricker(t, plan.f_peak_hz), ricker_second_derivative(t, plan.f_peak_hz)
    prof = fd.cpml_profiles(plan, "cpu", torch.float64)
    nz, nx = plan.padded_shape
    u = torch.zeros(2, nz, nx, dtype=torch.float64)
    ref = (u, torch.zeros_like(u), *fd.pml_state(prof, 2, nz, nx, u.new_zeros))
    args = tuple(prof[k] for k in ("lw_mask", "inner", "az", "bz", "dbz", "ax", "bx", "dbx"))
    for k in range(n):
        ref = fd._step(*ref, v2, s * prof["inner"], w[k], wtt[k], *args, plan.dt_s,
                       1.0 / plan.fine.dz_m, 1.0 / plan.fine.dx_m)
    rec = np.zeros(n, dtype=bool)
    state = None
    for a, b in ((0, 75), (75, n)):
        *state, _ = native.run_segment(plan, v2.float(), s.float(), w[a:b].float(),
                                       wtt[a:b].float(), rec[a:b], state)
    names = ("u", "u_prev", "psi_z", "zeta_z", "psi_x", "zeta_x")
    for name, x, y in zip(names, state, ref, strict=True):
        assert x.shape == y.shape, name
        assert float(y.abs().max()) > 0, name  # every field is in play
        assert float((x.double() - y).abs().max() / y.abs().max()) < 1e-4, name


def test_native_segment_refuses_mismatched_inputs():
    """Shapes the C loop would read or write past are refused before it runs."""
    p = get_preset("quick", n=17, nt_out=4)
    plan = AcousticSolver.from_preset(p).plan(torch.full((17, 17), 3000.0))
    nz, nx = plan.padded_shape
    v2, src = torch.ones(3, nz, nx), torch.zeros(2, nz, nx)
    w, rec = torch.zeros(5), np.zeros(5, dtype=bool)
    with pytest.raises(ValueError, match="must be"):
        native.run_segment(plan, v2, src, w, w, rec)  # 3 models, 2 shots
    with pytest.raises(ValueError, match="must be"):
        native.run_segment(plan, v2[:1, :-1], src, w, w, rec)
    with pytest.raises(ValueError, match="wavelet samples"):
        native.run_segment(plan, v2[:1], src, w[:4], w, rec)
    *state, _ = native.run_segment(plan, v2[:1], src, w, w, rec)
    with pytest.raises(ValueError, match="state shapes"):
        native.run_segment(plan, v2[:1], src[:1], w, w, rec, state)  # batch 2 state, 1 shot


def test_native_segments_chain_like_one_run():
    """A run cut into segments, each started from the last one's state, records what one run
    does (the state the C loop hands back is complete: fields, memory fields, buffer swaps)."""
    p = get_preset("quick", n=24, nt_out=20, decimation="point")
    v = _models(p.grid, 2)
    src = np.array([[3000.0, 2000.0], [9000.0, 9500.0]])
    plan = AcousticSolver.from_preset(p).plan(v)
    from seisfno.physics import fd
    from seisfno.physics.wavelets import ricker, ricker_second_derivative

    v2 = fd.fine_velocity(plan, v) ** 2
    s = fd.source_field(plan, src)
    t = torch.arange(plan.n_steps, dtype=torch.float64) * plan.dt_s
    w, wtt = ricker(t, plan.f_peak_hz).float(), ricker_second_derivative(t, plan.f_peak_hz).float()
    record = np.zeros(plan.n_steps, dtype=bool)
    record[::plan.steps_per_output] = True
    whole = native.run_segment(plan, v2, s, w, wtt, record)
    state, recs = None, []
    for a, b in ((0, 37), (37, 38), (38, 120), (120, plan.n_steps)):  # odd and even lengths
        *state, rec = native.run_segment(plan, v2, s, w[a:b], wtt[a:b], record[a:b], state)
        recs.append(rec)
    torch.testing.assert_close(torch.cat(recs), whole[-1], rtol=0, atol=0)
    for x, y in zip(state, whole[:-1], strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_without_the_native_loop(monkeypatch):
    """No compiler (or ``SEISFNO_NATIVE=0``): the default uses the PyTorch step with the same
    result; ``native=True`` says why it cannot."""
    p = get_preset("quick", n=17, nt_out=4)
    v = torch.full((17, 17), 3000.0)
    with torch.no_grad():
        ref = AcousticSolver.from_preset(p)(v, (4000.0, 5000.0))
    monkeypatch.setattr(native, "_library", lambda: None)
    with torch.no_grad():
        u = AcousticSolver.from_preset(p)(v, (4000.0, 5000.0))
        torch.testing.assert_close(u, ref, rtol=2e-5, atol=2e-6 * float(ref.abs().max()))
        with pytest.raises(SeisfnoError, match="native solver loop is not available"):
            AcousticSolver.from_preset(p, backend=TorchBackend(native=True))(v, (4000.0, 5000.0))
    assert solver_mod.native is native


def test_native_build_goes_to_its_cache_and_honours_the_switch(tmp_path):
    """A fresh cache gets one library keyed by source, compiler, flags and CPU; a second process
    loads it; ``SEISFNO_NATIVE=0`` turns the loop off."""
    code = ("import torch\n"
            "from seisfno.physics import native\n"
            "print(native.available())\n")
    env = {**os.environ, "SEISFNO_CACHE_DIR": str(tmp_path)}
    env.pop("SEISFNO_NATIVE", None)
    outs = [subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=300, env=e) for e in (env, env, {**env, "SEISFNO_NATIVE": "0"})]
    assert [o.stdout.strip() for o in outs] == ["True", "True", "False"], outs[0].stderr
    assert len(list((tmp_path / "native").glob("seisfno_step_*.so"))) == 1
