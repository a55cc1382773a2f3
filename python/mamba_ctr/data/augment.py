"""Measurement nuisances drawn per structure on the fly, keyed by structure index: what turns simulated rods into
rods as a diffractometer measures them (issue 16 item 3).

Structure i of a stream with seed s draws from numpy's Generator of the key (s, KEY, i) only, so its nuisances
are the same whatever the batch, worker or rank that simulates it. In this order, on the simulated I (R, NL):

0. with probability clean_fraction the measurement is clean: steps 1, 3 and 4 are skipped;
1. L offset: the whole structure's L shifted by δ ~ N(0, l_offset) (linear interpolation of ln I between grid
   points; a point whose neighbours include a Bragg point or the grid's end becomes unmeasured);
2. per-rod scale: each rod × exp(N(0, rod_scale));
3. flat background: + b, b = median(I) × 10^U(log10 background): not subtracted, as a residual after reduction;
4. counting noise: the median point gets c counts, c log-uniform in `counts`, and I → Poisson(I·c/median)·
   median/c (zero counts become unmeasured in the scale-free input);
5. coverage (`coverage`): gaps at Bragg peaks, late starts, early ends and missing stretches, drawn like the
   measured LSMO rods (integer rods start at L 0.5–0.8 of a range to 4.5, some end at 3.6–4.1, gaps of ±0.02–0.06
   at some Bragg peaks, half-order rods start at 1.3 or miss stretches of 0.3–0.8 in L); with probability
   full_coverage every point but the Bragg points is measured.

The scale-free input (mamba_ctr.nn.inputs) cancels 2. exactly; the others it has to learn.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["KEY", "Augmentation", "coverage"]

KEY = 0x16A  # the generator key's middle word: these draws never coincide with the structures' own


@dataclass(frozen=True)
class Augmentation:
    """The nuisances' distributions (defaults: the issue's ranges). L offsets are in L units (2π/c_ref)."""

    counts: tuple[float, float] = (1e2, 1e6)
    clean_fraction: float = 0.25
    rod_scale: float = 0.2
    background: tuple[float, float] = (1e-4, 1e-2)
    l_offset: float = 0.005
    full_coverage: float = 0.2

    def __post_init__(self) -> None:
        for name in ("clean_fraction", "full_coverage"):
            if not 0 <= getattr(self, name) <= 1:
                raise InputError(f"augmentation {name} must be a probability in [0, 1], got {getattr(self, name)!r}")
        for name in ("rod_scale", "l_offset"):
            if not getattr(self, name) >= 0:
                raise InputError(f"augmentation {name} must be ≥ 0, got {getattr(self, name)!r}")
        for name in ("counts", "background"):
            low, high = getattr(self, name)
            if not 0 < low <= high < np.inf:
                raise InputError(f"augmentation {name} must be LOW:HIGH with 0 < LOW ≤ HIGH, got {low}:{high}")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Augmentation:
        """The defaults with `options` on top: scalars as numbers or strings, the ranges counts and background as
        "LOW:HIGH" or two numbers (`train --augmentation rod_scale=0,counts=1e3:1e6`); InputError for an unknown
        key or a bad value."""
        known = {f.name: f.default for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise InputError(f"unknown augmentation option(s) {', '.join(unknown)}; known: {', '.join(known)}")
        values = {name: _option(name, value, ranged=isinstance(known[name], tuple)) for name, value in options.items()}
        return cls(**values)

    def __call__(self, intensity: np.ndarray, L: np.ndarray, bragg: np.ndarray, seed: int,
                 first: int) -> tuple[np.ndarray, np.ndarray]:
        """(I, measured) float64 and bool (B, R, NL) of clean intensities (B, R, NL) of structures first, …"""
        intensity = np.array(intensity, dtype=np.float64)
        measured = np.empty(intensity.shape, dtype=bool)
        for b in range(intensity.shape[0]):
            rng = np.random.default_rng([seed, KEY, first + b])
            intensity[b], measured[b] = self.one(intensity[b], L, bragg, rng)
        return intensity, measured

    def one(self, intensity: np.ndarray, L: np.ndarray, bragg: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One structure's (R, NL) intensity and measured mask."""
        # a clean measurement (clean_fraction of them): no L offset, background or counting noise, so that the
        # network also knows simulated rods as they are (a model that only ever saw a background reads the deep
        # minima of background-free rods as out of its range)
        clean = rng.random() < self.clean_fraction
        if self.l_offset and not clean:
            intensity, measured = shift_L(intensity, L, bragg, rng.normal(0, self.l_offset))
        else:  # no interpolation: the rods bit for bit
            measured = np.broadcast_to(~np.asarray(bragg, dtype=bool), intensity.shape).copy()
        intensity = intensity * np.exp(rng.normal(0, self.rod_scale, (intensity.shape[0], 1)))
        if not clean:
            median = float(np.median(intensity[measured])) if measured.any() else 1.0
            intensity = intensity + median * 10 ** rng.uniform(*np.log10(self.background))
            per_count = np.median(intensity[measured]) / 10 ** rng.uniform(*np.log10(self.counts))
            lam = np.where(measured, intensity / per_count, 0.0)
            intensity = rng.poisson(lam).astype(np.float64) * per_count
        if rng.random() >= self.full_coverage:
            measured &= coverage(rng, L, bragg, intensity.shape[0])
        return intensity, measured


def _option(name: str, value: Any, ranged: bool) -> Any:
    """One augmentation option as Augmentation takes it: a float, or (low, high) for a range."""
    try:
        if not ranged:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise TypeError
            return float(value)
        parts = tuple(float(v) for v in (value.split(":") if isinstance(value, str) else value))
        if len(parts) == 2:
            return parts
    except (TypeError, ValueError):
        pass
    raise InputError(f"augmentation {name} must be {'LOW:HIGH' if ranged else 'a number'}, got {value!r}")


def shift_L(intensity: np.ndarray, L: np.ndarray, bragg: np.ndarray,
            delta: float) -> tuple[np.ndarray, np.ndarray]:
    """(I, measured) (R, NL) of rods measured at L + δ instead of L (uniform grid): ln I interpolated linearly
    between grid points; Bragg points, and points interpolated from a Bragg point or past the grid, unmeasured."""
    n = L.size
    step = float(L[1] - L[0]) if n > 1 else 1.0
    t = float(np.clip(delta / step, -0.999, 0.999))
    j0 = int(np.floor(t))
    f = t - j0
    left = np.arange(n) + j0
    right = left + 1
    inside = (left >= 0) & (right < n)
    left, right = np.clip(left, 0, n - 1), np.clip(right, 0, n - 1)
    good = inside & ~bragg[left] & ~(bragg[right] & (f > 0)) & ~bragg
    with np.errstate(divide="ignore", invalid="ignore"):
        log = np.log(intensity)
    shifted = np.exp((1 - f) * log[:, left] + f * log[:, right])
    good2 = np.broadcast_to(good, intensity.shape) & np.isfinite(shifted)
    return np.where(good2, shifted, 1.0), good2.copy()


def coverage(rng: np.random.Generator, L: np.ndarray, bragg: np.ndarray, rods: int) -> np.ndarray:
    """A measured mask (rods, NL) like real coverage: per rod a late start (p 0.6, up to 30 % of the range),
    an early end (p 0.3, up to 30 %), a gap of ±0.02–0.08 in L at each Bragg peak (p 0.5 each) and
    Poisson(0.4) missing stretches of 2–20 % of the range; at least a quarter of each rod is kept."""
    span = float(L[-1] - L[0]) or 1.0
    peaks = L[bragg]
    late = rng.random(rods) < 0.6
    keep = ~late[:, None] | (L >= L[0] + span * rng.uniform(0, 0.3, (rods, 1)))
    early = rng.random(rods) < 0.3
    keep &= ~early[:, None] | (L <= L[-1] - span * rng.uniform(0, 0.3, (rods, 1)))
    gaps = (rng.random((rods, peaks.size, 1)) < 0.5) & (
        np.abs(L - peaks[:, None]) <= rng.uniform(0.02, 0.08, (rods, peaks.size, 1)))
    keep &= ~gaps.any(axis=1)
    stretches = rng.poisson(0.4, rods)
    for _ in range(int(stretches.max(initial=0))):
        start = rng.uniform(L[0], L[-1], (rods, 1))
        end = start + span * rng.uniform(0.02, 0.2, (rods, 1))
        keep &= ~((stretches[:, None] > 0) & (L >= start) & (L <= end))
        stretches -= 1
    keep[keep.mean(axis=1) < 0.25] = True
    return keep
