"""Figures of an inversion: models like the paper's Fig. 5, and misfit curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..physics import Grid
from ..plotting import pyplot as _plt
from ..plotting import save as _save


def plot_models(grid: Grid, inverted: np.ndarray, start: np.ndarray,
                true: np.ndarray | None, path: str | Path, title: str = "",
                sources_xz_m: np.ndarray | None = None) -> Path:
    """True, start, inverted and (inverted - true) models side by side, m/s (like Fig. 5)."""
    plt = _plt()
    ext = [0, grid.width_m / 1e3, grid.depth_m / 1e3, 0]
    panels = [("start", start), ("inverted", inverted)]
    if true is not None:
        panels = [("true", true), *panels]
    lo = min(float(np.min(p)) for _, p in panels)
    hi = max(float(np.max(p)) for _, p in panels)
    n = len(panels) + (true is not None)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.2), squeeze=False)
    axes = axes[0]
    for ax, (name, v) in zip(axes, panels, strict=False):
        im = ax.imshow(v, extent=ext, cmap="jet_r", vmin=lo, vmax=hi)
        ax.set_title(f"{name} (m/s)")
        fig.colorbar(im, ax=ax, shrink=0.75)
    if true is not None:
        diff = inverted - true
        c = float(np.abs(diff).max()) or 1.0
        im = axes[-1].imshow(diff, extent=ext, cmap="seismic", vmin=-c, vmax=c)
        axes[-1].set_title("inverted - true (m/s)")
        fig.colorbar(im, ax=axes[-1], shrink=0.75)
    for ax in axes:
        ax.set_xlabel("x (km)")
        ax.set_ylabel("z (km)")
        if sources_xz_m is not None:
            s = np.asarray(sources_xz_m)
            ax.plot(s[:, 0] / 1e3, s[:, 1] / 1e3, "k*", ms=5)
    return _save(fig, path, title)


def plot_curves(curves: dict[str, dict], path: str | Path) -> Path:
    """Model misfit (or data loss) against iteration and against wall time.

    ``curves`` maps a label to ``{"misfit": (n+1,), "time_s": (n+1,)}`` or, without a true
    model, ``{"loss": (n,), "time_s": (n+1,)}``.
    """
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for label, c in curves.items():
        y = c.get("misfit")
        ylab = "model misfit"
        if y is None:
            y, ylab = c["loss"], "data loss"
        y = np.asarray(y)
        t = np.asarray(c["time_s"])[: len(y)]
        axes[0].plot(np.arange(len(y)), y, label=label)
        axes[1].plot(t, y, label=label)
    axes[0].set_xlabel("iteration")
    axes[1].set_xlabel("wall time (s)")
    for ax in axes:
        ax.set_ylabel(ylab)
        ax.set_yscale("log")
        ax.legend()
    return _save(fig, path)
