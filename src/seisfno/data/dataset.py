"""A lazy PyTorch dataset over a generated store (safe with ``DataLoader(num_workers > 0)``)."""

from __future__ import annotations

import os
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

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_store"] = None
        state["_pid"] = None
        return state

    def __repr__(self) -> str:
        return (f"WavefieldDataset({str(self.path)!r}, {len(self)} of {self.n_store_samples} "
                f"samples, preset {self.preset.name!r})")
