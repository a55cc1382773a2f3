"""`mamba-ctr predict`: rods in, film field, density and extracted structure out.

    >>> from mamba_ctr.predict import PredictConfig, predict
    >>> result = predict(PredictConfig(model="paper-12L", input="rods.h5", out="prediction"))

Files in `out`: prediction.h5 (/grid, /film_field (n, R, NL) complex128, /density/z (nz,) Å and
/density/columns (n, 4, nz) e/Å along the A (0,0), B+O_ap (½,½), O_x (½,0), O_y (0,½) columns, /labels/<name>),
structure.csv and structure.json (every label of every structure), density_slices.png (y = 0 and ½ of the first
structure) and field.png (the predicted U on every rod of the first structure).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import presets as _presets
from ._tables import write_csv, write_json
from ._version import __version__
from .evaluate import load_model
from .io.rods_input import read_intensities
from .reconstruct import column_density, density_slices, extract_labels

__all__ = ["PredictConfig", "predict"]


@dataclass
class PredictConfig:
    """model: a shipped model name, a training directory or a checkpoint; input: rods as HDF5 or CSV (see
    mamba_ctr.io.rods_input) on the model's grid; out: output directory; figures: write PNGs;
    overwrite: replace an earlier prediction in `out`."""

    model: str
    input: Path
    out: Path
    figures: bool = True
    overwrite: bool = False

    def __post_init__(self) -> None:
        self.input, self.out = Path(self.input), Path(self.out)
        if not self.input.is_file():
            raise FileNotFoundError(f"no input file {self.input}")
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out must be a directory, got the file {self.out}")
        if (self.out / "prediction.h5").exists() and not self.overwrite:
            raise ValueError(f"{self.out / 'prediction.h5'} exists (pass --overwrite to replace it)")


def predict(config: PredictConfig) -> dict[str, Any]:
    """Predict and write the files of the module docstring; returns {"labels": ..., "files": [...]}."""
    from .nn.predict import predict_field

    checkpoint = load_model(config.model)
    stored = checkpoint.metadata.get("preset")
    if not stored:
        raise ValueError(f"model {config.model} records no preset: its labels cannot be extracted")
    preset = _presets.from_dict(stored)
    intensity = read_intensities(config.input, checkpoint.grid)
    field = predict_field(checkpoint, intensity)
    labels = extract_labels(field, preset.grid, preset)
    columns = column_density(field, preset.grid)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    files = [_write_hdf5(out / "prediction.h5", preset, field, columns, labels, config)]
    files += _write_tables(out, labels, intensity.shape[0], config)
    if config.figures:
        files += _write_figures(out, preset, field)
    return {"labels": labels, "files": files}


def _write_hdf5(path: Path, preset, field: np.ndarray, columns, labels: dict, config: PredictConfig) -> Path:
    import h5py

    from .data.hdf5 import write_grid

    temporary = path.with_name(f".{path.name}.tmp")
    with h5py.File(temporary, "w") as f:
        write_grid(f.create_group("grid"), preset.grid)
        f.create_dataset("film_field", data=field)
        group = f.create_group("density")
        group.create_dataset("z", data=columns.z)
        group.create_dataset("columns", data=columns.rho)
        group.attrs["columns"] = json.dumps([str(c) for c in columns.columns])
        group.attrs["unit"] = str(columns.unit)
        labels_group = f.create_group("labels")
        for name, values in labels.items():
            labels_group.create_dataset(name, data=np.asarray(values, dtype=np.float64))
        f.attrs.update({"created_by": f"mamba-ctr {__version__}", "model": str(config.model),
                        "input": str(config.input), "preset": json.dumps(preset.to_dict())})
    os.replace(temporary, path)
    return path


def _write_tables(out: Path, labels: dict, n: int, config: PredictConfig) -> list[Path]:
    rows = [{"structure": i, "label": name, "value": float(values[i])} for i in range(n)
            for name, values in labels.items()]
    csv_path, json_path = out / "structure.csv", out / "structure.json"
    write_csv(csv_path, rows)
    payload = {"model": str(config.model), "input": str(config.input), "mamba_ctr_version": __version__,
               "structures": [{name: (None if not np.isfinite(v[i]) else float(v[i])) for name, v in labels.items()}
                              for i in range(n)]}
    write_json(json_path, payload)
    return [csv_path, json_path]


def _write_figures(out: Path, preset, field: np.ndarray) -> list[Path]:
    import matplotlib.pyplot as plt

    from .plots import plot_density_slices
    from .plots.density import crop_to_film
    from .plots.rods import _pyplot

    x, z, rho = density_slices(field[:1], preset.grid)
    z, slices = crop_to_film(z, rho[0])
    plt.close(plot_density_slices(x, z, slices, path=out / "density_slices.png", title="predicted film density"))
    grid = preset.grid
    plt = _pyplot()
    fig, axes = plt.subplots(4, 4, figsize=(12, 8), sharex=True, layout="constrained")
    for r, ax in enumerate(axes.flat[: grid.n_rods]):
        ax.plot(grid.L, field[0, r].real, lw=0.9, label="Re U")
        ax.plot(grid.L, field[0, r].imag, lw=0.9, label="Im U")
        ax.set_title(f"({grid.h[r]} {grid.k[r]})", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("L (r.l.u.)")
    fig.supylabel("predicted U (electrons)")
    fig.savefig(out / "field.png", dpi=100)
    plt.close(fig)
    return [out / "density_slices.png", out / "field.png"]
