"""FAMILY.toml: a structure family around a structure file, on the grid of a measured file (issue 16 item 1).

    [family]
    name = "lsmo"
    description = "LSMO on SrTiO3 around the authors' structure"
    structure = "LSMO_newdat2.XYZ"      # the nominal structure (.xyz needs cell; .sur, .bul, .fit, .cif)
    substrate = "SrTiO3.bul"            # optional: bulk cell of the semi-infinite substrate
    cell = [7.81, 3.905]                # the structure's in-plane cell, Å (XYZ files have none)
    ions = { Sr = "Sr2+", La = "La3+" } # species → ion whose form factor is used

    [grid]                              # the model grid: rods and L range from a measured file ...
    data = "rods.txt"
    format = "plain"                    # rod | genx | gsecars | tdl | ana | plain
    columns = "h,k,l,I,skip"            # plain files: the column map
    basis = ["1/2", 0, 0, "1/2"]        # (H, K) = M (h, k) into the substrate's cell
    points_per_L = 50                   # uniform model L step 1/points_per_L (Bragg peaks at integer L on it)
    rods = "producible"                 # leave out rods the cell cannot produce ("all": refuse them)
    # L = [0, 4.5]                     # optional: the L range (default the measured one); starting the grid at
    #                                   #   L = 1/points_per_L lets the density be reconstructed (unmeasured
    #                                   #   points are masked in the input, predicted in U)
    # ... or given: rods = [[0, 0], [1, 0]] (substrate cell) and L = [0.5, 4.5], without data

    [[param]]                           # what varies: the PARAMS entries of `mamba-ctr fit` (docs/fit.md);
    name = "c_12"                       # bounds are the uniform sampling ranges
    target = "c"
    layer = 12
    bounds = [3.7, 4.2]
    group = "c"                         # family-only keys: the label group (default: the target) and
    identifiable = true                 #   whether the label counts in R² targets (default true)

Paths are relative to the TOML file. `to_dict()` of the family keeps the files' texts and the resolved grid, so
`family_from_dict` rebuilds it exactly from a dataset or checkpoint without the files.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from .._files import read_toml
from ..errors import InputError
from ..physics.family import FAMILY_KIND, StructureFamily, refuse_unsampled
from ..physics.film_from_atoms import AtomFilm, build_film
from ..physics.grid import Grid
from ..physics.structure_params import FitParameters
from .ctr_formats import read_rods
from .measured import MeasuredRods, format_key
from .structure_formats import read_structure

__all__ = ["family_from_dict", "is_family_file", "params_table", "read_family", "read_measured", "write_family"]

_FAMILY_KEYS = {"name", "description", "structure", "substrate", "cell", "ions"}
_GRID_KEYS = {"data", "format", "columns", "skip_rows", "basis", "points_per_L", "rods", "L"}
_LABEL_KEYS = ("group", "identifiable")


def is_family_file(path: str | os.PathLike) -> bool:
    """True for a TOML file with a [family] table (a preset file has `base = ...` instead)."""
    return str(path).endswith(".toml") and "family" in read_toml(path)


def read_family(path: str | os.PathLike) -> StructureFamily:
    """The family of a FAMILY.toml (module docstring); InputError naming the key for anything wrong."""
    path = Path(path)
    spec = read_toml(path)
    where = path.name
    family, grid_spec = _table(spec, "family", where), _table(spec, "grid", where)
    _check_keys(family, _FAMILY_KEYS, f"{where} [family]")
    _check_keys(grid_spec, _GRID_KEYS, f"{where} [grid]")
    unknown = sorted(set(spec) - {"family", "grid", "param", "fit"})
    if unknown:
        raise InputError(f"{where}: unknown table {unknown[0]!r}; a family file has [family], [grid], [[param]]")
    for key in ("name", "structure"):
        if key not in family:
            raise InputError(f"{where}: [family] needs {key} = ...")
    base = path.parent
    source: dict[str, Any] = {
        "structure": _file_text(base / str(family["structure"]), where),
        "substrate": _file_text(base / str(family["substrate"]), where) if "substrate" in family else None,
        "cell": [float(v) for v in family["cell"]] if "cell" in family else None,
        "ions": {str(k): str(v) for k, v in dict(family.get("ions", {})).items()},
        "reader": _reader(grid_spec, where),
        "params": [dict(entry) for entry in spec.get("param", [])],
        "fit": dict(spec.get("fit", {})),
    }
    film, multiple = _film(source, where)
    grid = _grid(grid_spec, base, source["reader"], film, multiple, where)
    return _family(str(family["name"]), str(family.get("description", family["name"])), film, multiple, grid, source,
                   where)


def family_from_dict(values: dict) -> StructureFamily:
    """The family `StructureFamily.to_dict()` describes (as stored in datasets and checkpoints)."""
    if values.get("family") != FAMILY_KIND:
        raise ValueError(f"not a structure-file family description: {values!r:.200}")
    source = {key: values[key] for key in ("structure", "substrate", "cell", "ions", "reader", "params", "fit")}
    where = f"family {values['name']!r}"
    film, multiple = _film(source, where)
    grid_values = dict(values["grid"])
    grid = Grid(**{**grid_values, "h": np.asarray(grid_values["h"]), "k": np.asarray(grid_values["k"])})
    return _family(values["name"], values["description"], film, multiple, grid, source, where)


def read_measured(path: str | os.PathLike, reader: dict) -> MeasuredRods:
    """A measured file read with a family's reader settings (format, columns, skip_rows, basis)."""
    rods = read_rods(path, reader["format"], columns=reader.get("columns") or None,
                     skip_rows=int(reader.get("skip_rows", 0)))
    basis = reader.get("basis")
    if basis:
        rods = rods.transform_basis([basis[:2], basis[2:]])
    return rods


def write_family(family: StructureFamily, folder: str | os.PathLike) -> Path:
    """Write `family` as a self-contained FAMILY.toml with its structure and substrate files into `folder`
    (created): the grid as explicit rods and L range, so no measured file is needed. Returns the TOML's path.
    Reading it back gives the same family (tested)."""
    from .._files import write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    source, grid = family.source, family.grid
    names = {"structure": f"structure{source['structure']['suffix']}"}
    write_text(folder / names["structure"], source["structure"]["text"])
    if source["substrate"] is not None:
        names["substrate"] = f"substrate{source['substrate']['suffix']}"
        write_text(folder / names["substrate"], source["substrate"]["text"])
    head = {"name": family.name, "description": family.description, **names}
    if source["cell"]:
        head["cell"] = source["cell"]
    if source["ions"]:
        head["ions"] = source["ions"]
    ma, mb = family.multiple
    reader = {key: value for key, value in source["reader"].items() if value not in (None, "", 0)}
    grid_table = {"rods": [[_number(Fraction(int(h), ma)), _number(Fraction(int(k), mb))]
                           for h, k in zip(grid.h, grid.k, strict=True)],
                  "L": [float(grid.L[0]), float(grid.L[-1])], "points_per_L": round(1 / grid.uniform_L_step),
                  **reader}
    lines = ["# written by mamba-ctr (io.family_file.write_family)", "[family]", *_toml_lines(head), "",
             "[grid]", *_toml_lines(grid_table), ""]
    if source["fit"]:
        lines += ["[fit]", *_toml_lines(source["fit"]), ""]
    for entry in source["params"]:
        lines += ["[[param]]", *_toml_lines(entry), ""]
    path = folder / "family.toml"
    write_text(path, "\n".join(lines))
    return path


def _number(value: Fraction) -> int | float:
    return int(value) if value.denominator == 1 else float(value)


def _toml_lines(table: dict) -> list[str]:
    return [f"{key} = {_toml_value(value)}" for key, value in table.items()]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def params_table(source: dict) -> dict:
    """The PARAMS table of a family's source as `FitParameters` reads it: the `[[param]]` entries without the
    family-only label keys (group, identifiable), and the [fit] table if any."""
    entries = [{key: value for key, value in entry.items() if key not in _LABEL_KEYS} for entry in source["params"]]
    return {"param": entries, **({"fit": dict(source["fit"])} if source["fit"] else {})}


# ------------------------------------------------------------------ pieces
def _family(name: str, description: str, film: AtomFilm, multiple: tuple[int, int], grid: Grid, source: dict,
            where: str) -> StructureFamily:
    spec = params_table(source)
    entries, groups, identifiable = spec["param"], [], []
    for i, entry in enumerate(source["params"]):
        if "tie" not in entry:
            groups.append(str(entry.get("group", entry.get("target", "?"))))
            flag = entry.get("identifiable", True)
            if not isinstance(flag, bool):
                raise InputError(f"{where}: [[param]] {i + 1}: identifiable must be true or false, got {flag!r}")
            identifiable.append(flag)
    if not entries:
        raise InputError(f"{where}: a family needs [[param]] entries naming what varies (docs/families.md)")
    refuse_unsampled(entries, where)
    params = FitParameters(spec, film.nominal, source=where)
    return StructureFamily(name, description, film, params, grid, tuple(groups), tuple(identifiable), source, multiple)


def _film(source: dict, where: str) -> tuple[AtomFilm, tuple[int, int]]:
    """The film and how many reference cells its in-plane cell spans along a and b (the reference cell, in which
    measured rods are indexed, is the substrate's; without a substrate, the film's own)."""
    with tempfile.TemporaryDirectory() as folder:
        atoms = _structure_of(source["structure"], Path(folder), "film")
        substrate = None if source["substrate"] is None else _structure_of(source["substrate"], Path(folder), "sub")
    cell = tuple(source["cell"]) if source["cell"] else None
    if cell is not None and len(cell) != 2:
        raise InputError(f"{where}: cell must be [a, b] in Å, got {list(cell)}")
    film = build_film(atoms, substrate, cell=cell, ions=source["ions"] or None)
    if substrate is None or substrate.cell is None:
        return film, (1, 1)
    return film, (round(film.a / substrate.cell[0]), round(film.b / substrate.cell[1]))


def _structure_of(text: dict, folder: Path, stem: str):
    """Read a structure file from its stored text (the readers take paths; the suffix names the format)."""
    path = folder / f"{stem}{text['suffix']}"
    path.write_text(text["text"], encoding="utf-8")
    return read_structure(path)


def _file_text(path: Path, where: str) -> dict:
    try:
        return {"suffix": path.suffix.lower(), "text": path.read_text(encoding="utf-8"), "file": path.name}
    except OSError as error:
        raise InputError(f"{where}: cannot read {path}: {error.strerror or error}") from None


def _reader(grid: dict, where: str) -> dict:
    reader = {"format": str(grid.get("format", "plain")), "columns": str(grid.get("columns", "")),
              "skip_rows": int(grid.get("skip_rows", 0)), "basis": None}
    if "basis" in grid:
        basis = grid["basis"]
        if not isinstance(basis, list) or len(basis) != 4:
            raise InputError(f"{where} [grid]: basis must be four entries [m00, m01, m10, m11], got {basis!r}")
        try:
            reader["basis"] = [str(Fraction(str(v))) for v in basis]
        except (ValueError, ZeroDivisionError):
            raise InputError(f"{where} [grid]: basis entries must be numbers or fractions, got {basis!r}") from None
    return reader


def _grid(spec: dict, base: Path, reader: dict, film: AtomFilm, multiple: tuple[int, int], where: str) -> Grid:
    """Rods (film cell) and a uniform L grid i / points_per_L over the measured (or given) L range."""
    points_per_L = spec.get("points_per_L", 50)
    if isinstance(points_per_L, bool) or not isinstance(points_per_L, int) or points_per_L < 1:
        raise InputError(f"{where} [grid]: points_per_L must be an integer ≥ 1, got {points_per_L!r}")
    if "data" in spec:
        rods = read_measured(base / str(spec["data"]), reader)
        keys, lows, highs = [], [], []
        for rod in rods.rods():
            keys.append(rod.key)
            lows.append(float(rod.l.min()))
            highs.append(float(rod.l.max()))
        choice = spec.get("rods", "producible")
        if choice not in ("producible", "all"):
            raise InputError(f"{where} [grid]: with data, rods must be \"producible\" or \"all\", got {choice!r}")
        low, high = _range(spec, where) if "L" in spec else (None, None)
    else:
        if "rods" not in spec or "L" not in spec:
            raise InputError(f"{where} [grid]: give data = \"<measured file>\", or rods = [[H, K], ...] and "
                             "L = [low, high]")
        keys = [(Fraction(str(h)), Fraction(str(k))) for h, k in spec["rods"]]
        low, high = _range(spec, where)
        lows, highs, choice = [low] * len(keys), [high] * len(keys), "all"
    produced = [(key, lo, hi) for key, lo, hi in zip(keys, lows, highs, strict=True)
                if (key[0] * multiple[0]).denominator == 1 and (key[1] * multiple[1]).denominator == 1]
    missing = [format_key(key) for key in keys if key not in {p[0] for p in produced}]
    if missing and choice == "all":
        raise InputError(f"{where}: the film's {film.a:g} × {film.b:g} Å cell cannot produce rods "
                         f"{', '.join(missing)} (set [grid] rods = \"producible\" to leave them out)")
    if not produced:
        raise InputError(f"{where}: the film's cell produces none of the rods")
    low = min(p[1] for p in produced) if low is None else low
    high = max(p[2] for p in produced) if high is None else high
    if not (math.isfinite(low) and math.isfinite(high) and high > low):
        raise InputError(f"{where} [grid]: the L range must be low < high, got [{low}, {high}]")
    index = np.arange(math.floor(low * points_per_L + 1e-9), math.ceil(high * points_per_L - 1e-9) + 1)
    index = index[index != 0]  # L = 0 of the specular rod diverges (total reflection is not modelled)
    return Grid(h=np.array([int(p[0][0] * multiple[0]) for p in produced]),
                k=np.array([int(p[0][1] * multiple[1]) for p in produced]),
                L=index / points_per_L, bragg=index % points_per_L == 0, a=film.a, b=film.b, c_ref=film.c_ref)


def _range(spec: dict, where: str) -> tuple[float, float]:
    value = spec["L"]
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, (int, float)) for v in value):
        raise InputError(f"{where} [grid]: L must be [low, high], got {value!r}")
    return float(value[0]), float(value[1])


def _table(spec: dict, name: str, where: str) -> dict:
    table = spec.get(name)
    if not isinstance(table, dict):
        raise InputError(f"{where}: a family file needs a [{name}] table")
    return table


def _check_keys(table: dict, allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise InputError(f"{where}: unknown key {unknown[0]!r}; allowed are {', '.join(sorted(allowed))}")
