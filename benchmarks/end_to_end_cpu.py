"""Training and operator FWI end to end, an older checkout of seisfno against this one.

Usage::

    git worktree add /tmp/old 858220f        # e.g. the code before issue 12
    python benchmarks/end_to_end_cpu.py --old-src /tmp/old/src --data runs/paper400.zarr \
        --batch 16 8 --arch-arg width=32 [--rounds 2] [--epochs 3] [--fwi] [--threads 2] \
        [--fwi-iterations 40]

What ``benchmarks/operator_cpu.py`` leaves out, measured as a user meets it: ``seisfno train``
(data loading, augmentation, loss, optimizer and validation included; the mean epoch time over
epochs 2 onwards, samples per second of training) and ``seisfno invert --forward fno:quick``
(``--fwi-iterations``, default 40; the command's own seconds per iteration, and the median
iteration). Each case runs old, new, new, old (``--rounds`` times that pair), in fresh
processes one after the other, so that the machine's drift falls on both alike; the ratio is
of the medians. The older code runs from ``--old-src`` (``PYTHONPATH``), the new one from this
checkout; both load the training data whole
(``--in-memory`` where the code has it; releases before streaming always did), and
``ATEN_CPU_CAPABILITY``/``MKL_ENABLE_INSTRUCTIONS``/``ONEDNN_MAX_CPU_ISA`` pass through
(``avx2``/``AVX2`` emulate an AVX2-only CPU). Older versions do not know the ``method``
attribute of newer stores' velocity parameters: they read a hard-linked copy without it.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from operator_cpu import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _strip(o, key: str):
    if isinstance(o, dict):
        return {k: _strip(v, key) for k, v in o.items() if k != key}
    if isinstance(o, list):
        return [_strip(v, key) for v in o]
    return o


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:  # another file system
        shutil.copy2(src, dst)


def old_compatible_store(store: Path, tmp: Path) -> Path:
    """A hard-linked copy of ``store`` whose root metadata lacks the newer ``method`` keys."""
    out = tmp / store.name
    shutil.copytree(store, out, copy_function=_link_or_copy)
    meta = out / "zarr.json"
    attrs = _strip(json.loads(meta.read_text()), "method")
    meta.unlink()  # a hard link: never write through it
    meta.write_text(json.dumps(attrs))
    return out


def _run(code: str, args: list[str], old_src: Path, threads: int, cwd: Path) -> str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    if code == "old":
        env["PYTHONPATH"] = str(old_src)
    else:
        env["PYTHONPATH"] = str(ROOT / "src")
    r = subprocess.run([sys.executable, "-m", "seisfno", *args], env=env, cwd=cwd,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{code}: seisfno {' '.join(args)} failed:\n{r.stderr[-2000:]}")
    return r.stdout


@functools.cache
def knows_in_memory(code: str, old_src: Path, tmp: Path) -> bool:
    """Whether this code's ``train`` takes ``--in-memory`` (releases before streaming always
    loaded the data whole)."""
    return "--in-memory" in _run(code, ["train", "--help"], old_src, 1, tmp)


def train_seconds(code: str, store: Path, batch: int, epochs: int, extra: list[str],
                  old_src: Path, threads: int, tmp: Path, k: int) -> tuple[float, int]:
    """Mean seconds of epochs 2.., and the training samples of an epoch."""
    out = tmp / f"train-{store.stem}-{code}-b{batch}-{k}"
    args = ["train", "--data", str(store), "--out", str(out), "--epochs", str(epochs),
            "--n-val", "48", "--batch-size", str(batch), "--no-progress", *extra]
    if knows_in_memory(code, old_src, tmp):
        args.append("--in-memory")
    _run(code, args, old_src, threads, tmp)
    hist = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    card = json.loads((out / "model.json").read_text())
    n_train = int(card.get("training", {}).get("n_train") or card.get("data", {}).get("n_train"))
    return statistics.mean(h["seconds"] for h in hist[1:]), n_train


def fwi_seconds(code: str, old_src: Path, threads: int, tmp: Path, k: int,
                iterations: int) -> tuple[float, float]:
    """The command's seconds per iteration (the mean after the first) and the median of the
    same iterations (from its ``curves.csv``): the warm-up's page faults fall on a few
    iterations after the first (BENCHMARKS.md), which the mean carries and the median not."""
    out = tmp / f"fwi-{code}-{k}"
    args = ["invert", "--true-model", "von-karman", "--forward", "fno:quick", "--iterations",
            str(iterations), "--threads", str(threads), "--out", str(out)]
    stdout = _run(code, args, old_src, threads, tmp)
    mean = json.loads(stdout.strip().splitlines()[-1])["seconds_per_iteration"]
    with open(out / "curves.csv") as f:
        times = [float(row["time_s"]) for row in csv.DictReader(f)]
    steps = [b - a for a, b in zip(times[:-1], times[1:], strict=True)][1:]
    return mean, statistics.median(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", type=Path, required=True, help="the older checkout's src/")
    ap.add_argument("--data", type=Path, nargs="*", default=[], help="dataset stores to train on")
    ap.add_argument("--batch", type=int, nargs="+", default=[16])
    ap.add_argument("--arch-arg", action="append", default=[], help="KEY=VALUE, as for train")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1, help="old-new-new-old sequences per case")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fwi", action="store_true", help="also seisfno invert --forward fno:quick")
    ap.add_argument("--fwi-iterations", type=int, default=40)
    args = ap.parse_args()
    if not (args.old_src / "seisfno" / "__init__.py").exists():
        raise SystemExit(f"--old-src {args.old_src}: no seisfno package there")
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (the first epoch is not timed)")
    extra = [a for kv in args.arch_arg for a in ("--arch-arg", kv)]
    order = ["old", "new", "new", "old"] * args.rounds
    print(f"{machine()}; {args.threads} threads; old: {args.old_src}\n")
    print("| case | old | new | old / new |\n| --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="seisfno-e2e-") as t:
        tmp = Path(t)
        for store in args.data:
            old_store = old_compatible_store(store.resolve(), tmp)
            for b in args.batch:
                res: dict[str, list[float]] = {"old": [], "new": []}
                for k, code in enumerate(order):
                    s, n = train_seconds(code, old_store if code == "old" else store.resolve(),
                                         b, args.epochs, extra, args.old_src, args.threads, tmp, k)
                    res[code].append(s)
                old, new = statistics.median(res["old"]), statistics.median(res["new"])
                print(f"| train {store.name} b{b}, s/epoch ({n} samples) | {old:.2f} "
                      f"({n / old:.1f}/s) | {new:.2f} ({n / new:.1f}/s) | **{old / new:.2f}x** |",
                      flush=True)
        if args.fwi:
            res = {"old": [], "new": []}
            for k, code in enumerate(order):
                res[code].append(fwi_seconds(code, args.old_src, args.threads, tmp, k,
                                             args.fwi_iterations))
            for i, what in enumerate(("mean", "median")):
                old = statistics.median(r[i] for r in res["old"])
                new = statistics.median(r[i] for r in res["new"])
                print(f"| invert fno:quick, {args.fwi_iterations} iterations, s/iteration "
                      f"({what} after the first) | {old:.3f} | {new:.3f} | "
                      f"**{old / new:.2f}x** |")


if __name__ == "__main__":
    main()
