"""The block pipeline of `generate`: block i + 1 is simulated while block i is written.

Each block of `block_size` structures (the first one FIRST_BLOCK at most, so that the first data land within a
second) is sampled, simulated and summarised (/stats) in the calling thread, then handed to one writer thread
that writes its block file (temporary name, the rods by direct I/O from the kernel's buffers, fsync, rename) and
passes the rows to the joiner ("copy": appended to the joined file; "vds": only their shapes and statistics are
collected). At most two blocks are in memory and in flight. Finished blocks (already in FILE.h5.parts/) are only
scanned or copied.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, cast

import h5py
import numpy as np
from tqdm import tqdm

from .._files import atomic_path, drop_cached_pages, fsync_dir, fsync_file
from . import stats as _stats
from .direct_write import aligned_empty, write_h5
from .generate_config import GenerateConfig
from .hdf5 import file_attrs
from .join import (
    Collector,
    Joiner,
    block_name,
    copy_block,
    data_dir,
    install,
    range_attrs,
    remove_aside,
    scan_block,
    write_vds,
)

if TYPE_CHECKING:
    from ..families import Family
    from ..physics import Structures

FIRST_BLOCK = 1024  # the first block's size at most: the first data (and progress) land within a second
FSYNC_EACH_BLOCK = True  # fsync each block file when written (True) or all of them once at the end (False)
STALE = ("*.tmp", ".*.tmp.*")  # temporary files a killed run may leave in FILE.h5.parts/


def generate_blocks(config: GenerateConfig, preset: Family, backend: str, parts: Path,
                    out: Path, token: str) -> None:
    """Simulate the blocks of `config` missing from `parts`, join all of them and put the output in place."""
    start, stop = config.index_range
    blocks = block_ranges(start, stop, config.block_size)
    done = {b for b in blocks if (parts / block_name(*b)).is_file()}
    attrs = file_attrs(preset=preset.to_dict(), seed=config.seed)
    attrs.update(range_attrs(config.n, config.shard, start, stop, config.dtype))
    temporary = parts / "join.tmp"
    joiner: Joiner | Collector = (Joiner(temporary, start, stop, preset.grid) if config.join == "copy"
                                  else Collector(start, preset.grid))
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="mamba-ctr-writer") as writer, \
                ThreadPoolExecutor(1, thread_name_prefix="mamba-ctr-sampler") as sampler, \
                tqdm(total=stop - start, initial=sum(b - a for a, b in done), unit=" structures", unit_scale=True,
                     desc=preset.name, file=sys.stderr, dynamic_ncols=True, smoothing=0.1,
                     disable=True if config.quiet else None) as bar:
            pending: Future[None] | None = None
            # the structures of the next block are sampled in a thread while the kernel runs (numpy's draws
            # release the GIL; sampling alone is a third of a block's time on one core)
            todo = [b for b in blocks if b not in done]
            following = dict(itertools.pairwise(todo))

            def draw(block: tuple[int, int]) -> Future[Structures]:
                return sampler.submit(preset.sample, block[1] - block[0], config.seed, block[0])

            drawn = {b: draw(b) for b in todo[:1]}
            # two sets of rod buffers, used in turn: block i + 1 is simulated into one while block i is written
            # from the other (fresh arrays per block cost their page faults, ~0.3 s of CPU per 8192 structures)
            buffers = [_rod_buffers(config, preset, blocks), _rod_buffers(config, preset, blocks)]
            for k, (lo, hi) in enumerate(blocks):
                if (lo, hi) in done:
                    scan: Callable[..., None] = copy_block if config.join == "copy" else scan_block
                    job = partial(scan, parts / block_name(lo, hi), joiner, lo, hi)
                else:
                    structures = drawn.pop((lo, hi)).result()
                    if (lo, hi) in following:
                        drawn[following[lo, hi]] = draw(following[lo, hi])
                    simulated = simulate_block(preset, config, backend, lo, hi, buffers[k % 2], structures)
                    job = partial(write_block, parts, joiner, simulated, bar)
                if pending is not None:
                    pending.result()
                pending = writer.submit(job)
            cast("Future[None]", pending).result()
        if config.join == "copy":
            cast(Joiner, joiner).finish(attrs)
            install(temporary, out, aside=data_dir(out))
            shutil.rmtree(parts)
        else:
            if not FSYNC_EACH_BLOCK:
                for block in blocks:
                    fsync_file(parts / block_name(*block))
                fsync_dir(parts)
            write_vds(temporary, data_dir(out), blocks, cast(Collector, joiner), attrs, token)
            install(temporary, out, aside=data_dir(out), parts=parts)
            (data_dir(out) / "lock").unlink(missing_ok=True)  # the run is over (our lock handle stays valid)
        remove_aside(out)
    finally:
        joiner.abort()
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()


def block_ranges(start: int, stop: int, block_size: int) -> list[tuple[int, int]]:
    """[lo, hi) of the blocks of structures [start, stop): a first block of min(block_size, FIRST_BLOCK), then
    blocks of block_size (the last one shorter). The data do not depend on it; the block files' names do."""
    first = min(start + min(block_size, FIRST_BLOCK), stop)
    blocks = [(start, first)] if first > start else []
    return blocks + [(lo, min(stop, lo + block_size)) for lo in range(first, stop, block_size)]


def _rod_buffers(config: GenerateConfig, preset: Family,
                 blocks: list[tuple[int, int]]) -> tuple[np.ndarray, np.ndarray]:
    """(intensity, film_field) arrays for the largest block, page-aligned, allocated lazily by the OS (pages on
    first use)."""
    size = max((hi - lo for lo, hi in blocks), default=0)
    real = np.dtype(config.dtype)
    return (aligned_empty((size, *preset.grid.shape), real),  # page-aligned: written by direct I/O
            aligned_empty((size, *preset.grid.shape), np.complex64 if real == np.float32 else np.complex128))


def simulate_block(preset: Family, config: GenerateConfig, backend: str, lo: int, hi: int,
                   buffers: tuple[np.ndarray, np.ndarray] | None = None, structures: Structures | None = None) -> dict:
    """Structures [lo, hi) (sampled here unless given): their rods (into the leading rows of `buffers` if
    given), parameters, labels and statistics."""
    from ..simulate import simulate

    if structures is None:
        structures = preset.sample(hi - lo, config.seed, lo)
    rows = slice(0, hi - lo)
    rods = simulate(structures, preset.grid, backend=backend, dtype=config.dtype, threads=config.threads,
                    point_moments=True, out_intensity=None if buffers is None else buffers[0][rows],
                    out_film_field=None if buffers is None else buffers[1][rows])
    params = {f"params/{k}": np.asarray(v, np.float64) for k, v in preset.parameters(structures).items()}
    labels = {f"labels/{k}": np.asarray(v, np.float64) for k, v in preset.labels(structures).items()}
    if rods.point_moments is not None:  # accumulated by the kernel while each structure was in cache
        stats = _stats.Stats.of_point_moments(hi - lo, *rods.point_moments, start=lo)
    else:
        stats = _stats.Stats.of_arrays(rods.intensity, cast(np.ndarray, rods.film_field), preset.grid.bragg,
                                       start=lo)
    return {"lo": lo, "hi": hi, "backend": rods.backend, "stats": stats,
            "data": {"intensity": rods.intensity, "film_field": rods.film_field, **params, **labels}}


def write_block(parts: Path, joiner: Joiner | Collector, block: dict, bar: tqdm) -> None:
    """Block file (temporary name, rename), then the same rows into the joined file (or collector)."""
    lo, hi, data, stats = block["lo"], block["hi"], block["data"], block["stats"]
    path = parts / block_name(lo, hi)

    def finish(f: h5py.File) -> None:
        stats.write(f.create_group("stats"))
        f.attrs.update({"start": lo, "stop": hi, "backend": block["backend"], "complete": True})

    with atomic_path(path, fsync=FSYNC_EACH_BLOCK) as temporary:
        write_h5(temporary, data, finish)  # the rods straight from the kernel's buffers (direct I/O)
    if FSYNC_EACH_BLOCK:  # its pages are clean now: dropping them keeps the page cache from growing by the dataset
        drop_cached_pages(path)
    joiner.add(lo, data, stats, block["backend"])
    bar.update(hi - lo)
