"""mamba_ctr.nn.train and `mamba-ctr train`: tiny runs on a tiny generated dataset."""
import csv
import itertools
import json
import math

import pytest

torch = pytest.importorskip("torch")

from mamba_ctr.cli import main  # noqa: E402
from mamba_ctr.errors import InputError  # noqa: E402
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
    assert ck.model.targets == ("real", "imag") and meta["format_version"] == 2

    with pytest.raises(InputError, match="already holds a training run"):  # not overwritten silently
        TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=3, out=out, progress=False)
    with pytest.raises(InputError, match="batch_size"):
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
    twins = load_checkpoint(tmp_path / "paper" / "last").model
    assert twins.targets == ("real", "imag") and set(twins.state_dict()) == {
        f"{name}.{key}" for name in ("real", "imag") for key in twins.real.state_dict()}


def test_train_stream_tiny(tmp_path):
    history = train(TrainConfig(stream="paper-12L", arch="rods", arch_kwargs=SMALL, epochs=1, batch_size=32,
                                samples_per_epoch=64, val_samples=32, pilot_samples=64, out=tmp_path / "s",
                                progress=False))
    assert history[0]["samples_seen"] == 64 and math.isfinite(history[0]["val_mae"])


def test_cli_train(dataset, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["train", "--data", str(dataset), "--arch", "rods", "--widths", "8,16", "--dilations", "1,2",
                 "--epochs", "1", "--out", str(out)]) == 0
    assert json.loads((out / "best.json").read_text())["arch_kwargs"]["bottleneck_dilations"] == [1, 2]
    assert "best validation MAE" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--data", "missing.h5", "--arch", "rods"], "no dataset file"),
    (["--data", "DATA", "--arch", "rods", "--target", "real"], "target both"),
    (["--data", "DATA", "--arch", "paper", "--widths", "8,16"], "widths"),
    (["--data", "DATA", "--arch", "paper", "--dilations", "1,2"], "dilations"),
    (["--data", "DATA", "--arch", "rods", "--dilations", "1,two"], "dilations"),
    (["--data", "DATA", "--arch", "rods", "--dilations", "1,0"], "dilations must be positive"),
    (["--data", "DATA", "--epochs", "0"], "epochs"),
])
def test_cli_train_bad_input(dataset, tmp_path, capsys, argv, message):
    argv = [str(dataset) if a == "DATA" else a for a in argv]
    assert main(["train", *argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err.splitlines()[-1], err  # one line (after argparse's usage for a bad choice)


def test_one_cycle_lr_warms_up_then_anneals():
    from mamba_ctr.nn.train import one_cycle_lr

    assert one_cycle_lr(2e-3, 0.0, 0.1) == pytest.approx(2e-3 / 25)
    assert one_cycle_lr(2e-3, 0.05, 0.1) == pytest.approx((2e-3 / 25 + 2e-3) / 2)
    assert one_cycle_lr(2e-3, 0.1, 0.1) == pytest.approx(2e-3)
    assert one_cycle_lr(2e-3, 0.55, 0.1) == pytest.approx((2e-3 + 2e-7) / 2)
    assert one_cycle_lr(2e-3, 1.0, 0.1) == pytest.approx(2e-7)
    lrs = [one_cycle_lr(1.0, t / 100, 0.1) for t in range(10, 101)]
    assert all(a >= b for a, b in itertools.pairwise(lrs))


def test_train_onecycle_adamw_val_every_and_time_schedule(dataset, tmp_path):
    config = dict(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=2, batch_size=20, optimizer="adamw",
                  weight_decay=0.01, lr=2e-3, schedule="onecycle", val_every=4, progress=False)
    history = train(TrainConfig(out=tmp_path / "steps", **config))
    # 9 batches per epoch: validation after batches 4 and 8 and at the end of each epoch
    assert [(row["epoch"], row["batches"]) for row in history] == [(1, 4), (1, 8), (1, 9), (2, 4), (2, 8), (2, 9)]
    from mamba_ctr.nn.train import one_cycle_lr

    assert history[-1]["lr"] == pytest.approx(one_cycle_lr(2e-3, 17 / 18, 0.05))  # the last step's: nearly annealed
    assert history[0]["lr"] < 2e-3 and max(row["lr"] for row in history) <= 2e-3
    with open(tmp_path / "steps" / "history.csv") as handle:
        assert len(list(csv.DictReader(handle))) == 6
    # a wall-time schedule ends training when its time is spent, annealed, whatever the epochs
    timed = train(TrainConfig(out=tmp_path / "time", schedule_minutes=1e-6, **{**config, "epochs": 30}))
    assert len(timed) == 1 and timed[0]["samples_seen"] == 20 and not timed[0]["complete"]
    assert timed[0]["lr"] == pytest.approx(2e-3 / 25)  # its one step was at progress 0


@pytest.mark.parametrize("field, value, message", [("optimizer", "sgd", "optimizer must be"),
                                                   ("schedule", "cosine", "schedule must be"),
                                                   ("schedule_minutes", 0, r"schedule_minutes must be in \(0, inf\)"),
                                                   ("lr", float("nan"), "lr must be"),
                                                   ("warmup", 1.0, "warmup must be"),
                                                   ("weight_decay", -1, "weight_decay must be")])
def test_train_config_rejects_bad_optimisation_settings(dataset, tmp_path, field, value, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(data=dataset, out=tmp_path, **{field: value})


def test_train_config_owns_the_network_options(dataset, tmp_path):
    config = TrainConfig(data=dataset, arch="rods", widths="8,16", dilations=(1, 2), betas="0.8,0.99", out=tmp_path)
    assert config.widths == (8, 16) and config.betas == (0.8, 0.99)
    assert config.arch_kwargs == {"widths": [8, 16], "bottleneck_dilations": [1, 2]}
    assert TrainConfig(**{**vars(config), "widths": (8, 16)}).arch_kwargs == config.arch_kwargs
    for kwargs, message in [({"arch": "paper", "widths": "8,16"}, "widths is for arch rods"),
                            ({"arch": "rods", "dilations": "1,two"}, "dilations must be comma-separated int"),
                            ({"arch": "rods", "dilations": ()}, "dilations must be positive"),
                            ({"arch": "rods", "arch_kwargs": {"depth": 3}}, "depth"),
                            ({"arch": "paper", "arch_kwargs": {"base": 0}}, "arch paper"),
                            ({"arch": "transformer"}, "unknown architecture"),
                            ({"device": "tpu"}, "device must be"), ({"betas": (0.9,)}, "betas must be two")]:
        with pytest.raises(InputError, match=message):
            TrainConfig(data=dataset, out=tmp_path, **kwargs)
    with pytest.raises(InputError, match="nothing to resume"):
        TrainConfig(data=dataset, out=tmp_path, resume=True)
    with pytest.raises(InputError, match="exactly one of data"):
        TrainConfig(out=tmp_path)


def test_a_nan_loss_is_a_runtime_error_not_bad_input(dataset, tmp_path, monkeypatch):
    from mamba_ctr.nn import RodsUNet1d

    forward = RodsUNet1d.forward
    monkeypatch.setattr(RodsUNet1d, "forward", lambda self, x: forward(self, x) * float("nan"))
    with pytest.raises(RuntimeError, match="training diverged: the loss is nan at step 1"):
        train(TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=1, out=tmp_path / "nan",
                          progress=False))


def test_predict_field_and_export_round_trip(dataset, tmp_path):
    import numpy as np

    from mamba_ctr.data.hdf5 import read_rods
    from mamba_ctr.nn.checkpoint import export_checkpoint
    from mamba_ctr.nn.predict import predict_field

    train(TrainConfig(data=dataset, arch="rods", arch_kwargs=SMALL, epochs=1, batch_size=60, out=tmp_path / "run",
                      progress=False))
    checkpoint = load_checkpoint(tmp_path / "run" / "best")
    from mamba_ctr.simulate import network_input

    grid, intensity, _, _ = read_rods(dataset)
    intensity = intensity[:5]
    U = predict_field(checkpoint, intensity)
    assert U.shape == (5, 16, 240) and U.dtype == np.complex128 and np.all(np.isfinite(U))
    # the networks' outputs, de-standardised: the same as running the model by hand
    x = torch.from_numpy(checkpoint.normalisation.apply_x(network_input(intensity.astype(float), grid.bragg)))
    with torch.no_grad():
        y = checkpoint.model(x).double().numpy()
    np.testing.assert_allclose(U, checkpoint.normalisation.invert_targets(y[:, 0], y[:, 1]), rtol=1e-5,
                               atol=1e-6 * np.abs(U).max())
    meta = export_checkpoint(tmp_path / "run" / "best", tmp_path / "shipped" / "m", extra={"test_mae": 0.5})
    shipped = load_checkpoint(meta)
    assert json.loads(meta.read_text())["weights_dtype"] == "float16" and shipped.metadata["test_mae"] == 0.5
    half = predict_field(shipped, intensity)
    assert np.abs(half - U).max() < 0.02 * np.abs(U).max()  # float16 weights change U by well under 2 %
    with pytest.raises(ValueError, match="on the model's grid"):
        predict_field(checkpoint, intensity[:, :, :100])
    with pytest.raises(ValueError, match="finite and > 0"):
        predict_field(checkpoint, -intensity)
