"""One Fourier layer (spectral convolution + pointwise branch), forward and backward, on CPU:
the ``fftx`` path (the CPU default since 2026-12-04) against ``matmul`` (the default before).

Usage::

    [ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2] \
        python benchmarks/spectral_layer_cpu.py [--threads 2] [--rounds 3]

Prints the machine and a Markdown table: the shapes of ``train quick|paper bN`` in
``benchmarks/operator_cpu.py`` (trainable weights, the 64-node grid padded to 72) and of an FWI
iteration with the shipped ``quick`` model (20 sources, frozen weights: input gradient only).
Each path's best of ``--rounds`` x 20 calls, the two alternating; compare the ratio column.
"""

from __future__ import annotations

import argparse
import datetime
import time

import torch
from operator_cpu import machine

from seisfno import keep_freed_memory
from seisfno.operator.spectral import Pointwise, SpectralConv2d

CASES = [("paper (width 32, 24 modes)", 16, 32, 24, False),
         ("paper (width 32, 24 modes)", 8, 32, 24, False),
         ("quick (width 32, 16 modes)", 16, 32, 16, False),
         ("quick (width 32, 16 modes)", 8, 32, 16, False),
         ("shipped quick, frozen (FWI)", 20, 24, 16, True)]


def best(fn, calls: int = 20) -> float:
    fn()
    fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    print(f"{datetime.date.today()} - {machine()}\n")
    print("| layer | batch | matmul fwd+bwd ms | fftx fwd+bwd ms | speed-up |\n"
          "| --- | --- | --- | --- | --- |")
    for name, b, c, m, frozen in CASES:
        torch.manual_seed(0)
        sc = SpectralConv2d(c, c, m, m).requires_grad_(not frozen)
        pw = Pointwise(c, c).requires_grad_(not frozen)
        x = torch.randn(b, c, 72, 72, requires_grad=True)
        g = torch.randn(b, c, 72, 72)

        def step(sc=sc, pw=pw, x=x, g=g):
            sc(x, pointwise=pw).backward(g)
        res: dict[str, float] = {}
        for _ in range(args.rounds):
            for impl in ("matmul", "fftx"):
                sc.impl = impl
                res[impl] = min(res.get(impl, float("inf")), best(step))
        print(f"| {name} | {b} | {res['matmul'] * 1e3:.2f} | {res['fftx'] * 1e3:.2f} | "
              f"{res['matmul'] / res['fftx']:.2f}x |")


if __name__ == "__main__":
    main()
