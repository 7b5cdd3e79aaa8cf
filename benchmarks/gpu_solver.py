"""GPU speed of the pure-PyTorch solver: batched ``paper`` simulations and one solver-FWI iteration.

Run on a bare CUDA machine (pure PyTorch; deepwave is not needed)::

    PYTHONPATH=src python benchmarks/gpu_solver.py [--out DIR] [--batches 1 32 256]

It measures, in this order (no stage starts after ``--deadline`` seconds, default 420; each
compiles once per shape, ~10-60 s, reported as the first call):

1. **forward**: batched ``paper`` simulations through :class:`~seisfno.physics.AcousticSolver`
   with the default CUDA backend (compiled step); per batch size the compile (first call) time,
   the best of ``--repeat`` timed calls, simulations/s, G cell-updates/s on the padded internal
   grid (the unit of issue 11: cells x steps x batch / time) and on the physical interior, and
   the peak GPU memory;
2. **FWI**: one solver-FWI iteration on ``paper`` with ``--fwi-sources`` sources (forward with
   checkpointing, adjoint, Adam step; :func:`seisfno.inversion.invert` with the solver forward
   model), the mean of the iterations after the first (which compiles);
3. **oracle**: the compiled step against the eager one on one simulation (relative L2; they
   must agree to float32 round-off);
4. **bare stencil**: a plain compiled 8th-order leapfrog on the same padded grid and batch
   (no PML, no source, no 4th-order correction), the machine's practical ceiling.

Prints a Markdown table and writes ``gpu_solver.json`` to ``--out`` (default ``$OUT``, else
``./gpu_solver_out``), rewritten after each stage. ``--smoke`` runs every stage on the CPU at toy
size (the ``quick`` preset, 4 output samples, eager) as a check before spending GPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import traceback
from pathlib import Path

import numpy as np
import torch


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _models(preset, batch: int):
    from seisfno.physics import sample_rng, von_karman

    v = np.stack([von_karman(preset.grid, sample_rng(11, i), clip_mps=preset.velocity.clip_mps)
                  for i in range(min(batch, 8))])
    v = np.resize(v, (batch, *v.shape[1:]))  # 8 distinct models, repeated
    src = np.random.default_rng(0).uniform(300, preset.grid.width_m - 300, size=(batch, 2))
    return torch.as_tensor(v), src


def _peak_mem_gb(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(dev) / 2**30


def bench_forward(preset, batch: int, dev, compile_: bool, repeat: int) -> dict:
    """One batch size: compile/first call, then the best of ``repeat`` calls."""
    from seisfno.physics import AcousticSolver, TorchBackend

    solver = AcousticSolver.from_preset(preset, backend=TorchBackend(device=dev,
                                                                     compile=compile_))
    v, src = _models(preset, batch)
    v = v.to(dev)
    plan = solver.plan(v)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    with torch.no_grad():
        sync(dev)
        t0 = time.perf_counter()
        solver(v, src)
        sync(dev)
        first = time.perf_counter() - t0
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            u = solver(v, src)
            sync(dev)
            best = min(best, time.perf_counter() - t0)
    padded = plan.cell_updates * batch
    interior = plan.fine.nz * plan.fine.nx * plan.n_steps * batch
    return {"batch": batch, "first_call_s": first, "s_per_call": best,
            "sims_per_s": batch / best, "gcell_per_s_padded": padded / best / 1e9,
            "gcell_per_s_interior": interior / best / 1e9, "steps": plan.n_steps,
            "padded_shape": list(plan.padded_shape), "peak_mem_gb": _peak_mem_gb(dev),
            "finite": bool(torch.isfinite(u).all())}


def oracle_check(preset, dev, compile_: bool) -> dict:
    """Compiled against eager on the same device (the eager step is the oracle)."""
    from seisfno.physics import AcousticSolver, TorchBackend

    v, src = _models(preset, 1)
    out = {}
    for c in (False, compile_):
        solver = AcousticSolver.from_preset(preset, backend=TorchBackend(device=dev, compile=c))
        with torch.no_grad():
            out[c] = solver(v.to(dev), src).double()
    rel = float((out[compile_] - out[False]).norm() / out[False].norm())
    return {"compiled": compile_, "compiled_vs_eager_rel_l2": rel, "ok": rel < 1e-4}


def bare_stencil(shape: tuple[int, int], batch: int, steps: int, dev, compile_: bool,
                 repeat: int) -> dict:
    """A plain 8th-order leapfrog (the ceiling our step is measured against)."""
    from seisfno.physics.plan import HALO, STENCIL

    def step(u, u_prev, c):
        h = HALO
        nz, nx = u.shape[-2:]
        lap = (2 * STENCIL[0]) * u[:, h:nz - h, h:nx - h]
        for m in range(1, h + 1):
            lap = lap + STENCIL[m] * (u[:, h + m:nz - h + m, h:nx - h]
                                      + u[:, h - m:nz - h - m, h:nx - h]
                                      + u[:, h:nz - h, h + m:nx - h + m]
                                      + u[:, h:nz - h, h - m:nx - h - m])
        nxt = torch.nn.functional.pad(c * lap, (h, h, h, h)) + 2 * u - u_prev
        return nxt, u

    fn = torch.compile(step, dynamic=False, fullgraph=True) if compile_ else step
    u = torch.zeros(batch, *shape, device=dev)
    u[:, shape[0] // 2, shape[1] // 2] = 1.0
    u_prev = torch.zeros_like(u)
    c = torch.full((batch, shape[0] - 2 * HALO, shape[1] - 2 * HALO), 0.05, device=dev)
    with torch.no_grad():
        fn(u, u_prev, c)
        best = float("inf")
        for _ in range(repeat):
            a, b = u, u_prev
            sync(dev)
            t0 = time.perf_counter()
            for _ in range(steps):
                a, b = fn(a, b, c)
            sync(dev)
            best = min(best, time.perf_counter() - t0)
    cells = shape[0] * shape[1] * steps * batch
    return {"batch": batch, "steps": steps, "s": best, "gcell_per_s_padded": cells / best / 1e9}


def bench_fwi(preset, n_sources: int, dev, iterations: int) -> dict:
    from seisfno.inversion import invert
    from seisfno.inversion.forward import SolverForward
    from seisfno.inversion.survey import default_sources
    from seisfno.physics import sample_rng, von_karman

    fwd = SolverForward(preset, device=dev)
    src = default_sources(preset.grid, n_sources)
    v_true = von_karman(preset.grid, sample_rng(5, 0), clip_mps=preset.velocity.clip_mps)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    res = invert(fwd, src, true_velocity=v_true, iterations=iterations)
    plan = fwd.plan
    return {"sources": n_sources, "iterations": res.iterations,
            "first_iteration_s": res.first_iteration_s,
            "seconds_per_iteration": res.seconds_per_iteration,
            "observation_s": res.observation_s, "padded_shape": list(plan.padded_shape),
            "steps": plan.n_steps, "start_misfit": res.start_misfit,
            "final_misfit": res.model_misfit, "peak_mem_gb": _peak_mem_gb(dev)}


def _table(res: dict) -> str:
    rows = ["| stage | batch | s/call | sims/s | G cell-upd/s (padded) | interior | first call s "
            "| peak GB |", "|---|---|---|---|---|---|---|---|"]
    for r in res.get("forward", []):
        rows.append(f"| forward | {r['batch']} | {r['s_per_call']:.3f} | {r['sims_per_s']:.1f} | "
                    f"{r['gcell_per_s_padded']:.1f} | {r['gcell_per_s_interior']:.1f} | "
                    f"{r['first_call_s']:.1f} | {r['peak_mem_gb'] or 0:.2f} |")
    for r in res.get("bare_stencil", []):
        rows.append(f"| bare stencil | {r['batch']} | {r['s']:.3f} | | "
                    f"{r['gcell_per_s_padded']:.1f} | | | |")
    f = res.get("fwi")
    if f:
        rows.append(f"| FWI iteration ({f['sources']} sources) | {f['sources']} | "
                    f"{f['seconds_per_iteration']:.3f} | | | | {f['first_iteration_s']:.1f} | "
                    f"{f['peak_mem_gb'] or 0:.2f} |")
    o = res.get("oracle")
    if o:
        rows.append(f"\ncompiled vs eager relative L2: {o['compiled_vs_eager_rel_l2']:.2e}")
    return "\n".join(rows)


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", "gpu_solver_out")))
    ap.add_argument("--smoke", action="store_true", help="CPU, toy size, eager")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32, 256])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--fwi-sources", type=int, default=20)
    ap.add_argument("--fwi-iterations", type=int, default=3)
    ap.add_argument("--deadline", type=float, default=420.0,
                    help="seconds after which no further stage starts")
    return ap.parse_args()


def main() -> None:
    args = _args()
    from seisfno.physics import get_preset

    t_start = time.perf_counter()
    if args.smoke:
        dev, compile_ = torch.device("cpu"), False
        preset = get_preset("quick", nt_out=4)
        args.batches, args.repeat, args.fwi_sources, args.fwi_iterations = [1, 2], 1, 2, 2
    else:
        if not torch.cuda.is_available():
            raise SystemExit("no CUDA device (use --smoke for a CPU check)")
        dev, compile_ = torch.device("cuda"), True
        preset = get_preset("paper")
    args.out.mkdir(parents=True, exist_ok=True)
    res: dict = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda"
                 else platform.processor() or platform.machine(),
                 "torch": torch.__version__, "preset": preset.name, "nt_out": preset.nt_out,
                 "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                 "smoke": args.smoke, "errors": []}

    def save() -> None:
        res["elapsed_s"] = time.perf_counter() - t_start
        (args.out / "gpu_solver.json").write_text(json.dumps(res, indent=2))

    def stage(name: str, fn, *a) -> None:
        if time.perf_counter() - t_start > args.deadline:
            res["errors"].append(f"{name}: skipped (deadline)")
            return
        try:
            out = fn(*a)
            if isinstance(res.get(name), list):
                res[name].append(out)
            else:
                res[name] = out
        except Exception:  # one failed stage must not lose the others
            res["errors"].append(f"{name}: {traceback.format_exc(limit=3)}")
        print(f"[{time.perf_counter() - t_start:.0f} s] {name} done", flush=True)
        save()

    # one compiled graph per batch shape and grad mode: more than dynamo's default of 8
    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, 64)
    res["forward"], res["bare_stencil"] = [], []
    for b in args.batches:
        stage("forward", bench_forward, preset, b, dev, compile_, args.repeat)
    stage("fwi", bench_fwi, preset, args.fwi_sources, dev, args.fwi_iterations)
    stage("oracle", oracle_check, preset, dev, compile_)
    if res["forward"]:
        f = max(res["forward"], key=lambda r: r["gcell_per_s_padded"])
        stage("bare_stencil", bare_stencil, tuple(f["padded_shape"]), f["batch"],
              min(f["steps"], 300), dev, compile_, args.repeat)
    save()
    print(_table(res))
    for e in res["errors"]:
        print("ERROR", e)


if __name__ == "__main__":
    main()
