"""CPU speed of our solver against deepwave on the same plan, side by side, in one run.

Usage::

    python benchmarks/solver_cpu.py            # the full table (tens of minutes on 2 cores)
    python benchmarks/solver_cpu.py --quick    # a short version (a few minutes)

Cases (issue 11), each at every ``--threads`` count, both backends in the same process:

* ``forward quick b8``: 8 ``quick`` simulations in one call (a ``generate`` shard);
* ``forward paper b1``: one ``paper`` simulation;
* ``forward paper b16``: 16 ``paper`` simulations in one call (a ``generate --preset paper``
  shard); with the CPU chunking of :class:`~seisfno.physics.TorchBackend` on
  (``cpu_batch_cells``; ``--cpu-batch-cells`` sets it), ours is also timed with the whole batch
  in one call (last column);
* ``gradient quick/paper``: one solver-FWI iteration with 20 sources
  (:func:`seisfno.inversion.invert` with :class:`~seisfno.inversion.SolverForward`: forward,
  adjoint and Adam step; ours checkpointed, deepwave's its own adjoint).

Our backend runs as ``generate`` and ``invert`` run it (``TorchBackend()`` defaults: forward
runs in the native C loop of :mod:`seisfno.physics.native` where it builds, gradients in the
PyTorch step ``torch.compile``'d above a work threshold, its checkpointed forward segments in
the C loop); every case also times the PyTorch step alone (``native=False``, last column).
Every timing is the best of ``--repeat`` calls after one untimed warm-up call (compilation),
alternating the backends so that a change of load on the machine hits both. ``ratio`` is
torch / deepwave time (below 1: ours is faster). ``--quick`` keeps the forward cases and the
``quick`` gradient, at 1 thread; ``--cases forward quick`` keeps the cases whose label has one
of those words. ``--isolate BATCH`` runs the gradient cases with each backend in processes of
its own and ``BATCH`` sources a call for both, and reports each one's peak memory: the
``paper`` gradient with 20 sources fits 24 GB only so (``--cases "gradient paper" --isolate 2
--threads 2``).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np
import torch

from seisfno.physics import AcousticSolver, TorchBackend, get_preset, sample_rng, von_karman


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _best(fns: dict, repeat: int) -> dict[str, float]:
    """Warm each callable up once, then the best of ``repeat`` interleaved calls."""
    for fn in fns.values():
        fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def forward_case(preset_name: str, batch: int, nt_out: int | None, repeat: int,
                 cells: int | None) -> dict[str, float]:
    from seisfno.physics.deepwave_backend import DeepwaveBackend

    p = get_preset(preset_name, nt_out=nt_out)
    v = np.stack([von_karman(p.grid, sample_rng(0, i), clip_mps=p.velocity.clip_mps)
                  for i in range(batch)])
    src = np.random.default_rng(0).uniform(500, 9500, size=(batch, 2))
    fns = {}
    backends = [("torch", TorchBackend(cpu_batch_cells=cells)), ("deepwave", DeepwaveBackend()),
                ("compiled step", TorchBackend(cpu_batch_cells=cells, native=False))]
    if cells is not None and batch > 1:  # chunking against none
        backends.append(("torch whole batch", TorchBackend(cpu_batch_cells=None)))
    for name, be in backends:
        solver = AcousticSolver.from_preset(p, backend=be)

        def call(solver=solver):
            with torch.no_grad():
                solver(v, src)

        fns[name] = call
    return _best(fns, repeat)


def _gradient_setup(preset_name: str, n_sources: int):
    from seisfno.inversion import default_sources

    p = get_preset(preset_name)
    src = default_sources(p.grid, n_sources)
    v_true = von_karman(p.grid, sample_rng(5, 0), clip_mps=p.velocity.clip_mps)
    with torch.no_grad():
        d = AcousticSolver.from_preset(p)(v_true, src)
    return p, src, d


def _gradient_iteration(p, name: str):
    """One FWI iteration (``invert(..., iterations=1)``) of backend ``name``: a callable of
    (sources, observations, sources per call)."""
    from seisfno.inversion import SolverForward, invert

    fwd = SolverForward(p, backend="deepwave" if name == "deepwave" else "torch")
    if name == "compiled step":  # forward segments in the PyTorch step too
        fwd.solver.backend = TorchBackend(native=False)
    return lambda src, d, batch: invert(fwd, src, observed=d, iterations=1, batch_sources=batch)


def gradient_case(preset_name: str, n_sources: int, repeat: int,
                  deepwave_batch: int | None = None) -> dict[str, float]:
    """One FWI iteration with ``n_sources`` sources, observations made once beforehand;
    deepwave's gradients ``deepwave_batch`` sources a call (it stores every step's field: the
    ``paper`` iteration with 20 sources at once asked for 51.5 GB)."""
    p, src, d = _gradient_setup(preset_name, n_sources)
    fns = {}
    for name in ("torch", "deepwave", "compiled step"):
        it = _gradient_iteration(p, name)
        batch = deepwave_batch if name == "deepwave" else None
        fns[name] = lambda it=it, batch=batch: it(src, d, batch)
    return _best(fns, repeat)


def isolated_gradient_case(preset_name: str, n_sources: int, repeat: int, batch: int,
                           threads: int) -> dict[str, float]:
    """The gradient case with every backend in processes of its own, ``batch`` sources a call
    for both: the ``paper`` iteration does not fit 24 GB with both backends in one process.

    Each of ``repeat`` rounds starts one process per backend, alternating; a process warms up
    on one call's worth of sources (``batch``: the shapes that compile are the timed ones),
    then times one whole iteration. Returns the best time per backend, and each backend's
    peak resident memory (GB) under ``"<name> GB"``."""
    import json
    import subprocess
    import sys

    best: dict[str, float] = {}
    for _ in range(repeat):
        for name in ("torch", "deepwave"):
            out = subprocess.run(
                [sys.executable, __file__, "--worker-gradient", preset_name, name,
                 str(n_sources), str(batch), str(threads)],
                check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            best[name] = min(best.get(name, float("inf")), r["seconds"])
            best[f"{name} GB"] = max(best.get(f"{name} GB", 0.0), r["max_rss_gb"])
    return best


def _worker_gradient(preset_name: str, name: str, n_sources: int, batch: int,
                     threads: int) -> None:
    import json
    import resource

    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message=".*illuminates.*")
    p, src, d = _gradient_setup(preset_name, n_sources)
    it = _gradient_iteration(p, name)
    it(src[:batch], d[:batch], batch)  # warm-up: the timed call's shapes
    t0 = time.perf_counter()
    it(src, d, batch)
    seconds = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB on Linux
    print(json.dumps({"seconds": seconds, "max_rss_gb": rss}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short version (see above)")
    ap.add_argument("--threads", type=int, nargs="+", default=None, help="default: 1 2")
    ap.add_argument("--repeat", type=int, default=None, help="default: 3 (--quick: 2)")
    ap.add_argument("--sources", type=int, default=20)
    ap.add_argument("--cases", nargs="+", default=None,
                    help="only the cases whose label contains one of these words "
                         "(e.g. 'forward', 'quick'; the paper gradient takes over 10 minutes)")
    ap.add_argument("--cpu-batch-cells", type=int, default=None,
                    help="TorchBackend.cpu_batch_cells for the forward cases (0: whole batches; "
                         "default: the package's default)")
    ap.add_argument("--deepwave-batch-sources", type=int, default=None,
                    help="sources per deepwave gradient call (default: all; the paper gradient "
                         "needs ~2.6 GB a source there)")
    ap.add_argument("--isolate", type=int, default=None, metavar="BATCH",
                    help="run the gradient cases with each backend in processes of its own, "
                         "BATCH sources a call for both (the paper gradient: 2 fits 24 GB)")
    ap.add_argument("--worker-gradient", nargs=5, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker_gradient:
        preset_name, name, n, batch, th = args.worker_gradient
        _worker_gradient(preset_name, name, int(n), int(batch), int(th))
        return
    cells = TorchBackend().cpu_batch_cells if args.cpu_batch_cells is None else \
        (args.cpu_batch_cells or None)
    warnings.filterwarnings("ignore", message=".*illuminates.*")
    threads = args.threads or ([1] if args.quick else [1, 2])
    repeat = args.repeat or (2 if args.quick else 3)

    def grad(preset_name):
        if args.isolate:
            return lambda th: isolated_gradient_case(preset_name, args.sources, repeat,
                                                     args.isolate, th)
        return lambda th: gradient_case(preset_name, args.sources, repeat,
                                        args.deepwave_batch_sources)

    cases = [("forward quick b8", lambda th: forward_case("quick", 8, None, repeat, cells)),
             ("forward paper b1", lambda th: forward_case("paper", 1, None, repeat, cells)),
             ("forward paper b16", lambda th: forward_case("paper", 16, None, repeat, cells)),
             (f"gradient quick {args.sources} src", grad("quick"))]
    if not args.quick:
        cases.append((f"gradient paper {args.sources} src", grad("paper")))
    if args.cases:
        cases = [c for c in cases if any(w in c[0] for w in args.cases)]
    import deepwave

    print(f"CPU: {cpu_model()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
          f"torch {torch.__version__}, deepwave {getattr(deepwave, '__version__', '?')}; "
          f"best of {repeat} after a warm-up call\n")
    print("| case | threads | torch s | deepwave s | ratio torch/deepwave "
          "| torch, whole batch in one call s | compiled PyTorch step s |")
    print("|---|---|---|---|---|---|---|")
    for label, fn in cases:
        for th in threads:
            torch.set_num_threads(th)
            t = fn(th)
            whole, step = (f"{t[k]:.2f}" if k in t else "-"
                           for k in ("torch whole batch", "compiled step"))
            mem = (f" (peak memory: torch {t['torch GB']:.1f} GB, "
                   f"deepwave {t['deepwave GB']:.1f} GB)" if "torch GB" in t else "")
            print(f"| {label}{mem} | {th} | {t['torch']:.2f} | {t['deepwave']:.2f} | "
                  f"{t['torch'] / t['deepwave']:.2f} | {whole} | {step} |", flush=True)


if __name__ == "__main__":
    main()
