"""Noisy intensities for benchmarks: Poisson counting noise and a random scale factor per rod.

Model of one measured rod r of structure i (all points outside the Bragg points):

    g_r            random scale factor (lognormal: exp(N(0, s²)); uniform: U(1 − s, 1 + s)), s = `rod_scale`
    λ = F_r g_r I  expected counts; the exposure F_r is set by `level`:
                     "rod_median": F_r = counts / median(g_r I over the rod), so the median point of every
                                   rod expects `counts` counts (each rod counted as long as it needs);
                     "flux":       F_r = counts for every rod (I in the simulator's units × counts).
    N ~ Poisson(λ) counts
    I_noisy = N / F_r,  σ = √max(N, 1) / F_r   (back in the simulator's units; g_r stays in the data, as an
                                               unknown systematic error a fit has to absorb with scale factors)

Bragg points get no counting noise (they are never measured or fitted): I_noisy = g_r I there and σ = inf.
Every draw of structure i comes from a random stream keyed by (seed, start + i), so structure i gets the same
noise whichever batch, method or process asks for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .._checks import check_count
from ..physics.grid import Grid

LEVELS = ("rod_median", "flux")
DISTRIBUTIONS = ("lognormal", "uniform")
_POISSON_LIMIT = 1e15  # above this many expected counts a normal draw replaces the Poisson one (numpy's limit ~1e18)


@dataclass(frozen=True)
class NoiseModel:
    """Counting noise and per-rod scale errors (module docstring).

    Attributes:
        counts: expected counts of the median point of each rod ("rod_median") or counts per unit of I ("flux").
        level: "rod_median" or "flux".
        rod_scale: spread s of the per-rod scale factors (0 = none): the σ of ln g (lognormal) or the half-width
            of g around 1 (uniform).
        distribution: "lognormal" or "uniform".
        seed: key of the random streams.
    """

    counts: float = 1000.0
    level: str = "rod_median"
    rod_scale: float = 0.03
    distribution: str = "lognormal"
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.counts, bool) or not isinstance(self.counts, (int, float)) or not (
                np.isfinite(self.counts) and self.counts > 0):
            raise ValueError(f"counts must be a positive number, got {self.counts!r}")
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {self.level!r}")
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {DISTRIBUTIONS}, got {self.distribution!r}")
        if not (isinstance(self.rod_scale, (int, float)) and 0 <= self.rod_scale < 1):
            raise ValueError(f"rod_scale must lie in [0, 1), got {self.rod_scale!r}")
        check_count("seed", self.seed)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(eq=False)
class NoisyIntensities:
    """Output of `add_noise` for n structures.

    Attributes:
        intensity: (n, R, NL) float64 noisy I in the simulator's units (counts / exposure).
        sigma: (n, R, NL) float64 its standard deviation (inf at the Bragg points).
        counts: (n, R, NL) float64 the counts drawn (0 at the Bragg points).
        exposure: (n, R) F_r, counts per unit of g_r I.
        rod_scale: (n, R) the scale factors g_r applied.
        model: the NoiseModel used.
    """

    intensity: np.ndarray
    sigma: np.ndarray
    counts: np.ndarray
    exposure: np.ndarray
    rod_scale: np.ndarray
    model: NoiseModel


def add_noise(intensity, grid: Grid, model: NoiseModel | None = None, start: int = 0) -> NoisyIntensities:
    """Noisy copies of noise-free intensities, reproducible per structure.

    Args:
        intensity: (n, R, NL) or (R, NL) noise-free I ≥ 0 on `grid` (e.g. `simulate(...).intensity`).
        grid: the grid (its Bragg mask says which points get no counting noise).
        model: NoiseModel (default: 1000 counts at each rod's median, 3 % lognormal rod scales, seed 0).
        start: index of the first structure (structure i draws from the stream (seed, start + i)).

    Returns:
        NoisyIntensities with arrays of shape (n, R, NL) ((1, R, NL) for one (R, NL) input).
    """
    model = NoiseModel() if model is None else model
    if not isinstance(model, NoiseModel):
        raise TypeError(f"model must be a NoiseModel, got {type(model).__name__}")
    if not isinstance(grid, Grid):
        raise TypeError(f"grid must be a Grid, got {type(grid).__name__}")
    start = check_count("start", start)
    I = np.array(intensity, dtype=np.float64, ndmin=3)
    if I.ndim != 3 or I.shape[1:] != grid.shape:
        raise ValueError(f"intensity must have shape (n, R, NL) or (R, NL) with (R, NL) = {grid.shape}, "
                         f"got {np.shape(intensity)}")
    measured = ~grid.bragg
    if not np.all(np.isfinite(I[..., measured])) or np.any(I[..., measured] < 0):
        raise ValueError("intensity must be finite and ≥ 0 outside the Bragg points")
    n, R, _ = I.shape
    out = {name: np.empty_like(I) for name in ("intensity", "sigma", "counts")}
    exposure, scales = np.empty((n, R)), np.empty((n, R))
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence(model.seed, spawn_key=(start + i,)))
        scales[i] = _rod_scales(rng, R, model)
        scaled = I[i] * scales[i][:, None]
        exposure[i] = _exposure(scaled[:, measured], model)
        expected = scaled * exposure[i][:, None]
        counts = _count(rng, np.where(measured, expected, 0.0))
        out["counts"][i] = counts
        out["intensity"][i] = np.where(measured, counts / exposure[i][:, None], scaled)
        out["sigma"][i] = np.where(measured, np.sqrt(np.maximum(counts, 1.0)) / exposure[i][:, None], np.inf)
    return NoisyIntensities(out["intensity"], out["sigma"], out["counts"], exposure, scales, model)


def _rod_scales(rng: np.random.Generator, n_rods: int, model: NoiseModel) -> np.ndarray:
    if model.distribution == "lognormal":
        return np.exp(rng.normal(0.0, model.rod_scale, n_rods))
    return rng.uniform(1.0 - model.rod_scale, 1.0 + model.rod_scale, n_rods)


def _exposure(scaled: np.ndarray, model: NoiseModel) -> np.ndarray:
    """(R,) counts per unit of I for the measured points `scaled` (R, N)."""
    if model.level == "flux":
        return np.full(scaled.shape[0], float(model.counts))
    median = np.median(scaled, axis=1)
    if np.any(median <= 0):
        raise ValueError("a rod has median intensity 0: level='rod_median' cannot set its count level")
    return model.counts / median


def _count(rng: np.random.Generator, expected: np.ndarray) -> np.ndarray:
    """Poisson counts of `expected` (a normal draw, rounded and ≥ 0, where it exceeds numpy's Poisson range)."""
    small = expected <= _POISSON_LIMIT
    counts = np.empty_like(expected)
    counts[small] = rng.poisson(expected[small])
    large = expected[~small]
    counts[~small] = np.maximum(np.round(rng.normal(large, np.sqrt(large))), 0.0)
    return counts
