"""Figures written to files, without touching matplotlib's global backend.

Every figure is a :class:`matplotlib.figure.Figure` drawn by its own Agg canvas
(:func:`figure`, :func:`subplots`), never a pyplot figure: writing a PNG works without a
display and leaves a notebook user's backend (``matplotlib.get_backend()``) and pyplot's figure
list as they were.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np


def figure(**kwargs):
    """A new ``Figure`` on an Agg canvas (``kwargs`` as for ``Figure``: figsize, dpi, ...)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def subplots(nrows: int = 1, ncols: int = 1, *, figsize=None, dpi=None, **kwargs):
    """``(fig, axes)`` like ``pyplot.subplots``, on a :func:`figure` (no pyplot state)."""
    fig = figure(figsize=figsize, dpi=dpi)
    return fig, fig.subplots(nrows, ncols, **kwargs)


def pyplot():
    """The subset of pyplot the figure code uses (``figure``, ``subplots``, ``close``).

    Kept for the modules that call ``pyplot().subplots(...)``; nothing here selects a backend.
    """
    return SimpleNamespace(figure=figure, subplots=subplots, close=lambda fig=None: None)


def save(fig, path, title: str | None = None, dpi: int = 90) -> Path:
    """Title, lay out and write ``fig`` to ``path`` (parents created)."""
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path


def plot_wavefield(u: np.ndarray, velocity: np.ndarray, source_xz_m, preset, path: Path,
                   n_snapshots: int = 4) -> Path:
    """Velocity, ``n_snapshots`` snapshots and a surface shot gather of ``u (nt, nz, nx)``."""
    g = preset.grid.with_shape(*velocity.shape)
    ext = [0, g.width_m / 1e3, g.depth_m / 1e3, 0]
    times = np.linspace(0, u.shape[0] - 1, n_snapshots + 2)[1:-1].astype(int)
    fig, axes = subplots(1, n_snapshots + 2, figsize=(3.2 * (n_snapshots + 2), 3.2))
    im = axes[0].imshow(velocity, extent=ext, cmap="viridis")
    axes[0].plot(source_xz_m[0] / 1e3, source_xz_m[1] / 1e3, "r*", ms=10)
    axes[0].set_title("velocity (m/s)")
    fig.colorbar(im, ax=axes[0], shrink=0.7)
    clip = np.abs(u).max() * 0.5 or 1.0
    for ax, k in zip(axes[1:-1], times, strict=True):
        ax.imshow(u[k], extent=ext, cmap="seismic", vmin=-clip, vmax=clip)
        ax.set_title(f"t = {k * preset.dt_out_s:.2f} s")
    gather = u[:, 0, :]
    c = np.abs(gather).max() * 0.5 or 1.0
    axes[-1].imshow(gather, aspect="auto", cmap="gray", vmin=-c, vmax=c,
                    extent=[0, g.width_m / 1e3, u.shape[0] * preset.dt_out_s, 0])
    axes[-1].set_title("shot gather, z = 0")
    axes[-1].set_xlabel("x (km)")
    axes[-1].set_ylabel("t (s)")
    for ax in axes[:-1]:
        ax.set_xlabel("x (km)")
        ax.set_ylabel("z (km)")
    return save(fig, path)
