"""Atoms as structure files give them: species, position, Debye–Waller U_iso, occupancy, and their cell.

The readers of `mamba_ctr.io.structure_formats` return these types, and `physics.film_from_atoms` builds the
layered structure model from them; they live in physics so that physics never imports io.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError

UNITS = ("fractional", "angstrom")
_B_PER_U = 8 * math.pi**2
_SPECIES = re.compile(r"^([A-Za-z]{1,2})(\d*[+-]|[+-]\d*)?$")


@dataclass(frozen=True)
class Atom:
    """One atom: species (element or ion, e.g. "Sr", "Mn3+"), position, U_iso (Å²), occupancy.

    `ties` holds the 12 parameter-tie fields of a ROD `.fit` line verbatim (empty elsewhere). `b_given` is a
    Debye–Waller B (Å²) exactly as a file gave it (None: B = 8π² U_iso), so that writing B back is exact.
    """

    species: str
    x: float
    y: float
    z: float
    u_iso: float = 0.0
    occupancy: float = 1.0
    ties: tuple[str, ...] = ()
    b_given: float | None = None

    @property
    def element(self) -> str:
        return species_element(self.species)

    @property
    def b_iso(self) -> float:
        """Debye–Waller B, Å²."""
        return _B_PER_U * self.u_iso if self.b_given is None else self.b_given


@dataclass(frozen=True)
class AtomStructure:
    """Atoms with their cell.

    Attributes:
        atoms: the atoms in file order.
        cell: (a, b, c, α, β, γ), Å and degrees; None if the file gives none (XYZ).
        units: "fractional" (of the cell) or "angstrom" (Cartesian, orthogonal cell).
        title: the file's comment or title line.
    """

    atoms: tuple[Atom, ...]
    cell: tuple[float, float, float, float, float, float] | None
    units: str
    title: str = ""

    def __post_init__(self) -> None:
        if self.units not in UNITS:
            raise InputError(f"units must be one of {', '.join(UNITS)}, got {self.units!r}")
        if self.cell is not None:
            check_cell(self.cell, "cell")
        if self.units == "fractional" and self.cell is None:
            raise InputError("fractional positions need a cell (a, b, c, α, β, γ)")

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) positions in `units`."""
        return np.array([(a.x, a.y, a.z) for a in self.atoms], dtype=np.float64).reshape(-1, 3)

    def with_cell(self, cell: Sequence[float]) -> AtomStructure:
        """The same atoms with a cell (needed to convert an XYZ file to fractional positions)."""
        return replace(self, cell=tuple(float(v) for v in cell))  # type: ignore[arg-type]

    def to_units(self, units: str) -> AtomStructure:
        """Positions converted to "fractional" or "angstrom" (orthogonal cells only)."""
        if units == self.units:
            return self
        if units not in UNITS:
            raise InputError(f"units must be one of {', '.join(UNITS)}, got {units!r}")
        if self.cell is None:
            raise InputError("converting positions needs a cell: call with_cell((a, b, c, 90, 90, 90)) first")
        if any(abs(angle - 90.0) > 1e-9 for angle in self.cell[3:]):
            raise InputError(f"only orthogonal cells convert between fractional and Å, got angles {self.cell[3:]}")
        lengths = np.array(self.cell[:3])
        factor = lengths if units == "angstrom" else 1.0 / lengths
        new = self.positions * factor
        atoms = tuple(replace(a, x=float(p[0]), y=float(p[1]), z=float(p[2])) for a, p in zip(self.atoms, new,
                                                                                            strict=True))
        return replace(self, atoms=atoms, units=units)


def species_element(species: str) -> str:
    """The element symbol of a species ("mn3+" → "Mn"); InputError if it is not an element or ion symbol."""
    match = _SPECIES.match(species.strip())
    if match is None:
        raise InputError(f"expected an element or ion symbol such as Sr, Mn3+, O2-, got {species!r}")
    return match.group(1).capitalize()


def normalise_species(species: str) -> str:
    """"sr" → "Sr", "mn3+" → "Mn3+" (the element capitalised, the charge kept)."""
    element = species_element(species)
    return element + species.strip()[len(element):]


def check_cell(cell, where: str) -> None:
    """InputError unless `cell` is (a, b, c > 0 Å, 0 < α, β, γ < 180°)."""
    if len(cell) != 6 or not all(math.isfinite(v) and v > 0 for v in cell) or not all(v < 180 for v in cell[3:]):
        raise InputError(f"{where}: a cell is (a, b, c > 0 Å, 0 < α, β, γ < 180°), got {tuple(cell)}")
