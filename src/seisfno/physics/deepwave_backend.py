"""A backend on deepwave's compiled scalar propagator (``pip install deepwave``).

It solves the same problem as :class:`~seisfno.physics.solver.TorchBackend` on the plan's internal
grid, so the two are interchangeable and each checks the other:

* **Equation and source scaling.** deepwave's ``scalar`` steps
  ``u^{n+1} = 2 u^n - u^{n-1} + v^2 dt^2 (lap u^n - f^n)`` with ``f`` added at single cells, i.e.
  it pre-scales each source sample by ``-v^2 dt^2`` at the cell it enters. We spread each point
  source over the cells ourselves with the same Kaiser-windowed sinc weights ``w_i`` as the torch
  backend and inject, at integer cells, ``f_i(t) = -w_i ricker(t) / (v_i^2 dz dx)``: then deepwave
  adds exactly ``dt^2 ricker(t) delta_h(x - x_s)``, the right-hand side of
  ``u_tt - v^2 lap(u) = ricker(t) delta(x - x_s)``.
* **Edges.** The model is extended by edge replication by ``margin`` cells on every side (the
  source spread fits even for a source on the domain's edge), and deepwave's PML lies beyond.
* **Time.** deepwave's leapfrog is 2nd order in time, so it runs ``k`` times more steps than the
  torch backend's 4th-order stepper: its step is ``plan.dt_s / k`` with ``k`` the smallest integer
  that meets deepwave's own CFL condition (Courant ``courant_number``), so no internal resampling
  happens. Output sample ``j`` is the field at ``j * dt_out`` (point decimation) or the plan's
  anti-alias filter applied to the internal steps (lowpass decimation, :func:`fd.lowpass_matrix`).
* **Receivers** at every output node; differentiable with respect to ``velocity``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import torch

from .._errors import SeisfnoError
from . import fd
from .plan import Plan
from .wavelets import ricker


@dataclass
class DeepwaveBackend:
    """The plan's problem solved by :func:`deepwave.scalar` (8th order in space, 2nd in time).

    Parameters
    ----------
    device : str or torch.device, optional
        Default: the device of the velocity tensor.
    accuracy : {2, 4, 6, 8}
        Spatial order (8, like the torch backend).
    courant_number : float, optional
        deepwave's Courant number for its time step (default: deepwave's own, 0.6).
    pml_width : int, optional
        PML cells beyond the (extended) model on every side (default: the plan's absorbing-layer
        thickness minus the stencil halo).
    margin : int
        Edge-replicated cells added around the domain so that a source spread fits.
    """

    device: str | torch.device | None = None
    accuracy: int = 8
    courant_number: float | None = None
    pml_width: int | None = None
    margin: int = 4
    name: str = field(default="deepwave", init=False)

    def time_refine(self, plan: Plan) -> int:
        """How many deepwave steps per torch-backend step ``plan.dt_s``."""
        from deepwave.discretisation import cfl_condition

        fine = plan.fine
        kw = {} if self.courant_number is None else {"courant_number": self.courant_number}
        _, ratio = cfl_condition(fine.dz_m, fine.dx_m, plan.dt_s, plan.v_max_mps, **kw)
        return int(ratio)

    def run(self, plan: Plan, velocity: torch.Tensor, sources_xz_m: np.ndarray) -> torch.Tensor:
        """Wavefields ``(B, nt_out, nz, nx)`` for models ``(B or 1, nz, nx)`` (m/s) and sources
        ``(B, 2)`` as ``(x, z)`` metres."""
        try:
            import deepwave
        except ImportError as e:  # pragma: no cover - optional dependency
            raise SeisfnoError("the deepwave backend needs deepwave: pip install deepwave") from e
        dev = torch.device(self.device) if self.device is not None else velocity.device
        velocity = velocity.to(dev)
        dtype = velocity.dtype
        fine, m, r = plan.fine, self.margin, plan.refine
        src = np.asarray(sources_xz_m, dtype=np.float64).reshape(-1, 2)
        n_shots = max(velocity.shape[0], src.shape[0])
        if src.shape[0] == 1 and n_shots > 1:
            src = np.repeat(src, n_shots, axis=0)
        # Fine-grid model without our absorbing layer, extended by `m` replicated cells.
        v = fd.fine_velocity(plan, velocity)
        cut = plan.pad - m
        v = v[:, cut:v.shape[1] - cut, cut:v.shape[2] - cut]
        if v.shape[0] == 1 and n_shots > 1:
            v = v.expand(n_shots, -1, -1)
        nz_e, nx_e = v.shape[-2:]

        # Time axis: k deepwave steps per plan step.
        k = self.time_refine(plan)
        dplan = dataclasses.replace(plan, dt_s=plan.dt_s / k,
                                    steps_per_output=plan.steps_per_output * k)
        nt = dplan.n_steps
        t = torch.arange(nt, dtype=torch.float64) * dplan.dt_s
        wav = ricker(t, plan.f_peak_hz)

        # Sources: our Hicks spread as integer-cell point sources, pre-divided by v^2 dz dx.
        points = []
        for x_m, z_m in src:
            iz, wz = fd._hicks_1d(m + z_m / fine.dz_m, nz_e)
            ix, wx = fd._hicks_1d(m + x_m / fine.dx_m, nx_e)
            w = np.outer(wz, wx)
            zz, xx = np.nonzero(w)
            points.append((zz + iz, xx + ix, w[zz, xx]))
        n_src = max(len(p[2]) for p in points)
        loc = torch.zeros(n_shots, n_src, 2, dtype=torch.long)
        weight = torch.zeros(n_shots, n_src, dtype=torch.float64)
        mask = torch.zeros(n_shots, n_src, dtype=torch.bool)
        for b, (zz, xx, w) in enumerate(points):
            n = len(w)
            # Unused slots get distinct cells (deepwave wants unique locations) and no weight.
            loc[b, :, 0] = torch.arange(n_src) % nz_e
            loc[b, :, 1] = torch.arange(n_src) // nz_e
            loc[b, :n, 0] = torch.as_tensor(zz)
            loc[b, :n, 1] = torch.as_tensor(xx)
            weight[b, :n] = torch.as_tensor(w)
            mask[b, :n] = True
        loc = loc.to(dev)
        v_at = v[torch.arange(n_shots, device=dev)[:, None], loc[..., 0], loc[..., 1]]
        scale = (-weight.to(dev, dtype) / (fine.dz_m * fine.dx_m)) / v_at**2
        amp = scale[..., None] * wav.to(dev, dtype)[None, None, :]

        # Receivers at the output nodes, z slowest.
        gz, gx = plan.grid.shape
        iz = m + r * torch.arange(gz)
        ix = m + r * torch.arange(gx)
        rec = torch.stack(torch.meshgrid(iz, ix, indexing="ij"), -1).reshape(1, -1, 2)
        rec = rec.expand(n_shots, -1, -1).to(dev)

        pml = plan.pad - fd.HALO if self.pml_width is None else self.pml_width
        kw = {} if self.courant_number is None else {"courant_number": self.courant_number}
        out = deepwave.scalar(
            v, [fine.dz_m, fine.dx_m], dplan.dt_s, source_amplitudes=amp, source_locations=loc,
            source_mask=mask, receiver_locations=rec, accuracy=self.accuracy, pml_width=pml,
            pml_freq=plan.f_peak_hz, max_vel=plan.v_max_mps, location_interpolation="none", **kw)
        data = out.receiver_amplitudes  # (B, n_rec, nt), sample n at n * dt
        mat = torch.as_tensor(fd.lowpass_matrix(dplan), dtype=dtype, device=dev)
        u = torch.einsum("kn,brn->bkr", mat, data)
        return u.reshape(n_shots, plan.nt_out, gz, gx)


__all__ = ["DeepwaveBackend"]

