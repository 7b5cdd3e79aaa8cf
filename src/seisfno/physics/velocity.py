"""Velocity models: von Karman random fields, simple shapes, and the user's own arrays.

All models are ``(nz, nx)`` float32 arrays in m/s on a :class:`~seisfno.physics.grid.Grid`.

The von Karman generator is our own (a spectral filter of white noise, ~30 lines) rather than a
dependency: the libraries that offer it (``gstools``) pull in heavy compiled stacks, and we need
bit-exact control of the random stream so that a dataset's models depend only on
``(seed, index)``. It is tested against the analytic covariance (exponential for kappa = 0.5).
:func:`von_karman_authors` is the paper's own recipe (drawn periodic on a grid twice as large,
normalized per draw, cropped, not clipped), tested against the statistics of their models.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .._errors import SeisfnoError
from .grid import Grid


def sample_rng(seed: int, index: int) -> np.random.Generator:
    """The random generator of sample ``index`` of a dataset with base ``seed``.

    It depends on ``(seed, index)`` alone, so any split of the work gives the same samples.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(index)]))


def _check_von_karman(sigma_mps: float, kappa: float, corr_len_m) -> None:
    if sigma_mps < 0 or kappa <= 0 or min(corr_len_m) <= 0:
        raise SeisfnoError(
            "von Karman needs sigma >= 0, kappa > 0 and positive correlation lengths")


def von_karman(grid: Grid, rng: np.random.Generator, *, mean_mps: float = 3000.0,
               sigma_mps: float = 150.0, kappa: float = 0.5,
               corr_len_m: tuple[float, float] = (1600.0, 1600.0),
               clip_mps: tuple[float, float] | None = None) -> np.ndarray:
    """A von Karman random velocity field.

    The field has power spectrum ``P(k) ~ (1 + (kz az)^2 + (kx ax)^2)^-(kappa + 1)`` (2-D), scaled
    so that its expected variance is ``sigma_mps**2``. It is drawn on a grid padded by three
    correlation lengths on each side and cropped, so it is not periodic across the domain.

    Parameters
    ----------
    grid : Grid
    rng : numpy.random.Generator
        The only source of randomness (see :func:`sample_rng`).
    mean_mps, sigma_mps : float
        Mean and standard deviation in m/s (the paper: 3000 and 150).
    kappa : float
        Hurst exponent (the paper: 0.5, an exponential covariance).
    corr_len_m : (float, float)
        Correlation lengths ``(az, ax)`` in metres (the paper: 1600, 1600).
    clip_mps : (float, float), optional
        Clip the field to this range (keeps rare extremes inside a solver's planned range).

    Returns
    -------
    ndarray, shape (nz, nx), float32
    """
    _check_von_karman(sigma_mps, kappa, corr_len_m)
    az, ax = corr_len_m
    pz = grid.nz + 2 * math.ceil(3 * az / grid.dz_m)
    px = grid.nx + 2 * math.ceil(3 * ax / grid.dx_m)
    kz = 2 * np.pi * np.fft.fftfreq(pz, d=grid.dz_m)
    kx = 2 * np.pi * np.fft.rfftfreq(px, d=grid.dx_m)
    k2 = (kz[:, None] * az) ** 2 + (kx[None, :] * ax) ** 2
    power = (1.0 + k2) ** (-(kappa + 1.0))
    # Hermitian weights of the rfft half-plane, so the variance is exact for the full spectrum.
    weight = np.full(kx.shape, 2.0)
    weight[0] = 1.0
    if px % 2 == 0:
        weight[-1] = 1.0
    power *= sigma_mps**2 / (power * weight[None, :]).sum() * (pz * px)
    noise = np.fft.rfft2(rng.standard_normal((pz, px)))
    field = np.fft.irfft2(noise * np.sqrt(power), s=(pz, px))
    oz, ox = (pz - grid.nz) // 2, (px - grid.nx) // 2
    v = mean_mps + field[oz:oz + grid.nz, ox:ox + grid.nx]
    if clip_mps is not None:
        v = np.clip(v, *clip_mps)
    return v.astype(np.float32)


def von_karman_authors(grid: Grid, rng: np.random.Generator, *, mean_mps: float = 3000.0,
                       sigma_mps: float = 150.0, kappa: float = 0.5,
                       corr_len_m: tuple[float, float] = (3174.6, 3174.6)) -> np.ndarray:
    """A von Karman field drawn the way the paper's authors drew theirs.

    The recipe of ``generate_2dGRF`` in the authors' ``Salvus_acoustic_simulation.ipynb``
    (yanyangg/AcousticNeuralOperator), written anew: white noise uniform in [-1, 1] on a
    **periodic** grid of ``2 nz x 2 nx`` nodes, filtered in amplitude by
    ``(1 + (kz az)^2 + (kx ax)^2)^-((kappa + 1) / 2)``, scaled so that the standard deviation
    over the whole doubled grid is exactly ``sigma_mps``, cropped to its centre
    (``[nz // 2 : nz // 2 + nz]``) and **not clipped**. The crop's own mean and spread vary from
    draw to draw (the doubled grid holds only ~13 correlation lengths per side).

    Their values: 64 x 64 nodes over 10 km (2x: 128 x 128), sigma 5 % of 3000 m/s, kappa 0.5;
    the correlation length that fits their published models is 20 nodes (3175 m; the notebook
    shows 10, see :data:`~seisfno.physics.presets.AUTHORS_VELOCITY`). Their 100 published
    models span 2401-3637 m/s; 20 000 of ours (20 nodes) reached +-26.9 % at most.

    Parameters
    ----------
    grid : Grid
    rng : numpy.random.Generator
        The only source of randomness (see :func:`sample_rng`).
    mean_mps, sigma_mps, kappa, corr_len_m
        As in :func:`von_karman`; ``corr_len_m`` is ``(az, ax)``.

    Returns
    -------
    ndarray, shape (nz, nx), float32
    """
    _check_von_karman(sigma_mps, kappa, corr_len_m)
    az, ax = corr_len_m
    pz, px = 2 * grid.nz, 2 * grid.nx
    kz = 2 * np.pi * np.fft.fftfreq(pz, d=grid.dz_m) * az
    kx = 2 * np.pi * np.fft.rfftfreq(px, d=grid.dx_m) * ax
    amplitude = (1.0 + kz[:, None] ** 2 + kx[None, :] ** 2) ** (-(kappa + 1.0) / 2)
    noise = rng.uniform(-1.0, 1.0, (pz, px))
    field = np.fft.irfft2(np.fft.rfft2(noise) * amplitude, s=(pz, px))
    field *= sigma_mps / max(float(field.std()), 1e-300)
    oz, ox = pz // 4, px // 4
    return (mean_mps + field[oz:oz + grid.nz, ox:ox + grid.nx]).astype(np.float32)


def velocity_statistics(models: np.ndarray, spacing_m: float, max_lag: int = 30) -> dict:
    """Mean, standard deviation and correlation length of a set of random models.

    The estimators, the same for any source of models (ours, the authors'):

    - ``mean_mps``: over all nodes of all models;
    - ``sigma_mps``: the pooled standard deviation about that mean;
    - ``corr_len_m``: where the empirical autocorrelation falls to ``1/e`` (linear interpolation
      between lags), with each model's own mean removed, the lagged products averaged over the
      node pairs of each model, both axes and all models, then divided by lag 0. For a von
      Karman field with kappa = 0.5 the true covariance is ``exp(-r/a)``; removing each model's
      mean biases this estimate of ``a`` (upwards here, since the crop is only ~6 ``a`` wide),
      so compare estimates with estimates, not with ``a``.

    Parameters
    ----------
    models : ndarray, shape (n, nz, nx), m/s
    spacing_m : float
        Node spacing (equal in z and x).
    max_lag : int
        Lags searched, in nodes.

    Returns
    -------
    dict with ``mean_mps``, ``sigma_mps``, ``corr_len_m``, ``autocorrelation`` (per lag 0..)
    """
    f = np.asarray(models, np.float64)
    if f.ndim != 3 or min(f.shape[1:]) <= max_lag:
        raise SeisfnoError(f"models must be (n, nz, nx) with sides > {max_lag}, got {f.shape}")
    mean = float(f.mean())
    sigma = float(np.sqrt(np.mean((f - mean) ** 2)))
    d = f - f.mean(axis=(1, 2), keepdims=True)
    cov = np.array([0.5 * (np.mean(d[:, :, :d.shape[2] - lag] * d[:, :, lag:])
                           + np.mean(d[:, :d.shape[1] - lag] * d[:, lag:]))
                    for lag in range(max_lag + 1)])
    rho = cov / cov[0]
    below = np.nonzero(rho < np.exp(-1.0))[0]
    if len(below) == 0:
        raise SeisfnoError(f"the autocorrelation stays above 1/e up to lag {max_lag}")
    j = int(below[0])
    lag = j - 1 + (rho[j - 1] - np.exp(-1.0)) / (rho[j - 1] - rho[j])
    return {"mean_mps": mean, "sigma_mps": sigma, "corr_len_m": float(lag * spacing_m),
            "autocorrelation": rho.tolist()}


def von_karman_covariance(r_m: np.ndarray, sigma_mps: float, kappa: float,
                          corr_len_m: float) -> np.ndarray:
    """Analytic von Karman covariance ``sigma^2 2^(1-k)/Gamma(k) (r/a)^k K_k(r/a)``."""
    from scipy.special import gamma, kv

    x = np.maximum(np.asarray(r_m, dtype=np.float64) / corr_len_m, 1e-12)
    return sigma_mps**2 * 2 ** (1 - kappa) / gamma(kappa) * x**kappa * kv(kappa, x)


def homogeneous(grid: Grid, velocity_mps: float = 3000.0) -> np.ndarray:
    """A constant model."""
    return np.full(grid.shape, velocity_mps, dtype=np.float32)


def square_anomaly(grid: Grid, *, background_mps: float = 3000.0, contrast: float = 0.05,
                   size_m: float = 2000.0, center_xz_m: tuple[float, float] | None = None
                   ) -> np.ndarray:
    """A square of ``background * (1 + contrast)`` in a homogeneous background (Fig. 4a-c).

    ``center_xz_m`` defaults to the domain centre; ``size_m`` is the side length.
    """
    cx, cz = center_xz_m or (grid.width_m / 2, grid.depth_m / 2)
    v = homogeneous(grid, background_mps)
    inside = ((np.abs(grid.z_m[:, None] - cz) <= size_m / 2)
              & (np.abs(grid.x_m[None, :] - cx) <= size_m / 2))
    v[inside] = background_mps * (1.0 + contrast)
    return v


def layered(grid: Grid, velocities_mps: list[float], interfaces_m: list[float]) -> np.ndarray:
    """Horizontal layers: ``velocities_mps[i]`` above ``interfaces_m[i]`` (depths, increasing)."""
    if len(velocities_mps) != len(interfaces_m) + 1:
        raise SeisfnoError("layered needs one more velocity than interfaces")
    if list(interfaces_m) != sorted(interfaces_m):
        raise SeisfnoError("layer interfaces must be given in increasing depth")
    layer = np.searchsorted(np.asarray(interfaces_m), grid.z_m, side="right")
    return np.repeat(np.asarray(velocities_mps, np.float32)[layer][:, None], grid.nx, axis=1)


def blocky(grid: Grid, rng: np.random.Generator, *, n_blocks: int = 6,
           background_mps: float = 3000.0, contrast: float = 0.08) -> np.ndarray:
    """Sharp rectangular blocks of +/- ``contrast`` in a homogeneous background (like Fig. 5e)."""
    v = homogeneous(grid, background_mps)
    for _ in range(n_blocks):
        h = rng.uniform(0.1, 0.3) * grid.depth_m
        w = rng.uniform(0.1, 0.3) * grid.width_m
        z0 = rng.uniform(0, grid.depth_m - h)
        x0 = rng.uniform(0, grid.width_m - w)
        sign = rng.choice([-1.0, 1.0])
        inside = ((grid.z_m[:, None] >= z0) & (grid.z_m[:, None] <= z0 + h)
                  & (grid.x_m[None, :] >= x0) & (grid.x_m[None, :] <= x0 + w))
        v[inside] = background_mps * (1.0 + sign * contrast * rng.uniform(0.5, 1.0))
    return v


def validate_velocity(v: np.ndarray | torch.Tensor, grid: Grid | None = None,
                      name: str = "velocity") -> None:
    """Raise :class:`SeisfnoError` unless ``v`` is a finite, positive ``(..., nz, nx)`` array."""
    shape = tuple(v.shape)
    if len(shape) < 2:
        raise SeisfnoError(f"{name} must be a 2-D (nz, nx) array, got shape {shape}")
    if grid is not None and shape[-2:] != grid.shape:
        raise SeisfnoError(f"{name} has shape {shape[-2:]}, but the grid is {grid.shape} (nz, nx)")
    t = torch.as_tensor(v)
    if not torch.isfinite(t).all():
        raise SeisfnoError(f"{name} contains NaN or infinite values")
    if (t <= 0).any():
        raise SeisfnoError(f"{name} must be positive everywhere (m/s); min is {t.min().item():g}")


def load_velocity(path: str | Path, key: str | None = None) -> np.ndarray:
    """Read a velocity model (m/s, ``(nz, nx)``) from ``.npy``, ``.npz`` or SEG-Y.

    For ``.npz`` the array ``key`` is taken, else ``velocity``/``v``/``vp`` or the only array.
    SEG-Y (``.sgy``/``.segy``, needs ``segyio``) is read with traces as columns (x).
    """
    path = Path(path)
    if not path.is_file():
        raise SeisfnoError(f"velocity file not found: {path}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            v = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                names = list(z.keys())
                pick = key or next((n for n in ("velocity", "v", "vp") if n in names),
                                   names[0] if len(names) == 1 else None)
                if pick not in names:
                    raise SeisfnoError(f"{path}: choose one of the arrays {names}")
                v = z[pick]
        elif suffix in (".sgy", ".segy"):
            try:
                import segyio
            except ImportError as e:  # pragma: no cover - optional dependency
                raise SeisfnoError("reading SEG-Y needs segyio: pip install segyio") from e
            with segyio.open(str(path), ignore_geometry=True) as f:
                # segyio's trace iterator reuses one buffer: read all traces at once.
                v = np.array(f.trace.raw[:], copy=True).reshape(f.tracecount, -1).T
        else:
            raise SeisfnoError(f"{path}: unknown velocity format {suffix!r} (use .npy, .npz, .sgy)")
    except SeisfnoError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise SeisfnoError(f"cannot read velocity file {path}: {e}") from e
    if v.ndim != 2 or not np.issubdtype(v.dtype, np.number):
        raise SeisfnoError(f"{path}: velocity must be a numeric 2-D (nz, nx) array, got {v.shape}")
    v = v.astype(np.float32)
    validate_velocity(v, name=str(path))
    return v


def resample(v: np.ndarray | torch.Tensor, grid_to: Grid) -> np.ndarray | torch.Tensor:
    """Bilinearly resample ``(..., nz, nx)`` models to ``grid_to`` over the same domain.

    Nodes lie on the domain edges, so corners map to corners (``align_corners=True``).
    Returns the same type as given (a tensor stays differentiable).
    """
    is_np = isinstance(v, np.ndarray)
    t = torch.as_tensor(v)
    if tuple(t.shape[-2:]) == grid_to.shape:
        return v
    lead = t.shape[:-2]
    t4 = t.reshape(-1, 1, *t.shape[-2:])
    out = F.interpolate(t4, size=grid_to.shape, mode="bilinear", align_corners=True)
    out = out.reshape(*lead, *grid_to.shape)
    return out.numpy() if is_np else out
