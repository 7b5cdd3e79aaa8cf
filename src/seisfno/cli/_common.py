"""Parsing helpers shared by the commands."""

from __future__ import annotations

import json
import sys

import numpy as np

from .._errors import SeisfnoError


def parse_xz(text: str, what: str = "source") -> tuple[float, float]:
    """``"X,Z"`` in metres to a tuple (a clear error otherwise)."""
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        x, z = (float(p) for p in parts)
    except ValueError:
        raise SeisfnoError(f"{what} must be 'X,Z' in metres, got {text!r}") from None
    if not (np.isfinite(x) and np.isfinite(z)):
        raise SeisfnoError(f"{what} must be finite, got {text!r}")
    return x, z


def parse_key_values(items: list[str] | None, what: str) -> dict:
    """``["width=48", "norm=group"]`` to ``{"width": 48, "norm": "group"}``.

    Values are read as JSON when they parse (numbers, booleans), as strings otherwise.
    """
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise SeisfnoError(f"{what} must be KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def emit_json(obj: dict) -> None:
    """One JSON object on stdout (machine-readable results)."""
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
