"""A lazy PyTorch dataset over a generated store, and chunk-aware streaming for training.

:class:`WavefieldDataset` reads samples on demand (safe with ``DataLoader(num_workers > 0)``).
For training on stores larger than memory, :func:`chunk_batches` plans an epoch as whole chunks
(the store's shards) in a shuffled order, shuffled again within a buffer of a few chunks, and
:func:`prefetch` reads ahead in a background thread.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .._errors import SeisfnoError
from .store import DatasetStore, open_store


class WavefieldDataset(Dataset):
    """Samples of a store written by :func:`~seisfno.data.generate_dataset`, read on demand.

    Parameters
    ----------
    path : str or Path
        The Zarr store.
    indices : int sequence, optional
        The store's samples this dataset exposes, in order (default: all). Item ``i`` is sample
        ``indices[i]``; every one must be complete.

    Notes
    -----
    Only metadata are read here. Each process (the main one or a ``DataLoader`` worker) opens
    the store itself on its first item, so the dataset pickles small and shares no file handle.
    Items are dicts:

    ``velocity``
        ``(nz, nx)`` float32 tensor, m/s.
    ``source_xz_m``
        ``(2,)`` float32 tensor, (x, z) in m from the top-left node, z down.
    ``wavefield``
        ``(nt, nz, nx)`` float32 tensor, sample k at ``k * preset.dt_out_s``.
    ``index``
        int, the sample's index in the store.
    """

    def __init__(self, path: str | Path, indices=None) -> None:
        store = open_store(path)
        self.path = store.path
        self.preset = store.preset
        self.n_store_samples = store.n_samples
        if indices is None:
            idx = np.arange(store.n_samples, dtype=np.int64)
        else:
            idx = np.asarray(indices)
            if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
                raise SeisfnoError("indices must be a 1-D sequence of integers")
            idx = idx.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= store.n_samples):
                raise SeisfnoError(f"indices must lie in [0, {store.n_samples}) for {self.path}")
        missing = ~store.sample_done[idx]
        if missing.any():
            raise SeisfnoError(
                f"{self.path} is incomplete: sample {int(idx[missing][0])} and "
                f"{int(missing.sum()) - 1} more are not generated yet; rerun `seisfno generate` "
                "with the same arguments")
        self.indices = idx
        self._store: DatasetStore | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return len(self.indices)

    def _open(self) -> DatasetStore:
        if self._store is None or self._pid != os.getpid():
            self._store = open_store(self.path)
            self._pid = os.getpid()
        return self._store

    def __getitem__(self, i: int) -> dict:
        j = int(self.indices[i])
        s = self._open()
        try:
            v = np.asarray(s.velocity[j], dtype=np.float32)
            src = np.asarray(s.sources[j], dtype=np.float32)
            u = np.asarray(s.wavefield[j], dtype=np.float32)
        except Exception as e:  # noqa: BLE001 - a damaged chunk is a bad file for the user
            raise SeisfnoError(f"cannot read sample {j} from {self.path}: {e}") from e
        return {"velocity": torch.from_numpy(v), "source_xz_m": torch.from_numpy(src),
                "wavefield": torch.from_numpy(u), "index": j}

    def load_range(self, start: int, stop: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Items ``[start, stop)`` in one read per array (whole chunks when they are aligned).

        Returns ``(velocity (B, nz, nx) float32, sources (B, 2) float64, wavefield
        (B, nt, nz, nx) float32)``; a damaged chunk raises :class:`SeisfnoError` naming the
        samples and the store's chunk files that hold them.
        """
        idx = self.indices[start:stop]
        try:
            return self._open().load(idx)
        except SeisfnoError as e:
            k = self._open().shard_size
            files = sorted({f"wavefield/c/{int(j) // k}/0/0/0" for j in idx})
            shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
            raise SeisfnoError(f"cannot read samples {int(idx.min())}..{int(idx.max())} of "
                               f"{self.path} (chunk files {shown}): {e}") from e

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_store"] = None
        state["_pid"] = None
        return state

    def __repr__(self) -> str:
        return (f"WavefieldDataset({str(self.path)!r}, {len(self)} of {self.n_store_samples} "
                f"samples, preset {self.preset.name!r})")


def chunk_runs(n: int, chunk: int, seed: int, epoch: int, rank: int = 0, world: int = 1
               ) -> list[tuple[int, int]]:
    """This rank's share of items ``[0, n)`` for one epoch, as contiguous ``(start, stop)`` runs.

    The chunks ``[k * chunk, (k + 1) * chunk)`` are put in an order drawn from
    ``(seed, epoch)``; the resulting sequence is cut into ``world`` equal contiguous parts of
    ``n // world`` items (the rest is dropped, as ``DistributedSampler(drop_last=True)`` does),
    and rank ``rank`` gets part ``rank``. A run never crosses a chunk boundary.
    """
    starts = np.arange(0, n, chunk)
    order = np.random.default_rng([seed, epoch, 0xC4]).permutation(len(starts))
    share = n // world
    lo, hi = rank * share, (rank + 1) * share
    runs, pos = [], 0
    for k in order:
        a, b = int(starts[k]), int(min(starts[k] + chunk, n))
        s0, s1 = max(a, a + lo - pos), min(b, a + hi - pos)
        if s1 > s0:
            runs.append((s0, s1))
        pos += b - a
    return runs


def chunk_batches(data: WavefieldDataset, batch: int, steps: int, seed: int, epoch: int, *,
                  rank: int = 0, world: int = 1, buffer_chunks: int = 4,
                  read_ahead: int = 0
                  ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """``steps`` shuffled batches of this rank's share of ``data`` for one epoch.

    Whole chunks (``data``'s store shards, :func:`chunk_runs`) are read ``buffer_chunks`` at a
    time into one preallocated buffer; the samples in it (plus those left over from the previous
    fill) are shuffled and cut into batches of ``batch``. With ``read_ahead > 0`` a background
    thread reads that many chunks ahead (:func:`prefetch`), so reading overlaps the consumer's
    work. Memory holds the buffer (``buffer_chunks`` chunks and one batch), the chunks read
    ahead and the batches in flight, whatever the store's size. The order depends only on
    ``(seed, epoch, rank, world)``, so a resumed run sees the same batches.

    Yields
    ------
    ``(velocity, sources, wavefield, items)``: float32 ``(B, nz, nx)``, float64 ``(B, 2)``,
    float32 ``(B, nt, nz, nx)`` and the items' positions in ``data`` (int64 ``(B,)``).
    """
    chunk = data._open().shard_size
    runs = chunk_runs(len(data), chunk, seed, epoch, rank, world)
    rng = np.random.default_rng([seed, epoch, rank, 0xB0F])
    buf: list[np.ndarray] | None = None
    n_left = done = 0
    reads = ((*data.load_range(a, b), np.arange(a, b, dtype=np.int64)) for a, b in runs)
    parts = prefetch(reads, read_ahead) if read_ahead > 0 else reads
    try:
        for g in range(0, len(runs), buffer_chunks):
            for _ in runs[g:g + buffer_chunks]:
                part = next(parts)
                if buf is None:
                    cap = buffer_chunks * chunk + batch
                    buf = [np.empty((cap, *x.shape[1:]), x.dtype) for x in part]
                for dst, x in zip(buf, part, strict=True):
                    dst[n_left:n_left + len(x)] = x
                n_left += len(part[3])
                del part
            perm = rng.permutation(n_left)
            n_full = n_left // batch
            for k in range(n_full):
                if done == steps:
                    return
                rows = perm[k * batch:(k + 1) * batch]
                yield tuple(x[rows] for x in buf)  # type: ignore[union-attr, misc]
                done += 1
            rest = perm[n_full * batch:]
            for x in buf or []:
                x[:len(rest)] = x[rest]
            n_left = len(rest)
        if done < steps and n_left and buf is not None:
            yield tuple(x[:n_left].copy() for x in buf)  # type: ignore[misc]
    finally:
        parts.close()


def prefetch(items: Iterable, depth: int = 2) -> Iterator:
    """Iterate ``items`` in a background thread, ``depth`` items ahead.

    An exception raised while producing an item is raised here, in order; closing the returned
    generator (or leaving a ``for`` loop early) stops the thread.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    end = object()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in items:
                if not put((None, x)):
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            put((e, None))
            return
        put((None, end))

    t = threading.Thread(target=work, name="seisfno-prefetch", daemon=True)
    t.start()
    try:
        while True:
            err, x = q.get()
            if err is not None:
                raise err
            if x is end:
                return
            yield x
    finally:
        stop.set()
        t.join(timeout=5)
