"""Sizes of each ``reproduce`` profile: what the paper did, scaled to the machine at hand."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from .._errors import SeisfnoError

#: The FWI runs of the ``fwi`` stage.
FWI_RUNS = ("operator", "solver", "hybrid")


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
    shard_size : int, optional
        Samples per store shard: the solver's batch while generating and the chunk that
        streaming training reads (default: :func:`~seisfno.data.generate.default_shard_size`).
    train_in_memory : bool, optional
        ``False`` streams the training data from the store (memory bounded by a few chunks,
        whatever the store's size), ``True`` loads it whole (fast path for stores that fit);
        applies to the main model and the data-size study. Default: ``train``'s own rule.
    superres_nodes : int
        Nodes per side of the super-resolution study (the paper: 128, twice its 64).
    fwi_time_limits_s : tuple of (run, seconds)
        Safety limits of the FWI runs (``operator``, ``solver``, ``hybrid``): a run that would
        pass its limit stops there (:func:`~seisfno.inversion.invert`'s ``time_limit_s``). Sized
        above the expected time, they bound the stage on a slower machine.
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
    shard_size: int | None = None
    train_in_memory: bool | None = None
    superres_nodes: int = 128
    fwi_time_limits_s: tuple[tuple[str, float], ...] = ()

    def __post_init__(self) -> None:
        if self.shard_size is not None and (isinstance(self.shard_size, bool)
                                            or int(self.shard_size) != self.shard_size
                                            or self.shard_size < 1):
            raise SeisfnoError(f"shard_size must be an integer >= 1, got {self.shard_size!r}")
        if self.superres_nodes < 2:
            raise SeisfnoError(f"superres_nodes must be >= 2, got {self.superres_nodes}")
        for item in self.fwi_time_limits_s:
            if (len(item) != 2 or item[0] not in FWI_RUNS
                    or not isinstance(item[1], (int, float)) or not item[1] > 0):
                raise SeisfnoError(f"FWI time limits are (run, seconds > 0) pairs with run one "
                                   f"of {list(FWI_RUNS)}, got {item!r}")

    def fwi_time_limit(self, run: str) -> float | None:
        """The safety limit of FWI run ``run`` in seconds (``None``: none)."""
        return dict(self.fwi_time_limits_s).get(run)

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
                    "preset_overrides", "fwi_time_limits_s"):
            if key in d:
                d[key] = pairs(d[key])
        if "datasize_sizes" in d:
            d["datasize_sizes"] = tuple(d["datasize_sizes"])
        return cls(**d)


PROFILES: dict[str, ReproduceConfig] = {
    # Laptop CPU (2 cores), <= 15 minutes in all on a slow 2-core AVX2 machine (issue 12: the
    # sizes before, 1400 samples, 4 minutes of training, 8 solver iterations, took 21 min there
    # and 12.0 here with AVX2 kernels). Resized on 2026-12-02 by the stage-by-stage factors of
    # that machine over this one (data 1.5x, training 1.2x, studies 1.45x, FWI 2.5x; an
    # estimate of ~14.5 min there, not yet measured after the resize):
    # 1200 samples, 3.5 minutes of training, 0.4 per data-size model, 5 solver iterations and 2
    # in the hybrid, whose operator phase is the operator run (not computed twice). Batch 8: on
    # CPU a step costs the same per sample at 8 as at 16, and twice the steps won at equal time
    # (validation 0.0905 vs 0.1007 for the shipped quick model's 28-minute run, 2026-11-26).
    # Training is bounded by its budgets (which hold on a slowing machine), the FWI runs by time
    # limits sized not to bind at the estimate for the machine (operator FWI ~2x and
    # solver gradients ~2.5x slower than the 2-core sandbox, whose runs took: operator 23-43 s,
    # solver 55 s warm and 70-108 s with cold compile caches, hybrid 20 s after the reused
    # operator run; BENCHMARKS.md, 2026-12-03). Together they bound the FWI stage by 600 s plus
    # one iteration per run (an operator run cut by its limit is not reused by the hybrid).
    "quick": ReproduceConfig(
        "quick", n_samples=1200, n_val=200, train_minutes=3.5,
        datasize_sizes=(250, 500, 1000), datasize_minutes=0.4, study_samples=8,
        operator_iterations=150, solver_iterations=5, hybrid_operator_iterations=150,
        hybrid_solver_iterations=2, batch_size=8,
        fwi_time_limits_s=(("operator", 120.0), ("solver", 300.0), ("hybrid", 180.0))),
    # The README's demo: every stage, a few minutes on a laptop CPU (215 s on the 2-core
    # sandbox with warm compile caches, 229 s with cold ones, 2026-12-03; BENCHMARKS.md).
    "quick-small": ReproduceConfig(
        "quick", n_samples=360, n_val=60, train_minutes=1.5,
        datasize_sizes=(100, 300), datasize_minutes=0.3, study_samples=4,
        operator_iterations=100, solver_iterations=4, hybrid_operator_iterations=100,
        hybrid_solver_iterations=2, batch_size=8),
    # The whole paper in one 10-minute call on one H100/H200 (the device tool's limit: 600 s a
    # call): ~8 minutes of work by the estimate of :func:`gpu_budget` (per stage, with where
    # each rate comes from; not yet run on a GPU). The paper's data size (5000: 4800 + 200),
    # streamed from the store in shards of 64 (memory bounded by a few chunks, ~1 GB). FWI with
    # a 3 Hz stage first: from the homogeneous start the full 8 Hz band is cycle-skipped (the
    # misfit rises for ~100 iterations); with it the solver reached 0.02 at iteration 39 and
    # 0.0008 at 110 (H200). The operator's stages are refereed by the solver on 4 sources:
    # without that it fits its own errors in the full band (0.024 at best, 0.036 at the end);
    # with it the shipped operator ended at 0.0244 (BENCHMARKS.md, 2026-11-26, observations
    # then sharing the inversion's stencil). Observations now come from a 2x finer grid and
    # time step (8x a simulation per source). Time limits bound each FWI run on a slower GPU.
    "paper": ReproduceConfig(
        "paper", n_samples=5000, n_val=200, train_minutes=1.0,
        datasize_sizes=(1200, 2400, 4800), datasize_minutes=0.15, study_samples=8,
        operator_iterations=250, solver_iterations=40, hybrid_operator_iterations=250,
        hybrid_solver_iterations=10, batch_size=32,
        operator_stages=((3.0, 150), (None, 100)), solver_stages=((3.0, 20), (None, 20)),
        hybrid_operator_stages=((3.0, 150), (None, 100)), check_sources=4, check_every=5,
        check_patience=3, shard_size=64, train_in_memory=False,
        fwi_time_limits_s=(("operator", 30.0), ("solver", 75.0), ("hybrid", 40.0))),
}

#: Rates of one H200 behind :func:`gpu_budget` (seconds or per-second; BENCHMARKS.md sections
#: "One GPU: solver, data, ..." (run B) and "One GPU, second session" (runs 1 and 2), 2026-11-26).
H200_RATES: dict[str, float] = {
    "startup_s": 10.0,        # imports and the CUDA context: assumed
    "first_compile_s": 22.0,  # run 1: the first generation batch (solver compilation) took 22 s
    "compile_s": 10.0,        # each further solver shape (batch or grid): assumed
    "sims_per_s": 80.0,       # paper simulations/s: 79.5 at batch 32, 154-159 at 128 (run B, 1);
                              # shards of 64 with the Zarr writes in-process: taken as batch 32
    "read_per_s": 150.0,      # samples/s read from the store (normalization, validation): 114-153
                              # measured on the 2-core sandbox (2026-12-02), taken as the GPU's
    "train_overhead_s": 10.0,  # the FNO's compilation and checkpoints per model: assumed
    "train_per_s": 3000.0,    # width-64 FNO samples/s in memory: 3645 fp32 and 4130 bf16 +
                              # compile (the fno2d.py docstring, H200, 2026-11-26), measured with
                              # the FFT spectral layer before issue 12's DFT-matmul one (not yet
                              # timed on a GPU); a streamed epoch runs at the read rate when
                              # slower, and a model trains >= 1 epoch
    "solver_it_s": 1.3,       # solver FWI iteration, 20 sources: 1.225 (run 2) - 1.39 (run 1)
    "operator_it_s": 0.008,   # operator FWI iteration, fast path: 5.8-8.2 ms (runs 1, 2)
    "check_s": 0.2,           # a 4-source solver check without gradient: 4 / 80 s x 4: assumed
    "fine_sim_cost": 8.0,     # an observation: 2x finer grid (4x cells) and time step (2x steps)
    "superres_sim_cost": 8.0,  # a 128 x 128 simulation against a 64 x 64 one, the same way
}


def _fwi_seconds(cfg: ReproduceConfig, r: dict[str, float]) -> dict[str, float]:
    """Expected seconds of each FWI run (capped by its time limit) and of the observations."""
    def iters(stages, n):
        return sum(it for _, it in stages) if stages else n

    def operator(stages, n):
        k = iters(stages, n)
        checks = k / cfg.check_every if cfg.check_sources else 0
        return k * r["operator_it_s"] + checks * r["check_s"]

    # The hybrid's operator phase is counted even where it will be the operator run, reused
    # (reproduce._same_operator_phase): an upper bound.
    runs = {"operator": operator(cfg.operator_stages, cfg.operator_iterations),
            "solver": iters(cfg.solver_stages, cfg.solver_iterations) * r["solver_it_s"],
            "hybrid": operator(cfg.hybrid_operator_stages, cfg.hybrid_operator_iterations)
            + cfg.hybrid_solver_iterations * r["solver_it_s"]}
    out = {k: min(v, cfg.fwi_time_limit(k) or v) for k, v in runs.items()}
    # New solver shapes: the finer observation grid, the gradient, the 4-source check.
    out["observations"] = cfg.fwi_sources * r["fine_sim_cost"] / r["sims_per_s"]
    out["compile"] = (2 + bool(cfg.check_sources)) * r["compile_s"]
    return out


def gpu_budget(cfg: ReproduceConfig, rates: dict[str, float] | None = None
               ) -> dict[str, float]:
    """Expected seconds of each stage of ``reproduce`` on one GPU, from ``rates``.

    ``rates`` default to :data:`H200_RATES` (their sources are noted there). An estimate for
    sizing a profile, not a measurement: the report of a real run replaces it.
    """
    r = {**H200_RATES, **(rates or {})}
    n_tr = cfg.n_samples - cfg.n_val
    read, sims = r["read_per_s"], r["sims_per_s"]
    last_shard = bool(cfg.shard_size and cfg.n_samples % cfg.shard_size)
    sizes = [n for n in cfg.datasize_sizes if n <= n_tr]
    # Streaming reads the training set once for its statistics, then the validation set; in
    # memory the same samples are read once to load them (the data-size study: the store).
    train_read = (n_tr + cfg.n_val) / read
    streamed = cfg.train_in_memory is False
    study_read = (sum(sizes) + len(sizes) * cfg.n_val) / read if streamed \
        else cfg.n_samples / read
    epoch_rate = min(read, r["train_per_s"]) if streamed else r["train_per_s"]
    study_fit = sum(max(60 * cfg.datasize_minutes, n / epoch_rate) for n in sizes)
    n = cfg.study_samples
    fwi = _fwi_seconds(cfg, r)
    return {
        "startup": r["startup_s"],
        "data": r["first_compile_s"] + last_shard * r["compile_s"] + cfg.n_samples / sims,
        "train": train_read + max(60 * (cfg.train_minutes or 0), n_tr / epoch_rate)
        + r["train_overhead_s"],
        "evaluate": cfg.n_val / read + 2.0,
        "datasize": study_read + study_fit + len(sizes) * r["train_overhead_s"],
        "square": r["compile_s"] + (3 + n) / sims,
        "superres": r["compile_s"] + n * (1 + r["superres_sim_cost"]) / sims,
        "fwi": sum(fwi.values()),
        "speed": 64 / read + 3.0,
    }


def smoke_profile(cfg: ReproduceConfig, nodes: int = 24, nt_out: int = 12) -> ReproduceConfig:
    """``cfg`` at toy size for a CPU check of the same command: every stage, the same protocol.

    Kept: the preset and its physics (frequency, node spacing, output step, velocity
    distribution), the FWI model, survey, frequency stages (in order, a few iterations each),
    referee, time limits and the streaming choice. Shrunk: the domain (``nodes`` per side at the
    preset's spacing), the record (``nt_out`` samples), the sample counts (the data-size study's
    sizes in the same ratios), training (1 epoch) and the super-resolution grid (the same ratio
    to the training grid).
    """
    from ..physics import get_preset

    p = get_preset(cfg.preset, **dict(cfg.preset_overrides))
    n_val, n_tr = 4, 20
    real_tr = cfg.n_samples - cfg.n_val

    def few(stages):
        return None if stages is None else tuple((hz, min(it, 2)) for hz, it in stages)

    sizes = tuple(sorted({max(2, round(n * n_tr / real_tr)) for n in cfg.datasize_sizes
                          if n <= real_tr}))
    over = {**dict(cfg.preset_overrides), "n": nodes, "spacing_m": p.grid.dx_m,
            "nt_out": nt_out}
    return dataclasses.replace(
        cfg, n_samples=n_tr + n_val, n_val=n_val, train_minutes=None, train_epochs=1,
        datasize_sizes=sizes, datasize_minutes=0.005, study_samples=2,
        operator_iterations=min(cfg.operator_iterations, 4),
        solver_iterations=min(cfg.solver_iterations, 2),
        hybrid_operator_iterations=min(cfg.hybrid_operator_iterations, 4),
        hybrid_solver_iterations=min(cfg.hybrid_solver_iterations, 1),
        operator_stages=few(cfg.operator_stages), solver_stages=few(cfg.solver_stages),
        hybrid_operator_stages=few(cfg.hybrid_operator_stages), check_every=1,
        batch_size=min(cfg.batch_size, 4), shard_size=4 if cfg.shard_size else None,
        superres_nodes=max(2, round(cfg.superres_nodes * nodes / p.grid.nz)),
        preset_overrides=tuple(over.items()))


def get_profile(preset: str, small: bool = False, smoke: bool = False,
                **overrides) -> ReproduceConfig:
    """The profile of ``preset`` (``quick``, ``paper``), ``small`` for the demo size.

    ``smoke`` shrinks it with :func:`smoke_profile` (after the overrides).
    """
    name = f"{preset}-small" if small else preset
    if name not in PROFILES:
        raise SeisfnoError(f"no reproduce profile {name!r}; choose from {sorted(PROFILES)}")
    cfg = PROFILES[name]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    cfg = dataclasses.replace(cfg, **overrides) if overrides else cfg
    return smoke_profile(cfg) if smoke else cfg
