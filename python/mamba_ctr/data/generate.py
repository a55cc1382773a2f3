"""Dataset generation: sharded, resumable, deterministic HDF5 (layout version 1, architecture.md).

    FILE.h5          written at the very end (temporary name, renamed), `complete=True` written last
    FILE.h5.parts/   while running: manifest.json (written first) and one HDF5 file per finished block
                     (block-<start>-<stop>.h5, written to a temporary name and renamed when complete)
    FILE.h5.data/    join="vds" (default): the parts directory renamed at the end and kept; FILE.h5 holds
                     HDF5 virtual datasets mapping onto its block files (relative paths: move the pair together)

join="copy" copies the blocks into FILE.h5 (one self-contained file, chunked along n) and removes the parts.
Each block file is fsync'd before it is renamed (`pipeline.FSYNC_EACH_BLOCK` = True, the default: measured as fast as
one fsync of all blocks at the end, because the writer thread overlaps it with the kernel). With False the
blocks are fsync'd once, at the end, before the output gets its completion marker: a killed process cannot
lose what the kernel already has, only a power loss or OS crash could then leave a renamed block unwritten.

A killed run (SIGINT, SIGTERM, SIGKILL at any moment) loses at most the blocks in flight (the one being
simulated and the one being written by the writer thread): `resume=True` checks the manifest, skips the
finished blocks and generates the rest, giving the same output as an uninterrupted run. Structure i
depends only on (preset, seed, i), so the data are bitwise the same whatever the thread count, block size or sharding.

The work is split by job: `generate_config` (GenerateConfig, shards), `pipeline` (the blocks: simulate block
i + 1 while block i is written), `join` (vds, copy, merge) and this module (checks, manifest, resume, lock).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import h5py

from .._files import exclusive_lock, fsync_dir, write_text
from .._version import __version__
from ..errors import InputError
from ..families import resolve as resolve_preset
from .generate_config import GenerateConfig, parse_shard, shard_range
from .hdf5 import is_complete
from .join import data_dir, merge, parts_dir, remove_aside
from .pipeline import FIRST_BLOCK, STALE, generate_blocks

if TYPE_CHECKING:
    from ..families import Family

__all__ = ["MANIFEST", "GenerateConfig", "check_output", "data_dir", "generate", "merge", "parse_shard",
           "parts_dir", "resolve_preset", "shard_range"]

MANIFEST = "manifest.json"


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
            if out.is_file() and is_complete(out):
                remove_aside(out)
                return out  # nothing was interrupted
            # killed between renaming the parts to FILE.h5.data and renaming FILE.h5 into place
            os.replace(data, parts)
            fsync_dir(out.parent)
        if out.is_file() and (parts / MANIFEST).is_file():
            _check_manifest(parts, manifest)
            if is_complete(out) and not _owns_data(out):
                # join="copy": killed after the output was renamed into place but before the parts were removed
                shutil.rmtree(parts)
                remove_aside(out)
                return out
            replace_broken = not is_complete(out)  # an output left broken by an interrupted --overwrite
    check_output(out, config, replace_broken)

    if config.overwrite and parts.exists():
        with exclusive_lock(parts, "mamba-ctr generate"):
            shutil.rmtree(parts)
    if config.resume:
        _check_manifest(parts, manifest)
        token = json.loads((parts / MANIFEST).read_text()).get("token", "")
    else:
        try:
            parts.mkdir()
        except OSError as error:
            raise InputError(f"cannot write next to {out} ({error.strerror or error})") from None
        token = uuid.uuid4().hex
        write_text(parts / MANIFEST, json.dumps({**manifest, "token": token}, indent=2))
    with exclusive_lock(parts, "mamba-ctr generate"):
        for stale in (path for pattern in STALE for path in parts.glob(pattern)):
            stale.unlink()
        generate_blocks(config, preset, backend, parts, out, token)
    return out


def check_output(out: Path, config: GenerateConfig, replace_broken: bool = False) -> None:
    """Refuse (InputError, FileExistsError) an output that cannot or must not be written by `config`."""
    parts, data = parts_dir(out), data_dir(out)
    if out.is_dir():
        raise InputError(f"--out must be a file path, got the directory {out}")
    if out.exists() and not (config.overwrite or replace_broken):
        raise FileExistsError(f"{out} exists; pass --overwrite to replace it")
    if not out.parent.is_dir():
        raise InputError(f"directory {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise InputError(f"cannot write to {out.parent} (permission denied)")
    if config.resume and not (parts / MANIFEST).is_file():
        raise InputError(f"nothing to resume: {parts / MANIFEST} does not exist")
    if parts.exists() and not (config.resume or config.overwrite):
        raise FileExistsError(f"{parts} holds an interrupted run; pass --resume to continue it "
                              "or --overwrite to start again")
    if data.exists() and not out.exists() and not config.overwrite:
        raise FileExistsError(f"{data} exists without {out.name} (an interrupted run); pass --resume to complete "
                              "it or --overwrite to start again")


def _manifest(config: GenerateConfig, preset: Family, backend: str) -> dict:
    start, stop = config.index_range
    return {"format_version": 1, "preset": preset.to_dict(), "seed": config.seed, "n": config.n,
            "shard": list(config.shard) if config.shard else None, "start": start, "stop": stop,
            "dtype": config.dtype, "block_size": config.block_size,
            "first_block": min(config.block_size, FIRST_BLOCK), "backend": backend,
            "created_by": f"mamba-ctr {__version__}"}


def _check_manifest(parts: Path, expected: dict) -> None:
    try:
        found = json.loads((parts / MANIFEST).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {parts / MANIFEST} ({error}); use --overwrite to start again") from None
    keys = [k for k in expected if k != "created_by" and found.get(k) != expected[k]]
    if keys:
        detail = "; ".join(f"{k}: run has {found.get(k)!r:.60}, config has {expected[k]!r:.60}" for k in keys)
        raise InputError(f"cannot resume {parts}: it was started with a different configuration ({detail})")


def _owns_data(out: Path) -> bool:
    """Whether the (complete) file maps onto FILE.h5.data/ (join="vds")."""
    with h5py.File(out, "r") as f:
        return "data_token" in f.attrs
