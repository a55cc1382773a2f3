"""Dataset generation: sharded, resumable, deterministic HDF5 (layout version 1, architecture.md).

    FILE.h5          written at the very end (temporary name, renamed), `complete=True` written last
    FILE.h5.parts/   while running: manifest.json (written first) and one HDF5 file per finished block
                     (block-<start>-<stop>.h5, written to a temporary name and renamed when complete)
    FILE.h5.data/    join="vds" (default): the parts directory renamed at the end and kept; FILE.h5 holds
                     HDF5 virtual datasets mapping onto its block files (relative paths: move the pair together)

join="copy" copies the blocks into FILE.h5 (one self-contained file, chunked along n) and removes the parts.
Each block file is fsync'd before it is renamed (FSYNC_EACH_BLOCK = True, the default: measured as fast as
one fsync of all blocks at the end, because the writer thread overlaps it with the kernel). With False the
blocks are fsync'd once, at the end, before the output gets its completion marker: a killed process cannot
lose what the kernel already has, only a power loss or OS crash could then leave a renamed block unwritten.

A killed run (SIGINT, SIGTERM, SIGKILL at any moment) loses at most the blocks in flight (the one being
simulated and the one being written by the writer thread): `resume=True` checks the manifest, skips the
finished blocks and generates the rest, giving the same output as an uninterrupted run. Structure i
depends only on (preset, seed, i), so the data are bitwise the same whatever the thread count, block size or sharding.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import h5py
import numpy as np

from .._checks import check_count
from .._files import read_toml
from .._version import __version__
from ..physics.presets import PerovskitePreset
from ..physics.presets import resolve as resolve_preset
from . import stats as _stats
from .hdf5 import file_attrs, open_complete, read_grid, write_grid

MANIFEST = "manifest.json"
FSYNC_EACH_BLOCK = True  # fsync each block file when written (True) or all of them once at the end (False)
JOINS = ("vds", "copy")
CHUNK_ROWS = 16          # HDF5 chunk of the joined file along n: (16, R, NL) ≈ 0.25 MB float32
_BLOCK_NAME = re.compile(r"^block-(\d{12})-(\d{12})\.h5$")


@dataclass
class GenerateConfig:
    """What `generate` makes. Loadable from TOML (`GenerateConfig.from_toml`), keys = field names.

    Attributes:
        out: the output file FILE.h5 (FILE.h5.parts/ next to it while running).
        preset: a built-in preset name, or a TOML file with `base = "paper-12L"` and overrides of
            n_sub, film_layers, rough_top, delta_c, delta_z, occupancy_range (optionally name, description).
        n: structures in the whole dataset (all shards together).
        seed: sampling seed; structure i depends only on (preset, seed, i).
        shard: (i, K) to write shard i of K, the index range [i·n//K, (i+1)·n//K); None for all of [0, n).
        block_size: structures per block file (and per kernel call); bounds the memory in use.
        dtype: "float32" (intensity float32, film_field complex64) or "float64".
        threads: kernel threads, 0 for the runtime default.
        backend: "auto", "compiled", "numba" or "numpy".
        overwrite: replace an existing output (only once the new one is complete) and discard old parts.
        resume: continue an interrupted run from its FILE.h5.parts/.
        quiet: no progress bar.
        join: "vds" (FILE.h5 holds virtual datasets over the block files kept in FILE.h5.data/; the data are
            written once) or "copy" (one self-contained FILE.h5; the data are written twice).
    """

    out: Path
    preset: str = "paper-12L"
    n: int = 1000
    seed: int = 0
    shard: tuple[int, int] | None = None
    block_size: int = 8192
    dtype: str = "float32"
    threads: int = 0
    backend: str = "auto"
    overwrite: bool = False
    resume: bool = False
    quiet: bool = False
    join: str = "vds"

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.shard, str):
            self.shard = parse_shard(self.shard)
        elif self.shard is not None:
            self.shard = _check_shard(tuple(self.shard))
        for name, minimum in (("n", 1), ("seed", 0), ("block_size", 1), ("threads", 0)):
            setattr(self, name, check_count(name, getattr(self, name), minimum))
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.shard is not None and self.index_range[0] == self.index_range[1]:
            raise ValueError(f"shard {self.shard[0]}/{self.shard[1]} of n = {self.n} holds no structures "
                             "(use at most n shards)")
        if self.join not in JOINS:
            raise ValueError(f"join must be one of {', '.join(JOINS)}, got {self.join!r}")
        if self.overwrite and self.resume:
            raise ValueError("--overwrite and --resume exclude each other")

    @classmethod
    def from_toml(cls, path: str | os.PathLike, **overrides) -> GenerateConfig:
        """Config from a TOML file; `overrides` (e.g. command-line flags that were given) win."""
        values = read_toml(path)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{path}: unknown keys {unknown}; known are {sorted(known)}")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if "out" not in values:
            raise ValueError(f"{path}: no output file (set out = \"FILE.h5\" or pass --out)")
        return cls(**values)

    @property
    def index_range(self) -> tuple[int, int]:
        """[start, stop) of the global index range this run writes."""
        return shard_range(self.n, self.shard)



def parse_shard(spec: str) -> tuple[int, int]:
    """ "i/K" → (i, K) with 0 ≤ i < K."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not match:
        raise ValueError(f"shard must be i/K with integers 0 ≤ i < K (e.g. 3/16), got {spec!r}")
    return _check_shard((int(match[1]), int(match[2])))


def _check_shard(shard: tuple) -> tuple[int, int]:
    if len(shard) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard):
        raise ValueError(f"shard must be (i, K) integers, got {shard!r}")
    i, K = int(shard[0]), int(shard[1])
    if not 0 <= i < K:
        raise ValueError(f"shard i/K needs 0 ≤ i < K, got {i}/{K}")
    return i, K


def shard_range(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """[i·n//K, (i+1)·n//K): the K shards partition [0, n) into contiguous ranges."""
    if shard is None:
        return 0, n
    i, K = shard
    return i * n // K, (i + 1) * n // K


# ---------------------------------------------------------------------------------------------- generate
def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def data_dir(out: Path) -> Path:
    """FILE.h5.data/: the block files that the virtual datasets of FILE.h5 (join="vds") map onto."""
    return out.with_name(out.name + ".data")


def _manifest(config: GenerateConfig, preset: PerovskitePreset, backend: str) -> dict:
    start, stop = config.index_range
    return {"format_version": 1, "preset": preset.to_dict(), "seed": config.seed, "n": config.n,
            "shard": list(config.shard) if config.shard else None, "start": start, "stop": stop,
            "dtype": config.dtype, "block_size": config.block_size, "backend": backend,
            "created_by": f"mamba-ctr {__version__}"}


def generate(config: GenerateConfig) -> Path:
    """Write the dataset of `config` to config.out (see the module docstring); returns the path."""
    from .. import _backend

    preset = resolve_preset(config.preset)
    backend = _backend.resolve(config.backend)
    out = config.out
    parts, data = parts_dir(out), data_dir(out)
    manifest = _manifest(config, preset, backend)
    replace_broken = False
    if config.resume:
        if not (parts / MANIFEST).is_file() and (data / MANIFEST).is_file():
            _check_manifest(data, manifest)
            if out.is_file() and _is_complete(out):
                _remove_aside(out)
                return out  # nothing was interrupted
            # killed between renaming the parts to FILE.h5.data and renaming FILE.h5 into place
            os.replace(data, parts)
            _fsync_dir(out.parent)
        if out.is_file() and (parts / MANIFEST).is_file():
            _check_manifest(parts, manifest)
            if _is_complete(out) and not _owns_data(out):
                # join="copy": killed after the output was renamed into place but before the parts were removed
                shutil.rmtree(parts)
                _remove_aside(out)
                return out
            replace_broken = not _is_complete(out)  # an output left broken by an interrupted --overwrite
    _check_output(out, parts, config, replace_broken)

    if config.overwrite and parts.exists():
        with _locked(parts):
            shutil.rmtree(parts)
    if config.resume:
        _check_manifest(parts, manifest)
        token = json.loads((parts / MANIFEST).read_text()).get("token", "")
    else:
        try:
            parts.mkdir()
        except OSError as error:
            raise ValueError(f"cannot write next to {out} ({error.strerror or error})") from None
        token = uuid.uuid4().hex
        _write_atomic(parts / MANIFEST, json.dumps({**manifest, "token": token}, indent=2).encode())
    with _locked(parts):
        for stale in parts.glob("*.tmp"):
            stale.unlink()
        _generate_blocks(config, preset, backend, parts, out, token)
    return out


def _is_complete(path: Path) -> bool:
    try:
        open_complete(path).close()
    except (ValueError, OSError):
        return False
    return True


def _owns_data(out: Path) -> bool:
    """Whether the (complete) file maps onto FILE.h5.data/ (join="vds")."""
    with h5py.File(out, "r") as f:
        return "data_token" in f.attrs


def _remove_aside(out: Path) -> None:
    """Old data directories set aside by an --overwrite (removed once the new output is in place)."""
    for old in out.parent.glob(f".{glob_escape(out.name)}.data.old-*"):
        shutil.rmtree(old, ignore_errors=True)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _generate_blocks(config: GenerateConfig, preset: PerovskitePreset, backend: str, parts: Path,
                     out: Path, token: str) -> None:
    start, stop = config.index_range
    blocks = [(lo, min(stop, lo + config.block_size)) for lo in range(start, stop, config.block_size)]
    done = {b for b in blocks if (parts / _block_name(*b)).is_file()}
    attrs = file_attrs(preset=preset.to_dict(), seed=config.seed)
    attrs.update(_range_attrs(config.n, config.shard, start, stop, config.dtype))
    temporary = parts / "join.tmp"
    joiner: _Joiner | _Collector = (_Joiner(temporary, start, stop, preset.grid) if config.join == "copy"
                                    else _Collector(start, preset.grid))
    # One writer thread: block k is written (block file, rename, and with join="copy" appended to the joined
    # file) while block k + 1 is simulated, so at most two blocks are in memory and in flight.
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="mamba-ctr-writer") as writer, \
                _progress(stop - start, sum(b - a for a, b in done), config.quiet, preset.name) as bar:
            pending: Future[None] | None = None
            for lo, hi in blocks:
                if (lo, hi) in done:
                    scan: Callable[..., None] = _copy_block if config.join == "copy" else _scan_block
                    job = partial(scan, parts / _block_name(lo, hi), joiner, lo, hi)
                else:
                    job = partial(_write_block, parts, joiner, _simulate_block(preset, config, backend, lo, hi), bar)
                if pending is not None:
                    pending.result()
                pending = writer.submit(job)
            cast("Future[None]", pending).result()
        if config.join == "copy":
            cast(_Joiner, joiner).finish(attrs)
            _install(temporary, out, aside=data_dir(out))
            shutil.rmtree(parts)
        else:
            if not FSYNC_EACH_BLOCK:
                for block in blocks:
                    _fsync(parts / _block_name(*block))
                _fsync_dir(parts)
            _write_vds(temporary, parts, data_dir(out), blocks, cast(_Collector, joiner), attrs, token)
            _install(temporary, out, aside=data_dir(out), parts=parts)
            (data_dir(out) / "lock").unlink(missing_ok=True)  # the run is over (our lock handle stays valid)
        _remove_aside(out)
    finally:
        joiner.abort()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def _install(temporary: Path, out: Path, aside: Path, parts: Path | None = None) -> None:
    """Put a complete (fsync'd) output in place. An old FILE.h5.data/ (of the file being replaced) is first
    renamed aside (removed later by `_remove_aside`); with `parts`, the parts directory becomes FILE.h5.data/
    before FILE.h5 is renamed into place."""
    if aside.exists():
        os.replace(aside, aside.with_name(f".{aside.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"))
        _fsync_dir(out.parent)
    if parts is not None:
        os.replace(parts, aside)
        _fsync_dir(out.parent)
        temporary = aside / temporary.relative_to(parts)
    os.replace(temporary, out)
    _fsync_dir(out.parent)


class _BlockTally:
    """What both joins record per block, in index order: the position, the statistics and the backends."""

    def __init__(self, start: int, grid) -> None:
        self.position, self.grid = start, grid
        self.stats = _stats.Stats.empty(grid.shape, start)
        self.backends: set[str] = set()

    def _tally(self, stats: _stats.Stats | None, backend: str) -> None:
        if stats is not None:
            self.add_stats(stats)
        if backend:
            self.backends.add(str(backend))

    def add_stats(self, stats: _stats.Stats) -> None:
        self.stats = self.stats.merge(stats)


class _Collector(_BlockTally):
    """join="vds": statistics and backends of the blocks, in index order (no data are copied)."""

    def __init__(self, start: int, grid) -> None:
        super().__init__(start, grid)
        self.names: dict[str, tuple[tuple[int, ...], np.dtype]] = {}

    def add(self, lo: int, data: dict[str, np.ndarray], stats: _stats.Stats | None, backend: str = "") -> None:
        if lo != self.position:
            raise RuntimeError(f"rows must be added in order: expected {self.position}, got {lo}")
        names = {name: (value.shape[1:], value.dtype) for name, value in data.items()}
        self.add_meta(lo, lo + len(data["intensity"]), names, stats, backend)

    def add_meta(self, lo: int, hi: int, names: dict, stats: _stats.Stats | None, backend: str = "") -> None:
        if lo != self.position:
            raise RuntimeError(f"rows must be added in order: expected {self.position}, got {lo}")
        if self.names and names != self.names:
            raise ValueError(f"structures from {lo} have datasets {sorted(names)}, expected {sorted(self.names)}")
        self.names = names
        self.position = hi
        self._tally(stats, backend)

    def abort(self) -> None:
        pass


def _write_vds(temporary: Path, parts: Path, data: Path, blocks: list[tuple[int, int]], collector: _Collector,
               attrs: dict, token: str) -> None:
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
                layout[lo - start:hi - start] = h5py.VirtualSource(f"{data.name}/{_block_name(lo, hi)}", name,
                                                                   shape=(hi - lo, *shape), dtype=dtype)
            f.create_virtual_dataset(name, layout)
        collector.stats.write(f.create_group("stats"))
        f.attrs.update(attrs)
        f.attrs["backend"] = ",".join(sorted(collector.backends))
        f.attrs["data_token"] = token
        f.flush()
        f.attrs["complete"] = True
    _fsync(temporary)


def _check_output(out: Path, parts: Path, config: GenerateConfig, replace_broken: bool = False) -> None:
    if out.is_dir():
        raise ValueError(f"--out must be a file path, got the directory {out}")
    if out.exists() and not (config.overwrite or replace_broken):
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise ValueError(f"directory {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {out.parent} (permission denied)")
    if config.resume and not (parts / MANIFEST).is_file():
        raise ValueError(f"nothing to resume: {parts / MANIFEST} does not exist")
    if parts.exists() and not (config.resume or config.overwrite):
        raise FileExistsError(f"{parts} holds an interrupted run; pass --resume to continue it "
                              "or --overwrite to start again")
    data = data_dir(out)
    if data.exists() and not out.exists() and not config.overwrite:
        raise FileExistsError(f"{data} exists without {out.name} (an interrupted run); pass --resume to complete "
                              "it or --overwrite to start again")


def _check_manifest(parts: Path, expected: dict) -> None:
    try:
        found = json.loads((parts / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read {parts / MANIFEST} ({error}); use --overwrite to start again") from None
    keys = [k for k in expected if k != "created_by" and found.get(k) != expected[k]]
    if keys:
        detail = "; ".join(f"{k}: run has {found.get(k)!r:.60}, config has {expected[k]!r:.60}" for k in keys)
        raise ValueError(f"cannot resume {parts}: it was started with a different configuration ({detail})")


def _block_name(lo: int, hi: int) -> str:
    return f"block-{lo:012d}-{hi:012d}.h5"


def _simulate_block(preset: PerovskitePreset, config: GenerateConfig, backend: str, lo: int, hi: int) -> dict:
    from ..simulate import simulate

    structures = preset.sample(hi - lo, config.seed, lo)
    rods = simulate(structures, preset.grid, backend=backend, dtype=config.dtype, threads=config.threads)
    params = {f"params/{k}": np.asarray(v, np.float64) for k, v in preset.parameters(structures).items()}
    labels = {f"labels/{k}": np.asarray(v, np.float64) for k, v in preset.labels(structures).items()}
    stats = _stats.Stats.of_arrays(rods.intensity, cast(np.ndarray, rods.film_field), preset.grid.bragg, start=lo)
    return {"lo": lo, "hi": hi, "backend": rods.backend, "stats": stats,
            "data": {"intensity": rods.intensity, "film_field": rods.film_field, **params, **labels}}


def _write_block(parts: Path, joiner: _Joiner | _Collector, block: dict, bar) -> None:
    """Block file (temporary name, rename), then the same rows into the joined file (or collector)."""
    lo, hi, data, stats = block["lo"], block["hi"], block["data"], block["stats"]
    final = parts / _block_name(lo, hi)
    temporary = final.with_name(final.name + f".{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as f:
            for name, value in data.items():
                f.create_dataset(name, data=value)
            stats.write(f.create_group("stats"))
            f.attrs.update({"start": lo, "stop": hi, "backend": block["backend"], "complete": True})
        if FSYNC_EACH_BLOCK:
            _fsync(temporary)
        os.replace(temporary, final)
        if FSYNC_EACH_BLOCK:
            _fsync_dir(parts)
    finally:
        if temporary.exists():
            temporary.unlink()
    joiner.add(lo, data, stats, block["backend"])
    bar.update(hi - lo)


def _copy_block(path: Path, joiner: _Joiner, lo: int, hi: int, rows: int = 8192) -> None:
    """Rows [lo, hi) of a finished block (or shard) file into the joined file."""
    try:
        with h5py.File(path, "r") as src:
            first = int(src.attrs.get("start", lo))
            if not first <= lo < hi <= first + src["intensity"].shape[0]:
                raise ValueError(f"{path} does not hold structures [{lo}, {hi})")
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
        raise ValueError(f"{path} is corrupt or truncated ({error})") from None


def _scan_block(path: Path, collector: _Collector, lo: int, hi: int) -> None:
    """join="vds", resuming: a finished block's dataset shapes, statistics and backend (no data are read)."""
    try:
        with h5py.File(path, "r") as src:
            if (int(src.attrs["start"]), int(src.attrs["stop"])) != (lo, hi) or not src.attrs.get("complete"):
                raise ValueError(f"{path} does not hold structures [{lo}, {hi})")
            names: dict[str, tuple[tuple[int, ...], np.dtype]] = {}
            src.visititems(lambda name, obj: names.__setitem__(name, (obj.shape[1:], obj.dtype))
                           if isinstance(obj, h5py.Dataset) and not name.startswith("stats") else None)
            if any(src[name].shape[0] != hi - lo for name in names):
                raise ValueError(f"{path} does not hold structures [{lo}, {hi})")
            collector.add_meta(lo, hi, names, _stats.Stats.read(src["stats"]), src.attrs.get("backend", ""))
    except (OSError, KeyError) as error:
        raise ValueError(f"{path} is corrupt or truncated ({error})") from None


def _range_attrs(n: int, shard: tuple[int, int] | None, start: int, stop: int, dtype: str) -> dict:
    return {"n_total": n, "shard": "" if shard is None else f"{shard[0]}/{shard[1]}", "start": start, "stop": stop,
            "dtype": dtype}


class _Joiner(_BlockTally):
    """The output file under construction (a temporary name): rows added in index order, chunked along n;
    `finish` writes /stats and the attrs, `complete=True` last, fsyncs and renames it into place."""

    def __init__(self, temporary: Path, start: int, stop: int, grid) -> None:
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
        if lo != self.position:
            raise RuntimeError(f"rows must be added in order: expected {self.position}, got {lo}")
        if self.file is None:
            self.file = self._open(data)
        n = len(data["intensity"])
        rows = slice(lo - self.start, lo - self.start + n)
        if set(data) != {name for name in self._names()}:
            raise ValueError(f"structures from {lo} have datasets {sorted(data)}, expected {sorted(self._names())}")
        for name, value in data.items():
            self.file[name][rows] = value
        self.position += n
        self._tally(stats, backend)

    def _names(self) -> list[str]:
        names = []
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
        _fsync(self.temporary)
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




# ------------------------------------------------------------------------------------------------ merge
def merge(shard_files: Sequence[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Join complete shard files into one file covering [0, n) (a copy). Refuses shards of different presets,
    grids, seeds, n or dtypes, and overlapping or missing index ranges."""
    out = Path(out)
    if not shard_files:
        raise ValueError("merge needs at least one shard file")
    if out.exists() and not overwrite:
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir() or not os.access(out.parent, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write to {out.parent}")
    infos = []
    for path in map(Path, shard_files):
        if out.exists() and path.resolve() == out.resolve():
            raise ValueError(f"{path} is both an input and the output")
        with open_complete(path) as f:
            try:
                info = {key: f.attrs.get(key) for key in ("preset", "seed", "n_total", "dtype", "format_version")}
                info["grid"] = {k: f["grid"][k][()] for k in ("h", "k", "L", "bragg")}
                info["grid"].update(dict(f["grid"].attrs))
                first, last = _stats.file_range(f)
                info["backend"] = f.attrs.get("backend", "")
            except (OSError, KeyError) as error:
                raise ValueError(f"{path} is corrupt or not a mamba-ctr dataset ({error})") from None
        if info["n_total"] is None:
            info["n_total"] = last
        infos.append((path, first, last, info))
    reference = infos[0][3]
    for path, _, _, info in infos[1:]:
        for key, what in (("preset", "preset"), ("seed", "seed"), ("n_total", "n"), ("dtype", "dtype")):
            if info[key] != reference[key]:
                raise ValueError(f"{path} has a different {what} than {infos[0][0]} "
                                 f"({info[key]!s:.60} vs {reference[key]!s:.60})")
        g, r = info["grid"], reference["grid"]
        if g.keys() != r.keys() or not all(np.array_equal(g[k], r[k]) for k in g):
            raise ValueError(f"{path} has a different grid than {infos[0][0]}")
    infos.sort(key=lambda item: item[1])
    n = int(reference["n_total"])
    position = 0
    for path, first, last, _ in infos:
        if first < position:
            raise ValueError(f"{path} covers [{first}, {last}), overlapping the range before it (up to {position})")
        if first > position:
            raise ValueError(f"structures [{position}, {first}) are missing (no shard covers them)")
        position = last
    if position != n:
        raise ValueError(f"structures [{position}, {n}) are missing (no shard covers them)")
    attrs = file_attrs(preset=None, seed=int(reference["seed"]))
    attrs["preset"] = reference["preset"]
    attrs.update(_range_attrs(n, None, 0, n, str(reference["dtype"])))
    attrs["merged_from"] = json.dumps([str(p) for p, *_ in infos])
    with h5py.File(infos[0][0], "r") as f:
        grid = read_grid(f["grid"])
    joiner = _Joiner(out.with_name(f".{out.name}.{os.getpid()}.tmp"), 0, n, grid)
    try:
        for path, first, last, _ in infos:
            _copy_block(path, joiner, first, last)
        joiner.finish(attrs)
        _install(joiner.temporary, out, aside=data_dir(out))
        _remove_aside(out)
    except OSError as error:
        raise ValueError(f"merge failed ({error}); {out} was not written") from None
    finally:
        joiner.abort()
    return out


# ------------------------------------------------------------------------------------------------ helpers
def _write_atomic(path: Path, content: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _locked(parts: Path):
    """An exclusive lock on parts/lock, so that two runs never write the same parts at once."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    with open(parts / "lock", "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ValueError(f"another mamba-ctr generate is writing {parts}") from None
        yield


class _NoBar:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def update(self, _n: int) -> None:
        pass


def _progress(total: int, initial: int, quiet: bool, name: str):
    if quiet or not sys.stderr.isatty():
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        return _NoBar()
    return tqdm(total=total, initial=initial, unit=" structures", unit_scale=True, desc=name, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
