"""A structure family around a structure file: what varies (the `[[param]]` entries of a PARAMS table, their
bounds the sampling ranges), on which grid, with which labels (issue 16 item 1).

`StructureFamily` has the interface the dataset pipeline, the training stream and evaluation use for the paper
presets (`grid`, `model`, `sample(n, seed, start)`, `labels`, `label_specs`, `parameters`, `nominal`, `to_dict`),
so `generate`, `train --stream`, `evaluate` and `predict` take a family where they take a preset. It is built by
`mamba_ctr.io.family_file` from a FAMILY.toml (the structure, substrate and grid files are read there: physics
never reads files).

Sampling: structure i of a seed draws every free parameter uniformly inside its bounds from block
i // BLOCK's generator (SeedSequence(seed, spawn_key=(block,))), as the presets do, so it depends only on
(family, seed, i); tied parameters follow their free parameter.

Labels: the free parameters' values (fractional z, Å for c, fractions), in file order; each has a group (the
entry's `group`, default its target) and is identifiable unless the entry says `identifiable = false` (for
example the top layer's c when that layer's z are free: it only rescales them). A label is read back from a
structure exactly (`labels`): every free parameter has slots no other parameter moves (checked by the PARAMS
reader), so its value is its first slot's change divided by the slot's factor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._checks import check_count
from ..errors import InputError
from .film_from_atoms import AtomFilm
from .grid import Grid
from .model import StructureModel, Structures
from .presets import BLOCK, LabelSpec
from .structure_params import FitParameters

__all__ = ["FAMILY_KIND", "UNSAMPLED_TARGETS", "StructureFamily", "refuse_unsampled"]

FAMILY_KIND = "structure-file"
"""`to_dict()["family"]` of a StructureFamily (the presets say "perovskite-SrTiO3-LaAlO3")."""

UNSAMPLED_TARGETS = ("scale", "u_iso", "b_iso", "beta")
"""PARAMS targets a family refuses: a scale is a measurement nuisance (the scale-free input cancels it); a
Debye–Waller factor changes the model's scatterers (one model per batch); β multiplies I but not the film field U
the network predicts, so no field could tell it."""

_UNITS = {"c": "Å", "z": "", "occupancy": "", "fraction": "", "mix": ""}


def refuse_unsampled(entries, where: str) -> None:
    """InputError for a `[[param]]` entry whose target a family cannot vary (UNSAMPLED_TARGETS)."""
    for entry in entries:
        if entry.get("target") in UNSAMPLED_TARGETS:
            raise InputError(f"{where}: parameter {entry.get('name')!r} has target {entry['target']!r}, which a "
                             f"family cannot vary ({', '.join(UNSAMPLED_TARGETS)}): leave it to the fit "
                             "(mamba-ctr fit)")


@dataclass(frozen=True, eq=False)
class StructureFamily:
    """Films around one structure file.

    Attributes:
        name, description: identification.
        film: the layered film built from the structure file (`physics.film_from_atoms.build_film`).
        params: the resolved `[[param]]` table (`FitParameters` on `film.nominal`); bounds = sampling ranges.
        grid: the model grid (rods in the film's cell, a uniform L grid; `io.family_file` derives it from a
            measured file).
        groups, identifiable: per free parameter, its label group and whether it counts in R² targets.
        source: what `to_dict` stores besides the derived fields (the files' texts, the reader settings): enough
            to rebuild the family exactly from a dataset or checkpoint.
        multiple: how many reference cells (the substrate's, in which measured rods are indexed) the film's
            in-plane cell spans along a and b: rod (H, K) of a measured file is rod (H·ma, K·mb) of `grid`.
    """

    name: str
    description: str
    film: AtomFilm
    params: FitParameters
    grid: Grid
    groups: tuple[str, ...]
    identifiable: tuple[bool, ...]
    source: Mapping
    multiple: tuple[int, int] = (1, 1)

    def __post_init__(self) -> None:
        if len(self.groups) != self.params.size or len(self.identifiable) != self.params.size:
            raise ValueError(f"need a group and an identifiable flag per free parameter ({self.params.size})")
        refuse_unsampled([{"name": p.name, "target": p.target} for p in self.params.parameters],
                         f"family {self.name!r}")

    @property
    def model(self) -> StructureModel:
        return self.film.model

    # --------------------------------------------------------------- sampling
    def vectors(self, n: int, seed: int = 0, start: int = 0) -> np.ndarray:
        """(n, P) free-parameter vectors of structures start .. start + n − 1 of `seed`."""
        n, seed, start = check_count("n", n, minimum=0), check_count("seed", seed), check_count("start", start)
        P = self.params.size
        if n == 0:
            return np.zeros((0, P))
        first, last = start // BLOCK, (start + n - 1) // BLOCK
        unit = np.concatenate([np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=(b,))))
                               .random((BLOCK, P)) for b in range(first, last + 1)])
        offset = start - first * BLOCK
        return self.params.lower + (self.params.upper - self.params.lower) * unit[offset: offset + n]

    def sample(self, n: int, seed: int = 0, start: int = 0) -> Structures:
        """Structures start .. start + n − 1 of `seed` (each depends only on seed and its index)."""
        return self.structures(self.vectors(n, seed, start))

    def structures(self, X: np.ndarray) -> Structures:
        """Structures of (n, P) free-parameter vectors (inside the bounds)."""
        return self.params.structures(self.params.arrays(np.atleast_2d(X)))

    def nominal(self) -> Structures:
        """The structure file's own structure (n = 1)."""
        return self.film.nominal

    def nominal_vector(self) -> np.ndarray:
        """(P,) the file's values moved into the bounds (the start of a fit)."""
        return self.params.clip(self.params.x0)[0]

    # ----------------------------------------------------------------- labels
    def label_specs(self) -> list[LabelSpec]:
        """One label per free parameter, in file order; its range is the parameter's bounds."""
        free = [p for p in self.params.parameters if p.tie is None]
        return [LabelSpec(p.name, group, float(p.lower), float(p.upper), float(np.clip(p.start, p.lower, p.upper)),
                          identifiable, _UNITS.get(p.target, ""))
                for p, group, identifiable in zip(free, self.groups, self.identifiable, strict=True)]

    def vector_of(self, structures: Structures) -> np.ndarray:
        """(n, P) the free-parameter values of structures of this family's model (exact inverse of `structures`)."""
        if structures.model is not self.model:
            raise ValueError(f"these structures were not made by family {self.name!r} (different model)")
        arrays = {"c": structures.c.reshape(len(structures), -1), "z": structures.z.reshape(len(structures), -1),
                  "fraction": structures.fraction.reshape(len(structures), -1), "occupancy": structures.occupancy}
        base = self.params.base.values
        columns = []
        for p in self.params.parameters:
            if p.tie is not None:
                continue
            slot = p.slots[0]
            columns.append(p.start + (arrays[slot.array][:, slot.index] - base[slot.array][slot.index]) / slot.factor)
        return np.stack(columns, axis=1)

    def labels(self, structures: Structures) -> dict[str, np.ndarray]:
        """Label name → (n,) float64 (the free parameters)."""
        X = self.vector_of(structures)
        return {name: X[:, q].copy() for q, name in enumerate(self.params.names)}

    def parameters(self, structures: Structures) -> dict[str, np.ndarray]:
        """Per-layer arrays stored beside the labels in a dataset: c (n, J) Å and layer occupancy (n, J)."""
        return {"c": structures.c.copy(), "occupancy": structures.occupancy.copy()}

    # ------------------------------------------------------------ description
    def to_dict(self) -> dict:
        """JSON-able description: the source (files' texts and settings) and the derived grid and labels."""
        return {**self.source, "name": self.name, "description": self.description, "family": FAMILY_KIND,
                "grid": self.grid.to_dict(), "labels": [spec.name for spec in self.label_specs()]}
