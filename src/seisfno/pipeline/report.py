"""``report.md``: the paper's numbers beside ours, with every figure.

Every number in the report is either the paper's (:data:`PAPER`, from Yang et al. 2021), one
this run measured (``metrics.json``, dated in the report's header), or one measured before and
cited with its command and date in ``BENCHMARKS.md`` (:data:`SOLVER_AGREEMENT`).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

#: What Yang et al. (2021) report (8 Hz, 64 x 64 nodes over 10 km, 100 samples at 0.04 s).
PAPER = {
    "f_peak_hz": 8.0,
    "val_rel_l2": 0.273,
    "examples_rel_l2": (0.180, 0.363),
    "n_train": 4800,
    "training": "about 18 h on six V100 GPUs (300 epochs)",
    "simulation": "about 18 s per simulation on 4 CPU ranks (Salvus)",
    "fwi_misfit_fno": 0.0319,
    "fwi_misfit_sem": 0.0289,
    "fwi_seconds_per_iteration_fno": 1.0,
    "fwi_seconds_per_iteration_sem": 100.0,
}

#: Our solver against the authors' Salvus wavefields on the paper's setup (measured, not ours
#: to change): BENCHMARKS.md, "Agreement with the authors' Salvus wavefields".
SOLVER_AGREEMENT = {
    "rel_l2": 0.364, "rel_l2_first_1p5s": 0.199, "samples": 20, "date": "2026-12-02",
    "command": "OMP_NUM_THREADS=1 python benchmarks/salvus_agreement.py --n 20 --threads 1",
}


def _f(x: Any, fmt: str = ".4f") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float | int):
        return format(x, fmt)
    return str(x)


def _f_peak(metrics: dict) -> float | None:
    return (metrics.get("setup") or {}).get("f_peak_hz")


def _header(metrics: dict) -> list[str]:
    m = metrics["machine"]
    a = SOLVER_AGREEMENT
    lines = [
        f"# seisfno reproduction of Yang et al. (2021): preset `{metrics['preset']}`", "",
        f"Machine: {m.get('gpu') or m['cpu']} ({m['device']}, {m['cpu_count']} CPU cores, "
        f"{m['torch_threads']} torch threads), torch {m['torch']}, seisfno {m['seisfno']}, "
        f"{m['date']}. Total {metrics['total_seconds'] / 60:.1f} min (this run; stages kept "
        "from an earlier run count their own time).", "",
        "Errors are relative L2 over the whole (t, z, x) volume per sample, averaged over "
        "samples, against *our* finite-difference solver (the one that made the data). The "
        "paper's errors are against its spectral-element solver (Salvus). On the paper's setup "
        f"our solver and the authors' Salvus wavefields differ by {a['rel_l2']} relative L2 "
        f"over the whole record and {a['rel_l2_first_1p5s']} over its first 1.5 s (amplitude "
        f"and time origin computed, nothing fitted; {a['samples']} samples; BENCHMARKS.md, "
        f"`{a['command']}`, {a['date']}), so compare "
        "trends, not decimals.", "",
    ]
    f = _f_peak(metrics)
    if f is not None and f != PAPER["f_peak_hz"]:
        s = metrics["setup"]
        lines += [f"**Not the paper's problem.** This run's preset uses a {f:g} Hz wavelet "
                  f"({s['nt_out']} samples at {s['dt_out_s']:g} s) where the paper uses "
                  f"{PAPER['f_peak_hz']:g} Hz (100 samples at 0.04 s), on the same domain and "
                  "models. The paper's numbers below are for its 8 Hz problem and are not "
                  "comparable with ours; run `seisfno reproduce --preset paper` for that.", ""]
    return lines


def _learning_rows(st: dict, freq: str) -> list[tuple[str, str, str]]:
    rows = []
    if "data" in st:
        d = st["data"]
        rows.append(("simulations", f"{PAPER['simulation']}",
                     f"{d['n_samples']} in {d['seconds']:.0f} s ({d['samples_per_s']:.2f}/s)"))
    if "train" in st:
        t = st["train"]
        rows.append(("training", f"{PAPER['n_train']} samples, {PAPER['training']}",
                     f"{t['n_train']} samples, {t['epochs']} epochs in "
                     f"{t['seconds'] / 60:.1f} min"))
    if "evaluate" in st:
        e = st["evaluate"]
        rows.append(("validation relative L2 (mean)", f"{PAPER['val_rel_l2']:.3f} (8 Hz)",
                     f"{e['rel_l2_mean']:.3f} ({e['n_samples']} samples{freq})"))
        rows.append(("example errors (Fig. 2)", "0.180, 0.363 (8 Hz)",
                     f"best {e['rel_l2_min']:.3f}, median {e['rel_l2_median']:.3f}, "
                     f"worst {e['rel_l2_max']:.3f}"))
    if "square" in st:
        s = st["square"]
        rows.append(("square anomaly relative L2 (Fig. 4a-c)", "figure only",
                     f"{s['rel_l2_mean']:.3f} ({s['ratio_to_in_distribution']:.2f}x "
                     "in-distribution)"))
    if "superres" in st:
        s = st["superres"]
        hi, lo = s.get("eval_nodes", 128), s.get("train_nodes", 64)
        paper = "" if hi == 128 else ", at 128 x 128"
        rows.append((f"{hi} x {hi} relative L2 (Fig. 4d-f{paper})", "figure only",
                     f"{s['rel_l2_mean']:.3f} ({s['ratio_to_in_distribution']:.2f}x the "
                     f"{lo} x {lo} error on the same models)"))
    return rows


def _fwi_rows(st: dict) -> list[tuple[str, str, str]]:
    if "fwi" not in st:
        return []
    f = st["fwi"]["results"]
    return [
        ("FWI model misfit, operator", _f(PAPER["fwi_misfit_fno"]),
         f"{_f(f['operator']['model_misfit'])} (start {_f(f['operator']['start_misfit'])}, "
         f"{f['operator']['iterations']} it.)"),
        ("FWI model misfit, conventional", f"{PAPER['fwi_misfit_sem']} (SEM adjoint)",
         f"{_f(f['solver']['model_misfit'])} (FD autograd, {f['solver']['iterations']} it.)"),
        ("FWI model misfit, hybrid", "n/a",
         f"{_f(f['hybrid']['model_misfit'])} ({f['hybrid']['operator_iterations']} "
         f"operator + {f['hybrid']['solver_iterations']} solver it.)"),
        (f"seconds per FWI iteration (paper: 20 sources; ours: {st['fwi']['sources']})",
         f"~{PAPER['fwi_seconds_per_iteration_fno']:.0f} (FNO, V100) vs "
         f"~{PAPER['fwi_seconds_per_iteration_sem']:.0f} (SEM)",
         f"{_f(f['operator']['seconds_per_iteration'])} (operator) vs "
         f"{_f(f['solver']['seconds_per_iteration'])} (solver): "
         f"{st['fwi']['speedup_per_iteration']:.1f}x"),
    ]


def _summary_table(metrics: dict) -> list[str]:
    st = metrics["stages"]
    f = _f_peak(metrics)
    freq = f", {f:g} Hz" if f is not None else ""
    rows = _learning_rows(st, freq) + _fwi_rows(st)
    if "speed" in st:
        s = st["speed"]
        rows.append(("wavefields per second", "n/a",
                     f"operator {s['operator_wavefields_per_s']:.1f}, solver "
                     f"{s['solver_wavefields_per_s']:.2f} ({s['ratio']:.0f}x)"))
    return ["| quantity | paper | ours |", "| --- | --- | --- |",
            *(f"| {a} | {b} | {c} |" for a, b, c in rows), ""]


def _datasize_section(st: dict) -> list[str]:
    if "datasize" not in st:
        return []
    lines = ["## Training-set size (Fig. 3)", "", "| training samples | training error | "
             "validation error | epochs |", "| --- | --- | --- | --- |"]
    rows = st["datasize"]["rows"]
    for r in rows:
        lines.append(f"| {r['n_train']} | {r['train_rel_l2']:.3f} | {r['val_rel_l2']:.3f} | "
                     f"{r['epochs']} |")
    return [*lines, "", *_datasize_caveat(st["datasize"]), "![data size](datasize/datasize.png)",
            ""]


#: Fewer epochs than this per model and a wall-clock budget: the study measures training time.
MIN_STUDY_EPOCHS = 5


def _datasize_caveat(ds: dict) -> list[str]:
    """Say so when a time-budgeted study cannot show the effect of data size.

    Under one wall-clock budget per model the larger sets run fewer epochs; when they run only a
    few, or the validation error does not fall with size, the table measures training time, and a
    reader of Fig. 3 would take it for a data effect.
    """
    rows = ds.get("rows") or []
    minutes = (ds.get("config") or {}).get("minutes")
    if not rows or minutes is None:
        return []
    by_size = sorted(rows, key=lambda r: r["n_train"])
    val = [r["val_rel_l2"] for r in by_size]
    few = min(r["epochs"] for r in rows) < MIN_STUDY_EPOCHS
    flat = any(b >= a for a, b in itertools.pairwise(val))
    if not (few or flat):
        return []
    epochs = ", ".join(f"{r['epochs']}" for r in by_size)
    return [f"**This run does not resolve the effect of data size.** Each model had the same "
            f"budget of {minutes:g} min, so the larger sets ran fewer epochs ({epochs}); at "
            "this budget the errors measure training time, not data. The trend of the paper's "
            "Fig. 3 needs each model trained for equal epochs: `seisfno study datasize --epochs "
            "20` (BENCHMARKS.md, 'Data-size study, with and without augmentation': `quick`, "
            "0.284 / 0.196 / 0.144 at 300 / 600 / 1200 samples without augmentation, "
            "0.238 / 0.162 / 0.124 with).", ""]


def _continuation(fw: dict) -> list[str]:
    stages = {k: v for k, v in (fw.get("stages") or {}).items() if v}
    if not stages:
        return []

    def fmt(st):
        return " then ".join(f"{n} it. at {'the full band' if f is None else f'{f:g} Hz'}"
                             for f, n in st)

    return ["Frequency continuation (a low-pass on observed and predicted data, each stage from "
            "the last one's model): "
            + "; ".join(f"{k.replace('_', ' ')}: {fmt(v)}" for k, v in stages.items()) + ".", ""]


def _planned_iterations(cfg: dict, name: str) -> int | None:
    """Iterations the FWI stage's settings ``cfg`` plan for run ``name`` (None: not recorded)."""
    def count(prefix):
        stages = cfg.get(f"{prefix}_stages")
        return sum(k for _, k in stages) if stages else cfg.get(f"{prefix}_iterations")

    if name != "hybrid":
        return count(name)
    op, fd = count("hybrid_operator"), cfg.get("hybrid_solver_iterations")
    return None if op is None or fd is None else op + fd


def _early_stops(fw: dict) -> list[str]:
    """A line per FWI run that ended before its planned iterations, and why."""
    lines, limits = [], fw.get("time_limits_s") or {}
    for name, r in fw["results"].items():
        reason = r.get("stopped_reason", "completed")
        done, planned = r.get("iterations"), _planned_iterations(fw.get("config", {}), name)
        of = f"{done} of {planned} planned iterations" if planned else f"{done} iterations"
        if reason.startswith("time limit") and name in limits:
            lines += [f"The {name} run reached its time limit of {limits[name]:g} s after {of} "
                      "(the profile's limits bound the stage on a slower machine).", ""]
        elif reason != "completed" and not reason.startswith("check:"):
            lines += [f"The {name} run stopped after {of}: {reason}.", ""]
        elif (name == "hybrid" and name in limits and r.get("solver_iterations") == 0
              and fw.get("config", {}).get("hybrid_solver_iterations")):
            lines += ["The hybrid's solver phase did not run: its operator phase used the "
                      f"hybrid's time limit of {limits[name]:g} s.", ""]
    return lines


def _fwi_section(st: dict) -> list[str]:
    if "fwi" not in st:
        return []
    fw = st["fwi"]
    lines = ["## FWI (Fig. 5)", "",
             f"True model: `{fw['model']}` benchmark, {fw['sources']} sources, observations by "
             f"{fw.get('observations', 'the solver (`seisfno.inversion.observe`)')} "
             f"({fw['observation_s']:.1f} s): a finer discretization than the inversion's, so no "
             "inverse crime; every node a receiver, noise-free, homogeneous "
             "3000 m/s start, Adam lr 0.01 km/s.", "", *_continuation(fw)]
    if fw.get("check_sources"):
        lines += [f"The operator's stages were refereed by the solver on {fw['check_sources']} "
                  "sources (stopped when its data misfit stopped improving; the best-checked "
                  "model kept).", ""]
    lines += _early_stops(fw)
    if fw["results"]["hybrid"].get("operator_phase_reused"):
        lines += ["The hybrid's operator phase is the operator run above (the same iterations "
                  "from the same start), with its measured times: it was not computed twice.",
                  ""]
    if fw.get("hybrid_reaches_solver_misfit"):
        lines.append(f"The hybrid reached the solver's final misfit after "
                     f"{fw['hybrid_time_to_solver_misfit_s']:.1f} s, "
                     f"{100 * fw['hybrid_time_fraction']:.0f} % of the solver's "
                     f"{fw['solver_total_s']:.1f} s.")
    else:
        lines.append("The hybrid did not reach the solver's final misfit within its iterations.")
    return [*lines, "", "![operator](fig5_operator.png)", "![solver](fig5_solver.png)",
            "![hybrid](fig5_hybrid.png)", "![curves](fwi_curves.png)", ""]


def _figures_section(st: dict) -> list[str]:
    figs = []
    if "evaluate" in st:
        figs += [f"![{f}]({f})" for f in st["evaluate"]["figures"]]
    if "square" in st:
        figs.append("![square anomaly](square/square_anomaly.png)")
    if "superres" in st:
        n = st["superres"].get("eval_nodes", 128)
        figs.append(f"![{n} x {n}](superres/superres.png)")
    return ["## Wavefields (Figs. 2 and 4)", "", *figs, ""] if figs else []


def write_report(path: Path, metrics: dict[str, Any]) -> Path:
    """Write ``report.md`` from the metrics of :func:`~seisfno.pipeline.reproduce.reproduce`."""
    st = metrics["stages"]
    lines = [*_header(metrics), *_summary_table(metrics), *_datasize_section(st),
             *_fwi_section(st), *_figures_section(st),
             "## Configuration", "", "```", *(f"{k}: {v}" for k, v in metrics["config"].items()),
             "```", ""]
    Path(path).write_text("\n".join(lines))
    return Path(path)
