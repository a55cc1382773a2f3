"""Simulate the rods of one structure (a preset's nominal one, or one from a TOML/JSON structure file) and write
them as rods.csv, rods.h5 and PNG plots."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from .._backend import BACKENDS
from .._files import atomic_path
from ..errors import InputError
from ..simulate import Rods
from ._common import Result, output_dir, preset_name, user_path

__all__ = ["Config", "run"]


@dataclass
class Config:
    out: Path = field(default=Path("mamba-ctr-rods"), metadata={"help": "output directory"})
    preset: str | None = field(default=None, metadata={
        "help": "preset whose nominal structure to simulate (paper-12L when no --structure is given)"})
    structure: Path | None = field(default=None, metadata={"help": "structure file (.toml or .json)"})
    backend: str = field(default="auto", metadata={"help": "kernel backend", "choices": ("auto", *BACKENDS)})
    dtype: str = field(default="float64", metadata={"help": "precision", "choices": ("float32", "float64")})
    plot: bool = field(default=True, metadata={"help": "write the PNG plots"})
    overwrite: bool = field(default=False, metadata={"help": "replace existing outputs"})

    def __post_init__(self) -> None:
        self.out = output_dir(self.out)
        if self.preset is not None and self.structure is not None:
            raise InputError("give a preset or a structure file, not both (the file names its preset)")
        if self.preset is not None:
            self.preset = preset_name(self.preset)
        for name, allowed in (("dtype", ("float32", "float64")), ("backend", ("auto", *BACKENDS))):
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")


def run(config: Config) -> Result:
    """Simulate and write; `Result.value`: {"csv": path, "hdf5": path[, "plots": folder]}."""
    from ..data.hdf5 import write_rods
    from ..io.structure_file import load_structure
    from ..physics import presets
    from ..simulate import simulate

    if config.structure is not None:
        preset, structures = load_structure(config.structure)
    else:
        preset = presets.get(config.preset or "paper-12L")
        structures = preset.nominal()
    out = config.out
    targets = {"csv": out / "rods.csv", "hdf5": out / "rods.h5"}
    existing = [str(p) for p in targets.values() if p.exists()]
    if existing and not config.overwrite:
        raise InputError(f"output exists: {', '.join(existing)} (pass --overwrite to replace)")
    rods = simulate(structures, preset.grid, backend=config.backend, dtype=config.dtype)
    with user_path(out):
        out.mkdir(parents=True, exist_ok=True)
        write_rods(targets["hdf5"], rods, params=preset.parameters(structures), labels=preset.labels(structures),
                   preset=preset.to_dict(), overwrite=True)
        _write_csv(targets["csv"], rods)
        if config.plot:
            from ..plots import plot_rods

            targets["plots"] = out
            plot_rods(rods, out, title=preset.name)
    return Result(targets, "\n".join(f"{kind:>5}: {path}" for kind, path in targets.items()))


def _write_csv(path: Path, rods: Rods) -> None:
    """One row per (rod, L) of structure 0: h, k, L, bragg, intensity, U and the substrate field S."""
    grid, film = rods.grid, rods.film_field
    assert film is not None  # simulate always returns the film field
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["h", "k", "L", "bragg", "intensity", "U_re", "U_im", "S_re", "S_im"])
        for r in range(grid.n_rods):
            for i in range(grid.n_L):
                U, S = film[0, r, i], rods.substrate_field[r, i]
                writer.writerow([grid.h[r], grid.k[r], f"{grid.L[i]:.6f}", int(grid.bragg[i]),
                                 f"{rods.intensity[0, r, i]:.10e}", f"{U.real:.10e}", f"{U.imag:.10e}",
                                 f"{S.real:.10e}", f"{S.imag:.10e}"])
