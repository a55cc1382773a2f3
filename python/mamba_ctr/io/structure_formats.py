"""Structure files people bring: the authors' XYZ, ROD `.bul`/`.sur`/`.fit`, and CIF (read, through gemmi).

All readers return an `AtomStructure`: a list of atoms (species, position, U_iso in Å², occupancy), the
cell (a, b, c in Å, α, β, γ in degrees, or None where the file has none) and the units of the positions.

Formats (one atom a line, whitespace separated):

* XYZ (the MAMBA authors' `LSMO_newdat2.XYZ`): line 1 the atom count, line 2 a title, then
  `species x y z U_iso occupancy` with x, y, z in Å and U_iso in Å² (B = 8π² U_iso). The file holds no
  cell: pass one to convert to fractional positions (`AtomStructure.with_cell`).
* ROD `.bul` / `.sur`: a comment line, `a b c alpha beta gamma`, then `El x y z [columns]` with fractional
  x, y, z. The columns after z are read as orGUI reads them (`CTRuc.fromSURfile`): none (B = 0, occupancy 1),
  `B`, `B occ`, or `B_in B_out occ` (orGUI's in-plane and out-of-plane B; only B_in = B_out, isotropic, is
  accepted). B is a Debye–Waller B in Å². Written as `El x y z B B occ` (orGUI's seven fields). Unverified:
  ROD itself may give Debye–Waller *parameter numbers* in these columns (its manual); such files read here as
  B values, so give B values.
* ROD `.fit`: a comment line, the cell line, then 16 fields an atom: `El x cx1 nx1 cx2 nx2 y cy1 ny1 cy2 ny2
  z nz ndw1 ndw2 nocc`. Certain: element and fractional x, y, z (fields 2, 7, 12). The other fields are
  parameter ties (coefficients and serial numbers of displacement, Debye–Waller and occupancy parameters;
  field meanings as we read the ROD manual, unverified here): they are kept verbatim in `Atom.ties` and written
  back unchanged. A `.fit` file carries no DW or occupancy values (those live in ROD's `.par`): U_iso = 0,
  occupancy 1.
* CIF (read only, through gemmi, `pip install "mamba-ctr[structure]"`): every site of the unit cell after
  applying the symmetry operations, fractional, with U_iso (from U_iso or B_iso; 0 if absent) and occupancy.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

from .._files import write_text
from ..errors import InputError
from ..physics.atoms import (  # noqa: F401  (re-exported: the readers' types)
    _B_PER_U,
    UNITS,
    Atom,
    AtomStructure,
    check_cell,
    normalise_species,
    species_element,
)


def read_structure(path: str | Path, *, cell: Sequence[float] | None = None) -> AtomStructure:
    """Read a structure file by its suffix: .xyz, .bul, .sur, .fit or .cif (`cell` only for XYZ)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".xyz":
        structure = read_xyz(path)
        return structure.with_cell(cell) if cell is not None else structure
    readers = {".bul": read_rod_cell, ".sur": read_rod_cell, ".fit": read_rod_fit, ".cif": read_cif}
    if suffix not in readers:
        raise InputError(f"structure file must end in .xyz, .bul, .sur, .fit or .cif, got {Path(path).name}")
    return readers[suffix](path)


def read_xyz(path: str | Path) -> AtomStructure:
    """The authors' XYZ: count, title, then `species x y z U_iso occupancy` (Å, Å²)."""
    lines = _read_lines(path)
    if len(lines) < 2:
        raise InputError(f"{path}: an XYZ file starts with an atom count and a title line, got {len(lines)} lines")
    try:
        count = int(lines[0].split()[0])
    except (ValueError, IndexError):
        raise InputError(f"{path}: line 1 must be the atom count, got {lines[0][:40]!r}") from None
    rows = [line for line in lines[2:] if line.strip()]
    if len(rows) != count:
        raise InputError(f"{path}: line 1 announces {count} atoms, the file has {len(rows)} atom lines")
    atoms = tuple(_atom(path, 3 + i, row.split(), (6,)) for i, row in enumerate(rows))
    return AtomStructure(atoms, None, "angstrom", lines[1].strip())


def write_xyz(path: str | Path, structure: AtomStructure) -> None:
    """Write `species x y z U_iso occupancy` in Å (positions converted from fractional if needed)."""
    structure = structure.to_units("angstrom")
    lines = [str(len(structure.atoms)), structure.title.replace("\n", " ")]
    lines += [" ".join([a.species, *map(repr, (a.x, a.y, a.z, a.u_iso, a.occupancy))]) for a in structure.atoms]
    write_text(path, "\n".join(lines) + "\n")


def read_rod_cell(path: str | Path) -> AtomStructure:
    """ROD/orGUI `.bul` or `.sur`: comment, `a b c α β γ`, then `El x y z [B [B_out] occ]` (fractional)."""
    lines = _read_lines(path)
    title, cell = _rod_header(path, lines)
    atoms = [_rod_atom(path, number, fields) for number, fields in _atom_lines(lines)]
    return AtomStructure(tuple(atoms), cell, "fractional", title)


def write_rod_cell(path: str | Path, structure: AtomStructure) -> None:
    """Write a `.bul`/`.sur` file: `El x y z B B occ` (orGUI's fields; B = 8π² U_iso in Å²)."""
    structure = _fractional(structure)
    lines = [_comment(structure.title), _cell_line(structure.cell)]
    lines += [" ".join([a.species, *map(repr, (a.x, a.y, a.z, a.b_iso, a.b_iso, a.occupancy))])
              for a in structure.atoms]
    write_text(path, "\n".join(lines) + "\n")


def read_rod_fit(path: str | Path) -> AtomStructure:
    """ROD `.fit`: comment, cell, then 16 fields an atom (x, y, z read; the ties kept verbatim)."""
    lines = _read_lines(path)
    title, cell = _rod_header(path, lines)
    atoms = []
    for number, fields in _atom_lines(lines):
        if len(fields) != 16:
            raise InputError(f"{path}, line {number}: a .fit atom line has 16 fields, got {len(fields)}")
        x, y, z = (_number(path, number, fields[i], name) for i, name in ((1, "x"), (6, "y"), (11, "z")))
        ties = tuple(fields[i] for i in range(1, 16) if i not in (1, 6, 11))
        for tie in ties:
            _number(path, number, tie, "parameter field")
        atoms.append(Atom(normalise_species(fields[0]), x, y, z, ties=ties))
    return AtomStructure(tuple(atoms), cell, "fractional", title)


def write_rod_fit(path: str | Path, structure: AtomStructure) -> None:
    """Write a ROD `.fit` file; atoms without ties get "no parameter" ties (coefficients 0, numbers 0)."""
    structure = _fractional(structure)
    lines = [_comment(structure.title), _cell_line(structure.cell)]
    for a in structure.atoms:
        ties = a.ties or ("0.0", "0", "0.0", "0", "0.0", "0", "0.0", "0", "0", "0", "0", "0")
        if len(ties) != 12:
            raise InputError(f"an atom's .fit ties must be 12 fields, got {len(ties)} for {a.species}")
        lines.append(" ".join([a.species, repr(a.x), *ties[0:4], repr(a.y), *ties[4:8], repr(a.z), *ties[8:]]))
    write_text(path, "\n".join(lines) + "\n")


def _atom_lines(lines: list[str]) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of the atom lines of a ROD file: after the comment and the cell, blank lines and
    comments skipped."""
    for number, line in enumerate(lines[2:], start=3):
        fields = _strip_comment(line).split()
        if fields:
            yield number, fields


def read_cif(path: str | Path) -> AtomStructure:
    """Every site of a CIF's unit cell (symmetry applied), fractional, through gemmi."""
    try:
        import gemmi
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError('reading CIF needs gemmi: pip install "mamba-ctr[structure]"') from None
    try:
        small = gemmi.read_small_structure(str(path))
    except (RuntimeError, ValueError, OSError, IndexError) as error:  # IndexError: gemmi on an empty file
        raise InputError(f"cannot read CIF {path}: {' '.join(str(error).split())}") from None
    cell = small.cell
    atoms = []
    for site in small.get_all_unit_cell_sites():
        species = site.element.name + (f"{abs(site.charge)}{'+' if site.charge > 0 else '-'}" if site.charge else "")
        f = site.fract
        atoms.append(Atom(species, f.x % 1.0, f.y % 1.0, f.z % 1.0, float(site.u_iso), float(site.occ)))
    if not atoms:
        raise InputError(f"CIF {path} holds no atom sites")
    return AtomStructure(tuple(atoms), (cell.a, cell.b, cell.c, cell.alpha, cell.beta, cell.gamma),
                         "fractional", small.name)


def _read_lines(path: str | Path) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot read structure file {path}: {error}") from None


def _strip_comment(line: str) -> str:
    return line.split("//")[0]


def _comment(title: str) -> str:
    return title.replace("\n", " ") if title.startswith("//") else "// " + title.replace("\n", " ")


def _rod_header(path, lines: list[str]) -> tuple[str, tuple[float, float, float, float, float, float]]:
    if len(lines) < 2:
        raise InputError(f"{path}: a ROD file starts with a comment line and 'a b c alpha beta gamma'")
    fields = lines[1].split()
    if len(fields) != 6:
        raise InputError(f"{path}, line 2: expected 'a b c alpha beta gamma', got {lines[1][:60]!r}")
    cell = tuple(_number(path, 2, f, "cell parameter") for f in fields)
    check_cell(cell, f"{path}, line 2")
    title = lines[0].strip()
    return (title[2:].strip() if title.startswith("//") else title), cell  # type: ignore[return-value]


def _rod_atom(path, number: int, fields: list[str]) -> Atom:
    values = [_number(path, number, f, "atom field") for f in fields[1:]]
    if len(values) not in (3, 4, 5, 6):
        raise InputError(f"{path}, line {number}: expected 'El x y z [B [B_out] occ]', got {len(fields)} fields")
    b_iso, occupancy = (values[3] if len(values) > 3 else 0.0), (values[-1] if len(values) in (5, 6) else 1.0)
    if len(values) == 6 and values[3] != values[4]:
        raise InputError(f"{path}, line {number}: only isotropic Debye–Waller factors are supported (B_in = B_out),"
                         f" got {values[3]} and {values[4]}")
    atom = _checked_atom(path, number, fields[0], values[:3], b_iso / _B_PER_U, occupancy)
    return replace(atom, b_given=b_iso)


def _atom(path, number: int, fields: list[str], lengths: tuple[int, ...]) -> Atom:
    if len(fields) not in lengths:
        raise InputError(f"{path}, line {number}: expected 'species x y z U_iso occupancy', got {len(fields)} "
                         "fields")
    values = [_number(path, number, f, "atom field") for f in fields[1:]]
    return _checked_atom(path, number, fields[0], values[:3], values[3], values[4])


def _checked_atom(path, number: int, species: str, xyz: list[float], u_iso: float, occupancy: float) -> Atom:
    if u_iso < 0 or not 0 <= occupancy <= 1:
        raise InputError(f"{path}, line {number}: need U_iso ≥ 0 and 0 ≤ occupancy ≤ 1, got {u_iso}, {occupancy}")
    try:
        name = normalise_species(species)
    except InputError as error:
        raise InputError(f"{path}, line {number}: {error}") from None
    return Atom(name, xyz[0], xyz[1], xyz[2], u_iso, occupancy)


def _number(path, number: int, text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{path}, line {number}: {what} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise InputError(f"{path}, line {number}: {what} must be finite, got {text!r}")
    return value


def _fractional(structure: AtomStructure) -> AtomStructure:
    return structure.to_units("fractional")


def _cell_line(cell) -> str:
    return " ".join(map(repr, cell))
