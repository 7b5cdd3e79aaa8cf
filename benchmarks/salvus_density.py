"""What the authors' variable density does to the agreement with their Salvus wavefields.

Usage::

    python benchmarks/salvus_density.py [--reference PATH] [--n 20] [--threads 1] [--refine 4]

A diagnostic for ``salvus_agreement.py`` (same reference file, same time origin, same scoring),
which left open why our first 1.5 s differ from the reference by 0.16-0.32 per sample. Our solver
has constant density; Salvus solved ``(1/(rho c^2)) phi_tt - div(rho^-1 grad phi) = f`` with
``rho = 2200 (1 + dV/100)``. ``deepwave.acoustic`` (staggered grid, 8th order in space) solves the
same equation for the pressure, so this script runs it twice per sample on the same grid, the same
plan and the same sources, changing only the density:

- **constant**: ``rho = rho(x_s)`` everywhere, the problem our solver solves;
- **variable**: ``rho = 2200 (1 + dV/100)``, the authors' problem.

Both share the source's ``rho`` and ``vp``, so the amplitude near the source is the same. The
source is a volume rate whose time derivative is our Ricker, spread over the cells with the same
Kaiser-windowed sinc weights as our solver, so the pressure is ``kappa_s u``. The one unit factor
of deepwave's volume-rate convention is checked, not fitted: the constant-density run is compared
with our own solver (``rel. L2 vs ours``) and must agree closely. Nothing is fitted to the
reference.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
import torch

from seisfno.physics import fd, get_preset
from seisfno.physics.solver import TorchBackend

sys.path.insert(0, str(Path(__file__).resolve().parent))
from salvus_agreement import (  # noqa: E402
    EARLY_S,
    FINE_DT_S,
    REF,
    REF_PEAK_S,
    RHO0,
    VP0,
    _l2,
    fine_solver,
    kappa_at_source,
    load_reference,
    missing,
    score_sample,
)


def acoustic_run(plan, vel: torch.Tensor, rho: torch.Tensor, src_xz: np.ndarray, k: int,
                 margin: int = 4) -> torch.Tensor:
    """Pressure ``(nt_out, nz, nx)`` from ``deepwave.acoustic`` for one model, on the plan's grid,
    at ``k`` times the deepwave CFL step count; the source's volume rate is the time integral of
    our Ricker, so the pressure equals ``kappa_s`` times our ``u``."""
    import deepwave
    from deepwave.discretisation import cfl_condition

    fine, r = plan.fine, plan.refine
    cut = plan.pad - margin

    def extended(a: torch.Tensor) -> torch.Tensor:
        a = fd.fine_velocity(plan, a[None].double())[0]
        return a[cut:a.shape[0] - cut, cut:a.shape[1] - cut]

    v, d = extended(vel), extended(rho)
    nz_e, nx_e = v.shape
    vmax = 1.01 * plan.v_max_mps  # deepwave bounds the speed with the density gradient too
    _, ratio = cfl_condition(fine.dz_m, fine.dx_m, plan.dt_s, vmax)
    steps = int(ratio) * k
    dplan = dataclasses.replace(plan, dt_s=plan.dt_s / steps,
                                steps_per_output=plan.steps_per_output * steps)
    nt = dplan.n_steps
    # Volume rate at (n + 1/2) dt: the time integral of our Ricker (peak 1.5 / f), so that the
    # pressure's source term kappa d(rate)/dt is kappa times our Ricker.
    t = (np.arange(nt) + 0.5) * dplan.dt_s - 1.5 / plan.f_peak_hz
    rate = torch.as_tensor(t * np.exp(-(np.pi * plan.f_peak_hz * t) ** 2))
    iz, wz = fd._hicks_1d(margin + src_xz[1] / fine.dz_m, nz_e)
    ix, wx = fd._hicks_1d(margin + src_xz[0] / fine.dx_m, nx_e)
    w = np.outer(wz, wx)
    zz, xx = np.nonzero(w)
    loc = torch.as_tensor(np.stack([zz + iz, xx + ix], -1))[None]
    amp = torch.as_tensor(w[zz, xx] / (fine.dz_m * fine.dx_m))[None, :, None] * rate[None, None]
    gz, gx = plan.grid.shape
    rec = torch.stack(torch.meshgrid(margin + r * torch.arange(gz), margin + r * torch.arange(gx),
                                     indexing="ij"), -1).reshape(1, -1, 2)
    out = deepwave.acoustic(
        v.float(), d.float(), [fine.dz_m, fine.dx_m], dplan.dt_s,
        source_amplitudes_volume_rate=amp.float(), source_locations_volume_rate=loc,
        receiver_locations_p=rec, accuracy=8, pml_width=plan.pad - fd.HALO,
        pml_freq=plan.f_peak_hz, max_vel=vmax, location_interpolation="none")
    data = out.receiver_amplitudes_p
    mat = torch.as_tensor(fd.lowpass_matrix(dplan), dtype=data.dtype)
    return torch.einsum("kn,brn->bkr", mat, data)[0].reshape(plan.nt_out, gz, gx)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reference", type=Path, default=REF)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--refine", type=int, default=4,
                    help="deepwave steps per CFL step (its leapfrog is 2nd order in time)")
    args = ap.parse_args()
    if missing(args.reference):
        return 0
    torch.set_num_threads(args.threads)
    data = load_reference(args.reference, args.n)
    p = get_preset("paper")
    nt_fine = round((p.nt_out * p.dt_out_s + 0.1) / FINE_DT_S)
    solver = fine_solver(data["vel"], p, nt_fine, TorchBackend(compile=False))
    plan = solver.plan(data["vel"])
    rows = {"ours": [], "constant": [], "variable": []}
    check, effect = [], []
    t0 = time.perf_counter()
    for i in range(args.n):
        vel = torch.as_tensor(data["vel"][i])
        rho_var = torch.as_tensor(RHO0 * (1 + data["dv"][i] / 100))
        kappa = kappa_at_source(data["dv"][i], data["src"][i], p.grid)
        rho_s = RHO0 * (kappa / (RHO0 * VP0**2)) ** (1 / 3)  # kappa = rho vp^2, both ~ (1 + dV)
        with torch.no_grad():
            ours = solver(vel[None].float(), data["src"][i][None])[0].double().numpy()
        const = acoustic_run(plan, vel, torch.full_like(rho_var, rho_s), data["src"][i],
                             args.refine).double().numpy()
        var = acoustic_run(plan, vel, rho_var, data["src"][i], args.refine).double().numpy()
        check.append(np.linalg.norm(const - kappa * ours) / np.linalg.norm(kappa * ours))
        early = np.arange(len(const)) * FINE_DT_S < EARLY_S - (REF_PEAK_S - 1.5 / p.f_peak_hz)
        effect.append([np.linalg.norm(var - const) / np.linalg.norm(const),
                       np.linalg.norm((var - const)[early]) / np.linalg.norm(const[early])])
        rows["ours"].append(score_sample(ours, data["ref"][i], kappa, p))
        rows["constant"].append(score_sample(const, data["ref"][i], 1.0, p))
        rows["variable"].append(score_sample(var, data["ref"][i], 1.0, p))
        print(f"sample {i}: constant-density deepwave vs kappa_s x ours {check[-1]:.4f}; "
              f"first 1.5 s vs reference: ours {_first(rows['ours'][-1], p):.3f}, "
              f"constant {_first(rows['constant'][-1], p):.3f}, "
              f"variable {_first(rows['variable'][-1], p):.3f}", flush=True)
    print(f"\n{args.n} samples, {time.perf_counter() - t0:.0f} s, {args.threads} thread(s); "
          f"deepwave.acoustic at {args.refine}x its CFL step count; constant-density deepwave "
          f"against kappa_s x ours: {min(check):.4f}-{max(check):.4f}")
    e = np.array(effect)
    print(f"the density's own effect, ||variable - constant|| / ||constant||: whole record "
          f"{e[:, 0].min():.3f}-{e[:, 0].max():.3f} (mean {e[:, 0].mean():.3f}), first 1.5 s "
          f"{e[:, 1].min():.3f}-{e[:, 1].max():.3f} (mean {e[:, 1].mean():.3f})\n")
    print("| solver | density | pooled whole record | pooled first 1.5 s | per sample, first 1.5 s "
          "| LSQ amplitude (diagnostic) |\n|---|---|---|---|---|---|")
    for name, dens in (("ours (torch)", "constant"), ("deepwave.acoustic", "constant"),
                       ("deepwave.acoustic", "variable")):
        rs = rows["ours" if name.startswith("ours") else dens]
        num, den = sum(r["num_t"] for r in rs), sum(r["den_t"] for r in rs)
        early = np.arange(len(den)) * p.dt_out_s < EARLY_S
        per = [_l2(r["num_t"], r["den_t"], early) for r in rs]
        lsq = np.array([r["lsq_over_kappa"] for r in rs])
        print(f"| {name} | {dens} | {_l2(num, den):.3f} | {_l2(num, den, early):.3f} | "
              f"{min(per):.3f}-{max(per):.3f} | {lsq.mean():.3f} +- {lsq.std():.3f} |")
    return 0


def _first(row: dict, p) -> float:
    early = np.arange(len(row["den_t"])) * p.dt_out_s < EARLY_S
    return _l2(row["num_t"], row["den_t"], early)


if __name__ == "__main__":
    raise SystemExit(main())
