"""Our paper-preset wavefields against the authors' Salvus wavefields (Yang et al. 2021).

Usage::

    python benchmarks/salvus_agreement.py [--n 20] [--backend torch] [--threads 2]

Reads ``../shared/reference/salvus_yang2021/samples_0_19.npz`` relative to the repository root
(never copied into the repository; see the README beside it) and exits cleanly if it is absent.
Their arrays are indexed ``(x, z, t)`` with the origin at the domain centre and
``vp = 3000 (1 + dV / 100)``; ours are ``(t, z, x)`` from the top-left node. One global
scale (with sign) is fitted over all samples pooled (their field is an acoustic potential with
density; ours solves ``u_tt - v^2 lap u = ricker delta``), and optionally one global time lag
from a small grid of fractional shifts. Prints per-sample and pooled relative L2 as Markdown.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seisfno.physics import AcousticSolver, get_preset

REF = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "salvus_yang2021" \
    / "samples_0_19.npz"


def _shift(u: np.ndarray, lag_s: float, dt: float) -> np.ndarray:
    """Delay ``u`` (t first) by ``lag_s`` with a Fourier phase shift (zero-padded to 2x)."""
    if lag_s == 0.0:
        return u
    n = u.shape[0]
    spec = np.fft.rfft(u, 2 * n, axis=0)
    f = np.fft.rfftfreq(2 * n, dt)
    spec *= np.exp(-2j * np.pi * f * lag_s).reshape(-1, *([1] * (u.ndim - 1)))
    return np.fft.irfft(spec, 2 * n, axis=0)[:n]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20, help="first n of the 20 samples")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lags-ms", type=float, nargs="*", default=[-20, -10, 0, 10, 20])
    args = ap.parse_args()
    if not REF.is_file():
        print(f"reference wavefields not found at {REF}; nothing to compare", file=sys.stderr)
        return 0
    torch.set_num_threads(args.threads)
    with np.load(REF) as z:
        dv = z["dV_percent"][: args.n].astype(np.float64)
        src = z["source_xy_m"][: args.n].astype(np.float64)
        phi = z["wavefield_phi"][: args.n].astype(np.float64)
    p = get_preset("paper")
    vel = (3000.0 * (1 + dv / 100)).transpose(0, 2, 1)  # (x, z) -> (z, x)
    ref = phi.transpose(0, 3, 2, 1)  # (x, z, t) -> (t, z, x)
    src_ours = src + 5000.0
    lo, hi = float(vel.min()), float(vel.max())
    clip = p.velocity.clip_mps
    vrange = clip if (lo >= clip[0] and hi <= clip[1]) else (lo, hi)
    solver = AcousticSolver.from_preset(p, backend=args.backend, velocity_range_mps=vrange)
    ours = []
    t0 = time.perf_counter()
    for i in range(args.n):
        with torch.no_grad():
            ours.append(solver(vel[i].astype(np.float32), src_ours[i]).double().numpy())
    elapsed = time.perf_counter() - t0
    ours = np.stack(ours)
    best = None
    for lag_ms in args.lags_ms:
        sh = np.stack([_shift(u, lag_ms / 1000, p.dt_out_s) for u in ours])
        scale = float((sh * ref).sum() / (sh * sh).sum())
        per = [float(np.linalg.norm(scale * sh[i] - ref[i]) / np.linalg.norm(ref[i]))
               for i in range(args.n)]
        pooled = float(np.linalg.norm(scale * sh - ref) / np.linalg.norm(ref))
        print(f"lag {lag_ms:+.0f} ms: scale {scale:+.4g}, pooled relative L2 {pooled:.4f}")
        if best is None or pooled < best[0]:
            best = (pooled, lag_ms, scale, per)
    pooled, lag_ms, scale, per = best
    print(f"\n{args.n} samples, backend {args.backend}, velocity range {vrange}, "
          f"{elapsed / args.n:.1f} s per simulation on {args.threads} threads")
    print(f"best global lag {lag_ms:+.0f} ms, global scale {scale:+.4g}\n")
    print("| sample | relative L2 |\n|---|---|")
    for i, e in enumerate(per):
        print(f"| {i} | {e:.3f} |")
    print(f"| pooled | {pooled:.3f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
