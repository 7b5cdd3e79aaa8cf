"""The 8 symmetries of the square: the group itself, and the solver commuting with each of them.

``simulate(T(v), T(s)) == T(simulate(v, s))`` for every ``T`` in D4 is what makes symmetry
augmentation exact. The solver is symmetric by construction (flip-symmetric C-PML profiles,
4th-order taper and Kaiser-sinc source windows, bilinear refinement with aligned corners, equal
treatment of the z and x axes), so the only difference allowed is floating-point round-off: the
order of additions changes under a transpose (z terms first, then x terms) and the interpolation
weights of a mirrored model are computed from mirrored indices. The tests therefore run in float32
*and* float64: the error must scale with the precision (measured max |diff| / max |u|: <= 8e-7 in
float32, <= 4e-14 in float64), which a genuine asymmetry would not: halving the time-correction
taper at one cell of one edge gives 8e-5 in float32, a source window lopsided by 0.1 % 4e-4
(both fail the float32 bound).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seisfno._errors import SeisfnoError
from seisfno.physics import AcousticSolver, Grid, TorchBackend, get_preset, sample_rng, von_karman
from seisfno.physics.symmetry import (
    D4,
    check_square,
    inverse,
    transform_field,
    transform_sources,
)

pytestmark = pytest.mark.usefixtures("one_thread")

#: Round-off bound per precision on max |diff| / max |u| (measured 8e-7 and 4e-14, see above).
TOL = {torch.float32: 1e-5, torch.float64: 1e-11}


def _grid() -> Grid:
    return get_preset("quick").grid


def test_inverse_undoes_each_element():
    a = np.arange(5 * 5, dtype=np.float64).reshape(5, 5)
    s = np.array([[1.0, 3.5], [0.0, 10000.0]])
    for k in D4:
        back = transform_field(transform_field(a, k), inverse(k))
        np.testing.assert_array_equal(back, a)
        s_back = transform_sources(transform_sources(s, k, _grid()), inverse(k), _grid())
        np.testing.assert_allclose(s_back, s, atol=1e-9)
    images = {transform_field(a, k).tobytes() for k in D4}
    assert len(images) == 8  # eight distinct elements


def test_sources_follow_the_field():
    """A spike at a node moves where the transformed source position says (numpy and torch)."""
    g = _grid()
    iz, ix = 10, 47
    a = np.zeros(g.shape)
    a[iz, ix] = 1.0
    src = np.array([ix * g.dx_m, iz * g.dz_m])
    for k in D4:
        for arr, s in ((a, src), (torch.as_tensor(a), torch.as_tensor(src))):
            t = np.asarray(transform_field(arr, k))
            jz, jx = np.unravel_index(np.argmax(t), t.shape)
            x_m, z_m = np.asarray(transform_sources(s, k, g))
            assert (x_m, z_m) == pytest.approx((jx * g.dx_m, jz * g.dz_m), abs=1e-6)


def test_bad_elements_and_grids():
    for bad in (-1, 8, 1.5):
        with pytest.raises(SeisfnoError):
            transform_field(np.zeros((3, 3)), bad)
    with pytest.raises(SeisfnoError):
        check_square(Grid(32, 64, 100.0, 100.0))
    with pytest.raises(SeisfnoError):
        check_square(Grid(64, 64, 100.0, 120.0))
    check_square(_grid())


@pytest.mark.parametrize(("preset", "nt_out", "source"), [
    # the whole quick preset (4 s): every wave meets the C-PML on all four sides
    ("quick", None, (2345.6, 7012.3)),
    # the paper plan (refine 6, 411^2 internal nodes), shortened to 0.56 s (154 of its 1090
    # steps) to keep the test short; a source near the top-left corner sends the wave into
    # the layer on two sides (and so, under the 8 transforms, on all four)
    ("paper", 14, (610.3, 1018.7)),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_solver_commutes_with_d4(preset, nt_out, source, dtype):
    p = get_preset(preset, nt_out=nt_out)
    v = von_karman(p.grid, sample_rng(7, 0), clip_mps=p.velocity.clip_mps)
    src = np.asarray(source)
    # source off the output grid and off the internal grid
    assert np.all(np.abs(src / p.grid.dx_m - np.round(src / p.grid.dx_m)) > 0.05)
    vs = torch.as_tensor(np.stack([transform_field(v, k).copy() for k in D4]), dtype=dtype)
    ss = np.stack([transform_sources(src, k, p.grid) for k in D4])
    solver = AcousticSolver.from_preset(p, backend=TorchBackend(compile=False))
    with torch.no_grad():
        u = solver(vs, ss).double().numpy()  # the 8 simulations in one batched call
    ref = u[0]
    peak = np.abs(ref).max()
    edges = [np.abs(ref[:, :, 0]).max(), np.abs(ref[:, 0, :]).max()]
    assert min(edges) > 1e-3 * peak  # the wave has reached the absorbing layer
    errs = [float(np.abs(u[k] - transform_field(ref, k)).max() / peak) for k in D4]
    assert max(errs) < TOL[dtype], errs
