"""Evaluation: relative L2 errors of a trained operator against solver wavefields."""

from __future__ import annotations

import os
import time
from typing import Any

import numpy as np
import torch

from .._errors import SeisfnoError
from ..physics import resample
from .checkpoint import OperatorModel
from .train import rel_l2


def _load(data, indices) -> tuple[np.ndarray, np.ndarray, np.ndarray, Any]:
    if isinstance(data, str | os.PathLike):
        from ..data import open_store

        store = open_store(data)
        idx = np.arange(store.n_samples) if indices is None else np.asarray(indices)
        v, s, u = store.load(idx)
        return v, s, u, store.preset
    try:
        v, s, u = data
    except (TypeError, ValueError):
        raise SeisfnoError("data must be a store path or (velocity, sources, wavefield)") from None
    if indices is not None:
        v, s, u = v[indices], np.asarray(s)[indices], u[indices]
    return v, np.asarray(s), u, None


def evaluate(model: OperatorModel, data, resolution: int | None = None, *,
             indices=None, batch_size: int = 16) -> dict[str, Any]:
    """Relative L2 errors of ``model`` on a dataset.

    Parameters
    ----------
    model : OperatorModel
    data : path or (velocity (n, nz, nx), sources (n, 2), wavefield (n, nt, nz', nx'))
        A store, or arrays in physical units. A store's preset is checked against the model's.
    resolution : int, optional
        Resample the velocity (bilinear, same domain) to ``resolution x resolution`` before
        predicting; the wavefield must already be on that grid (e.g. solver data at 128 x 128).
    indices : array of int, optional
        A subset of samples (default all).
    batch_size : int

    Returns
    -------
    dict
        ``rel_l2_mean`` (mean over samples of the per-sample error over (t, z, x)),
        ``rel_l2_per_sample`` (list, n), ``rel_l2_per_time`` (list, nt: mean over samples of
        ``||pred_t - true_t|| / ||true_t||``), ``n_samples``, ``grid`` ([nz, nx]),
        ``seconds`` and ``samples_per_s`` (prediction time).
    """
    v, s, u, preset = _load(data, indices)
    if preset is not None:
        model.check_preset(preset.replace(grid=model.preset.grid.with_shape(*preset.grid.shape)))
    if len(v) == 0:
        raise SeisfnoError("no samples to evaluate")
    shape = (resolution, resolution) if resolution else tuple(v.shape[-2:])
    if tuple(u.shape[-2:]) != shape:
        raise SeisfnoError(f"wavefields are {tuple(u.shape[-2:])} but predictions will be {shape};"
                           " give wavefields on the evaluation grid")
    if u.shape[1] != model.preset.nt_out:
        raise SeisfnoError(
            f"wavefields have {u.shape[1]} time samples, the model {model.preset.nt_out}")
    grid = model.preset.grid.with_shape(*shape)
    per_sample, per_time = [], []
    seconds = 0.0
    with torch.no_grad():
        for k in range(0, len(v), batch_size):
            vb = torch.as_tensor(np.asarray(v[k:k + batch_size], np.float32))
            if tuple(vb.shape[-2:]) != shape:
                vb = resample(vb, grid)
            t0 = time.perf_counter()
            pred = model.predict(vb, s[k:k + batch_size])
            if pred.is_cuda:
                torch.cuda.synchronize()
            seconds += time.perf_counter() - t0
            true = torch.as_tensor(np.asarray(u[k:k + batch_size], np.float32)).to(pred.device)
            per_sample.append(rel_l2(pred, true).cpu())
            num = (pred - true).flatten(2).norm(dim=2)
            den = true.flatten(2).norm(dim=2).clamp_min(1e-30)
            per_time.append((num / den).cpu())
    ps = torch.cat(per_sample).double()
    pt = torch.cat(per_time).double().mean(0)
    return {"rel_l2_mean": float(ps.mean()), "rel_l2_per_sample": ps.tolist(),
            "rel_l2_per_time": pt.tolist(), "n_samples": len(ps), "grid": list(shape),
            "seconds": round(seconds, 4), "samples_per_s": len(ps) / max(seconds, 1e-9)}


def plot_comparison(true: np.ndarray, pred: np.ndarray, velocity: np.ndarray, source_xz_m,
                    preset, path, *, n_receivers: int = 8, n_snapshots: int = 4,
                    title: str | None = None):
    """A figure like the paper's Fig. 2: snapshots and waveforms at 8 receivers, true vs FNO.

    Parameters
    ----------
    true, pred : ndarray, shape (nt, nz, nx)
        Solver and operator wavefields.
    velocity : ndarray, shape (nz, nx), m/s
    source_xz_m : (float, float)
    preset : Preset
        For the domain and ``dt_out_s``.
    path : path
        PNG to write (matplotlib Agg).
    n_receivers : int
        Receivers evenly spaced in x at the domain's mid-depth.
    """
    from ..plotting import pyplot, save

    plt = pyplot()

    nt, nz, nx = true.shape
    g = preset.grid.with_shape(nz, nx)
    ext = [0, g.width_m / 1e3, g.depth_m / 1e3, 0]
    rx = np.linspace(0, nx - 1, n_receivers + 2)[1:-1].round().astype(int)
    rz = nz // 2
    times = np.linspace(0, nt - 1, n_snapshots + 2)[1:-1].round().astype(int)
    fig = plt.figure(figsize=(3 * (n_snapshots + 1), 9.5))
    gs = fig.add_gridspec(4, n_snapshots + 1, height_ratios=[1, 1, 0.08, 1.6])
    ax = fig.add_subplot(gs[0:2, 0])
    im = ax.imshow(velocity, extent=ext, cmap="viridis")
    ax.plot(source_xz_m[0] / 1e3, source_xz_m[1] / 1e3, "r*", ms=12)
    ax.plot(g.x_m[rx] / 1e3, np.full(len(rx), g.z_m[rz] / 1e3), "wv", ms=6)
    ax.set_title("velocity (m/s), source, receivers")
    fig.colorbar(im, ax=ax, shrink=0.6)
    clip = float(np.abs(true).max()) * 0.5 or 1.0
    for j, k in enumerate(times):
        for i, (a, name) in enumerate(((true, "solver"), (pred, "FNO"))):
            axs = fig.add_subplot(gs[i, j + 1])
            axs.imshow(a[k], extent=ext, cmap="seismic", vmin=-clip, vmax=clip)
            axs.set_title(f"{name}, t = {k * preset.dt_out_s:.2f} s", fontsize=9)
            axs.set_xticks([])
            axs.set_yticks([])
    axw = fig.add_subplot(gs[3, :])
    t = np.arange(nt) * preset.dt_out_s
    amp = float(np.abs(true[:, rz, rx]).max()) or 1.0
    for r, ix in enumerate(rx):
        off = 2.0 * r
        axw.plot(t, true[:, rz, ix] / amp + off, "k", lw=1.2, label="solver" if r == 0 else None)
        axw.plot(t, pred[:, rz, ix] / amp + off, "r--", lw=1.0, label="FNO" if r == 0 else None)
    axw.set_yticks(2.0 * np.arange(len(rx)), [f"x={g.x_m[i] / 1e3:.1f} km" for i in rx])
    axw.set_xlabel("t (s)")
    err = float(np.linalg.norm(pred - true) / (np.linalg.norm(true) or 1.0))
    axw.set_title(f"waveforms at z = {g.z_m[rz] / 1e3:.1f} km; relative L2 = {err:.3f}")
    axw.legend(loc="upper right")
    return save(fig, path, title, dpi=80)


__all__ = ["evaluate", "plot_comparison"]
