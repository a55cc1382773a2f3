"""mamba_ctr.nn.train and `mamba-ctr train`: tiny runs on a tiny generated dataset."""
import csv
import json
import math

import pytest

torch = pytest.importorskip("torch")

from mamba_ctr.cli import main  # noqa: E402
from mamba_ctr.nn.checkpoint import load_checkpoint  # noqa: E402
from mamba_ctr.nn.train import TrainConfig, train  # noqa: E402

SMALL = {"widths": [8, 16]}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from mamba_ctr.data.generate import GenerateConfig, generate

    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    generate(GenerateConfig(out=path, n=200, seed=3, quiet=True, threads=2))
    return path


def test_train_writes_checkpoints_curves_and_resumes(dataset, tmp_path):
    out = tmp_path / "run"
    history = train(TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=2, batch_size=32, out=out,
                                progress=False))
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(row["complete"] for row in history)
    assert all(math.isfinite(row["val_mae"]) and row["val_mae"] > 0 for row in history)
    assert history[-1]["samples_seen"] == 2 * 180  # 90 % of 200
    for name in ("best.json", "last.json", "last.optim.pt", "history.csv", "loss.png"):
        assert (out / name).is_file(), name
    assert (out / "best.safetensors").is_file() or (out / "best.pt").is_file()
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    meta = json.loads((out / "last.json").read_text())
    assert meta["architecture"] == "rods" and meta["preset"]["name"] == "paper-12L"
    assert len(meta["history"]) == 2
    ck = load_checkpoint(out / "best", preset="paper-12L")
    assert set(ck.models) == {"both"}

    with pytest.raises(FileExistsError):  # an existing run is not overwritten silently
        train(TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=3, out=out, progress=False))
    with pytest.raises(ValueError, match="batch_size"):
        train(TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=3, batch_size=16, out=out,
                          resume=True, progress=False))
    resumed = train(TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=3, out=out, resume=True,
                                progress=False))
    assert [row["epoch"] for row in resumed] == [1, 2, 3]
    assert resumed[:2] == history
    assert resumed[-1]["samples_seen"] == 3 * 180


def test_train_budget_stops_mid_epoch_and_resumes_there(dataset, tmp_path):
    out = tmp_path / "budget"
    config = dict(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=1, batch_size=8, out=out, progress=False)
    history = train(TrainConfig(max_minutes=1e-6, **config))
    assert len(history) == 1 and not history[0]["complete"] and history[0]["batches"] == 1
    history = train(TrainConfig(resume=True, **config))
    assert history[-1]["complete"] and history[-1]["batches"] == 23  # ceil(180 / 8)
    assert history[-1]["samples_seen"] == 180


def test_train_paper_twins_one_step(dataset, tmp_path):
    history = train(TrainConfig(data=dataset, arch="paper", arch_kwargs={"base": 4}, epochs=1, batch_size=64,
                                out=tmp_path / "paper", progress=False))
    row = history[0]
    assert math.isfinite(row["val_mae_real"]) and math.isfinite(row["val_mae_imag"])
    assert set(load_checkpoint(tmp_path / "paper" / "last").models) == {"real", "imag"}


def test_train_stream_tiny(tmp_path):
    history = train(TrainConfig(stream="paper-12L", arch="rods", arch_kwargs=SMALL, epochs=1, batch_size=32,
                                samples_per_epoch=64, val_samples=32, pilot_samples=64, out=tmp_path / "s",
                                progress=False))
    assert history[0]["samples_seen"] == 64 and math.isfinite(history[0]["val_mae"])


def test_cli_train(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "--data", str(dataset), "--arch", "rods", "--widths", "8,16", "--epochs", "1",
                 "--out", str(out)]) == 0
    assert (out / "best.json").is_file()
    assert "best validation MAE" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--data", "missing.h5", "--arch", "rods"], "no dataset file"),
    (["--data", "DATA", "--arch", "transformer"], "unknown architecture"),
    (["--data", "DATA", "--arch", "rods", "--target", "real"], "target both"),
    (["--data", "DATA", "--arch", "paper", "--widths", "8,16"], "--widths"),
    (["--data", "DATA", "--epochs", "0"], "epochs"),
])
def test_cli_train_bad_input(dataset, tmp_path, capsys, argv, message):
    argv = [str(dataset) if a == "DATA" else a for a in argv]
    assert main(["train", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
