"""One GPU, one command: solver speed, paper-preset data, training, inference, FWI timings.

Run on a bare GPU machine (pure PyTorch; no deepwave, no zarr needed)::

    PYTHONPATH=src python benchmarks/gpu_paper.py --out OUT [--gen-seconds 90] [--train-minutes 2.5]

Prints a table and writes ``OUT/gpu_results.json`` and the trained model
(``OUT/paper.json`` + ``OUT/paper.safetensors``, weights stored in float16). Every stage
runs under a wall-clock budget so the whole script fits a 10-minute call; with ``--smoke`` it
runs at toy sizes on any device (a check before spending GPU time).
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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--gen-seconds", type=float, default=90.0)
    ap.add_argument("--max-samples", type=int, default=40000)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--train-minutes", type=float, default=2.5)
    ap.add_argument("--width", type=int, default=32)
    ap.add_argument("--modes", type=int, default=24)
    ap.add_argument("--fwi-operator-iterations", type=int, default=300)
    ap.add_argument("--fwi-solver-iterations", type=int, default=6)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args()

    from seisfno.inversion import OperatorForward, SolverForward, default_sources, invert, observe
    from seisfno.operator import fit, load_model
    from seisfno.operator.checkpoint import save_model
    from seisfno.operator.studies import heldout_samples
    from seisfno.physics import AcousticSolver, get_preset

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = get_preset(a.preset, **({"n": 16, "nt_out": 10} if a.smoke else {}))
    a.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                 "torch": torch.__version__, "preset": preset.name}
    t_start = time.perf_counter()

    def stage(name, fn):
        t0 = time.perf_counter()
        try:
            res[name] = fn()
        except Exception as e:  # keep going: later stages may still work
            traceback.print_exc()
            res[name] = {"error": f"{type(e).__name__}: {e}"}
        res[name]["stage_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{time.perf_counter() - t_start:6.1f} s] {name}: {res[name]}", flush=True)
        (a.out / "gpu_results.json").write_text(json.dumps(res, indent=2, default=float))

    solver = AcousticSolver.from_preset(preset, device=dev)
    plan = solver.plan_for(*preset.velocity.clip_mps)
    data: dict = {}

    # 1. Solver throughput (compile included in the warm-up call).
    def solver_speed():
        out = {"plan": plan.to_dict()}
        for b in ([4] if a.smoke else [32, a.batch]):
            v, s = heldout_samples(preset, b, seed=7)
            with torch.no_grad():
                solver(torch.as_tensor(v, device=dev), s)
                sync(dev)
                t0 = time.perf_counter()
                solver(torch.as_tensor(v, device=dev), s)
                sync(dev)
            dt = time.perf_counter() - t0
            out[f"batch{b}"] = {"seconds": dt, "sims_per_s": b / dt,
                                "gcell_updates_per_s": b * plan.cell_updates / dt / 1e9}
        return out

    # 2. Training data made on the GPU, as many as the budget allows.
    def generate():
        t0 = time.perf_counter()
        vs, ss, us = [], [], []
        n = 0
        b = 4 if a.smoke else a.batch
        limit = 48 if a.smoke else a.max_samples
        while n < limit and time.perf_counter() - t0 < a.gen_seconds:
            v, s = _draw(preset, n, b)
            with torch.no_grad():
                u = solver(torch.as_tensor(v, device=dev), s)
            vs.append(torch.as_tensor(v, device=dev))
            ss.append(s)
            us.append(u.float())
            n += b
        sync(dev)
        data["v"], data["s"], data["u"] = torch.cat(vs), np.concatenate(ss), torch.cat(us)
        dt = time.perf_counter() - t0
        return {"n_samples": n, "seconds": dt, "sims_per_s": n / dt}

    # 3. Training (the last 200 samples held out, as in the paper).
    def train():
        n_val = 8 if a.smoke else 200
        r = fit(data["v"], data["s"], data["u"], preset, a.out / "run", n_val=n_val,
                time_budget_min=0.2 if a.smoke else a.train_minutes, batch_size=32,
                arch_args={"width": 8 if a.smoke else a.width,
                           "modes": 4 if a.smoke else a.modes}, progress=False, device=str(dev))
        return {"val_rel_l2": r.val_rel_l2, "train_rel_l2": r.train_rel_l2,
                "epochs": r.epochs_run, "seconds": r.seconds,
                "n_train": int(len(data["s"]) - n_val)}

    # 4. Inference throughput.
    def inference():
        model = load_model(a.out / "run", dev)
        b = 8 if a.smoke else 256
        v = data["v"][:b]
        s = data["s"][:b]
        with torch.no_grad():
            model.predict(v, s)
            sync(dev)
            t0 = time.perf_counter()
            reps = 2 if a.smoke else 10
            for _ in range(reps):
                model.predict(v, s)
            sync(dev)
        dt = time.perf_counter() - t0
        return {"batch": b, "wavefields_per_s": reps * b / dt}

    # 5. FWI: seconds per iteration with 20 sources, operator against solver.
    def fwi():
        from seisfno.inversion import benchmark_model

        model = load_model(a.out / "run", dev)
        true = benchmark_model("von-karman", preset)
        src = default_sources(preset.grid, 20)
        obs = observe(true, src, preset, device=dev)
        op = OperatorForward(model, device=dev)
        fd = SolverForward(preset, device=str(dev))
        r_op = invert(op, src, obs, true, iterations=5 if a.smoke else a.fwi_operator_iterations)
        r_fd = invert(fd, src, obs, true, iterations=2 if a.smoke else a.fwi_solver_iterations)
        return {"operator_s_per_it": r_op.seconds_per_iteration,
                "solver_s_per_it": r_fd.seconds_per_iteration,
                "ratio": r_fd.seconds_per_iteration / r_op.seconds_per_iteration,
                "operator_misfit": r_op.model_misfit, "operator_iterations": r_op.iterations,
                "start_misfit": r_op.start_misfit}

    stage("solver", solver_speed)
    stage("generate", generate)
    stage("train", train)
    if "error" not in res["train"]:
        m = load_model(a.out / "run")
        weights, _ = save_model(a.out / "paper", m.net, m.card, dtype=torch.float16)
        _split(weights, 15 * 2**20)
        stage("inference", inference)
        stage("fwi", fwi)
    res["total_s"] = time.perf_counter() - t_start
    (a.out / "gpu_results.json").write_text(json.dumps(res, indent=2, default=float))
    print(json.dumps(res, indent=1, default=float))


def _split(path: Path, size: int) -> None:
    """Cut ``path`` into ``path.partK`` files of at most ``size`` bytes (a transfer limit);
    ``cat path.part* > path`` joins them."""
    data = path.read_bytes()
    if len(data) <= size:
        return
    for k in range(0, len(data), size):
        path.with_name(f"{path.name}.part{k // size}").write_bytes(data[k:k + size])
    path.unlink()


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
