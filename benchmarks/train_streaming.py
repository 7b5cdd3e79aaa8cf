"""Training throughput and peak memory: streaming from the store against loading it whole.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train_streaming.py --samples 2000 --epochs 3
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/train_streaming.py --data data.zarr

Without ``--data`` a store of ``--samples`` random samples of the ``paper`` preset's shape
(64 x 64, 100 output samples, 1.6 MB each; random values, so compression does not help) is
written to a temporary directory. Each mode runs in its own process (a clean peak RSS):

* ``loader``: batches only (read, shuffle, augment), samples/s;
* ``train``: ``seisfno.operator.train`` for ``--epochs`` epochs, samples/s over the epochs after
  the first (which includes start-up), and the process's peak RSS.

The table is printed with the CPU model, thread count and date; copy it into BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


def write_store(path: Path, n: int, shard: int) -> Path:
    """``n`` random samples with the ``paper`` preset's shapes (no simulation)."""
    import numpy as np
    import zarr

    from seisfno.data.generate import _store_attrs
    from seisfno.data.store import create_store
    from seisfno.physics import get_preset

    preset = get_preset("paper")
    create_store(path, _store_attrs(preset, n, shard, 0, "torch"))
    root = zarr.open_group(zarr.storage.LocalStore(path), mode="r+", use_consolidated=False)
    rng = np.random.default_rng(0)
    g, nt = preset.grid, preset.nt_out
    for a in range(0, n, shard):
        b = min(a + shard, n)
        root["velocity_mps"][a:b] = 3000 + 150 * rng.standard_normal((b - a, *g.shape), "f4")
        root["source_xz_m"][a:b] = rng.uniform(1000, 9000, (b - a, 2))
        root["wavefield"][a:b] = 1e-9 * rng.standard_normal((b - a, nt, *g.shape), "f4")
    root["shard_done"][:] = 1
    return path


def worker(mode: str, store: str, out: str, epochs: int, batch: int, width: int) -> dict:
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    from seisfno.operator import train

    in_memory = mode == "memory"
    t0 = time.perf_counter()
    r = train(store, out, epochs=epochs, batch_size=batch, n_val=min(64, batch * 2),
              device="cpu", progress=False, in_memory=in_memory,
              arch_args={"width": width, "modes": 12})
    total = time.perf_counter() - t0
    later = r.history[1:] or r.history
    n_train = json.loads((Path(out) / "model.json").read_text())["training"]["n_train"]
    rate = n_train * len(later) / sum(h["seconds"] for h in later)
    return {"mode": mode, "train_samples_per_s": rate, "wall_s": total,
            "loader_samples_per_s": loader_rate(store, in_memory, batch, n_val=min(64, batch * 2)),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def loader_rate(store: str, in_memory: bool, batch: int, n_val: int) -> float:
    """Samples/s of one epoch of batches without the network (read + shuffle + augment)."""
    import numpy as np

    from seisfno.data import open_store
    from seisfno.operator.train_data import (
        ArraySource,
        StoreSource,
        augment_batch,
        augment_choices,
    )

    s = open_store(store)
    n_tr = s.n_samples - n_val
    t0 = time.perf_counter()
    if in_memory:
        v, src, u = s.load(np.arange(n_tr))
        data = ArraySource(v, src, u, s.preset, n_tr, 0)
        import torch

        data.to(torch.device("cpu"))
    else:
        data = StoreSource(store, n_tr, 0)
    ks = augment_choices(0, 0, n_tr)
    n = 0
    for v, src, u, idx in data.train_batches(0, batch, 0, 0, 1):
        augment_batch(v, src, u, ks[idx], s.preset.grid)
        n += len(idx)
    return n / (time.perf_counter() - t0)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="an existing store (default: a random one)")
    ap.add_argument("--samples", type=int, default=600, help="samples of the random store")
    ap.add_argument("--shard-size", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--width", type=int, default=16, help="FNO width (small: data-bound)")
    ap.add_argument("--worker", nargs=2, metavar=("MODE", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(a.worker[0], str(a.data), a.worker[1], a.epochs,
                                a.batch_size, a.width)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        store = a.data or write_store(Path(tmp) / "bench.zarr", a.samples, a.shard_size)
        size_mb = sum(f.stat().st_size for f in Path(store).rglob("*") if f.is_file()) / 2**20
        rows = []
        for mode in ("stream", "memory"):
            cmd = [sys.executable, __file__, "--data", str(store), "--epochs", str(a.epochs),
                   "--batch-size", str(a.batch_size), "--width", str(a.width),
                   "--worker", mode, str(Path(tmp) / f"run-{mode}")]
            r = subprocess.run(cmd, capture_output=True, text=True, check=True)
            rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
    print(f"{cpu_model()}, {os.environ.get('OMP_NUM_THREADS', '?')} threads, "
          f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; store {store} ({size_mb:.0f} MB "
          f"on disk), batch {a.batch_size}, FNO width {a.width}, {a.epochs} epochs")
    print("| mode | loader samples/s | training samples/s | peak RSS (MB) |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mode']} | {r['loader_samples_per_s']:.0f} | "
              f"{r['train_samples_per_s']:.1f} | {r['peak_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
