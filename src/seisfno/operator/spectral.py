"""Spectral convolutions: the Fourier layer's global part, on any grid size.

A spectral convolution multiplies the lowest ``modes`` frequencies of each channel by learned
complex weights and discards the rest. We keep the *symmetric* band ``|k| < modes`` on every axis:
the last axis uses a real FFT (frequencies ``0 .. modes-1``), the other axes a full FFT (indices
``0 .. modes-1`` and ``n-modes+1 .. n-1``, i.e. frequencies ``-(modes-1) .. modes-1``). The kept
set is closed under ``k -> -k``, so with identity weights the layer is exactly a real FFT low-pass,
on even and odd grids alike (neuraloperator 2.0's released layer mis-indexes odd grids). Grids of
any size with at least ``2 * modes - 1`` nodes per full axis (``modes`` on the last) work with the
same weights: the layer is resolution-independent.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .._errors import SeisfnoError


def _band(n: int, modes: int) -> tuple[slice, slice]:
    """The two index blocks of a full-FFT axis of length ``n`` holding ``|k| < modes``."""
    if n < 2 * modes - 1:
        raise SeisfnoError(
            f"a grid axis of {n} nodes is too small for {modes} Fourier modes "
            f"(needs at least {2 * modes - 1})")
    return slice(0, modes), slice(n - modes + 1, n)


def _fft_dtype(x: torch.Tensor) -> torch.Tensor:
    """FFTs run in float32 (or float64 when given): half-precision FFTs are unsupported/unsafe."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _init_weight(cin: int, cout: int, *shape: int) -> nn.Parameter:
    scale = 1.0 / (cin * cout)
    return nn.Parameter(scale * torch.rand(cin, cout, *shape, dtype=torch.cfloat))


class SpectralConv2d(nn.Module):
    """2-D spectral convolution ``(B, cin, n1, n2) -> (B, cout, n1, n2)``.

    Parameters
    ----------
    in_channels, out_channels : int
    modes1, modes2 : int
        Frequencies kept along the first (full FFT, ``2*modes1-1`` kept) and the last axis
        (real FFT, ``modes2`` kept).

    Attributes
    ----------
    weight : Parameter, complex64, shape (in_channels, out_channels, 2*modes1-1, modes2)
        Row ``i < modes1`` multiplies frequency ``i``, row ``modes1 + j`` frequency
        ``j - modes1 + 1`` (negative frequencies, increasing).
    """

    def __init__(self, in_channels: int, out_channels: int, modes1: int, modes2: int) -> None:
        super().__init__()
        if min(modes1, modes2) < 1:
            raise SeisfnoError("spectral layers need at least one mode per axis")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2 = modes1, modes2
        self.weight = _init_weight(in_channels, out_channels, 2 * modes1 - 1, modes2)

    def forward(self, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        """``(B, cin, n1, n2) -> (B, cout, n1, n2)``; with ``channels_last``, ``(B, n1, n2, c)``."""
        d1, d2 = (1, 2) if channels_last else (-2, -1)
        n1, n2 = x.shape[d1], x.shape[d2]
        m1, m2 = self.modes1, self.modes2
        if n2 < 2 * m2 - 1:
            _band(n2, m2)  # raises
        lo, hi = _band(n1, m1)
        # Index the two frequency axes the same way in both layouts.
        at = (lambda i, j: (slice(None), i, j)) if channels_last else (lambda i, j: (..., i, j))
        with torch.autocast(x.device.type, enabled=False):
            xf = torch.fft.rfft2(_fft_dtype(x), dim=(d1, d2))
            low = torch.cat([xf[at(lo, slice(0, m2))], xf[at(hi, slice(0, m2))]], dim=d1)
            w = self.weight.to(low.dtype)
            if channels_last:
                y = torch.einsum("bxyi,ioxy->bxyo", low, w)
                out = xf.new_zeros(x.shape[0], n1, n2 // 2 + 1, self.out_channels)
            else:
                y = torch.einsum("bixy,ioxy->boxy", low, w)
                out = xf.new_zeros(x.shape[0], self.out_channels, n1, n2 // 2 + 1)
            out[at(lo, slice(0, m2))] = y[at(slice(0, m1), slice(None))]
            out[at(hi, slice(0, m2))] = y[at(slice(m1, None), slice(None))]
            return torch.fft.irfft2(out, s=(n1, n2), dim=(d1, d2))


class SpectralConv3d(nn.Module):
    """3-D spectral convolution ``(B, cin, n1, n2, n3) -> (B, cout, n1, n2, n3)``.

    Full FFTs on the first two axes (``2*modes-1`` frequencies kept each), a real FFT on the
    last (``modes3`` kept). Weight shape ``(cin, cout, 2*modes1-1, 2*modes2-1, modes3)``.
    """

    def __init__(self, in_channels: int, out_channels: int, modes1: int, modes2: int,
                 modes3: int) -> None:
        super().__init__()
        if min(modes1, modes2, modes3) < 1:
            raise SeisfnoError("spectral layers need at least one mode per axis")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.modes1, self.modes2, self.modes3 = modes1, modes2, modes3
        self.weight = _init_weight(in_channels, out_channels, 2 * modes1 - 1, 2 * modes2 - 1,
                                   modes3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n1, n2, n3 = x.shape[-3:]
        m1, m2, m3 = self.modes1, self.modes2, self.modes3
        if n3 < 2 * m3 - 1:
            _band(n3, m3)
        b1, b2 = _band(n1, m1), _band(n2, m2)
        with torch.autocast(x.device.type, enabled=False):
            xf = torch.fft.rfftn(_fft_dtype(x), dim=(-3, -2, -1))
            xf = xf[..., :m3]
            low = torch.cat([torch.cat([xf[..., s1, s2, :] for s2 in b2], dim=-2)
                             for s1 in b1], dim=-3)
            y = torch.einsum("bixyz,ioxyz->boxyz", low, self.weight.to(low.dtype))
            out = xf.new_zeros(x.shape[0], self.out_channels, n1, n2, n3 // 2 + 1)
            for s1, r1 in zip(b1, (slice(0, m1), slice(m1, None)), strict=True):
                for s2, r2 in zip(b2, (slice(0, m2), slice(m2, None)), strict=True):
                    out[..., s1, s2, :m3] = y[..., r1, r2, :]
            return torch.fft.irfftn(out, s=(n1, n2, n3), dim=(-3, -2, -1))


class Pointwise(nn.Linear):
    """A 1x1 convolution ``(B, cin, *spatial) -> (B, cout, *spatial)`` as one batched matmul.

    Same parameters and initialization as :class:`torch.nn.Linear`. On CPU its backward is
    several times faster than ``Conv2d(kernel_size=1)``'s (oneDNN), which dominated training.
    With ``channels_last`` the input is ``(B, *spatial, cin)`` and this is plain ``Linear``.
    """

    def forward(self, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
        if channels_last:
            return F.linear(x, self.weight.to(x.dtype),
                            None if self.bias is None else self.bias.to(x.dtype))
        b, spatial = x.shape[0], x.shape[2:]
        y = torch.matmul(self.weight.to(x.dtype), x.reshape(b, x.shape[1], -1))
        if self.bias is not None:
            y = y + self.bias.to(x.dtype)[:, None]
        return y.reshape(b, -1, *spatial)


def lowpass(x: torch.Tensor, modes: int, ndim: int = 2) -> torch.Tensor:
    """The FFT low-pass ``|k| < modes`` on the last ``ndim`` axes (the identity layer's output)."""
    dims = tuple(range(-ndim, 0))
    xf = torch.fft.fftn(x.double(), dim=dims)
    mask = torch.ones((), dtype=torch.bool)
    for d in dims:
        n = x.shape[d]
        k = torch.fft.fftfreq(n, d=1.0 / n).abs()
        shape = [1] * ndim
        shape[d] = n
        mask = mask & (k < modes).reshape(shape)
    return torch.fft.ifftn(xf * mask, dim=dims).real.to(x.dtype)


def n_params(module: nn.Module) -> int:
    """Number of real parameters (a complex weight counts twice)."""
    return sum(p.numel() * (2 if p.is_complex() else 1) for p in module.parameters())


__all__ = ["Pointwise", "SpectralConv2d", "SpectralConv3d", "lowpass", "n_params"]
