"""The solver's forward time loop as one C function, built on first use (CPU, float32, no grad).

Why our own C: every training sample is one forward simulation, and on two cores the compiled
PyTorch step (:mod:`seisfno.physics.fd` through ``torch.compile``) stayed 1.2-1.35x slower than
deepwave on one ``paper`` simulation, with 4-5 s of start-up in every process (importing and
tracing inductor) that dominated small ``generate`` runs. Inductor handles the C-PML strips as
separate loops that cost as much as 1.5 Laplacians a step; written by hand they are a few extra
terms on the rows and columns that hold them. deepwave cannot stand in: it has no 4th-order time
stepping and its own PML, and the GPU path must stay pure PyTorch. So ``_native_step.c`` is
:func:`fd._step`'s scheme term for term (tested against the eager step to round-off, and thereby
against deepwave and the analytic solution through the existing tests), two passes per step, the
strips inline, and the time loop in C.

The library is compiled with the system's C compiler (``cc``/``gcc``, ``-O3 -march=native
-fopenmp``) into a per-user cache (``$SEISFNO_CACHE_DIR``, else ``~/.cache/seisfno``), keyed by
the source, the compiler, the flags and the CPU's instruction sets, and loaded with
:mod:`ctypes` (no Python headers, no build tools beyond the compiler). Without a compiler, when
the build fails, or with ``SEISFNO_NATIVE=0`` in the environment, :func:`available` is False and
the solver uses the PyTorch step; gradients always use it.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from .plan import HALO, STENCIL, Plan

_SOURCE = "_native_step.c"
_P = ctypes.c_void_p
_I = ctypes.c_int
_F = ctypes.c_float


class _Job(ctypes.Structure):
    """The C ``Job`` struct, field for field."""

    _fields_ = [
        ("B", _I), ("NZ", _I), ("NX", _I), ("n_steps", _I), ("v2_batched", _I),
        ("v2", _P), ("src_off", _P), ("src_idx", _P), ("src_val", _P),
        ("wav", _P), ("wav_tt", _P), ("lw", _P),
        ("kz", _I), ("Sz", _I), ("kx", _I), ("Sx", _I),
        ("az", _P), ("bz", _P), ("dbz", _P), ("ax", _P), ("bx", _P), ("dbx", _P),
        ("c2", _P), ("c1", _P),
        ("dt2", _F), ("dt4_12", _F), ("inv_dz", _F), ("inv_dx", _F),
        ("record", _P),
        ("nz_out", _I), ("nx_out", _I), ("off", _I), ("stride", _I),
        ("out", _P),
        ("u", _P), ("up", _P), ("w", _P),
        ("psiz", _P), ("psiz2", _P), ("zetaz", _P),
        ("psix", _P), ("psix2", _P), ("zetax", _P),
        ("n_threads", _I),
    ]


def _flags() -> list[str]:
    flags = ["-O3", "-march=native", "-fno-math-errno", "-fopenmp", "-shared", "-fPIC"]
    # runs that cap torch at AVX2 (ATEN_CPU_CAPABILITY, to emulate an older CPU) cap this too
    cap = os.environ.get("ATEN_CPU_CAPABILITY", "").lower()
    if cap == "avx2":
        flags.append("-mno-avx512f")
    elif cap == "default":
        flags.append("-mno-avx")
    return flags


def _cpu_flags() -> str:
    """The machine and its instruction sets (``-march=native`` code runs only where built)."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:  # pragma: no cover - not on Linux
        flags = ""
    return f"{platform.machine()} {platform.processor()} {flags}"


def _cache_dir() -> Path:
    root = os.environ.get("SEISFNO_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "seisfno")
    return Path(root) / "native"


def _compiler() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(cc: str, source: bytes, flags: list[str]) -> Path:
    """The shared library for ``source``, compiled unless the cache has it."""
    version = subprocess.run([cc, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    key = hashlib.sha256(b"\0".join([source, version.encode(), " ".join(flags).encode(),
                                     _cpu_flags().encode()])).hexdigest()[:20]
    out = _cache_dir() / f"seisfno_step_{key}.so"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        c_file = Path(tmp) / _SOURCE
        c_file.write_bytes(source)
        so = Path(tmp) / out.name
        res = subprocess.run([cc, *flags, "-o", str(so), str(c_file)], capture_output=True,
                             text=True, timeout=300)
        if res.returncode != 0:
            raise RuntimeError(res.stderr.strip()[-2000:] or f"{cc} failed")
        os.replace(so, out)  # atomic: a concurrent build of the same key writes the same file
    return out


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    if os.environ.get("SEISFNO_NATIVE", "1") == "0":
        return None
    cc = _compiler()
    if cc is None:
        return None
    try:
        source = resources.files("seisfno.physics").joinpath(_SOURCE).read_bytes()
        lib = ctypes.CDLL(str(_build(cc, source, _flags())))
    except (OSError, RuntimeError, subprocess.SubprocessError) as e:
        print(f"seisfno: the native solver loop could not be built ({e}); using the PyTorch "
              "step", file=sys.stderr)
        return None
    lib.seisfno_job_size.restype = _I
    if lib.seisfno_job_size() != ctypes.sizeof(_Job):  # pragma: no cover - a layout mismatch
        print("seisfno: the native solver loop does not match its binding; using the PyTorch "
              "step", file=sys.stderr)
        return None
    lib.seisfno_propagate.argtypes = [ctypes.POINTER(_Job)]
    lib.seisfno_propagate.restype = _I
    return lib


def available() -> bool:
    """Whether the native loop is built and loaded (built on the first call)."""
    return _library() is not None


def _sparse_sources(src: torch.Tensor, batch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR of the source fields ``(B or 1, NZ, NX)``: offsets per shot, flat indices, values."""
    flat = src.reshape(src.shape[0], -1).numpy()
    rows = [np.flatnonzero(f) for f in flat]
    rows = rows * batch if len(rows) == 1 else rows
    flats = [flat[0]] * batch if flat.shape[0] == 1 else list(flat)
    off = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    idx = np.concatenate(rows).astype(np.int64)
    val = np.concatenate([f[r] for f, r in zip(flats, rows, strict=True)]).astype(np.float32)
    return off, idx, val


def propagate(plan: Plan, v2: torch.Tensor, src: torch.Tensor, wavelet: torch.Tensor,
              wavelet_tt: torch.Tensor, record_steps: np.ndarray) -> torch.Tensor:
    """:func:`fd.propagate` without a gradient, by the native loop (see :func:`available`).

    Takes and returns what :func:`fd.propagate` does (float32 CPU tensors; the output is
    ``(len(record_steps), B, nz, nx)``).
    """
    record = np.zeros(plan.n_steps, dtype=bool)
    record[np.asarray(record_steps)] = True
    return run_segment(plan, v2, src, wavelet, wavelet_tt, record)[-1]


def run_segment(plan: Plan, v2: torch.Tensor, src: torch.Tensor, wavelet: torch.Tensor,
                wavelet_tt: torch.Tensor, record: np.ndarray,
                state: tuple[torch.Tensor, ...] | None = None) -> tuple[torch.Tensor, ...]:
    """``len(wavelet)`` steps from ``state`` (default: at rest), recording where ``record``.

    ``state`` and the result's first six entries are :func:`fd.propagate`'s step state ``(u,
    u_prev, psi_z, zeta_z, psi_x, zeta_x)`` (``state`` is not modified); the last entry is the
    recorded output frames ``(record.sum(), B, nz, nx)``. So a checkpointed gradient runs its
    forward segments here and recomputes them with the PyTorch step.
    """
    from . import fd

    lib = _library()
    if lib is None:
        raise RuntimeError("the native solver loop is not available")
    f32 = torch.float32
    prof = {k: t.contiguous() for k, t in fd.cpml_profiles(plan, "cpu", f32).items()}
    batch = max(v2.shape[0], src.shape[0])
    nz, nx = plan.padded_shape
    _check(plan, prof, v2, src, wavelet, wavelet_tt, record, state, batch)
    v2 = v2.detach().to("cpu", f32).contiguous()
    src_off, src_idx, src_val = _sparse_sources((src.detach().to("cpu", f32) * prof["inner"]),
                                                batch)
    record = np.ascontiguousarray(record, dtype=np.uint8)
    fine, p, r = plan.fine, plan.pad, plan.refine
    nz_out, nx_out = plan.grid.shape
    assert len(range(p, p + fine.nz, r)) == nz_out and len(range(p, p + fine.nx, r)) == nx_out
    out = torch.empty((int(record.sum()), batch, nz_out, nx_out), dtype=f32)
    kz, sz = prof["az"].shape[0], prof["az"].shape[-2]
    kx, sx = prof["ax"].shape[0], prof["ax"].shape[-2]
    work = _work(state, batch, nz, nx, (kz, batch, sz, nx), (kx, batch, nz, sx))
    arrays = {
        "v2": v2, "lw": prof["lw_mask"],
        "wav": wavelet.detach().to("cpu", f32).contiguous(),
        "wav_tt": wavelet_tt.detach().to("cpu", f32).contiguous(),
        "src_off": src_off, "src_idx": src_idx, "src_val": src_val, "record": record,
        "c2": np.asarray(STENCIL, np.float32), "c1": np.asarray(fd.STENCIL1, np.float32),
        **{key: prof[key] for key in ("az", "bz", "dbz", "ax", "bx", "dbx")}, "out": out,
        **work,
    }
    job = _Job(B=batch, NZ=nz, NX=nx, n_steps=len(record), v2_batched=int(v2.shape[0] > 1),
               kz=kz, Sz=sz, kx=kx, Sx=sx, dt2=plan.dt_s * plan.dt_s,
               dt4_12=plan.dt_s**4 / 12.0, inv_dz=1.0 / fine.dz_m, inv_dx=1.0 / fine.dx_m,
               nz_out=nz_out, nx_out=nx_out, off=p, stride=r,
               n_threads=max(1, torch.get_num_threads()))
    for key, arr in arrays.items():
        setattr(job, key, arr.data_ptr() if torch.is_tensor(arr) else arr.ctypes.data)
    assert HALO == 4  # the C loop's H
    lib.seisfno_propagate(ctypes.byref(job))
    # the loop swaps its buffers; the struct says where each field ended
    by_ptr = {t.data_ptr(): t for t in work.values()}
    u, u_prev, psi_z, zeta_z, psi_x, zeta_x = (by_ptr[getattr(job, k)] for k in (
        "u", "up", "psiz", "zetaz", "psix", "zetax"))
    return (u, u_prev, psi_z, zeta_z, psi_x.transpose(-1, -2).contiguous(),
            zeta_x.transpose(-1, -2).contiguous(), out)


def _check(plan: Plan, prof: dict, v2, src, wavelet, wavelet_tt, record, state,
           batch: int) -> None:
    """Refuse what would make the C loop read or write out of bounds."""
    from . import fd

    grid = tuple(plan.padded_shape)
    if v2.ndim != 3 or tuple(v2.shape[1:]) != grid or src.ndim != 3 or \
            tuple(src.shape[1:]) != grid or {v2.shape[0], src.shape[0]} - {1, batch}:
        raise ValueError(f"v2 {tuple(v2.shape)} and src {tuple(src.shape)} must be (B or 1, "
                         f"{grid[0]}, {grid[1]})")
    if not len(wavelet) == len(wavelet_tt) == len(record):
        raise ValueError(f"{len(wavelet)} and {len(wavelet_tt)} wavelet samples for "
                         f"{len(record)} steps")
    if state is not None:
        want = [(batch, *grid)] * 2 + [tuple(t.shape) for t in fd.pml_state(
            prof, batch, *grid, torch.empty)]
        if [tuple(t.shape) for t in state] != want:
            raise ValueError(f"state shapes {[tuple(t.shape) for t in state]}, expected {want}")


def _work(state, batch: int, nz: int, nx: int, z: tuple, x: tuple) -> dict[str, torch.Tensor]:
    """The loop's buffers, copies of ``state`` (x's memory fields per row) or zeros."""
    f32 = torch.float32
    def zeros(*shape):
        return torch.zeros(*shape, dtype=f32)

    if state is None:
        state = (zeros(batch, nz, nx), zeros(batch, nz, nx), zeros(*z), zeros(*z), zeros(*x),
                 zeros(*x))
    else:
        state = tuple(t.detach().to("cpu", f32) for t in state)
        state = (*state[:4], state[4].transpose(-1, -2), state[5].transpose(-1, -2))
    u, u_prev, psi_z, zeta_z, psi_x, zeta_x = (t.contiguous().clone() for t in state)
    return {"u": u, "up": u_prev, "w": zeros(batch, nz, nx), "psiz": psi_z, "psiz2": zeros(*z),
            "zetaz": zeta_z, "psix": psi_x, "psix2": zeros(*x), "zetax": zeta_x}


__all__ = ["available", "propagate", "run_segment"]
