"""What training checks before and while it runs: resumable checkpoints, architecture
arguments, and the compiled forward's fallback.

* :func:`check_resume`: a checkpoint is resumed only with the data and settings it was made with;
* :func:`check_arch`: architecture arguments are validated before any data are read;
* :class:`CompiledForward`: ``torch.compile`` falls back to eager on a compilation error only
  (said on stderr); out-of-memory and other errors propagate as what they are.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import torch
from torch import nn

from .._errors import SeisfnoError
from .registry import ARCHITECTURES, build_model

#: Settings a resumed run must share with its checkpoint (besides the data).
RUN_KEYS = ("arch", "arch_args", "batch_size", "lr", "weight_decay", "warmup_frac", "loss",
            "seed", "augment")


def read_state(ckpt: Path) -> dict | None:
    try:
        return json.loads((ckpt / "state.json").read_text())
    except FileNotFoundError:
        return None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SeisfnoError(f"checkpoint {ckpt / 'state.json'} is corrupt: {e}") from None


def _differences(prev: dict, now: dict, keys) -> list[str]:
    return [f"{k}: {prev[k]!r} in the checkpoint, {now.get(k)!r} now"
            for k in keys if k in prev and json.loads(json.dumps(now.get(k))) != prev[k]]


def check_resume(prev: dict, cfg, data: dict, out: Path) -> None:
    """Raise unless a checkpoint's state ``prev`` was made by the same data and settings.

    ``cfg`` is the run's :class:`~.train.TrainConfig`; ``data`` its data fingerprint
    (:meth:`~.train_data.ArraySource.fingerprint`: preset, grid, store identity and seed, sample
    split, a hash of the sources). The settings compared are the architecture and everything that
    shapes the optimization (``RUN_KEYS``); the epoch count, time budget, device, AMP and
    compilation may differ.
    """
    if "data" not in prev:  # written before runs recorded their data: nothing to check against
        raise SeisfnoError(
            f"{out} holds a checkpoint from an earlier seisfno that did not record its training "
            "data, so resuming could decode its weights with another set's statistics; "
            "choose a new --out")
    old_cfg = {"augment": "none", **prev.get("config", {})}  # runs before augmentation existed
    data_diffs = _differences(prev.get("data", {}), data, data)
    diffs = data_diffs + _differences(old_cfg, asdict(cfg), RUN_KEYS)
    if diffs:
        what = "data" if data_diffs else "settings"
        raise SeisfnoError(
            f"{out} holds a run trained with other {what} ({'; '.join(diffs[:3])}); rerun with "
            "the same data and settings to resume it, or choose a new --out")


# --------------------------------------------------------------------------- model and forward
def check_arch(arch: str, args: dict) -> None:
    """Raise :class:`SeisfnoError` unless ``args`` are valid constructor arguments of ``arch``.

    Unknown keys, wrong types, non-positive sizes and values the network rejects (e.g.
    ``norm="bogus"``) are reported; the network is built on the meta device (no memory).
    """
    import inspect

    if arch not in ARCHITECTURES:
        raise SeisfnoError(f"unknown architecture {arch!r}; choose one of {sorted(ARCHITECTURES)}")
    params = inspect.signature(ARCHITECTURES[arch]).parameters
    unknown = sorted(set(args) - set(params))
    if unknown:
        raise SeisfnoError(f"unknown argument(s) {', '.join(unknown)} for architecture {arch!r}; "
                           f"it takes {', '.join(sorted(params))}")
    for k, val in args.items():
        d = params[k].default
        if isinstance(d, int) and not isinstance(d, bool):
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise SeisfnoError(f"{arch} argument {k} must be a positive integer, got {val!r}")
        elif isinstance(d, float):
            if isinstance(val, bool) or not isinstance(val, int | float) or not \
                    (math.isfinite(val) and val >= 0):
                raise SeisfnoError(f"{arch} argument {k} must be a number >= 0, got {val!r}")
        elif isinstance(d, str) and not isinstance(val, str):
            raise SeisfnoError(f"{arch} argument {k} must be a string, got {val!r}")
    try:
        with torch.device("meta"):
            build_model(arch, **args)
    except SeisfnoError:
        raise
    except (TypeError, ValueError) as e:
        raise SeisfnoError(f"bad argument for architecture {arch!r}: {e}") from None


def _compile_error(e: BaseException) -> bool:
    """True when ``e`` is a failure to compile (not out-of-memory or an error of the model)."""
    chain, seen = [e], set()
    while chain:
        x = chain.pop()
        if x is None or id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, torch.OutOfMemoryError | MemoryError):
            return False
        chain += [x.__cause__, x.__context__, getattr(x, "inner_exception", None)]
    kinds: list[type] = []
    try:
        from torch._dynamo.exc import TorchDynamoException

        kinds.append(TorchDynamoException)
        from torch._inductor.exc import InductorError

        kinds.append(InductorError)
    except ImportError:  # pragma: no cover - other torch versions
        pass
    return isinstance(e, tuple(kinds))


class CompiledForward:
    """The model's forward under autocast, compiled when asked; eager after a compile failure.

    Only a compilation error falls back to eager (said once on stderr and in the card);
    out-of-memory and any other error propagate as what they are.
    """

    def __init__(self, model: nn.Module, dev: torch.device, cfg, rank: int) -> None:
        self.model, self.dev, self.rank = model, dev, rank
        self.use_amp = dev.type == "cuda" and cfg.amp in ("auto", "bf16", "on", "true")
        want = cfg.compile in ("on", "true") or (cfg.compile == "auto" and dev.type == "cuda")
        self.compiled = torch.compile(model) if want else None
        self.fallback: str | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.dev.type, dtype=torch.bfloat16, enabled=self.use_amp):
            if self.compiled is None:
                return self.model(x)
            try:
                return self.compiled(x)
            except Exception as e:
                if not _compile_error(e):
                    raise
                first = (str(e).strip().splitlines() or [""])[0][:200]
                self.fallback = f"torch.compile failed ({type(e).__name__}: {first})"
                if self.rank == 0:
                    print(f"seisfno: {self.fallback}; training continues without compilation",
                          file=sys.stderr, flush=True)
                self.compiled = None
                return self.model(x)


__all__ = ["CompiledForward", "RUN_KEYS", "check_arch", "check_resume", "read_state"]
