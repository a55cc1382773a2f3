"""Dataset generation on a Dask cluster (the optional `dask` extra: pip install "mamba-ctr[dask]").

    from distributed import Client
    from mamba_ctr.data.generate import GenerateConfig
    from mamba_ctr.data.dask_generate import generate_on_dask

    with Client("tcp://scheduler:8786") as client:
        generate_on_dask(GenerateConfig(out="train.h5", n=10**7, seed=0), client, shards=64)

Each of the K shard jobs runs the ordinary shard generation (`generate(config with shard=(i, K))`, crash-safe
and resumable) into FILE.h5.shards/shard-<i>-of-<K>.h5, so the workers must share the file system of the
output. When all are done the shards are merged (a copy, `merge`) into config.out, which is then bitwise the
same as a single-process run (structure i depends only on (preset, seed, i)), and FILE.h5.shards/ is removed.
A failed or interrupted run keeps the finished shards: run it again with resume=True (--resume) and only the
missing ones are generated.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import sys
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from ..errors import InputError
from ..families import resolve as resolve_preset
from .generate import GenerateConfig, check_output, data_dir, generate, merge, parts_dir
from .hdf5 import is_complete


def shards_dir(out: Path) -> Path:
    """FILE.h5.shards/: the shard files of a Dask run (removed once merged)."""
    return out.with_name(out.name + ".shards")


def shard_configs(config: GenerateConfig, shards: int) -> list[GenerateConfig]:
    """The K shard jobs of `config` (each writes its own file in FILE.h5.shards/)."""
    directory = shards_dir(config.out)
    width = max(5, len(str(shards)))
    return [dataclasses.replace(config, out=directory / f"shard-{i:0{width}d}-of-{shards:0{width}d}.h5",
                                shard=(i, shards), overwrite=False, resume=False, quiet=True, join="vds")
            for i in range(shards)]


def run_shard(config: GenerateConfig) -> tuple[int, int]:
    """A shard job (runs on a worker): generate the shard, resuming an interrupted one, skipping a finished one.
    Returns its index range."""
    if config.out.is_file() and is_complete(config.out):
        return config.index_range
    resume = parts_dir(config.out).exists() or data_dir(config.out).exists()
    generate(dataclasses.replace(config, resume=resume))
    return config.index_range


def generate_on_dask(config: GenerateConfig, client, shards: int | None = None) -> Path:
    """Generate `config` (the whole index range) as `shards` jobs on the Dask `client`, wait (with a progress
    bar over shards unless config.quiet), then merge them into config.out. `shards` defaults to the cluster's
    total worker threads. Returns config.out."""
    from distributed import as_completed

    if config.shard is not None:
        raise InputError("generate_on_dask makes the whole dataset: do not set shard (use shards=K)")
    if shards is None:
        shards = max(1, sum(client.nthreads().values()))
    if isinstance(shards, bool) or not isinstance(shards, int) or not 1 <= shards <= config.n:
        raise InputError(f"shards must be an integer in [1, n = {config.n}], got {shards!r}")
    resolve_preset(config.preset)  # a bad preset is an error here, not in K jobs
    out = config.out
    check_output(out, dataclasses.replace(config, resume=False))
    directory = shards_dir(out)
    if directory.exists() and not config.resume:
        if not config.overwrite:
            raise FileExistsError(f"{directory} holds an interrupted Dask run; pass --resume to continue it "
                                  "or --overwrite to start again")
        shutil.rmtree(directory)
    directory.mkdir(exist_ok=True)
    jobs = shard_configs(config, shards)
    futures = client.map(run_shard, jobs, key=[f"mamba-ctr-shard-{os.getpid()}-{i}-of-{shards}"
                                               for i in range(shards)], pure=False, retries=0)
    try:
        with tqdm(total=shards, unit=" shards", desc=f"{Path(out).name} shards",
                  file=sys.stderr, dynamic_ncols=True, smoothing=0.1, disable=True if config.quiet else None) as bar:
            for future in as_completed(futures):
                if future.status == "error":
                    error = future.exception()
                    raise RuntimeError(f"a shard job failed ({type(error).__name__}: {error}); "
                                       "finished shards are kept, pass --resume to continue") from None
                future.result()
                bar.update(1)
    except BaseException:
        client.cancel(futures)
        raise
    merge([job.out for job in jobs], out, overwrite=config.overwrite)
    shutil.rmtree(directory)
    return out


def connect(address: str):
    """A distributed Client for ADDRESS (tcp://host:8786 …), or for a LocalCluster with one single-threaded
    worker process per available core when ADDRESS is "local". Use it as a context manager."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise ImportError('--dask needs the dask extra: pip install "mamba-ctr[dask]"') from None
    if address == "local":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, dashboard_address=":0")
        return _LocalClient(Client(cluster), cluster)
    try:
        return Client(address, timeout="20s")
    except (OSError, ValueError) as error:  # TimeoutError is an OSError
        raise InputError(f"cannot connect to the Dask scheduler at {address!r} ({error})") from None


class _LocalClient:
    """A Client and the LocalCluster it owns, closed together."""

    def __init__(self, client, cluster) -> None:
        self.client, self.cluster = client, cluster

    def __enter__(self):
        return self.client

    def __exit__(self, *exc) -> Literal[False]:
        self.client.close()
        self.cluster.close()
        return False
