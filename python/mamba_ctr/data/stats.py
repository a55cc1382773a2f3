"""Normalisation statistics (paper §4.1), streaming and mergeable.

* X = ln I with the Bragg points set to 0 (`mamba_ctr.simulate.network_input`): one global mean and std
  over every point of every structure (the zeroed Bragg points included).
* Re U and Im U: mean and std per grid point, arrays (R, NL).

Everything is float64 and accumulated as (count, mean, M2) per chunk, chunks combined with Chan et al.'s
parallel update, so one pass over a file, shards merged afterwards, or numpy on the whole array in memory
give the same numbers (to rounding, ~1e-12 relative). std is the population std (ddof = 0).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from ..errors import InputError
from ..simulate import network_input

CHUNK = 4096  # structures per read when streaming a file


@dataclass
class Moments:
    """count, mean and M2 = Σ (x − mean)² of a set of values (mean/M2 scalars or arrays)."""

    count: int
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray, axis: int | None) -> Moments:
        values = np.asarray(values, dtype=np.float64)
        count = values.size if axis is None else values.shape[axis]
        mean = values.mean(axis=axis)
        m2 = ((values - (mean if axis is None else np.expand_dims(mean, axis))) ** 2).sum(axis=axis)
        return cls(int(count), np.asarray(mean, np.float64), np.asarray(m2, np.float64))

    def merge(self, other: Moments) -> Moments:
        """Chan's parallel combination of two disjoint sets."""
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        n = self.count + other.count
        delta = other.mean - self.mean
        mean = self.mean + delta * (other.count / n)
        m2 = self.m2 + other.m2 + delta**2 * (self.count * other.count / n)
        return Moments(n, mean, m2)

    @property
    def std(self) -> np.ndarray:
        return np.sqrt(self.m2 / self.count) if self.count else np.full_like(self.m2, np.nan)


@dataclass
class Stats:
    """Statistics of structures [start, stop) of a dataset.

    Attributes:
        start, stop: the global index range covered.
        x: Moments of X (scalar mean/M2, count = structures × R × NL).
        u_re, u_im: Moments of Re U and Im U per grid point ((R, NL) mean/M2, count = structures).
    """

    start: int
    stop: int
    x: Moments
    u_re: Moments
    u_im: Moments

    @classmethod
    def empty(cls, shape: tuple[int, int], start: int = 0) -> Stats:
        zero = np.zeros(shape)
        return cls(start, start, Moments(0, np.float64(0.0), np.float64(0.0)), Moments(0, zero, zero),
                   Moments(0, zero, zero))

    @classmethod
    def of_arrays(cls, intensity: np.ndarray, film_field: np.ndarray, bragg: np.ndarray,
                  start: int = 0) -> Stats:
        """Statistics of in-memory arrays (n, R, NL) of structures start .. start + n − 1.

        X is `network_input(intensity)` in the dtype of the intensity (what the network is given);
        all sums are float64.
        """
        intensity = np.asarray(intensity)
        n = intensity.shape[0]
        if n == 0:
            return cls.empty(intensity.shape[1:], start)
        shape = intensity.shape[1:]
        X = network_input(intensity, np.asarray(bragg, dtype=bool)).reshape(n, -1)
        field = np.ascontiguousarray(film_field).reshape(n, -1)
        parts = field.view(np.float32 if field.dtype == np.complex64 else np.float64).reshape(n, -1, 2)
        mean = np.zeros((3, X.shape[1]))
        m2 = np.zeros((3, X.shape[1]))
        _column_moments(X, parts, mean, m2)
        return cls.of_point_moments(n, mean.reshape(3, *shape), m2.reshape(3, *shape), start)

    @classmethod
    def of_point_moments(cls, n: int, mean: np.ndarray, m2: np.ndarray, start: int = 0) -> Stats:
        """Statistics of structures start .. start + n − 1 from the per-point (mean, M2) of X, Re U and Im U,
        each (3, R, NL) (from `of_arrays` or accumulated by the kernel, `Rods.point_moments`)."""
        # the global X moments from the per-point ones (Chan's formula for P sets of n values each)
        x_mean = mean[0].mean()
        x = Moments(n * mean[0].size, np.float64(x_mean), np.float64(m2[0].sum() + n * ((mean[0] - x_mean) ** 2).sum()))
        return cls(start, start + n, x, Moments(n, mean[1], m2[1]), Moments(n, mean[2], m2[2]))

    def merge(self, other: Stats) -> Stats:
        """Statistics of the union of two adjacent ranges."""
        if other.stop == other.start:
            return self
        if self.stop == self.start:
            return other
        if self.stop != other.start:
            raise ValueError(f"can only merge adjacent index ranges, got [{self.start}, {self.stop}) "
                             f"and [{other.start}, {other.stop})")
        return Stats(self.start, other.stop, self.x.merge(other.x), self.u_re.merge(other.u_re),
                     self.u_im.merge(other.u_im))

    def summary(self) -> dict:
        """JSON-able means and stds (the per-point ones as nested lists)."""
        return {
            "start": self.start, "stop": self.stop, "structures": self.stop - self.start,
            "X_mean": float(self.x.mean), "X_std": float(self.x.std),
            "U_re_mean": self.u_re.mean.tolist(), "U_re_std": self.u_re.std.tolist(),
            "U_im_mean": self.u_im.mean.tolist(), "U_im_std": self.u_im.std.tolist(),
        }

    # ------------------------------------------------------------- HDF5
    def write(self, group: h5py.Group) -> None:
        """Store under `group` (normally /stats): means, stds and the raw (count, M2) for later merging."""
        group.attrs.update({"start": self.start, "stop": self.stop,
                            "description": "float64 mean/std (ddof=0) of X = ln I (Bragg points 0; global) "
                                           "and of Re U, Im U per grid point"})
        for name, moments in (("X", self.x), ("U_re", self.u_re), ("U_im", self.u_im)):
            group.create_dataset(f"{name}_mean", data=moments.mean)
            group.create_dataset(f"{name}_std", data=moments.std)
            group.create_dataset(f"{name}_m2", data=moments.m2)
            group.create_dataset(f"{name}_count", data=np.int64(moments.count))

    @classmethod
    def read(cls, group: h5py.Group) -> Stats:
        def moments(name: str) -> Moments:
            return Moments(int(group[f"{name}_count"][()]), np.asarray(group[f"{name}_mean"][()], np.float64),
                           np.asarray(group[f"{name}_m2"][()], np.float64))

        return cls(int(group.attrs["start"]), int(group.attrs["stop"]), moments("X"), moments("U_re"),
                   moments("U_im"))


def _column_moments(X, parts, mean, m2) -> None:
    """`_column_moments_loops`, compiled by numba at first use: numba is imported only where statistics are
    computed in Python, not on the generate path (the compiled kernel accumulates them; numba's import is ~1 s)."""
    _compiled_column_moments()(X, parts, mean, m2)


@functools.cache
def _compiled_column_moments():
    import numba

    return numba.njit(cache=True, fastmath=False, nogil=True, boundscheck=False)(_column_moments_loops)


def _column_moments_loops(X, parts, mean, m2):  # pragma: no cover - compiled
    """Two-pass float64 mean and M2 per column of X (n, P) and of parts[..., 0], parts[..., 1] (n, P, 2)."""
    n, P = X.shape
    for i in range(n):
        for p in range(P):
            mean[0, p] += X[i, p]
            mean[1, p] += parts[i, p, 0]
            mean[2, p] += parts[i, p, 1]
    for c in range(3):
        for p in range(P):
            mean[c, p] /= n
    for i in range(n):
        for p in range(P):
            d0 = X[i, p] - mean[0, p]
            d1 = parts[i, p, 0] - mean[1, p]
            d2 = parts[i, p, 1] - mean[2, p]
            m2[0, p] += d0 * d0
            m2[1, p] += d1 * d1
            m2[2, p] += d2 * d2


def file_range(f: h5py.File) -> tuple[int, int]:
    """Global index range [start, stop) of the structures in an open dataset file."""
    n_rows = f["intensity"].shape[0]
    start = int(f.attrs.get("start", 0))
    return start, start + n_rows


def compute(f: h5py.File, start: int | None = None, stop: int | None = None, chunk: int = CHUNK) -> Stats:
    """Stream the statistics of the global index range [start, stop) of an open file, chunk by chunk."""
    first, last = file_range(f)
    start = first if start is None else int(start)
    stop = last if stop is None else int(stop)
    if not first <= start < stop <= last:
        raise InputError(f"index range [{start}, {stop}) is empty or outside the file's [{first}, {last})")
    return of_rows(f, np.arange(start - first, stop - first), start, chunk)


def of_rows(f: h5py.File, rows: np.ndarray, start: int = 0, chunk: int = CHUNK) -> Stats:
    """Statistics of the sorted unique `rows` (0 .. n−1) of an open file, read `chunk` rows at a time; the
    result is labelled as the range [start, start + rows.size)."""
    if "film_field" not in f:
        raise InputError(f"{f.filename} has no /film_field: statistics of U need it")
    bragg = f["grid/bragg"][()]
    total = Stats.empty(f["intensity"].shape[1:], start)
    for lo in range(0, rows.size, chunk):
        total = total.merge(Stats.of_arrays(*_read_rows(f, rows[lo:lo + chunk]), bragg, start=start + lo))
    return total


def _read_rows(f: h5py.File, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """intensity and film_field of sorted unique rows: one contiguous read when they are dense, else a selection."""
    lo, hi = int(rows[0]), int(rows[-1]) + 1
    if hi - lo == rows.size:
        return f["intensity"][lo:hi], f["film_field"][lo:hi]
    if hi - lo <= 2 * rows.size:
        return f["intensity"][lo:hi][rows - lo], f["film_field"][lo:hi][rows - lo]
    return f["intensity"][rows], f["film_field"][rows]


def file_stats(path: str | os.PathLike, start: int | None = None, stop: int | None = None,
               recompute: bool = False) -> Stats:
    """Statistics of a complete dataset file: the stored /stats when they cover the asked range, else computed."""
    from .hdf5 import open_complete

    path = Path(path)
    try:
        with open_complete(path) as f:
            stats = None
            if not recompute and "stats" in f:
                stored = Stats.read(f["stats"])
                first, last = file_range(f)
                if (start is None or start == stored.start == first) and (stop is None or stop == stored.stop == last):
                    stats = stored
            if stats is None:
                with np.errstate(invalid="ignore", divide="ignore"):  # checked below, not warned about
                    stats = compute(f, start, stop)
    except (InputError, FileNotFoundError):
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as error:  # what h5py raises on damage
        raise InputError(f"{path} is corrupt or truncated ({' '.join(str(error).split())[:200]})") from None
    bad = [name for name, m in (("X = ln I", stats.x), ("Re U", stats.u_re), ("Im U", stats.u_im))
           if not (np.all(np.isfinite(m.mean)) and np.all(np.isfinite(m.m2)))]
    if bad:  # a NaN mean is never a statistic: flipped bytes, an I ≤ 0 or a NaN in the file
        raise InputError(f"{path}: the statistics of {', '.join(bad)} are not finite: the file holds NaN, inf or "
                         f"(for ln I) intensities ≤ 0 off the Bragg points; it is corrupt or not simulated data")
    return stats
