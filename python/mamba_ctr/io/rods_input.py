"""Reading measured or simulated rods for `mamba-ctr predict`: HDF5 (the dataset layout, or `mamba-ctr simulate`'s
rods.h5) or CSV, placed on a model's grid.

CSV: a header row with at least the columns h, k, L, intensity (any order, more columns ignored; `structure`
optional, an integer that separates several structures). Every (h, k, L) point of the model's grid must be present
once per structure (L compared to 1e-6); rows may come in any order; points that are not on the grid are an error.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..physics.grid import Grid

__all__ = ["read_intensities"]

L_TOLERANCE = 1e-6


def read_intensities(path: str | os.PathLike, grid: Grid) -> np.ndarray:
    """Intensities (n, R, NL) on `grid` from an HDF5 or CSV file; an InputError when they are on another grid."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"no input file {path}")
    if path.suffix.lower() in (".h5", ".hdf5"):
        return _read_hdf5(path, grid)
    if path.suffix.lower() == ".csv":
        return _read_csv(path, grid)
    raise InputError(f"input must be .h5/.hdf5 or .csv, got {path.name}")


def _read_hdf5(path: Path, grid: Grid) -> np.ndarray:
    from ..data.hdf5 import open_complete, read_grid

    try:
        with open_complete(path) as f:
            if "intensity" not in f or "grid" not in f:
                raise InputError(f"{path} has no /intensity and /grid (the mamba-ctr HDF5 layout)")
            stored = read_grid(f["grid"])
            if not stored.same_as(grid):
                raise InputError(f"{path} holds rods on another grid ({stored!r}) than the model's ({grid!r})")
            intensity = np.asarray(f["intensity"][()], dtype=np.float64)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError, AttributeError) as error:  # h5py on damage
        raise InputError(f"{path} is corrupt or not a mamba-ctr rods file ({type(error).__name__}: "
                         f"{' '.join(str(error).split())[:200]})") from None
    if intensity.ndim != 3 or intensity.shape[1:] != grid.shape:
        raise InputError(f"{path}: /intensity has shape {intensity.shape}, expected (n, {grid.n_rods}, {grid.n_L})")
    return intensity


def _read_csv(path: Path, grid: Grid) -> np.ndarray:
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = {"h", "k", "L", "intensity"} - set(reader.fieldnames or [])
            if missing:
                raise InputError(f"{path}: missing column(s) {sorted(missing)}; need h, k, L, intensity "
                                 f"(got {reader.fieldnames})")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as error:  # a binary or garbled file
        raise InputError(f"{path} is not a readable CSV text file ({error})") from None
    if not rows:
        raise InputError(f"{path} has no data rows")
    try:
        h, k = _integers(path, "h", rows), _integers(path, "k", rows)
        L = np.array([float(r["L"]) for r in rows])
        value = np.array([float(r["intensity"]) for r in rows])
        structure = _integers(path, "structure", rows, default="0")
    except InputError:
        raise
    except (ValueError, TypeError) as error:
        raise InputError(f"{path}: a value is not a number ({error})") from None
    if not np.all(np.isfinite(L)):
        raise InputError(f"{path}: L must be finite, got {float(L[~np.isfinite(L)][0])}")
    rod_of = {(int(hh), int(kk)): r for r, (hh, kk) in enumerate(zip(grid.h, grid.k, strict=True))}
    rod = np.array([rod_of.get((int(a), int(b)), -1) for a, b in zip(h, k, strict=True)])
    if np.any(rod < 0):
        bad = sorted({(int(a), int(b)) for a, b, r in zip(h, k, rod, strict=True) if r < 0})
        raise InputError(f"{path}: rods {bad[:5]} are not on the model's grid (its rods: "
                         f"{sorted(rod_of)})")
    point = np.searchsorted(grid.L, L)
    point = np.clip(point, 0, grid.n_L - 1)
    nearer = np.clip(point - 1, 0, grid.n_L - 1)
    point = np.where(np.abs(grid.L[nearer] - L) < np.abs(grid.L[point] - L), nearer, point)
    off = np.abs(grid.L[point] - L) > L_TOLERANCE
    if np.any(off):
        raise InputError(f"{path}: {int(off.sum())} L value(s) are not on the model's grid (first: "
                         f"{float(L[off][0])}); the model needs {_describe_L(grid)}")
    ids, index = np.unique(structure, return_inverse=True)
    out = np.full((ids.size, grid.n_rods, grid.n_L), np.nan)
    seen = np.zeros(out.shape, dtype=np.int64)
    np.add.at(seen, (index, rod, point), 1)
    if np.any(seen > 1):
        raise InputError(f"{path}: some (structure, h, k, L) points appear more than once")
    out[index, rod, point] = value
    if np.any(seen == 0):
        raise InputError(f"{path}: {int((seen == 0).sum())} grid point(s) are missing; the model needs all "
                         f"{grid.n_rods} × {grid.n_L} points of its grid for every structure")
    return out


def _integers(path: Path, column: str, rows: list[dict], default: str | None = None) -> np.ndarray:
    """A column of integers; a value such as 1.5 or 0.9999999 (a half-order rod, a rounding) is refused rather
    than truncated to another rod. Integers written as floats (1.0, 1e0) are accepted."""
    out = np.empty(len(rows), dtype=np.int64)
    for i, row in enumerate(rows):
        text = row.get(column) or default
        number = float(text)  # type: ignore[arg-type]  # None → TypeError → InputError above
        if not (np.isfinite(number) and number == round(number) and abs(number) < 2**53):
            raise InputError(f"{path}: {column} must be an integer, got {text!r} in data row {i + 1} "
                             f"(only integer rods are on a model's grid)")
        out[i] = int(number)
    return out


def _describe_L(grid: Grid) -> str:
    """The model's L points in words: range and step (or the smallest step and the gaps of a gapped grid)."""
    step = grid.uniform_L_step
    if step:
        return f"L = {grid.L[0]:g} + m × {step:g} (m = 0 … {grid.n_L - 1}, up to {grid.L[-1]:g})"
    steps = np.diff(grid.L)
    return (f"L in [{grid.L[0]:g}, {grid.L[-1]:g}] on its {grid.n_L} points (steps {steps.min():g} … "
            f"{steps.max():g}; grid.L lists them)")
