"""Datasets: generation into Zarr with Dask (resumable), and lazy PyTorch datasets.

>>> from seisfno.data import generate_dataset, open_store, WavefieldDataset
>>> path = generate_dataset("quick.zarr", "quick", 64, seed=0)      # doctest: +SKIP
>>> v, src, u = open_store(path).load([0, 1])   # (2, nz, nx), (2, 2), (2, nt, nz, nx)
>>> item = WavefieldDataset(path)[0]             # dict of tensors, read lazily
"""

from .dataset import WavefieldDataset
from .generate import (
    DEFAULT_SHARD_SIZE,
    default_shard_size,
    draw_sample,
    generate_dataset,
    generator_info,
)
from .store import FORMAT, FORMAT_VERSION, DatasetStore, open_store, open_xarray

__all__ = [
    "DEFAULT_SHARD_SIZE", "FORMAT", "FORMAT_VERSION", "DatasetStore", "WavefieldDataset",
    "default_shard_size",
    "draw_sample", "generate_dataset", "generator_info", "open_store", "open_xarray",
]
