"""The paper's generalization studies, each returning a JSON-able dict and drawing a figure.

* :func:`datasize_study`: training and validation error against training-set size (Fig. 3);
* :func:`square_anomaly_study`: a 5 % square anomaly in 3000 m/s, far from the random training
  models (Fig. 4a-c);
* :func:`superres_study`: a model trained at 64 x 64 evaluated at 128 x 128 on the same domain
  against the solver's 128 x 128 wavefields (Fig. 4d-f).

Every error is the relative L2 of the operator against *our solver* (the solver that made the
training data), and each generalization error is reported beside the in-distribution error of
the same model on the same kind of samples, so the ratio quantifies the generalization gap.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .._progress import progress_bar
from ..physics import (
    AcousticSolver,
    Preset,
    resample,
    sample_rng,
    square_anomaly,
    von_karman,
)
from .checkpoint import OperatorModel
from .evaluate import plot_comparison
from .train import fit

#: Seed of the held-out models of the studies (never used for training data by our pipeline).
STUDY_SEED = 90_210


def _rel_l2(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-sample relative L2 over all but the first axis."""
    d = (pred - true).reshape(len(true), -1)
    return np.linalg.norm(d, axis=1) / np.linalg.norm(true.reshape(len(true), -1), axis=1)


def _predict(model: OperatorModel, v: np.ndarray, s: np.ndarray, batch: int = 16) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(v), batch):
            out.append(model.predict(v[i:i + batch], s[i:i + batch]).float().cpu().numpy())
    return np.concatenate(out)


def _write(out_dir: Path, name: str, result: dict) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
    return result


def heldout_samples(preset: Preset, n: int, seed: int = STUDY_SEED, nodes: int | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """``n`` von Karman models and random sources of ``preset``, from a held-out seed.

    With ``nodes`` the same fields are drawn on an ``nodes x nodes`` grid of the same domain
    (a finer sampling of a statistically identical model).
    """
    grid = preset.grid if nodes is None else preset.grid.with_shape(nodes)
    vp = preset.velocity
    v, s = [], []
    for i in range(n):
        rng = sample_rng(seed, i)
        v.append(von_karman(grid, rng, mean_mps=vp.mean_mps, sigma_mps=vp.sigma_mps,
                            kappa=vp.kappa, corr_len_m=vp.corr_len_m, clip_mps=vp.clip_mps))
        m = preset.source_margin_m
        s.append([rng.uniform(m, grid.width_m - m), rng.uniform(m, grid.depth_m - m)])
    return np.stack(v), np.asarray(s)


def _solve(preset: Preset, v: np.ndarray, s: np.ndarray, device=None, batch: int = 8
           ) -> np.ndarray:
    grid = preset.grid.with_shape(*v.shape[-2:])
    solver = AcousticSolver(grid, preset.f_peak_hz, preset.dt_out_s, preset.nt_out,
                            velocity_range_mps=preset.velocity.clip_mps,
                            decimation=preset.decimation, device=device)
    out = []
    with torch.no_grad():
        for i in range(0, len(v), batch):
            out.append(solver(v[i:i + batch], s[i:i + batch]).float().cpu().numpy())
    return np.concatenate(out)


def _solve_and_predict(model: OperatorModel, preset: Preset, v: np.ndarray, s: np.ndarray,
                       device, bar) -> tuple[np.ndarray, np.ndarray]:
    """The solver's and the operator's wavefields, one step of ``bar`` each."""
    bar.set_postfix_str(f"solving {len(v)} at {v.shape[-1]}x{v.shape[-2]}")
    true = _solve(preset, v, s, device)
    bar.update(1)
    bar.set_postfix_str(f"predicting {len(v)}")
    pred = _predict(model, v, s)
    bar.update(1)
    return true, pred


def datasize_study(velocity: np.ndarray, sources_xz_m: np.ndarray, wavefield: np.ndarray,
                   preset: Preset, sizes: list[int], out_dir: str | os.PathLike, *,
                   n_val: int = 200, train_kwargs: dict | None = None,
                   device: str | None = None, progress: bool = False,
                   augment: str | Sequence[str] | None = None) -> dict[str, Any]:
    """Train one model per training-set size and record its training and validation errors.

    The last ``n_val`` samples are the common validation set; size ``n`` trains on the first
    ``n`` others. ``train_kwargs`` go to :func:`~seisfno.operator.train.fit` (``epochs`` or
    ``time_budget_min`` per model, ...). ``augment`` is one augmentation (``"d4"``, ``"none"``;
    default: :func:`~seisfno.operator.train.fit`'s) with run directories ``out_dir/n<size>``, or a
    list of them, trained side by side in ``out_dir/n<size>-<augment>``; an interrupted study
    resumes. The result's ``rows`` hold one run each (with its ``augment``); ``table`` has one
    row per size and a ``val_rel_l2[<augment>]`` and ``train_rel_l2[<augment>]`` column per
    augmentation, also written as ``datasize.md``.
    """
    out = Path(out_dir)
    n_avail = len(velocity) - n_val
    single = augment is None or isinstance(augment, str)
    modes = [augment] if single else list(augment)
    if max(sizes) > n_avail:
        raise ValueError(f"size {max(sizes)} needs more than the {n_avail} training samples "
                         "available")
    rows = []
    with progress_bar(len(sizes) * len(modes), unit="model", desc="datasize",
                      progress=progress) as bar:
        for n in sorted(sizes):
            for mode in modes:
                run = out / (f"n{n}" if single else f"n{n}-{mode}")
                bar.set_postfix(n_train=n, augment=mode)
                res = fit(velocity, sources_xz_m, wavefield, preset, run, n_val=n_val, n_train=n,
                          device=device, progress=progress,
                          **{**(train_kwargs or {}), "augment": mode})
                card = json.loads((run / "model.json").read_text())
                rows.append({"n_train": n, "augment": card["training"]["augment"],
                             "train_rel_l2": res.train_rel_l2, "val_rel_l2": res.val_rel_l2,
                             "epochs": res.epochs_run, "seconds": res.seconds})
                bar.update(1)
    table = _datasize_table(rows)
    result = {"study": "datasize", "preset": preset.name, "n_val": n_val, "rows": rows,
              "table": table}
    _plot_datasize(rows, out / "datasize.png")
    (out / "datasize.md").write_text(_markdown(table))
    return _write(out, "datasize", result)


def _datasize_table(rows: list[dict]) -> list[dict]:
    """One row per size, a training and a validation column per augmentation."""
    table: dict[int, dict] = {}
    for r in rows:
        t = table.setdefault(r["n_train"], {"n_train": r["n_train"]})
        t[f"train_rel_l2[{r['augment']}]"] = r["train_rel_l2"]
        t[f"val_rel_l2[{r['augment']}]"] = r["val_rel_l2"]
    return [table[n] for n in sorted(table)]


def _markdown(table: list[dict]) -> str:
    cols = sorted({k for t in table for k in t if k != "n_train"}, key=lambda k: (k[0] != "v", k))
    lines = ["| n_train | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {t['n_train']} | " + " | ".join(
        f"{t[c]:.4f}" if c in t else "" for c in cols) + " |" for t in table]
    return "\n".join(lines) + "\n"


def _plot_datasize(rows: list[dict], path: Path) -> None:
    from ..plotting import subplots

    fig, ax = subplots(figsize=(5, 3.6))
    modes = list(dict.fromkeys(r["augment"] for r in rows))
    for mode in modes:
        sel = [r for r in rows if r["augment"] == mode]
        tag = f" ({mode})" if len(modes) > 1 else ""
        n = [r["n_train"] for r in sel]
        ax.plot(n, [r["train_rel_l2"] for r in sel], "o--", label=f"training{tag}")
        ax.plot(n, [r["val_rel_l2"] for r in sel], "s-", label=f"validation{tag}")
    ax.set_xlabel("training samples")
    ax.set_ylabel("relative L2")
    ax.set_title("Error against training-set size")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)


def square_anomaly_study(model: OperatorModel, out_dir: str | os.PathLike, *,
                         sources_xz_m: np.ndarray | None = None, n_reference: int = 16,
                         device: str | None = None, progress: bool = False) -> dict[str, Any]:
    """Operator vs solver on the 5 % square anomaly in 3000 m/s (the paper's Fig. 4a-c).

    Sources default to three positions (centre-left, above, corner-ish). The in-distribution
    reference is the same model's error on ``n_reference`` held-out von Karman samples.
    ``progress``: a bar over the four solve and predict steps on stderr (on a terminal).
    """
    p = model.preset
    g = p.grid
    if sources_xz_m is None:
        sources_xz_m = np.array([[0.25 * g.width_m, 0.5 * g.depth_m],
                                 [0.5 * g.width_m, 0.2 * g.depth_m],
                                 [0.8 * g.width_m, 0.75 * g.depth_m]])
    s = np.asarray(sources_xz_m, dtype=np.float64).reshape(-1, 2)
    v = np.repeat(square_anomaly(g)[None], len(s), axis=0)
    vr, sr = heldout_samples(p, n_reference)
    with progress_bar(4, unit="step", desc="square", progress=progress) as bar:
        true, pred = _solve_and_predict(model, p, v, s, device, bar)
        ref_true, ref_pred = _solve_and_predict(model, p, vr, sr, device, bar)
    ref = _rel_l2(ref_pred, ref_true)
    err = _rel_l2(pred, true)
    out = Path(out_dir)
    plot_comparison(true[0], pred[0], v[0], s[0], p, out / "square_anomaly.png",
                    title=f"square anomaly: relative L2 {err[0]:.3f}")
    result = {"study": "square_anomaly", "preset": p.name, "rel_l2_mean": float(err.mean()),
              "rel_l2_per_source": err.tolist(), "sources_xz_m": s.tolist(),
              "in_distribution_rel_l2": float(ref.mean()),
              "ratio_to_in_distribution": float(err.mean() / ref.mean())}
    return _write(out, "square_anomaly", result)


def superres_study(model: OperatorModel, out_dir: str | os.PathLike, *, nodes: int = 128,
                   n_samples: int = 16, device: str | None = None,
                   progress: bool = False) -> dict[str, Any]:
    """A model trained at its preset's grid evaluated on ``nodes x nodes`` (same domain).

    The held-out von Karman fields are drawn at ``nodes x nodes`` and resampled (bilinear) to
    the training grid; both are solved and predicted with the same sources, so the ratio
    isolates the change of sampling. ``progress``: a bar over the four solve and predict steps
    on stderr (on a terminal).
    """
    p = model.preset
    v_hi, s = heldout_samples(p, n_samples, nodes=nodes)
    v_lo = resample(v_hi, p.grid)
    rows = {}
    with progress_bar(4, unit="step", desc="superres", progress=progress) as bar:
        for n, v in ((p.grid.nz, v_lo), (nodes, v_hi)):
            true, pred = _solve_and_predict(model, p, v, s, device, bar)
            rows[n] = (_rel_l2(pred, true), v, s, true, pred)
    e_lo, e_hi = rows[p.grid.nz][0], rows[nodes][0]
    _, v, s, true, pred = rows[nodes]
    out = Path(out_dir)
    plot_comparison(true[0], pred[0], v[0], s[0], p, out / "superres.png",
                    title=f"{nodes} x {nodes}: relative L2 {e_hi[0]:.3f}")
    result = {"study": "superres", "preset": p.name, "train_nodes": p.grid.nz,
              "eval_nodes": nodes, "rel_l2_mean": float(e_hi.mean()),
              "rel_l2_per_sample": e_hi.tolist(), "in_distribution_rel_l2": float(e_lo.mean()),
              "ratio_to_in_distribution": float(e_hi.mean() / e_lo.mean())}
    return _write(out, "superres", result)
