"""`mamba-ctr calibrate MODEL --data CAL.h5 --counts 1000`: calibrate the uncertainty of a scale-free model's
predictions (docs/uncertainty.md). Writes calibration.json and calibration.md to out.

The structures of CAL.h5 (simulated with a seed used neither in training nor for testing) are measured at
`counts` (Poisson counts at each rod's median point; 0: noise-free), predicted with test-time draws
(nn.uncertainty: `draws` re-measured copies of each input, a `mask_fraction` of the points masked, an L offset of
σ `l_offset`), and the spread of the draws is turned into 68 % intervals by normalised split conformal
prediction (reconstruct.calibration): per label group (c, B, O_ap, O_eq, p, …) and per rod of U (or all points
pooled) the quantile q_g of |y − ŷ| / (s + τ_g). `predict_with_uncertainty(..., calibration=...)` and
`mamba-ctr evaluate --calibration` use the file.

    >>> from mamba_ctr.workflows import calibrate
    >>> calibration = calibrate.run(calibrate.Config(model="runs/robust", data="cal.h5", out="cal")).value
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import _files
from .._checks import check_count
from .._version import __version__
from ..errors import InputError
from ..physics.grid import Grid
from ..reconstruct.calibration import Calibration

if TYPE_CHECKING:
    from ..nn.uncertainty import Extractor, UncertainPrediction
from ._common import Result, command_line, output_dir, user_path

__all__ = ["Config", "command", "coverage_report", "measure_coverage", "measured_intensity", "report", "run"]


@dataclass
class Config:
    model: str = field(metadata={"help": "scale-free model: training directory (its best checkpoint) or checkpoint",
                                 "positional": True})
    data: Path = field(metadata={"help": "calibration dataset FILE.h5 with /intensity, /film_field and /labels "
                                         "(mamba-ctr generate with a seed used neither in training nor for testing)"})
    out: Path = field(default=Path("mamba-ctr-calibrate"), metadata={"help": "output directory"})
    n: int = field(default=600, metadata={"help": "calibration structures: rows [start, start + n) of the file"})
    start: int = field(default=0, metadata={"help": "first structure of the file"})
    counts: float = field(default=1000.0, metadata={
        "help": "Poisson counts at each rod's median point of the calibration data, and the level the draws "
                "re-count at (0: noise-free)"})
    draws: int = field(default=16, metadata={"help": "test-time draws per structure"})
    mask_fraction: float = field(default=0.1, metadata={"help": "fraction of the measured points each draw masks"})
    l_offset: float = field(default=0.005, metadata={"help": "σ of each draw's L offset (L units)"})
    level: float = field(default=0.68, metadata={"help": "nominal coverage of the intervals"})
    per_label: bool = field(default=True, metadata={
        "help": "one calibration group per label (--no-per-label: one per atom type, LabelSpec.group); coverage is "
                "reported per atom type either way"})
    pooled: bool = field(default=False, metadata={"help": "one calibration group for all points of U instead of "
                                                          "one per rod"})
    seed: int = field(default=0, metadata={"help": "seed of the draws"})
    noise_seed: int = field(default=1, metadata={"help": "seed of the calibration data's counting noise (evaluate's "
                                                         "test noise uses 0)"})
    test: Path | None = field(default=None, metadata={
        "help": "a disjoint test dataset FILE.h5 (another seed): the coverage of the intervals is measured on it "
                "(coverage.json/csv/md and figures)"})
    n_test: int = field(default=500, metadata={"help": "test structures: rows [0, n_test) of --test"})
    test_noise_seed: int = field(default=0, metadata={"help": "seed of the test data's counting noise (the test "
                                                              "draws use seed + 1)"})
    mask_from: Path | None = field(default=None, metadata={
        "help": "a measured file (a family model's): its coverage on the model's grid masks the calibration and "
                "test rods, as evaluate --mask-from, so the intervals and the consistency threshold are those of "
                "rods with that file's gaps"})
    figures: bool = field(default=True, metadata={"help": "with --test: write the PNG figures (needs matplotlib)"})
    example: int = field(default=0, metadata={"help": "with --test: the test structure of the field figure"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier calibration in out"})

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), output_dir(self.out)
        check_count("n", self.n, 2)
        for name in ("start", "seed", "noise_seed", "test_noise_seed", "threads", "example"):
            check_count(name, getattr(self, name), 0)
        check_count("n_test", self.n_test, 1)
        if self.example >= self.n_test:
            raise InputError(f"example must be < n_test = {self.n_test}, got {self.example}")
        if self.test is not None:
            self.test = Path(self.test)
            if not self.test.is_file():
                raise InputError(f"no test dataset file {self.test}")
            if self.test.resolve() == self.data.resolve():
                raise InputError("the test set must be disjoint from the calibration set: give another file")
        check_count("draws", self.draws, 2)
        if self.mask_from is not None and not Path(self.mask_from).is_file():
            raise InputError(f"no measured file {self.mask_from}")
        if not (self.counts >= 0 and self.counts < float("inf")):
            raise InputError(f"counts must be a finite number ≥ 0 (0: noise-free), got {self.counts!r}")
        if not 0 < self.level < 1:
            raise InputError(f"level must lie in (0, 1), got {self.level!r}")
        if not self.data.is_file():
            raise InputError(f"no dataset file {self.data}")
        if (self.out / "calibration.json").exists() and not self.overwrite:
            raise InputError(f"{self.out / 'calibration.json'} exists (pass --overwrite to replace it)")


def measured_intensity(intensity: np.ndarray, grid: Grid, counts: float, seed: int, start: int) -> np.ndarray:
    """Noise-free intensities (n, R, NL) as measured with Poisson counts at each rod's median point (structure i
    draws from the noise stream (seed, start + i)); unchanged for counts = 0."""
    if counts <= 0:
        return intensity
    from ..baselines import NoiseModel, add_noise

    return add_noise(intensity, grid, NoiseModel(counts=counts, rod_scale=0.0, seed=seed), start=start).intensity


def command(config: Config) -> str:
    """The command line that makes this calibration (options at their defaults left out, but --data and
    --counts)."""
    return command_line("calibrate", config, "model", keep=("data", "counts"))


def run(config: Config) -> Result:
    """Calibrate (and measure the coverage on --test); `Result.value` is the Calibration (also in
    out/calibration.json)."""
    import torch

    from .. import models
    from ..nn.uncertainty import DrawSettings, calibrate, label_groups, predict_with_uncertainty, rod_names
    from .evaluate import _check_compatible, measured_mask, read_test_set

    if config.threads:
        torch.set_num_threads(config.threads)
    checkpoint = models.load(config.model)
    preset, intensity, true_field, true_labels = read_test_set(config.data, config.start, config.n)
    _check_compatible(checkpoint, preset, config.data)
    if config.test is not None:  # every input is checked before the long work starts
        test = read_test_set(config.test, 0, config.n_test)
        _check_compatible(checkpoint, test[0], config.test)
    mask = None if config.mask_from is None else measured_mask(config.mask_from, checkpoint, preset)
    settings = DrawSettings(draws=config.draws, counts=config.counts, mask_fraction=config.mask_fraction,
                            l_offset=config.l_offset)
    started = time.perf_counter()
    measured = measured_intensity(intensity, preset.grid, config.counts, config.noise_seed, config.start)
    prediction = predict_with_uncertainty(checkpoint, measured, mask, settings=settings, seed=config.seed,
                                          start=config.start, extract=_extractor(preset))
    seconds = time.perf_counter() - started
    consistency = consistency_percentiles(checkpoint, measured, mask)
    meta = {"method": "normalised split conformal over test-time draws (mamba_ctr.nn.uncertainty)",
            "model": str(config.model), "data": str(config.data), "preset": preset.name,
            "rows": [config.start, config.start + config.n], "n_calibration": config.n, "counts": config.counts,
            "noise_seed": config.noise_seed, "command": command(config), "mamba_ctr_version": __version__,
            "seconds_per_structure": seconds / config.n, "consistency": consistency,
            "mask_from": None if config.mask_from is None else str(config.mask_from),
            "measured_points": None if mask is None else int(mask.sum())}
    atoms = label_groups(preset)
    groups = {name: name for name in atoms} if config.per_label else atoms
    calibration = calibrate(prediction, true_labels, true_field, groups, rod_names(preset.grid),
                            level=config.level, pooled=config.pooled, meta={**meta, "atom_groups": atoms})
    with user_path(config.out):
        config.out.mkdir(parents=True, exist_ok=True)
        calibration.write(config.out / "calibration.json")
        _files.write_text(config.out / "calibration.md", report(calibration))
    text = report(calibration)
    if config.test is not None:
        coverage = _test_coverage(config, checkpoint, test, calibration, mask)
        text += "\n\n" + coverage_report(coverage)
    return Result(calibration, f"{text}\nfiles in {config.out}")


def consistency_percentiles(checkpoint, intensity: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """R1 of |U + S|² against the calibration intensities (n, R, NL) (one prediction each, on the points of
    `mask` (R, NL) if given, checked as `predict` checks the model): its median, 90th and 99th percentiles; the
    99th is the model's forward-consistency threshold (`Calibration.r1_threshold`, used by `predict --calibration`)."""
    from ..nn.predict import check_prediction, predict_field

    masks = None if mask is None else np.broadcast_to(mask, intensity.shape)
    check = check_prediction(checkpoint, intensity, predict_field(checkpoint, intensity, mask=masks), masks)
    assert check is not None  # a calibration set is read with its preset
    r1 = check.r1
    median, p90, p99 = (float(v) for v in np.percentile(r1[np.isfinite(r1)], [50, 90, 99]))
    return {"r1_median": median, "r1_p90": p90, "r1_p99": p99, "r1_threshold": p99}


def measure_coverage(checkpoint, preset: Any, intensity: np.ndarray, true_labels: dict, true_field: np.ndarray,
                     calibration: Calibration, *, counts: float, seed: int, start: int = 0,
                     mask: np.ndarray | None = None) -> tuple[UncertainPrediction, dict[str, Any]]:
    """Predict measured test intensities (n, R, NL) with the calibration's draws (re-counted at `counts`, the
    data's level) and measure the coverage of its intervals against the truth: (prediction, {"labels": per atom
    type, "per_label", "points": per rod, "points_overall"}, each group {coverage, mean_half_width, n}). mask:
    (R, NL) coverage of the measured points (None: all)."""
    from ..nn.uncertainty import coverage_of, predict_with_uncertainty, rod_names

    prediction = predict_with_uncertainty(checkpoint, intensity, mask, calibration=calibration, seed=seed,
                                          start=start, counts=counts, extract=_extractor(preset))
    measured: dict[str, Any] = coverage_of(prediction, true_labels, true_field, rod_names(preset.grid),
                                           calibration.meta.get("atom_groups"))
    n_points = sum(g["n"] for g in measured["points"].values())
    measured["points_overall"] = (sum(g["coverage"] * g["n"] for g in measured["points"].values()) / n_points
                                  if n_points else float("nan"))
    return prediction, measured


def _test_coverage(config: Config, checkpoint, test: tuple, calibration: Calibration,
                   mask: np.ndarray | None) -> dict[str, Any]:
    """Predict the test set with the calibration, measure the coverage per group, write coverage.* and figures."""
    preset, intensity, true_field, true_labels = test
    started = time.perf_counter()
    prediction, measured = measure_coverage(
        checkpoint, preset, measured_intensity(intensity, preset.grid, config.counts, config.test_noise_seed, 0),
        true_labels, true_field, calibration, counts=config.counts, seed=config.seed + 1, mask=mask)
    seconds = time.perf_counter() - started
    coverage = {"level": calibration.level, "test": str(config.test), "n_test": config.n_test,
                "counts": config.counts, "test_noise_seed": config.test_noise_seed, "draw_seed": config.seed + 1,
                "calibration": calibration.meta, **measured, "seconds_per_structure": seconds / config.n_test}
    rows = [{"kind": kind, "group": g, **values} for kind in ("labels", "per_label", "points") for g, values in
            measured[kind].items()]
    with user_path(config.out):
        _files.write_json(config.out / "coverage.json", coverage)
        _files.write_csv(config.out / "coverage.csv", rows)
        _files.write_text(config.out / "coverage.md", coverage_report(coverage))
        if config.figures:
            _figures(config, preset, prediction, true_labels, true_field, measured)
    return coverage


def _figures(config: Config, preset, prediction, true_labels, true_field, measured) -> None:
    from ..nn.uncertainty import rod_names
    from ..plots.uncertainty import plot_field_band, plot_label_intervals

    rods = rod_names(preset.grid)
    calibration = prediction.calibration
    names = [name for name in calibration.label_groups if name in prediction.labels]
    atoms = calibration.meta.get("atom_groups") or {}
    groups = {name: atoms.get(name, calibration.label_groups[name]) for name in names}
    widths = {name: prediction.label_half_width(name) for name in names}
    counts = f"{config.counts:g} counts" if config.counts else "noise-free"
    plot_label_intervals(true_labels, prediction.labels, widths, groups,
                         {g: v["coverage"] for g, v in measured["labels"].items()},
                         path=config.out / "label_intervals.png",
                         title=f"{calibration.level:.0%} intervals, {config.n_test} test structures, {counts}")
    i = config.example
    plot_field_band(preset.grid.L, true_field[i], prediction.film_field[i], prediction.field_half_width(rods)[i],
                    rods, path=config.out / "field_band.png",
                    title=f"test structure {i}: predicted U with its {calibration.level:.0%} interval ({counts})",
                    band_label=f"{calibration.level:.0%} interval")


def coverage_report(coverage: dict[str, Any]) -> str:
    """Markdown: coverage and mean half-width per label group and per rod of U."""
    lines = [f"## Coverage of the {coverage['level']:.0%} intervals on {coverage['n_test']} test structures "
             f"({coverage['test']}, {coverage['counts']:g} counts)", "",
             "| group | coverage | mean half-width | n |", "|---|---:|---:|---:|"]
    for kind in ("labels", "points"):
        prefix = "U " if kind == "points" else ""
        lines += [f"| {prefix}{g} | {v['coverage']:.3f} | {v['mean_half_width']:.4g} | {v['n']} |"
                  for g, v in coverage[kind].items()]
    lines.append(f"| U, all points | {coverage['points_overall']:.3f} | | |")
    per_label = coverage.get("per_label") or {}
    if per_label:
        values = {name: v["coverage"] for name, v in per_label.items()}
        low, high = min(values, key=values.__getitem__), max(values, key=values.__getitem__)
        lines += ["", f"Per label: coverage from {values[low]:.3f} ({low}) to {values[high]:.3f} ({high}); "
                      f"{sum(0.63 <= v <= 0.73 for v in values.values())} of {len(values)} labels in 0.63–0.73."]
    return "\n".join(lines)


def _extractor(preset: Any) -> Extractor:
    """The labels of film fields as `evaluate` extracts them (the density's peaks for a paper preset, the
    parameters fitted to U for a family)."""
    from ..reconstruct.family_fit import labels_of_fields

    return partial(labels_of_fields, preset=preset)


def report(calibration: Calibration) -> str:
    """Markdown: the command, q_g and τ_g per label group and per group of points."""
    meta = calibration.meta
    lines = [f"# Calibration of {meta.get('model')} ({meta.get('n_calibration')} structures, "
             f"{meta.get('counts')} counts, {meta.get('draws', {}).get('draws')} draws)", "",
             f"`{meta.get('command')}`", "", f"level {calibration.level}: interval ŷ ± q_g (s + τ_g)", "",
             "| group | q_g | τ_g | n |", "|---|---:|---:|---:|"]
    for kind, groups in (("", calibration.labels), ("U ", calibration.points)):
        lines += [f"| {kind}{g} | {c.q:.3f} | {c.tau:.4g} | {c.n} |" for g, c in groups.items()]
    consistency = meta.get("consistency")
    if consistency:
        lines += ["", f"Forward consistency on the calibration set (|U + S|² vs I, R1 on amplitudes): median "
                  f"{consistency['r1_median']:.4f}, 90th percentile {consistency['r1_p90']:.4f}, 99th "
                  f"{consistency['r1_p99']:.4f}: `predict --calibration` flags a prediction above "
                  f"{consistency['r1_threshold']:.4f}."]
    return "\n".join(lines)
