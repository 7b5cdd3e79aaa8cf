"""Training: relative-L2 loss, Adam with warm-up + cosine decay, per-epoch resumable checkpoints.

:func:`fit` is the core loop on in-memory arrays (a GPU script can generate data and train without
a store); :func:`train` opens a dataset store and calls it. Under ``torchrun`` (``WORLD_SIZE > 1``)
the loop runs data-parallel (DistributedDataParallel, DistributedSampler; NCCL on CUDA, gloo on
CPU); the batch size is global.

Run directory layout::

    RUN/metrics.jsonl                 one JSON line per epoch
    RUN/checkpoint/state.safetensors  model + optimizer tensors (atomic)
    RUN/checkpoint/state.json         counters and config (atomic, written after the tensors)
    RUN/model.safetensors, model.json the final model and its card

Rerunning the same command after an interruption resumes after the last finished epoch; the
per-epoch shuffles depend only on ``(seed, epoch)``, so a resumed run ends with the same weights.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .._errors import SeisfnoError
from .._version import __version__
from ..physics import Preset
from .checkpoint import _atomic_write, load_tensors, make_card, save_model, save_tensors
from .encoding import Normalization, encode_inputs, encode_wavefield
from .registry import build_model, default_args


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the card and the checkpoint)."""

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


def _loss(pred: torch.Tensor, true: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "rel_l2":
        return rel_l2(pred, true).mean()
    if kind == "mse":
        return torch.mean((pred.float() - true.float()) ** 2)
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
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, i, name = k.split(".", 2)
            state.setdefault(int(i), {})[name] = v.cpu() if name == "step" else v
    sd["state"] = state
    opt.load_state_dict(sd)
    return counters


# --------------------------------------------------------------------------- the loop
def _as_tensor(a) -> torch.Tensor:
    return a if torch.is_tensor(a) else torch.from_numpy(np.ascontiguousarray(a))


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
        The run directory; an existing checkpoint there is resumed.
    config : TrainConfig, optional
        ``overrides`` replace its fields (``epochs=3``, ``lr=1e-3``, ...).
    data_info : dict, optional
        Provenance for the card (store path, seed, attrs).
    device : str, optional
        Default CUDA when available.

    Returns
    -------
    TrainResult
    """
    cfg = TrainConfig(**{**asdict(config or TrainConfig()), **overrides})
    rank, world, dev = _dist_setup(device)
    out = Path(out_dir)
    v_all, s_all, u_all = _as_tensor(velocity), np.asarray(sources_xz_m, np.float64), \
        _as_tensor(wavefield)
    n = v_all.shape[0]
    if u_all.shape[0] != n or s_all.shape != (n, 2) or tuple(v_all.shape[1:]) != preset.grid.shape \
            or tuple(u_all.shape[1:]) != (preset.nt_out, *preset.grid.shape):
        raise SeisfnoError(
            f"training arrays do not match the preset: velocity {tuple(v_all.shape)}, sources "
            f"{s_all.shape}, wavefield {tuple(u_all.shape)}; expected (n, {preset.grid.nz}, "
            f"{preset.grid.nx}) and (n, {preset.nt_out}, {preset.grid.nz}, {preset.grid.nx})")
    n_val = min(cfg.n_val, n - 1)
    n_train = n - n_val if cfg.n_train is None else min(cfg.n_train, n - n_val)
    if n_train < 1:
        raise SeisfnoError(f"{n} samples leave none for training after {n_val} for validation")
    tr, va = np.arange(n_train), np.arange(n - n_val, n)
    if cfg.epochs is None:
        cfg.epochs = 10_000 if cfg.time_budget_min else 50
    cfg.arch_args = {**default_args(cfg.arch, preset), **cfg.arch_args}
    norm = Normalization.fit(v_all[tr], u_all[tr])

    # Data on the device when it fits (keeps a GPU busy); otherwise batches move per step.
    nbytes = (v_all.numel() + u_all.numel()) * 4
    on_dev = dev.type == "cpu" or (
        dev.type == "cuda" and nbytes < 0.5 * torch.cuda.mem_get_info(dev)[0])
    store_dev = dev if on_dev else torch.device("cpu")
    v_all = v_all.to(store_dev, torch.float32)
    u_all = u_all.to(store_dev, torch.float32)
    grid = preset.grid

    torch.manual_seed(cfg.seed)
    net = build_model(cfg.arch, **cfg.arch_args).to(dev)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out / "checkpoint"
    counters = {"epoch": 0, "step": 0, "epochs_total": cfg.epochs, "seconds": 0.0,
                "config": asdict(cfg), "best_val_rel_l2": None}
    if (ckpt / "state.json").exists():
        prev = json.loads((ckpt / "state.json").read_text())
        if prev["config"]["arch"] != cfg.arch or prev["config"]["arch_args"] != cfg.arch_args:
            raise SeisfnoError(f"{out} holds a run of another architecture; use a new --out")
        counters = _load_state(ckpt, net, opt, dev)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    model: nn.Module = net
    if world > 1 and dev.type == "cuda":
        # paper3d's BatchNorm: statistics over the global batch, as on one device (CUDA only;
        # the replaced modules keep their parameter and buffer names, so checkpoints match).
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
        model = net
    if world > 1:
        model = nn.parallel.DistributedDataParallel(
            net, device_ids=[dev.index] if dev.type == "cuda" else None)
    use_amp = dev.type == "cuda" and cfg.amp in ("auto", "bf16", "on", "true")
    fwd = model
    if cfg.compile in ("on", "true") or (cfg.compile == "auto" and dev.type == "cuda"):
        fwd = torch.compile(model)

    bs = max(1, math.ceil(cfg.batch_size / world))
    sampler = torch.utils.data.DistributedSampler(range(n_train), num_replicas=world, rank=rank,
                                                  shuffle=True, seed=cfg.seed, drop_last=True)
    steps_per_epoch = max(1, len(sampler) // bs)

    def batch(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        it = torch.as_tensor(idx, device=store_dev)
        x = encode_inputs(v_all[it].to(dev, non_blocking=True), s_all[idx], grid, norm)
        y = encode_wavefield(u_all[it].to(dev, non_blocking=True), norm)
        return x, y

    compiled = [fwd is not model]

    def forward(x: torch.Tensor) -> torch.Tensor:
        nonlocal fwd
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
            if not compiled[0]:
                return fwd(x)
            try:
                out = fwd(x)
                return out
            except Exception as e:  # noqa: BLE001 - compilation is an optimization only
                import warnings

                warnings.warn(f"torch.compile failed ({type(e).__name__}: {e}); running eager",
                              RuntimeWarning, stacklevel=2)
                fwd, compiled[0] = model, False
                return fwd(x)

    def run_step(x, y) -> torch.Tensor:
        pred = forward(x)
        loss = _loss(pred, y, cfg.loss)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return rel_l2(pred.detach(), y).sum()

    def validate() -> float:
        net.eval()
        mine = va[rank::world]
        tot = torch.zeros(2, dtype=torch.float64, device=dev)
        with torch.no_grad():
            for k in range(0, len(mine), max(bs, 8)):
                x, y = batch(mine[k:k + max(bs, 8)])
                pred = forward(x)
                tot += torch.stack([rel_l2(pred, y).sum().double(),
                                    torch.tensor(float(len(y)), device=dev, dtype=torch.float64)])
        net.train()
        tot = _all_sum(tot, world)
        return float(tot[0] / tot[1]) if tot[1] > 0 else float("nan")

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=counters["epochs_total"], initial=counters["epoch"], unit="epoch",
                   file=sys.stderr, dynamic_ncols=True)
    history: list[dict] = []
    budget_s = cfg.time_budget_min * 60 if cfg.time_budget_min else None
    val = train_err = float("nan")
    t_run = time.perf_counter() - counters["seconds"]
    net.train()
    while counters["epoch"] < counters["epochs_total"]:
        epoch = counters["epoch"]
        t0 = time.perf_counter()
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        err = torch.zeros(2, dtype=torch.float64, device=dev)
        total_steps = counters["epochs_total"] * steps_per_epoch
        warmup = max(1, int(cfg.warmup_frac * total_steps)) if budget_s is None else \
            max(1, min(steps_per_epoch, int(cfg.warmup_frac * total_steps)))
        for k in range(steps_per_epoch):
            f = lr_factor(counters["step"], total_steps, warmup)
            for g in opt.param_groups:
                g["lr"] = cfg.lr * f
            x, y = batch(order[k * bs:(k + 1) * bs])
            err[0] += run_step(x, y).double()
            err[1] += len(y)
            counters["step"] += 1
        err = _all_sum(err, world)
        train_err = float(err[0] / err[1])
        if not math.isfinite(train_err):
            raise SeisfnoError(f"training diverged at epoch {epoch + 1} (lower --lr)")
        val = validate()
        counters["epoch"] = epoch + 1
        counters["seconds"] = time.perf_counter() - t_run
        if budget_s is not None and not counters.get("budget_fixed"):
            # Fit the schedule into what is left of the budget at the latest epoch's cost. The
            # first epoch includes compilation and warm-up, so the count is fixed after the
            # second (the cosine schedule is stretched once, early, where it is flat).
            per_epoch = torch.tensor([time.perf_counter() - t0], device=dev)
            if world > 1:
                dist.all_reduce(per_epoch, op=dist.ReduceOp.MAX)
            left = budget_s - counters["seconds"]
            more = int(max(left, 0.0) // max(float(per_epoch), 1e-6))
            counters["epochs_total"] = max(epoch + 1, min(cfg.epochs, epoch + 1 + more))
            counters["budget_fixed"] = epoch >= 1
        best = counters["best_val_rel_l2"]
        counters["best_val_rel_l2"] = val if best is None or val < best else best
        rec = {"epoch": epoch + 1, "train_rel_l2": train_err, "val_rel_l2": val,
               "lr": opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 3)}
        history.append(rec)
        counters["last"] = rec
        if rank == 0:
            with open(out / "metrics.jsonl", "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            _save_state(ckpt, net, opt, counters)
            if bar is not None:
                bar.total = counters["epochs_total"]
                bar.set_postfix(train=f"{train_err:.3f}", val=f"{val:.3f}")
                bar.update(1)
        if world > 1:
            dist.barrier()
    if bar is not None:
        bar.close()
    if not history and "last" in counters:  # already finished: report the stored run
        val, train_err = counters["last"]["val_rel_l2"], counters["last"]["train_rel_l2"]
    card = make_card(cfg.arch, cfg.arch_args, norm, preset, data=data_info or {},
                     training={**asdict(cfg), "epochs_run": counters["epoch"],
                               "n_train": int(n_train), "n_val": int(n_val), "world_size": world,
                               "device": str(dev), "seconds": round(counters["seconds"], 2)},
                     metrics={"val_rel_l2": val, "train_rel_l2": train_err})
    if rank == 0:
        save_model(out / "model", net, card)
    if world > 1:
        dist.barrier()
    return TrainResult(out, counters["epoch"], val, train_err, counters["seconds"], history)


def train(data_path: str | os.PathLike, out_dir: str | os.PathLike, *, arch: str = "fno2d",
          epochs: int | None = None, time_budget_min: float | None = None, batch_size: int = 16,
          lr: float = 3e-3, loss: str = "rel_l2", n_val: int = 200, n_train: int | None = None,
          device: str | None = None, amp: str = "auto", compile: str = "auto", seed: int = 0,
          num_workers: int = 0, progress: bool = True, arch_args: dict | None = None
          ) -> TrainResult:
    """Train an operator on a dataset store (see :func:`fit` for the loop and outputs).

    Parameters
    ----------
    data_path : path
        A store written by :func:`seisfno.data.generate_dataset`.
    out_dir : path
        Run directory (resumed if it holds a checkpoint).
    arch : {"fno2d", "paper3d"}
    epochs, time_budget_min : int, float, optional
        Stop after ``epochs`` or fit the schedule into ``time_budget_min`` minutes (both: the
        first reached).
    batch_size, lr, loss, n_val, n_train, seed : training configuration.
    device : str, optional
        Default CUDA when available.
    amp, compile : {"auto", "on", "off"}
        bf16 autocast and ``torch.compile``; ``auto`` enables both on CUDA only.
    num_workers : int
        Unused while the whole set is loaded into memory (kept for a streaming loader).
    """
    from ..data import open_store

    store = open_store(data_path)
    if not getattr(store, "complete", True):
        raise SeisfnoError(f"{data_path} is incomplete; finish generating it first")
    n = store.n_samples
    n_val_ = min(n_val, n - 1)
    n_tr = n - n_val_ if n_train is None else min(n_train, n - n_val_)
    idx = np.r_[np.arange(n_tr), np.arange(n - n_val_, n)]
    v, s, u = store.load(idx)
    attrs = getattr(store, "attrs", {}) or {}
    info = {"path": str(Path(data_path).resolve()), "seed": attrs.get("seed"),
            "n_samples": int(n), "n_train": int(n_tr), "attrs": _jsonable(attrs),
            "seisfno_version": __version__}
    cfg = TrainConfig(arch=arch, arch_args=dict(arch_args or {}), epochs=epochs,
                      time_budget_min=time_budget_min, batch_size=batch_size, lr=lr, loss=loss,
                      n_val=n_val_, n_train=None, seed=seed, amp=amp, compile=compile)
    return fit(v, s, u, store.preset, out_dir, config=cfg, data_info=info, device=device,
               progress=progress)


def _jsonable(d: Any) -> Any:
    try:
        return json.loads(json.dumps(d, default=str))
    except (TypeError, ValueError):
        return str(d)


__all__ = ["TrainConfig", "TrainResult", "fit", "lr_factor", "rel_l2", "train"]
