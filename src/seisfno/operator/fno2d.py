"""Our default operator: a 2-D FNO over (z, x) with the time samples as output channels.

Why 2-D with time as channels rather than the paper's 3-D FNO (``paper3d``): the output sampling
is fixed by the preset (``nt_out`` samples), so time need not be resolution-independent, and the
2-D network is far cheaper for the same data. Measured on one H200 (2026-11-26, batch 64 / 10):
``fno2d`` for ``paper`` (width 64, 24 modes, 37 M parameters) trains at 3 645 samples/s in fp32
and 4 130 with bf16 + compile; ``paper3d`` (249 M parameters) at 10 samples per 0.14-0.15 s,
about 70 samples/s: 55x less throughput, so 55x less data per unit of compute, which is what
limits accuracy here (PAPER.md: with 4 800 samples a 2-D FNO overfits, with 20 000 it does not).
A width-32, 24-mode ``fno2d`` reached validation relative L2 0.332 after 2.3 minutes on 10 936
samples on one H200, and 0.250 (0.2485 on fresh samples) after 92 epochs (about 4.2 hours) on
4 800 samples with d4 augmentation on two CPU cores (the shipped model; BENCHMARKS.md); the paper's
3-D FNO reached 0.273 after about 18 h on six V100s.

Defaults (:func:`default_args`): for the ``paper`` preset width 64, 24 modes, 4 layers (the pilot
in PAPER.md; 8 Hz at 2.3 nodes per wavelength needs nearly all of the 64-node grid's modes); for
the 2 Hz ``quick`` preset width 32, 16 modes (its band ends near 16 cycles per domain), a size that
trains on two CPU cores. The shipped ``paper`` model uses width 32 to stay under 20 MB. The
shipped ``quick`` model uses width 24 and projection 64: trained for 120 epochs it is as accurate
as width 32 / projection 128 after 40 (0.0600 against 0.0606 on fresh samples) and 1.4x faster
per FWI iteration (issue 12); in a short budget the default learns more (``reproduce --preset
quick``'s 3.5 minutes: validation 0.130 against 0.156; BENCHMARKS.md).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .encoding import N_INPUT_CHANNELS
from .spectral import Pointwise, SpectralConv2d


def _pad_cells(n: int, frac: float) -> int:
    return math.ceil(n * frac) if frac > 0 else 0


class FNO2d(nn.Module):
    """Fourier neural operator ``(B, 4, nz, nx) -> (B, nt_out, nz, nx)``.

    Parameters
    ----------
    nt_out : int
        Output time samples (channels).
    width : int
        Channels of the Fourier layers.
    modes : int
        Fourier modes kept per axis (``|k| < modes``).
    n_layers : int
        Fourier layers (spectral conv + 1x1 conv, GELU between layers, none after the last).
    in_channels : int
        Encoded input channels (velocity, source bump, z, x).
    projection : int
        Hidden channels of the projection MLP.
    norm : {"none", "instance", "group"}
        Optional normalization after each Fourier layer.
    padding : float
        Zero padding on the bottom/right as a fraction of each axis (so that the same physical
        padding is used at any resolution): the FFT's periodicity would otherwise wrap waves
        leaving one edge into the opposite one.
    """

    def __init__(self, nt_out: int, width: int = 32, modes: int = 16, n_layers: int = 4,
                 in_channels: int = N_INPUT_CHANNELS, projection: int = 128,
                 norm: str = "none", padding: float = 0.125) -> None:
        super().__init__()
        self.padding = padding
        #: Layout of the hidden state: (B, C, z, x) by default, where the spectral layers run
        #: as GEMMs with truncated DFT matrices (and real FFTs along x on CPU:
        #: ``SpectralConv2d.impl``), 1.3-2x faster on CPU than the channels-last FFT layout that
        #: was the CPU default before (issue 12, ``benchmarks/operator_cpu.py``); ``True``
        #: selects (B, z, x, C). Same weights.
        self.channels_last = False
        self.lift = nn.Sequential(Pointwise(in_channels, width), nn.GELU(),
                                  Pointwise(width, width))
        self.spectral = nn.ModuleList(SpectralConv2d(width, width, modes, modes)
                                      for _ in range(n_layers))
        self.pointwise = nn.ModuleList(Pointwise(width, width) for _ in range(n_layers))
        if norm == "none":
            self.norms = nn.ModuleList(nn.Identity() for _ in range(n_layers))
        elif norm == "instance":
            self.norms = nn.ModuleList(nn.InstanceNorm2d(width, affine=True)
                                       for _ in range(n_layers))
        elif norm == "group":
            self.norms = nn.ModuleList(nn.GroupNorm(1, width) for _ in range(n_layers))
        else:
            raise ValueError(f"unknown norm {norm!r}")
        self.project = nn.Sequential(Pointwise(width, projection), nn.GELU(),
                                     Pointwise(projection, nt_out))

    #: :meth:`forward` takes ``scale`` (:func:`~seisfno.operator.encoding.decoded`).
    takes_output_scale = True

    def forward(self, x: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``(B, 4, nz, nx) -> (B, nt_out, nz, nx)``, times ``scale``.

        ``scale`` multiplies the last projection's weight and bias rather than the output: the
        decoding into physical units (``u_scale``) without a pass over the output each way
        (1.3 ms of an operator FWI iteration's 90 on 2 AVX2 cores; 1.00-1.02x).
        """
        cl = self.channels_last
        nz, nx = x.shape[-2:]
        pz, px = _pad_cells(nz, self.padding), _pad_cells(nx, self.padding)
        h = _mlp(self.lift, x.permute(0, 2, 3, 1) if cl else x, cl)
        h = F.pad(h, (0, 0, 0, px, 0, pz) if cl else (0, px, 0, pz))
        last = len(self.spectral) - 1
        for i, (sc, pw, nm) in enumerate(zip(self.spectral, self.pointwise, self.norms,
                                             strict=True)):
            h = sc(h, channels_last=cl, pointwise=pw)
            if not isinstance(nm, nn.Identity):
                h = nm(h.permute(0, 3, 1, 2)).permute(0, 2, 3, 1) if cl else nm(h)
            if i < last:
                h = F.gelu(h)
        h = h[:, :nz, :nx] if cl else h[..., :nz, :nx]
        y = _mlp(self.project, h, cl, scale)
        return y.permute(0, 3, 1, 2).contiguous() if cl else y


def _mlp(seq: nn.Sequential, h: torch.Tensor, channels_last: bool, scale: float = 1.0
         ) -> torch.Tensor:
    """``seq`` on ``h``, its last layer (a :class:`Pointwise`) scaled by ``scale``."""
    last = len(seq) - 1
    for i, m in enumerate(seq):
        if isinstance(m, Pointwise):
            h = m(h, channels_last=channels_last, scale=scale if i == last else 1.0)
        else:
            h = m(h)
    return h


__all__ = ["FNO2d"]
