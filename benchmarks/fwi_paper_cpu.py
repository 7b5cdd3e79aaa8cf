"""FWI protocols on the `paper` preset with the shipped `paper` operator, on any device.

The von Karman benchmark (``--model``: another), 20 sources, every node a receiver,
observations by the solver, the homogeneous 3000 m/s start, Adam 0.01 km/s. Each variant is one
inversion, printed as a row: model misfit at a few iterations, the lowest, the final one, and the
stages' stops::

    PYTHONPATH=src python benchmarks/fwi_paper_cpu.py [--threads 2] [--variants NAME ...]

Variants (``--list`` prints them): the paper's full band, gradient smoothing, a smaller step, single
low-pass bands, frequency continuations, and continuations refereed by the solver
(:class:`~seisfno.inversion.SolverCheck`). On 2 CPU cores an operator iteration takes 0.4-0.7 s
and a 4-source check 9-14 s; the whole set takes about 40 minutes.
"""

from __future__ import annotations

import argparse
import time

import torch

VARIANTS: dict[str, dict] = {
    "full": {"iterations": 200},
    "smooth300": {"iterations": 200, "smooth_grad_m": 300.0},
    "smooth600": {"iterations": 200, "smooth_grad_m": 600.0},
    "lr0.003": {"iterations": 200, "lr": 0.003},
    "2Hz": {"iterations": 200, "lowpass_hz": 2.0},
    "3Hz": {"iterations": 200, "lowpass_hz": 3.0},
    "3Hz-full": {"stages": [(3.0, 100), (None, 100)]},
    "3Hz-5Hz": {"stages": [(3.0, 100), (5.0, 100)]},
    "2-5Hz": {"stages": [(2.0, 50), (3.0, 50), (4.0, 50), (5.0, 50)]},
    "3Hz-full-check10": {"stages": [(3.0, 150), (None, 100)], "check": (4, 10, 2)},
    "3Hz-full-check5": {"stages": [(3.0, 150), (None, 100)], "check": (4, 5, 3)},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default="von-karman",
                    help="benchmark true model: von-karman, square, blocky")
    ap.add_argument("--variants", nargs="*", default=list(VARIANTS))
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        for k, v in VARIANTS.items():
            print(f"{k:18s} {v}")
        return
    unknown = set(a.variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; --list shows them")
    torch.set_num_threads(a.threads)

    from seisfno.inversion import (
        OperatorForward,
        SolverCheck,
        SolverForward,
        benchmark_model,
        default_sources,
        invert,
        multiscale,
        observe,
    )

    op = OperatorForward.load("paper", device=a.device)
    preset = op.preset
    true = benchmark_model(a.model, preset)
    src = default_sources(preset.grid, 20)
    t0 = time.perf_counter()
    obs = observe(true, src, preset, device=a.device)
    print(f"true model {a.model}; observations: {time.perf_counter() - t0:.0f} s", flush=True)
    fd = None
    print("| variant | start | misfit at 25 / 100 / 200 | lowest (iteration) | final | s | "
          "stages, stops |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name in a.variants:
        spec = dict(VARIANTS[name])
        kw = {}
        if "check" in spec:
            n, every, patience = spec.pop("check")
            fd = fd or SolverForward(preset, device=a.device)
            kw = {"check": SolverCheck(fd, src, obs, n_sources=n), "check_every": every,
                  "check_patience": patience}
        t0 = time.perf_counter()
        if "stages" in spec:
            r = multiscale(op, src, obs, true, stages=spec.pop("stages"), **spec, **kw)
        else:
            r = invert(op, src, obs, true, **spec, **kw)
        sec = time.perf_counter() - t0
        m = r.misfit
        at = " / ".join(f"{m[k]:.4f}" if k < len(m) else "-" for k in (25, 100, 200))
        stops = ""
        if "stages" in r.options:
            stops = f"{r.options['stages']}, {r.options.get('stage_stops')}"
        print(f"| {name} | {m[0]:.4f} | {at} | {m.min():.4f} ({int(m.argmin())}) | "
              f"{r.model_misfit:.5f} | "
              f"{sec:.0f} | {stops} |", flush=True)


if __name__ == "__main__":
    main()
