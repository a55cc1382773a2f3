"""Dataset generation on a Dask cluster (optional `dask` extra): the same file as a single-process run."""

from __future__ import annotations

import json

import h5py
import pytest

distributed = pytest.importorskip("distributed")

from mamba_ctr.cli import main  # noqa: E402
from mamba_ctr.data.dask_generate import generate_on_dask, shards_dir  # noqa: E402
from mamba_ctr.data.generate import GenerateConfig, generate  # noqa: E402
from test_generate import contents  # noqa: E402  (every dataset as bytes, stats aside)

N = 120


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") \
            as cluster, distributed.Client(cluster) as client:
        yield client


def test_dask_run_is_identical_to_a_single_run(tmp_path, client):
    single = generate(GenerateConfig(out=tmp_path / "single.h5", n=N, seed=4, block_size=32, threads=1, quiet=True))
    out = tmp_path / "dask.h5"
    config = GenerateConfig(out=out, n=N, seed=4, block_size=25, threads=1, quiet=True)
    assert generate_on_dask(config, client, shards=3) == out
    assert contents(out) == contents(single)
    assert not shards_dir(out).exists()
    with h5py.File(out) as f:
        assert f.attrs["complete"] and (f.attrs["start"], f.attrs["stop"]) == (0, N)
        assert len(json.loads(f.attrs["merged_from"])) == 3
    with pytest.raises(FileExistsError):
        generate_on_dask(config, client, shards=3)
    with pytest.raises(ValueError, match="shards must be"):
        generate_on_dask(GenerateConfig(out=tmp_path / "x.h5", n=5, quiet=True), client, shards=6)


def test_dask_resume_keeps_finished_shards(tmp_path, client):
    out = tmp_path / "r.h5"
    config = GenerateConfig(out=out, n=N, seed=4, block_size=40, threads=1, quiet=True)
    generate_on_dask(config, client, shards=2)
    reference = contents(out)
    out.unlink()
    # as if interrupted: shard 0 finished, shard 1 never started
    from mamba_ctr.data.dask_generate import run_shard, shard_configs

    jobs = shard_configs(config, 2)
    shards_dir(out).mkdir()
    run_shard(jobs[0])
    before = jobs[0].out.stat().st_mtime_ns
    assert run_shard(jobs[0]) == (0, N // 2) and jobs[0].out.stat().st_mtime_ns == before  # complete: skipped
    with pytest.raises(FileExistsError, match="--resume"):
        generate_on_dask(config, client, shards=2)
    generate_on_dask(GenerateConfig(out=out, n=N, seed=4, block_size=40, threads=1, quiet=True, resume=True),
                     client, shards=2)
    assert contents(out) == reference
    assert not shards_dir(out).exists()


def test_cli_dask_local(tmp_path):
    out = tmp_path / "cli.h5"
    single = tmp_path / "single.h5"
    assert main(["generate", "--out", str(single), "--n", "40", "--seed", "2", "--quiet"]) == 0
    assert main(["generate", "--out", str(out), "--n", "40", "--seed", "2", "--quiet", "--dask", "local",
                 "--dask-shards", "2"]) == 0
    assert contents(out) == contents(single)
    assert main(["generate", "--out", str(tmp_path / "y.h5"), "--n", "4", "--dask-shards", "2"]) == 2
