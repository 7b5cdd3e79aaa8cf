"""``reproduce``: the whole paper in one command, resumable stage by stage.

Stages (each writes ``DIR/<stage>.json``; a rerun skips finished stages):

1. ``data``      random von Karman models, sources and solver wavefields (a Zarr store);
2. ``train``     the default operator on all but the last ``n_val`` samples;
3. ``evaluate``  validation relative L2 and a Fig. 2-like figure;
4. ``datasize``  error against training-set size (Fig. 3);
5. ``square``    the square anomaly (Fig. 4a-c);
6. ``superres``  128 x 128 evaluation (Fig. 4d-f);
7. ``fwi``       FWI with the operator, the solver and the hybrid, timed side by side (Fig. 5);
8. ``speed``     operator inference against solver simulation on this machine.

Then ``report.md`` (the paper's numbers beside ours, every figure) and ``metrics.json``.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._version import __version__
from .config import ReproduceConfig

log = logging.getLogger(__name__)

STAGES = ("data", "train", "evaluate", "datasize", "square", "superres", "fwi", "speed")


def _stage(out: Path, name: str, fn: Callable[[], dict], done: dict[str, dict]) -> dict:
    path = out / f"{name}.json"
    if path.exists():
        done[name] = json.loads(path.read_text())
        log.info("stage %s: done before, skipped", name)
        return done[name]
    t0 = time.perf_counter()
    log.info("stage %s ...", name)
    res = fn()
    res["stage_seconds"] = round(time.perf_counter() - t0, 2)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(res, indent=2))
    os.replace(tmp, path)
    done[name] = res
    log.info("stage %s: %.1f s", name, res["stage_seconds"])
    return res


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_info(device: str | None) -> dict[str, Any]:
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    info = {"device": str(dev), "cpu": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "seisfno": __version__,
            "date": time.strftime("%Y-%m-%d")}
    if dev.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(dev)
    return info


def reproduce(out_dir: str | os.PathLike, config: ReproduceConfig, *, device: str | None = None,
              workers: int | None = None, stages: tuple[str, ...] = STAGES,
              progress: bool = True
              ) -> dict[str, Any]:
    """Run every stage into ``out_dir`` and write ``report.md`` and ``metrics.json``.

    Parameters
    ----------
    out_dir : path
        Output directory; finished stages found there are not recomputed.
    config : ReproduceConfig
        Sizes (:data:`~seisfno.pipeline.config.PROFILES`).
    device : str, optional
        Torch device for solver, training and FWI (default CUDA when available).
    workers : int, optional
        Dataset-generation processes (default: one per core, at most 4, on CPU; 1, in-process,
        on a GPU).
    stages : tuple of str
        A subset of :data:`STAGES` (later stages need the earlier ones' outputs).
    """
    from ..data import generate_dataset, open_store
    from ..inversion import (
        OperatorForward,
        SolverCheck,
        SolverForward,
        benchmark_model,
        default_sources,
        hybrid,
        invert,
        multiscale,
        observe,
    )
    from ..inversion.plots import plot_curves, plot_models
    from ..operator import evaluate, load_model, plot_comparison, train
    from ..operator.studies import datasize_study, square_anomaly_study, superres_study
    from ..physics import AcousticSolver, get_preset
    from .report import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cfg = config
    preset = get_preset(cfg.preset, **dict(cfg.preset_overrides))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if workers is None:
        workers = 1 if dev.type == "cuda" else max(1, min(4, os.cpu_count() or 1))
    done: dict[str, dict] = {}
    store_path = out / "data.zarr"
    run_dir = out / "model"

    def data() -> dict:
        t0 = time.perf_counter()
        generate_dataset(store_path, preset, cfg.n_samples, seed=cfg.seed, workers=workers,
                         progress=progress, device=str(dev))
        sec = time.perf_counter() - t0
        return {"n_samples": cfg.n_samples, "seconds": sec,
                "samples_per_s": cfg.n_samples / sec, "path": str(store_path)}

    def train_main() -> dict:
        res = train(store_path, run_dir, time_budget_min=cfg.train_minutes, n_val=cfg.n_val,
                    batch_size=cfg.batch_size, device=str(dev), progress=progress)
        return {"val_rel_l2": res.val_rel_l2, "train_rel_l2": res.train_rel_l2,
                "epochs": res.epochs_run, "seconds": res.seconds,
                "n_train": cfg.n_samples - cfg.n_val, "arch": "fno2d"}

    def evaluate_main() -> dict:
        model = load_model(run_dir, dev)
        store = open_store(store_path)
        idx = np.arange(cfg.n_samples - cfg.n_val, cfg.n_samples)
        res = evaluate(model, store_path, indices=idx)
        per = np.asarray(res["rel_l2_per_sample"])
        figs = []
        for tag, k in (("best", int(per.argmin())), ("median", int(np.argsort(per)[len(per) // 2])),
                       ("worst", int(per.argmax()))):
            v, s, u = store.load([idx[k]])
            with torch.no_grad():
                p = model.predict(v, s).float().cpu().numpy()
            path = out / f"fig2_{tag}.png"
            plot_comparison(u[0], p[0], v[0], s[0], preset, path,
                            title=f"{tag} validation sample: relative L2 {per[k]:.3f}")
            figs.append(path.name)
        return {"rel_l2_mean": res["rel_l2_mean"], "rel_l2_median": float(np.median(per)),
                "rel_l2_min": float(per.min()), "rel_l2_max": float(per.max()),
                "rel_l2_per_time": res["rel_l2_per_time"], "n_samples": len(per),
                "figures": figs}

    def datasize() -> dict:
        store = open_store(store_path)
        sizes = [n for n in cfg.datasize_sizes if n <= cfg.n_samples - cfg.n_val]
        v, s, u = store.load(None)
        return datasize_study(v, s, u, preset, sizes, out / "datasize", n_val=cfg.n_val,
                              train_kwargs={"time_budget_min": cfg.datasize_minutes,
                                            "batch_size": cfg.batch_size},
                              device=str(dev))

    def square() -> dict:
        return square_anomaly_study(load_model(run_dir, dev), out / "square",
                                    n_reference=cfg.study_samples, device=str(dev))

    def superres() -> dict:
        return superres_study(load_model(run_dir, dev), out / "superres", nodes=128,
                              n_samples=cfg.study_samples, device=str(dev))

    def fwi() -> dict:
        true = benchmark_model(cfg.fwi_model, preset)
        src = default_sources(preset.grid, cfg.fwi_sources)
        op = OperatorForward(load_model(run_dir, dev), name="fno", device=dev)
        fd = SolverForward(preset, device=str(dev))
        t0 = time.perf_counter()
        obs = observe(true, src, preset, device=dev)
        obs_s = time.perf_counter() - t0
        results, curves = {}, {}
        checked = {}
        if cfg.check_sources:
            checked = {"check": SolverCheck(fd, src, obs, n_sources=cfg.check_sources),
                       "check_every": cfg.check_every, "check_patience": cfg.check_patience}

        def run(fwd, stages, iterations, **kw):
            if stages:
                return multiscale(fwd, src, obs, true, stages=stages, **kw)
            return invert(fwd, src, obs, true, iterations=iterations, **kw)

        r_op = run(op, cfg.operator_stages, cfg.operator_iterations, **checked)
        r_fd = run(fd, cfg.solver_stages, cfg.solver_iterations)
        r_hy = hybrid(op, fd, src, obs, true, operator_iterations=cfg.hybrid_operator_iterations,
                      solver_iterations=cfg.hybrid_solver_iterations,
                      operator_stages=cfg.hybrid_operator_stages,
                      solver_check_sources=cfg.check_sources, check_every=cfg.check_every,
                      check_patience=cfg.check_patience)
        for name, r in (("operator", r_op), ("solver", r_fd), ("hybrid", r_hy)):
            results[name] = r.summary()
            curves[name] = {"misfit": np.asarray(r.misfit).tolist(),
                            "time_s": np.asarray(r.time_s).tolist()}
            np.save(out / f"fwi_{name}.npy", r.velocity)
        start = r_op.start_velocity
        for name, r in (("operator", r_op), ("solver", r_fd), ("hybrid", r_hy)):
            plot_models(preset.grid, r.velocity, start, true, out / f"fig5_{name}.png",
                        title=f"FWI with the {name}: misfit {r.model_misfit:.4f}")
        plot_curves(curves, out / "fwi_curves.png")
        target = r_fd.model_misfit
        t_hy = r_hy.time_to_misfit(target) if target is not None else None
        fd_time = float(r_fd.time_s[-1] - r_fd.time_s[0])
        return {"model": cfg.fwi_model, "sources": cfg.fwi_sources, "observation_s": obs_s,
                "stages": {"operator": cfg.operator_stages, "solver": cfg.solver_stages,
                           "hybrid_operator": cfg.hybrid_operator_stages},
                "check_sources": cfg.check_sources,
                "results": results, "speedup_per_iteration": (
                    r_fd.seconds_per_iteration / max(r_op.seconds_per_iteration, 1e-12)),
                "hybrid_time_to_solver_misfit_s": t_hy, "solver_total_s": fd_time,
                "hybrid_reaches_solver_misfit": t_hy is not None,
                "hybrid_time_fraction": None if t_hy is None else t_hy / max(fd_time, 1e-12)}

    def speed() -> dict:
        model = load_model(run_dir, dev)
        store = open_store(store_path)
        n = min(64, cfg.n_samples)
        v, s, _ = store.load(np.arange(n))
        vt = torch.as_tensor(v, device=dev)
        bs = 64 if dev.type == "cuda" else 16
        with torch.no_grad():
            model.predict(vt[:bs], s[:bs])
            _sync(dev)
            t0 = time.perf_counter()
            reps = 5 if dev.type == "cuda" else 1
            for _ in range(reps):
                for i in range(0, n, bs):
                    model.predict(vt[i:i + bs], s[i:i + bs])
            _sync(dev)
            op_rate = reps * n / (time.perf_counter() - t0)
            solver = AcousticSolver.from_preset(preset, device=dev)
            m = min(8, n)
            solver(vt[:m], s[:m])
            _sync(dev)
            t0 = time.perf_counter()
            solver(vt[:m], s[:m])
            _sync(dev)
            fd_rate = m / (time.perf_counter() - t0)
        return {"operator_wavefields_per_s": op_rate, "solver_wavefields_per_s": fd_rate,
                "ratio": op_rate / fd_rate, "operator_batch": bs, "solver_batch": m}

    fns = {"data": data, "train": train_main, "evaluate": evaluate_main, "datasize": datasize,
           "square": square, "superres": superres, "fwi": fwi, "speed": speed}
    t_all = time.perf_counter()
    for name in STAGES:
        if name in stages:
            _stage(out, name, fns[name], done)
    metrics = {"preset": cfg.preset, "config": cfg.__dict__, "machine": machine_info(device),
               "stages": done, "total_seconds": time.perf_counter() - t_all}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    write_report(out / "report.md", metrics)
    return metrics
