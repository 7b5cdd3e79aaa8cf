"""How a simulation is discretized: the internal grid, time step and absorbing layer.

The user chooses the *output* grid and sampling; :func:`make_plan` chooses an internal grid that
refines the output grid by an integer factor (so every output node is a solver node) and a time
step that divides ``dt_out`` (so every output time is a solver time), from the wavelet's
frequency content and the velocity range:

* space: 8th-order stencil with at least ``points_per_wavelength`` nodes per shortest
  wavelength ``v_min / f_max`` where ``f_max = fmax_factor * f_peak`` (the Ricker spectrum at
  2.5 f_peak is 3 % of its peak);
* time: the 4th-order (Lax-Wendroff / modified-equation) stepper in the interior, stable for
  ``dt^2 mu_max <= 12`` (``mu_max = v_max^2 S (1/dz^2 + 1/dx^2)``, ``S`` the Nyquist symbol of
  the 8th-order stencil), and plain leapfrog in the absorbing layer, stable for
  ``dt^2 mu_max <= 4``. ``courant`` is the step as a fraction of the 4th-order limit, so the
  layer needs ``courant <= sqrt(1/3) = 0.577``; the default 0.55 leaves 9 % margin in
  ``dt^2 mu_max`` (``quick``: 7 steps per output, actual 0.54; ``paper``: 11, actual 0.52). Interior
  error against the analytic solution with no boundary in reach (``paper``, receivers 1.5-4 km,
  1.8 s): 0.076 % at 0.55 (0.091 % at the former 0.6 with 10 steps per output);
* boundaries: a convolutional PML (Pasalic & McGarry, 2010; the scheme deepwave uses) of
  ``max(min_pml_cells, pml_wavelengths * v_max / f_peak / h)`` cells on all four sides, plus the
  stencil's 4-cell zero frame (``pad = cells + 4``): ``d_x`` is replaced by ``(1/s) d_x`` with
  ``1/s`` a recursive convolution (memory fields ``psi``, ``zeta`` per axis, kept only on edge
  strips), ``sigma = sigma_max (d/L)^2``, ``sigma_max = 3 v_max ln(1/R) / (2 L)`` with
  ``R = pml_reflection``, and ``alpha = pi f_peak (1 - d/L)``. The 4th-order time correction is
  tapered to 0 over the first ``lw_taper`` cells of the layer. Measured against the analytic
  solution, reflections in reach (default 12 cells, R = 1e-3, taper 4): ``quick`` run to 6.4 s
  0.055 % relative L2 (the former 95-cell sponge: 0.63 %), ``paper`` over its 4 s 0.096 %
  (the former 73-cell sponge: 0.60 %); 6 cells left 0.27 % (``quick``), 4 cells 2.2 %. Energy
  over the ``quick`` domain after 8.8 s: 4.5e-8 of its peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._errors import SeisfnoError
from .grid import Grid

#: 8th-order central coefficients of the second derivative, c0 and c1..c4.
STENCIL = (-205.0 / 72.0, 8.0 / 5.0, -1.0 / 5.0, 8.0 / 315.0, -1.0 / 560.0)
HALO = len(STENCIL) - 1
#: |symbol| of the 1-D stencil at the Nyquist wavenumber (sets the stability limit).
_NYQUIST_SYMBOL = -(STENCIL[0] + 2 * sum(c * (-1) ** m for m, c in enumerate(STENCIL[1:], 1)))
#: Refuse internal grids larger than this many nodes per side (a frequency too high to simulate).
MAX_FINE_NODES = 6000
#: Largest ``courant`` (fraction of the 4th-order stepper's limit) at which the plain leapfrog
#: used in the absorbing layer is stable: dt^2 mu_max <= 4 against <= 12.
_MAX_COURANT = math.sqrt(4.0 / 12.0)


@dataclass(frozen=True)
class Plan:
    """A discretization of one simulation setup.

    Attributes
    ----------
    grid : Grid
        The output grid.
    refine : int
        Internal nodes per output node spacing.
    pad : int
        Cells added on each side: the C-PML (``pml_width`` cells) and the 4-cell zero frame.
    dt_s : float
        Internal time step; ``dt_out_s = steps_per_output * dt_s``.
    steps_per_output : int
    nt_out : int
    f_peak_hz : float
    v_min_mps, v_max_mps : float
        The velocity range this plan is accurate and stable for.
    decimation : {"point", "lowpass"}
    pml_reflection : float
        Target normal-incidence reflection ``R`` that sets ``sigma_max`` (property).
    pml_power : float
        Exponent of the damping profile ``sigma_max (d / L)^p`` across the layer.
    lw_taper : int
        Cells of the layer over which the 4th-order time correction fades out (leapfrog beyond).
    """

    grid: Grid
    refine: int
    pad: int
    dt_s: float
    steps_per_output: int
    nt_out: int
    f_peak_hz: float
    v_min_mps: float
    v_max_mps: float
    decimation: str
    pml_reflection: float = 1e-3
    pml_power: float = 2.0
    lw_taper: int = 4

    @property
    def pml_width(self) -> int:
        """C-PML thickness in internal cells (``pad`` minus the stencil's zero frame)."""
        return self.pad - HALO

    @property
    def sigma_max(self) -> float:
        """Peak C-PML damping (1/s): ``(p + 1) v_max ln(1/R) / (2 L)``."""
        width_m = self.pml_width * min(self.fine.dz_m, self.fine.dx_m)
        return ((self.pml_power + 1) * self.v_max_mps * math.log(1 / self.pml_reflection)
                / (2 * width_m))

    @property
    def fine(self) -> Grid:
        """The internal grid over the physical domain (without the absorbing layer)."""
        return self.grid.refine(self.refine)

    @property
    def padded_shape(self) -> tuple[int, int]:
        f = self.fine
        return (f.nz + 2 * self.pad, f.nx + 2 * self.pad)

    @property
    def dt_out_s(self) -> float:
        return self.dt_s * self.steps_per_output

    @property
    def lowpass_halfwidth(self) -> int:
        """Half-length, in internal steps, of the anti-alias filter (lowpass decimation)."""
        return 4 * self.steps_per_output if self.decimation == "lowpass" else 0

    @property
    def n_steps(self) -> int:
        """Internal steps run: through the last output time (plus the filter's reach)."""
        return (self.nt_out - 1) * self.steps_per_output + self.lowpass_halfwidth + 1

    @property
    def cell_updates(self) -> int:
        """Cells x steps of one simulation on the padded internal grid."""
        nz, nx = self.padded_shape
        return nz * nx * self.n_steps

    def to_dict(self) -> dict:
        return {
            "refine": self.refine, "pad_cells": self.pad, "dt_s": self.dt_s,
            "steps_per_output": self.steps_per_output, "n_steps": self.n_steps,
            "fine_dz_m": self.fine.dz_m, "fine_dx_m": self.fine.dx_m,
            "padded_shape": list(self.padded_shape), "v_min_mps": self.v_min_mps,
            "v_max_mps": self.v_max_mps, "boundary": "cpml", "pml_cells": self.pml_width,
            "sigma_max_per_s": self.sigma_max, "pml_reflection": self.pml_reflection,
            "pml_power": self.pml_power, "lw_taper_cells": self.lw_taper,
            "decimation": self.decimation, "time_order": 4, "space_order": 8,
        }


def make_plan(grid: Grid, f_peak_hz: float, dt_out_s: float, nt_out: int, v_min_mps: float,
              v_max_mps: float, *, decimation: str = "point", points_per_wavelength: float = 4.5,
              fmax_factor: float = 2.5, courant: float = 0.55, pml_wavelengths: float = 0.5,
              min_pml_cells: int = 12, pml_reflection: float = 1e-3, pml_power: float = 2.0,
              lw_taper: int = 4, refine: int | None = None,
              sponge_wavelengths: float | None = None, min_sponge_cells: int | None = None
              ) -> Plan:
    """Choose the internal grid, time step and absorbing layer (see the module docstring).

    ``sponge_wavelengths`` and ``min_sponge_cells`` are accepted as older names of
    ``pml_wavelengths`` and ``min_pml_cells``.
    """
    if sponge_wavelengths is not None:
        pml_wavelengths = sponge_wavelengths
    if min_sponge_cells is not None:
        min_pml_cells = min_sponge_cells
    if not (math.isfinite(f_peak_hz) and f_peak_hz > 0):
        raise SeisfnoError(f"frequency must be a positive number, got {f_peak_hz}")
    if not (0 < v_min_mps <= v_max_mps and math.isfinite(v_max_mps)):
        raise SeisfnoError(f"bad velocity range [{v_min_mps}, {v_max_mps}] m/s")
    if not (dt_out_s > 0 and nt_out >= 1):
        raise SeisfnoError("dt_out must be positive and nt_out at least 1")
    if not 0 < pml_reflection < 1:
        raise SeisfnoError(f"pml_reflection must be in (0, 1), got {pml_reflection}")
    if not 0 < courant <= _MAX_COURANT:
        raise SeisfnoError(f"courant must be in (0, {_MAX_COURANT:.3f}] (the leapfrog limit in "
                           f"the absorbing layer), got {courant}")
    h_out = max(grid.dz_m, grid.dx_m)
    h_need = v_min_mps / (fmax_factor * f_peak_hz * points_per_wavelength)
    if refine is None:
        refine = max(1, math.ceil(h_out / h_need - 1e-9))
    fine = grid.refine(refine)
    if max(fine.nz, fine.nx) > MAX_FINE_NODES:
        raise SeisfnoError(
            f"{f_peak_hz:g} Hz needs an internal grid of {fine.nz} x {fine.nx} nodes "
            f"(spacing {h_need:.2f} m for v_min={v_min_mps:g} m/s); lower the frequency or the "
            f"domain size (at most {MAX_FINE_NODES} nodes per side)")
    h_min = min(fine.dz_m, fine.dx_m)
    # Leapfrog eigenvalue bound mu_max = v^2 * S * (1/dz^2 + 1/dx^2); the 4th-order stepper is
    # stable for dt^2 mu_max <= 12, the leapfrog (in the layer) for dt^2 mu_max <= 4.
    mu = v_max_mps**2 * _NYQUIST_SYMBOL * (1 / fine.dz_m**2 + 1 / fine.dx_m**2)
    dt_max = courant * math.sqrt(12.0 / mu)
    steps = max(1, math.ceil(dt_out_s / dt_max - 1e-9))
    dt = dt_out_s / steps
    thickness_m = pml_wavelengths * v_max_mps / f_peak_hz
    pad = max(min_pml_cells, math.ceil(thickness_m / h_min - 1e-9)) + HALO
    return Plan(grid=grid, refine=refine, pad=pad, dt_s=dt, steps_per_output=steps,
                nt_out=nt_out, f_peak_hz=f_peak_hz, v_min_mps=v_min_mps, v_max_mps=v_max_mps,
                decimation=decimation, pml_reflection=pml_reflection, pml_power=pml_power,
                lw_taper=lw_taper)
