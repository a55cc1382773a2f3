"""The network input: how intensities I (n, R, NL) become the tensor X a network reads, in training and prediction.

Two transforms, named in a checkpoint's metadata (``train_config.input``; absent = "standardised"):

* ``standardised`` (the paper's, the shipped model's): X = (ln I − X_mean) / X_std with the Bragg points set to 0
  before standardising; (n, R, NL). It depends on the absolute scale of I.
* ``scale-free``: two channels per rod, (n, 2R, NL) (the R value channels, then the R mask channels):
  value = (ln I − m_r) / X_std on the measured points and 0 elsewhere, m_r being the mean of ln I over rod r's
  measured points; mask = 1 where measured. A factor on one rod (or on all) adds ln(factor) to every ln I of the
  rod and to m_r: it cancels exactly (up to float64 rounding). Unmeasured = the caller's mask is False, a Bragg
  point, or I not finite or ≤ 0 (counts of zero, over-subtracted background).
* ``scale-free-global``: the same channels with one mean m over the measured points of all rods. A factor on all
  rods cancels exactly; the ratios between rods stay in the input (they carry structure: the per-rod input has to
  infer each rod's level from its shape alone), so per-rod scale errors are met by training (data.augment), not
  cancelled.

`resample_rod` puts a measured rod (its own L points) on a model's uniform L grid: linear interpolation of ln I,
and a model point farther than one model step from every measured point (or outside the measured range) masked;
`rods_on_grid` does it for every rod of a measured file (io.MeasuredRods) whose (h, k) the model's grid has.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["INPUTS", "SCALE_FREE", "InputTransform", "TrainingInput", "resample_rod", "rods_on_grid", "scale_free"]

INPUTS = ("standardised", "scale-free", "scale-free-global")
SCALE_FREE = ("scale-free", "scale-free-global")


def scale_free(intensity: np.ndarray, mask: np.ndarray | None, x_std: float, per_rod: bool = True) -> np.ndarray:
    """The scale-free input (n, 2R, NL) float32 of intensities (n, R, NL); `mask` (broadcastable bool, True =
    measured) or None for every finite positive point; `per_rod`: subtract each rod's mean of ln I (else one mean
    over all rods of a structure)."""
    intensity = np.asarray(intensity, dtype=np.float64)
    valid = np.isfinite(intensity) & (intensity > 0)
    if mask is not None:
        valid &= np.asarray(mask, dtype=bool)
    log = np.log(np.where(valid, intensity, 1.0))
    axes = (-1,) if per_rod else (-2, -1)
    count = valid.sum(axis=axes, keepdims=True)
    mean = np.where(valid, log, 0.0).sum(axis=axes, keepdims=True) / np.maximum(count, 1)
    value = np.where(valid, (log - mean) / x_std, 0.0)
    return np.concatenate([value, valid], axis=-2).astype(np.float32)


@dataclass(frozen=True)
class InputTransform:
    """One of INPUTS with the statistics it needs (X_mean, X_std of the run's normalisation) and the Bragg mask.

    `__call__(intensity (n, R, NL), mask=None)` → X float32: (n, R, NL) standardised, (n, 2R, NL) scale-free
    (either kind).
    """

    name: str
    x_mean: float
    x_std: float
    bragg: np.ndarray

    def __post_init__(self) -> None:
        if self.name not in INPUTS:
            raise InputError(f"input must be one of {', '.join(INPUTS)}, got {self.name!r}")

    @property
    def is_scale_free(self) -> bool:
        """Whether the input cancels a factor on all rods (and takes masked points)."""
        return self.name in SCALE_FREE

    @property
    def per_rod(self) -> bool:
        """Whether the input also cancels a factor on each rod (its forward-consistency check fits one per rod)."""
        return self.name == "scale-free"

    @property
    def channels_per_rod(self) -> int:
        return 2 if self.is_scale_free else 1

    @classmethod
    def of(cls, name: str, normalisation: Any, bragg: np.ndarray) -> InputTransform:
        return cls(name, normalisation.X_mean, normalisation.X_std, np.asarray(bragg, dtype=bool))

    @classmethod
    def of_checkpoint(cls, checkpoint: Any) -> InputTransform:
        """The transform a checkpoint was trained with (old checkpoints: standardised)."""
        name = (checkpoint.metadata.get("train_config") or {}).get("input", "standardised")
        return cls.of(name, checkpoint.normalisation, checkpoint.grid.bragg)

    def admissible(self, intensity: np.ndarray) -> np.ndarray:
        """Measured intensities as this input takes them: the standardised input needs I > 0 everywhere, so zero
        or negative counts become 1e-30 (ln I = −69); the scale-free input masks them (returned unchanged)."""
        if self.is_scale_free:
            return intensity
        return np.maximum(intensity, 1e-30)

    def __call__(self, intensity: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        if self.is_scale_free:
            measured = ~self.bragg if mask is None else (np.asarray(mask, dtype=bool) & ~self.bragg)
            return scale_free(intensity, measured, self.x_std, per_rod=self.per_rod)
        if mask is not None and not np.all(np.asarray(mask)[..., ~self.bragg]):
            raise InputError("this model was trained on complete rods (standardised input): it cannot take masked "
                             "points; use a scale-free model")
        with np.errstate(divide="ignore", invalid="ignore"):
            log = np.log(np.asarray(intensity, dtype=np.float64))
        log[..., self.bragg] = 0
        return ((log - self.x_mean) / self.x_std).astype(np.float32)


@dataclass(frozen=True)
class TrainingInput:
    """What a training stream does to each simulated batch: the measurement nuisances of `augmentation` (None:
    clean rods, complete coverage) keyed by structure index, then `transform`. Picklable (DataLoader workers)."""

    transform: InputTransform
    augmentation: Any = None
    seed: int = 0
    L: np.ndarray | None = None

    def __call__(self, intensity: np.ndarray, first: int) -> np.ndarray:
        """X of the simulated intensities (B, R, NL) of structures first, first + 1, …"""
        mask = None
        if self.augmentation is not None:
            intensity, mask = self.augmentation(intensity, self.L, self.transform.bragg, self.seed, first)
        return self.transform(intensity, mask)


def resample_rod(L: np.ndarray, intensity: np.ndarray, model_L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One measured rod on a model's uniform L grid.

    Args:
        L, intensity: the measured points (m,) (any order; points with I not finite or ≤ 0 are dropped).
        model_L: (NL,) the model grid's uniform L.

    Returns (I, mask), both (NL,): I = exp of the linear interpolation of ln I between the two measured points
    around each model point (1.0 where masked), mask False where the nearest measured point is farther than one
    model step or the point lies outside the measured range.
    """
    L, intensity, model_L = (np.asarray(a, dtype=np.float64) for a in (L, intensity, model_L))
    if L.shape != intensity.shape or L.ndim != 1:
        raise InputError(f"L and intensity must be 1-D of one length, got {L.shape} and {intensity.shape}")
    keep = np.isfinite(L) & np.isfinite(intensity) & (intensity > 0)
    order = np.argsort(L[keep])
    L, log = L[keep][order], np.log(intensity[keep][order])
    if L.size < 2:
        return np.ones_like(model_L), np.zeros(model_L.shape, dtype=bool)
    step = float(np.median(np.diff(model_L)))
    mask = (model_L >= L[0]) & (model_L <= L[-1]) & (_nearest_distance(L, model_L) <= step * (1 + 1e-9))
    values = np.where(mask, np.exp(np.interp(model_L, L, log)), 1.0)
    return values, mask


def _nearest_distance(L: np.ndarray, model_L: np.ndarray) -> np.ndarray:
    """Distance of each model point to the nearest of the sorted L."""
    right = np.clip(np.searchsorted(L, model_L), 0, L.size - 1)
    left = np.clip(right - 1, 0, L.size - 1)
    return np.minimum(np.abs(model_L - L[left]), np.abs(model_L - L[right]))


def rods_on_grid(measured: Any, grid: Any, multiple: tuple[int, int] = (1, 1)) -> tuple[np.ndarray, np.ndarray,
                                                                                        list[str]]:
    """Measured rods (io.MeasuredRods, |F| or I) on a model grid: (I, mask) (R, NL) and the measured rods the grid
    lacks ("h k" strings, left out). Model rods never measured are masked entirely (a scale-free model takes them;
    the mask says so). `multiple`: the grid's cell spans (ma, mb) cells of the data's basis, so measured rod
    (H, K) is grid rod (H·ma, K·mb) (a 2×1 supercell: (2, 1))."""
    rods = measured.as_quantity("I")
    model_L = np.asarray(grid.L, dtype=np.float64)
    intensity = np.ones(grid.shape)
    mask = np.zeros(grid.shape, dtype=bool)
    where = {(float(h), float(k)): r for r, (h, k) in enumerate(zip(grid.h, grid.k, strict=True))}
    left_out = []
    for rod in rods.rods():
        r = where.get((float(rod.key[0] * multiple[0]), float(rod.key[1] * multiple[1])))
        if r is None:
            left_out.append(f"{rod.key[0]} {rod.key[1]}")
            continue
        intensity[r], mask[r] = resample_rod(rod.l, rod.value, model_L)
    return intensity, mask, left_out
