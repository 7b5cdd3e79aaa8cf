"""One GPU, one command: paper-preset data, training, and FWI with operator, solver and hybrid.

Run on a bare GPU machine (pure PyTorch; no deepwave, no zarr needed)::

    PYTHONPATH=src python benchmarks/gpu_paper.py --out OUT [--deadline 480]

Stages, each under a wall-clock budget so the whole script ends by ``--deadline`` seconds:

1. training data made on the GPU (and the solver's throughput);
2. training the operator (the last 200 samples held out, as in the paper), its validation error
   with the float16 weights that are shipped, and inference throughput (with ``--model NAME``
   both are skipped and that trained operator is used);
3. the operator's FWI iteration three ways (``model.predict``; the FWI fast path; the fast path
   compiled with CUDA graphs);
4. FWI on the von Karman benchmark (the paper's protocol: 20 sources, every node, Adam 0.01 km/s,
   observations by the solver): the operator on the full band (the paper) and with a frequency
   continuation (``--operator-stages``), the solver (``--solver-stages``), and the hybrid (the
   operator's continuation, then ``--hybrid-solver-iterations`` full-band solver steps).

Prints a table and writes ``OUT/gpu_results.json``, ``OUT/fwi_curves.npz`` (misfit and time per
iteration of each run) and the trained model (``OUT/paper.json`` + ``OUT/paper.safetensors``,
float16, cut into ``.partK`` files of 15 MiB when larger: ``cat paper.safetensors.part* >
paper.safetensors``). With ``--smoke`` it runs at toy sizes on any device (a check before
spending GPU time).
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import numpy as np
import torch


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


class PredictOnly:
    """The operator seen only through ``predict`` (the path FWI took before the fast path)."""

    def __init__(self, model):
        self.model, self.preset = model, model.preset

    def predict(self, v, s):
        return self.model.predict(v, s)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--work", type=Path, default=Path("/tmp/seisfno_gpu"),
                    help="training run directory (checkpoints; not returned)")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--deadline", type=float, default=500.0, help="seconds for the whole script")
    ap.add_argument("--gen-seconds", type=float, default=100.0)
    ap.add_argument("--max-samples", type=int, default=40000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--train-minutes", type=float, default=3.1)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--modes", type=int, default=24)
    ap.add_argument("--operator-iterations", type=int, default=1000)
    ap.add_argument("--solver-seconds", type=float, default=50.0)
    ap.add_argument("--model", default=None,
                    help="use this trained operator (a name such as 'paper' or a run directory) "
                         "and skip data generation and training")
    ap.add_argument("--operator-stages", default="3:100,full:100",
                    help="frequency continuation of the operator FWI and of the hybrid's "
                         "operator phase: HZ:ITERATIONS,... ('full' = no low-pass)")
    ap.add_argument("--solver-stages", default="3:60,full:60",
                    help="frequency continuation of the solver FWI ('' = the full band only, "
                         "for --solver-seconds)")
    ap.add_argument("--hybrid-operator-stages", default="3:100",
                    help="the hybrid's operator phase, HZ:ITERATIONS,...")
    ap.add_argument("--hybrid-solver-iterations", type=int, default=20)
    ap.add_argument("--check-sources", type=int, default=0,
                    help="referee the operator's continuation and the hybrid's operator phase "
                         "with the solver on this many sources (0 = off)")
    ap.add_argument("--check-every", type=int, default=10)
    ap.add_argument("--check-patience", type=int, default=2)
    ap.add_argument("--no-compile-variant", action="store_true",
                    help="skip timing the CUDA-graph-compiled operator")
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    from seisfno.inversion import (
        OperatorForward,
        SolverCheck,
        SolverForward,
        benchmark_model,
        default_sources,
        hybrid,
        invert,
        multiscale,
        observe,
        parse_stages,
    )
    from seisfno.operator import fit, load_model
    from seisfno.operator.checkpoint import save_model
    from seisfno.operator.train import rel_l2
    from seisfno.physics import AcousticSolver, get_preset

    t_start = time.perf_counter()
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    preset = get_preset(a.preset, **({"n": 16, "nt_out": 10} if a.smoke else {}))
    a.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "torch": torch.__version__, "preset": preset.name, "args": {
                     k: str(v) for k, v in vars(a).items()}}
    curves: dict[str, np.ndarray] = {}

    def left() -> float:
        return a.deadline - (time.perf_counter() - t_start)

    def save() -> None:
        (a.out / "gpu_results.json").write_text(json.dumps(res, indent=2, default=float))
        if curves:
            np.savez(a.out / "fwi_curves.npz", **curves)

    def stage(name, fn):
        t0 = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as e:  # keep going: later stages may still work
            traceback.print_exc()
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        res[name]["stage_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{time.perf_counter() - t_start:6.1f} s] {name}: {res[name]}", flush=True)
        save()

    solver = AcousticSolver.from_preset(preset, device=dev)
    plan = solver.plan_for(*preset.velocity.clip_mps)
    data: dict = {}

    # 1. Training data made on the GPU (the first batch compiles the solver).
    def generate():
        t0 = time.perf_counter()
        vs, ss, us = [], [], []
        n = 0
        b = 4 if a.smoke else a.batch
        limit = 48 if a.smoke else a.max_samples
        t_first = None
        while n < limit and time.perf_counter() - t0 < a.gen_seconds:
            v, s = _draw(preset, n, b)
            with torch.no_grad():
                u = solver(torch.as_tensor(v, device=dev), s)
            vs.append(torch.as_tensor(v, device=dev))
            ss.append(s)
            us.append(u.float())
            n += b
            if t_first is None:
                sync(dev)
                t_first = time.perf_counter()
        sync(dev)
        data["v"], data["s"], data["u"] = torch.cat(vs), np.concatenate(ss), torch.cat(us)
        t1 = time.perf_counter()
        steady = (n - b) / (t1 - t_first) if n > b else float("nan")
        return {"n_samples": n, "seconds": t1 - t0, "first_batch_s": t_first - t0,
                "batch": b, "sims_per_s_after_first": steady, "plan": plan.to_dict(),
                "gcell_updates_per_s": steady * plan.cell_updates / 1e9}

    # 2. Training, validation with the shipped float16 weights, inference.
    n_val = 8 if a.smoke else 200

    def train():
        r = fit(data["v"], data["s"], data["u"], preset, a.work, n_val=n_val,
                time_budget_min=0.2 if a.smoke else a.train_minutes, batch_size=32,
                arch_args={"width": 8 if a.smoke else a.width,
                           "modes": 4 if a.smoke else a.modes}, progress=False, device=str(dev))
        m = load_model(a.work)
        weights, _ = save_model(a.out / "paper", m.net, m.card, dtype=torch.float16)
        n_params = sum(p.numel() * (2 if p.is_complex() else 1) for p in m.net.parameters())
        size = weights.stat().st_size
        _split(weights, 15 * 2**20)
        return {"val_rel_l2_training": r.val_rel_l2, "train_rel_l2": r.train_rel_l2,
                "epochs": r.epochs_run, "seconds": r.seconds, "n_params": n_params,
                "weights_bytes": size, "n_train": int(len(data["s"]) - n_val)}

    def validate():
        m = load_model(_join(a.out / "paper"), dev)  # the float16 weights, as shipped
        errs = []
        with torch.no_grad():
            for k in range(len(data["s"]) - n_val, len(data["s"]), 50):
                sl = slice(k, min(k + 50, len(data["s"])))
                errs.append(rel_l2(m.predict(data["v"][sl], data["s"][sl]), data["u"][sl]))
        e = torch.cat(errs)
        b = 8 if a.smoke else 256
        v, s = data["v"][:b], data["s"][:b]
        with torch.no_grad():
            m.predict(v, s)
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(10):
                m.predict(v, s)
            sync(dev)
        return {"val_rel_l2_fp16": float(e.mean()), "val_median": float(e.median()),
                "n_val": len(e), "inference_wavefields_per_s": 10 * b / (time.perf_counter() - t0)}

    # 3-4. FWI on the von Karman benchmark (observations by the solver, made once).
    true = benchmark_model("von-karman", preset)
    src = default_sources(preset.grid, 20)
    fwi_ctx: dict = {}

    def observations():
        t0 = time.perf_counter()
        fwi_ctx["obs"] = observe(true, src, preset, device=dev)
        sync(dev)
        return {"seconds": time.perf_counter() - t0}

    def model_ref():
        return a.model if a.model else _join(a.out / "paper")

    def operator_speed():
        model = load_model(model_ref(), dev)
        out = {}
        n_it = 5 if a.smoke else 40
        variants = [("predict", lambda: OperatorForward(PredictOnly(model), device=dev)),
                    ("fast", lambda: OperatorForward(load_model(model_ref(), dev))),
                    ("fast_compiled", lambda: OperatorForward(
                        load_model(model_ref(), dev), compile=True))]
        for name, make in variants:
            if name == "fast_compiled" and (a.no_compile_variant or left() < 240):
                out[name] = {"error": f"skipped ({left():.0f} s left)"}
                continue
            try:
                fwd = make()
                r = invert(fwd, src, fwi_ctx["obs"], true, iterations=n_it,
                           time_limit_s=max(5.0, left() - 200))
                out[name] = {"s_per_it": r.seconds_per_iteration,
                             "first_iteration_s": r.first_iteration_s, "iterations": r.iterations}
                fwi_ctx[name] = fwd
            except Exception as e:
                traceback.print_exc()
                out[name] = {"error": f"{type(e).__name__}: {e}"}
        ok = [k for k in ("fast_compiled", "fast", "predict") if "s_per_it" in out.get(k, {})]
        fastest = min(ok, key=lambda k: out[k]["s_per_it"])
        fwi_ctx["op"] = fwi_ctx[fastest]
        out["used"] = fastest
        return out

    def _record(name, r):
        curves[f"{name}_misfit"] = np.asarray(r.misfit)
        curves[f"{name}_time_s"] = np.asarray(r.time_s)
        s = {k: v for k, v in r.summary().items() if k != "observations"}
        if r.misfit is not None:
            s["min_misfit"] = float(np.min(r.misfit))
            s["argmin_iteration"] = int(np.argmin(r.misfit))
        return s

    def fwi_operator():
        r = invert(fwi_ctx["op"], src, fwi_ctx["obs"], true,
                   iterations=10 if a.smoke else a.operator_iterations,
                   time_limit_s=max(5.0, left() - 150))
        return _record("operator", r)

    op_stages = parse_stages(a.operator_stages)
    fd_stages = parse_stages(a.solver_stages) if a.solver_stages else []
    hy_stages = parse_stages(a.hybrid_operator_stages)
    if a.smoke:
        op_stages = [(f, min(n, 4)) for f, n in op_stages]
        hy_stages = [(f, min(n, 4)) for f, n in hy_stages]
        fd_stages = [(f, min(n, 1)) for f, n in fd_stages]

    def solver_forward():
        if "fd" not in fwi_ctx:
            fwi_ctx["fd"] = SolverForward(preset, device=str(dev))
        return fwi_ctx["fd"]

    def check_options():
        if not a.check_sources:
            return {}
        chk = SolverCheck(solver_forward(), src, fwi_ctx["obs"], n_sources=a.check_sources)
        chk(torch.full(preset.grid.shape, 3000.0, device=dev), None)  # compile, untimed
        return {"check": chk, "check_every": a.check_every, "check_patience": a.check_patience}

    def fwi_operator_multiscale():
        r = multiscale(fwi_ctx["op"], src, fwi_ctx["obs"], true, stages=op_stages,
                       **check_options())
        return {**_record("operator_multiscale", r), "stages": r.options["stages"],
                "stage_stops": r.options["stage_stops"],
                "checks": None if r.checks is None else r.checks.tolist()}

    def fwi_solver():
        solver_forward()
        t0 = time.perf_counter()  # warm-up (compilation), not timed: both runs below reuse it
        invert(fwi_ctx["fd"], src, fwi_ctx["obs"], true, iterations=1)
        warm = time.perf_counter() - t0
        if fd_stages:
            r = multiscale(fwi_ctx["fd"], src, fwi_ctx["obs"], true, stages=fd_stages,
                           time_limit_s=max(3.0, left() - 60))
            extra = {"stages": r.options["stages"]}
        else:
            r = invert(fwi_ctx["fd"], src, fwi_ctx["obs"], true, iterations=100000,
                       time_limit_s=max(3.0, min(a.solver_seconds, left() - 60)))
            extra = {}
        fwi_ctx["solver_result"] = r
        return {**_record("solver", r), "warmup_s": warm, **extra}

    def fwi_hybrid():
        h = hybrid(fwi_ctx["op"], fwi_ctx["fd"], src, fwi_ctx["obs"], true,
                   operator_stages=hy_stages,
                   solver_iterations=1 if a.smoke else a.hybrid_solver_iterations,
                   solver_check_sources=a.check_sources or None, check_every=a.check_every,
                   check_patience=a.check_patience,
                   time_limit_s=max(2.0, left() - 10))
        curves["hybrid_misfit"], curves["hybrid_time_s"] = h.misfit, h.time_s
        s = {k: v for k, v in h.summary().items() if k != "observations"}
        s["operator_stages"] = h.operator_phase.options.get("stages")
        fd = fwi_ctx.get("solver_result")
        if fd is not None:
            target = fd.model_misfit
            t_hit = h.time_to_misfit(target)
            t_fd = float(fd.time_s[-1] - fd.time_s[0])
            s.update({"solver_final_misfit": target, "solver_total_s": t_fd,
                      "hybrid_time_to_solver_misfit_s": t_hit,
                      "time_ratio": None if t_hit is None else t_hit / t_fd})
        return s

    if a.model is None:
        stage("generate", generate)
        stage("train", train)
    if a.model is not None or "error" not in res["train"]:
        if a.model is None:
            stage("validate", validate)
        stage("observations", observations)
        stage("operator_speed", operator_speed)
        if "op" in fwi_ctx:
            stage("fwi_operator", fwi_operator)
            stage("fwi_operator_multiscale", fwi_operator_multiscale)
            stage("fwi_solver", fwi_solver)
            stage("fwi_hybrid", fwi_hybrid)
            sp = res["operator_speed"]
            best = sp[sp["used"]]["s_per_it"]
            if "seconds_per_iteration" in res.get("fwi_solver", {}):
                res["solver_over_operator_per_iteration"] = (
                    res["fwi_solver"]["seconds_per_iteration"] / best)
    res["total_s"] = time.perf_counter() - t_start
    save()
    _table(res)


def _table(res: dict) -> None:
    rows = [("device", res["device"]), ("torch", res["torch"])]

    def get(*keys):
        d = res
        for k in keys:
            if not isinstance(d, dict) or k not in d:
                return "-"
            d = d[k]
        return f"{d:.4g}" if isinstance(d, float) else d

    rows += [("solver sims/s (after the first batch)",
              get("generate", "sims_per_s_after_first")),
             ("generated samples", get("generate", "n_samples")),
             ("training epochs / s", f"{get('train', 'epochs')} / {get('train', 'seconds')}"),
             ("validation rel. L2 (fp16 weights)", get("validate", "val_rel_l2_fp16")),
             ("inference wavefields/s", get("validate", "inference_wavefields_per_s")),
             ("FWI s/it operator predict", get("operator_speed", "predict", "s_per_it")),
             ("FWI s/it operator fast", get("operator_speed", "fast", "s_per_it")),
             ("FWI s/it operator compiled", get("operator_speed", "fast_compiled", "s_per_it")),
             ("FWI s/it solver", get("fwi_solver", "seconds_per_iteration")),
             ("solver / operator per it", get("solver_over_operator_per_iteration")),
             ("start misfit", get("fwi_operator", "start_misfit")),
             ("operator misfit (its, min@it)",
              f"{get('fwi_operator', 'model_misfit')} ({get('fwi_operator', 'iterations')}, "
              f"{get('fwi_operator', 'min_misfit')}@{get('fwi_operator', 'argmin_iteration')})"),
             ("operator multiscale misfit (its, min@it)",
              f"{get('fwi_operator_multiscale', 'model_misfit')} "
              f"({get('fwi_operator_multiscale', 'iterations')}, "
              f"{get('fwi_operator_multiscale', 'min_misfit')}"
              f"@{get('fwi_operator_multiscale', 'argmin_iteration')})"),
             ("solver misfit (its, s)", f"{get('fwi_solver', 'model_misfit')} "
              f"({get('fwi_solver', 'iterations')}, {get('fwi_solver', 'total_s')})"),
             ("hybrid misfit (op+fd its, s)", f"{get('fwi_hybrid', 'model_misfit')} "
              f"({get('fwi_hybrid', 'operator_iterations')}+"
              f"{get('fwi_hybrid', 'solver_iterations')}, {get('fwi_hybrid', 'total_s')})"),
             ("hybrid time to solver misfit / solver time", get("fwi_hybrid", "time_ratio")),
             ("total s", get("total_s"))]
    w = max(len(r[0]) for r in rows)
    for k, v in rows:
        print(f"{k:<{w}}  {v}")


def _split(path: Path, size: int) -> None:
    """Cut ``path`` into ``path.partK`` files of at most ``size`` bytes (a transfer limit);
    ``cat path.part* > path`` joins them (:func:`_join`)."""
    data = path.read_bytes()
    if len(data) <= size:
        return
    for k in range(0, len(data), size):
        path.with_name(f"{path.name}.part{k // size}").write_bytes(data[k:k + size])
    path.unlink()


def _join(stem: Path) -> Path:
    """The model at ``stem`` with its weights whole again (in a scratch copy if split)."""
    weights = stem.with_suffix(".safetensors")
    parts = sorted(stem.parent.glob(weights.name + ".part*"),
                   key=lambda p: int(p.suffix.removeprefix(".part")))
    if weights.exists() or not parts:
        return stem
    scratch = Path("/tmp/seisfno_gpu_model")
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "paper.safetensors").write_bytes(b"".join(p.read_bytes() for p in parts))
    (scratch / "paper.json").write_bytes(stem.with_suffix(".json").read_bytes())
    return scratch / "paper"


def _draw(preset, start: int, n: int):
    from seisfno.physics import sample_rng, von_karman

    vp = preset.velocity
    v, s = [], []
    for i in range(start, start + n):
        rng = sample_rng(0, i)
        v.append(von_karman(preset.grid, rng, mean_mps=vp.mean_mps, sigma_mps=vp.sigma_mps,
                            kappa=vp.kappa, corr_len_m=vp.corr_len_m, clip_mps=vp.clip_mps))
        s.append([rng.uniform(0, preset.grid.width_m), rng.uniform(0, preset.grid.depth_m)])
    return np.stack(v), np.asarray(s)


if __name__ == "__main__":
    main()
