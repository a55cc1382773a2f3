"""The kernel plan's tables (docs/kernel.md) and their checks, for the numba twin of the compiled Plan.

`PlanTables` lists the structure-independent arrays of the contract in the order both plans take them
(`_core.Plan(*tables)`, `_kernels_numba.Plan(*tables)`). `check_tables` checks them once per plan and
`check_call` the per-structure arrays and outputs of each call, exactly as the compiled plan does; both
return canonical C-contiguous float64 / int64 / complex128 arrays. Every problem raises a ValueError
naming the argument with the expected and the given value, e.g.
``weight must have shape (n, E) = (10, 78), got (10, 77)``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["MOMENT_GROUP", "PlanTables", "check_call", "check_moments", "check_tables", "l_segments"]

#: points per block of the kernels: segments never cross a block boundary
BLOCK = 32
#: structures per group of the per-point moments (`_core.MOMENT_GROUP`)
MOMENT_GROUP = 512


class PlanTables(NamedTuple):
    """Structure-independent kernel inputs of one (model, grid)."""

    entry_site: np.ndarray      # int64 (E,), non-decreasing, in [0, S)
    entry_pair: np.ndarray      # int64 (E,), in [0, P)
    pair_column: np.ndarray     # int64 (P,), in [0, C)
    pair_species: np.ndarray    # int64 (P,), in [0, NSP)
    pattern_phase: np.ndarray   # complex128 (NP, C)
    rod_pattern: np.ndarray     # int64 (R,), in [0, NP)
    qz: np.ndarray              # float64 (NL,), Å⁻¹
    uniform_step: float         # > 0: spacing of qz's evenly spaced runs (recurrence there); 0: none
    ff_re: np.ndarray           # float64 (NSP, R, NL)
    ff_im: np.ndarray           # float64 (NSP, R, NL) or (0,)
    substrate: np.ndarray       # complex128 (R, NL)
    n_sites: int                # S


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _array(name: str, value, kind: str) -> np.ndarray:
    """Convert to an array and check the dtype kind: 'real', 'int' or 'complex'."""
    arr = np.asarray(value)
    k = arr.dtype.kind
    if kind == "int":
        if k not in "iu":
            raise ValueError(f"{name} must have an integer dtype (int64), got {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=np.int64)
    if kind == "real":
        if k not in "iuf":
            raise ValueError(f"{name} must have a real floating dtype (float64), got {arr.dtype}")
        return np.ascontiguousarray(arr, dtype=np.float64)
    if k not in "iufc":
        raise ValueError(f"{name} must have a complex dtype (complex128), got {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.complex128)


def _check_shape(name: str, arr: np.ndarray, symbols: str, expected) -> None:
    expected = tuple(int(e) for e in expected)
    if arr.shape != expected:
        raise ValueError(
            f"{name} must have shape {symbols} = {_shape_str(expected)}, got {_shape_str(arr.shape)}")


def _check_ndim(name: str, arr: np.ndarray, symbols: str) -> None:
    ndim = len([part for part in symbols.strip("()").split(",") if part.strip()])
    if arr.ndim != ndim:
        raise ValueError(f"{name} must have shape {symbols} ({ndim}-D), got {_shape_str(arr.shape)}")


def _check_range(name: str, arr: np.ndarray, upper: int, symbol: str) -> None:
    if arr.size == 0:
        return
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= upper:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{name} values must lie in [0, {symbol}) = [0, {upper}), got {bad}")


def _check_finite(name: str, arr: np.ndarray) -> None:
    if arr.size and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got a non-finite value")


def _check_output(name: str, out, dtypes, expected) -> None:
    if out is None:
        return
    if not isinstance(out, np.ndarray):
        raise ValueError(f"{name} must be a numpy array or None, got {type(out).__name__}")
    if out.dtype not in dtypes:
        raise ValueError(
            f"{name} must have dtype {' or '.join(str(np.dtype(d)) for d in dtypes)}, got {out.dtype}")
    _check_shape(name, out, "(n, R, NL)", expected)
    if not out.flags.c_contiguous:
        raise ValueError(f"{name} must be C-contiguous, got a non-contiguous array")
    if not out.flags.writeable:
        raise ValueError(f"{name} must be writeable, got a read-only array")


def check_tables(tables: PlanTables) -> PlanTables:
    """The tables checked (shapes, dtypes, index ranges, finite qz) and canonicalised; ValueError otherwise."""
    t = tables
    entry_site = _array("entry_site", t.entry_site, "int")
    _check_ndim("entry_site", entry_site, "(E,)")
    E = entry_site.shape[0]
    entry_pair = _array("entry_pair", t.entry_pair, "int")
    _check_shape("entry_pair", entry_pair, "(E,)", (E,))
    pair_column = _array("pair_column", t.pair_column, "int")
    _check_ndim("pair_column", pair_column, "(P,)")
    P = pair_column.shape[0]
    pair_species = _array("pair_species", t.pair_species, "int")
    _check_shape("pair_species", pair_species, "(P,)", (P,))
    pattern_phase = _array("pattern_phase", t.pattern_phase, "complex")
    _check_ndim("pattern_phase", pattern_phase, "(NP, C)")
    NP, C = pattern_phase.shape
    rod_pattern = _array("rod_pattern", t.rod_pattern, "int")
    _check_ndim("rod_pattern", rod_pattern, "(R,)")
    R = rod_pattern.shape[0]
    qz = _array("qz", t.qz, "real")
    _check_ndim("qz", qz, "(NL,)")
    NL = qz.shape[0]
    ff_re = _array("ff_re", t.ff_re, "real")
    _check_ndim("ff_re", ff_re, "(NSP, R, NL)")
    NSP = ff_re.shape[0]
    _check_shape("ff_re", ff_re, "(NSP, R, NL)", (NSP, R, NL))
    ff_im = _array("ff_im", t.ff_im, "real")
    if ff_im.size == 0:
        ff_im = np.zeros((0,), np.float64)
    else:
        _check_shape("ff_im", ff_im, "(NSP, R, NL) or size 0", (NSP, R, NL))
    substrate = _array("substrate", t.substrate, "complex")
    _check_shape("substrate", substrate, "(R, NL)", (R, NL))
    S = _integer("n_sites", t.n_sites)

    _check_range("entry_site", entry_site, S, "S")
    _check_range("entry_pair", entry_pair, P, "P")
    _check_range("pair_column", pair_column, C, "C")
    _check_range("pair_species", pair_species, NSP, "NSP")
    _check_range("rod_pattern", rod_pattern, NP, "NP")
    if E > 1 and np.any(np.diff(entry_site) < 0):
        e = int(np.argmax(np.diff(entry_site) < 0)) + 1
        raise ValueError(f"entry_site must be non-decreasing, got entry_site[{e - 1}] = "
                         f"{int(entry_site[e - 1])} > entry_site[{e}] = {int(entry_site[e])}")
    _check_finite("qz", qz)
    try:
        step = float(t.uniform_step)
    except (TypeError, ValueError):
        raise ValueError(f"uniform_step must be a real number >= 0, got {t.uniform_step!r}") from None
    if not (math.isfinite(step) and step >= 0.0):
        raise ValueError(f"uniform_step must be a finite number >= 0, got {step!r}")
    return PlanTables(entry_site, entry_pair, pair_column, pair_species, pattern_phase, rod_pattern, qz, step,
                      ff_re, ff_im, substrate, S)


def l_segments(qz: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """The segments of the L axis both kernels use: (first point (NSEG,), points (NSEG,)), int64.

    qz (NL,) Å⁻¹ is cut into blocks of BLOCK points and each block at the starts of the evenly spaced runs
    of spacing `step` (Å⁻¹): point l > s belongs to the run that starts at s if
    |qz[l] − (qz[s] + (l − s)·step)| ≤ 1e-13·max|qz|; an irregular point is a run of its own, and with
    step 0 every point is. Inside a segment the kernels continue exp(i qz z) from its first point by the
    recurrence; segment starts get an exact sincos. Same cuts as the compiled plan (film_fields.cpp).
    """
    NL = qz.shape[0]
    starts = np.ones(NL, bool)
    tol = 1e-13 * float(np.abs(qz).max(initial=0.0))
    s = 0
    for l in range(1, NL if step > 0.0 else 1):
        if abs(qz[l] - (qz[s] + float(l - s) * step)) <= tol:
            starts[l] = False
        else:
            s = l
    starts[::BLOCK] = True
    first = np.flatnonzero(starts)
    return first.astype(np.int64), np.diff(np.append(first, NL)).astype(np.int64)


def check_moments(tables: PlanTables, n: int, film_field, intensity, bragg, moments) -> np.ndarray | None:
    """The (NL,) uint8 Bragg mask of a call that asks for `moments` (None if it does not); ValueError otherwise.

    moments: float64 (ceil(n / MOMENT_GROUP), 6, R, NL), writeable, C-contiguous (docs/kernel.md).
    """
    if moments is None:
        return None
    if film_field is None or intensity is None:
        raise ValueError("moments need both film_field and intensity, got only one of them")
    if bragg is None:
        raise ValueError("moments need bragg, the (NL,) Bragg mask, got None")
    R, NL = tables.substrate.shape
    mask = np.ascontiguousarray(np.asarray(bragg), dtype=np.uint8)
    _check_shape("bragg", mask, "(NL,)", (NL,))
    if not isinstance(moments, np.ndarray):
        raise ValueError("moments must be a numpy array or None")
    if moments.dtype != np.float64:
        raise ValueError(f"moments must have dtype float64, got {moments.dtype}")
    _check_shape("moments", moments, "(ceil(n / MOMENT_GROUP), 6, R, NL)", (-(-n // MOMENT_GROUP), 6, R, NL))
    if not (moments.flags.c_contiguous and moments.flags.writeable):
        raise ValueError("moments must be a writeable C-contiguous array")
    return mask


def _integer(name: str, value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def check_call(tables: PlanTables, z, weight, rough, film_field, intensity,
               threads) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """(z, weight, rough or None, threads) of one call on checked `tables`, canonicalised; ValueError otherwise.

    Outputs are checked and left as they are (they are written in place).
    """
    z = _array("z", z, "real")
    _check_ndim("z", z, "(n, S)")
    n = z.shape[0]
    _check_shape("z", z, "(n, S)", (n, tables.n_sites))
    weight = _array("weight", weight, "real")
    _check_shape("weight", weight, "(n, E)", (n, tables.entry_site.shape[0]))
    R, NL = tables.substrate.shape
    if rough is not None:
        rough = _array("rough", rough, "real")
        if rough.size == 0:
            rough = None
        else:
            _check_shape("rough", rough, "(n, NL) or size 0", (n, NL))
    threads = _integer("threads", threads)
    _check_finite("z", z)
    _check_output("film_field", film_field, (np.complex64, np.complex128), (n, R, NL))
    _check_output("intensity", intensity, (np.float32, np.float64), (n, R, NL))
    if film_field is not None and intensity is not None:
        if (film_field.dtype == np.complex64) != (intensity.dtype == np.float32):
            raise ValueError(
                "film_field and intensity must both be single (complex64, float32) or both "
                f"double (complex128, float64) precision, got {film_field.dtype} and {intensity.dtype}")
        if np.shares_memory(film_field, intensity):
            raise ValueError("film_field and intensity must not overlap in memory, got overlapping arrays")
    return z, weight, rough, threads
