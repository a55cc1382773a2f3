"""Predict the film field U of measured or simulated rods (HDF5 or CSV with columns h, k, L, intensity on the
model's grid), its electron density and the extracted structure.

Files in out: prediction.h5 (/grid, /film_field (n, R, NL) complex128, /density/z (nz,) Å and
/density/columns (n, 4, nz) e/Å along the A (0,0), B+O_ap (½,½), O_x (½,0), O_y (0,½) columns, /labels/<name>),
/consistency/scale and /consistency/r1 (n,): the forward check |U + S|² vs I (mamba_ctr.reconstruct.consistency),
structure.csv and structure.json (every label of every structure; the json also its scale, R1 and flag),
density_slices.png (y = 0 and ½ of the first structure) and field.png (the predicted U on every rod of the first
structure). A prediction whose scale or R1 is outside the calibrated ranges gets one warning line on stderr.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import _files, families
from .._version import __version__
from ..errors import InputError
from ..physics.family import StructureFamily
from ..physics.presets import PerovskitePreset
from ..reconstruct.calibration import consistency_threshold
from ..reconstruct.consistency import SCALE_RANGE, Consistency
from ._common import Result, output_dir, user_path

__all__ = ["Config", "run"]


@dataclass
class Config:
    input: Path = field(metadata={"help": "rods: FILE.h5 or FILE.csv (see mamba_ctr.io.rods_input) on the "
                                          "model's grid; for a family model (FAMILY.toml) a measured CTR file",
                                  "positional": True})
    model: str = field(default="paper-12L", metadata={"help": "shipped model name, training directory or "
                                                              "checkpoint"})
    out: Path = field(default=Path("mamba-ctr-predict"), metadata={"help": "output directory"})
    figures: bool = field(default=True, metadata={"help": "write the PNG figures"})
    overwrite: bool = field(default=False, metadata={"help": "replace an earlier prediction in out"})
    format: str = field(default="", metadata={
        "help": "family models: the measured file's format (rod, genx, gsecars, tdl, ana, plain); default the "
                "family's"})
    columns: str = field(default="", metadata={"help": "family models: column map of a plain file, e.g. "
                                                       "h,k,l,I,skip; default the family's"})
    basis: tuple[str, ...] = field(default=(), metadata={
        "help": "family models: in-plane basis transform into the substrate's cell, m00,m01,m10,m11; default the "
                "family's"})
    calibration: Path | None = field(default=None, metadata={
        "help": "calibration.json of mamba-ctr calibrate for this (scale-free) model: calibrated 68 % intervals of "
                "every label from test-time draws (structure.csv low/high and structure.json, or prediction.json "
                "'intervals' for family models)"})
    counts: float = field(default=1000.0, metadata={
        "help": "with --calibration: the counts level at each rod's median point the draws re-count at (the "
                "data's, if known)"})
    error_model: str = field(default="", metadata={
        "help": "family models: σ of the measured points for χ² (poisson | relative:<f> | constant:<s>); default "
                "the file's σ, else relative:0.1"})

    def __post_init__(self) -> None:
        self.input, self.out = Path(self.input), output_dir(self.out)
        if not self.input.is_file():
            raise InputError(f"no input file {self.input}")
        if self.calibration is not None and not Path(self.calibration).is_file():
            raise InputError(f"no calibration file {self.calibration}")
        if not (0 <= self.counts < float("inf")):
            raise InputError(f"counts must be a finite number ≥ 0, got {self.counts!r}")
        if (self.out / "prediction.h5").exists() and not self.overwrite:
            raise InputError(f"{self.out / 'prediction.h5'} exists (pass --overwrite to replace it)")


def run(config: Config) -> Result:
    """Predict and write the files of the module docstring; `Result.value`: {"labels": ..., "files": [...]}."""
    from .. import models
    from ..io.rods_input import read_intensities
    from ..nn.predict import check_prediction, predict_field
    from ..reconstruct import column_density, extract_labels

    checkpoint = models.load(config.model)
    stored = checkpoint.metadata.get("preset")
    if not stored:
        raise InputError(f"model {config.model} records no preset: its labels cannot be extracted")
    preset = families.from_dict(stored)
    if isinstance(preset, StructureFamily):  # a measured CTR file in, a structure out
        from ._predict_measured import run_family

        return run_family(config, checkpoint, preset)
    with user_path(config.input, "read"):
        intensity = read_intensities(config.input, checkpoint.grid)
    field_ = predict_field(checkpoint, intensity)
    threshold, threshold_source = consistency_threshold(config.calibration, checkpoint)
    consistency = check_prediction(checkpoint, intensity, field_, r1_threshold=threshold)
    assert consistency is not None  # the checkpoint records a preset (checked above)
    labels = extract_labels(field_, preset.grid, preset)
    intervals = None if config.calibration is None else _intervals(config, checkpoint, intensity)
    columns = column_density(field_, preset.grid)
    out = config.out
    with user_path(out):
        out.mkdir(parents=True, exist_ok=True)
        files = [_write_hdf5(out / "prediction.h5", preset, field_, columns, labels, consistency, config)]
        files += _write_tables(out, labels, consistency, threshold_source, config, intervals)
        if config.figures:
            files += _write_figures(out, preset, field_)
    n = intensity.shape[0]
    lines = [f"{n} structure(s) predicted; files in {out}"]
    if n == 1:
        lines += [f"  {name:<12} {values[0]:.4f}" for name, values in labels.items()]
        lines.append(f"  consistency: intensity scale {consistency.scale[0]:.4g}, R1 {consistency.r1[0]:.4f}")
    warning = consistency.warning()
    if warning:  # one line on stderr; the outputs are written all the same
        print(f"mamba-ctr predict: warning: {warning}", file=sys.stderr)
    return Result({"labels": labels, "files": files}, "\n".join(lines))


def _write_hdf5(path: Path, preset: PerovskitePreset, field_: np.ndarray, columns, labels: dict,
                consistency: Consistency, config: Config) -> Path:
    import h5py

    from ..data.hdf5 import write_grid

    with _files.atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
        write_grid(f.create_group("grid"), preset.grid)
        f.create_dataset("film_field", data=field_)
        group = f.create_group("density")
        group.create_dataset("z", data=columns.z)
        group.create_dataset("columns", data=columns.rho)
        group.attrs["columns"] = json.dumps([str(c) for c in columns.columns])
        group.attrs["unit"] = str(columns.unit)
        labels_group = f.create_group("labels")
        for name, values in labels.items():
            labels_group.create_dataset(name, data=np.asarray(values, dtype=np.float64))
        check = f.create_group("consistency")
        check.create_dataset("scale", data=consistency.scale)
        check.create_dataset("r1", data=consistency.r1)
        check.attrs.update({"r1_threshold": consistency.r1_threshold, "scale_range": SCALE_RANGE})
        f.attrs.update({"created_by": f"mamba-ctr {__version__}", "model": str(config.model),
                        "input": str(config.input), "preset": json.dumps(preset.to_dict())})
    return path


def _intervals(config: Config, checkpoint, intensity: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """label → (low, high), each (n,): calibrated intervals from test-time draws (scale-free models)."""
    from ..nn.uncertainty import predict_with_uncertainty
    from ..reconstruct.calibration import read_calibration

    assert config.calibration is not None
    result = predict_with_uncertainty(checkpoint, intensity, None, read_calibration(config.calibration),
                                      counts=config.counts)
    return {name: result.label_interval(name) for name in result.labels}


def _write_tables(out: Path, labels: dict, consistency: Consistency, threshold_source: str, config: Config,
                  intervals: dict | None = None) -> list[Path]:
    n = consistency.r1.size
    rows = [{"structure": i, "label": name, "value": float(values[i]),
             **({"low": float(intervals[name][0][i]), "high": float(intervals[name][1][i])} if intervals else {})}
            for i in range(n) for name, values in labels.items()]
    csv_path, json_path = out / "structure.csv", out / "structure.json"
    _files.write_csv(csv_path, rows)
    flagged = consistency.flagged
    payload = {"model": str(config.model), "input": str(config.input), "mamba_ctr_version": __version__,
               "consistency": {"r1_threshold": consistency.r1_threshold,
                               "r1_threshold_source": threshold_source,
                               "scale_range": list(SCALE_RANGE)},
               "intervals": None if not intervals else {
                   "calibration": str(config.calibration), "counts": config.counts,
                   "structures": [{name: [_number(low[i]), _number(high[i])] for name, (low, high) in intervals.items()}
                                  for i in range(n)]},
               "structures": [{**{name: _number(v[i]) for name, v in labels.items()},
                               "consistency": {"scale": _number(consistency.scale[i]),
                                               "r1": _number(consistency.r1[i]), "flagged": bool(flagged[i])}}
                              for i in range(n)]}
    _files.write_json(json_path, payload)
    return [csv_path, json_path]


def _number(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _write_figures(out: Path, preset: PerovskitePreset, field_: np.ndarray) -> list[Path]:
    from ..plots import plot_density_slices, plot_field_rods
    from ..plots.density import crop_to_film
    from ..reconstruct import density_slices

    x, z, rho = density_slices(field_[:1], preset.grid)
    z, slices = crop_to_film(z, rho[0])
    plot_density_slices(x, z, slices, path=out / "density_slices.png", title="predicted film density",
                        name="prediction")
    plot_field_rods(preset.grid, field_[0], path=out / "field.png")
    return [out / "density_slices.png", out / "field.png"]
