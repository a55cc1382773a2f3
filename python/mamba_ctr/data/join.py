"""Joining finished block (or shard) files into one output: virtual datasets ("vds"), a copy ("copy"), `merge`.

The file layout of a run (see `mamba_ctr.data.generate`): FILE.h5.parts/ holds the block files while running,
FILE.h5.data/ keeps them beside a "vds" output. Both joiners take the blocks in index order and tally their
statistics (/stats) and backends; `Joiner` also copies the rows into a file chunked along n.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import h5py
import numpy as np

from .._files import atomic_path, fsync_dir, fsync_file
from ..errors import InputError
from ..physics.grid import Grid
from . import stats as _stats
from .hdf5 import file_attrs, open_complete, read_grid, write_grid

CHUNK_ROWS = 16          # HDF5 chunk of the joined file along n: (16, R, NL) ≈ 0.25 MB float32


# ------------------------------------------------------------------------------------------------ layout
def parts_dir(out: Path) -> Path:
    """FILE.h5.parts/: the manifest and the finished block files of a run in progress."""
    return out.with_name(out.name + ".parts")


def data_dir(out: Path) -> Path:
    """FILE.h5.data/: the block files that the virtual datasets of FILE.h5 (join="vds") map onto."""
    return out.with_name(out.name + ".data")


def block_name(lo: int, hi: int) -> str:
    """The file name of the block of structures [lo, hi)."""
    return f"block-{lo:012d}-{hi:012d}.h5"


def range_attrs(n: int, shard: tuple[int, int] | None, start: int, stop: int, dtype: str) -> dict:
    """The attrs of an output holding structures [start, stop) of n."""
    return {"n_total": n, "shard": "" if shard is None else f"{shard[0]}/{shard[1]}", "start": start, "stop": stop,
            "dtype": dtype}


def install(temporary: Path, out: Path, aside: Path, parts: Path | None = None) -> None:
    """Put a complete (fsync'd) output in place. An old FILE.h5.data/ (of the file being replaced) is first
    set aside; with `parts`, the parts directory becomes FILE.h5.data/
    before FILE.h5 is renamed into place."""
    set_aside(aside)
    if parts is not None:
        os.replace(parts, aside)
        fsync_dir(out.parent)
        temporary = aside / temporary.relative_to(parts)
    os.replace(temporary, out)
    fsync_dir(out.parent)


def set_aside(directory: Path) -> None:
    """Rename an old FILE.h5.data/ out of the way of a new output (removed later by `remove_aside`)."""
    if directory.exists():
        os.replace(directory, directory.with_name(f".{directory.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"))
        fsync_dir(directory.parent)


def remove_aside(out: Path) -> None:
    """Old data directories set aside by an --overwrite (removed once the new output is in place)."""
    escaped = re.sub(r"([*?\[])", r"[\1]", out.name)
    for old in out.parent.glob(f".{escaped}.data.old-*"):
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------- joiners
class _BlockTally:
    """What both joins record per block, in index order: the position, the statistics and the backends."""

    def __init__(self, start: int, grid: Grid) -> None:
        self.position, self.grid = start, grid
        self.stats = _stats.Stats.empty(grid.shape, start)
        self.backends: set[str] = set()

    def _tally(self, stats: _stats.Stats | None, backend: str) -> None:
        if stats is not None:
            self.add_stats(stats)
        if backend:
            self.backends.add(str(backend))

    def _check_order(self, lo: int) -> None:
        if lo != self.position:
            raise RuntimeError(f"rows must be added in order: expected {self.position}, got {lo}")

    def add_stats(self, stats: _stats.Stats) -> None:
        self.stats = self.stats.merge(stats)


class Collector(_BlockTally):
    """join="vds": statistics and backends of the blocks, in index order (no data are copied)."""

    def __init__(self, start: int, grid: Grid) -> None:
        super().__init__(start, grid)
        self.names: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    def add(self, lo: int, data: dict[str, np.ndarray], stats: _stats.Stats | None, backend: str = "") -> None:
        names = {name: (value.shape[1:], value.dtype) for name, value in data.items()}
        self.add_meta(lo, lo + len(data["intensity"]), names, stats, backend)

    def add_meta(self, lo: int, hi: int, names: dict, stats: _stats.Stats | None, backend: str = "") -> None:
        self._check_order(lo)
        if self.names and names != self.names:
            raise InputError(f"structures from {lo} have datasets {sorted(names)}, expected {sorted(self.names)}")
        self.names = names
        self.position = hi
        self._tally(stats, backend)

    def abort(self) -> None:
        pass


class Joiner(_BlockTally):
    """The output file under construction (a temporary name): rows added in index order, chunked along n;
    `finish` writes /stats and the attrs, `complete=True` last, and fsyncs it (the caller renames it)."""

    def __init__(self, temporary: Path, start: int, stop: int, grid: Grid) -> None:
        super().__init__(start, grid)
        self.temporary, self.start, self.stop = temporary, start, stop
        self.file: h5py.File | None = None

    def _open(self, data: dict[str, np.ndarray]) -> h5py.File:
        if self.temporary.exists():
            self.temporary.unlink()
        f = h5py.File(self.temporary, "w", rdcc_nbytes=0)  # rows arrive in whole chunks: no chunk cache (2x faster)
        write_grid(f.create_group("grid"), self.grid)
        n = self.stop - self.start
        for name, value in data.items():
            shape = value.shape[1:]
            chunks = (min(CHUNK_ROWS, n), *shape) if shape else None
            f.create_dataset(name, shape=(n, *shape), dtype=value.dtype, chunks=chunks)
        return f

    def add(self, lo: int, data: dict[str, np.ndarray], stats: _stats.Stats | None, backend: str = "") -> None:
        self._check_order(lo)
        if self.file is None:
            self.file = self._open(data)
        n = len(data["intensity"])
        rows = slice(lo - self.start, lo - self.start + n)
        if set(data) != set(self._names()):
            raise InputError(f"structures from {lo} have datasets {sorted(data)}, expected {sorted(self._names())}")
        for name, value in data.items():
            self.file[name][rows] = value
        self.position += n
        self._tally(stats, backend)

    def _names(self) -> list[str]:
        names: list[str] = []
        cast(h5py.File, self.file).visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset)
                                              and not name.startswith("grid") else None)
        return names

    def finish(self, attrs: dict) -> _stats.Stats:
        if self.position != self.stop or self.file is None:
            raise RuntimeError(f"joined file has structures up to {self.position}, expected {self.stop}")
        if (self.stats.start, self.stats.stop) != (self.start, self.stop):
            raise RuntimeError("statistics do not cover the joined range")
        f = self.file
        self.stats.write(f.create_group("stats"))
        f.attrs.update(attrs)
        if self.backends:
            f.attrs["backend"] = ",".join(sorted(self.backends))
        f.flush()
        f.attrs["complete"] = True
        f.close()
        self.file = None
        fsync_file(self.temporary)
        return self.stats

    def abort(self) -> None:
        """Close and delete an unfinished joined file (nothing to do after `finish`)."""
        if self.file is not None:
            try:
                self.file.close()
            finally:
                self.file = None
        if self.temporary.exists():
            self.temporary.unlink()


# -------------------------------------------------------------------------------------------- block files
def copy_block(path: Path, joiner: Joiner, lo: int, hi: int, rows: int = 8192) -> None:
    """Rows [lo, hi) of a finished block (or shard) file into the joined file."""
    try:
        with h5py.File(path, "r") as src:
            first = int(src.attrs.get("start", lo))
            if not first <= lo < hi <= first + src["intensity"].shape[0]:
                raise InputError(f"{path} does not hold structures [{lo}, {hi})")
            names = ["intensity", "film_field"] + [f"{g}/{k}" for g in ("params", "labels") if g in src
                                                   for k in src[g]]
            stored = _stats.Stats.read(src["stats"]) if "stats" in src else None
            whole = stored is not None and (stored.start, stored.stop) == (lo, hi)
            backend = src.attrs.get("backend", "")
            for a in range(lo, hi, rows):
                b = min(hi, a + rows)
                data = {name: src[name][a - first:b - first] for name in names}
                stats = None if whole else _stats.Stats.of_arrays(data["intensity"], data["film_field"],
                                                                  joiner.grid.bragg, start=a)
                joiner.add(a, data, stats, backend)
            if whole:
                joiner.add_stats(cast(_stats.Stats, stored))
    except (OSError, KeyError) as error:
        raise InputError(f"{path} is corrupt or truncated ({error})") from None


def scan_block(path: Path, collector: Collector, lo: int, hi: int) -> None:
    """join="vds", resuming: a finished block's dataset shapes, statistics and backend (no data are read)."""
    try:
        with h5py.File(path, "r") as src:
            if (int(src.attrs["start"]), int(src.attrs["stop"])) != (lo, hi) or not src.attrs.get("complete"):
                raise InputError(f"{path} does not hold structures [{lo}, {hi})")
            names: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
            src.visititems(lambda name, obj: names.__setitem__(name, (obj.shape[1:], obj.dtype))
                           if isinstance(obj, h5py.Dataset) and not name.startswith("stats") else None)
            if any(src[name].shape[0] != hi - lo for name in names):
                raise InputError(f"{path} does not hold structures [{lo}, {hi})")
            collector.add_meta(lo, hi, names, _stats.Stats.read(src["stats"]), src.attrs.get("backend", ""))
    except (OSError, KeyError) as error:
        raise InputError(f"{path} is corrupt or truncated ({error})") from None


def write_vds(temporary: Path, data: Path, blocks: list[tuple[int, int]], collector: Collector, attrs: dict,
              token: str) -> None:
    """FILE.h5 (under a temporary name) with virtual datasets over the block files, which will live in `data`
    (a sibling of the output: the sources are relative paths, resolved from the directory of the file)."""
    start, stop = blocks[0][0], blocks[-1][1]
    if collector.position != stop or (collector.stats.start, collector.stats.stop) != (start, stop):
        raise RuntimeError(f"blocks cover structures up to {collector.position}, expected {stop}")
    with h5py.File(temporary, "w") as f:
        write_grid(f.create_group("grid"), collector.grid)
        for name, (shape, dtype) in collector.names.items():
            layout = h5py.VirtualLayout(shape=(stop - start, *shape), dtype=dtype)
            for lo, hi in blocks:
                layout[lo - start:hi - start] = h5py.VirtualSource(f"{data.name}/{block_name(lo, hi)}", name,
                                                                   shape=(hi - lo, *shape), dtype=dtype)
            f.create_virtual_dataset(name, layout)
        collector.stats.write(f.create_group("stats"))
        f.attrs.update(attrs)
        f.attrs["backend"] = ",".join(sorted(collector.backends))
        f.attrs["data_token"] = token
        f.flush()
        f.attrs["complete"] = True
    fsync_file(temporary)


# ------------------------------------------------------------------------------------------------ merge
def merge(shard_files: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Join complete shard files into one file covering [0, n) (a copy). Refuses shards of different presets,
    grids, seeds, n or dtypes, and overlapping or missing index ranges."""
    out = Path(out)
    if not shard_files:
        raise InputError("merge needs at least one shard file")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {out.parent}")
    infos = sorted((_shard_info(Path(path), out) for path in shard_files), key=lambda item: item[1])
    n = _check_shards(infos)
    reference = infos[0][3]
    attrs = file_attrs(preset=None, seed=int(reference["seed"]))
    attrs["preset"] = reference["preset"]
    attrs.update(range_attrs(n, None, 0, n, str(reference["dtype"])))
    attrs["merged_from"] = json.dumps([str(p) for p, *_ in infos])
    with h5py.File(infos[0][0], "r") as f:
        grid = read_grid(f["grid"])
    try:
        with atomic_path(out) as temporary:
            joiner = Joiner(temporary, 0, n, grid)
            try:
                for path, first, last, _ in infos:
                    copy_block(path, joiner, first, last)
                joiner.finish(attrs)
            except BaseException:
                joiner.abort()  # closes the file (atomic_path removes it)
                raise
            set_aside(data_dir(out))  # a "vds" output being replaced: its data directory goes first
        remove_aside(out)
    except OSError as error:
        raise InputError(f"merge failed ({error}); {out} was not written") from None
    return out


def _shard_info(path: Path, out: Path) -> tuple[Path, int, int, dict]:
    """(path, first, last, the attrs that must agree between shards) of a complete shard file."""
    if out.exists() and path.resolve() == out.resolve():
        raise InputError(f"{path} is both an input and the output")
    with open_complete(path) as f:
        try:
            info = {key: f.attrs.get(key) for key in ("preset", "seed", "n_total", "dtype", "format_version")}
            info["grid"] = {k: f["grid"][k][()] for k in ("h", "k", "L", "bragg")}
            info["grid"].update(dict(f["grid"].attrs))
            first, last = _stats.file_range(f)
        except (OSError, KeyError) as error:
            raise InputError(f"{path} is corrupt or not a mamba-ctr dataset ({error})") from None
    if info["n_total"] is None:
        info["n_total"] = last
    return path, first, last, info


def _check_shards(infos: list[tuple[Path, int, int, dict]]) -> int:
    """n, if the shards (sorted by their first index) agree and cover [0, n) exactly once; else InputError."""
    reference = infos[0][3]
    for path, _, _, info in infos[1:]:
        for key, what in (("preset", "preset"), ("seed", "seed"), ("n_total", "n"), ("dtype", "dtype")):
            if info[key] != reference[key]:
                raise InputError(f"{path} has a different {what} than {infos[0][0]} "
                                 f"({info[key]!s:.60} vs {reference[key]!s:.60})")
        g, r = info["grid"], reference["grid"]
        if g.keys() != r.keys() or not all(np.array_equal(g[k], r[k]) for k in g):
            raise InputError(f"{path} has a different grid than {infos[0][0]}")
    n = int(reference["n_total"])
    position = 0
    for path, first, last, _ in infos:
        if first < position:
            raise InputError(f"{path} covers [{first}, {last}), overlapping the range before it (up to {position})")
        if first > position:
            raise InputError(f"structures [{position}, {first}) are missing (no shard covers them)")
        position = last
    if position != n:
        raise InputError(f"structures [{position}, {n}) are missing (no shard covers them)")
    return n
