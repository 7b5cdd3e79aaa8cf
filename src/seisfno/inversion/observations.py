"""Observations for FWI without inverse crime: a finer true model, grid and time step.

When a true model is given, the observations are computed by
:class:`~seisfno.physics.AcousticSolver`, never by the forward model being inverted, and with a
different discretization: the true model on a grid :data:`OBSERVATION_REFINEMENT` (2) times finer
than the inversion's (given at that resolution, e.g. ``benchmark_model(name, preset,
refine=2)``, or interpolated bilinearly to it), simulated with an internal grid and time step
about twice as fine as a solver on the inversion grid, and recorded at the inversion grid's
nodes (:func:`observe`). The model misfit is measured against the true model at those nodes
(:func:`true_on_grid`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._errors import SeisfnoError
from ..physics import AcousticSolver, Grid, Preset, resample, validate_velocity
from .loop import batches

#: Observations from a true model are simulated on a grid this many times finer (no inverse
#: crime), with an internal grid this many times finer than the inversion solver's.
OBSERVATION_REFINEMENT = 2


def refinement_of(grid: Grid, shape: Sequence[int]) -> int | None:
    """``k`` when ``shape`` is that of ``grid.refine(k)`` (1: the grid itself), else ``None``."""
    if len(shape) != 2:
        return None
    nz, nx = (int(n) for n in shape)
    if (nz - 1) % (grid.nz - 1) or (nx - 1) % (grid.nx - 1):
        return None
    k = (nz - 1) // (grid.nz - 1)
    return k if k >= 1 and nx - 1 == k * (grid.nx - 1) else None


def _as_tensor(v: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(v, dtype=np.float32) if not torch.is_tensor(v) else v)


def true_on_grid(true_velocity: Any, grid: Grid) -> torch.Tensor:
    """The true model at ``grid``'s nodes: itself, or every k-th node of a k-times finer model.

    The model misfit of an inversion is measured against this (float32, m/s).
    """
    t = _as_tensor(true_velocity).float()
    k = refinement_of(grid, tuple(t.shape))
    if k is not None:
        t = t[::k, ::k]
    validate_velocity(t, grid, name="true velocity")
    return t


def observation_solver(preset: Preset, true_velocity: np.ndarray | torch.Tensor | None = None,
                       *, device: str | torch.device | None = None,
                       refinement: int = OBSERVATION_REFINEMENT,
                       **plan_options) -> AcousticSolver:
    """The solver that makes observations: a ``refinement`` times finer grid and time step.

    Its output grid is ``preset.grid.refine(refinement)`` and its internal grid refines that by
    the factor the preset's own plan uses, so internal spacing and time step are about
    ``1 / refinement`` of a solver on the preset's grid (``refinement=1``: that solver). It is
    planned for the preset's clip range, widened to the true model's.
    """
    if refinement < 1:
        raise SeisfnoError(f"the observation refinement must be >= 1, got {refinement}")
    lo, hi = preset.velocity.clip_mps
    if true_velocity is not None:
        t = torch.as_tensor(true_velocity)
        lo, hi = min(lo, float(t.min())), max(hi, float(t.max()))
    base = AcousticSolver.from_preset(preset, velocity_range_mps=(lo, hi), device=device,
                                      **plan_options)
    if refinement == 1:
        return base
    fine = preset.replace(grid=preset.grid.refine(refinement))
    opts = {**plan_options, "refine": base.plan_for(lo, hi).refine}
    return AcousticSolver.from_preset(fine, velocity_range_mps=(lo, hi), device=device, **opts)


def _model_on(v: torch.Tensor, preset: Preset, target: Grid) -> torch.Tensor:
    """The true model on the observation solver's grid (bilinear from a coarser one)."""
    if tuple(v.shape) == target.shape:
        return v
    return resample(true_on_grid(v, preset.grid), target)


def observe(true_velocity: np.ndarray | torch.Tensor, sources_xz_m: np.ndarray, preset: Preset,
            *, solver: AcousticSolver | None = None, device: str | torch.device | None = None,
            batch_sources: int | None = None) -> torch.Tensor:
    """Noise-free observations ``(S, nt, nz, nx)`` at the preset's nodes, from the solver.

    Parameters
    ----------
    true_velocity : (nz, nx) m/s, or on a k-times finer grid (``preset.grid.refine(k)``)
        A model on the solver's grid is used as given; another is sampled at the preset's
        nodes and bilinearly interpolated to the solver's grid.
    sources_xz_m : (S, 2) metres
    preset : Preset
    solver : AcousticSolver, optional
        On the preset's grid or a refinement of it. Default: :func:`observation_solver` (a 2x
        finer grid and time step than the inversion's: no inverse crime).
    batch_sources : int, optional
        Sources per solver call (bounds memory).
    """
    v = _as_tensor(true_velocity).float()
    if solver is None:
        solver = observation_solver(preset, v, device=device)
    if not isinstance(solver, AcousticSolver):
        raise SeisfnoError("observations must be made by an AcousticSolver (no inverse crime)")
    k = refinement_of(preset.grid, solver.grid.shape)
    if k is None or not solver.grid.same_domain(preset.grid):
        raise SeisfnoError(f"the observation solver's {solver.grid.nz} x {solver.grid.nx} grid is "
                           f"not the preset's grid or a refinement of it")
    v = _model_on(v, preset, solver.grid)
    validate_velocity(v, solver.grid, name="true velocity")
    if device is not None:
        v = v.to(device)
    src = np.asarray(sources_xz_m, dtype=np.float64).reshape(-1, 2)
    with torch.no_grad():
        parts = [solver(v, src[b]).reshape(-1, preset.nt_out, *solver.grid.shape)[..., ::k, ::k]
                 for b in batches(len(src), batch_sources)]
    return torch.cat(parts, 0)


def describe_observations(solver: AcousticSolver, preset: Preset, true_velocity: Any) -> str:
    """How observations were made, for the results (``observations``)."""
    t = torch.as_tensor(true_velocity)
    plan = solver.plan(t)
    k = refinement_of(preset.grid, solver.grid.shape) or 1
    where = (f"a {k}x finer grid ({solver.grid.nz} x {solver.grid.nx} nodes)" if k > 1
             else "the inversion grid")
    model = ("given at that resolution" if tuple(t.shape) == solver.grid.shape
             else "interpolated bilinearly to it")
    return (f"solver:{solver.backend.name} on {where}, true model {model}; internal spacing "
            f"{plan.fine.dx_m:.1f} m (refine={plan.refine}), dt {plan.dt_s * 1e3:.3g} ms, "
            f"range=[{plan.v_min_mps:.0f},{plan.v_max_mps:.0f}]")


__all__ = ["OBSERVATION_REFINEMENT", "describe_observations", "observation_solver", "observe",
           "refinement_of", "true_on_grid"]
