"""CPU speed of the solver backends side by side: torch (eager, compiled) vs deepwave.

Usage::

    python benchmarks/solver_cpu.py [--threads 1 2] [--cases paper1 paper4 quick8] [--no-compile]

For each case and thread count it runs every backend on the same models and sources and prints
a Markdown table: wall time per call, simulations/s, and interior cell-updates/s, where the work
unit is the same for every backend (physical-domain internal cells x the torch plan's steps), so
the rate compares time-to-solution; deepwave's leapfrog needs more (smaller) steps than our
4th-order stepper, which the column ``steps`` shows.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from seisfno.physics import (
    AcousticSolver,
    TorchBackend,
    get_preset,
    sample_rng,
    von_karman,
)

CASES = {"paper1": ("paper", 1), "paper4": ("paper", 4), "quick8": ("quick", 8)}


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()
    backends = {}
    try:
        from seisfno.physics.deepwave_backend import DeepwaveBackend

        backends["deepwave"] = DeepwaveBackend()  # first: the reference of the ratio column
    except ImportError:
        pass
    backends["torch"] = TorchBackend(compile=False)
    if not args.no_compile:
        backends["torch-compile"] = TorchBackend(compile=True)
    print("| case | threads | backend | steps | s/call | sims/s | interior Mcell-upd/s "
          "| ratio to deepwave |")
    print("|---|---|---|---|---|---|---|---|")
    for case in args.cases:
        preset_name, batch = CASES[case]
        p = get_preset(preset_name)
        v = np.stack([von_karman(p.grid, sample_rng(0, i), clip_mps=p.velocity.clip_mps)
                      for i in range(batch)])
        rng = np.random.default_rng(0)
        src = rng.uniform(500, 9500, size=(batch, 2))
        for threads in args.threads:
            torch.set_num_threads(threads)
            times = {}
            for name, be in backends.items():
                solver = AcousticSolver.from_preset(p, backend=be)
                plan = solver.plan(v)
                steps = plan.n_steps
                if name == "deepwave":
                    steps = plan.n_steps * be.time_refine(plan)

                def call(solver=solver, v=v, src=src):
                    with torch.no_grad():
                        solver(v, src)

                if name == "torch-compile":
                    call()  # compile once (not timed)
                times[name] = _time(call, args.repeat)
                work = plan.fine.nz * plan.fine.nx * plan.n_steps * batch
                ratio = (times[name] / times["deepwave"]) if "deepwave" in times else float("nan")
                print(f"| {case} | {threads} | {name} | {steps} | {times[name]:.2f} | "
                      f"{batch / times[name]:.3f} | {work / times[name] / 1e6:.0f} | "
                      f"{ratio:.2f} |", flush=True)


if __name__ == "__main__":
    main()
