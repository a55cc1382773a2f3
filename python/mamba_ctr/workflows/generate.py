"""Simulate n structures of a preset into one HDF5 file (layout version 1): crash-safe (finished blocks survive
a kill; --resume continues), deterministic, shardable; optionally on a Dask cluster."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..data.generate_config import GenerateConfig, parse_shard
from ..errors import InputError
from ._common import Result, user_path

__all__ = ["Config", "run"]


@dataclass
class Config(GenerateConfig):
    """GenerateConfig (which owns the dataset's options) and where to run it."""

    # the command line gives a shard as "i/K"
    shard: tuple[int, int] | None = field(default=None, metadata={
        "help": "i/K: write shard i of K (index range [i*n//K, (i+1)*n//K))", "type": parse_shard})
    dask: str | None = field(default=None, metadata={
        "help": "generate the shards on a Dask cluster (tcp://host:8786, or 'local' for a LocalCluster on this "
                "machine's cores, one single-threaded worker per core), then merge them into --out "
                "(needs the dask extra)"})
    dask_shards: int | None = field(default=None, metadata={
        "help": "shard jobs for --dask (default: the cluster's worker threads)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.out.suffix.lower() not in (".h5", ".hdf5"):  # x.txt would be an HDF5 file under a wrong name
            raise InputError(f"out must be an HDF5 file name ending in .h5 or .hdf5, got {self.out}")
        if self.dask_shards is not None and self.dask is None:
            raise InputError("--dask-shards needs --dask ADDRESS")
        if self.dask == "local" and self.threads == 0:
            self.threads = 1  # one single-threaded worker process per core


def run(config: Config) -> Result:
    """Generate the dataset; `Result.value` is the output path."""
    from ..data.generate import generate

    with user_path(config.out):
        if config.dask is None:
            out = generate(config)
        else:
            from ..data.dask_generate import connect, generate_on_dask

            with connect(config.dask) as client:
                out = generate_on_dask(config, client, shards=config.dask_shards)
    start, stop = config.index_range
    return Result(out, "" if config.quiet else f"wrote structures [{start}, {stop}) of {config.n} to {out}")
