"""What `generate` makes: `GenerateConfig` (defaults, help, validation) and the shard ranges."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._backend import BACKENDS as _KERNELS
from ..errors import InputError

JOINS = ("vds", "copy")
DTYPES = ("float32", "float64")
BACKENDS = ("auto", *_KERNELS)


@dataclass
class GenerateConfig:
    """What `generate` makes; each field's help is in its metadata (the command line's --help and --config TOML
    come from the fields). Bad values raise InputError."""

    out: Path = field(metadata={"help": "output file FILE.h5 (FILE.h5.parts/ beside it while running)"})
    preset: str = field(default="paper-12L", metadata={
        "help": 'preset name, or a TOML file: base = "paper-12L" plus overrides of n_sub, film_layers, rough_top, '
                "delta_c, delta_z, occupancy_range (optionally name, description)"})
    n: int = field(default=1000, metadata={"help": "structures in the whole dataset (all shards together)"})
    seed: int = field(default=0, metadata={"help": "sampling seed: structure i depends only on (preset, seed, i)"})
    shard: tuple[int, int] | None = field(default=None, metadata={
        "help": "i/K: write shard i of K, the index range [i*n//K, (i+1)*n//K) (default: all of [0, n))"})
    block_size: int = field(default=8192, metadata={
        "help": "structures per block file and kernel call (bounds the memory in use; the first block has "
                "1024 at most)"})
    dtype: str = field(default="float32", metadata={
        "help": "precision: float32 (intensity float32, film_field complex64) or float64", "choices": DTYPES})
    threads: int = field(default=0, metadata={"help": "kernel threads (0: the runtime default, all cores)"})
    backend: str = field(default="auto", metadata={"help": "simulation backend", "choices": BACKENDS})
    overwrite: bool = field(default=False, metadata={
        "help": "replace an existing output (only once the new one is complete) and discard old parts"})
    resume: bool = field(default=False, metadata={"help": "continue an interrupted run from its FILE.h5.parts/"})
    quiet: bool = field(default=False, metadata={"help": "no progress bar"})
    join: str = field(default="vds", metadata={
        "help": "vds: FILE.h5 holds virtual datasets over the block files kept in FILE.h5.data/ (data written "
                "once; move both together); copy: one self-contained FILE.h5 (data written twice)",
        "choices": JOINS})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if isinstance(self.shard, str):
            self.shard = parse_shard(self.shard)
        elif self.shard is not None:
            self.shard = _check_shard(tuple(self.shard))
        for name, minimum in (("n", 1), ("seed", 0), ("block_size", 1), ("threads", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
                raise InputError(f"{name} must be an integer ≥ {minimum}, got {value!r}")
            setattr(self, name, int(value))
        for name, allowed in (("dtype", DTYPES), ("backend", BACKENDS), ("join", JOINS)):
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}")
        if self.shard is not None and self.index_range[0] == self.index_range[1]:
            raise InputError(f"shard {self.shard[0]}/{self.shard[1]} of n = {self.n} holds no structures "
                             "(use at most n shards)")
        if self.overwrite and self.resume:
            raise InputError("--overwrite and --resume exclude each other")

    @property
    def index_range(self) -> tuple[int, int]:
        """[start, stop) of the global index range this run writes."""
        return shard_range(self.n, self.shard)


def parse_shard(spec: str) -> tuple[int, int]:
    """ "i/K" → (i, K) with 0 ≤ i < K."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", str(spec))
    if not match:
        raise InputError(f"shard must be i/K with integers 0 ≤ i < K (e.g. 3/16), got {spec!r}")
    return _check_shard((int(match[1]), int(match[2])))


def _check_shard(shard: tuple) -> tuple[int, int]:
    if len(shard) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in shard):
        raise InputError(f"shard must be (i, K) integers, got {shard!r}")
    i, K = int(shard[0]), int(shard[1])
    if not 0 <= i < K:
        raise InputError(f"shard i/K needs 0 ≤ i < K, got {i}/{K}")
    return i, K


def shard_range(n: int, shard: tuple[int, int] | None) -> tuple[int, int]:
    """[i·n//K, (i+1)·n//K): the K shards partition [0, n) into contiguous ranges."""
    if shard is None:
        return 0, n
    i, K = shard
    return i * n // K, (i + 1) * n // K
