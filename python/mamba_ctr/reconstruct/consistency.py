"""Forward consistency of a prediction: do the predicted film field U and the known substrate field S reproduce
the intensities the prediction was made from?

For each structure the model intensity is M = |U + S|² (R, NL). A scale k is fitted (least squares on the
amplitudes √I and √M over the points off the Bragg peaks, where I is finite and comparable) and

    R1 = Σ |√I − √k·√M| / Σ √I        (the crystallographic R factor on amplitudes)

A network that saw intensities on the simulator's scale, of a structure like its training set, gives k ≈ 1
and a small R1. Calibration (shipped model paper-12L, 500 noise-free paper-12L test structures of seed 20261125,
never used for training; benchmarks/test_consistency_calibration.py reruns it in ~40 s on a CPU): R1 median
0.019, 90th percentile 0.023, 99th percentile 0.0275, maximum 0.046; k 0.991 … 1.010 (0.5 and 99.5
percentiles), median 1.000. Thresholds: R1 > 0.03 (the 99th percentile rounded up: about 1 % of good
predictions of simulated data are flagged, by design of the percentile) or k outside [0.9, 1.1] (ten times the
calibrated ±1 % spread; intensities on another scale, such as measured counts, are the usual cause). Noisy or
measured data have a larger R1 even when the prediction is right; the flag says "check", not "wrong", and is a
warning, never a refusal: the prediction is still written. A model calibrated with `mamba-ctr calibrate` carries
its own threshold (the 99th percentile of R1 on its noisy calibration set; `Consistency.r1_threshold`,
`reconstruct.calibration.consistency_threshold`), which `predict --calibration` uses.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["R1_THRESHOLD", "SCALE_RANGE", "Consistency", "forward_consistency"]

R1_THRESHOLD = 0.03
"""R1 above this flags a prediction (the calibration set's 99th percentile, 0.0275, rounded up)."""
SCALE_RANGE = (0.9, 1.1)
"""A fitted intensity scale outside this range flags a prediction (calibration: k in [0.991, 1.010])."""


@dataclass(frozen=True)
class Consistency:
    """Per-structure agreement of |U + S|² with the input intensities.

    Attributes:
        scale: (n,) fitted intensity scale k (I ≈ k |U + S|²); 1 on the simulator's scale.
        r1: (n,) R1 on amplitudes with that scale (dimensionless, ≥ 0).
        scale_checked: whether a scale far from 1 flags a prediction (False for scale-free models, whose input
            does not depend on the scale: measured data are on any scale).
        r1_threshold: R1 above this flags a prediction: R1_THRESHOLD (noise-free paper-12L) unless a model's
            calibration gives its own (`mamba-ctr calibrate`: the 99th percentile on its measured-like
            calibration set).
    """

    scale: np.ndarray
    r1: np.ndarray
    scale_checked: bool = True
    r1_threshold: float = R1_THRESHOLD

    @property
    def flagged(self) -> np.ndarray:
        """(n,) bool: the structures whose scale or R1 is outside the calibrated ranges."""
        low, high = SCALE_RANGE if self.scale_checked else (0.0, np.inf)
        return ~((self.scale >= low) & (self.scale <= high) & (self.r1 <= self.r1_threshold))

    def warning(self) -> str | None:
        """One line describing the flagged structures, or None when every prediction is consistent."""
        flagged = self.flagged
        if not flagged.any():
            return None
        first = int(np.argmax(flagged))
        scale, r1 = float(self.scale[first]), float(self.r1[first])
        reasons = []
        if self.scale_checked and not SCALE_RANGE[0] <= scale <= SCALE_RANGE[1]:
            reasons.append(f"intensity scale {scale:.3g} (≈ 1 expected: are the intensities on the simulator's "
                           f"absolute scale?)")
        if r1 > self.r1_threshold:
            reasons.append(f"R1 {r1:.3f} > {self.r1_threshold:.3g}")
        return (f"{int(flagged.sum())} of {flagged.size} prediction(s) do not reproduce their intensities "
                f"(|U + S|² vs I; first: structure {first}, {'; '.join(reasons)}); the predicted structure is "
                f"unreliable")


def forward_consistency(film_field: np.ndarray, substrate_field: np.ndarray, intensity: np.ndarray,
                        bragg: np.ndarray, mask: np.ndarray | None = None, scale_checked: bool = True,
                        r1_threshold: float = R1_THRESHOLD, scale_per_rod: bool = False) -> Consistency:
    """Scale and R1 of predicted fields against the intensities they were predicted from.

    Args:
        film_field: (n, R, NL) complex predicted U.
        substrate_field: (R, NL) complex S of the model's preset and grid.
        intensity: (n, R, NL) input intensities (only the points off the Bragg peaks are used).
        bragg: (NL,) bool, the Bragg points of the grid.
        mask: None, or (n, R, NL) bool (broadcastable), False = not measured (left out, like the Bragg points).
        scale_checked, r1_threshold: see Consistency.
        scale_per_rod: fit one scale per rod (the check of a scale-free model, whose input cancels rod scales:
            measured rods carry scale errors of their own); `Consistency.scale` is then the geometric mean of a
            structure's rod scales.
    """
    model = np.abs(np.asarray(film_field) + np.asarray(substrate_field)[None]) ** 2
    intensity = np.asarray(intensity, dtype=np.float64)
    keep = np.broadcast_to(~np.asarray(bragg, dtype=bool), intensity.shape)
    if mask is not None:
        keep = keep & np.broadcast_to(np.asarray(mask, dtype=bool), intensity.shape)
    n = intensity.shape[0]
    shape = (n, intensity.shape[1], -1) if scale_per_rod else (n, 1, -1)  # the points that share one scale
    keep = keep.reshape(shape)
    f_obs = np.where(keep, np.sqrt(np.maximum(intensity.reshape(shape), 0.0)), 0.0)
    f_calc = np.where(keep, np.sqrt(model.reshape(shape)), 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-zero row gives NaN, which is flagged
        k = (f_obs * f_calc).sum(axis=2) / (f_calc * f_calc).sum(axis=2)
        if scale_per_rod:  # rods without a measured point have no scale and add nothing to R1
            k = np.where(keep.any(axis=2), k, np.nan)
        r1 = np.abs(f_obs - np.nan_to_num(k)[:, :, None] * f_calc).sum(axis=(1, 2)) / f_obs.sum(axis=(1, 2))
    if scale_per_rod:
        with warnings.catch_warnings():  # a structure without any measured point: NaN, flagged
            warnings.simplefilter("ignore", RuntimeWarning)
            scale = np.exp(np.nanmean(np.log(k**2), axis=1))
    else:
        scale = k[:, 0] ** 2
    return Consistency(scale=scale, r1=r1, scale_checked=scale_checked, r1_threshold=float(r1_threshold))
