"""Dataset generation: sharded, resumable, deterministic HDF5 (layout version 1, architecture.md).

    FILE.h5          written at the very end (temporary name, renamed), `complete=True` written last
    FILE.h5.parts/   while running: manifest.json (written first) and one HDF5 file per finished block
                     (block-<start>-<stop>.h5, written to a temporary name, fsync'd, renamed when complete)

A killed run (SIGINT, SIGTERM, SIGKILL at any moment) loses at most the block in flight: `resume=True`
checks the manifest, skips the finished blocks and generates the rest. Structure i depends only on
(preset, seed, i), so the data are bitwise the same whatever the thread count, block size or sharding.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from .._version import __version__
from ..physics import presets as _presets
from ..physics.presets import PerovskitePreset
from . import stats as _stats
from .hdf5 import file_attrs, open_complete, read_grid, write_grid

try:  # Python ≥ 3.11
    import tomllib
except ModuleNotFoundError:  # pragma: no cover
    import tomli as tomllib  # type: ignore[no-redef]

MANIFEST = "manifest.json"
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

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.shard, str):
            self.shard = parse_shard(self.shard)
        elif self.shard is not None:
            self.shard = _check_shard(tuple(self.shard))
        for name, minimum in (("n", 1), ("seed", 0), ("block_size", 1), ("threads", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise ValueError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
            setattr(self, name, int(value))
        if self.dtype not in ("float32", "float64"):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype!r}")
        if self.overwrite and self.resume:
            raise ValueError("--overwrite and --resume exclude each other")

    @classmethod
    def from_toml(cls, path: str | os.PathLike, **overrides) -> GenerateConfig:
        """Config from a TOML file; `overrides` (e.g. command-line flags that were given) win."""
        values = load_toml(path)
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


def load_toml(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise FileNotFoundError(f"no such config file: {path}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid TOML ({error})") from None


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


_OVERRIDABLE = ("n_sub", "film_layers", "rough_top", "delta_c", "delta_z", "occupancy_range")


def resolve_preset(spec: str | os.PathLike) -> PerovskitePreset:
    """A built-in preset by name, or a user family from a TOML file (`base` + overrides)."""
    text = str(spec)
    if not text.endswith(".toml"):
        return _presets.get(text)
    values = load_toml(spec)
    if "base" not in values:
        raise ValueError(f"{spec}: a preset file needs base = \"<preset name>\" (e.g. \"paper-12L\")")
    base = _presets.get(str(values.pop("base")))
    unknown = sorted(set(values) - {*_OVERRIDABLE, "name", "description"})
    if unknown:
        raise ValueError(f"{spec}: unknown keys {unknown}; allowed are base, name, description, "
                         f"{', '.join(_OVERRIDABLE)}")
    for key in ("film_layers", "occupancy_range"):
        if key in values:
            if not isinstance(values[key], list) or len(values[key]) != 2:
                raise ValueError(f"{spec}: {key} must be a list of two numbers, got {values[key]!r}")
            values[key] = tuple(values[key])
    values.setdefault("name", f"{base.name}+{Path(spec).stem}")
    values.setdefault("description", f"{base.description} (modified by {Path(spec).name})")
    try:
        return dataclasses.replace(base, **values)
    except TypeError as error:
        raise ValueError(f"{spec}: {error}") from None


# ---------------------------------------------------------------------------------------------- generate
def parts_dir(out: Path) -> Path:
    return out.with_name(out.name + ".parts")


def _manifest(config: GenerateConfig, preset: PerovskitePreset) -> dict:
    start, stop = config.index_range
    return {"format_version": 1, "preset": preset.to_dict(), "seed": config.seed, "n": config.n,
            "shard": list(config.shard) if config.shard else None, "start": start, "stop": stop,
            "dtype": config.dtype, "block_size": config.block_size, "created_by": f"mamba-ctr {__version__}"}


def generate(config: GenerateConfig) -> Path:
    """Write the dataset of `config` to config.out (see the module docstring); returns the path."""
    preset = resolve_preset(config.preset)
    out = config.out
    parts = parts_dir(out)
    start, stop = config.index_range
    manifest = _manifest(config, preset)
    _check_output(out, parts, config)

    if config.overwrite and parts.exists():
        shutil.rmtree(parts)
    if config.resume:
        _check_manifest(parts, manifest)
        for stale in parts.glob("*.tmp"):
            stale.unlink()
    else:
        try:
            parts.mkdir()
        except OSError as error:
            raise ValueError(f"cannot write next to {out} ({error.strerror or error})") from None
        _write_atomic(parts / MANIFEST, json.dumps(manifest, indent=2).encode())

    blocks = [(lo, min(stop, lo + config.block_size)) for lo in range(start, stop, config.block_size)]
    done = {b for b in blocks if (parts / _block_name(*b)).is_file()}
    todo = [b for b in blocks if b not in done]
    with _progress(stop - start, sum(b - a for a, b in done), config.quiet, preset.name) as bar:
        for lo, hi in todo:
            _write_block(parts, preset, config, lo, hi)
            bar.update(hi - lo)

    attrs = file_attrs(preset=preset.to_dict(), seed=config.seed)
    attrs.update(_range_attrs(config.n, config.shard, start, stop, config.dtype))
    _join([(parts / _block_name(lo, hi), lo, hi) for lo, hi in blocks], out, parts / "join.tmp", attrs,
          grid_from=preset.grid)
    shutil.rmtree(parts)
    return out


def _check_output(out: Path, parts: Path, config: GenerateConfig) -> None:
    if out.is_dir():
        raise ValueError(f"--out must be a file path, got the directory {out}")
    if out.exists() and not config.overwrite:
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


def _write_block(parts: Path, preset: PerovskitePreset, config: GenerateConfig, lo: int, hi: int) -> None:
    from ..simulate import simulate

    structures = preset.sample(hi - lo, config.seed, lo)
    rods = simulate(structures, preset.grid, backend=config.backend, dtype=config.dtype, threads=config.threads)
    final = parts / _block_name(lo, hi)
    temporary = final.with_name(final.name + f".{os.getpid()}.tmp")
    try:
        with h5py.File(temporary, "w") as f:
            f.create_dataset("intensity", data=rods.intensity)
            f.create_dataset("film_field", data=rods.film_field)
            for group, values in (("params", preset.parameters(structures)), ("labels", preset.labels(structures))):
                g = f.create_group(group)
                for name, value in values.items():
                    g.create_dataset(name, data=np.asarray(value, dtype=np.float64))
            f.attrs.update({"start": lo, "stop": hi, "backend": rods.backend, "complete": True})
        _fsync(temporary)
        os.replace(temporary, final)
        _fsync_dir(parts)
    finally:
        if temporary.exists():
            temporary.unlink()


def _range_attrs(n: int, shard: tuple[int, int] | None, start: int, stop: int, dtype: str) -> dict:
    return {"n_total": n, "shard": "" if shard is None else f"{shard[0]}/{shard[1]}", "start": start, "stop": stop,
            "dtype": dtype}


def _join(sources: list[tuple[Path, int, int]], out: Path, temporary: Path, attrs: dict, *,
          grid_from=None, grid_file: Path | None = None, rows: int = 8192) -> Stats:
    """Copy the rows of `sources` [(file, start, stop)] in order into `out` (via `temporary`), chunked
    along n, with /stats, `attrs`, and `complete=True` written last."""
    first, last = sources[0][1], sources[-1][2]
    n = last - first
    with h5py.File(sources[0][0], "r") as f:
        layout = {"intensity": (f["intensity"].shape[1:], f["intensity"].dtype),
                  "film_field": (f["film_field"].shape[1:], f["film_field"].dtype)}
        for group in ("params", "labels"):
            for name, ds in f[group].items():
                layout[f"{group}/{name}"] = (ds.shape[1:], ds.dtype)
        backend = f.attrs.get("backend", "")
    if temporary.exists():
        temporary.unlink()
    total = _stats.Stats.empty(layout["intensity"][0], first)
    with h5py.File(temporary, "w") as dst:
        grid_group = dst.create_group("grid")
        if grid_from is not None:
            write_grid(grid_group, grid_from)
            bragg = grid_from.bragg
        else:
            with h5py.File(grid_file, "r") as g:
                write_grid(grid_group, read_grid(g["grid"]))
                bragg = g["grid/bragg"][()]
        for name, (shape, dtype) in layout.items():
            chunks = (min(CHUNK_ROWS, n), *shape) if shape else None
            dst.create_dataset(name, shape=(n, *shape), dtype=dtype, chunks=chunks)
        for path, lo, hi in sources:
            with h5py.File(path, "r") as src:
                if src["intensity"].shape[0] != hi - lo:
                    raise ValueError(f"{path} holds {src['intensity'].shape[0]} structures, expected {hi - lo}")
                offset = int(src.attrs.get("start", lo))
                for a in range(lo, hi, rows):
                    b = min(hi, a + rows)
                    intensity = src["intensity"][a - offset:b - offset]
                    field = src["film_field"][a - offset:b - offset]
                    dst["intensity"][a - first:b - first] = intensity
                    dst["film_field"][a - first:b - first] = field
                    for name in layout:
                        if name not in ("intensity", "film_field"):
                            dst[name][a - first:b - first] = src[name][a - offset:b - offset]
                    total = total.merge(_stats.Stats.of_arrays(intensity, field, bragg, start=a))
        total.write(dst.create_group("stats"))
        dst.attrs.update(attrs)
        if backend:
            dst.attrs["backend"] = backend
        dst.flush()
        dst.attrs["complete"] = True
    _fsync(temporary)
    os.replace(temporary, out)
    _fsync_dir(out.parent)
    return total


Stats = _stats.Stats


# ------------------------------------------------------------------------------------------------ merge
def merge(shard_files: list[str | os.PathLike], out: str | os.PathLike, *, overwrite: bool = False) -> Path:
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
    temporary = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        _join([(p, a, b) for p, a, b, _ in infos], out, temporary, attrs, grid_file=infos[0][0])
    except (OSError, KeyError) as error:
        raise ValueError(f"merge failed ({error}); {out} was not written") from None
    finally:
        if temporary.exists():
            temporary.unlink()
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
    return tqdm(total=total, initial=initial, unit="structures", unit_scale=True, desc=name, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
