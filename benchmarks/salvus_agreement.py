"""Our solver against the authors' Salvus wavefields (Yang et al. 2021), set up as they were.

Usage::

    python benchmarks/salvus_agreement.py [--reference PATH] [--n 20] [--threads 1]
    python benchmarks/salvus_agreement.py --stats-only     # velocity statistics only

Reads ``../shared/reference/salvus_yang2021/samples_0_19.npz`` relative to the repository root by
default (never copied into the repository; see the README beside it), or any ``--reference``
file with the same arrays (``dV_percent`` (n, 64, 64) indexed (x, z); ``source_xy_m`` (n, 2)
from the domain centre; ``wavefield_phi`` (n, 64, 64, 100) indexed (x, z, t)). Exits cleanly if
it is absent. Nothing is fitted:

- **models**: their exact ``vp = 3000 (1 + dV/100)``, unclipped; the solver plans for the
  range of the models compared;
- **amplitude**: Salvus's field is the acoustic potential of
  ``(1/(rho c^2)) phi_tt - div(rho^-1 grad phi) = f``; ours solves ``u_tt - c^2 lap u = f``, so
  ``phi = kappa_s u`` with ``kappa_s = rho(x_s) vp(x_s)^2`` at the source (bilinear) and
  ``rho = 2200 (1 + dV/100)``, computed per sample;
- **time origin**: their Ricker peaks 0.195 s after their sample 0, ours at 1.5 / f = 0.1875 s
  after ours, so their sample k is our time ``0.04 k - 0.0075`` s. We simulate at 2.5 ms output
  steps and take those samples exactly (no interpolation).

Reported per sample and pooled (``sqrt(sum ||e||^2 / sum ||ref||^2)`` over samples), plus the
mean of the per-sample values: the relative L2 over the whole record (100 samples, 4 s) and over
the first 1.5 s (samples 0-37); and, as diagnostics that are **not applied** to those numbers,
the best global time stretch ``s`` (ours read at ``t_peak + s (t - t_peak)``, cubic spline on the
2.5 ms samples; ``s > 1``: the reference runs fast), the relative L2 it would give, the
least-squares amplitude over ``kappa_s``, and the pooled error by time window.

The solver runs eagerly by default (``--compile`` to change): on a shared 2-core machine the
one-off ``torch.compile`` of a new shape took minutes, more than the 20 eager simulations.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seisfno.physics import AUTHORS_VELOCITY, AcousticSolver, VonKarmanParams, get_preset
from seisfno.physics.solver import TorchBackend
from seisfno.physics.velocity import sample_rng, velocity_statistics

REF = (Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "salvus_yang2021"
       / "samples_0_19.npz")
RHO0, VP0 = 2200.0, 3000.0
REF_PEAK_S = 0.195  # their Ricker peak after their sample 0
FINE_DT_S = 0.0025  # divides 0.04 and the 7.5 ms offset
EARLY_S = 1.5
STRETCHES = np.round(np.arange(0.990, 1.0101, 0.0005), 4)
ORIGINS_S = (0.190, 0.1925, 0.195, 0.1975, 0.200)  # diagnostic: other time origins
REF_DT_S = 5.0 / 1036  # the reference's time step (its README: about 1036 steps to 5 s)


def load_reference(path: Path, n: int) -> dict:
    """Their arrays, turned to our conventions: (z, x) models, (t, z, x) fields, sources
    ``(x, z)`` from the top-left node."""
    with np.load(path) as z:
        dv = z["dV_percent"][:n].astype(np.float64).transpose(0, 2, 1)
        src = z["source_xy_m"][:n].astype(np.float64) + 5000.0
        phi = z["wavefield_phi"][:n].astype(np.float64).transpose(0, 3, 2, 1)
    return {"dv": dv, "vel": VP0 * (1 + dv / 100), "src": src, "ref": phi}


def kappa_at_source(dv: np.ndarray, src_xz_m: np.ndarray, grid) -> float:
    """``rho vp^2`` at the source, with ``dV`` interpolated bilinearly (rho, vp both follow it)."""
    from scipy.interpolate import RegularGridInterpolator

    d = float(RegularGridInterpolator((grid.z_m, grid.x_m), dv)([src_xz_m[1], src_xz_m[0]])[0])
    return RHO0 * (1 + d / 100) * (VP0 * (1 + d / 100)) ** 2


def missing(reference: Path) -> bool:
    """Say so on stderr when the reference file is absent (the scripts then end cleanly)."""
    if reference.is_file():
        return False
    print(f"reference wavefields not found at {reference}; nothing to compare", file=sys.stderr)
    return True


def fine_solver(vel: np.ndarray, preset, nt_fine: int, backend) -> AcousticSolver:
    """Our solver for these models, recording every 2.5 ms (point decimation)."""
    return AcousticSolver(preset.grid, preset.f_peak_hz, FINE_DT_S, nt_fine, backend=backend,
                          velocity_range_mps=(float(vel.min()), float(vel.max())),
                          decimation="point")


def simulate_fine(vel: np.ndarray, src: np.ndarray, preset, nt_fine: int, args):
    """Yield our wavefields ``(nt_fine, nz, nx)`` at 2.5 ms steps, one sample at a time."""
    backend = TorchBackend(compile=args.compile) if args.backend == "torch" else args.backend
    solver = fine_solver(vel, preset, nt_fine, backend)
    for k in range(0, len(vel), args.batch):
        with torch.no_grad():
            u = solver(torch.as_tensor(vel[k:k + args.batch], dtype=torch.float32),
                       src[k:k + args.batch])
        yield from u.double().numpy()


def _ours_at(fine: np.ndarray, nt: int, preset, ref_peak_s: float) -> np.ndarray:
    """Our samples at the reference's times, for a reference whose Ricker peaks ``ref_peak_s``
    after its sample 0 (a whole number of 2.5 ms steps from ours)."""
    step = round(preset.dt_out_s / FINE_DT_S)
    idx = step * np.arange(nt) - round((ref_peak_s - 1.5 / preset.f_peak_hz) / FINE_DT_S)
    ours = np.zeros((nt, *fine.shape[1:]))
    ours[idx >= 0] = fine[idx[idx >= 0]]  # before our t = 0 the field is zero
    return ours


def score_sample(fine: np.ndarray, ref: np.ndarray, kappa: float, preset) -> dict:
    """Squared errors per time sample of ``kappa * ours`` against ``ref``: as set up (no fit);
    and, as diagnostics, at each global stretch of ``STRETCHES`` and each time origin of
    ``ORIGINS_S``; ``ref``'s energy per time; least-squares amplitudes over ``kappa``."""
    from scipy.interpolate import CubicSpline

    nt = ref.shape[0]
    ours = _ours_at(fine, nt, preset, REF_PEAK_S)
    spline = CubicSpline(np.arange(fine.shape[0]) * FINE_DT_S, fine, axis=0)
    t_peak = 1.5 / preset.f_peak_hz
    t_ref = np.arange(nt) * preset.dt_out_s - (REF_PEAK_S - t_peak)
    num_s, lsq_s = [], []
    for s in STRETCHES:
        o = spline(np.clip(t_peak + s * (t_ref - t_peak), 0, None))
        num_s.append(np.sum((kappa * o - ref) ** 2, axis=(1, 2)))
        lsq_s.append(float(np.sum(o * ref) / np.sum(o * o) / kappa))
    origins = [np.sum((kappa * _ours_at(fine, nt, preset, t0) - ref) ** 2, axis=(1, 2))
               for t0 in ORIGINS_S]
    f_ours, f_ref = np.fft.rfft(kappa * ours, axis=0), np.fft.rfft(ref, axis=0)
    return {"kappa": kappa, "num_t": np.sum((kappa * ours - ref) ** 2, axis=(1, 2)),
            "spec_ours": np.sum(abs(f_ours) ** 2, axis=(1, 2)),
            "spec_ref": np.sum(abs(f_ref) ** 2, axis=(1, 2)),
            "cross": np.sum(f_ref * np.conj(f_ours), axis=(1, 2)),
            "den_t": np.sum(ref**2, axis=(1, 2)), "num_stretch_t": np.stack(num_s),
            "lsq_stretch": np.array(lsq_s), "num_origin_t": np.stack(origins),
            "lsq_over_kappa": float(np.sum(ours * ref) / np.sum(ours * ours) / kappa)}


def add_time_dispersion(fine: np.ndarray, dt_scheme: float, f_peak_hz: float) -> np.ndarray:
    """Our record as a 2nd-order (central-difference) time stepper at ``dt_scheme`` would give
    it: the forward time-dispersion transform (Koene et al., 2018, Geophysics 83(2)).

    At frequency ``w`` such a scheme solves the continuous problem at
    ``w~ = (2 / dt) sin(w dt / 2) < w`` (so its waves run fast) with the source still at ``w``:
    ``U_d(w) = U(w~) S(w) / S(w~)``, with ``S`` the Ricker's spectrum, its delay included. Our
    own 4th-order stepping at ~1 ms is dispersion-free to this accuracy, so this is the
    reference's time discretization applied to ours, with nothing fitted. ``fine`` is
    ``(nt, ...)`` at ``FINE_DT_S`` from our t = 0; zero-padded to twice its length.
    """
    n = fine.shape[0]
    t = np.arange(n) * FINE_DT_S
    w = 2 * np.pi * np.fft.rfftfreq(2 * n, FINE_DT_S)
    keep = w <= 2 * np.pi * 5 * f_peak_hz  # the Ricker holds nothing above 5 f_peak
    wk = w[keep]
    wt = (2 / dt_scheme) * np.sin(wk * dt_scheme / 2)
    wp, tp = 2 * np.pi * f_peak_hz, 1.5 / f_peak_hz

    def ricker_spectrum(x):
        return x**2 * np.exp(-(x / wp) ** 2 - 1j * x * tp)

    ratio = np.ones(len(wk), complex)
    ratio[1:] = ricker_spectrum(wk[1:]) / ricker_spectrum(wt[1:])
    flat = fine.reshape(n, -1)
    u_wt = np.cos(np.outer(wt, t)) @ flat - 1j * (np.sin(np.outer(wt, t)) @ flat)
    spec = np.zeros((len(w), flat.shape[1]), complex)
    spec[keep] = u_wt * ratio[:, None]
    return np.fft.irfft(spec, n=2 * n, axis=0)[:n].reshape(fine.shape)


def score_dispersed(fine: np.ndarray, ref: np.ndarray, kappa: float, preset) -> dict:
    """Squared errors per time sample with the reference's time stepping added to ours
    (:func:`add_time_dispersion` at ``REF_DT_S``), at the set-up's time origin and the others."""
    disp = add_time_dispersion(fine, REF_DT_S, preset.f_peak_hz)
    nt = ref.shape[0]
    return {"den_t": np.sum(ref**2, axis=(1, 2)), "num_origin_t": np.stack([
        np.sum((kappa * _ours_at(disp, nt, preset, t0) - ref) ** 2, axis=(1, 2))
        for t0 in ORIGINS_S])}


def print_dispersed(rows: list[dict], dt_out_s: float) -> None:
    early = np.arange(len(rows[0]["den_t"])) * dt_out_s < EARLY_S
    k = ORIGINS_S.index(REF_PEAK_S)
    whole = [_l2(r["num_origin_t"][k], r["den_t"]) for r in rows]
    first = [_l2(r["num_origin_t"][k], r["den_t"], early) for r in rows]
    den = sum(r["den_t"] for r in rows)
    num_o = sum(r["num_origin_t"] for r in rows)
    print(f"\nwith the reference's time stepping added to ours (forward time-dispersion "
          f"transform, 2nd order at dt = {1e3 * REF_DT_S:.2f} ms; nothing fitted)\n")
    print("| Ricker peak after sample 0 (s) | whole record | first 1.5 s |\n|---|---|---|")
    for t0, n_o in zip(ORIGINS_S, num_o, strict=True):
        tag = " (the set-up)" if t0 == REF_PEAK_S else ""
        print(f"| {t0:.4f}{tag} | {_l2(n_o, den):.3f} | {_l2(n_o, den, early):.3f} |")
    print(f"\nper sample at the set-up's origin: whole {min(whole):.3f}-{max(whole):.3f} "
          f"(mean {np.mean(whole):.3f}), first 1.5 s {min(first):.3f}-{max(first):.3f} "
          f"(mean {np.mean(first):.3f})")


def _l2(num_t: np.ndarray, den_t: np.ndarray, sel=slice(None)) -> float:
    return float(np.sqrt(np.sum(num_t[..., sel]) / np.sum(den_t[..., sel])))


def print_agreement(rows: list[dict], seconds: float, args, dt_out_s: float) -> None:
    early = np.arange(len(rows[0]["den_t"])) * dt_out_s < EARLY_S
    print(f"{len(rows)} samples from {args.reference}; backend {args.backend} "
          f"(compile={args.compile}), {args.threads} thread(s), {seconds / len(rows):.1f} s per "
          "simulation (2.5 ms output steps)\n")
    print("| sample | kappa_s (GPa) | rel. L2, whole record | rel. L2, first 1.5 s "
          "| best stretch (not applied) | whole / first 1.5 s at that stretch "
          "| LSQ amplitude / kappa_s, as set up / at that stretch |")
    print("|---|---|---|---|---|---|---|")
    whole, first = [], []
    for i, r in enumerate(rows):
        j = int(np.argmin(r["num_stretch_t"].sum(axis=1)))
        whole.append(_l2(r["num_t"], r["den_t"]))
        first.append(_l2(r["num_t"], r["den_t"], early))
        print(f"| {i} | {r['kappa'] / 1e9:.2f} | {whole[-1]:.3f} | {first[-1]:.3f} | "
              f"{STRETCHES[j]:.4f} | {_l2(r['num_stretch_t'][j], r['den_t']):.3f} / "
              f"{_l2(r['num_stretch_t'][j], r['den_t'], early):.3f} | "
              f"{r['lsq_over_kappa']:.3f} / {r['lsq_stretch'][j]:.3f} |")
    num, den = sum(r["num_t"] for r in rows), sum(r["den_t"] for r in rows)
    num_s = sum(r["num_stretch_t"] for r in rows)
    j = int(np.argmin(num_s.sum(axis=1)))
    lsq = np.array([r["lsq_over_kappa"] for r in rows])
    lsq_s = np.array([r["lsq_stretch"][j] for r in rows])
    print(f"| pooled | | {_l2(num, den):.3f} | {_l2(num, den, early):.3f} | {STRETCHES[j]:.4f} "
          f"| {_l2(num_s[j], den):.3f} / {_l2(num_s[j], den, early):.3f} "
          f"| {lsq.mean():.3f} +- {lsq.std():.3f} / {lsq_s.mean():.3f} +- {lsq_s.std():.3f} |")
    print(f"| mean of samples | | {np.mean(whole):.3f} | {np.mean(first):.3f} | | | |")
    print(f"\nrange per sample: whole {min(whole):.3f}-{max(whole):.3f}, "
          f"first 1.5 s {min(first):.3f}-{max(first):.3f}")
    t = np.arange(len(den)) * dt_out_s
    print(f"\npooled relative L2 by time window (as set up / at the stretch {STRETCHES[j]:.4f})\n")
    print("| window (s) | share of the reference's energy | as set up | stretched |")
    print("|---|---|---|---|")
    for lo, hi in ((0, 0.5), (0.5, 1.0), (1.0, 1.5), (1.5, 2.0), (2.0, 3.0), (3.0, 4.0)):
        w = (t >= lo) & (t < hi)
        print(f"| {lo:.1f}-{hi:.1f} | {den[w].sum() / den.sum():.2f} | {_l2(num, den, w):.3f} "
              f"| {_l2(num_s[j], den, w):.3f} |")
    print_spectrum(rows, dt_out_s)
    num_o = sum(r["num_origin_t"] for r in rows)
    print("\npooled relative L2 for other time origins (diagnostic; the set-up uses 0.195 s)\n")
    print("| Ricker peak after sample 0 (s) | whole record | first 1.5 s |\n|---|---|---|")
    for t0, n_o in zip(ORIGINS_S, num_o, strict=True):
        print(f"| {t0:.4f} | {_l2(n_o, den):.3f} | {_l2(n_o, den, early):.3f} |")


def print_spectrum(rows: list[dict], dt_out_s: float) -> None:
    """Pooled amplitude ratio and phase of the reference against ours per frequency, as set up.

    A reference low-passed before its 0.04 s sampling would show a ratio falling towards the
    Nyquist frequency; a reference that runs fast shows a phase lead growing with frequency
    (numpy's sign convention: a positive phase is a reference ahead of ours in time)."""
    spec_o = sum(r["spec_ours"] for r in rows)
    spec_r = sum(r["spec_ref"] for r in rows)
    cross = sum(r["cross"] for r in rows)
    freq = np.fft.rfftfreq(2 * (len(spec_o) - 1), dt_out_s)
    print("\nby frequency, pooled over samples and nodes, as set up (whole record)\n")
    print("| frequency (Hz) | reference's energy share | amplitude ratio reference / ours "
          "| phase lead of the reference (rad) | as a time lead (ms) |\n|---|---|---|---|---|")
    for k in range(2, len(freq) - 1, 4):
        phase = float(np.angle(cross[k]))
        print(f"| {freq[k]:.1f} | {spec_r[k] / spec_r.sum():.3f} | "
              f"{np.sqrt(spec_r[k] / spec_o[k]):.3f} | {phase:+.3f} | "
              f"{1e3 * phase / (2 * np.pi * freq[k]):+.1f} |")


def print_statistics(ref_vel: np.ndarray, groups: int = 60) -> None:
    """Mean, sigma and correlation length of their models against ours (same estimators),
    with the spread of a ``len(ref_vel)``-model estimate from ``groups`` groups of ours."""
    g = get_preset("paper").grid
    n = len(ref_vel)
    ref = velocity_statistics(ref_vel, g.dx_m)
    ten = VonKarmanParams(corr_len_m=(10 * g.dx_m,) * 2, clip_mps=(2150.0, 3850.0),
                          method="authors")
    print(f"\nvelocity statistics, {n} models each (ours: mean +- sd over {groups} groups; "
          "z = (theirs - ours) / sd)\n")
    print("| distribution | mean (m/s) | sigma (m/s) | correlation length (m) |\n|---|---|---|---|")
    print(f"| theirs ({n} reference models) | {ref['mean_mps']:.0f} | {ref['sigma_mps']:.1f} | "
          f"{ref['corr_len_m']:.0f} |")
    for name, params in (("ours, `--velocity authors` (20 nodes)", AUTHORS_VELOCITY),
                         ("their notebook's 10 nodes", ten),
                         ("ours, default (1600 m, clipped)", VonKarmanParams())):
        stats = [velocity_statistics(np.stack([params.draw(g, sample_rng(2021, j * n + i))
                                               for i in range(n)]), g.dx_m)
                 for j in range(groups)]
        cells = []
        for key in ("mean_mps", "sigma_mps", "corr_len_m"):
            a = np.array([s[key] for s in stats])
            cells.append(f"{a.mean():.0f} +- {a.std(ddof=1):.0f} "
                         f"(z = {(ref[key] - a.mean()) / a.std(ddof=1):+.1f})")
        print(f"| {name} | " + " | ".join(cells) + " |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=REF, help="npz with the same arrays")
    ap.add_argument("--n", type=int, default=20, help="first n samples")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=4, help="simulations per solver call")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile the step (minutes per new shape on 2 cores; default off)")
    ap.add_argument("--stats-only", action="store_true", help="velocity statistics only")
    args = ap.parse_args()
    if missing(args.reference):
        return 0
    torch.set_num_threads(args.threads)
    data = load_reference(args.reference, args.n)
    if not args.stats_only:
        p = get_preset("paper")
        nt_fine = round((p.nt_out * p.dt_out_s + 0.1) / FINE_DT_S)  # room for the stretches
        t0 = time.perf_counter()
        rows, dispersed = [], []
        for i, fine in enumerate(simulate_fine(data["vel"], data["src"], p, nt_fine, args)):
            kappa = kappa_at_source(data["dv"][i], data["src"][i], p.grid)
            rows.append(score_sample(fine, data["ref"][i], kappa, p))
            dispersed.append(score_dispersed(fine, data["ref"][i], kappa, p))
        print_agreement(rows, time.perf_counter() - t0, args, p.dt_out_s)
        print_dispersed(dispersed, p.dt_out_s)
    print_statistics(data["vel"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
