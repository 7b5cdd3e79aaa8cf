"""``report.md``: the paper's numbers beside ours, with every figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: What Yang et al. (2021) report (and the measured facts in PAPER.md).
PAPER = {
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


def _f(x: Any, fmt: str = ".4f") -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float | int):
        return format(x, fmt)
    return str(x)


def write_report(path: Path, metrics: dict[str, Any]) -> Path:
    """Write ``report.md`` from the metrics of :func:`~seisfno.pipeline.reproduce.reproduce`."""
    st = metrics["stages"]
    cfg = metrics["config"]
    m = metrics["machine"]
    lines = [
        f"# seisfno reproduction of Yang et al. (2021): preset `{metrics['preset']}`", "",
        f"Machine: {m.get('gpu') or m['cpu']} ({m['device']}, {m['cpu_count']} CPU cores, "
        f"{m['torch_threads']} torch threads), torch {m['torch']}, seisfno {m['seisfno']}, "
        f"{m['date']}. Total {metrics['total_seconds'] / 60:.1f} min.", "",
        "Errors are relative L2 over the whole (t, z, x) volume per sample, averaged over "
        "samples, against *our* finite-difference solver (the one that made the data). The "
        "paper's errors are against its spectral-element solver; two valid solvers disagree "
        "by about 0.27 on the same setup (PAPER.md), so compare trends, not decimals.", "",
        "| quantity | paper | ours |", "| --- | --- | --- |",
    ]
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
        rows.append(("validation relative L2 (mean)", _f(PAPER["val_rel_l2"], ".3f"),
                     f"{e['rel_l2_mean']:.3f} ({e['n_samples']} samples)"))
        rows.append(("example errors (Fig. 2)", "0.180, 0.363",
                     f"best {e['rel_l2_min']:.3f}, median {e['rel_l2_median']:.3f}, "
                     f"worst {e['rel_l2_max']:.3f}"))
    if "square" in st:
        s = st["square"]
        rows.append(("square anomaly relative L2 (Fig. 4a-c)", "figure only",
                     f"{s['rel_l2_mean']:.3f} ({s['ratio_to_in_distribution']:.2f}x "
                     "in-distribution)"))
    if "superres" in st:
        s = st["superres"]
        rows.append(("128 x 128 relative L2 (Fig. 4d-f)", "figure only",
                     f"{s['rel_l2_mean']:.3f} ({s['ratio_to_in_distribution']:.2f}x the 64 x 64 "
                     "error on the same models)"))
    if "fwi" in st:
        f = st["fwi"]["results"]
        rows.append(("FWI model misfit, operator", _f(PAPER["fwi_misfit_fno"]),
                     f"{_f(f['operator']['model_misfit'])} (start "
                     f"{_f(f['operator']['start_misfit'])}, {f['operator']['iterations']} it.)"))
        rows.append(("FWI model misfit, conventional", f"{PAPER['fwi_misfit_sem']} (SEM adjoint)",
                     f"{_f(f['solver']['model_misfit'])} (FD autograd, "
                     f"{f['solver']['iterations']} it.)"))
        rows.append(("FWI model misfit, hybrid", "n/a",
                     f"{_f(f['hybrid']['model_misfit'])} ({f['hybrid']['operator_iterations']} "
                     f"operator + {f['hybrid']['solver_iterations']} solver it.)"))
        rows.append(("seconds per FWI iteration (20 sources)",
                     f"~{PAPER['fwi_seconds_per_iteration_fno']:.0f} (FNO, V100) vs "
                     f"~{PAPER['fwi_seconds_per_iteration_sem']:.0f} (SEM)",
                     f"{_f(f['operator']['seconds_per_iteration'])} (operator) vs "
                     f"{_f(f['solver']['seconds_per_iteration'])} (solver): "
                     f"{st['fwi']['speedup_per_iteration']:.1f}x"))
    if "speed" in st:
        s = st["speed"]
        rows.append(("wavefields per second", "n/a",
                     f"operator {s['operator_wavefields_per_s']:.1f}, solver "
                     f"{s['solver_wavefields_per_s']:.2f} ({s['ratio']:.0f}x)"))
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    lines += [""]
    if "datasize" in st:
        lines += ["## Training-set size (Fig. 3)", "", "| training samples | training error | "
                  "validation error | epochs |", "| --- | --- | --- | --- |"]
        for r in st["datasize"]["rows"]:
            lines.append(f"| {r['n_train']} | {r['train_rel_l2']:.3f} | {r['val_rel_l2']:.3f} | "
                         f"{r['epochs']} |")
        lines += ["", "![data size](datasize/datasize.png)", ""]
    if "fwi" in st:
        fw = st["fwi"]
        lines += ["## FWI (Fig. 5)", "",
                  f"True model: `{fw['model']}` benchmark, {fw['sources']} sources, observations "
                  f"by the solver on its fine grid ({fw['observation_s']:.1f} s), every node a "
                  "receiver, noise-free, homogeneous 3000 m/s start, Adam lr 0.01 km/s.", ""]
        stages = {k: v for k, v in (fw.get("stages") or {}).items() if v}
        if stages:
            def fmt(st):
                return " then ".join(f"{n} it. at {'the full band' if f is None else f'{f:g} Hz'}"
                                     for f, n in st)
            lines += ["Frequency continuation (a low-pass on observed and predicted data, each "
                      "stage from the last one's model): "
                      + "; ".join(f"{k.replace('_', ' ')}: {fmt(v)}" for k, v in stages.items())
                      + ".", ""]
        if fw.get("check_sources"):
            lines += [f"The operator's stages were refereed by the solver on "
                      f"{fw['check_sources']} sources (stopped when its data misfit stopped "
                      f"improving; the best-checked model kept).", ""]
        if fw.get("hybrid_reaches_solver_misfit"):
            lines.append(f"The hybrid reached the solver's final misfit after "
                         f"{fw['hybrid_time_to_solver_misfit_s']:.1f} s, "
                         f"{100 * fw['hybrid_time_fraction']:.0f} % of the solver's "
                         f"{fw['solver_total_s']:.1f} s.")
        else:
            lines.append("The hybrid did not reach the solver's final misfit within its "
                         "iterations.")
        lines += ["", "![operator](fig5_operator.png)", "![solver](fig5_solver.png)",
                  "![hybrid](fig5_hybrid.png)", "![curves](fwi_curves.png)", ""]
    figs = []
    if "evaluate" in st:
        figs += [f"![{f}]({f})" for f in st["evaluate"]["figures"]]
    if "square" in st:
        figs.append("![square anomaly](square/square_anomaly.png)")
    if "superres" in st:
        figs.append("![128 x 128](superres/superres.png)")
    if figs:
        lines += ["## Wavefields (Figs. 2 and 4)", "", *figs, ""]
    lines += ["## Configuration", "", "```", *(f"{k}: {v}" for k, v in cfg.items()), "```", ""]
    path.write_text("\n".join(lines))
    return path
