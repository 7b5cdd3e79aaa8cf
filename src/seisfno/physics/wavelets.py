"""Source time functions."""

from __future__ import annotations

import math

import torch


def ricker(t_s: torch.Tensor, f_peak_hz: float, t_peak_s: float | None = None) -> torch.Tensor:
    """Ricker wavelet ``(1 - 2 pi^2 f^2 tau^2) exp(-pi^2 f^2 tau^2)``, ``tau = t - t_peak``.

    Parameters
    ----------
    t_s : Tensor
        Times in seconds.
    f_peak_hz : float
        Peak frequency in Hz.
    t_peak_s : float, optional
        Time of the peak; by default ``1.5 / f_peak_hz`` (the convention of this package), so the
        wavelet starts at t = 0 with an amplitude below 1e-8.
    """
    t0 = 1.5 / f_peak_hz if t_peak_s is None else t_peak_s
    a = (math.pi * f_peak_hz * (t_s - t0)) ** 2
    return (1.0 - 2.0 * a) * torch.exp(-a)


def ricker_second_derivative(t_s: torch.Tensor, f_peak_hz: float,
                             t_peak_s: float | None = None) -> torch.Tensor:
    """Second time derivative of :func:`ricker`, in 1/s^2 (used by the 4th-order time stepper)."""
    t0 = 1.5 / f_peak_hz if t_peak_s is None else t_peak_s
    b = (math.pi * f_peak_hz) ** 2
    a = b * (t_s - t0) ** 2
    return 2.0 * b * torch.exp(-a) * (-4.0 * a * a + 12.0 * a - 3.0)
