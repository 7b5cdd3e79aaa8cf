"""Regular 2-D grids whose nodes include the domain's edges."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._errors import SeisfnoError


@dataclass(frozen=True)
class Grid:
    """A regular grid of ``nz x nx`` nodes, node (0, 0) at the top-left corner, z down.

    Parameters
    ----------
    nz, nx : int
        Number of nodes along depth and along x, edges included.
    dz_m, dx_m : float
        Node spacing in metres.
    """

    nz: int
    nx: int
    dz_m: float
    dx_m: float

    def __post_init__(self) -> None:
        if self.nz < 2 or self.nx < 2:
            raise SeisfnoError(f"a grid needs at least 2 x 2 nodes, got {self.nz} x {self.nx}")
        if not (self.dz_m > 0 and self.dx_m > 0 and math.isfinite(self.dz_m * self.dx_m)):
            raise SeisfnoError(f"grid spacing must be positive, got dz={self.dz_m}, dx={self.dx_m}")

    @classmethod
    def from_extent(cls, nz: int, nx: int, depth_m: float, width_m: float) -> Grid:
        """A grid of ``nz x nx`` nodes spanning ``depth_m x width_m``, nodes on the edges."""
        return cls(nz, nx, depth_m / (nz - 1), width_m / (nx - 1))

    @property
    def shape(self) -> tuple[int, int]:
        return (self.nz, self.nx)

    @property
    def depth_m(self) -> float:
        return (self.nz - 1) * self.dz_m

    @property
    def width_m(self) -> float:
        return (self.nx - 1) * self.dx_m

    @property
    def z_m(self) -> np.ndarray:
        """Node depths in metres, shape ``(nz,)``."""
        return np.arange(self.nz) * self.dz_m

    @property
    def x_m(self) -> np.ndarray:
        """Node x positions in metres, shape ``(nx,)``."""
        return np.arange(self.nx) * self.dx_m

    def with_shape(self, nz: int, nx: int | None = None) -> Grid:
        """The same physical domain sampled with ``nz x nx`` nodes (e.g. 128 x 128)."""
        nx = nz if nx is None else nx
        return Grid.from_extent(nz, nx, self.depth_m, self.width_m)

    def refine(self, factor: int) -> Grid:
        """A grid ``factor`` times finer whose every ``factor``-th node is one of ours."""
        return Grid((self.nz - 1) * factor + 1, (self.nx - 1) * factor + 1,
                    self.dz_m / factor, self.dx_m / factor)

    def same_domain(self, other: Grid, rtol: float = 1e-6) -> bool:
        return math.isclose(self.depth_m, other.depth_m, rel_tol=rtol) and math.isclose(
            self.width_m, other.width_m, rel_tol=rtol)

    def check_sources(self, sources_xz_m: np.ndarray) -> np.ndarray:
        """Validate source positions ``(..., 2)`` as ``(x, z)`` metres inside the domain."""
        s = np.asarray(sources_xz_m, dtype=np.float64)
        if s.shape[-1:] != (2,):
            raise SeisfnoError(
                f"sources must have shape (..., 2) as (x, z) in metres, got {s.shape}")
        if not np.isfinite(s).all():
            raise SeisfnoError("source positions must be finite numbers")
        tol = 1e-6 * max(self.width_m, self.depth_m)
        bad = ((s[..., 0] < -tol) | (s[..., 0] > self.width_m + tol)
               | (s[..., 1] < -tol) | (s[..., 1] > self.depth_m + tol))
        if bad.any():
            first = s[bad][0]
            raise SeisfnoError(
                f"source at (x={first[0]:.1f} m, z={first[1]:.1f} m) is outside the domain "
                f"x in [0, {self.width_m:.1f}] m, z in [0, {self.depth_m:.1f}] m")
        return s

    def to_dict(self) -> dict:
        return {"nz": self.nz, "nx": self.nx, "dz_m": self.dz_m, "dx_m": self.dx_m}
