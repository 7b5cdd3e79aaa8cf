"""Named experiment presets: every physical parameter of a setup in one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from .._errors import SeisfnoError
from .grid import Grid

PAPER_DOMAIN_M = 10_000.0


@dataclass(frozen=True)
class VonKarmanParams:
    """Parameters of the random velocity models (SI units)."""

    mean_mps: float = 3000.0
    sigma_mps: float = 150.0
    kappa: float = 0.5
    corr_len_m: tuple[float, float] = (1600.0, 1600.0)
    #: Models are clipped to this range; the solver plans its grid and step for it.
    clip_mps: tuple[float, float] = (2400.0, 3600.0)


@dataclass(frozen=True)
class Preset:
    """A complete simulation setup.

    Attributes
    ----------
    name : str
    grid : Grid
        The output grid (where wavefields are recorded and models are given).
    f_peak_hz : float
        Ricker peak frequency; the wavelet peaks at ``1.5 / f_peak_hz`` s.
    dt_out_s, nt_out : float, int
        Output sampling: sample k is at ``k * dt_out_s``.
    velocity : VonKarmanParams
    decimation : {"point", "lowpass"}
        ``point`` samples the fine time steps (the paper); ``lowpass`` filters first (anti-aliased).
    source_margin_m : float
        Random sources are drawn at least this far from the domain's edges.
    """

    name: str
    grid: Grid
    f_peak_hz: float
    dt_out_s: float
    nt_out: int
    velocity: VonKarmanParams = field(default_factory=VonKarmanParams)
    decimation: Literal["point", "lowpass"] = "point"
    source_margin_m: float = 0.0

    def __post_init__(self) -> None:
        if not self.f_peak_hz > 0:
            raise SeisfnoError(f"frequency must be positive, got {self.f_peak_hz} Hz")
        if not self.dt_out_s > 0 or self.nt_out < 1:
            raise SeisfnoError("dt_out must be positive and nt_out at least 1")
        if self.decimation not in ("point", "lowpass"):
            raise SeisfnoError(f"decimation must be 'point' or 'lowpass', got {self.decimation!r}")

    @property
    def duration_s(self) -> float:
        return self.dt_out_s * self.nt_out

    def replace(self, **overrides: Any) -> Preset:
        """A copy with some fields replaced; ``None`` values are ignored.

        Besides the fields, accepts ``n`` (nodes per side over the same domain), ``spacing_m``
        (same node count, new spacing) and velocity fields by name (``mean_mps``, ...).
        """
        overrides = {k: v for k, v in overrides.items() if v is not None}
        grid = overrides.pop("grid", self.grid)
        if "n" in overrides:
            grid = grid.with_shape(int(overrides.pop("n")))
        if "spacing_m" in overrides:
            s = float(overrides.pop("spacing_m"))
            grid = Grid(grid.nz, grid.nx, s, s)
        vel_fields = {f.name for f in dataclasses.fields(VonKarmanParams)}
        vel = {k: overrides.pop(k) for k in list(overrides) if k in vel_fields}
        velocity = dataclasses.replace(self.velocity, **vel) if vel else self.velocity
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise SeisfnoError(f"unknown preset parameters: {sorted(unknown)}")
        return dataclasses.replace(self, grid=grid, velocity=velocity, **overrides)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["grid"] = self.grid.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Preset:
        d = dict(d)
        d["grid"] = Grid(**d["grid"])
        vel = dict(d.get("velocity", {}))
        for k in ("corr_len_m", "clip_mps"):
            if k in vel:
                vel[k] = tuple(vel[k])
        d["velocity"] = VonKarmanParams(**vel)
        return cls(**d)


_PAPER_GRID = Grid.from_extent(64, 64, PAPER_DOMAIN_M, PAPER_DOMAIN_M)

PRESETS: dict[str, Preset] = {
    # Yang et al. (2021) and the authors' code: 10 km square, 64 x 64 nodes with edges, 8 Hz,
    # 100 samples at 0.04 s, absorbing on all sides, sources anywhere, point-sampled output.
    "paper": Preset("paper", _PAPER_GRID, f_peak_hz=8.0, dt_out_s=0.04, nt_out=100),
    # Same domain and models, a 2 Hz wavelet (>= 4 nodes per shortest wavelength on the 64 x 64
    # grid, so the output is resolved), 50 samples at 0.08 s over the same 4 s, anti-aliased.
    "quick": Preset("quick", _PAPER_GRID, f_peak_hz=2.0, dt_out_s=0.08, nt_out=50,
                    decimation="lowpass"),
}


def get_preset(name_or_preset: str | Preset, **overrides: Any) -> Preset:
    """A named preset (``paper``, ``quick``) with overrides (see :meth:`Preset.replace`)."""
    if isinstance(name_or_preset, Preset):
        return name_or_preset.replace(**overrides)
    try:
        base = PRESETS[name_or_preset]
    except KeyError:
        raise SeisfnoError(
            f"unknown preset {name_or_preset!r}; choose one of {sorted(PRESETS)}") from None
    return base.replace(**overrides)
