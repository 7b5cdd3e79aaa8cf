"""Trained models on disk: safetensors weights plus a JSON model card; never a pickle.

A model ``M`` is two files, ``M.safetensors`` (the network's tensors) and ``M.json`` (the card)::

    {"format": "seisfno-operator", "format_version": 2,
     "arch": "fno2d", "arch_args": {...},           # rebuilds the network
     "normalization": {...},                        # encoding.Normalization
     "preset": {...},                               # physics.Preset.to_dict()
     "data": {"path": ..., "seed": ..., "n_train": ..., "attrs": {...}},
     "training": {...}, "metrics": {"val_rel_l2": ...}, "seisfno_version": "0.1.0"}

:func:`load_model` accepts a run directory (``RUN/model.*``), a path to either file or its stem,
or the name of a shipped model (``src/seisfno/operator/pretrained/<name>.*``).

Format versions: 2 (since 2026-12-03) stores the 2-D spectral weights as real ``(k1, k2, cin,
2, cout)`` arrays (:func:`~.spectral.mix_layout`); 1 stored them complex ``(cin, cout, k1,
k2)``. Both are read (version 1 weights are converted on loading, exactly); what is saved is
version 2, which releases before 2026-12-03 refuse with a message naming the version.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._errors import SeisfnoError
from .._version import __version__
from ..physics import Grid, Preset
from .encoding import Normalization, decoded, encode_inputs
from .registry import build_model

FORMAT = "seisfno-operator"
FORMAT_VERSION = 2
#: Card versions :func:`read_card` accepts (see the module docstring).
READ_VERSIONS = (1, 2)
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


class OperatorModel(nn.Module):
    """A trained operator in physical units: velocity (m/s) and source (m) to wavefield.

    Parameters
    ----------
    net : nn.Module
        The network, ``(B, 4, nz, nx) -> (B, nt, nz, nx)`` in network units.
    norm : Normalization
    preset : Preset
        The setup the model was trained for (domain, frequency, output sampling).
    card : dict
        The model card (see the module docstring).
    """

    def __init__(self, net: nn.Module, norm: Normalization, preset: Preset, card: dict) -> None:
        super().__init__()
        self.net = net
        self.norm = norm
        self.preset = preset
        self.card = card

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def check_preset(self, preset: Preset) -> None:
        """Raise :class:`SeisfnoError` unless this model can serve ``preset``.

        The physical domain, wavelet, output sampling and decimation must match; the node count
        may differ (the operator is evaluated on any sampling of its domain).
        """
        p = self.preset
        problems = []
        if not p.grid.same_domain(preset.grid):
            problems.append(f"domain {preset.grid.depth_m:.0f} x {preset.grid.width_m:.0f} m "
                            f"(model: {p.grid.depth_m:.0f} x {p.grid.width_m:.0f} m)")
        for field in ("f_peak_hz", "dt_out_s", "nt_out", "decimation"):
            a, b = getattr(p, field), getattr(preset, field)
            if (a != b) if isinstance(a, str | int) else not np.isclose(a, b, rtol=1e-6):
                problems.append(f"{field} = {b} (model: {a})")
        if problems:
            raise SeisfnoError(f"model trained for preset {p.name!r} cannot serve this setup: "
                               + "; ".join(problems))

    def grid_for(self, shape: tuple[int, int], grid: Grid | None = None) -> Grid:
        """The grid of ``shape`` on the model's domain (checks a given ``grid``)."""
        if grid is not None:
            if not self.preset.grid.same_domain(grid):
                raise SeisfnoError(
                    f"grid spans {grid.depth_m:.0f} x {grid.width_m:.0f} m but the model was "
                    f"trained on {self.preset.grid.depth_m:.0f} x {self.preset.grid.width_m:.0f} m")
            if grid.shape != tuple(shape):
                raise SeisfnoError(f"velocity shape {tuple(shape)} != grid shape {grid.shape}")
            return grid
        return self.preset.grid.with_shape(*shape)

    def _check_velocity(self, v: torch.Tensor) -> None:
        vd = v.detach()
        if not torch.isfinite(vd).all():
            raise SeisfnoError("velocity contains NaN or infinite values")
        if (vd <= 0).any():
            raise SeisfnoError("velocity must be positive (m/s)")
        n = self.norm
        margin = max(3 * n.v_std_mps, 0.1 * (n.v_max_mps - n.v_min_mps))
        lo, hi = float(vd.min()), float(vd.max())
        if lo < n.v_min_mps - margin or hi > n.v_max_mps + margin:
            warnings.warn(
                f"velocities span [{lo:.0f}, {hi:.0f}] m/s, far outside the training range "
                f"[{n.v_min_mps:.0f}, {n.v_max_mps:.0f}] m/s: predictions are unreliable",
                UserWarning, stacklevel=3)

    def predict(self, velocity: torch.Tensor | np.ndarray, sources_xz_m, *,
                grid: Grid | None = None) -> torch.Tensor:
        """Wavefields for velocity models and sources, in physical units.

        Parameters
        ----------
        velocity : tensor or ndarray, shape (B, nz, nx) or (nz, nx), m/s
            Any node count on the model's domain (e.g. 64 or 128 per side).
        sources_xz_m : array, shape (B, 2) or (2,)
            Source positions ``(x, z)`` in metres from the top-left node.
        grid : Grid, optional
            The velocity's grid; checked to cover the model's domain.

        Returns
        -------
        tensor, shape (B, nt, nz, nx), on the model's device and dtype (float32 as loaded)
            Sample k at ``k * preset.dt_out_s``. Differentiable with respect to ``velocity``
            (the network runs in eval mode; gradients flow when the input requires them).
        """
        v = velocity if torch.is_tensor(velocity) else torch.as_tensor(np.asarray(velocity))
        if v.ndim == 2:
            v = v[None]
        if v.ndim != 3:
            raise SeisfnoError(f"velocity must be (B, nz, nx) or (nz, nx), got {tuple(v.shape)}")
        if not v.is_floating_point():
            v = v.float()
        g = self.grid_for(tuple(v.shape[-2:]), grid)
        src = g.check_sources(np.asarray(
            sources_xz_m.detach().cpu() if torch.is_tensor(sources_xz_m) else sources_xz_m,
            dtype=np.float64)).reshape(-1, 2)
        if src.shape[0] != v.shape[0]:
            if v.shape[0] == 1:
                v = v.expand(src.shape[0], *v.shape[1:])
            else:
                raise SeisfnoError(f"{v.shape[0]} velocity models but {src.shape[0]} sources")
        self._check_velocity(v)
        dtype = next(p.dtype for p in self.net.parameters() if not p.is_complex())
        v = v.to(self.device, dtype)
        if self.net.training:
            self.net.eval()
        x = encode_inputs(v, src, g, self.norm)
        return decoded(self.net, x, self.norm)

    forward = predict


def model_paths(path_or_name: str | os.PathLike) -> tuple[Path, Path]:
    """``(weights, card)`` paths for a run directory, a file, a stem or a shipped name.

    A path that exists wins over a shipped name: a directory must hold ``model.json`` (an
    error otherwise, even when a shipped model has its name); only a name that is no file,
    stem or directory here is looked up among the shipped models.
    """
    p = Path(path_or_name)
    if p.is_dir():
        if not (p / "model.json").is_file():
            shadow = (f"; it hides the shipped model {p.name!r}, which you can load as "
                      f"{str(PRETRAINED_DIR / p.name)!r}"
                      if (PRETRAINED_DIR / f"{p.name}.json").is_file() else "")
            raise SeisfnoError(f"{str(path_or_name)!r} is a directory without a model "
                               f"(no model.json in it){shadow}")
        p = p / "model"
    elif p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    weights, card = p.with_suffix(".safetensors"), p.with_suffix(".json")
    if not card.exists() and not weights.exists() and os.sep not in str(path_or_name):
        named = PRETRAINED_DIR / str(path_or_name)
        weights, card = named.with_suffix(".safetensors"), named.with_suffix(".json")
        if not card.exists():
            shipped = sorted(q.stem for q in PRETRAINED_DIR.glob("*.json"))
            raise SeisfnoError(f"no model at {path_or_name!r}: not a run directory or file, nor a "
                               f"shipped model (shipped: {shipped or 'none'})")
    return weights, card


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_tensors(path: Path, tensors: dict[str, torch.Tensor],
                 metadata: dict[str, str] | None = None,
                 dtype: torch.dtype | None = None) -> None:
    """Atomically write tensors as safetensors (complex tensors as real views).

    ``dtype`` (e.g. ``torch.float16``) stores floating-point values at lower precision to halve
    a shipped file; :func:`load_tensors` returns float32 again.
    """
    from safetensors.torch import save

    flat = {}
    for k, t in tensors.items():
        t = t.detach().cpu()
        r = torch.view_as_real(t) if t.is_complex() else t
        if dtype is not None and r.is_floating_point():
            r = r.to(dtype)
        flat[k + ("::complex" if t.is_complex() else "")] = r.contiguous()
    _atomic_write(Path(path), save(flat, metadata=metadata))


def load_tensors(path: Path, device=None) -> dict[str, torch.Tensor]:
    """Read tensors written by :func:`save_tensors` (a corrupt file -> SeisfnoError)."""
    from safetensors.torch import load

    try:
        flat = load(Path(path).read_bytes())
    except FileNotFoundError:
        raise SeisfnoError(f"weights file not found: {path}") from None
    except Exception as e:  # noqa: BLE001 - any parse failure means a corrupt file
        raise SeisfnoError(
            f"cannot read weights {path}: corrupt or not safetensors ({e})") from None
    out = {}
    for k, t in flat.items():
        if t.dtype in (torch.float16, torch.bfloat16):
            t = t.float()
        if k.endswith("::complex"):
            out[k[:-9]] = torch.view_as_complex(t.contiguous())
        else:
            out[k] = t
    return {k: v.to(device) if device is not None else v for k, v in out.items()}


def make_card(arch: str, arch_args: dict, norm: Normalization, preset: Preset, *,
              data: dict | None = None, training: dict | None = None,
              metrics: dict | None = None) -> dict[str, Any]:
    """A model card (see the module docstring)."""
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "arch": arch,
            "arch_args": dict(arch_args), "normalization": norm.to_dict(),
            "preset": preset.to_dict(), "data": data or {}, "training": training or {},
            "metrics": metrics or {}, "seisfno_version": __version__}


def save_model(path: str | os.PathLike, net: nn.Module, card: dict,
               dtype: torch.dtype | None = None) -> tuple[Path, Path]:
    """Write ``net``'s weights and ``card`` to ``path.safetensors`` and ``path.json``.

    ``path`` is a stem or a directory (then ``dir/model.*``); ``dtype`` stores the weights at
    that precision (``torch.float16`` for shipped models). Returns the two paths.
    """
    p = Path(path)
    if p.is_dir() or str(path).endswith(os.sep):
        p = p / "model"
    elif p.suffix in (".safetensors", ".json"):
        p = p.with_suffix("")
    p.parent.mkdir(parents=True, exist_ok=True)
    net = getattr(net, "module", net)
    net = getattr(net, "_orig_mod", net)
    weights, cardp = p.with_suffix(".safetensors"), p.with_suffix(".json")
    save_tensors(weights, net.state_dict(), {"format": FORMAT,
                                             "format_version": str(FORMAT_VERSION)}, dtype=dtype)
    card = {**card, "format_version": FORMAT_VERSION}  # what the weights are now, whatever card
    _atomic_write(cardp, (json.dumps(card, indent=2, sort_keys=False) + "\n").encode())
    return weights, cardp


def read_card(path: Path) -> dict:
    try:
        card = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SeisfnoError(f"model card not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SeisfnoError(f"model card {path} is corrupt: {e}") from None
    if not isinstance(card, dict) or card.get("format") != FORMAT:
        raise SeisfnoError(f"{path} is not a seisfno operator model card")
    if card.get("format_version") not in READ_VERSIONS:
        raise SeisfnoError(
            f"{path} has model format version {card.get('format_version')!r}; this seisfno "
            f"({__version__}) reads versions {', '.join(map(str, READ_VERSIONS))}")
    return card


def load_model(path_or_name: str | os.PathLike, device: str | torch.device | None = None
               ) -> OperatorModel:
    """Load a trained operator (weights + card) without unpickling anything.

    Parameters
    ----------
    path_or_name : str or path
        A run directory, ``model.safetensors``/``model.json`` or their stem, or a shipped name
        such as ``"quick"``.
    device : str or torch.device, optional
        Default CPU.

    Returns
    -------
    OperatorModel
        In eval mode; ``.predict(velocity, sources)`` gives physical wavefields.
    """
    weights, cardp = model_paths(path_or_name)
    card = read_card(cardp)
    try:
        norm = Normalization.from_dict(card["normalization"])
        preset = Preset.from_dict(card["preset"])
        arch, args = card["arch"], card["arch_args"]
    except (KeyError, TypeError) as e:
        raise SeisfnoError(f"model card {cardp} is incomplete: missing {e}") from None
    net = build_model(arch, **args)
    state = load_tensors(weights)
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise SeisfnoError(f"weights {weights} do not match the card's architecture: "
                           f"{str(e).splitlines()[0]}") from None
    model = OperatorModel(net, norm, preset, card)
    model.eval()
    return model.to(device or "cpu")


__all__ = ["FORMAT_VERSION", "OperatorModel", "load_model", "make_card", "model_paths",
           "read_card", "save_model"]
