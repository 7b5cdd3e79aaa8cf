"""``reproduce``: the whole paper in one command, resumable stage by stage.

Stages (each a :class:`Stage`; each writes ``DIR/<stage>.json`` and the files in its
``outputs``):

1. ``data``      random von Karman models, sources and solver wavefields (a Zarr store);
2. ``train``     the default operator on all but the last ``n_val`` samples;
3. ``evaluate``  validation relative L2 and a Fig. 2-like figure;
4. ``datasize``  error against training-set size (Fig. 3);
5. ``square``    the square anomaly (Fig. 4a-c);
6. ``superres``  128 x 128 evaluation (Fig. 4d-f);
7. ``fwi``       FWI with the operator, the solver and the hybrid, timed side by side (Fig. 5);
8. ``speed``     operator inference against solver simulation on this machine.

Then ``report.md`` (the paper's numbers beside ours, every figure) and ``metrics.json``.

Resuming (:mod:`seisfno.pipeline.stages`). A stage's configuration (:func:`stage_configs`: the
settings its result depends on, including those of the stages it builds on) is stored in its
JSON. A rerun skips a stage whose JSON holds the same configuration. When the configuration
changed, the stage is computed again, and so is every later stage built on it (their
configurations contain it); a message on stderr says which setting changed, and the old outputs
are moved to ``DIR/superseded/<time>/``, never deleted. A stage interrupted (killed) before its
JSON was written resumes from its partial outputs (the dataset and the training resume
themselves) when its configuration is unchanged (``DIR/<stage>.running.json`` records it), and
starts again otherwise. ``device`` and ``workers`` are not part of any configuration: they
change timings, not results (the ``speed`` stage's timings are kept from the run that made them).
"""

from __future__ import annotations

import functools
import json
import os
import platform
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._errors import SeisfnoError
from .._progress import progress_bar
from .._version import __version__
from ..inversion.observations import OBSERVATION_REFINEMENT
from ..physics import Preset
from .config import FWI_RUNS, ReproduceConfig
from .report import write_report
from .stages import Stage, StageRunner, write_json

STAGES = ("data", "train", "evaluate", "datasize", "square", "superres", "fwi", "speed")
_FWI_RUNS = FWI_RUNS


@dataclass(frozen=True)
class _Context:
    """What every stage's ``run`` reads: the output directory, sizes, setup and device."""

    out: Path
    cfg: ReproduceConfig
    preset: Preset
    dev: torch.device
    workers: int
    progress: bool

    @property
    def store_path(self) -> Path:
        return self.out / "data.zarr"

    @property
    def run_dir(self) -> Path:
        return self.out / "model"


def stage_configs(cfg: ReproduceConfig) -> dict[str, dict]:
    """Per stage, the settings its result depends on (with those of the stages it uses)."""
    # Settings added later are recorded only when set, so that older runs stay valid.
    data = {"preset": cfg.preset, "preset_overrides": cfg.preset_overrides,
            "n_samples": cfg.n_samples, "seed": cfg.seed,
            **({"shard_size": cfg.shard_size} if cfg.shard_size is not None else {})}
    memory = {} if cfg.train_in_memory is None else {"in_memory": cfg.train_in_memory}
    train = {"data": data, "arch": "fno2d", "n_val": cfg.n_val,
             "train_minutes": cfg.train_minutes, "train_epochs": cfg.train_epochs,
             "batch_size": cfg.batch_size, **memory}
    fwi = {"train": train, "model": cfg.fwi_model, "sources": cfg.fwi_sources,
           "true_refine": OBSERVATION_REFINEMENT,
           **{k: getattr(cfg, k) for k in (
               "operator_iterations", "solver_iterations", "hybrid_operator_iterations",
               "hybrid_solver_iterations", "operator_stages", "solver_stages",
               "hybrid_operator_stages", "check_sources", "check_every", "check_patience")},
           **({"time_limits_s": cfg.fwi_time_limits_s} if cfg.fwi_time_limits_s else {})}
    configs = {
        "data": data, "train": train, "evaluate": {"train": train},
        "datasize": {"data": data, "n_val": cfg.n_val, "sizes": cfg.datasize_sizes,
                     "minutes": cfg.datasize_minutes, "batch_size": cfg.batch_size, **memory},
        "square": {"train": train, "n_reference": cfg.study_samples},
        "superres": {"train": train, "nodes": cfg.superres_nodes,
                     "n_samples": cfg.study_samples},
        "fwi": fwi, "speed": {"train": train},
    }
    return json.loads(json.dumps(configs))  # tuples as lists: what the JSON files hold


# --------------------------------------------------------------------------- the stages
def _data(ctx: _Context) -> dict:
    from ..data import generate_dataset

    t0 = time.perf_counter()
    generate_dataset(ctx.store_path, ctx.preset, ctx.cfg.n_samples, seed=ctx.cfg.seed,
                     workers=ctx.workers, progress=ctx.progress, device=str(ctx.dev),
                     shard_size=ctx.cfg.shard_size)
    sec = time.perf_counter() - t0
    return {"n_samples": ctx.cfg.n_samples, "seconds": sec,
            "samples_per_s": ctx.cfg.n_samples / sec, "path": str(ctx.store_path)}


def _train(ctx: _Context) -> dict:
    from ..operator import train

    cfg = ctx.cfg
    res = train(ctx.store_path, ctx.run_dir, time_budget_min=cfg.train_minutes,
                epochs=cfg.train_epochs, n_val=cfg.n_val, batch_size=cfg.batch_size,
                device=str(ctx.dev), progress=ctx.progress, in_memory=cfg.train_in_memory)
    return {"val_rel_l2": res.val_rel_l2, "train_rel_l2": res.train_rel_l2,
            "epochs": res.epochs_run, "seconds": res.seconds,
            "n_train": cfg.n_samples - cfg.n_val, "arch": "fno2d"}


def _evaluate(ctx: _Context) -> dict:
    from ..data import open_store
    from ..operator import evaluate, load_model, plot_comparison

    cfg = ctx.cfg
    model = load_model(ctx.run_dir, ctx.dev)
    store = open_store(ctx.store_path)
    idx = np.arange(cfg.n_samples - cfg.n_val, cfg.n_samples)
    res = evaluate(model, ctx.store_path, indices=idx)
    per = np.asarray(res["rel_l2_per_sample"])
    figs = []
    for tag, k in (("best", int(per.argmin())), ("median", int(np.argsort(per)[len(per) // 2])),
                   ("worst", int(per.argmax()))):
        v, s, u = store.load([idx[k]])
        with torch.no_grad():
            p = model.predict(v, s).float().cpu().numpy()
        path = ctx.out / f"fig2_{tag}.png"
        plot_comparison(u[0], p[0], v[0], s[0], ctx.preset, path,
                        title=f"{tag} validation sample: relative L2 {per[k]:.3f}")
        figs.append(path.name)
    return {"rel_l2_mean": res["rel_l2_mean"], "rel_l2_median": float(np.median(per)),
            "rel_l2_min": float(per.min()), "rel_l2_max": float(per.max()),
            "rel_l2_per_time": res["rel_l2_per_time"], "n_samples": len(per),
            "figures": figs}


def _datasize(ctx: _Context) -> dict:
    from ..data import open_store
    from ..operator.studies import datasize_study

    cfg = ctx.cfg
    sizes = [n for n in cfg.datasize_sizes if n <= cfg.n_samples - cfg.n_val]
    if cfg.train_in_memory is False:
        return _datasize_streamed(ctx, sizes)
    v, s, u = open_store(ctx.store_path).load(None)
    return datasize_study(v, s, u, ctx.preset, sizes, ctx.out / "datasize", n_val=cfg.n_val,
                          train_kwargs={"time_budget_min": cfg.datasize_minutes,
                                        "batch_size": cfg.batch_size},
                          device=str(ctx.dev), progress=ctx.progress)


def _datasize_streamed(ctx: _Context, sizes: list[int]) -> dict:
    """The data-size study trained from the store (streamed; memory bounded by a few chunks).

    The same runs, rows, table and figure as :func:`~seisfno.operator.studies.datasize_study`:
    size ``n`` trains on the first ``n`` samples, all validate on the last ``n_val``.
    """
    from ..operator import train
    from ..operator.studies import _datasize_table, _markdown, _plot_datasize, _write

    cfg, out = ctx.cfg, ctx.out / "datasize"
    rows = []
    for n in sorted(sizes):
        run = out / f"n{n}"
        res = train(ctx.store_path, run, n_train=n, n_val=cfg.n_val,
                    time_budget_min=cfg.datasize_minutes, batch_size=cfg.batch_size,
                    device=str(ctx.dev), progress=ctx.progress, in_memory=False)
        card = json.loads((run / "model.json").read_text())
        rows.append({"n_train": n, "augment": card["training"]["augment"],
                     "train_rel_l2": res.train_rel_l2, "val_rel_l2": res.val_rel_l2,
                     "epochs": res.epochs_run, "seconds": res.seconds})
    table = _datasize_table(rows)
    _plot_datasize(rows, out / "datasize.png")
    (out / "datasize.md").write_text(_markdown(table))
    return _write(out, "datasize", {"study": "datasize", "preset": ctx.preset.name,
                                    "n_val": cfg.n_val, "rows": rows, "table": table,
                                    "streamed": True})


def _square(ctx: _Context) -> dict:
    from ..operator import load_model
    from ..operator.studies import square_anomaly_study

    return square_anomaly_study(load_model(ctx.run_dir, ctx.dev), ctx.out / "square",
                                n_reference=ctx.cfg.study_samples, device=str(ctx.dev))


def _superres(ctx: _Context) -> dict:
    from ..operator import load_model
    from ..operator.studies import superres_study

    return superres_study(load_model(ctx.run_dir, ctx.dev), ctx.out / "superres",
                          nodes=ctx.cfg.superres_nodes,
                          n_samples=ctx.cfg.study_samples, device=str(ctx.dev))


def _fwi_runs(cfg: ReproduceConfig, op, fd, src, obs, true) -> dict:
    """The operator's, the solver's and the hybrid's inversions, by name."""
    from ..inversion import SolverCheck, hybrid, invert, multiscale

    checked = {}
    if cfg.check_sources:
        checked = {"check": SolverCheck(fd, src, obs, n_sources=cfg.check_sources),
                   "check_every": cfg.check_every, "check_patience": cfg.check_patience}

    def limit(name):
        t = cfg.fwi_time_limit(name)
        return {} if t is None else {"time_limit_s": float(t)}

    def run(fwd, stages, iterations, **kw):
        if stages:
            return multiscale(fwd, src, obs, true, stages=stages, **kw)
        return invert(fwd, src, obs, true, iterations=iterations, **kw)

    r_op = run(op, cfg.operator_stages, cfg.operator_iterations, **checked, **limit("operator"))
    return {
        "operator": r_op,
        "solver": run(fd, cfg.solver_stages, cfg.solver_iterations, **limit("solver")),
        "hybrid": hybrid(op, fd, src, obs, true,
                         operator_iterations=cfg.hybrid_operator_iterations,
                         solver_iterations=cfg.hybrid_solver_iterations,
                         operator_stages=cfg.hybrid_operator_stages,
                         solver_check_sources=cfg.check_sources, check_every=cfg.check_every,
                         check_patience=cfg.check_patience, **limit("hybrid"),
                         operator_phase=r_op if _same_operator_phase(cfg, r_op) else None),
    }


def _same_operator_phase(cfg: ReproduceConfig, r_op) -> bool:
    """Whether the hybrid's operator phase would repeat the operator run step for step.

    It does when both have the same iterations or stages (the checks and the start are shared)
    and the operator run ended by itself, not by its time limit, within the hybrid's limit.
    Then the hybrid continues from that run, with its measured times, instead of computing
    the same iterations a second time.
    """
    from ..inversion.fwi import _ended_normally

    limit = cfg.fwi_time_limit("hybrid")
    return (cfg.hybrid_operator_iterations == cfg.operator_iterations
            and cfg.hybrid_operator_stages == cfg.operator_stages
            and _ended_normally(r_op.stopped_reason)
            and (limit is None or float(r_op.time_s[-1] - r_op.time_s[0]) < limit))


def _fwi_outputs(ctx: _Context, runs: dict, true: np.ndarray) -> dict:
    """Final models (``fwi_<run>.npy``), Fig. 5 panels and the curves; the curves by name."""
    from ..inversion.plots import plot_curves, plot_models

    curves = {}
    for name, r in runs.items():
        curves[name] = {"misfit": np.asarray(r.misfit).tolist(),
                        "time_s": np.asarray(r.time_s).tolist()}
        np.save(ctx.out / f"fwi_{name}.npy", r.velocity)
        plot_models(ctx.preset.grid, r.velocity, runs["operator"].start_velocity, true,
                    ctx.out / f"fig5_{name}.png",
                    title=f"FWI with the {name}: misfit {r.model_misfit:.4f}")
    plot_curves(curves, ctx.out / "fwi_curves.png")
    return curves


def _fwi(ctx: _Context) -> dict:
    from ..inversion import (
        OperatorForward,
        SolverForward,
        benchmark_model,
        default_sources,
        observe,
    )
    from ..inversion.observations import (
        describe_observations,
        observation_solver,
        true_on_grid,
    )
    from ..operator import load_model

    cfg, dev, preset = ctx.cfg, ctx.dev, ctx.preset
    # The true model on the observations' 2x finer grid (sub-grid detail, as `seisfno invert`);
    # misfits are measured at the inversion grid's nodes.
    true = benchmark_model(cfg.fwi_model, preset, refine=OBSERVATION_REFINEMENT)
    src = default_sources(preset.grid, cfg.fwi_sources)
    op = OperatorForward(load_model(ctx.run_dir, dev), name="fno", device=dev)
    fd = SolverForward(preset, device=str(dev))
    t0 = time.perf_counter()
    obs_solver = observation_solver(preset, true, device=dev)
    obs = observe(true, src, preset, solver=obs_solver)
    obs_s = time.perf_counter() - t0
    runs = _fwi_runs(cfg, op, fd, src, obs, true)
    _fwi_outputs(ctx, runs, true_on_grid(true, preset.grid).numpy())
    r_op, r_fd, r_hy = (runs[k] for k in _FWI_RUNS)
    target = r_fd.model_misfit
    t_hy = r_hy.time_to_misfit(target) if target is not None else None
    fd_time = float(r_fd.time_s[-1] - r_fd.time_s[0])
    return {"model": cfg.fwi_model, "sources": cfg.fwi_sources, "observation_s": obs_s,
            "observations": describe_observations(obs_solver, preset, true),
            "stages": {"operator": cfg.operator_stages, "solver": cfg.solver_stages,
                       "hybrid_operator": cfg.hybrid_operator_stages},
            "check_sources": cfg.check_sources,
            "time_limits_s": dict(cfg.fwi_time_limits_s),
            "results": {k: r.summary() for k, r in runs.items()},
            "speedup_per_iteration": (
                r_fd.seconds_per_iteration / max(r_op.seconds_per_iteration, 1e-12)),
            "hybrid_time_to_solver_misfit_s": t_hy, "solver_total_s": fd_time,
            "hybrid_reaches_solver_misfit": t_hy is not None,
            "hybrid_time_fraction": None if t_hy is None else t_hy / max(fd_time, 1e-12)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn: Callable[[], Any], n: int, reps: int, dev: torch.device) -> float:
    """Items per second of ``fn`` (``n`` items a call) over ``reps`` calls after a warm-up."""
    fn()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(reps):
        fn()
    _sync(dev)
    return reps * n / (time.perf_counter() - t0)


def _speed(ctx: _Context) -> dict:
    from ..data import open_store
    from ..operator import load_model
    from ..physics import AcousticSolver

    dev = ctx.dev
    model = load_model(ctx.run_dir, dev)
    n = min(64, ctx.cfg.n_samples)
    v, s, _ = open_store(ctx.store_path).load(np.arange(n))
    vt = torch.as_tensor(v, device=dev)
    bs = 64 if dev.type == "cuda" else 16
    m = min(8, n)
    solver = AcousticSolver.from_preset(ctx.preset, device=dev)

    def operator_all():
        for i in range(0, n, bs):
            model.predict(vt[i:i + bs], s[i:i + bs])

    with torch.no_grad():
        op_rate = _rate(operator_all, n, 5 if dev.type == "cuda" else 1, dev)
        fd_rate = _rate(lambda: solver(vt[:m], s[:m]), m, 1, dev)
    return {"operator_wavefields_per_s": op_rate, "solver_wavefields_per_s": fd_rate,
            "ratio": op_rate / fd_rate, "operator_batch": bs, "solver_batch": m}


def make_stages(ctx: _Context) -> list[Stage]:
    """The stages of :data:`STAGES`, in order, for this context."""
    configs = stage_configs(ctx.cfg)
    fwi_files = tuple(f"{p}_{r}.{e}" for r in _FWI_RUNS for p, e in (("fwi", "npy"),
                                                                     ("fig5", "png")))
    table = {  # name: (run, outputs, needs)
        "data": (_data, ("data.zarr",), ()),
        "train": (_train, ("model",), ("data",)),
        "evaluate": (_evaluate, tuple(f"fig2_{t}.png" for t in ("best", "median", "worst")),
                     ("data", "train")),
        "datasize": (_datasize, ("datasize",), ("data",)),
        "square": (_square, ("square",), ("train",)),
        "superres": (_superres, ("superres",), ("train",)),
        "fwi": (_fwi, (*fwi_files, "fwi_curves.png"), ("train",)),
        "speed": (_speed, (), ("data", "train")),
    }
    return [Stage(name, configs[name], functools.partial(fn, ctx), outputs, needs)
            for name, (fn, outputs, needs) in table.items()]


# --------------------------------------------------------------------------- resume rules
# --------------------------------------------------------------------------- the pipeline
def machine_info(device: str | None) -> dict[str, Any]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    info = {"device": str(dev), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "seisfno": __version__,
            "date": time.strftime("%Y-%m-%d")}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def _context(out_dir, cfg: ReproduceConfig, device: str | None, workers: int | None,
             progress: bool) -> _Context:
    from ..physics import get_preset

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    preset = get_preset(cfg.preset, **dict(cfg.preset_overrides))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if workers is None:
        workers = 1 if dev.type == "cuda" else max(1, min(4, os.cpu_count() or 1))
    return _Context(out, cfg, preset, dev, workers, progress)


def _chosen(stages: Iterable[str]) -> tuple[str, ...]:
    chosen = tuple(stages)
    bad = sorted(set(chosen) - set(STAGES))
    if bad:
        raise SeisfnoError(f"unknown stage(s) {bad}; choose from {list(STAGES)}")
    return chosen


def reproduce(out_dir: str | os.PathLike, config: ReproduceConfig, *, device: str | None = None,
              workers: int | None = None, stages: Iterable[str] = STAGES,
              progress: bool = True) -> dict[str, Any]:
    """Run the chosen stages into ``out_dir`` and write ``report.md`` and ``metrics.json``.

    Parameters
    ----------
    out_dir : path
        Output directory; finished stages found there with the same configuration are kept
        (see the module docstring for the resume rules).
    config : ReproduceConfig
        Sizes (:data:`~seisfno.pipeline.config.PROFILES`).
    device : str, optional
        Torch device for solver, training and FWI (default CUDA when available).
    workers : int, optional
        Dataset-generation processes (default: one per core, at most 4, on CPU; 1, in-process,
        on a GPU).
    stages : iterable of str
        A subset of :data:`STAGES`; the stages they build on must be done (with this
        configuration) or chosen too. The report shows every stage whose stored result matches
        the configuration.
    progress : bool
        Progress bars on stderr (stages, and each stage's own; terminal only).
    """
    chosen = _chosen(stages)
    ctx = _context(out_dir, config, device, workers, progress)
    runner = StageRunner(ctx.out)
    done: dict[str, dict] = {}
    t_all = time.perf_counter()
    all_stages = make_stages(ctx)
    by_name = {s.name: s for s in all_stages}
    bar = progress_bar(len(set(chosen)), unit="stage", desc="reproduce", progress=progress)
    try:
        for stage in all_stages:
            if stage.name in chosen:
                bar.set_postfix_str(stage.name)
                done[stage.name] = runner.run(stage, by_name)
                bar.update(1)
            elif (res := runner.result(stage)) is not None:
                done[stage.name] = res
            elif (ctx.out / f"{stage.name}.json").exists():
                runner.say(f"stage {stage.name}: made with another configuration, left out of "
                           "the report (run it again to include it)")
    finally:
        bar.close()
    metrics = {"preset": config.preset, "config": config.to_dict(),
               "setup": ctx.preset.to_dict(), "machine": machine_info(device), "stages": done,
               "total_seconds": time.perf_counter() - t_all}
    write_json(ctx.out / "metrics.json", metrics)
    write_report(ctx.out / "report.md", metrics)
    return metrics
