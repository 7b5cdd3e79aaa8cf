"""Time ``seisfno generate`` on the CPU, per backend, and project the cost of 5000 samples.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/generate_cpu.py --paper 8 --quick 8 --workers 2

Each preset's samples are generated into a temporary store (a local Dask cluster of ``--workers``
processes, one torch thread per core each; ``--workers 1`` runs in-process) by each of
``--backends`` (default: ours and deepwave, side by side, when deepwave is installed). The time
includes the cluster's start, our solver's compilation and the writes; the table gives
samples/s, the projected hours for 5000 and the time relative to deepwave's.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def bench(preset: str, n: int, workers: int, shard_size: int | None, backend: str) -> dict:
    from seisfno.data import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_dataset(Path(tmp) / f"{preset}.zarr", preset, n, seed=0, workers=workers,
                         shard_size=shard_size, progress=False, backend=backend)
        seconds = time.perf_counter() - t0
    return {"preset": preset, "backend": backend, "samples": n, "workers": workers,
            "seconds": seconds, "rate": n / seconds, "hours_5000": 5000 / (n / seconds) / 3600}


def _default_backends() -> list[str]:
    try:
        import deepwave  # noqa: F401
    except ImportError:
        return ["torch"]
    return ["torch", "deepwave"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", type=int, default=8, help="paper samples (0 to skip)")
    ap.add_argument("--quick", type=int, default=8, help="quick samples (0 to skip)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--backends", nargs="+", default=None, choices=["torch", "deepwave"],
                    help="default: torch and deepwave (when installed)")
    ap.add_argument("--shard-size", type=int, default=None,
                    help="samples per shard (default: samples / workers, so all workers run)")
    args = ap.parse_args()
    if args.workers == 1:
        import torch

        torch.set_num_threads(len(os.sched_getaffinity(0)))
    rows = []
    for preset, n in (("quick", args.quick), ("paper", args.paper)):
        if n > 0:
            k = args.shard_size or max(1, n // args.workers)
            for backend in args.backends or _default_backends():
                rows.append(bench(preset, n, args.workers, k, backend))
    ref = {r["preset"]: r["seconds"] for r in rows if r["backend"] == "deepwave"}
    print(f"{'preset':<8}{'backend':>9}{'samples':>8}{'workers':>8}{'seconds':>10}"
          f"{'samples/s':>11}{'5000 (h)':>10}{'/deepwave':>10}")
    for r in rows:
        ratio = r["seconds"] / ref[r["preset"]] if r["preset"] in ref else float("nan")
        print(f"{r['preset']:<8}{r['backend']:>9}{r['samples']:>8}{r['workers']:>8}"
              f"{r['seconds']:>10.1f}{r['rate']:>11.3f}{r['hours_5000']:>10.1f}{ratio:>10.2f}")


if __name__ == "__main__":
    main()
