"""How a simulation is discretized: the internal grid, time step and absorbing layer.

The user chooses the *output* grid and sampling; :func:`make_plan` chooses an internal grid that
refines the output grid by an integer factor (so every output node is a solver node) and a time
step that divides ``dt_out`` (so every output time is a solver time), from the wavelet's
frequency content and the velocity range:

* space: 8th-order stencil with at least ``points_per_wavelength`` nodes per shortest
  wavelength ``v_min / f_max`` where ``f_max = fmax_factor * f_peak`` (the Ricker spectrum at
  2.5 f_peak is 3 % of its peak);
* time: the 4th-order (Lax-Wendroff / modified-equation) stepper, stable for
  ``dt <= sqrt(12 / 13) h / v_max`` with an 8th-order 2-D Laplacian; we use ``courant`` times
  that (0.6: at 0.85 the 8 Hz ``paper`` setup had 1 % error against the analytic solution with
  no boundary in reach, at 0.6 about 0.3 %); a 2nd-order stepper needs ~3x more steps for that;
* boundaries: a damping layer ``sponge_wavelengths`` dominant wavelengths thick (at ``v_max``) on
  all four sides, ``sigma = sponge_strength * v_max / L * (d / L)^2``. Measured against the
  analytic solution on the ``paper`` setup (receivers 1.5-4 km, 4 s, reflections in reach):
  1.5 wavelengths at strength 13.8 left 5.4 % relative L2, 3 at 8 left 1.6 %, 4 at 10 left
  0.85 % (the default). A wide, gentle layer costs cells but no code; a PML would be thinner.
  On the ``quick`` setup run to 6.4 s (reflections in reach; 0.63 % with the default), a layer one
  wavelength thick left 7.8-14.6 % for profile powers 2-3 and strengths 6-16, and adding the
  1-D-PML ``sigma^2 u`` term made it worse (9.8-17.9 %): a thin layer needs a real PML.
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
        Absorbing-layer thickness in internal cells on each side.
    dt_s : float
        Internal time step; ``dt_out_s = steps_per_output * dt_s``.
    steps_per_output : int
    nt_out : int
    f_peak_hz : float
    v_min_mps, v_max_mps : float
        The velocity range this plan is accurate and stable for.
    decimation : {"point", "lowpass"}
    sigma_max : float
        Peak damping (1/s) of the absorbing layer.
    sigma_power : float
        Exponent of the damping profile ``sigma_max (d / L)^p`` across the layer.
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
    sigma_max: float
    sigma_power: float = 2.0

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
            "v_max_mps": self.v_max_mps, "sigma_max_per_s": self.sigma_max,
            "sigma_power": self.sigma_power,
            "decimation": self.decimation, "time_order": 4, "space_order": 8,
        }


def make_plan(grid: Grid, f_peak_hz: float, dt_out_s: float, nt_out: int, v_min_mps: float,
              v_max_mps: float, *, decimation: str = "point", points_per_wavelength: float = 4.5,
              fmax_factor: float = 2.5, courant: float = 0.6, sponge_wavelengths: float = 4.0,
              min_sponge_cells: int = 20, sponge_strength: float = 10.0,
              sponge_power: float = 2.0,
              refine: int | None = None) -> Plan:
    """Choose the internal grid, time step and absorbing layer (see the module docstring)."""
    if not (math.isfinite(f_peak_hz) and f_peak_hz > 0):
        raise SeisfnoError(f"frequency must be a positive number, got {f_peak_hz}")
    if not (0 < v_min_mps <= v_max_mps and math.isfinite(v_max_mps)):
        raise SeisfnoError(f"bad velocity range [{v_min_mps}, {v_max_mps}] m/s")
    if not (dt_out_s > 0 and nt_out >= 1):
        raise SeisfnoError("dt_out must be positive and nt_out at least 1")
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
    # stable for dt^2 mu_max <= 12.
    mu = v_max_mps**2 * _NYQUIST_SYMBOL * (1 / fine.dz_m**2 + 1 / fine.dx_m**2)
    dt_max = courant * math.sqrt(12.0 / mu)
    steps = max(1, math.ceil(dt_out_s / dt_max - 1e-9))
    dt = dt_out_s / steps
    thickness_m = sponge_wavelengths * v_max_mps / f_peak_hz
    pad = max(min_sponge_cells, math.ceil(thickness_m / h_min)) + HALO
    damp_len_m = (pad - HALO) * h_min
    sigma_max = sponge_strength * v_max_mps / damp_len_m
    return Plan(grid=grid, refine=refine, pad=pad, dt_s=dt, steps_per_output=steps,
                nt_out=nt_out, f_peak_hz=f_peak_hz, v_min_mps=v_min_mps, v_max_mps=v_max_mps,
                decimation=decimation, sigma_max=sigma_max, sigma_power=sponge_power)
