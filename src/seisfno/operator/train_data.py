"""Where training batches come from: arrays in memory or a store streamed chunk by chunk.

Both sources give the training loop the same thing: raw physical batches ``(velocity (B, nz, nx)
tensor m/s, sources (B, 2) ndarray m, wavefield (B, nt, nz, nx) tensor, items (B,) ndarray)``
for one epoch, plus the training set's :class:`~.encoding.Normalization` and a fingerprint that
identifies the data (so that a resumed run can refuse other data).

* :class:`ArraySource`: everything in memory (on the GPU when it fits); the fast path.
* :class:`StoreSource`: a :class:`~seisfno.data.WavefieldDataset` read in shuffled whole chunks
  with a background reader (:func:`~seisfno.data.dataset.chunk_batches`); memory stays at a few
  chunks whatever the store's size, and the statistics are accumulated chunk by chunk.

:func:`augment_batch` applies the exact symmetries of the square (``augment="d4"``) to a raw
batch, before encoding: the transform of sample ``i`` in epoch ``e`` depends only on
``(seed, e, i)`` (:func:`augment_choices`), so a resumed run sees the same transforms.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from .._errors import SeisfnoError
from ..physics import Grid, Preset
from ..physics.symmetry import check_square, transform_field, transform_sources
from .encoding import Normalization

#: Augmentations ``TrainConfig.augment`` accepts (``None``: ``"d4"`` where the grid allows it).
AUGMENTATIONS = ("d4", "none")
#: Store identity attributes that define the data (not the package version or creation time).
_STORE_IDENTITY = ("n_samples", "shard_size", "seed", "backend", "preset", "plan", "generator")


def resolve_augment(augment: str | None, grid: Grid) -> tuple[str, str | None]:
    """``(augmentation, note)`` for a requested ``augment`` on ``grid``.

    An explicit ``"d4"`` on a grid without the square's symmetries is an error; the default
    (``None``) falls back to ``"none"`` there and says so in ``note`` (recorded in the card).
    """
    if augment is not None and augment not in AUGMENTATIONS:
        raise SeisfnoError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
    if augment == "none":
        return "none", None
    try:
        check_square(grid)
    except SeisfnoError as e:
        if augment == "d4":
            raise SeisfnoError(f"cannot augment with the symmetries of the square: {e}") from None
        return "none", f"default d4 augmentation not applicable (grid {grid.nz} x {grid.nx})"
    return "d4", None


def augment_choices(seed: int, epoch: int, n: int) -> np.ndarray:
    """The symmetry (0..7) applied to each of ``n`` training samples in ``epoch``."""
    return np.random.default_rng([seed, epoch, 0xD4]).integers(0, 8, size=n)


def augment_batch(v: torch.Tensor, s: np.ndarray, u: torch.Tensor, ks: np.ndarray, grid: Grid
                  ) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
    """Apply symmetry ``ks[j]`` to sample ``j`` of a raw batch (velocity, sources, wavefield)."""
    if not np.any(ks):
        return v, s, u
    # Each sample is transformed on its own and copied into new tensors (the batch may be the
    # source's own memory; a flip is a copy, a transpose a view), rather than a clone, a gather,
    # a transform and a scatter per symmetry (2.6 against 5.8 ms for a ``paper`` batch of 16).
    v_out, u_out = torch.empty_like(v), torch.empty_like(u)
    s = np.array(s, dtype=np.float64, copy=True)
    for j, k in enumerate(np.asarray(ks).tolist()):
        v_out[j].copy_(transform_field(v[j], k))
        u_out[j].copy_(transform_field(u[j], k))
        s[j] = transform_sources(s[j], k, grid)
    return v_out, s, u_out


def _sha(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def store_identity(attrs: dict) -> str:
    """A short hash of the attributes that define a store's data."""
    ident = {k: attrs.get(k) for k in _STORE_IDENTITY}
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


class ArraySource:
    """Training data in memory: the first ``n_train`` samples train, the last ``n_val`` validate.

    Parameters
    ----------
    velocity, sources_xz_m, wavefield : arrays or tensors, ``(n, nz, nx)``, ``(n, 2)``,
        ``(n, nt, nz, nx)`` on ``preset``'s grid and output sampling.
    preset : Preset
    n_train, n_val : int
    info : dict, optional
        Store provenance (``seed``, ``store_identity``) folded into the fingerprint.
    """

    mode = "memory"

    def __init__(self, velocity, sources_xz_m, wavefield, preset: Preset, n_train: int,
                 n_val: int, info: dict | None = None) -> None:
        self.v = velocity if torch.is_tensor(velocity) else torch.from_numpy(
            np.ascontiguousarray(velocity))
        self.u = wavefield if torch.is_tensor(wavefield) else torch.from_numpy(
            np.ascontiguousarray(wavefield))
        self.s = np.asarray(sources_xz_m, np.float64)
        self.preset, self.info = preset, dict(info or {})
        n = self.v.shape[0]
        self.n_train, self.n_val = n_train, n_val
        self.tr, self.va = np.arange(n_train), np.arange(n - n_val, n)

    def normalization(self, rank: int = 0, world: int = 1) -> Normalization:
        """The training set's statistics (every rank holds all the data, so no exchange)."""
        return Normalization.fit(self.v[:self.n_train], self.u[:self.n_train])  # views: no copy

    def fingerprint(self) -> dict[str, Any]:
        idx = np.r_[self.tr, self.va]
        return {"preset": self.preset.name, "grid": list(self.preset.grid.shape),
                "nt_out": self.preset.nt_out, "seed": self.info.get("seed"),
                "store_identity": self.info.get("store_identity"),
                "n_train": int(self.n_train), "n_val": int(self.n_val),
                "sources_sha": _sha(self.s[idx])}

    def to(self, dev: torch.device) -> None:
        """Keep the data on ``dev`` when it fits (a GPU stays busy); else batches move per step."""
        nbytes = (self.v.numel() + self.u.numel()) * 4
        on_dev = dev.type == "cpu" or (
            dev.type == "cuda" and nbytes < 0.5 * torch.cuda.mem_get_info(dev)[0])
        self.dev = dev if on_dev else torch.device("cpu")
        self.v = self.v.to(self.dev, torch.float32)
        self.u = self.u.to(self.dev, torch.float32)

    def steps(self, batch: int, world: int) -> int:
        return max(1, (self.n_train // world) // batch)

    def _take(self, idx: np.ndarray):
        it = torch.as_tensor(idx, device=self.dev)
        return self.v[it], self.s[idx], self.u[it], idx

    def train_batches(self, epoch: int, batch: int, seed: int, rank: int, world: int
                      ) -> Iterator[tuple]:
        sampler = torch.utils.data.DistributedSampler(
            range(self.n_train), num_replicas=world, rank=rank, shuffle=True, seed=seed,
            drop_last=True)
        sampler.set_epoch(epoch)
        order = np.fromiter(iter(sampler), dtype=np.int64)
        for k in range(self.steps(batch, world)):
            yield self._take(order[k * batch:(k + 1) * batch])

    def val_batches(self, batch: int, rank: int, world: int) -> Iterator[tuple]:
        mine = self.va[rank::world]
        for k in range(0, len(mine), batch):
            yield self._take(mine[k:k + batch])


class _Moments:
    """Count, mean, sum of squared deviations and range of velocities; sum of squares of
    wavefields; mergeable (Chan et al.'s parallel variance), all in float64."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0
        self.lo, self.hi, self.ss, self.nu = math.inf, -math.inf, 0.0, 0

    def add(self, v: np.ndarray, u: np.ndarray) -> None:
        v = v.astype(np.float64)
        k, mk = v.size, float(v.mean())
        self.merge_moments(k, mk, float(((v - mk) ** 2).sum()))
        self.lo, self.hi = min(self.lo, float(v.min())), max(self.hi, float(v.max()))
        self.ss += sum(float(np.square(x, dtype=np.float64).sum()) for x in u)
        self.nu += u.size

    def merge_moments(self, k: int, mk: float, m2k: float) -> None:
        if k == 0:
            return
        d, n = mk - self.mean, self.n
        self.mean += d * k / (n + k)
        self.m2 += m2k + d * d * n * k / (n + k)
        self.n += k

    def merge(self, o: _Moments) -> None:
        self.merge_moments(o.n, o.mean, o.m2)
        self.lo, self.hi = min(self.lo, o.lo), max(self.hi, o.hi)
        self.ss, self.nu = self.ss + o.ss, self.nu + o.nu

    def normalization(self) -> Normalization:
        std = math.sqrt(self.m2 / (self.n - 1)) if self.n > 1 else 0.0
        rms = math.sqrt(self.ss / max(self.nu, 1))
        return Normalization(self.mean, std or 1.0, self.lo, self.hi, rms or 1.0)


class StoreSource:
    """Training data streamed from a store through :class:`~seisfno.data.WavefieldDataset`.

    Training reads the first ``n_train`` samples in shuffled whole chunks
    (:func:`~seisfno.data.dataset.chunk_batches`) with a background reader; validation reads the
    last ``n_val``. ``buffer_chunks`` chunks are shuffled together (default: 4 chunks or 4
    batches' worth, whichever is more) and as many are read ahead, so memory holds about twice
    that many samples (``paper``, batch 64, chunks of 16: 2 x 256 samples of 1.6 MB), whatever
    the store's size.
    """

    mode = "stream"

    def __init__(self, path, n_train: int, n_val: int, info: dict | None = None,
                 buffer_chunks: int | None = None) -> None:
        from ..data.dataset import WavefieldDataset

        self.train = WavefieldDataset(path, np.arange(n_train))
        n = self.train.n_store_samples
        self.val = WavefieldDataset(path, np.arange(n - n_val, n))
        self.preset, self.info = self.train.preset, dict(info or {})
        self.n_train, self.n_val = n_train, n_val
        self.chunk = self.train._open().shard_size
        self.buffer_chunks = buffer_chunks
        self.dev = torch.device("cpu")

    def fingerprint(self) -> dict[str, Any]:
        store = self.train._open()
        s = np.asarray(store.sources[:], np.float64)
        idx = np.r_[self.train.indices, self.val.indices]
        return {"preset": self.preset.name, "grid": list(self.preset.grid.shape),
                "nt_out": self.preset.nt_out, "seed": self.info.get("seed"),
                "store_identity": self.info.get("store_identity"),
                "n_train": int(self.n_train), "n_val": int(self.n_val),
                "sources_sha": _sha(s[idx])}

    def normalization(self, rank: int = 0, world: int = 1) -> Normalization:
        """The training set's statistics, accumulated chunk by chunk (float64).

        Under DDP each rank reads every ``world``-th chunk and the partial statistics are
        gathered and merged in rank order, so every rank gets the same numbers.
        """
        from ..data.dataset import prefetch

        blocks = [(a, min(a + self.chunk, self.n_train))
                  for a in range(0, self.n_train, self.chunk)][rank::world]
        part = _Moments()
        for v, _, u in prefetch(self.train.load_range(a, b) for a, b in blocks):
            part.add(v, u)
        parts = [part]
        if world > 1:
            import torch.distributed as dist

            parts = [None] * world
            dist.all_gather_object(parts, part)
        total = _Moments()
        for p in parts:
            total.merge(p)
        return total.normalization()

    def to(self, dev: torch.device) -> None:
        self.dev = dev

    def steps(self, batch: int, world: int) -> int:
        return max(1, (self.n_train // world) // batch)

    def _buffer(self, batch: int) -> int:
        if self.buffer_chunks is not None:
            return max(1, self.buffer_chunks)
        return max(4, math.ceil(4 * batch / self.chunk))

    def train_batches(self, epoch: int, batch: int, seed: int, rank: int, world: int
                      ) -> Iterator[tuple]:
        from ..data.dataset import chunk_batches

        n_buf = self._buffer(batch)
        it = chunk_batches(self.train, batch, self.steps(batch, world), seed, epoch, rank=rank,
                           world=world, buffer_chunks=n_buf, read_ahead=n_buf)
        for v, s, u, idx in it:
            yield torch.from_numpy(v), s, torch.from_numpy(u), idx

    def val_batches(self, batch: int, rank: int, world: int) -> Iterator[tuple]:
        share = math.ceil(self.n_val / world)
        lo, hi = rank * share, min((rank + 1) * share, self.n_val)
        for a in range(lo, hi, batch):
            v, s, u = self.val.load_range(a, min(a + batch, hi))
            yield torch.from_numpy(v), s, torch.from_numpy(u), np.arange(a, a + len(s))


__all__ = ["AUGMENTATIONS", "ArraySource", "StoreSource", "augment_batch", "augment_choices",
           "resolve_augment", "store_identity"]
