"""The 8 symmetries of the square (the dihedral group D4) acting on models, sources and wavefields.

On a square domain with equal node spacing and absorbing boundaries on all four sides, the
acoustic wave equation commutes with the flips in x and in z and with the transpose (x <-> z):
simulating the transformed velocity model from the transformed source gives the transformed
wavefield. Training on transformed samples therefore adds exact, free data, and averaging the
8 transformed predictions of an operator (symmetrized inference) enforces the symmetry.

An element is an integer ``k`` in ``0..7`` whose bits say what is applied, in this order:
bit 0 flips x, bit 1 flips z, bit 2 transposes. ``k = 0`` is the identity. Fields are arrays
whose last two axes are ``(nz, nx)``; sources are ``(..., 2)`` arrays of ``(x, z)`` metres from
the top-left node.
"""

from __future__ import annotations

import numpy as np
import torch

from .._errors import SeisfnoError
from .grid import Grid

#: The group's elements.
D4 = tuple(range(8))


def _check(k: int) -> int:
    if int(k) != k or not 0 <= k < 8:
        raise SeisfnoError(f"a symmetry of the square is an integer 0..7, got {k!r}")
    return int(k)


def check_square(grid: Grid) -> None:
    """Raise unless ``grid`` is square with equal spacing (what D4 symmetry needs)."""
    if grid.nz != grid.nx or not np.isclose(grid.dz_m, grid.dx_m, rtol=1e-9):
        raise SeisfnoError(
            f"the 8 symmetries of the square need a square grid with equal spacing; this one is "
            f"{grid.nz} x {grid.nx} nodes at dz={grid.dz_m:g} m, dx={grid.dx_m:g} m "
            "(use --augment none)")


def transform_field(a, k: int):
    """Apply symmetry ``k`` to a field (numpy array or tensor) whose last two axes are (z, x)."""
    k = _check(k)
    if k == 0:
        return a
    flip = (lambda t, d: torch.flip(t, (d,))) if isinstance(a, torch.Tensor) else np.flip
    if k & 1:
        a = flip(a, -1)
    if k & 2:
        a = flip(a, -2)
    if k & 4:
        a = a.transpose(-1, -2) if isinstance(a, torch.Tensor) else np.swapaxes(a, -1, -2)
    return a


def inverse(k: int) -> int:
    """The element undoing ``k``: a flip is its own inverse; with the transpose, the flips swap."""
    k = _check(k)
    if k & 4 and (k & 3) in (1, 2):
        return k ^ 3
    return k


def transform_sources(sources_xz_m, k: int, grid: Grid):
    """Apply symmetry ``k`` to source positions ``(..., 2)`` as ``(x, z)`` metres on ``grid``."""
    k = _check(k)
    is_t = isinstance(sources_xz_m, torch.Tensor)
    s = sources_xz_m.clone() if is_t else np.array(sources_xz_m, dtype=np.float64, copy=True)
    if k == 0:
        return s
    x, z = s[..., 0].clone() if is_t else s[..., 0].copy(), s[..., 1]
    if k & 1:
        s[..., 0] = grid.width_m - x
    if k & 2:
        s[..., 1] = grid.depth_m - z
    if k & 4:
        s = s.flip(-1) if is_t else s[..., ::-1].copy()
    return s


__all__ = ["D4", "check_square", "inverse", "transform_field", "transform_sources"]
