"""Sizes of each ``reproduce`` profile: what the paper did, scaled to the machine at hand."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .._errors import SeisfnoError


@dataclass(frozen=True)
class ReproduceConfig:
    """How big each stage of :func:`~seisfno.pipeline.reproduce.reproduce` is.

    Attributes
    ----------
    preset : str
    n_samples, n_val : int
        Generated samples; the last ``n_val`` are held out for validation (the paper: 200).
    train_minutes : float or None
        Training budget of the main model (``None``: ``train_epochs`` alone).
    train_epochs : int, optional
        Epochs of the main model (the first of this and ``train_minutes`` reached ends it; an
        epoch count alone makes the model the same after an interrupted and resumed run).
    datasize_sizes : tuple of int
        Training-set sizes of the data-size study (the paper: 1200 ... 4800).
    datasize_minutes : float
        Training budget of each study model.
    study_samples : int
        Held-out samples of the square-anomaly reference and super-resolution studies.
    fwi_model : str
        Benchmark true model of the FWI comparison.
    fwi_sources, operator_iterations, solver_iterations : int
        FWI survey and iteration counts (the paper: 20 sources, 1000 iterations each).
    hybrid_operator_iterations, hybrid_solver_iterations : int
    operator_stages, solver_stages, hybrid_operator_stages : tuple of (float or None, int), optional
        Frequency continuations ``((lowpass_hz, iterations), ...)``, ``None`` = full band
        (:func:`~seisfno.inversion.multiscale`); when set they replace the matching iteration
        count. The solver phase of the hybrid runs ``hybrid_solver_iterations`` on the full band.
    check_sources : int, optional
        Referee the operator's FWI and the hybrid's operator phase with the solver on this many
        sources (:class:`~seisfno.inversion.SolverCheck`): stop each stage when the solver's data
        misfit has not improved for ``check_patience`` checks, ``check_every`` steps apart.
    batch_size : int
    seed : int
        Base seed of the training data.
    preset_overrides : tuple of (name, value)
        Passed to :func:`~seisfno.physics.get_preset`.
    """

    preset: str
    n_samples: int
    n_val: int
    train_minutes: float | None
    datasize_sizes: tuple[int, ...]
    datasize_minutes: float
    study_samples: int
    fwi_model: str = "von-karman"
    fwi_sources: int = 20
    operator_iterations: int = 1000
    solver_iterations: int = 1000
    hybrid_operator_iterations: int = 500
    hybrid_solver_iterations: int = 100
    operator_stages: tuple[tuple[float | None, int], ...] | None = None
    solver_stages: tuple[tuple[float | None, int], ...] | None = None
    hybrid_operator_stages: tuple[tuple[float | None, int], ...] | None = None
    check_sources: int | None = None
    check_every: int = 10
    check_patience: int = 2
    batch_size: int = 16
    seed: int = 0
    train_epochs: int | None = None
    #: Preset fields to override (``{"n": 24, "nt_out": 12}``: tiny setups for tests).
    preset_overrides: tuple[tuple[str, object], ...] = ()

    def to_dict(self) -> dict:
        """Plain JSON-able fields (tuples as lists); :meth:`from_dict` reads it back."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict) -> ReproduceConfig:
        """The config of :meth:`to_dict`'s output (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        if set(d) - names:
            raise SeisfnoError(f"unknown reproduce settings {sorted(set(d) - names)}")

        def pairs(v):
            return None if v is None else tuple(tuple(x) for x in v)

        d = dict(d)
        for key in ("operator_stages", "solver_stages", "hybrid_operator_stages",
                    "preset_overrides"):
            if key in d:
                d[key] = pairs(d[key])
        if "datasize_sizes" in d:
            d["datasize_sizes"] = tuple(d["datasize_sizes"])
        return cls(**d)


PROFILES: dict[str, ReproduceConfig] = {
    # Laptop CPU (2 cores), <= 15 minutes in all (12.3-13.0 min measured, BENCHMARKS.md,
    # 2026-11-26). Batch 8: on CPU a step costs the same per sample at 8 as at 16, and twice the
    # steps won at equal time (validation 0.0905 vs 0.1007 for the shipped quick model's
    # 28-minute run; BENCHMARKS.md, 2026-11-26).
    "quick": ReproduceConfig(
        "quick", n_samples=1400, n_val=200, train_minutes=4.0,
        datasize_sizes=(300, 600, 1200), datasize_minutes=0.5, study_samples=8,
        operator_iterations=150, solver_iterations=8, hybrid_operator_iterations=150,
        hybrid_solver_iterations=3, batch_size=8),
    # The README's demo: every stage, a few minutes on a laptop CPU (no recorded timing).
    "quick-small": ReproduceConfig(
        "quick", n_samples=360, n_val=60, train_minutes=1.5,
        datasize_sizes=(100, 300), datasize_minutes=0.3, study_samples=4,
        operator_iterations=100, solver_iterations=4, hybrid_operator_iterations=100,
        hybrid_solver_iterations=2, batch_size=8),
    # One GPU: the paper's protocol with more data (ours is cheap to make). FWI with a 3 Hz
    # stage first: from the homogeneous start the full 8 Hz band is cycle-skipped (the misfit
    # rises for ~100 iterations). With it the solver reached 0.0008 in 110 iterations (H200).
    # The operator's stages are refereed by the solver on 4 sources: without that it fits its
    # own errors in the full band (0.024 at best, 0.036 at the end); with it the shipped
    # operator ended at 0.0244 (BENCHMARKS.md, 2026-11-26, observations then sharing the
    # inversion's stencil: an inverse crime).
    "paper": ReproduceConfig(
        "paper", n_samples=20200, n_val=200, train_minutes=4.0,
        datasize_sizes=(1200, 2400, 3600, 4800, 10000, 20000), datasize_minutes=1.0,
        study_samples=32, operator_iterations=250, solver_iterations=110,
        hybrid_operator_iterations=250, hybrid_solver_iterations=60, batch_size=32,
        operator_stages=((3.0, 150), (None, 100)), solver_stages=((3.0, 50), (None, 60)),
        hybrid_operator_stages=((3.0, 150), (None, 100)), check_sources=4, check_every=5,
        check_patience=3),
}


def get_profile(preset: str, small: bool = False, **overrides) -> ReproduceConfig:
    """The profile of ``preset`` (``quick``, ``paper``), ``small`` for the demo size."""
    name = f"{preset}-small" if small else preset
    if name not in PROFILES:
        raise SeisfnoError(f"no reproduce profile {name!r}; choose from {sorted(PROFILES)}")
    cfg = PROFILES[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    return dataclasses.replace(cfg, **overrides) if overrides else cfg
