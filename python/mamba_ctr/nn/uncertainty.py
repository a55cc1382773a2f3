"""Uncertainty of a prediction by test-time draws: the input re-measured K times, the spread of what comes out.

For one input (intensities I (R, NL) on the model's grid and the mask of measured points) each of K draws
re-draws the measurement nuisances around it (in this order; draw k of structure i comes from numpy's Generator
of the key (seed, KEY, i), so it is the same whatever the batch):

1. an L offset δ ~ N(0, l_offset) (data.augment.shift_L: ln I interpolated, points next to a gap unmeasured);
2. the counts resampled: I + σ_I·N(0, 1) where σ_I is given, else Poisson(I/u)·u with u = (median of the rod's
   measured I) / counts, i.e. each rod's median point re-counted at the `counts` level (0 = a noise-free input,
   no resampling). The level must be given: estimating it from the input's point-to-point scatter fails on thin
   films, whose fringes (period ≈ 3 L points for 12 layers on the paper grid) dominate the second differences
   (such an estimate gave 7–23 counts for inputs of 10^2, 10^4 counts and noise-free alike);
3. a random `mask_fraction` of the measured points unmeasured, and with probability `coverage` a whole coverage
   mask like measured rods' (data.augment.coverage).

The scale-free network (nn.inputs) predicts U for every draw; labels are extracted from every drawn U (by default
the preset's extraction, reconstruct.extract_labels; `extract` plugs in any other). The prediction is the mean over
draws and the spread their standard deviation, per point of U (Re and Im apart) and per label. Alone the spread is
not a calibrated interval: a Calibration (reconstruct.calibration, made by `mamba-ctr calibrate` on simulated
structures never used in training or testing) turns it into 68 % intervals ŷ ± q_g (s + τ_g) per label group and
per rod.

    >>> from mamba_ctr import models
    >>> from mamba_ctr.reconstruct.calibration import read_calibration
    >>> result = predict_with_uncertainty(models.load("results/training/paper12L-robust/model"), I, mask,
    ...                                   read_calibration("results/uncertainty/calibration.json"))
    >>> low, high = result.label_interval("d_O_eq_9")
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np

from ..data.augment import coverage, shift_L
from ..errors import InputError
from ..reconstruct.calibration import LEVEL, Calibration, calibrate_groups, coverage_by_group, half_width
from .checkpoint import Checkpoint
from .inputs import InputTransform
from .predict import predict_field

__all__ = ["KEY", "DrawSettings", "Extractor", "UncertainPrediction", "calibrate", "coverage_of", "draw_inputs",
           "label_groups", "predict_with_uncertainty", "rod_names"]

KEY = 0x16D  # the middle word of the draws' generator key: never the training nuisances' (data.augment.KEY)

Extractor = Callable[[np.ndarray], Mapping[str, np.ndarray]]
"""Labels from film fields: U (m, R, NL) complex → label name → (m,) float (NaN = absent)."""


@dataclass(frozen=True)
class DrawSettings:
    """The test-time draws (module docstring). counts: counts at each rod's median measured point for the
    resampling (0: none, the input is noise-free; None: not known yet, to be given with the prediction)."""

    draws: int = 16
    counts: float | None = None
    mask_fraction: float = 0.1
    l_offset: float = 0.005
    coverage: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.draws, bool) or not isinstance(self.draws, int) or self.draws < 2:
            raise InputError(f"draws must be an integer ≥ 2 (a spread needs two), got {self.draws!r}")
        if self.counts is not None and not (np.isfinite(self.counts) and self.counts >= 0):
            raise InputError(f"counts must be ≥ 0 (0: noise-free input), got {self.counts!r}")
        if not (0 <= self.mask_fraction < 1 and 0 <= self.coverage <= 1 and 0 <= self.l_offset < 1):
            raise InputError(f"need 0 ≤ mask_fraction < 1, 0 ≤ coverage ≤ 1 and 0 ≤ l_offset < 1 (L units), got "
                             f"{self.mask_fraction!r}, {self.coverage!r}, {self.l_offset!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DrawSettings:
        known = {k: data[k] for k in ("draws", "counts", "mask_fraction", "l_offset", "coverage") if k in data}
        return cls(**known)


def draw_inputs(intensity: np.ndarray, measured: np.ndarray, L: np.ndarray, bragg: np.ndarray,
                settings: DrawSettings, rng: np.random.Generator,
                sigma: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """K = settings.draws re-measured copies of one input: (I, measured) (K, R, NL) float64 and bool.

    intensity, measured, sigma: (R, NL) (sigma: σ of I, or None for the counts level); settings.counts must be
    resolved (not None). Unmeasured points hold I = 1 (the scale-free input ignores them).
    """
    if settings.counts is None and sigma is None:
        raise InputError("the draws need the counts level at each rod's median point (counts=…, 0 for a "
                         "noise-free input) or σ_I (sigma=…)")
    base_mask = np.asarray(measured, dtype=bool) & ~bragg & np.isfinite(intensity) & (intensity > 0)
    base = np.where(base_mask, intensity, np.nan)  # NaN: shift_L leaves the neighbours of unmeasured points out
    K, (R, NL) = settings.draws, base.shape
    out, mask = np.empty((K, R, NL)), np.empty((K, R, NL), dtype=bool)
    for k in range(K):
        x, m = (shift_L(base, L, bragg, rng.normal(0, settings.l_offset)) if settings.l_offset
                else (np.where(base_mask, base, 1.0), base_mask.copy()))
        if sigma is not None:
            x = x + np.asarray(sigma, dtype=np.float64) * rng.normal(size=x.shape)
        elif settings.counts:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a rod with no measured point: no median
                median = np.nanmedian(np.where(m, x, np.nan), axis=-1, keepdims=True)
            per_count = np.where(np.isfinite(median), median, 1.0) / settings.counts
            x = rng.poisson(np.where(m, x / per_count, 0.0)).astype(np.float64) * per_count
        m = m & (x > 0)
        if settings.mask_fraction:
            m &= rng.random(m.shape) >= settings.mask_fraction
        if settings.coverage and rng.random() < settings.coverage:
            m &= coverage(rng, L, bragg, R)
        out[k], mask[k] = np.where(m, x, 1.0), m
    return out, mask


@dataclass(frozen=True, eq=False)
class UncertainPrediction:
    """Predictions for n structures with their spread over the test-time draws.

    Attributes:
        film_field: (n, R, NL) complex128, U averaged over the draws.
        field_std: (n, R, NL) complex128, std over the draws of Re U + 1j × that of Im U.
        labels, label_std: label name → (n,) mean and std over the draws (NaN-aware; NaN = absent in every draw).
        settings: the DrawSettings (counts: the resampling level; NaN when σ_I was given instead); seed: the
            draws' seed.
        calibration: the Calibration that turns spreads into intervals, or None.
    """

    film_field: np.ndarray
    field_std: np.ndarray
    labels: dict[str, np.ndarray]
    label_std: dict[str, np.ndarray]
    settings: DrawSettings
    seed: int
    calibration: Calibration | None = None

    def _calibration(self) -> Calibration:
        if self.calibration is None:
            raise InputError("no calibration: intervals need one (mamba-ctr calibrate; calibration=...)")
        return self.calibration

    def label_half_width(self, name: str) -> np.ndarray:
        """(n,) half-width of the calibrated interval (level: calibration.level) of label `name`."""
        return self._calibration().label_half_width(name, self.label_std[name])

    def label_interval(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(low, high), each (n,): the calibrated interval of label `name`."""
        width = self.label_half_width(name)
        return self.labels[name] - width, self.labels[name] + width

    def field_half_width(self, rods: Iterable[str]) -> np.ndarray:
        """(n, R, NL) complex128: the calibrated half-widths of Re U + 1j × those of Im U; `rods` (R,) names the
        calibration group of each rod ("00", "10", …; every rod "all" for a pooled calibration)."""
        calibration = self._calibration()
        names = ["all" if "all" in calibration.points else rod for rod in rods]
        missing = sorted(set(names) - set(calibration.points))
        if missing:
            raise InputError(f"the calibration has no group for rod(s) {', '.join(missing)}")
        out = np.empty(self.film_field.shape, dtype=np.complex128)
        for r, name in enumerate(names):
            cal = calibration.points[name]
            out[:, r] = half_width(self.field_std[:, r].real, cal) + 1j * half_width(self.field_std[:, r].imag, cal)
        return out


def label_groups(preset: Any) -> dict[str, str]:
    """Label name → calibration group of a preset: its atom type (LabelSpec.group), "<group> (not identifiable)"
    for labels no data determines (the top layer's c)."""
    return {spec.name: spec.group if spec.identifiable else f"{spec.group} (not identifiable)"
            for spec in preset.label_specs()}


def rod_names(grid: Any) -> list[str]:
    """The rods' calibration group names: "<h><k>" ("00", "10", …; "h_k" where an index has two digits or a sign)."""
    plain = all(0 <= int(v) <= 9 and float(v) == int(v) for v in (*grid.h, *grid.k))
    return [f"{int(h)}{int(k)}" if plain else f"{h:g}_{k:g}" for h, k in zip(grid.h, grid.k, strict=True)]


def _default_extractor(checkpoint: Checkpoint) -> Extractor | None:
    """The labels of the checkpoint's family as `evaluate` reads them (reconstruct.family_fit.labels_of_fields);
    None without a stored family."""
    stored = checkpoint.metadata.get("preset")
    if not stored:
        return None
    from .. import families
    from ..reconstruct.family_fit import labels_of_fields

    return partial(labels_of_fields, preset=families.from_dict(stored))


def _settings(calibration: Calibration | None, draws: int | None, counts: float | None,
              settings: DrawSettings | None) -> DrawSettings:
    """The draws' settings: those given, else the calibration's, else the defaults; draws and counts on top. A
    calibration holds only for the draws it was made with: another number of draws is refused."""
    calibrated = None if calibration is None else calibration.meta.get("draws")
    base = settings or (DrawSettings.from_dict(calibrated) if calibrated else DrawSettings())
    if draws is not None:
        base = replace(base, draws=draws)
    if counts is not None:
        base = replace(base, counts=counts)
    if calibrated:
        expected = DrawSettings.from_dict(calibrated)
        differs = [k for k in ("draws", "mask_fraction", "l_offset", "coverage")
                   if getattr(base, k) != getattr(expected, k)]
        if differs:
            raise InputError(f"the calibration was made with other draws ({', '.join(differs)}: "
                             f"{', '.join(str(getattr(expected, k)) for k in differs)}); use its settings")
    return base


def predict_with_uncertainty(checkpoint: Checkpoint, intensity: np.ndarray, mask: np.ndarray | None = None,
                             calibration: Calibration | None = None, draws: int | None = None, seed: int = 0,
                             extract: Extractor | None = None, *, counts: float | None = None,
                             sigma: np.ndarray | None = None, settings: DrawSettings | None = None, start: int = 0,
                             chunk: int = 16, device: str = "cpu") -> UncertainPrediction:
    """The prediction of a scale-free checkpoint for intensities I (n, R, NL) (or (R, NL)) with its spread over
    test-time draws (module docstring), and calibrated intervals when `calibration` is given.

    Args:
        mask: (n, R, NL) bool or broadcastable, False = not measured (None: every finite I > 0 off the Bragg points).
        calibration: from `mamba-ctr calibrate` (its draw settings are used; another number of draws is refused).
        draws: K (default: the calibration's, else 16); seed: the draws' seed; structure i of the input draws
            from the key (seed, KEY, start + i).
        extract: labels from film fields (Extractor); default the checkpoint preset's extraction (none without a
            preset: labels stay empty).
        counts: the resampling level (counts at each rod's median point; 0 = a noise-free input, no resampling;
            default: settings' or the calibration's); sigma: (n, R, NL) σ_I, used instead of counts. One of them
            is needed.
        chunk: structures per network call (chunk × K inputs at once).
    """
    if not InputTransform.of_checkpoint(checkpoint).is_scale_free:
        raise InputError("test-time draws mask points: they need a scale-free model (train --input scale-free); "
                         "this checkpoint has the standardised input")
    settings = _settings(calibration, draws, counts, settings)
    if sigma is None and settings.counts is None:
        raise InputError("give the counts level at each rod's median point (counts=…; 0 for a noise-free input) "
                         "or σ_I (sigma=…): the draws re-count the input at that level")
    if sigma is not None:
        settings = replace(settings, counts=None)
    grid = checkpoint.grid
    intensity = np.asarray(intensity, dtype=np.float64)
    intensity = intensity[None] if intensity.ndim == 2 else intensity
    if intensity.ndim != 3 or intensity.shape[1:] != grid.shape:
        raise InputError(f"expected intensities (n, {grid.shape[0]}, {grid.shape[1]}) on the model's grid, "
                         f"got shape {intensity.shape}")
    n = intensity.shape[0]
    measured = np.broadcast_to(np.ones(1, dtype=bool) if mask is None else np.asarray(mask, dtype=bool),
                               intensity.shape)
    if sigma is not None:
        sigma = np.broadcast_to(np.asarray(sigma, dtype=np.float64), intensity.shape)
    if chunk < 1:
        raise InputError(f"chunk must be ≥ 1, got {chunk!r}")
    extract = extract if extract is not None else _default_extractor(checkpoint)
    mean = np.empty(intensity.shape, dtype=np.complex128)
    std = np.empty(intensity.shape, dtype=np.complex128)
    label_draws: dict[str, list[np.ndarray]] = {}
    K = settings.draws
    for lo in range(0, n, chunk):
        rows = range(lo, min(n, lo + chunk))
        inputs, masks = [], []
        for i in rows:
            rng = np.random.default_rng([seed, KEY, start + i])
            x, m = draw_inputs(intensity[i], measured[i], grid.L, grid.bragg, settings, rng,
                               None if sigma is None else sigma[i])
            inputs.append(x)
            masks.append(m)
        U = predict_field(checkpoint, np.concatenate(inputs), mask=np.concatenate(masks), device=device)
        U = U.reshape(len(rows), K, *grid.shape)
        mean[lo:lo + len(rows)] = U.mean(axis=1)
        std[lo:lo + len(rows)] = U.real.std(axis=1, ddof=1) + 1j * U.imag.std(axis=1, ddof=1)
        if extract is not None:
            for name, values in extract(U.reshape(-1, *grid.shape)).items():
                label_draws.setdefault(name, []).append(np.asarray(values, dtype=np.float64).reshape(len(rows), K))
    labels, label_std = {}, {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a label absent in every draw: NaN, as meant
        for name, parts in label_draws.items():
            values = np.concatenate(parts)
            labels[name] = np.nanmean(values, axis=1)
            label_std[name] = np.nanstd(values, axis=1, ddof=1)
    return UncertainPrediction(mean, std, labels, label_std, settings, seed, calibration)


def _field_columns(U: np.ndarray) -> np.ndarray:
    """(n, R, NL) complex → (n, R·2·NL) float: per rod its Re then its Im points (the columns of a group)."""
    return np.stack([U.real, U.imag], axis=2).reshape(U.shape[0], -1)


def _point_groups(rods: list[str], n_L: int, pooled: bool) -> list[str]:
    return [("all" if pooled else rod) for rod in rods for _ in range(2 * n_L)]


def calibrate(prediction: UncertainPrediction, true_labels: Mapping[str, np.ndarray], true_field: np.ndarray | None,
              groups: Mapping[str, str], rods: list[str], level: float = LEVEL, pooled: bool = False,
              meta: Mapping[str, Any] | None = None) -> Calibration:
    """The Calibration of predictions of calibration structures against their truth: per label group (`groups`:
    label → group; labels without a group are left out) and per rod of U (`rods` (R,) names; or all points
    pooled); `true_field` None: labels only."""
    names = [name for name in prediction.labels if name in groups and name in true_labels]
    label_cal = {}
    if names:
        y, y_hat, s = (np.stack([np.asarray(source[name], dtype=np.float64) for name in names], axis=1)
                       for source in (true_labels, prediction.labels, prediction.label_std))
        label_cal = calibrate_groups(y, y_hat, s, [groups[name] for name in names], level)
    point_cal = {}
    if true_field is not None:
        point_cal = calibrate_groups(_field_columns(np.asarray(true_field)), _field_columns(prediction.film_field),
                                     _field_columns(prediction.field_std),
                                     _point_groups(rods, prediction.film_field.shape[-1], pooled), level)
    return Calibration(level=level, labels=label_cal, label_groups={name: groups[name] for name in names},
                       points=point_cal, meta={"draws": prediction.settings.to_dict(), "seed": prediction.seed,
                                               **(meta or {})})


def coverage_of(prediction: UncertainPrediction, true_labels: Mapping[str, np.ndarray],
                true_field: np.ndarray | None, rods: list[str],
                report: Mapping[str, str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Coverage of the calibrated intervals on test structures: {"labels": group → {coverage, mean_half_width, n},
    "per_label": label → the same, "points": rod group → the same}. `report`: label → the group it is counted
    in (default: its calibration group; e.g. label_groups(preset) for labels calibrated one by one)."""
    calibration = prediction._calibration()
    names = [name for name in calibration.label_groups if name in prediction.labels and name in true_labels]
    out: dict[str, dict[str, dict[str, float]]] = {"labels": {}, "per_label": {}, "points": {}}
    if names:
        y, y_hat, s = (np.stack([np.asarray(source[name], dtype=np.float64) for name in names], axis=1)
                       for source in (true_labels, prediction.labels, prediction.label_std))
        groups = [calibration.label_groups[name] for name in names]
        reported = groups if report is None else [report.get(name, calibration.label_groups[name]) for name in names]
        out["labels"] = coverage_by_group(y, y_hat, s, groups, calibration.labels, reported)
        out["per_label"] = coverage_by_group(y, y_hat, s, groups, calibration.labels, names)
    if true_field is not None and calibration.points:
        pooled = "all" in calibration.points
        out["points"] = coverage_by_group(_field_columns(np.asarray(true_field)),
                                          _field_columns(prediction.film_field), _field_columns(prediction.field_std),
                                          _point_groups(rods, prediction.film_field.shape[-1], pooled),
                                          calibration.points)
    return out
