"""HDF5 layout version 1 (architecture.md) for rods held in memory.

    /grid/h (R,) int, /grid/k (R,) int, /grid/L (NL,) float64, /grid/bragg (NL,) bool
    /intensity (n, R, NL) float32|float64, /film_field (n, R, NL) complex64|complex128
    /params/<name> (n, ...) float64, /labels/<name> (n,) float64
    attrs: format_version, preset (JSON), seed, created_by, units, complete

The file is written under a temporary name and renamed when complete (`mamba_ctr._files.atomic_path`), so an
interrupted write never leaves a file that looks finished.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np

from .._files import atomic_path
from .._version import __version__
from ..errors import InputError
from ..physics.grid import Grid
from ..simulate import Rods

FORMAT_VERSION = 1
UNITS = {
    "L": "reciprocal lattice units of c_ref", "intensity": "electrons^2 (|S + U|^2, unscaled)",
    "film_field": "electrons", "c": "angstrom", "z": "fraction of the layer height", "d": "angstrom",
}


def write_rods(path: str | os.PathLike, rods: Rods, *, params: dict[str, np.ndarray] | None = None,
               labels: dict[str, np.ndarray] | None = None, preset: dict | None = None,
               seed: int | None = None, overwrite: bool = False) -> Path:
    """Write rods (and optional parameters/labels of the same n) to `path` atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (or --overwrite) to replace it")
    n = len(rods)
    for group, values in (("params", params or {}), ("labels", labels or {})):
        for name, value in values.items():
            if np.shape(value)[:1] != (n,):
                raise InputError(f"{group}/{name} must have n = {n} rows, got shape {np.shape(value)}")
    with atomic_path(path) as temporary, h5py.File(temporary, "w") as f:
        write_grid(f.create_group("grid"), rods.grid)
        chunks = (1, *rods.grid.shape) if n else None
        f.create_dataset("intensity", data=rods.intensity, chunks=chunks)
        if rods.film_field is not None:
            f.create_dataset("film_field", data=rods.film_field, chunks=chunks)
        for group, values in (("params", params or {}), ("labels", labels or {})):
            g = f.create_group(group)
            for name, value in values.items():
                g.create_dataset(name, data=np.asarray(value, dtype=np.float64))
        f.attrs.update(file_attrs(preset=preset, seed=seed))
        f.attrs["backend"] = rods.backend
        f.attrs["complete"] = True
    return path


def file_attrs(*, preset: dict | None, seed: int | None) -> dict:
    """The attrs every version-1 file carries (without the completion marker, which is written last)."""
    return {"format_version": FORMAT_VERSION, "preset": json.dumps(preset or {}),
            "seed": -1 if seed is None else int(seed), "created_by": f"mamba-ctr {__version__}",
            "units": json.dumps(UNITS)}


def write_grid(group: h5py.Group, grid: Grid) -> None:
    """/grid/h, k, L, bragg and the cell (a, b, c_ref) as attrs."""
    group.create_dataset("h", data=grid.h)
    group.create_dataset("k", data=grid.k)
    group.create_dataset("L", data=grid.L)
    group.create_dataset("bragg", data=grid.bragg)
    group.attrs.update({"a": grid.a, "b": grid.b, "c_ref": grid.c_ref})


def read_rods(path: str | os.PathLike) -> tuple[Grid, np.ndarray, np.ndarray | None, dict]:
    """(grid, intensity, film_field or None, attrs) of a complete version-1 file."""
    with open_complete(path) as f:
        grid = read_grid(f["grid"])
        intensity = f["intensity"][()]
        field = f["film_field"][()] if "film_field" in f else None
        return grid, intensity, field, dict(f.attrs)


def read_grid(group: h5py.Group) -> Grid:
    """The Grid stored by `write_grid`."""
    return Grid(h=group["h"][()], k=group["k"][()], L=group["L"][()], bragg=group["bragg"][()],
                a=float(group.attrs["a"]), b=float(group.attrs["b"]), c_ref=float(group.attrs["c_ref"]))


def _check_virtual_sources(path: Path, f: h5py.File) -> None:
    """A file with virtual datasets (generate --join vds) is complete only if every source file exists and its
    data directory is the one written with it (manifest token = attr data_token)."""
    directories = set()
    for name in ("intensity", "film_field"):
        if name not in f or not f[name].is_virtual:
            continue
        for source in f[name].virtual_sources():
            if source.file_name == ".":
                continue
            relative = Path(source.file_name)
            full = relative if relative.is_absolute() else path.parent / relative
            if not full.is_file():
                raise InputError(f"{path} is incomplete: its data file {relative} is missing "
                                 "(move FILE.h5 and FILE.h5.data/ together)")
            directories.add(full.parent)
    token = f.attrs.get("data_token")
    for directory in directories if token is not None else ():
        try:
            found = json.loads((directory / "manifest.json").read_text()).get("token")
        except (OSError, ValueError):
            found = None
        if found != token:
            raise InputError(f"{path} is incomplete: {directory.name}/ holds the data of another run")


def open_complete(path: str | os.PathLike) -> h5py.File:
    """Open a complete version-1 file for reading; ValueError for anything else (other version, no
    completion marker, not HDF5, truncated), FileNotFoundError if it does not exist."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    try:
        f = h5py.File(path, "r")
    except OSError as error:
        raise InputError(f"{path} is not a readable HDF5 file ({error})") from None
    try:
        version = f.attrs.get("format_version")
        if version != FORMAT_VERSION:
            raise InputError(f"{path}: expected mamba-ctr format version {FORMAT_VERSION}, got {version!r}")
        if not f.attrs.get("complete", False):
            raise InputError(f"{path} is incomplete (no completion marker)")
        for name in ("grid", "intensity"):
            if name not in f:
                raise InputError(f"{path} has no /{name}: not a mamba-ctr dataset")
        if f["intensity"].is_virtual:
            _check_virtual_sources(path, f)
    except OSError as error:
        f.close()
        raise InputError(f"{path} is corrupt ({error})") from None
    except BaseException:
        f.close()
        raise
    return f


def is_complete(path: str | os.PathLike) -> bool:
    """Whether `path` is a complete version-1 file (see `open_complete`)."""
    try:
        open_complete(path).close()
    except (ValueError, OSError):
        return False
    return True
