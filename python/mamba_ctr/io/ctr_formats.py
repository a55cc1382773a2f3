"""Readers and writers of the text formats measured CTR data live in; each returns a `MeasuredRods`.

Formats (the quantity is fixed by the format, except for `plain`, whose column map names it):

* `rod`: ROD `.dat`; line 1 a comment, then `h k l F σ [l_bragg]`; F = |F|. Layout: ROD manual, DSimonne/sixs
  `save_as_dat`.
* `genx`: GenX `sls_sxrd` (`h k l I eI`) or `gsecars_ctr` (`h k l I eI LB dL`) loader layout, `#` comments;
  I = |F|². GenX rounds h, k to integers when it groups rods; this reader does not.
* `gsecars` (alias `tdl`): a `#` header line names the columns, `# h k l f ferr ...` or tdl's `#idx H K L F F_err`
  (xraypy/tdl `write_HKL`); idx and unknown columns are ignored (and listed in `history`), `lb`/`dl` kept; F = |F|.
* `ana`: orGUI `toANAROD` export, `# H K L F_HKL errorF mode`; mode ignored; F = |F|.
* `plain`: any whitespace or CSV table with a column map that names every column (`h,k,l,I,skip`).

Nothing is guessed: the plain reader needs the map, which says whether the value is I or F and whether a σ column
exists. h and k are read from the text exactly (see `measured`). Every problem is an InputError naming the file, the
line and what was expected. Writers use shortest round-trip float text, so write → read gives identical floats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from .._files import write_text
from ..errors import InputError
from .measured import MeasuredRods

__all__ = ["FORMATS", "read_ana", "read_genx", "read_gsecars", "read_plain", "read_rod_dat", "read_rods",
           "write_genx", "write_rod_dat"]

FORMATS = ("rod", "genx", "gsecars", "tdl", "ana", "plain")
PLAIN_NAMES = ("h", "k", "l", "I", "F", "sigma", "l_bragg", "dl", "skip")
Row = tuple[int, list[str]]  # (line number, fields)
Layout = dict[str, int]  # field name → column index


def read_rods(path: str | os.PathLike, format: str, *, columns: str | Sequence[str] | None = None,
              delimiter: str | None = None, skip_rows: int = 0, hk_tolerance: float | None = None,
              max_denominator: int = 1000) -> MeasuredRods:
    """Measured rods from `path` in `format` (one of FORMATS; `tdl` is `gsecars`).

    `columns`, `delimiter` and `skip_rows` belong to `plain` (see `read_plain`); `hk_tolerance` and
    `max_denominator` choose how h, k are grouped into rods (see `MeasuredRods.from_points`).
    """
    grouping = {"hk_tolerance": hk_tolerance, "max_denominator": max_denominator}
    if format == "plain":
        if columns is None:
            raise InputError(f"{path}: format 'plain' needs a column map such as 'h,k,l,I,skip'; got none")
        return read_plain(path, columns, delimiter=delimiter, skip_rows=skip_rows, **grouping)
    readers = {"rod": read_rod_dat, "genx": read_genx, "gsecars": read_gsecars, "tdl": read_gsecars, "ana": read_ana}
    if format not in readers:
        raise InputError(f"unknown CTR format {format!r}; expected one of {', '.join(FORMATS)}")
    if columns is not None or delimiter is not None or skip_rows:
        raise InputError(f"columns, delimiter and skip_rows apply to format 'plain' only; got them with {format!r}")
    return readers[format](path, **grouping)


def read_rod_dat(path: str | os.PathLike, **grouping) -> MeasuredRods:
    """ROD `.dat`: line 1 a comment, then `h k l F σ [l_bragg]` (F = |F|)."""
    lines = _read_lines(path)
    if lines and _numeric(lines[0].split()):
        raise InputError(f"{path} line 1: expected a comment line (a ROD .dat file starts with one), got numbers")
    rows = _rows(path, skip_rows=1)
    layouts = {5: _layout("h k l value sigma"), 6: _layout("h k l value sigma l_bragg")}
    return _build(path, rows, layouts, "F", "ROD .dat 'h k l F sigma [l_bragg]'", **grouping)


def read_genx(path: str | os.PathLike, **grouping) -> MeasuredRods:
    """GenX `sls_sxrd` (`h k l I eI`) or `gsecars_ctr` layout (`h k l I eI LB dL`), `#` comments (I = |F|²)."""
    layouts = {5: _layout("h k l value sigma"), 7: _layout("h k l value sigma l_bragg dl")}
    return _build(path, _rows(path), layouts, "I", "GenX 'h k l I eI [LB dL]'", **grouping)


def read_gsecars(path: str | os.PathLike, **grouping) -> MeasuredRods:
    """GSECARS / tdl: a `#` header line names the columns (`h k l f ferr`, optional `idx`, `lb`, `dl`; others are
    ignored); F = |F|."""
    names = {"h": "h", "k": "k", "l": "l", "f": "value", "ferr": "sigma", "f_err": "sigma", "errf": "sigma",
             "lb": "l_bragg", "lbragg": "l_bragg", "l_bragg": "l_bragg", "dl": "dl"}
    header = _header(path)
    if header is None:
        raise InputError(f"{path}: expected a header line '# h k l f ferr ...' before the data, got none")
    fields = header[1]
    layout = {names[f.lower()]: i for i, f in enumerate(fields) if f.lower() in names}
    if not {"h", "k", "l", "value", "sigma"} <= set(layout):
        raise InputError(f"{path} line {header[0]}: expected a header naming h k l f ferr, got {' '.join(fields)!r}")
    rods = _build(path, _rows(path), {len(fields): layout}, "F", f"columns {' '.join(fields)}", **grouping)
    ignored = [f for f in fields if f.lower() not in names]
    return rods if not ignored else _note(rods, f"ignored columns: {', '.join(ignored)}")


def read_ana(path: str | os.PathLike, **grouping) -> MeasuredRods:
    """ANA/ROD export of orGUI (`toANAROD`): `H K L F_HKL errorF mode`, F = |F|; the mode column is ignored."""
    header = _header(path)
    if header is not None and "phi" in (f.lower() for f in header[1]):
        raise InputError(f"{path} line {header[0]}: expected measured data 'H K L F_HKL errorF mode', got calculated "
                         f"amplitudes with phases {' '.join(header[1])!r}")
    return _build(path, _rows(path), {6: _layout("h k l value sigma")}, "F", "ANA 'H K L F errF mode'", **grouping)


def read_plain(path: str | os.PathLike, columns: str | Sequence[str], *, delimiter: str | None = None,
               skip_rows: int = 0, **grouping) -> MeasuredRods:
    """Any table of numbers, one point a line, `#` comments.

    Args:
        columns: one name per column of the file, e.g. "h,k,l,I,skip" (the LSMO file) or ["h", "k", "l", "F",
            "sigma"]: h, k, l and exactly one of I (|F|²) or F (|F|) are required; sigma, l_bragg, dl optional;
            skip for a column to leave out. No sigma column means the file has no σ.
        delimiter: the column separator: None means "," for a `.csv` file and whitespace otherwise.
        skip_rows: lines to drop before reading (e.g. 1 for a header row).
    """
    names = [c.strip() for c in (columns.split(",") if isinstance(columns, str) else columns)]
    canonical = {n.lower(): n for n in PLAIN_NAMES}
    unknown = [n for n in names if n.lower() not in canonical]
    values = [n for n in names if n.lower() in ("i", "f")]
    used = [canonical.get(n.lower(), n) for n in names if n.lower() != "skip"]
    if unknown or len(values) != 1 or not {"h", "k", "l"} <= set(used) or len(used) != len(set(used)):
        raise InputError(f"{path}: expected a column map naming h, k, l and one of I or F once each (others: sigma, "
                         f"l_bragg, dl, skip), got {','.join(names)!r}")
    layout = {("value" if canonical[n.lower()] in ("I", "F") else canonical[n.lower()]): i
              for i, n in enumerate(names) if n.lower() != "skip"}
    quantity = canonical[values[0].lower()]
    if delimiter is None and Path(path).suffix.lower() == ".csv":
        delimiter = ","
    return _build(path, _rows(path, delimiter=delimiter, skip_rows=skip_rows), {len(names): layout}, quantity,
                  f"columns {','.join(names)}", **grouping)


def write_rod_dat(rods: MeasuredRods, path: str | os.PathLike) -> None:
    """ROD `.dat` (`h k l F σ [l_bragg]`); I is converted to F = √I first (see `as_quantity`). Needs σ."""
    data = rods.as_quantity("F")
    meta = _metadata(data, ("l_bragg",), "ROD .dat")
    _write(data, path, f"mamba-ctr: {data.source or 'measured rods'} (h k l F sigma{' l_bragg' if meta else ''})",
           meta)


def write_genx(rods: MeasuredRods, path: str | os.PathLike) -> None:
    """GenX `sls_sxrd` (`h k l I eI`, or with `LB dL` when both are given); F is converted to I = F² first."""
    data = rods.as_quantity("I")
    meta = _metadata(data, ("l_bragg", "dl"), "GenX")
    _write(data, path, f"# h k l I eI{' LB dL' if meta else ''}   (mamba-ctr: {data.source or 'measured rods'})", meta)


def _write(rods: MeasuredRods, path: str | os.PathLike, first_line: str, meta: list[np.ndarray]) -> None:
    if rods.sigma is None:
        raise InputError(f"cannot write {path}: the format needs σ for every point and {rods.source or 'the data'} "
                         "has none; set an error model first (dataclasses.replace(rods, sigma=...))")
    lines = [first_line]
    for i in range(rods.n_points):
        numbers = [rods.h[i], rods.k[i], rods.l[i], rods.value[i], rods.sigma[i], *(m[rods.rod[i]] for m in meta)]
        lines.append(" ".join(repr(float(x)) for x in numbers))
    write_text(path, "\n".join(lines) + "\n")


def _metadata(rods: MeasuredRods, names: tuple[str, ...], fmt: str) -> list[np.ndarray]:
    """The per-rod columns to write: all of `names` when every rod has them, none when none is given."""
    arrays = [getattr(rods, name) for name in names]
    if all(a is None for a in arrays):
        return []
    if any(a is None or not np.all(np.isfinite(a)) for a in arrays):
        raise InputError(f"{fmt} writes {' and '.join(names)} for every rod or for none; "
                         f"{rods.source or 'the data'} has them for some rods only")
    return arrays


def _note(rods: MeasuredRods, line: str) -> MeasuredRods:
    return replace(rods, history=(*rods.history, line))


def _layout(names: str) -> Layout:
    return {name: i for i, name in enumerate(names.split())}


def _read_lines(path: str | os.PathLike) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"expected a data file, got the directory {path}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: expected a text file of numbers, got undecodable bytes") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None


def _split(line: str, delimiter: str | None) -> list[str]:
    return line.split() if delimiter is None else [field.strip() for field in line.split(delimiter)]


def _rows(path: str | os.PathLike, *, delimiter: str | None = None, skip_rows: int = 0) -> list[Row]:
    """Non-empty, non-comment lines after `skip_rows`, split into fields, with their line numbers (from 1)."""
    if skip_rows < 0:
        raise InputError(f"skip_rows must be ≥ 0, got {skip_rows}")
    return [(number, _split(line.strip(), delimiter))
            for number, line in enumerate(_read_lines(path), start=1)
            if number > skip_rows and line.strip() and not line.lstrip().startswith("#")]


def _header(path: str | os.PathLike) -> tuple[int, list[str]] | None:
    """The last `#` line before the first data line, split into names (the `#` removed), with its line number."""
    found = None
    for number, line in enumerate(_read_lines(path), start=1):
        text = line.strip()
        if not text:
            continue
        if not text.startswith("#"):
            break
        names = text.lstrip("#").replace(",", " ").split()
        found = (number, names) if names else found
    return found


def _numeric(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return bool(fields)


def _build(path: str | os.PathLike, rows: list[Row], layouts: dict[int, Layout], quantity: str, what: str,
           hk_tolerance: float | None = None, max_denominator: int = 1000) -> MeasuredRods:
    """Check the table (column count, numbers, finite, σ ≥ 0) and group it into rods."""
    if not rows:
        raise InputError(f"{path}: no data lines; expected {what}")
    first, fields = rows[0]
    if len(fields) not in layouts:
        counts = " or ".join(str(n) for n in sorted(layouts))
        raise InputError(f"{path} line {first}: expected {counts} columns ({what}), got {len(fields)}")
    layout = layouts[len(fields)]
    table: dict[str, list] = {name: [] for name in layout}
    for number, fields in rows:
        if len(fields) != len(rows[0][1]):
            raise InputError(f"{path} line {number}: expected {len(rows[0][1])} columns like line {first}, "
                             f"got {len(fields)}")
        for name, column in layout.items():
            text = fields[column]
            try:
                number_value = float(text)
            except ValueError:
                raise InputError(f"{path} line {number}: column {column + 1} ({name}): expected a number, "
                                 f"got {text!r}") from None
            if not math.isfinite(number_value):
                raise InputError(f"{path} line {number}: column {column + 1} ({name}): expected a finite number, "
                                 f"got {text!r}")
            if name == "sigma" and number_value < 0:
                raise InputError(f"{path} line {number}: σ must be ≥ 0, got {text}")
            table[name].append(text if name in ("h", "k") else number_value)
    return MeasuredRods.from_points(
        table["h"], table["k"], table["l"], table["value"], quantity=quantity,  # type: ignore[arg-type]
        sigma=table.get("sigma"), l_bragg=table.get("l_bragg"), dl=table.get("dl"), source=Path(path).name,
        hk_tolerance=hk_tolerance, max_denominator=max_denominator, lines=[number for number, _ in rows])
