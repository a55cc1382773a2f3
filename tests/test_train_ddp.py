"""torchrun + DistributedDataParallel on the CPU (gloo), 2 processes: the same training as one process with the
global batch, since DDP averages the ranks' gradients (the paper network has no batch norm, so it is exact up to
float round-off)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import mamba_ctr  # noqa: E402
from mamba_ctr.nn.checkpoint import load_checkpoint  # noqa: E402
from mamba_ctr.nn.train import TrainConfig, train  # noqa: E402

SCRIPT = """
import sys
from mamba_ctr.nn.train import TrainConfig, train
data, out, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
train(TrainConfig(data=data, arch="paper", arch_kwargs={"base": 4}, target="real", epochs=1, batch_size=batch,
                  val_fraction=0.12, out=out, progress=False, threads=1, val_every=10))
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from mamba_ctr.data.generate import GenerateConfig, generate

    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    generate(GenerateConfig(out=path, n=200, seed=5, quiet=True, threads=2))
    return path  # 176 training structures (22 global batches of 8), 24 for validation


def test_torchrun_two_gloo_ranks_match_one_process(dataset, tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    env = dict(os.environ, PYTHONPATH=str(Path(mamba_ctr.__file__).parent.parent), OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(script), str(dataset), str(tmp_path / "ddp"), "4"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]

    history = train(TrainConfig(data=dataset, arch="paper", arch_kwargs={"base": 4}, target="real", epochs=1,
                                batch_size=8, val_fraction=0.12, out=tmp_path / "one", progress=False, threads=1,
                                val_every=10))
    ddp = load_checkpoint(tmp_path / "ddp" / "last")
    one = load_checkpoint(tmp_path / "one" / "last")
    assert [row["samples_seen"] for row in ddp.history] == [row["samples_seen"] for row in history] == [80, 160, 176]
    for row_ddp, row_one in zip(ddp.history, history, strict=True):
        assert row_ddp["val_mae"] == pytest.approx(row_one["val_mae"], rel=1e-4)
    assert ddp.model.targets == ("real",)
    for (name, a), b in zip(ddp.model.state_dict().items(), one.model.state_dict().values(), strict=True):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
