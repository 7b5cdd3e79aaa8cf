"""``seisfno invert``: full-waveform inversion with the solver, an operator, or both."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import typer

from .._errors import SeisfnoError
from ._app import app
from ._common import emit_json, set_threads


def _load_observed(path: Path):
    """``wavefield (S, nt, nz, nx)``, ``source_xz_m (S, 2)`` and the optional preset dict."""
    from ..physics import Preset

    if not path.is_file():
        raise SeisfnoError(f"observations file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            names = set(z.keys())
            missing = {"wavefield", "source_xz_m"} - names
            if missing:
                raise SeisfnoError(f"{path}: missing array(s) {sorted(missing)}; an observations "
                                   f"file holds wavefield (S, nt, nz, nx) and source_xz_m (S, 2)")
            wf = np.asarray(z["wavefield"], dtype=np.float32)
            src = np.asarray(z["source_xz_m"], dtype=np.float64)
            preset = None
            if "preset" in names:
                preset = Preset.from_dict(json.loads(str(z["preset"])))
    except SeisfnoError:
        raise
    except Exception as e:  # noqa: BLE001 - any reader failure is a bad file for the user
        raise SeisfnoError(f"cannot read observations {path}: {e}") from e
    if wf.ndim != 4 or src.ndim != 2 or src.shape[1] != 2 or wf.shape[0] != src.shape[0]:
        raise SeisfnoError(f"{path}: wavefield must be (S, nt, nz, nx) and source_xz_m (S, 2) with "
                           f"the same S, got {wf.shape} and {src.shape}")
    return wf, src, preset


def _write_curves(path: Path, res) -> None:
    misfit, times = res.misfit, res.time_s
    phase = getattr(res, "phase", None)
    loss = None
    if phase is None:
        loss = res.loss
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["step", "time_s", "model_misfit", "data_loss", "phase"])
        for k in range(len(times)):
            w.writerow([k, f"{times[k]:.6f}",
                        "" if misfit is None or k >= len(misfit) else f"{misfit[k]:.6g}",
                        "" if loss is None or k >= len(loss) else f"{loss[k]:.6g}",
                        "start" if k == 0 else (phase[k] if phase is not None else "single")])


@app.command()
def invert(
    out: Path = typer.Option(..., help="Output directory."),
    true: Path = typer.Option(None, help="True velocity model (m/s), .npy/.npz/.sgy, (nz, nx)."),
    true_model: str = typer.Option(None, help="Benchmark true model: von-karman, square, blocky."),
    observed: Path = typer.Option(None, help="Observations .npz: wavefield (S, nt, nz, nx), "
                                  "source_xz_m (S, 2), optional preset (JSON)."),
    forward: str = typer.Option("fd", help="fd, fd:deepwave, fno:NAME or fno:RUN_DIR."),
    preset: str = typer.Option(None, help="Preset (default quick; an operator's own)."),
    sources: int = typer.Option(20, help="Number of sources (the paper's 5 x 4 layout for 20)."),
    iterations: int = typer.Option(None, help="Adam iterations (total, both hybrid phases; "
                                   "default 1000, or the total of --stages)."),
    lr: float = typer.Option(0.01, help="Adam learning rate in km/s (0.01 = ~10 m/s per step)."),
    stages: str = typer.Option(None, help="Frequency continuation HZ:ITERATIONS,... ('full' = "
                               "no low-pass), e.g. 3:100,full:100; with --hybrid-switch N, the "
                               "operator phase's stages (totalling N)."),
    lowpass_hz: float = typer.Option(None, "--lowpass-hz", help="Invert low-passed data only "
                                     "(-3 dB at this frequency, Hz)."),
    check_sources: int = typer.Option(None, help="Referee an operator's FWI with the solver on N "
                                      "of the sources: stop when the solver's data misfit stops "
                                      "improving and keep the best-checked model (with "
                                      "--hybrid-switch: the automatic switch)."),
    check_every: int = typer.Option(10, help="Iterations between solver checks."),
    check_patience: int = typer.Option(3, help="Checks without improvement before stopping."),
    hybrid_switch: int = typer.Option(None, help="Hybrid: operator iterations before switching "
                                      "to the solver for the rest."),
    receivers: str = typer.Option("all", help="all, surface or every:K."),
    noise_snr: float = typer.Option(None, "--noise-snr", help="White noise SNR in dB."),
    noise_seed: int = typer.Option(0, help="Seed of the noise."),
    smooth_grad: float = typer.Option(0.0, help="Gaussian gradient smoothing, sigma in m."),
    laplacian: float = typer.Option(0.0, help="Laplacian regularization weight."),
    vmin: float = typer.Option(None, help="Lower velocity bound, m/s."),
    vmax: float = typer.Option(None, help="Upper velocity bound, m/s."),
    batch_sources: int = typer.Option(None, help="Sources per forward call (bounds memory)."),
    device: str = typer.Option(None, help="cpu, cuda, ... (default cpu)."),
    threads: int = typer.Option(None, help="CPU threads."),
    log_every: int = typer.Option(0, help="Print progress to stderr every N iterations."),
    progress: bool = typer.Option(True, help="Progress bar on stderr (on a terminal)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar or log on stderr."),
) -> None:
    """Full-waveform inversion (the paper's protocol by default), results in OUT.

    OUT holds ``inverted.npy`` (the result), ``lowest_loss.npy`` (the iterate with the lowest
    loss of the forward model inverted: with an operator, the over-fitted one; not the
    result), ``curves.csv``, ``result.json`` and figures.
    """
    from ..inversion import ProgressCallback, make_forward

    set_threads(threads)
    schedule, iterations = _schedule(stages, lowpass_hz, iterations, hybrid_switch)
    bounds = _check_args(true, true_model, observed, sources, iterations, vmin, vmax, forward,
                         hybrid_switch, check_sources, check_every, check_patience)
    is_fno = forward.startswith("fno")
    fwd = make_forward(forward, preset if (preset or is_fno) else "quick", device=device,
                       velocity_range_mps=bounds)
    obs, src, v_true = _inputs(fwd.preset, fwd.name, observed, true, true_model, sources)
    opts = dict(receivers=receivers, noise_snr_db=noise_snr, noise_seed=noise_seed,
                laplacian_weight=laplacian, smooth_grad_m=smooth_grad, bounds_mps=bounds,
                batch_sources=batch_sources)
    if lowpass_hz is not None:
        opts["lowpass_hz"] = lowpass_hz
    with ProgressCallback(iterations, progress=progress and not quiet,
                          then=None if quiet else _logger(log_every)) as bar:
        opts["callback"] = bar
        res, files, summary, curves = _run(
            fwd, src, obs, v_true, opts, schedule=schedule, iterations=iterations, lr=lr,
            hybrid_switch=hybrid_switch, check_sources=check_sources, check_every=check_every,
            check_patience=check_patience, device=device, bounds=bounds)
    summary.update({"preset": fwd.preset.name, "n_sources": int(len(src)), "lr_kmps": lr,
                    "stages": schedule, "lowpass_hz": lowpass_hz,
                    "receivers": receivers, "noise_snr_db": noise_snr, "out": str(out)})
    _save(out, fwd.preset, src, res, files, summary, curves, v_true)


def _schedule(stages, lowpass_hz, iterations, hybrid_switch):
    """``(stages or None, total iterations)`` from --stages, --iterations, --hybrid-switch."""
    from ..inversion import parse_stages

    schedule = parse_stages(stages) if stages is not None else None
    if schedule is not None:
        if lowpass_hz is not None:
            raise SeisfnoError("give --stages or --lowpass-hz, not both")
        total = sum(n for _, n in schedule)
        if hybrid_switch is None and iterations is not None and iterations != total:
            raise SeisfnoError(f"--stages total {total} iterations but --iterations is "
                               f"{iterations}; give one of them")
        if hybrid_switch is not None and hybrid_switch != total:
            raise SeisfnoError(f"with --hybrid-switch {hybrid_switch}, --stages are the operator "
                               f"phase and must total {hybrid_switch} iterations, not {total}")
        if hybrid_switch is None:
            iterations = total
    if iterations is None:
        iterations = 1000
    if iterations < 1:
        raise SeisfnoError(f"--iterations must be at least 1, got {iterations}")
    return schedule, iterations


def _check_args(true, true_model, observed, sources, iterations, vmin, vmax, forward,
                hybrid_switch, check_sources, check_every, check_patience):
    """Raise on inconsistent options; return the velocity bounds (or ``None``)."""
    if sum(x is not None for x in (true, true_model)) > 1:
        raise SeisfnoError("give one true model: --true or --true-model")
    if true is None and true_model is None and observed is None:
        raise SeisfnoError("give --true V.npy, --true-model NAME or --observed OBS.npz")
    if sources < 1:
        raise SeisfnoError(f"--sources must be at least 1, got {sources}")
    bounds = None
    if vmin is not None or vmax is not None:
        if vmin is None or vmax is None:
            raise SeisfnoError("give both --vmin and --vmax")
        bounds = (vmin, vmax)
    is_fno = forward.startswith("fno")
    if hybrid_switch is not None:
        if not is_fno:
            raise SeisfnoError("--hybrid-switch needs an operator: --forward fno:MODEL")
        if not 0 <= hybrid_switch <= iterations:
            raise SeisfnoError(f"--hybrid-switch must be in [0, {iterations}], got {hybrid_switch}")
    if check_sources is not None:
        if not is_fno:
            raise SeisfnoError("--check-sources referees an operator: use --forward fno:MODEL")
        if check_sources < 1 or check_every < 1 or check_patience < 1:
            raise SeisfnoError("--check-sources, --check-every and --check-patience must be >= 1")
    return bounds


def _inputs(p, name, observed, true, true_model, sources):
    """``(observations or None, sources (S, 2), true model or None)`` for preset ``p``.

    A benchmark true model is made at 2x resolution (observations without inverse crime); a
    ``--true`` file may be on the inversion grid or on a k-times finer one.
    """
    from ..inversion import benchmark_model, check_same_setup, default_sources
    from ..inversion.fwi import OBSERVATION_REFINEMENT, refinement_of
    from ..physics import load_velocity

    obs = v_true = None
    if observed is not None:
        obs, src, obs_preset = _load_observed(observed)
        if obs_preset is not None:
            check_same_setup(obs_preset, p, what="observations")
        want = (p.nt_out, *p.grid.shape)
        if obs.shape[1:] != want:
            raise SeisfnoError(f"observations are on a (nt, nz, nx) = {obs.shape[1:]} grid but the "
                               f"model ({name}, preset {p.name}) is on {want}")
    else:
        src = default_sources(p.grid, sources)
    if true is not None:
        v_true = load_velocity(true)
    elif true_model is not None:
        v_true = benchmark_model(true_model, p, refine=OBSERVATION_REFINEMENT)
    if v_true is not None and refinement_of(p.grid, v_true.shape) is None:
        raise SeisfnoError(f"the true model is {v_true.shape[0]} x {v_true.shape[1]} but the "
                           f"preset {p.name!r} grid is {p.grid.nz} x {p.grid.nx} (nz x nx; or a "
                           f"k-times finer grid, (nz - 1) k + 1 x (nx - 1) k + 1)")
    return obs, src, v_true


def _logger(log_every: int):
    def log(k, loss, misfit):
        if log_every and (k + 1) % log_every == 0:
            m = "" if misfit is None else f" misfit {misfit:.5f}"
            print(f"iteration {k + 1}: loss {loss:.4g}{m}", file=sys.stderr, flush=True)

    return log


def _run(fwd, src, obs, v_true, opts, *, schedule, iterations, lr, hybrid_switch,
         check_sources, check_every, check_patience, device, bounds):
    """Run the inversion: ``(result, {file: model}, summary, curves)``."""
    from ..inversion import SolverCheck, SolverForward, hybrid, multiscale
    from ..inversion import invert as run_invert
    from ..inversion.fwi import _prepare_observed

    p = fwd.preset
    solver = checked = made = None
    if hybrid_switch is not None or check_sources is not None:
        solver = SolverForward(p, device=device, velocity_range_mps=bounds)
    if check_sources is not None and hybrid_switch is not None:
        checked = dict(solver_check_sources=check_sources, check_every=check_every,
                       check_patience=check_patience)
    elif check_sources is not None:
        if obs is None:  # the check needs the observations before the run
            obs, *made = _prepare_observed(fwd, src, None, v_true, None, opts["batch_sources"])
        opts.update(check=SolverCheck(solver, src, obs, n_sources=check_sources,
                                      receivers=opts["receivers"],
                                      noise_snr_db=opts["noise_snr_db"],
                                      noise_seed=opts["noise_seed"]),
                    check_every=check_every, check_patience=check_patience)
    if hybrid_switch is not None:
        res = hybrid(fwd, solver, src, obs, v_true, operator_iterations=hybrid_switch,
                     solver_iterations=iterations - hybrid_switch, lr=lr,
                     operator_stages=schedule, **(checked or {}), **opts)
        files = {"inverted.npy": res.velocity, "lowest_loss.npy": res.solver_phase.best_velocity,
                 "start": res.operator_phase.start_velocity}
        curves = {"hybrid": {"misfit": res.misfit, "time_s": res.time_s,
                             "loss": np.concatenate([res.operator_phase.loss,
                                                     res.solver_phase.loss])}}
    else:
        res = (multiscale(fwd, src, obs, v_true, stages=schedule, lr=lr, **opts)
               if schedule is not None
               else run_invert(fwd, src, obs, v_true, iterations=iterations, lr=lr, **opts))
        files = {"inverted.npy": res.velocity, "lowest_loss.npy": res.best_velocity,
                 "start": res.start_velocity}
        curves = {fwd.name: {"misfit": res.misfit, "time_s": res.time_s, "loss": res.loss}}
    summary = res.summary()
    if made:
        summary["observations"], summary["observation_s"] = made
    return res, files, summary, curves


#: What each saved model is (written into result.json).
FILES = {"inverted.npy": "the result: the final model (with a check, the best-checked one)",
         "lowest_loss.npy": "the iterate with the lowest data loss of the forward model being "
                            "inverted (with an operator: fits its own errors, over-fitted); "
                            "not the result"}


def _save(out, p, src, res, files, summary, curves, v_true):
    """Models, curves, figures and ``result.json`` in ``out``; exit status 2 on a failure."""
    from ..inversion.fwi import _ended_normally, true_on_grid
    from ..inversion.plots import plot_curves, plot_models

    out.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        np.save(out / name, files[name])
    _write_curves(out / "curves.csv", res)
    true_grid = None if v_true is None else true_on_grid(v_true, p.grid).numpy()
    plot_models(p.grid, files["inverted.npy"], files["start"], true_grid, out / "inversion.png",
                title=summary["forward"], sources_xz_m=src)
    plot_curves(curves, out / "misfit.png")
    record = dict(summary, files=FILES,
                  curves={k: {n: (None if a is None else np.asarray(a).tolist())
                              for n, a in c.items()} for k, c in curves.items()})
    (out / "result.json").write_text(json.dumps(record, indent=1))
    emit_json(summary)
    if not _ended_normally(summary["stopped_reason"]):  # a check stop is the check working
        raise SeisfnoError(f"inversion stopped early: {summary['stopped_reason']}; results "
                           f"written to {out}")
