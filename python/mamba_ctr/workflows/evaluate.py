"""Judge a model on test structures: field MAE per rod, labels extracted from the predicted field vs the truth
(R² per label and per atom type, the paper's outlier rule), figures (paper Fig. 2a, 2b, 3a-c, 6). Writes
metrics.json, r2.csv, labels.csv, field_mae_per_rod.csv and PNGs to out.

    >>> from mamba_ctr.workflows import evaluate
    >>> report = evaluate.run(evaluate.Config(model="paper-12L", data="test.h5", out="eval", n=500)).value
    >>> report["r2_per_group"]            # mean R² per atom type over identifiable labels

Chain (learning.md, "Judging a model"): intensities → network → predicted film field U → column densities →
extracted labels → R² against the stored labels, with the paper's outlier rule (an extracted value more than 10 %
of its label's range outside the sampled range is replaced by the nominal value; how often is reported). The same
extraction applied to the TRUE field is reported beside it: the ceiling set by the extraction alone. Field MAE is
in z-score units (the training metric), overall and per rod. Figures: density_slices.png (Fig. 2a),
positions.png (Fig. 2b), scatter.png (Fig. 3a–b), r2.png (Fig. 3c), field_00.png (Fig. 6).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _files, families
from .._checks import check_count
from .._version import __version__
from ..errors import InputError
from ..physics.family import StructureFamily
from ..reconstruct import label_rmse, r2_scores
from ..reconstruct.family_fit import labels_of_fields
from ._common import Result, output_dir, user_path

if TYPE_CHECKING:
    from ..families import Family

__all__ = ["TARGETS", "Config", "field_mae", "read_test_set", "run", "structure_report"]

# issue 6 targets on paper-12L: R² ≥ 0.98 for every identifiable c_j and p_n, ≥ 0.90 for every small atom
TARGETS = {"c": 0.98, "p": 0.98, "B": 0.90, "O_ap": 0.90, "O_eq": 0.90, "occupancy": 0.90}


@dataclass
class Config:
    model: str = field(metadata={"help": "shipped model name (paper-12L), training directory (its best checkpoint) "
                                         "or checkpoint"})
    data: Path = field(metadata={"help": "test dataset FILE.h5 with /intensity, /film_field and /labels (mamba-ctr "
                                         "generate with a seed the model never saw)"})
    out: Path = field(default=Path("mamba-ctr-evaluate"), metadata={"help": "output directory"})
    n: int = field(default=500, metadata={"help": "structures to evaluate: rows [start, start + n) of the file"})
    start: int = field(default=0, metadata={"help": "first structure of the file"})
    figures: bool = field(default=True, metadata={"help": "write the PNG figures (needs matplotlib)"})
    example: int = field(default=0, metadata={"help": "index (within the n) of the structure drawn in the "
                                                      "single-structure figures"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier evaluation in out"})
    counts: float = field(default=0.0, metadata={"help": "Poisson counts at each rod's median point added to the "
                                                         "intensities before the prediction (0: noise-free)"})
    rod_scale: float = field(default=0.0, metadata={"help": "with counts: lognormal per-rod scale spread"})
    scale: float = field(default=1.0, metadata={"help": "a global factor on the intensities (the scale test)"})
    noise_seed: int = field(default=0, metadata={"help": "with counts: seed of the noise"})
    calibration: Path | None = field(default=None, metadata={
        "help": "calibration.json of mamba-ctr calibrate (scale-free models): also predict with its test-time draws "
                "and report the coverage of its intervals per group (metrics.json 'uncertainty', coverage.csv)"})
    draw_seed: int = field(default=1, metadata={"help": "with --calibration: seed of the test-time draws"})
    augment: bool = field(default=False, metadata={
        "help": "scale-free models: every training nuisance drawn per test structure (data.augment: L offset, rod "
                "scales, background, counts 10^2-10^6, coverage masks), keyed by (noise_seed, index)"})
    mask_from: Path | None = field(default=None, metadata={
        "help": "family models (scale-free): a measured file read with the family's settings; its coverage on the "
                "model grid (unmeasured stretches, late starts) masks every test structure's input"})

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), output_dir(self.out)
        check_count("n", self.n, 1)
        check_count("start", self.start, 0)
        check_count("example", self.example, 0)
        if self.example >= self.n:
            raise InputError(f"example must be < n = {self.n}, got {self.example}")
        if not self.data.is_file():
            raise InputError(f"no dataset file {self.data}")
        check_count("noise_seed", self.noise_seed, 0)
        check_count("draw_seed", self.draw_seed, 0)
        if self.mask_from is not None and not Path(self.mask_from).is_file():
            raise InputError(f"no measured file {self.mask_from}")
        if self.calibration is not None and not Path(self.calibration).is_file():
            raise InputError(f"no calibration file {self.calibration}")
        if not (self.counts >= 0 and 0 <= self.rod_scale < 1 and 0 < self.scale < float("inf")):
            raise InputError(f"need counts ≥ 0, 0 ≤ rod_scale < 1 and a finite scale > 0, got {self.counts!r}, "
                             f"{self.rod_scale!r}, {self.scale!r}")
        if (self.out / "prediction.h5").exists():  # another command's results are never mixed with these
            raise InputError(f"{self.out} holds a prediction (mamba-ctr predict); give evaluate its own --out")
        if (self.out / "metrics.json").exists() and not self.overwrite:
            raise InputError(f"{self.out / 'metrics.json'} exists (pass --overwrite to replace it)")


def read_test_set(path: Path, start: int, n: int) -> tuple[Family, np.ndarray, np.ndarray, dict]:
    """(preset, intensity (n, R, NL), film field (n, R, NL), labels) of rows [start, start + n) of a dataset."""
    from ..data.hdf5 import open_complete, read_grid

    with user_path(path, "read"), open_complete(path) as f:
        total = int(f["intensity"].shape[0])
        if start + n > total:
            raise InputError(f"{path} holds {total} structures; rows [{start}, {start + n}) asked for")
        for needed in ("film_field", "labels"):
            if needed not in f:
                raise InputError(f"{path} has no /{needed}: an evaluation needs the true fields and labels")
        stored = json.loads(f.attrs.get("preset", "null") or "null")
        if not stored:
            raise InputError(f"{path} records no preset: the labels cannot be interpreted")
        preset = families.from_dict(stored)
        if not read_grid(f["grid"]).same_as(preset.grid):
            raise InputError(f"{path}: its grid differs from its preset's")
        rows = slice(start, start + n)
        intensity = f["intensity"][rows]
        field_ = f["film_field"][rows]
        labels = {spec.name: f["labels"][spec.name][rows].astype(np.float64) for spec in preset.label_specs()}
    return preset, intensity, field_, labels


def _check_compatible(checkpoint, preset: Family, data: Path) -> None:
    if not checkpoint.grid.same_as(preset.grid):
        raise InputError(f"the model was trained on another grid ({checkpoint.grid!r}) than {data} "
                         f"({preset.grid!r})")
    trained_for = (checkpoint.metadata.get("preset") or {}).get("name")
    if trained_for is not None and trained_for != preset.name:
        raise InputError(f"the model was trained on preset {trained_for!r}, {data} holds {preset.name!r}")


def field_mae(checkpoint, predicted: np.ndarray, true: np.ndarray) -> tuple[float, np.ndarray]:
    """MAE of the standardised Re and Im U (z-score units, as in training): overall and per rod (R,)."""
    norm = checkpoint.normalisation
    pr, pi = norm.apply_targets(predicted, dtype=np.float64)
    tr, ti = norm.apply_targets(true, dtype=np.float64)
    per_rod = 0.5 * (np.abs(pr - tr).mean(axis=(0, 2)) + np.abs(pi - ti).mean(axis=(0, 2)))
    return float(per_rod.mean()), per_rod


def structure_report(preset: Family, true: dict, predicted: dict,
                     reference: dict | None = None) -> dict[str, Any]:
    """R² per label and per atom type (outlier rule applied), outlier counts, RMSE per label, and which labels
    meet the issue-6 targets. `reference`: labels extracted from the true field, reported beside them."""
    per_label, per_group, outliers = r2_scores(true, predicted, preset)
    rmse = label_rmse(true, predicted, preset)
    n = len(next(iter(true.values())))
    specs = {spec.name: spec for spec in preset.label_specs()}
    targets = {name: bool(per_label[name] >= TARGETS[spec.group]) for name, spec in specs.items()
               if spec.identifiable and spec.group in TARGETS and np.isfinite(per_label[name])}
    report: dict[str, Any] = {
        "n": n, "r2_per_label": per_label, "r2_per_group": per_group, "rmse_per_label": rmse,
        "outliers_per_label": outliers, "outliers_total": int(sum(outliers.values())),
        "outlier_fraction": float(sum(outliers.values()) / max(1, n * len(outliers))),
        "targets": {"thresholds": TARGETS, "met": int(sum(targets.values())), "of": len(targets),
                    "failing": sorted(name for name, ok in targets.items() if not ok)},
    }
    if reference is not None:
        ref_label, ref_group, ref_outliers = r2_scores(true, reference, preset)
        report["true_field_extraction"] = {"r2_per_label": ref_label, "r2_per_group": ref_group,
                                           "outliers_total": int(sum(ref_outliers.values()))}
    return report


def run(config: Config) -> Result:
    """Evaluate `config.model` on `config.data` and write the files of the module docstring; `Result.value` is
    the report (the content of metrics.json)."""
    from .. import models
    from ..nn.inputs import InputTransform
    from ..nn.predict import predict_field

    checkpoint = models.load(config.model)
    preset, intensity, true_field, true_labels = read_test_set(config.data, config.start, config.n)
    _check_compatible(checkpoint, preset, config.data)
    calibration = None if config.calibration is None else _read_calibration(config.calibration, checkpoint)
    measured = _measured(config, preset, intensity)
    mask = None if config.mask_from is None else measured_mask(config.mask_from, checkpoint, preset)
    if config.augment:
        measured, mask = _augmented(config, checkpoint, preset, measured, mask)
    started = time.perf_counter()
    predicted_field = predict_field(checkpoint, InputTransform.of_checkpoint(checkpoint).admissible(measured),
                                    mask=mask)
    predict_s = time.perf_counter() - started
    started = time.perf_counter()
    predicted_labels = labels_of_fields(predicted_field, preset)
    extract_s = time.perf_counter() - started
    reference_labels = labels_of_fields(true_field, preset)
    mae, mae_per_rod = field_mae(checkpoint, predicted_field, true_field)
    report = structure_report(preset, true_labels, predicted_labels, reference_labels)
    report.update({
        "model": str(config.model), "architecture": checkpoint.arch, "data": str(config.data),
        "rows": [config.start, config.start + config.n], "preset": preset.name,
        "noise": {"counts": config.counts, "rod_scale": config.rod_scale, "scale": config.scale,
                  "noise_seed": config.noise_seed}, "mamba_ctr_version": __version__,
        "augment": config.augment,
        "masked_points": None if mask is None else {"mask_from": None if config.mask_from is None else
                                                    str(config.mask_from), "measured": int(np.sum(mask)),
                                                    "of": int(np.broadcast_to(mask, measured.shape).size)},
        "field_mae": mae, "field_mae_per_rod": {f"{h}{k}": float(v) for h, k, v in
                                                zip(preset.grid.h, preset.grid.k, mae_per_rod, strict=True)},
        "seconds_per_structure": {"network": predict_s / config.n, "extraction": extract_s / config.n},
        "model_metadata": {key: checkpoint.metadata.get(key) for key in ("val_mae", "test_mae", "provenance")
                           if key in checkpoint.metadata},
    })
    if calibration is not None:
        from .calibrate import measure_coverage

        _, coverage = measure_coverage(checkpoint, preset, measured, true_labels, true_field, calibration,
                                       counts=config.counts, seed=config.draw_seed, start=config.start)
        report["uncertainty"] = {"calibration": str(config.calibration), "draw_seed": config.draw_seed,
                                 "calibrated_counts": calibration.meta.get("counts"), **coverage}
    with user_path(config.out):
        _write_tables(config, preset, report, true_labels, predicted_labels)
        if config.figures:
            from ..plots import plot_evaluation

            plot_evaluation(config.out, preset, report, true_labels, predicted_labels, true_field, predicted_field,
                            start=config.start, example=config.example)
    return Result(report, f"{summary(report)}\nfiles in {config.out}")


def _read_calibration(path: Path, checkpoint):
    """The Calibration of `path`, refused before any work for a model the draws cannot take (standardised)."""
    from ..nn.inputs import InputTransform
    from ..reconstruct.calibration import read_calibration

    if not InputTransform.of_checkpoint(checkpoint).is_scale_free:
        raise InputError("--calibration needs a scale-free model (its test-time draws mask points)")
    return read_calibration(path)


def _augmented(config: Config, checkpoint, preset: Family, intensity: np.ndarray,
               mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The training nuisances (data.augment.Augmentation, defaults) drawn on every test structure; the coverage
    they draw is combined with `mask`."""
    from ..data.augment import Augmentation
    from ..nn.inputs import InputTransform

    if not InputTransform.of_checkpoint(checkpoint).is_scale_free:
        raise InputError("augment masks points: it needs a scale-free model (train --input scale-free)")
    augmented, drawn = Augmentation()(intensity, preset.grid.L, preset.grid.bragg, config.noise_seed, config.start)
    return augmented, drawn if mask is None else drawn & mask[None]


def measured_mask(path: Path, checkpoint, preset: Family) -> np.ndarray:
    """(R, NL) bool: the coverage of the measured file `path` on a family model's grid (True = measured)."""
    from ..io.family_file import read_measured
    from ..nn.inputs import InputTransform, rods_on_grid

    if not isinstance(preset, StructureFamily) or not InputTransform.of_checkpoint(checkpoint).is_scale_free:
        raise InputError("mask_from needs a scale-free model of a structure family (FAMILY.toml)")
    with user_path(path, "read"):
        rods = read_measured(path, preset.source["reader"])
    _, mask, _ = rods_on_grid(rods, preset.grid, preset.multiple)
    return mask


def _measured(config: Config, preset: Family, intensity: np.ndarray) -> np.ndarray:
    """The intensities as measured: × scale, with counting noise and rod scales when counts > 0 (structure i of
    the file draws from the noise stream (noise_seed, start + i))."""
    if config.counts > 0:
        from ..baselines import NoiseModel, add_noise

        intensity = add_noise(intensity, preset.grid, NoiseModel(counts=config.counts, rod_scale=config.rod_scale,
                                                                 seed=config.noise_seed), start=config.start).intensity
    return intensity * config.scale


def summary(report: dict[str, Any]) -> str:
    """The headline of a report: field MAE, mean R² per atom type (also from the true field), outliers, targets."""
    groups = "  ".join(f"{group} {value:.3f}" for group, value in report["r2_per_group"].items())
    lines = [f"{report['n']} structures, field MAE {report['field_mae']:.4f} (z-score units)",
             f"mean R² per atom type: {groups}"]
    reference = report.get("true_field_extraction")
    if reference:
        lines.append("  from the true field:  "
                     + "  ".join(f"{g} {v:.4f}" for g, v in reference["r2_per_group"].items()))
    targets = report["targets"]
    lines.append(f"outliers replaced: {report['outliers_total']}; labels meeting the targets: {targets['met']} of "
                 f"{targets['of']}")
    covered = report.get("uncertainty")
    if covered:
        lines.append("coverage of the calibrated intervals: " + "  ".join(
            f"{g} {v['coverage']:.3f}" for g, v in covered["labels"].items()) + f"  U {covered['points_overall']:.3f}")
    return "\n".join(lines)


def _write_tables(config: Config, preset: Family, report: dict, true_labels: dict,
                  predicted_labels: dict) -> None:
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    _files.write_json(out / "metrics.json", report)
    reference = report.get("true_field_extraction", {}).get("r2_per_label", {})
    rows = [{"label": spec.name, "group": spec.group, "identifiable": spec.identifiable,
             "r2": report["r2_per_label"][spec.name], "r2_from_true_field": reference.get(spec.name, np.nan),
             "rmse": report["rmse_per_label"][spec.name], "outliers": report["outliers_per_label"][spec.name],
             "target": TARGETS.get(spec.group, "") if spec.identifiable else ""} for spec in preset.label_specs()]
    _files.write_csv(out / "r2.csv", rows)
    names = [spec.name for spec in preset.label_specs()]
    _files.write_csv(out / "labels.csv", [{"index": config.start + i, "label": name, "true": true_labels[name][i],
                                           "predicted": predicted_labels[name][i]}
                                          for i in range(config.n) for name in names])
    _files.write_csv(out / "field_mae_per_rod.csv", [{"rod": rod, "mae": value}
                                                     for rod, value in report["field_mae_per_rod"].items()])
    if "uncertainty" in report:
        _files.write_csv(out / "coverage.csv", [{"kind": kind, "group": g, **values}
                                                for kind in ("labels", "per_label", "points")
                                                for g, values in report["uncertainty"][kind].items()])
