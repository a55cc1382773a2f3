"""Measured crystal truncation rods: one object for points read from any CTR file format.

`MeasuredRods` holds, per point, h and k as measured (float64, never rounded), L, one quantity (I = |F|² or
F = |F|) and σ when the file gives it; the points are grouped into rods keyed by exact fractions
(`fractions.Fraction`). By default a rod key is the exact decimal value written in the file (h = 1.5 → 3/2,
h = 0.9999999 → 9999999/10000000, never 1); with `hk_tolerance` the keys are the nearest fractions with a
denominator ≤ `max_denominator`, every point must lie within the tolerance of its key, and the largest deviation is
kept (`hk_deviation`) and printed by `summary()`. Units: L in reciprocal lattice units of the file's c; value and σ in
the file's arbitrary units. Readers and writers of the file formats are in `ctr_formats`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal, NamedTuple

import numpy as np

from ..errors import InputError

__all__ = [
    "HKValue",
    "MeasuredRods",
    "MergeReport",
    "Rod",
    "format_key",
    "merge_p4mm",
    "p4mm_equivalents",
    "parse_basis",
    "supercell_indices",
]

Quantity = Literal["I", "F"]
HKValue = Fraction | int | str | float
RodKey = tuple[Fraction, Fraction]


def _fraction(value: HKValue) -> Fraction:
    """An exact fraction: ints and Fractions as they are, strings as written ("1/2", "1.5", "-0.0e+00"), floats
    through their shortest decimal form (0.1 → 1/10, as typed)."""
    try:
        if isinstance(value, (float, np.floating)):
            if not math.isfinite(value):
                raise ValueError
            return Fraction(repr(float(value)))
        return Fraction(value)  # type: ignore[arg-type]
    except (ValueError, TypeError, ZeroDivisionError):
        raise InputError(f"expected an exact number (int, fraction such as '1/2', or decimal), got {value!r}") from None


def format_key(key: tuple[HKValue, HKValue]) -> str:
    """'(1/2, 5/2)' for a rod key."""
    return f"({_fraction(key[0])}, {_fraction(key[1])})"


class Rod(NamedTuple):
    """One rod of a `MeasuredRods`, its points sorted by L (arrays of shape (m,))."""

    key: RodKey
    h: np.ndarray
    k: np.ndarray
    l: np.ndarray
    value: np.ndarray
    sigma: np.ndarray | None
    l_bragg: float | None
    dl: float | None
    points: np.ndarray  # positions of these points in the MeasuredRods arrays


@dataclass(frozen=True, eq=False)
class MeasuredRods:
    """Measured points grouped into rods.

    Attributes:
        h, k: (n,) float64 in-plane indices as measured (as read from the file, or as transformed exactly).
        l: (n,) float64 L of each point.
        value: (n,) float64 measured quantity (`quantity`).
        quantity: "I" (|F|², intensity) or "F" (|F|, structure-factor amplitude).
        sigma: (n,) float64 standard deviation of `value` (≥ 0), or None when the file has none.
        rod: (n,) int64 index of each point's rod in `rod_keys`.
        rod_keys: the rods' exact (h, k) keys, in order of first appearance.
        l_bragg, dl: (n_rods,) float64 L of a Bragg peak and Bragg spacing per rod (NaN where not given), or None.
        source: the file the points came from.
        hk_tolerance: None (rod keys are exact) or the tolerance used to group h, k into rods.
        hk_deviation: largest |h − key|, |k − key| over the points (0 when keys are exact).
        history: what was done to the data since reading (basis transforms, merging), one line each.
    """

    h: np.ndarray
    k: np.ndarray
    l: np.ndarray
    value: np.ndarray
    quantity: Quantity
    sigma: np.ndarray | None
    rod: np.ndarray
    rod_keys: tuple[RodKey, ...]
    l_bragg: np.ndarray | None = None
    dl: np.ndarray | None = None
    source: str = ""
    hk_tolerance: float | None = None
    hk_deviation: float = 0.0
    history: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        n = self.l.shape[0] if self.l.ndim == 1 else -1
        if self.quantity not in ("I", "F"):
            raise InputError(f"{self.source}: quantity must be 'I' (|F|²) or 'F' (|F|), got {self.quantity!r}")
        arrays = {"h": self.h, "k": self.k, "l": self.l, "value": self.value, "rod": self.rod}
        if self.sigma is not None:
            arrays["sigma"] = self.sigma
        for name, array in arrays.items():
            if array.shape != (n,):
                raise InputError(f"{self.source}: {name} must have shape ({n},) like l, got {array.shape}")
            if name != "rod" and not np.all(np.isfinite(array)):
                raise InputError(f"{self.source}: {name} holds NaN or inf")
        if n == 0:
            raise InputError(f"{self.source}: no measured points")
        if self.sigma is not None and np.any(self.sigma < 0):
            raise InputError(f"{self.source}: σ must be ≥ 0, got {float(self.sigma.min())}")
        if self.rod.min() < 0 or self.rod.max() >= len(self.rod_keys):
            raise InputError(f"{self.source}: rod indices outside 0..{len(self.rod_keys) - 1}")
        for name in ("l_bragg", "dl"):
            meta = getattr(self, name)
            if meta is not None and meta.shape != (len(self.rod_keys),):
                raise InputError(f"{self.source}: {name} must have one value per rod, got shape {meta.shape}")
        pairs = duplicate_points(self.rod, self.l)
        if pairs:
            i, j = pairs[0]
            raise InputError(f"{self.source}: duplicate point {format_key(self.rod_keys[self.rod[i]])} "
                             f"L = {float(self.l[i])!r} (points {i} and {j}); expected each (h, k, L) once")

    @classmethod
    def from_points(cls, h: Sequence[HKValue], k: Sequence[HKValue], l: Sequence[float] | np.ndarray,
                    value: Sequence[float] | np.ndarray, *, quantity: Quantity,
                    sigma: Sequence[float] | np.ndarray | None = None,
                    l_bragg: Sequence[float] | np.ndarray | None = None,
                    dl: Sequence[float] | np.ndarray | None = None, source: str = "",
                    hk_tolerance: float | None = None, max_denominator: int = 1000,
                    lines: Sequence[int] | None = None) -> MeasuredRods:
        """Group per-point values into rods.

        Args:
            h, k: per point, exact values as strings from the file ("1.5"), Fractions, ints or floats.
            l, value, sigma: per point; sigma None when not measured.
            l_bragg, dl: per point (files repeat the rod's value on every line); must agree within a rod.
            hk_tolerance: None groups by exact value; a number groups to the nearest fraction with denominator
                ≤ `max_denominator` and refuses points farther than that from it.
            lines: file line numbers of the points, for error messages.
        """
        where = (lambda i: f"{source} line {lines[i]}") if lines is not None else (lambda i: f"{source} point {i}")
        hf = [_fraction(x) for x in h]
        kf = [_fraction(x) for x in k]
        rod, keys, deviation = _group(hf, kf, hk_tolerance, max_denominator, where)
        l_arr = np.asarray(l, dtype=np.float64)
        rod_l_bragg = _per_rod(l_bragg, rod, len(keys), "l_bragg", keys, where)
        rod_dl = _per_rod(dl, rod, len(keys), "dL", keys, where)
        pairs = duplicate_points(rod, l_arr)
        if pairs:
            i, j = pairs[0]
            raise InputError(f"{where(j)}: duplicate point {format_key(keys[rod[j]])} L = {float(l_arr[j])!r}, already "
                             f"on {where(i).removeprefix(source).strip()}; expected each (h, k, L) once")
        return cls(h=np.array([float(x) for x in hf]), k=np.array([float(x) for x in kf]), l=l_arr,
                   value=np.asarray(value, dtype=np.float64), quantity=quantity,
                   sigma=None if sigma is None else np.asarray(sigma, dtype=np.float64), rod=rod,
                   rod_keys=keys, l_bragg=rod_l_bragg, dl=rod_dl, source=source, hk_tolerance=hk_tolerance,
                   hk_deviation=deviation)

    @property
    def n_points(self) -> int:
        """Number of measured points."""
        return int(self.l.shape[0])

    def rods(self) -> Iterator[Rod]:
        """The rods in order of `rod_keys`, each with its points sorted by L."""
        for r, key in enumerate(self.rod_keys):
            index = np.flatnonzero(self.rod == r)
            index = index[np.argsort(self.l[index], kind="stable")]
            yield Rod(key, self.h[index], self.k[index], self.l[index], self.value[index],
                      None if self.sigma is None else self.sigma[index],
                      _meta(self.l_bragg, r), _meta(self.dl, r), index)

    def as_quantity(self, quantity: Quantity) -> MeasuredRods:
        """The same points as I = |F|² or F = |F|, σ propagated to first order.

        F → I: I = F², σ_I = 2 F σ_F. I → F: F = √I, σ_F = σ_I / (2√I); it needs I > 0 wherever σ is given and
        I ≥ 0 everywhere (an InputError names the first point that fails).
        """
        if quantity not in ("I", "F"):
            raise InputError(f"quantity must be 'I' or 'F', got {quantity!r}")
        if quantity == self.quantity:
            return self
        if quantity == "I":
            sigma = None if self.sigma is None else 2.0 * np.abs(self.value) * self.sigma
            return replace(self, value=self.value**2, sigma=sigma, quantity="I",
                           history=(*self.history, "converted |F| to I = |F|²"))
        bad = np.flatnonzero(self.value < 0 if self.sigma is None else self.value <= 0)
        if bad.size:
            i = int(bad[0])
            where = f"point {i} ({format_key(self.rod_keys[self.rod[i]])} L = {float(self.l[i])!r})"
            raise InputError(f"{self.source}: cannot take |F| = √I at {where}: expected I > 0 (≥ 0 without σ), "
                             f"got I = {float(self.value[i])!r}")
        value = np.sqrt(self.value)
        sigma = None if self.sigma is None else self.sigma / (2.0 * value)
        return replace(self, value=value, sigma=sigma, quantity="F", history=(*self.history, "converted I to |F| = √I"))

    def transform_basis(self, matrix: Sequence[Sequence[HKValue]]) -> MeasuredRods:
        """(H, K) = M (h, k) in exact arithmetic: H = m00 h + m01 k, K = m10 h + m11 k.

        `matrix` is 2×2 of ints, Fractions or strings such as "1/2" (the LSMO file: [["1/2", 0], [0, "1/2"]]).
        Rod keys are transformed exactly; each point's H, K is the correctly rounded float of the exact product
        (of its key when the point lies on its key, else of its float h, k).
        """
        m = parse_basis(matrix)
        keys = tuple(_apply(m, key) for key in self.rod_keys)
        h = np.empty_like(self.h)
        k = np.empty_like(self.k)
        for i, (hi, ki, r) in enumerate(zip(self.h.tolist(), self.k.tolist(), self.rod.tolist(), strict=True)):
            key = self.rod_keys[r]
            exact = (key[0], key[1]) if (hi, ki) == (float(key[0]), float(key[1])) else (Fraction(hi), Fraction(ki))
            hk = _apply(m, exact)
            h[i], k[i] = float(hk[0]), float(hk[1])
        text = "[[" + ", ".join(map(str, m[0])) + "], [" + ", ".join(map(str, m[1])) + "]]"
        return replace(self, h=h, k=k, rod_keys=keys, history=(*self.history, f"in-plane basis (H, K) = {text} (h, k)"))

    def summary(self) -> str:
        """A few lines: source, quantity, σ, grouping, and per rod the number of points and the L range."""
        sigma = "none in the file" if self.sigma is None else f"given (median {float(np.median(self.sigma)):.4g})"
        grouping = ("exact h, k" if self.hk_tolerance is None else
                    f"h, k within {self.hk_tolerance:g} of their rod (max deviation {self.hk_deviation:.3g})")
        lines = [f"{self.source or 'measured rods'}: {self.n_points} points on {len(self.rod_keys)} rods, "
                 f"quantity {'I = |F|²' if self.quantity == 'I' else 'F = |F|'}, σ {sigma}; rods keyed by {grouping}"]
        for rod in self.rods():
            extra = "" if rod.l_bragg is None else f", L_Bragg {rod.l_bragg:g}"
            extra += "" if rod.dl is None else f", dL {rod.dl:g}"
            lines.append(f"  {format_key(rod.key):>12}: {rod.l.size:5d} points, "
                         f"L {rod.l[0]:.4g} … {rod.l[-1]:.4g}{extra}")
        lines += [f"  {step}" for step in self.history]
        return "\n".join(lines)


def duplicate_points(rod: np.ndarray, l: np.ndarray) -> list[tuple[int, int]]:
    """Pairs (first, repeat) of point indices with the same rod and exactly the same L."""
    seen: dict[tuple[int, float], int] = {}
    pairs = []
    for i, key in enumerate(zip(rod.tolist(), l.tolist(), strict=True)):
        if key in seen:
            pairs.append((seen[key], i))
        else:
            seen[key] = i
    return pairs


def _group(hf: list[Fraction], kf: list[Fraction], tolerance: float | None, max_denominator: int,
           where) -> tuple[np.ndarray, tuple[RodKey, ...], float]:
    index: dict[RodKey, int] = {}
    rod = np.empty(len(hf), dtype=np.int64)
    deviation = Fraction(0)
    for i, (h, k) in enumerate(zip(hf, kf, strict=True)):
        key = (h, k)
        if tolerance is not None:
            key = (h.limit_denominator(max_denominator), k.limit_denominator(max_denominator))
            off = max(abs(h - key[0]), abs(k - key[1]))
            if off > Fraction(tolerance):
                raise InputError(f"{where(i)}: h, k = {float(h)!r}, {float(k)!r} is not within {tolerance:g} of a "
                                 f"fraction with denominator ≤ {max_denominator} (nearest {format_key(key)})")
            deviation = max(deviation, off)
        rod[i] = index.setdefault(key, len(index))
    return rod, tuple(index), float(deviation)


def _per_rod(values, rod: np.ndarray, n_rods: int, name: str, keys, where) -> np.ndarray | None:
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    out = np.full(n_rods, np.nan)
    for i, (r, v) in enumerate(zip(rod.tolist(), values.tolist(), strict=True)):
        if np.isnan(out[r]):
            out[r] = v
        elif out[r] != v:
            raise InputError(f"{where(i)}: {name} {v!r} differs from {out[r]!r} earlier on rod {format_key(keys[r])}; "
                             f"expected one {name} per rod")
    return out


def _meta(values: np.ndarray | None, r: int) -> float | None:
    return None if values is None or np.isnan(values[r]) else float(values[r])


def parse_basis(matrix: Sequence[Sequence[HKValue]]) -> tuple[tuple[Fraction, Fraction], tuple[Fraction, Fraction]]:
    """A 2×2 in-plane basis matrix as exact fractions; InputError unless 2×2 and invertible."""
    try:
        rows = [list(row) for row in matrix]
    except TypeError:
        rows = []
    if len(rows) != 2 or any(len(row) != 2 for row in rows):
        raise InputError(f"expected a 2×2 basis matrix such as [['1/2', 0], [0, '1/2']], got {matrix!r}")
    m = ((_fraction(rows[0][0]), _fraction(rows[0][1])), (_fraction(rows[1][0]), _fraction(rows[1][1])))
    if m[0][0] * m[1][1] - m[0][1] * m[1][0] == 0:
        raise InputError(f"the basis matrix {matrix!r} is singular; expected an invertible 2×2 matrix")
    return m


def _apply(m, hk: tuple[Fraction, Fraction]) -> RodKey:
    return (m[0][0] * hk[0] + m[0][1] * hk[1], m[1][0] * hk[0] + m[1][1] * hk[1])


def supercell_indices(rod_keys: Sequence[tuple[HKValue, HKValue]]) -> tuple[int, int, np.ndarray]:
    """The smallest diagonal in-plane supercell (nx × ny pseudocubic cells) in which every rod is integer.

    Args:
        rod_keys: (H, K) per rod in the pseudocubic basis, exact (Fractions, ints or strings like "1/2").
    Returns:
        nx, ny: the least common multiples of the denominators of H and of K;
        hk_int: (n_rods, 2) int64, the rods' integer indices (H·nx, K·ny) in the supercell's reciprocal basis.
    Example: [(0, 0), ("1/2", "1/2"), ("3/2", "1/2")] → (2, 2, [[0, 0], [1, 1], [3, 1]]).
    """
    keys = [(_fraction(h), _fraction(k)) for h, k in rod_keys]
    if not keys:
        raise InputError("expected at least one rod key, got none")
    nx = math.lcm(*(h.denominator for h, _ in keys))
    ny = math.lcm(*(k.denominator for _, k in keys))
    hk_int = np.array([[int(h * nx), int(k * ny)] for h, k in keys], dtype=np.int64)
    return nx, ny, hk_int


def p4mm_equivalents(key: tuple[HKValue, HKValue]) -> frozenset[RodKey]:
    """The (up to 8) rods equivalent to (h, k) under p4mm: (±h, ±k) and (±k, ±h)."""
    h, k = _fraction(key[0]), _fraction(key[1])
    return frozenset((sh * a, sk * b) for a, b in ((h, k), (k, h)) for sh in (1, -1) for sk in (1, -1))


@dataclass(frozen=True)
class MergeReport:
    """Outcome of `merge_p4mm`.

    r_sym: Σ_g Σ_{i∈g} |y_i − ⟨y⟩_g| / Σ_g Σ_{i∈g} y_i over the groups g of points measured more than once
    (≥ 2 equivalent rods at matching L), y the data's quantity (`quantity`); NaN when no point was measured twice.
    groups: per merged rod, its key and the keys merged into it.
    """

    r_sym: float
    quantity: str
    n_points_in: int
    n_points_out: int
    n_multiple: int  # groups of ≥ 2 points that were averaged
    groups: tuple[tuple[RodKey, tuple[RodKey, ...]], ...]

    def summary(self) -> str:
        merged = [f"{format_key(k)} ← {', '.join(map(format_key, members))}" for k, members in self.groups
                  if len(members) > 1]
        r = "undefined (no point measured twice)" if math.isnan(self.r_sym) else f"{self.r_sym:.4f}"
        return (f"p4mm merge: {self.n_points_in} → {self.n_points_out} points, {len(self.groups)} rods, "
                f"{self.n_multiple} multiply measured points, R_sym({self.quantity}) = {r}; "
                + ("; ".join(merged) if merged else "no symmetry-equivalent rods"))


def merge_p4mm(rods: MeasuredRods, *, l_tolerance: float) -> tuple[MeasuredRods, MergeReport]:
    """Merge rods equivalent under p4mm (the 8 in-plane operations (h, k) → (±h, ±k), (±k, ±h)).

    Assumption: the surface (film, substrate, domains averaged) has p4mm plane symmetry; its operations act in the
    plane only, so L is unchanged. Equivalent rods are pooled, sorted by L, and split into groups: a group starts at
    its lowest L and takes following points within `l_tolerance` of it, at most one point per source rod (so a
    tolerance wider than the L step never averages neighbours of one scan). Each group becomes one point: mean L,
    mean value, σ = √(Σσ²)/m when σ is given. Groups of one point are kept as they are. The merged rod keeps the key
    of its member with the most points (the first in file order on ties), so a lone rod is never renamed.
    l_bragg / dL must agree between merged rods.
    """
    if not l_tolerance >= 0:
        raise InputError(f"l_tolerance must be ≥ 0, got {l_tolerance!r}")
    counts = np.bincount(rods.rod, minlength=len(rods.rod_keys))
    orbit_of: dict[frozenset, list[int]] = {}
    for r, key in enumerate(rods.rod_keys):
        orbit_of.setdefault(p4mm_equivalents(key), []).append(r)
    cols: dict[str, list] = {name: [] for name in ("h", "k", "l", "value", "sigma", "rod")}
    keys, groups, l_bragg, dl = [], [], [], []
    deviation_sum, total, n_multiple = 0.0, 0.0, 0
    for members in orbit_of.values():
        best = max(members, key=lambda r: (counts[r], -r))
        keys.append(rods.rod_keys[best])
        groups.append((rods.rod_keys[best], tuple(rods.rod_keys[r] for r in members)))
        l_bragg.append(_agreed(rods.l_bragg, members, "l_bragg", rods))
        dl.append(_agreed(rods.dl, members, "dL", rods))
        index = np.flatnonzero(np.isin(rods.rod, members))
        index = index[np.argsort(rods.l[index], kind="stable")]
        for group in _l_groups(rods.l[index], rods.rod[index], l_tolerance):
            take = index[group]
            y = rods.value[take]
            mean = float(y.mean())
            if take.size > 1:
                deviation_sum += float(np.abs(y - mean).sum())
                total += float(y.sum())
                n_multiple += 1
            # a lone point of the kept rod keeps its measured h, k; anything else sits on the kept key
            own = take.size == 1 and rods.rod[take[0]] == best
            cols["h"].append(float(rods.h[take[0]]) if own else float(keys[-1][0]))
            cols["k"].append(float(rods.k[take[0]]) if own else float(keys[-1][1]))
            cols["l"].append(float(rods.l[take].mean()))
            cols["value"].append(mean)
            if rods.sigma is not None:
                cols["sigma"].append(float(np.sqrt(np.sum(rods.sigma[take] ** 2)) / take.size))
            cols["rod"].append(len(keys) - 1)
    r_sym = deviation_sum / total if n_multiple else math.nan
    report = MergeReport(r_sym, rods.quantity, rods.n_points, len(cols["l"]), n_multiple, tuple(groups))
    merged = replace(rods, h=np.array(cols["h"]), k=np.array(cols["k"]), l=np.array(cols["l"]),
                     value=np.array(cols["value"]), sigma=None if rods.sigma is None else np.array(cols["sigma"]),
                     rod=np.array(cols["rod"], dtype=np.int64), rod_keys=tuple(keys),
                     l_bragg=None if rods.l_bragg is None else np.array(l_bragg),
                     dl=None if rods.dl is None else np.array(dl),
                     history=(*rods.history, report.summary()))
    return merged, report


def _l_groups(l: np.ndarray, source: np.ndarray, tolerance: float) -> Iterator[np.ndarray]:
    start = 0
    members: set[int] = set()
    for i in range(l.size):
        if i > start and (l[i] - l[start] > tolerance or int(source[i]) in members):
            yield np.arange(start, i)
            start, members = i, set()
        members.add(int(source[i]))
    yield np.arange(start, l.size)


def _agreed(values: np.ndarray | None, members: list[int], name: str, rods: MeasuredRods) -> float:
    if values is None:
        return math.nan
    given = {float(values[r]) for r in members if not np.isnan(values[r])}
    if len(given) > 1:
        names = ", ".join(format_key(rods.rod_keys[r]) for r in members)
        raise InputError(f"{rods.source}: symmetry-equivalent rods {names} have different {name} {sorted(given)}; "
                         "expected one value")
    return given.pop() if given else math.nan
