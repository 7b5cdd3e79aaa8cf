"""Analytic solutions for verification."""

from __future__ import annotations

import numpy as np
from scipy.special import hankel2

from .wavelets import ricker


def green2d_ricker(r_m: np.ndarray, t_s: np.ndarray, velocity_mps: float, f_peak_hz: float,
                   *, oversample: int = 8, t_pad_s: float = 20.0) -> np.ndarray:
    """Homogeneous 2-D solution of ``u_tt - v^2 lap u = ricker(t) delta(x)`` at distances ``r``.

    Computed in the frequency domain, ``U(w) = S(w) (-i / 4 v^2) H0^(2)(w r / v)`` (numpy's FFT
    sign convention; outgoing waves), on a long, finely sampled time axis, then sampled at
    ``t_s``. Returns ``(len(t_s), *r_m.shape)``.
    """
    r = np.atleast_1d(np.asarray(r_m, dtype=np.float64))
    t_s = np.asarray(t_s, dtype=np.float64)
    dt = min(np.diff(t_s).min() if t_s.size > 1 else 1.0, 1.0 / (20 * f_peak_hz)) / oversample
    n = int(np.ceil((t_s.max() + t_pad_s) / dt))
    n += n % 2
    t = np.arange(n) * dt
    import torch

    s = ricker(torch.as_tensor(t), f_peak_hz).numpy()
    w = 2 * np.pi * np.fft.rfftfreq(n, dt)
    spec = np.fft.rfft(s)[:, None] * np.zeros(r.size)[None, :]
    wk = w[1:, None]
    spec[1:] = np.fft.rfft(s)[1:, None] * (-0.25j / velocity_mps**2) * hankel2(
        0, wk * r.ravel()[None, :] / velocity_mps)
    u = np.fft.irfft(spec, n, axis=0)
    out = np.stack([np.interp(t_s, t, u[:, i]) for i in range(r.size)], axis=1)
    return out.reshape(len(t_s), *r.shape)
