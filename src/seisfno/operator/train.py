"""Training: relative-L2 loss, Adam with warm-up + cosine decay, per-epoch resumable checkpoints.

:func:`fit` trains on in-memory arrays (a GPU script can generate data and train without a
store); :func:`train` trains on a dataset store, loaded whole when memory allows or streamed
chunk by chunk with bounded memory (:func:`auto_in_memory`, :mod:`.train_data`). Under
``torchrun`` (``WORLD_SIZE > 1``) the loop runs data-parallel (DistributedDataParallel, each rank
its own share of every epoch; NCCL on CUDA, gloo on CPU); the batch size is global.

By default every training sample is transformed by a random symmetry of the square (flips and
transpose, ``augment="d4"``), which is exact for the wave equation on a square grid; the grid's
coordinate channels are not transformed, only the physical inputs and the target.

Run directory layout::

    RUN/metrics.jsonl                 one JSON line per epoch
    RUN/checkpoint/state.safetensors  model + optimizer tensors (atomic)
    RUN/checkpoint/state.json         counters, config, data fingerprint, normalization (atomic)
    RUN/model.safetensors, model.json the final model and its card

Rerunning the same command after an interruption resumes after the last finished epoch; the
per-epoch shuffles and transforms depend only on ``(seed, epoch)``, so a resumed run ends with the
same weights. A resume checks that the data and the run's settings are those of the checkpoint
(and refuses otherwise); a larger ``epochs`` continues training. The card is rewritten only when
the weights change.

The loop is :func:`_run_epochs`: each epoch trains (:func:`_train_epoch`), validates
(:func:`_validate`), asks the epoch rules (:class:`Divergence`, :class:`TimeBudget`) and records
(:func:`_record_epoch`).
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .._errors import SeisfnoError
from .._memory import keep_freed_memory
from .._progress import progress_bar, progress_enabled
from .._version import __version__
from ..physics import Preset
from .checkpoint import _atomic_write, load_tensors, make_card, save_model, save_tensors
from .encoding import Normalization, encode_inputs, encode_wavefield
from .registry import build_model, default_args
from .spectral import mix_layout
from .train_checks import CompiledForward, check_arch, check_resume, read_state
from .train_data import (
    ArraySource,
    StoreSource,
    augment_batch,
    augment_choices,
    resolve_augment,
    store_identity,
)

#: ``train`` loads a store whole (the fast path) when its training and validation data take at
#: most this many bytes, or at most ``IN_MEMORY_AUTO_FRACTION`` of the memory available, and
#: ``in_memory`` is not given; larger stores are streamed (:func:`auto_in_memory`).
IN_MEMORY_AUTO_BYTES = 512 * 2**20
IN_MEMORY_AUTO_FRACTION = 0.4
#: Where this process's cgroup shows its memory limit and use (Linux).
CGROUP_ROOT = Path("/sys/fs/cgroup")


def available_memory_bytes() -> int | None:
    """Memory this process may still use: ``psutil``'s available memory, capped by the limit of
    its cgroup (a container's or a batch job's; ``psutil`` reports the host's) less the cgroup's
    use; ``None`` when neither can be read."""
    found = []
    try:
        import psutil

        found.append(int(psutil.virtual_memory().available))
    except Exception:  # noqa: BLE001 - no reading is no number
        pass
    for limit, used in (("memory.max", "memory.current"),  # cgroup v2, then v1
                        ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            cap = (CGROUP_ROOT / limit).read_text().strip()
            if cap != "max" and int(cap) < 2**60:  # v1 writes "no limit" as a huge number
                found.append(max(0, int(cap) - int((CGROUP_ROOT / used).read_text())))
        except (OSError, ValueError):
            continue
    return min(found) if found else None


def auto_in_memory(nbytes: int, out_dir: str | os.PathLike) -> bool:
    """Whether ``train`` loads ``nbytes`` of training data whole when not told.

    Up to ``IN_MEMORY_AUTO_FRACTION`` (40 %) of :func:`available_memory_bytes`, and at least
    ``IN_MEMORY_AUTO_BYTES`` (512 MiB). Why: streaming reads and decompresses every sample each
    epoch, in a thread that shares the cores with training; on two cores a streamed ``paper``
    epoch took 10-20 % longer than one from memory (issue 12, BENCHMARKS.md).

    Two cases keep a fixed answer, because the two sources draw batches in different orders: a
    resumed run keeps its checkpoint's mode (so that it ends with the same weights; a checkpoint
    that did not record it, the 512 MiB rule it was made under), and under ``torchrun``
    (``WORLD_SIZE > 1``) every rank decides by the fixed 512 MiB, as free memory could differ
    between ranks and the two sources run different collectives.
    """
    prev = read_state(Path(out_dir) / "checkpoint")
    if prev is not None:
        mode = _data_mode(prev)
        return mode == "memory" if mode else nbytes <= IN_MEMORY_AUTO_BYTES
    if int(os.environ.get("WORLD_SIZE") or 1) > 1:
        return nbytes <= IN_MEMORY_AUTO_BYTES
    avail = available_memory_bytes() or 0
    return nbytes <= max(IN_MEMORY_AUTO_BYTES, int(IN_MEMORY_AUTO_FRACTION * avail))


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the card and the checkpoint).

    ``augment`` is ``"d4"`` (a random symmetry of the square per sample and epoch), ``"none"``,
    or ``None``: ``"d4"`` where the grid is square with equal spacing, ``"none"`` otherwise.
    """

    arch: str = "fno2d"
    arch_args: dict = field(default_factory=dict)
    epochs: int | None = None
    time_budget_min: float | None = None
    batch_size: int = 16
    lr: float = 3e-3
    weight_decay: float = 1e-4
    warmup_frac: float = 0.03
    loss: str = "rel_l2"
    n_val: int = 200
    n_train: int | None = None
    seed: int = 0
    amp: str = "auto"
    compile: str = "auto"
    augment: str | None = None


@dataclass
class TrainResult:
    """What :func:`fit` returns."""

    out_dir: Path
    epochs_run: int
    val_rel_l2: float
    train_rel_l2: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def rel_l2(pred: torch.Tensor, true: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """Relative L2 error per sample over all other axes, shape ``(B,)``."""
    d = (pred.float() - true.float()).flatten(1).norm(dim=1)
    return d / true.float().flatten(1).norm(dim=1).clamp_min(eps)


def _loss(pred: torch.Tensor, true: torch.Tensor, kind: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The training loss and the per-sample relative L2 (detached) for the epoch's error: with
    ``rel_l2`` the loss's own terms, not a second pass over the batch."""
    if kind == "rel_l2":
        per = rel_l2(pred, true)
        return per.mean(), per.detach()
    if kind == "mse":
        with torch.no_grad():
            per = rel_l2(pred, true)
        return torch.mean((pred.float() - true.float()) ** 2), per
    raise SeisfnoError(f"loss must be 'rel_l2' or 'mse', got {kind!r}")


def lr_factor(step: int, total: int, warmup: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 1 % at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * p))


# --------------------------------------------------------------------------- distributed
def _dist_setup(device: str | None) -> tuple[int, int, torch.device]:
    """(rank, world, device); initializes the process group under torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
        dist.init_process_group(backend)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    return rank, world, dev


def _all_sum(x: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        x = x.clone()
        dist.all_reduce(x)
    return x


def make_optimizer(net: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW over ``net``'s parameters: the fused implementation where it applies.

    Fused (one kernel per parameter) whenever every parameter is real and on the CPU or a CUDA
    device, as in :class:`~.fno2d.FNO2d` since its spectral weights became real (issue 12):
    for the ``quick`` FNO's 4.1 M parameters a step took 2.7 ms against 12.5 ms multi-tensor
    (``foreach``) and 6.6 ms single-tensor, for the ``paper`` one's 9.3 M 5.8 against 29 and
    39 ms (AVX2 kernels, 2 threads, 2026-12-03). The same arithmetic to round-off (a few
    1e-7 relative; tested). Otherwise (complex weights: ``paper3d``) the multi-tensor loop: on a
    CPU whose cores are shared (a streaming run's reader thread, another job) the single-tensor
    one waits on each of its ~10 small parallel kernels per parameter (328 ms against 25 ms a
    step, 2026-12-02).
    """
    params = list(net.parameters())
    if all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params):
        try:
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=True)
        except RuntimeError:  # torch < 2.4 has no fused AdamW on the CPU
            pass
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, foreach=True)


# --------------------------------------------------------------------------- checkpoints
def _save_state(ckpt: Path, net: nn.Module, opt: torch.optim.Optimizer, counters: dict) -> None:
    ckpt.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v for k, v in net.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for k, v in st.items():
            tensors[f"opt.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    save_tensors(ckpt / "state.safetensors", tensors, {"epoch": str(counters["epoch"])})
    _atomic_write(ckpt / "state.json", (json.dumps(counters, indent=1) + "\n").encode())


def _load_state(ckpt: Path, net: nn.Module, opt: torch.optim.Optimizer, dev) -> dict:
    counters = json.loads((ckpt / "state.json").read_text())
    tensors = load_tensors(ckpt / "state.safetensors", dev)
    net.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    sd = opt.state_dict()
    params = [p for g in opt.param_groups for p in g["params"]]
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            if v.is_complex() and not params[int(i)].is_complex():
                v = mix_layout(v)  # a checkpoint of format 1: complex spectral weights
            state.setdefault(int(i), {})[name] = v.cpu() if name == "step" else v
    sd["state"] = state
    opt.load_state_dict(sd)
    return counters


# --------------------------------------------------------------------------- one run
@dataclass
class _Run:
    """The state of one training run, shared by the loop's pieces."""

    cfg: TrainConfig
    source: Any
    preset: Preset
    out: Path
    rank: int
    world: int
    dev: torch.device
    net: nn.Module
    opt: torch.optim.Optimizer
    counters: dict
    norm: Normalization | None = None
    fwd: CompiledForward | None = None
    bs: int = 1
    notes: dict = field(default_factory=dict)

    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint"

    def encode(self, v, s, u) -> tuple[torch.Tensor, torch.Tensor]:
        x = encode_inputs(v.to(self.dev, non_blocking=True), s, self.preset.grid, self.norm)
        return x, encode_wavefield(u.to(self.dev, non_blocking=True), self.norm)


def _start(source, preset: Preset, out: Path, cfg: TrainConfig, device: str | None) -> _Run:
    """Build the model and optimizer, and resume the checkpoint in ``out`` if there is one."""
    rank, world, dev = _dist_setup(device)
    requested_epochs = cfg.epochs
    if cfg.epochs is None:
        cfg.epochs = 10_000 if cfg.time_budget_min else 50
    cfg.arch_args = {**default_args(cfg.arch, preset), **cfg.arch_args}
    check_arch(cfg.arch, cfg.arch_args)
    cfg.augment, note = resolve_augment(cfg.augment, preset.grid)
    data = source.fingerprint()
    torch.manual_seed(cfg.seed)
    net = build_model(cfg.arch, **cfg.arch_args).to(dev)
    opt = make_optimizer(net, cfg.lr, cfg.weight_decay)
    counters = {"epoch": 0, "step": 0, "epochs_total": cfg.epochs, "seconds": 0.0,
                "config": asdict(cfg), "best_val_rel_l2": None, "data": data}
    run = _Run(cfg, source, preset, out, rank, world, dev, net, opt, counters)
    if note:
        run.notes["augment_note"] = note
    prev = read_state(run.ckpt)
    if prev is not None:
        check_resume(prev, cfg, data, out)
        run.counters = _load_state(run.ckpt, net, opt, dev)
        _continue(run, requested_epochs)
    return run


def _continue(run: _Run, requested_epochs: int | None) -> None:
    """A resumed run keeps its settings; a larger ``epochs`` stretches its schedule to that."""
    c, cfg = run.counters, run.cfg
    stored = TrainConfig(**{**asdict(cfg), **c["config"]})
    stored.amp, stored.compile = cfg.amp, cfg.compile
    # Stretched only past the stored cap: a budgeted run ends below its cap, and a rerun with the
    # same arguments resumes it, finished or not, as it was. A stretched budgeted run fits its
    # count to the (new) budget again.
    if requested_epochs is not None and requested_epochs > max(stored.epochs,
                                                               c["epochs_total"]):
        c["epochs_total"] = requested_epochs
        stored.epochs, stored.time_budget_min = requested_epochs, cfg.time_budget_min
        c["budget_fixed"] = False
    c["config"] = asdict(stored)
    run.cfg = stored
    run.notes.update(c.get("notes", {}))


def _prepare(run: _Run, progress: bool) -> None:
    """Normalization (stored on resume), data placement, parallel wrapper and forward."""
    c = run.counters
    if c.get("normalization"):
        run.norm = Normalization.from_dict(c["normalization"])
    else:
        run.norm = run.source.normalization(run.rank, run.world)
        c["normalization"] = run.norm.to_dict()
    c["notes"] = run.notes
    c["data_mode"] = run.source.mode  # a resume loads or streams alike (auto_in_memory)
    run.source.to(run.dev)
    if run.rank == 0:
        run.out.mkdir(parents=True, exist_ok=True)
    model: nn.Module = run.net
    if run.world > 1 and run.dev.type == "cuda":
        # paper3d's BatchNorm: statistics over the global batch, as on one device (CUDA only;
        # the replaced modules keep their parameter and buffer names, so checkpoints match).
        run.net = nn.SyncBatchNorm.convert_sync_batchnorm(run.net)
        model = run.net
    if run.world > 1:
        model = nn.parallel.DistributedDataParallel(
            run.net, device_ids=[run.dev.index] if run.dev.type == "cuda" else None)
    run.fwd = CompiledForward(model, run.dev, run.cfg, run.rank)
    run.bs = max(1, math.ceil(run.cfg.batch_size / run.world))


# --------------------------------------------------------------------------- the loop
def _train_epoch(run: _Run, epoch: int, budgeted: bool) -> float:
    """One epoch of optimizer steps; returns the mean training relative L2 (all ranks)."""
    cfg, c, opt = run.cfg, run.counters, run.opt
    steps = run.source.steps(run.bs, run.world)
    total_steps = c["epochs_total"] * steps
    warmup = max(1, int(cfg.warmup_frac * total_steps)) if not budgeted else \
        max(1, min(steps, int(cfg.warmup_frac * total_steps)))
    ks = augment_choices(cfg.seed, epoch, run.source.n_train) if cfg.augment == "d4" else None
    err = torch.zeros(2, dtype=torch.float64, device=run.dev)
    for v, s, u, idx in run.source.train_batches(epoch, run.bs, cfg.seed, run.rank, run.world):
        f = lr_factor(c["step"], total_steps, warmup)
        for g in opt.param_groups:
            g["lr"] = cfg.lr * f
        if ks is not None:
            v, s, u = augment_batch(v, s, u, ks[idx], run.preset.grid)
        x, y = run.encode(v, s, u)
        pred = run.fwd(x)
        loss, per_sample = _loss(pred, y, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        err[0] += per_sample.sum().double()
        err[1] += len(y)
        c["step"] += 1
    err = _all_sum(err, run.world)
    return float(err[0] / err[1])


def _validate(run: _Run) -> float:
    """Mean relative L2 over the validation samples (all ranks)."""
    run.net.eval()
    tot = torch.zeros(2, dtype=torch.float64, device=run.dev)
    with torch.no_grad():
        for v, s, u, _ in run.source.val_batches(max(run.bs, 8), run.rank, run.world):
            x, y = run.encode(v, s, u)
            pred = run.fwd(x)
            tot += torch.stack([rel_l2(pred, y).sum().double(),
                                torch.tensor(float(len(y)), device=run.dev, dtype=torch.float64)])
    run.net.train()
    tot = _all_sum(tot, run.world)
    return float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")


class Divergence:
    """Epoch rule: stop with an error when the training error is not finite."""

    def after_epoch(self, run: _Run, epoch: int, train_err: float, t0: float) -> None:
        if not math.isfinite(train_err):
            raise SeisfnoError(f"training diverged at epoch {epoch + 1} (lower --lr)")


class TimeBudget:
    """Epoch rule: fit the epoch count into ``minutes`` at the latest epochs' cost.

    The first epoch includes compilation and warm-up, so the count is fitted after each of the
    first two (the cosine schedule is stretched early, where it is flat) and then kept while the
    run stays on time. When a slower machine (load, thermal drift) would carry the kept count past
    the budget by more than half an epoch, the count is cut to what still fits at the cost of the
    last two epochs (the faster of them: a single epoch less than half an epoch late cuts
    nothing); the schedule's decay then ends at the new last epoch. After the second epoch a count
    is only ever cut, never stretched, so a steady or faster machine runs the steps fixed then.

    An epoch's cost is the run's clock from one epoch's end to the next, its validation,
    checkpoint and metrics included (the first epoch of a run: its own time).
    """

    def __init__(self, minutes: float, max_epochs: int) -> None:
        self.seconds, self.max_epochs = minutes * 60, max_epochs

    def after_epoch(self, run: _Run, epoch: int, train_err: float, t0: float) -> None:
        c = run.counters
        clock = c.get("budget_clock")
        own = c["seconds"] - clock if clock is not None else time.perf_counter() - t0
        c["budget_clock"] = c["seconds"]
        # The slowest rank's cost and clock, so that every rank sets the same count.
        now = torch.tensor([own, c["seconds"]], device=run.dev, dtype=torch.float64)
        if run.world > 1:
            dist.all_reduce(now, op=dist.ReduceOp.MAX)
        cost, spent = max(float(now[0]), 1e-6), float(now[1])
        previous, c["epoch_seconds"] = c.get("epoch_seconds"), cost
        left = max(self.seconds - spent, 0.0)
        if not c.get("budget_fixed"):
            more = int(left // cost)
            c["epochs_total"] = max(epoch + 1, min(self.max_epochs, epoch + 1 + more))
            c["budget_fixed"] = epoch >= 1
            return
        if previous is None:  # resumed from a checkpoint older than the cuts: warm-up included
            return
        cost = min(cost, previous)
        remaining = c["epochs_total"] - (epoch + 1)
        if remaining > 0 and remaining * cost > left + 0.5 * cost:
            c["epochs_total"] = epoch + 1 + int(left // cost)
            c["budget_cuts"] = c.get("budget_cuts", 0) + 1


def _record_epoch(run: _Run, rec: dict, bar) -> None:
    """Metrics line, checkpoint (rank 0) and progress after an epoch."""
    c = run.counters
    best = c["best_val_rel_l2"]
    c["best_val_rel_l2"] = rec["val_rel_l2"] if best is None or rec["val_rel_l2"] < best else best
    c["last"] = rec
    if run.rank == 0:
        with open(run.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        _save_state(run.ckpt, run.net, run.opt, c)
        bar.total = c["epochs_total"]
        bar.set_postfix(train=f"{rec['train_rel_l2']:.3f}", val=f"{rec['val_rel_l2']:.3f}")
        bar.update(1)
    if run.world > 1:
        dist.barrier()


def _run_epochs(run: _Run, progress: bool) -> list[dict]:
    """Train until the epoch count (which the rules may change) is reached; the history."""
    c, cfg = run.counters, run.cfg
    rules: list = [Divergence()]
    if cfg.time_budget_min:
        rules.append(TimeBudget(cfg.time_budget_min, cfg.epochs))
    bar = progress_bar(c["epochs_total"], initial=c["epoch"], unit="epoch",
                       progress=progress and run.rank == 0)
    history: list[dict] = []
    t_run = time.perf_counter() - c["seconds"]
    run.net.train()
    try:
        while c["epoch"] < c["epochs_total"]:
            epoch, t0 = c["epoch"], time.perf_counter()
            train_err = _train_epoch(run, epoch, budgeted=bool(cfg.time_budget_min))
            rules[0].after_epoch(run, epoch, train_err, t0)
            val = _validate(run)
            c["epoch"] = epoch + 1
            c["seconds"] = time.perf_counter() - t_run
            for rule in rules[1:]:
                rule.after_epoch(run, epoch, train_err, t0)
            rec = {"epoch": epoch + 1, "train_rel_l2": train_err, "val_rel_l2": val,
                   "lr": run.opt.param_groups[0]["lr"],
                   "seconds": round(time.perf_counter() - t0, 3)}
            history.append(rec)
            _record_epoch(run, rec, bar)
    finally:
        bar.close()
    return history


def _finish(run: _Run, history: list[dict], data_info: dict) -> TrainResult:
    """Write the model and its card when the weights changed (or none were written yet)."""
    c, cfg = run.counters, run.cfg
    last = history[-1] if history else c.get("last", {})
    val = last.get("val_rel_l2", float("nan"))
    train_err = last.get("train_rel_l2", float("nan"))
    result = TrainResult(run.out, c["epoch"], val, train_err, c["seconds"], history)
    written = (run.out / "model.json").exists() and (run.out / "model.safetensors").exists()
    if not history and written:  # nothing trained now: the card stays as it is
        return result
    notes = {**run.notes, **({"compile_fallback": run.fwd.fallback} if run.fwd.fallback else {}),
             **({"time_budget_cuts": c["budget_cuts"]} if c.get("budget_cuts") else {})}
    n_train, n_val = run.source.n_train, run.source.n_val
    card = make_card(cfg.arch, cfg.arch_args, run.norm, run.preset,
                     data=data_info,
                     training={**asdict(cfg), "epochs_run": c["epoch"],
                               "n_train": int(n_train), "n_val": int(n_val),
                               "world_size": run.world, "device": str(run.dev),
                               "seconds": round(c["seconds"], 2),
                               "data_mode": run.source.mode, **notes},
                     metrics={"val_rel_l2": val, "train_rel_l2": train_err})
    if run.rank == 0:
        save_model(run.out / "model", run.net, card)
    if run.world > 1:
        dist.barrier()
    return result


def _fit_source(source, preset: Preset, out_dir, cfg: TrainConfig, data_info: dict | None,
                device: str | None, progress: bool) -> TrainResult:
    keep_freed_memory()  # every step reuses the last one's memory (seisfno._memory)
    run = _start(source, preset, Path(out_dir), cfg, device)
    _prepare(run, progress)
    history = _run_epochs(run, progress)
    return _finish(run, history, data_info or {})


def _split(n: int, n_val: int, n_train: int | None) -> tuple[int, int]:
    n_val = min(n_val, n - 1)
    n_tr = n - n_val if n_train is None else min(n_train, n - n_val)
    if n_tr < 1:
        raise SeisfnoError(f"{n} samples leave none for training after {n_val} for validation")
    return n_tr, n_val


def fit(velocity, sources_xz_m, wavefield, preset: Preset, out_dir: str | os.PathLike, *,
        config: TrainConfig | None = None, data_info: dict | None = None,
        device: str | None = None, progress: bool = True, **overrides: Any) -> TrainResult:
    """Train an operator on in-memory arrays and write the run directory.

    Parameters
    ----------
    velocity : array, shape (n, nz, nx), m/s
    sources_xz_m : array, shape (n, 2), metres
    wavefield : array, shape (n, nt, nz, nx)
        On ``preset``'s grid and output sampling. The last ``config.n_val`` samples are held out
        for validation (as in the paper); training uses the first ``n_train`` of the rest.
    preset : Preset
    out_dir : path
        The run directory; an existing checkpoint there is resumed (same data and settings).
    config : TrainConfig, optional
        ``overrides`` replace its fields (``epochs=3``, ``lr=1e-3``, ``augment="none"``, ...).
    data_info : dict, optional
        Provenance for the card (store path, seed, attrs).
    device : str, optional
        Default CUDA when available.

    Returns
    -------
    TrainResult
    """
    cfg = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    v = velocity if torch.is_tensor(velocity) else np.asarray(velocity)
    u = wavefield if torch.is_tensor(wavefield) else np.asarray(wavefield)
    s = np.asarray(sources_xz_m, np.float64)
    n = v.shape[0]
    if u.shape[0] != n or s.shape != (n, 2) or tuple(v.shape[1:]) != preset.grid.shape \
            or tuple(u.shape[1:]) != (preset.nt_out, *preset.grid.shape):
        raise SeisfnoError(
            f"training arrays do not match the preset: velocity {tuple(v.shape)}, sources "
            f"{s.shape}, wavefield {tuple(u.shape)}; expected (n, {preset.grid.nz}, "
            f"{preset.grid.nx}) and (n, {preset.nt_out}, {preset.grid.nz}, {preset.grid.nx})")
    n_train, n_val = _split(n, cfg.n_val, cfg.n_train)
    source = ArraySource(v, s, u, preset, n_train, n_val, info=data_info)
    return _fit_source(source, preset, out_dir, cfg, data_info, device, progress)


def train(data_path: str | os.PathLike, out_dir: str | os.PathLike, *, arch: str = "fno2d",
          epochs: int | None = None, time_budget_min: float | None = None, batch_size: int = 16,
          lr: float = 3e-3, loss: str = "rel_l2", n_val: int = 200, n_train: int | None = None,
          device: str | None = None, amp: str = "auto", compile: str = "auto", seed: int = 0,
          num_workers: int = 0, progress: bool = True, arch_args: dict | None = None,
          augment: str | None = None, in_memory: bool | None = None) -> TrainResult:
    """Train an operator on a dataset store (see :func:`fit` for the loop and outputs).

    Parameters
    ----------
    data_path : path
        A store written by :func:`seisfno.data.generate_dataset`.
    out_dir : path
        Run directory (resumed if it holds a checkpoint of the same data and settings).
    arch : {"fno2d", "paper3d"}
    epochs, time_budget_min : int, float, optional
        Stop after ``epochs`` or fit the schedule into ``time_budget_min`` minutes (both: the
        first reached). On a resumed run a larger ``epochs`` continues training.
    batch_size, lr, loss, n_val, n_train, seed : training configuration.
    device : str, optional
        Default CUDA when available.
    amp, compile : {"auto", "on", "off"}
        bf16 autocast and ``torch.compile``; ``auto`` enables both on CUDA only.
    num_workers : int
        Ignored: streaming reads ahead in one background thread.
    augment : {"d4", "none"}, optional
        Default ``"d4"`` on a square grid, ``"none"`` otherwise (see :class:`TrainConfig`).
    in_memory : bool, optional
        ``True`` loads the training and validation samples whole (fastest; needs their size in
        RAM), ``False`` streams them chunk by chunk (memory bounded by a few chunks). Default:
        whole when they take at most 40 % of the memory available, at least 512 MiB; a resumed
        run as before; under ``torchrun`` up to 512 MiB (:func:`auto_in_memory`). Said on
        stderr when a bar would be drawn.
    """
    from ..data import open_store

    store = open_store(data_path)
    if not getattr(store, "complete", True):
        raise SeisfnoError(f"{data_path} is incomplete; finish generating it first")
    cfg = TrainConfig(arch=arch, arch_args=dict(arch_args or {}), epochs=epochs,
                      time_budget_min=time_budget_min, batch_size=batch_size, lr=lr, loss=loss,
                      n_val=n_val, n_train=None, seed=seed, amp=amp, compile=compile,
                      augment=augment)
    check_arch(arch, {**default_args(arch, store.preset), **cfg.arch_args})
    resolve_augment(augment, store.preset.grid)
    n = store.n_samples
    n_tr, n_val_ = _split(n, n_val, n_train)
    cfg.n_val = n_val_
    attrs = getattr(store, "attrs", {}) or {}
    info = {"path": str(Path(data_path).resolve()), "seed": attrs.get("seed"),
            "n_samples": int(n), "n_train": int(n_tr), "attrs": _jsonable(attrs),
            "store_identity": store_identity(attrs), "seisfno_version": __version__}
    nbytes = (n_tr + n_val_) * 4 * store.preset.grid.nz * store.preset.grid.nx * (
        1 + store.preset.nt_out)
    if in_memory is None:
        in_memory = auto_in_memory(nbytes, out_dir)
        if progress_enabled(progress):
            print(f"seisfno: {nbytes / 2**20:.0f} MiB of training data: "
                  + ("loading it whole (--streaming to stream it)" if in_memory else
                     "streaming it chunk by chunk (--in-memory to load it whole)"),
                  file=sys.stderr, flush=True)
    else:
        _warn_mode_change(bool(in_memory), out_dir)
    if in_memory:
        v, s, u = store.load(np.r_[np.arange(n_tr), np.arange(n - n_val_, n)])
        source = ArraySource(v, s, u, store.preset, n_tr, n_val_, info=info)
    else:
        source = StoreSource(store.path, n_tr, n_val_, info=info)
    return _fit_source(source, store.preset, out_dir, cfg, info, device, progress)


def _data_mode(state: dict | None) -> str | None:
    """How a checkpoint's run read its data (``"memory"`` or ``"stream"``), or ``None`` where
    it did not record it (checkpoints before 2026-12-03) or there is no checkpoint."""
    mode = (state or {}).get("data_mode")
    return mode if mode in ("memory", "stream") else None


def _warn_mode_change(in_memory: bool, out_dir: str | os.PathLike) -> None:
    """Warn when a resumed run is told to read its data the other way than its checkpoint did:
    the two draw batches in different orders, so it no longer ends with the weights of an
    uninterrupted run (allowed: a resume on a smaller machine may need to stream)."""
    mode = _data_mode(read_state(Path(out_dir) / "checkpoint"))
    if mode and (mode == "memory") != in_memory:
        how = {True: "loaded whole", False: "streamed"}
        warnings.warn(f"{out_dir} was trained with its data {how[not in_memory]} and resumes "
                      f"with them {how[in_memory]}: "
                      "the batches come in another order from here on, so the weights will "
                      "differ from an uninterrupted run's (omit --in-memory/--streaming to "
                      "keep the checkpoint's choice)", UserWarning, stacklevel=3)


def _jsonable(d: Any) -> Any:
    try:
        return json.loads(json.dumps(d, default=str))
    except (TypeError, ValueError):
        return str(d)


__all__ = ["Divergence", "IN_MEMORY_AUTO_BYTES", "IN_MEMORY_AUTO_FRACTION", "TimeBudget",
           "TrainConfig", "TrainResult", "auto_in_memory", "available_memory_bytes",
           "check_arch", "check_resume", "fit", "lr_factor", "rel_l2", "train"]
