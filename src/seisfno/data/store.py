"""The on-disk dataset: a Zarr (v3) store of velocity models, sources and wavefields.

Layout of a store of ``N`` samples written in shards of ``K`` samples (``S = ceil(N / K)``)::

    velocity_mps   (sample, z, x)        float32  m/s, one chunk per shard
    source_xz_m    (sample, xz)          float64  m, (x, z) from the top-left node, z down
    wavefield      (sample, time, z, x)  float32  one Zarr shard (one file) per generation shard,
                                                  inner chunks of one sample for random reads
    shard_done     (shard,)              uint8    1 once a shard's data is durably written
    sample (sample,), time_s (time,), z_m (z,), x_m (x,)   coordinates

Every array carries ``dimension_names``, so ``xarray.open_zarr`` gives named dims
``sample/time/z/x``; the root attributes (:func:`describe`) record the preset, the solver plan, the
seed, the generator, the backend and the versions. Zarr writes each chunk file atomically
(temporary file, then rename), so a killed writer leaves whole chunks or none; a shard counts only
once its ``shard_done`` chunk, written last, says so.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import SeisfnoError
from ..physics import Preset

FORMAT = "seisfno.wavefield-dataset"
FORMAT_VERSION = 1
#: Root attributes that must match for a rerun to resume a store (the rest is informational).
IDENTITY_KEYS = ("format_version", "seisfno_version", "n_samples", "shard_size", "seed",
                 "backend", "preset", "plan", "generator")
_WAVEFIELD_UNITS = "s2 m-2"  # u_tt - v^2 lap(u) = ricker(t) delta(x - x_s), delta in 1/m^2


def n_shards(n_samples: int, shard_size: int) -> int:
    """Number of shards of ``shard_size`` samples covering ``n_samples``."""
    return math.ceil(n_samples / shard_size)


def shard_range(shard: int, shard_size: int, n_samples: int) -> tuple[int, int]:
    """Samples ``[start, stop)`` of ``shard``."""
    start = shard * shard_size
    return start, min(start + shard_size, n_samples)


def _json(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(obj))


def create_store(path: Path, attrs: dict) -> None:
    """Write an empty store with the layout above and root ``attrs`` (see :func:`describe`).

    The store is built beside ``path`` and renamed into place, so ``path`` is either absent or a
    complete empty store, even if the process is killed meanwhile.
    """
    import zarr

    preset = Preset.from_dict(attrs["preset"])
    grid, nt = preset.grid, preset.nt_out
    n, k = attrs["n_samples"], attrs["shard_size"]
    tmp = path.with_name(f".{path.name}.creating")
    try:
        if tmp.exists():
            shutil.rmtree(tmp)
        root = zarr.open_group(zarr.storage.LocalStore(tmp), mode="w", zarr_format=3)

        def arr(name, shape, dtype, dims, chunks=None, shards=None, data=None, **a):
            out = root.create_array(name, shape=shape, dtype=dtype, dimension_names=dims,
                                    chunks=chunks or shape, shards=shards, fill_value=0,
                                    attributes=a)
            if data is not None:
                out[...] = data

        arr("sample", (n,), "int64", ("sample",), data=np.arange(n), long_name="sample index")
        arr("time_s", (nt,), "float64", ("time",), data=np.arange(nt) * preset.dt_out_s,
            units="s", long_name="time of output sample k, k * dt_out_s")
        arr("z_m", (grid.nz,), "float64", ("z",), data=grid.z_m, units="m",
            long_name="node depth, down from the top edge")
        arr("x_m", (grid.nx,), "float64", ("x",), data=grid.x_m, units="m",
            long_name="node x position from the left edge")
        arr("velocity_mps", (n, grid.nz, grid.nx), "float32", ("sample", "z", "x"),
            chunks=(k, grid.nz, grid.nx), units="m/s", long_name="P-wave velocity",
            coordinates="z_m x_m")
        arr("source_xz_m", (n, 2), "float64", ("sample", "xz"), chunks=(k, 2), units="m",
            long_name="source position (x, z) from the top-left node, z down")
        arr("wavefield", (n, nt, grid.nz, grid.nx), "float32", ("sample", "time", "z", "x"),
            chunks=(1, nt, grid.nz, grid.nx), shards=(k, nt, grid.nz, grid.nx),
            units=_WAVEFIELD_UNITS, coordinates="time_s z_m x_m",
            long_name="solution of u_tt - v^2 lap(u) = ricker(t) delta(x - x_s)")
        arr("shard_done", (n_shards(n, k),), "uint8", ("shard",), chunks=(1,),
            long_name=f"1 once samples [i*{k}, (i+1)*{k}) are durably written")
        root.attrs.update(_json(attrs))
        with warnings.catch_warnings():  # "not part of the v3 spec": xarray reads it fine
            warnings.simplefilter("ignore")
            zarr.consolidate_metadata(root.store)  # chunk writes never change metadata
        os.replace(tmp, path)  # atomic; replaces an empty directory too
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SeisfnoError(f"cannot create the dataset at {path}: {e.strerror or e}") from e


#: :meth:`DatasetStore.load` reads blocks of whole shards of at most this many bytes (one
#: shard when a shard is larger).
READ_BLOCK_BYTES = 256 * 2**20


@dataclass
class DatasetStore:
    """An opened dataset (see :func:`open_store`).

    Attributes
    ----------
    path : Path
    attrs : dict
        The root attributes (preset, plan, seed, generator, versions, ...).
    preset : Preset
    plan : dict
        The solver plan every sample was computed with (``Plan.to_dict()``).
    n_samples, shard_size : int
    velocity, sources, wavefield : zarr.Array
        ``(N, nz, nx)`` float32 m/s, ``(N, 2)`` float64 m as (x, z), ``(N, nt, nz, nx)`` float32.
    shard_done : ndarray of bool, shape (n_shards,)
        Which shards are complete (read when opened).
    """

    path: Path
    attrs: dict
    preset: Preset
    plan: dict
    n_samples: int
    shard_size: int
    velocity: Any = field(repr=False)
    sources: Any = field(repr=False)
    wavefield: Any = field(repr=False)
    shard_done: np.ndarray = field(repr=False)

    @property
    def n_shards(self) -> int:
        return len(self.shard_done)

    @property
    def sample_done(self) -> np.ndarray:
        """Which samples are complete, bool ``(N,)``."""
        return np.repeat(self.shard_done, self.shard_size)[: self.n_samples]

    @property
    def n_done(self) -> int:
        """Number of complete samples."""
        return int(self.sample_done.sum())

    @property
    def complete(self) -> bool:
        return bool(self.shard_done.all())

    def load(self, indices=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Read samples in one batched call per array.

        Parameters
        ----------
        indices : slice, int sequence or None
            Which samples (default: all), in the order wanted; repeats allowed.

        Returns
        -------
        velocity : ndarray, (B, nz, nx) float32, m/s
        sources : ndarray, (B, 2) float64, (x, z) in m
        wavefield : ndarray, (B, nt, nz, nx) float32
        """
        if indices is None:
            indices = slice(None)
        if isinstance(indices, slice):
            idx = np.arange(self.n_samples)[indices]
        else:
            idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -self.n_samples or idx.max() >= self.n_samples):
            raise SeisfnoError(f"sample indices must lie in [0, {self.n_samples}), "
                               f"got {idx.min()}..{idx.max()}")
        idx = idx % max(self.n_samples, 1)
        if not self.sample_done[idx].all():
            raise SeisfnoError(f"{self.path} is incomplete ({self.n_done} of {self.n_samples} "
                               "samples); rerun `seisfno generate` with the same arguments")
        uniq, inverse = np.unique(idx, return_inverse=True)
        try:
            out = [self._read(a, uniq) for a in (self.velocity, self.sources, self.wavefield)]
        except Exception as e:  # noqa: BLE001 - a damaged chunk is a bad file for the user
            raise SeisfnoError(f"cannot read samples from {self.path} (corrupt store?): {e}") from e
        if np.array_equal(inverse, np.arange(uniq.size)):  # in order, once each: no copy
            return tuple(out)  # type: ignore[return-value]
        return tuple(a[inverse] for a in out)  # type: ignore[return-value]

    def _read(self, arr, uniq: np.ndarray) -> np.ndarray:
        """Samples ``uniq`` (sorted, distinct) of one array into one preallocated array, in
        blocks of whole shards of at most ``READ_BLOCK_BYTES``: zarr's read of a whole array
        peaked at twice its size or more (its buffers; 2.0-3.1x in the tests' stores), which a
        store loaded whole for training cannot afford, and one shard at a time read several
        times slower than blocks of shards."""
        out = np.empty((uniq.size, *arr.shape[1:]), dtype=arr.dtype)
        if uniq.size == 0:
            return out
        shard = max(1, self.shard_size)
        per_shard = shard * int(np.prod(arr.shape[1:], dtype=np.int64)) * out.dtype.itemsize
        block = shard * max(1, READ_BLOCK_BYTES // max(1, per_shard))  # samples, whole shards
        starts = np.flatnonzero(np.diff(uniq // block, prepend=-1))
        for i, j in zip(starts, [*starts[1:], uniq.size], strict=True):
            blk = uniq[i:j]
            if blk[-1] - blk[0] + 1 == blk.size:  # contiguous: a plain slice
                out[i:j] = arr[int(blk[0]):int(blk[-1]) + 1]
            else:
                out[i:j] = arr.get_orthogonal_selection((blk,))
        return out


def read_done(group) -> np.ndarray:
    """``shard_done`` of an open group as bool; an unreadable marker counts as not done."""
    arr = group["shard_done"]
    try:
        return np.asarray(arr[:]) == 1
    except Exception:  # noqa: BLE001 - a damaged marker means: recompute that shard
        done = np.zeros(arr.shape[0], dtype=bool)
        for i in range(arr.shape[0]):
            try:
                done[i] = arr[i] == 1
            except Exception:  # noqa: BLE001
                pass
        return done


def open_store(path: str | Path, mode: str = "r") -> DatasetStore:
    """Open a dataset written by :func:`~seisfno.data.generate_dataset`.

    Parameters
    ----------
    path : str or Path
        The Zarr store (a directory).
    mode : {"r", "r+"}

    Raises
    ------
    SeisfnoError
        If ``path`` is missing, not a Zarr store, not a seisfno dataset, or damaged.
    """
    import zarr

    path = Path(path)
    if not path.exists():
        raise SeisfnoError(f"no dataset at {path}")
    if not path.is_dir() or not (path / "zarr.json").is_file():
        raise SeisfnoError(f"{path} exists but is not a Zarr store (not a seisfno dataset)")
    try:
        root = zarr.open_group(zarr.storage.LocalStore(path, read_only=mode == "r"), mode=mode,
                               use_consolidated=False)
        attrs = dict(root.attrs)
    except Exception as e:  # noqa: BLE001 - whatever zarr raises, the store is unusable
        raise SeisfnoError(f"{path} is not a readable Zarr store: {e}") from e
    if attrs.get("format") != FORMAT:
        raise SeisfnoError(f"{path} is a Zarr store but not a seisfno dataset")
    if attrs.get("format_version") != FORMAT_VERSION:
        raise SeisfnoError(f"{path} has dataset format version {attrs.get('format_version')}; "
                           f"this seisfno reads version {FORMAT_VERSION}")
    try:
        preset = Preset.from_dict(attrs["preset"])
        n, k = int(attrs["n_samples"]), int(attrs["shard_size"])
        grid, nt = preset.grid, preset.nt_out
        arrays = {name: root[name] for name in
                  ("velocity_mps", "source_xz_m", "wavefield", "shard_done")}
        expect = {"velocity_mps": (n, grid.nz, grid.nx), "source_xz_m": (n, 2),
                  "wavefield": (n, nt, grid.nz, grid.nx), "shard_done": (n_shards(n, k),)}
        for name, shape in expect.items():
            if tuple(arrays[name].shape) != shape:
                raise ValueError(f"{name} has shape {arrays[name].shape}, expected {shape}")
        done = read_done(root)
    except SeisfnoError:
        raise
    except Exception as e:  # noqa: BLE001
        raise SeisfnoError(f"{path} is a corrupt seisfno dataset: {e}") from e
    return DatasetStore(path=path, attrs=attrs, preset=preset, plan=attrs["plan"], n_samples=n,
                        shard_size=k, velocity=arrays["velocity_mps"],
                        sources=arrays["source_xz_m"], wavefield=arrays["wavefield"],
                        shard_done=done)


def check_same(store: DatasetStore, attrs: dict) -> None:
    """Raise unless ``store`` was started with the same generation parameters as ``attrs``."""
    want = _json(attrs)
    for key in IDENTITY_KEYS:
        have = store.attrs.get(key)
        if have != want.get(key):
            detail = _first_difference(have, want.get(key), key)
            raise SeisfnoError(
                f"{store.path} holds a dataset generated with different parameters ({detail}); "
                "rerun with the same ones to resume, or choose a new --out")


def _first_difference(a: Any, b: Any, where: str) -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    return f"{where}: {a!r} in the store, {b!r} requested"


_SHARDED = ("velocity_mps", "source_xz_m", "wavefield", "shard_done")


def clear_shard(path: Path, shard: int) -> None:
    """Delete whatever an unfinished shard left (Zarr would merge a new write into it)."""
    for name in _SHARDED:
        top = path / name / "c" / str(shard)
        if top.is_dir():
            shutil.rmtree(top)
        elif top.exists():
            top.unlink()


def fsync_shard(path: Path, shard: int) -> None:
    """Flush a shard's chunk files (every array's ``c/<shard>/...``) to disk."""
    for name in _SHARDED:
        top = path / name / "c" / str(shard)
        paths = [top] if top.is_file() else [Path(d) / f for d, _, fs in os.walk(top) for f in fs]
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(top if top.is_dir() else top.parent)


def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems refuse directory fsync
        pass
    finally:
        os.close(fd)


def remove_partials(path: Path) -> None:
    """Delete the ``*.partial`` temporaries a killed Zarr write may leave behind."""
    for p in path.rglob("*.partial"):
        p.unlink(missing_ok=True)


def open_xarray(path: str | Path):
    """The dataset as an :class:`xarray.Dataset` (lazy, dask-backed).

    Variables ``velocity_mps (sample, z, x)``, ``source_xz_m (sample, xz)``,
    ``wavefield (sample, time, z, x)``, coordinates ``time_s``, ``z_m``, ``x_m``; the store's
    metadata is in ``.attrs``.
    """
    import xarray as xr

    store = open_store(path)  # clear errors for what is not a dataset
    return xr.open_zarr(store.path, consolidated=True, zarr_format=3)
