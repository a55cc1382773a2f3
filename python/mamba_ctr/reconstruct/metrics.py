"""How well extracted labels match the truth: R² per label and per atom type, with the paper's outlier rule.

learning.md ("Judging a model"): an extracted value lying more than 10 % of its label's sampled range outside
that range [low, high] is replaced by the nominal structure's value (0.5 for p_n), and how often is reported.
R² averages per atom type use identifiable labels only (physics.md: the top layer's c is not identifiable).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ..families import Family

OUTLIER_MARGIN = 0.1
"""Fraction of a label's sampled range (high − low) a value may lie outside it before it counts as an outlier."""


def apply_outlier_rule(predicted: Mapping[str, np.ndarray], preset: Family, margin: float = OUTLIER_MARGIN,
                       true: Mapping[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Replace outliers by the label's nominal value.

    Args:
        predicted: label name → (n,) extracted values; NaN means "layer absent".
        preset: the labels' ranges and nominal values.
        margin: the fraction of a label's range a value may lie outside it (math.inf: no range check).
        true: if given, a NaN prediction where the true label exists (a layer missed) also counts as an outlier.

    Returns:
        (label → (n,) corrected copy, label → number of values replaced).
    """
    if not (margin >= 0):
        raise ValueError(f"margin must be a fraction ≥ 0 of the label range, got {margin!r}")
    corrected: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for spec in preset.label_specs():
        values = _column(predicted, spec.name)
        slack = margin * (spec.high - spec.low)
        with np.errstate(invalid="ignore"):
            outside = (values < spec.low - slack) | (values > spec.high + slack)
        if true is not None:
            outside |= np.isnan(values) & np.isfinite(_column(true, spec.name))
        corrected[spec.name] = np.where(outside, spec.nominal, values)
        counts[spec.name] = int(np.count_nonzero(outside))
    return corrected, counts


def fit_start(predicted: Mapping[str, np.ndarray], preset: Family,
              true: Mapping[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Extracted labels made usable as the start of a least-squares fit: the outlier rule applied, and every value
    still missing (NaN) replaced by the label's nominal value. `true`: as for `apply_outlier_rule`."""
    corrected, _ = apply_outlier_rule(predicted, preset, true=true)
    return {spec.name: np.where(np.isfinite(corrected[spec.name]), corrected[spec.name], spec.nominal)
            for spec in preset.label_specs()}


def r2_score(true: np.ndarray, predicted: np.ndarray) -> float:
    """1 − Σ(t − p)² / Σ(t − t̄)² over the entries where the truth is finite (NaN if fewer than 2 or constant).

    A non-finite prediction where the truth is finite makes the score NaN (apply the outlier rule first).
    """
    true, predicted = np.asarray(true, np.float64), np.asarray(predicted, np.float64)
    if true.shape != predicted.shape:
        raise ValueError(f"true and predicted must have the same shape, got {true.shape} and {predicted.shape}")
    keep = np.isfinite(true)
    t, p = true[keep], predicted[keep]
    total = float(np.sum((t - t.mean()) ** 2)) if t.size else 0.0
    if t.size < 2 or total == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((t - p) ** 2)) / total


def r2_scores(true: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray], preset: Family,
              outlier_rule: bool = True) -> tuple[dict[str, float], dict[str, float], dict[str, int]]:
    """R² of extracted against true labels.

    Args:
        true, predicted: label name → (n,) values (as `preset.labels` and `extract_labels` give them).
        preset: gives the labels, their ranges, nominal values, groups and identifiability.
        outlier_rule: apply `apply_outlier_rule` to `predicted` first (the paper's procedure). Either way a NaN
            prediction where the true label exists (a layer the extraction missed) is replaced and counted;
            entries whose true label is NaN (absent layers) are left out of R².

    Returns:
        (label → R², group → mean R² over its identifiable labels, label → outliers replaced). Groups are the
        LabelSpec groups: "c", "B", "O_ap", "O_eq", "p" and, for rough presets, "occupancy".
    """
    if not callable(getattr(preset, "label_specs", None)):
        raise TypeError(f"preset must be a preset or structure family, got {type(preset).__name__}")
    margin = OUTLIER_MARGIN if outlier_rule else np.inf
    corrected, counts = apply_outlier_rule(predicted, preset, margin, true=true)
    per_label: dict[str, float] = {}
    groups: dict[str, list[float]] = {}
    for spec in preset.label_specs():
        per_label[spec.name] = r2_score(_column(true, spec.name), corrected[spec.name])
        if spec.identifiable and np.isfinite(per_label[spec.name]):
            groups.setdefault(spec.group, []).append(per_label[spec.name])
    return per_label, {group: float(np.mean(values)) for group, values in groups.items()}, counts


def label_rmse(true: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray], preset: Family,
               outlier_rule: bool = True) -> dict[str, float]:
    """Root-mean-square error of each label over the structures where it exists (the paper's Fig. 2b error bars).

    Same treatment of outliers and absent layers as `r2_scores`; units those of the label (Å, or none).
    """
    margin = OUTLIER_MARGIN if outlier_rule else np.inf
    corrected, _ = apply_outlier_rule(predicted, preset, margin, true=true)
    out: dict[str, float] = {}
    for spec in preset.label_specs():
        t = _column(true, spec.name)
        keep = np.isfinite(t)
        out[spec.name] = float(np.sqrt(np.mean((corrected[spec.name][keep] - t[keep]) ** 2))) if keep.any() else np.nan
    return out


def _column(labels: Mapping[str, np.ndarray], name: str) -> np.ndarray:
    if name not in labels:
        raise ValueError(f"label {name!r} is missing (got {', '.join(list(labels)[:6])}, …)")
    return np.asarray(labels[name], dtype=np.float64).reshape(-1)
