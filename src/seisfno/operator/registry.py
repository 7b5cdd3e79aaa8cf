"""Architectures by name, with default constructor arguments per preset."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from .._errors import SeisfnoError
from ..physics import Preset
from .fno2d import FNO2d
from .fno3d import FNO3d

#: name -> model class; every class takes ``nt_out`` and maps ``(B, 4, nz, nx)`` to
#: ``(B, nt_out, nz, nx)`` in network units.
ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {"fno2d": FNO2d, "paper3d": FNO3d}


def default_args(arch: str, preset: Preset) -> dict[str, Any]:
    """Constructor arguments of ``arch`` for ``preset`` (see the modules for the reasons)."""
    if arch == "fno2d":
        big = preset.f_peak_hz > 4.0  # the paper's 8 Hz needs nearly every mode of the grid
        modes = 24 if big else 16
        modes = max(1, min(modes, (min(preset.grid.shape) + 1) // 2))
        return {"nt_out": preset.nt_out, "width": 64 if big else 32, "modes": modes,
                "n_layers": 4, "projection": 128, "norm": "none", "padding": 0.125}
    if arch == "paper3d":
        return {"nt_out": preset.nt_out, "width": 32, "modes": 20, "n_layers": 4,
                "projection": 128, "padding": 1 / 16}
    raise SeisfnoError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")


def build_model(arch: str, **args: Any) -> nn.Module:
    """An untrained network of architecture ``arch`` with constructor ``args``."""
    try:
        cls = ARCHITECTURES[arch]
    except KeyError:
        raise SeisfnoError(
            f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}") from None
    try:
        return cls(**args)
    except TypeError as e:
        raise SeisfnoError(f"bad arguments for architecture {arch!r}: {e}") from None


__all__ = ["ARCHITECTURES", "build_model", "default_args"]
