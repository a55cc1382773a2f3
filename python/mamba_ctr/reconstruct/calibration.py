"""Calibrated intervals from a spread: normalised split conformal prediction, per group of labels or of points.

For predictions ŷ with a spread s (e.g. the std over test-time draws, mamba_ctr.nn.uncertainty) and the truth y of
a calibration set never used in training or testing, group g (an atom type, or one rod of U) gets

    τ_g = median of s over the group          (keeps the score finite where the spread is ~0)
    score = |y − ŷ| / (s + τ_g)
    q_g = the ⌈(n + 1)·level⌉-th smallest of the n scores (the finite-sample conformal quantile)

and the interval ŷ ± q_g (s + τ_g) covers a new case of the same group with probability ≥ level (and below
level + 1/(n + 1) for continuous scores) when calibration and test cases are exchangeable. A prediction that is
missing (NaN) where the truth exists scores inf: it is never covered. numpy only.

    >>> cal = calibrate_groups(y, y_hat, spread, groups)          # arrays (n, m), groups (m,) of names
    >>> coverage_by_group(y_test, y_hat_test, spread_test, groups, cal)
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _files
from ..errors import InputError
from .consistency import R1_THRESHOLD

__all__ = ["LEVEL", "Calibration", "GroupCalibration", "calibrate_groups", "conformal_quantile",
           "consistency_threshold", "coverage_by_group", "group_quantile", "half_width", "read_calibration", "scores"]

LEVEL = 0.68
"""The nominal coverage of the intervals: ±1σ of a normal distribution."""


@dataclass(frozen=True)
class GroupCalibration:
    """One group's calibration: quantile q of the scores, scale τ (median spread, same units as the values), the
    number n of scores it was taken from."""

    q: float
    tau: float
    n: int


@dataclass
class Calibration:
    """What `calibrate` stores (calibration.json): the level, per label group and per group of points of U
    (`points`: one per rod, or "all") a GroupCalibration, which label belongs to which group, and free-form
    provenance (`meta`: method, draws, counts level, model, n calibration structures, command)."""

    level: float
    labels: dict[str, GroupCalibration] = field(default_factory=dict)
    label_groups: dict[str, str] = field(default_factory=dict)
    points: dict[str, GroupCalibration] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def r1_threshold(self) -> float | None:
        """The forward-consistency R1 threshold calibrated with this model (the 99th percentile of its calibration
        set's R1; `mamba-ctr calibrate`), or None for calibrations made before it was recorded."""
        value = (self.meta.get("consistency") or {}).get("r1_threshold")
        return None if value is None else float(value)

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "meta": self.meta, "label_groups": self.label_groups,
                "labels": {g: asdict(c) for g, c in self.labels.items()},
                "points": {g: asdict(c) for g, c in self.points.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        """The inverse of `to_dict`; InputError naming what is missing or malformed."""
        try:
            return cls(level=float(data["level"]), meta=dict(data.get("meta", {})),
                       label_groups={str(k): str(v) for k, v in data.get("label_groups", {}).items()},
                       labels={g: GroupCalibration(float(c["q"]), float(c["tau"]), int(c["n"]))
                               for g, c in data.get("labels", {}).items()},
                       points={g: GroupCalibration(float(c["q"]), float(c["tau"]), int(c["n"]))
                               for g, c in data.get("points", {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise InputError(f"not a calibration (level, labels/points groups with q, tau, n): {error!r}") from None

    def write(self, path: str | os.PathLike) -> Path:
        """Write calibration.json (atomically); returns the path."""
        _files.write_json(Path(path), self.to_dict())
        return Path(path)

    def label_half_width(self, name: str, spread: np.ndarray) -> np.ndarray:
        """Half-width of label `name`'s interval for the spread (n,) of its predictions."""
        group = self.label_groups.get(name)
        if group is None or group not in self.labels:
            raise InputError(f"the calibration has no group for label {name!r} (it has "
                             f"{', '.join(sorted(self.label_groups)) or 'none'})")
        return half_width(spread, self.labels[group])


def read_calibration(path: str | os.PathLike) -> Calibration:
    """The Calibration of a calibration.json (mamba-ctr calibrate); InputError when it is missing or malformed."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the calibration {path} ({error})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path} is not a calibration (a JSON object)")
    return Calibration.from_dict(data)


def scores(y: np.ndarray, y_hat: np.ndarray, spread: np.ndarray, tau: float) -> np.ndarray:
    """|y − ŷ| / (s + τ) where the truth is finite (flattened); inf where ŷ or s is missing (NaN)."""
    y, y_hat, spread = (np.asarray(a, dtype=np.float64) for a in (y, y_hat, spread))
    known = np.isfinite(y)
    y, y_hat, spread = y[known], y_hat[known], spread[known]
    with np.errstate(invalid="ignore"):
        out = np.abs(y - y_hat) / (spread + tau)
    return np.where(np.isfinite(out), out, np.inf)


def conformal_quantile(values: np.ndarray, level: float = LEVEL) -> float:
    """The ⌈(n + 1)·level⌉-th smallest of the n scores (inf when that rank exceeds n): the split-conformal
    quantile, which guarantees coverage ≥ level for an exchangeable new case."""
    values = np.sort(np.ravel(np.asarray(values, dtype=np.float64)))
    if not 0 < level < 1:
        raise InputError(f"level must lie in (0, 1), got {level!r}")
    if values.size == 0:
        raise InputError("no calibration scores (every truth missing?)")
    rank = math.ceil((values.size + 1) * level)
    return float(values[rank - 1]) if rank <= values.size else math.inf


def _tau(y: np.ndarray, y_hat: np.ndarray, spread: np.ndarray) -> float:
    """The median spread of the group; where that is 0 (no spread at all) the median |error|, else 1."""
    known = np.isfinite(y) & np.isfinite(y_hat) & np.isfinite(spread)
    for candidate in (spread[known], np.abs(y - y_hat)[known]):
        value = float(np.median(candidate)) if candidate.size else 0.0
        if value > 0:
            return value
    return 1.0


def group_quantile(y: np.ndarray, y_hat: np.ndarray, spread: np.ndarray, level: float = LEVEL) -> GroupCalibration:
    """Calibrate one group from its predictions ŷ, spreads s and truths y (any one shape)."""
    y, y_hat, spread = (np.asarray(a, dtype=np.float64) for a in (y, y_hat, spread))
    if not (y.shape == y_hat.shape == spread.shape):
        raise InputError(f"y, ŷ and the spread must have one shape, got {y.shape}, {y_hat.shape}, {spread.shape}")
    tau = _tau(y, y_hat, spread)
    s = scores(y, y_hat, spread, tau)
    return GroupCalibration(q=conformal_quantile(s, level), tau=tau, n=int(s.size))


def half_width(spread: np.ndarray, calibration: GroupCalibration) -> np.ndarray:
    """q (s + τ): the half-width of the interval ŷ ± q (s + τ) for spreads s."""
    return calibration.q * (np.asarray(spread, dtype=np.float64) + calibration.tau)


def _by_group(groups: Sequence[str]) -> dict[str, np.ndarray]:
    names = np.asarray(list(groups), dtype=object)
    return {g: np.flatnonzero(names == g) for g in dict.fromkeys(names.tolist())}


def calibrate_groups(y: np.ndarray, y_hat: np.ndarray, spread: np.ndarray, groups: Sequence[str],
                     level: float = LEVEL) -> dict[str, GroupCalibration]:
    """One GroupCalibration per group name: arrays (n, m) (n cases, m quantities), `groups` (m,) the group of
    each quantity (column)."""
    y, y_hat, spread = (np.asarray(a, dtype=np.float64) for a in (y, y_hat, spread))
    if y.ndim != 2 or len(groups) != y.shape[1]:
        raise InputError(f"expected (n, m) arrays and m = {y.shape[-1]} group names, got {y.shape} and "
                         f"{len(groups)} names")
    return {g: group_quantile(y[:, cols], y_hat[:, cols], spread[:, cols], level)
            for g, cols in _by_group(groups).items()}


def coverage_by_group(y: np.ndarray, y_hat: np.ndarray, spread: np.ndarray, groups: Sequence[str],
                      calibration: Mapping[str, GroupCalibration],
                      report: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Per group: the fraction of cases (finite truth) inside ŷ ± q (s + τ) ("coverage"), the mean half-width
    ("mean_half_width", over finite ones) and the number of cases ("n"). Arrays (n, m); groups (m,): the
    calibration group of each column; report (m,): the group each column is counted in (default: groups), e.g.
    labels calibrated one by one and reported per atom type."""
    y, y_hat, spread = (np.asarray(a, dtype=np.float64) for a in (y, y_hat, spread))
    missing = sorted(set(groups) - set(calibration))
    if missing:
        raise InputError(f"the calibration has no group {missing[0]!r} (it has {', '.join(calibration) or 'none'})")
    width = np.empty(y.shape)
    for g, cols in _by_group(groups).items():
        width[:, cols] = half_width(spread[:, cols], calibration[g])
    with np.errstate(invalid="ignore"):
        inside = np.abs(y - y_hat) <= width
    out = {}
    for g, cols in _by_group(groups if report is None else report).items():
        known = np.isfinite(y[:, cols])
        hits, w = inside[:, cols][known], width[:, cols][known]
        out[g] = {"coverage": float(hits.mean()) if hits.size else math.nan,
                  "mean_half_width": float(np.mean(w[np.isfinite(w)])) if np.isfinite(w).any() else math.nan,
                  "n": int(hits.size)}
    return out


def consistency_threshold(calibration: str | os.PathLike | None, checkpoint: Any = None) -> tuple[float, str]:
    """The R1 above which a prediction is flagged, and where it comes from (for the reports): a calibration's (its
    99th percentile on measured-like simulated rods) when one that records it is given, else the checkpoint's own
    (metadata `r1_threshold`: the 99th percentile on noise-free test structures, recorded when it was exported),
    else R1_THRESHOLD."""
    value = None if calibration is None else read_calibration(calibration).r1_threshold
    if value is not None:
        return value, f"{calibration} (99th percentile of the calibration set's R1)"
    own = (getattr(checkpoint, "metadata", None) or {}).get("r1_threshold")
    if own is not None:
        return float(own), "the model's r1_threshold (99th percentile of R1 on noise-free test structures)"
    return R1_THRESHOLD, "R1_THRESHOLD (noise-free paper-12L, standardised model)"
