"""Time ``seisfno generate`` on the CPU and project the cost of a 5000-sample dataset.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/generate_cpu.py --paper 8 --quick 8 --workers 2

Each preset's samples are generated into a temporary store (a local Dask cluster of ``--workers``
processes, one torch thread per core each; ``--workers 1`` runs in-process). The time includes
the cluster's start and the writes; the table gives samples/s and the projected hours for 5000.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def bench(preset: str, n: int, workers: int, shard_size: int | None) -> dict:
    from seisfno.data import generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        generate_dataset(Path(tmp) / f"{preset}.zarr", preset, n, seed=0, workers=workers,
                         shard_size=shard_size, progress=False)
        seconds = time.perf_counter() - t0
    return {"preset": preset, "samples": n, "workers": workers, "seconds": seconds,
            "rate": n / seconds, "hours_5000": 5000 / (n / seconds) / 3600}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--paper", type=int, default=8, help="paper samples (0 to skip)")
    ap.add_argument("--quick", type=int, default=8, help="quick samples (0 to skip)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
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
            rows.append(bench(preset, n, args.workers, k))
    print(f"{'preset':<8}{'samples':>8}{'workers':>8}{'seconds':>10}{'samples/s':>11}"
          f"{'5000 (h)':>10}")
    for r in rows:
        print(f"{r['preset']:<8}{r['samples']:>8}{r['workers']:>8}{r['seconds']:>10.1f}"
              f"{r['rate']:>11.3f}{r['hours_5000']:>10.1f}")


if __name__ == "__main__":
    main()
