"""The paper's architecture: a 3-D FNO over (z, x, t) (Yang et al. 2021; the authors' code).

4 Fourier layers, 20 modes per axis, width 32, BatchNorm3d and ReLU (none after the last layer),
lifting ``Linear(3 -> 32)`` of (time coordinate, velocity, source bump) repeated along t,
projection ``32 -> 128 -> 1``, 4 cells of zero padding in space (``padding = 1/16`` of each axis,
4 cells at 64 nodes). Our spectral layer keeps the symmetric band ``|k| < 20`` (39 x 39 x 20
frequencies per weight rather than the authors' 40 x 40 x 20), so the paper model has ~249 M
rather than ~262 M parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .spectral import Pointwise, SpectralConv3d


class FNO3d(nn.Module):
    """Paper 3-D FNO ``(B, 4, nz, nx) -> (B, nt_out, nz, nx)``.

    Of the encoded input channels it uses velocity (0) and source bump (1), as the authors did.

    Parameters
    ----------
    nt_out : int
        Output time samples; the time axis of the 3-D grid.
    width, modes, n_layers : int
        32, 20, 4 in the paper; ``modes`` applies to z, x and t (clamped to what ``nt_out``
        resolves on the time axis).
    projection : int
        Hidden width of the projection (128).
    padding : float
        Spatial zero padding as a fraction of each axis (1/16: 4 cells at 64).
    """

    def __init__(self, nt_out: int, width: int = 32, modes: int = 20, n_layers: int = 4,
                 projection: int = 128, padding: float = 1 / 16) -> None:
        super().__init__()
        self.nt_out, self.padding = nt_out, padding
        mt = min(modes, (nt_out + 1) // 2)
        self.lift = nn.Linear(3, width)
        self.spectral = nn.ModuleList(SpectralConv3d(width, width, modes, modes, mt)
                                      for _ in range(n_layers))
        self.pointwise = nn.ModuleList(Pointwise(width, width) for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.BatchNorm3d(width) for _ in range(n_layers))
        self.fc1 = nn.Linear(width, projection)
        self.fc2 = nn.Linear(projection, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, nz, nx = x.shape
        nt = self.nt_out
        t = torch.linspace(0, 1, nt, device=x.device, dtype=x.dtype)
        feats = torch.stack([t.expand(b, nz, nx, nt),
                             x[:, 0, :, :, None].expand(b, nz, nx, nt),
                             x[:, 1, :, :, None].expand(b, nz, nx, nt)], dim=-1)
        h = self.lift(feats).permute(0, 4, 1, 2, 3)  # (B, width, nz, nx, nt)
        pz, px = math.ceil(nz * self.padding), math.ceil(nx * self.padding)
        h = F.pad(h, (0, 0, 0, px, 0, pz))
        last = len(self.spectral) - 1
        for i, (sc, pw, bn) in enumerate(zip(self.spectral, self.pointwise, self.norms,
                                             strict=True)):
            h = bn(sc(h) + pw(h))
            if i < last:
                h = F.relu(h)
        h = h[:, :, :nz, :nx].permute(0, 2, 3, 4, 1)
        y = self.fc2(F.relu(self.fc1(h)))[..., 0]  # (B, nz, nx, nt)
        return y.permute(0, 3, 1, 2)


__all__ = ["FNO3d"]
