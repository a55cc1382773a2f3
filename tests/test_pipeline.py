"""The chain after training: evaluate, predict (HDF5 and CSV input), compare, study and demo, on tiny cases."""
import csv
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mamba_ctr.cli import main  # noqa: E402
from mamba_ctr.data.generate import GenerateConfig, generate  # noqa: E402
from mamba_ctr.nn.train import TrainConfig, train  # noqa: E402

SMALL = {"widths": [8, 16]}


@pytest.fixture(scope="module")
def model_4L(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "train"
    train(TrainConfig(stream="paper-4L", arch="rods", arch_kwargs=SMALL, epochs=1, batch_size=32,
                      samples_per_epoch=64, val_samples=32, pilot_samples=256, out=out, progress=False))
    return out


@pytest.fixture(scope="module")
def test_4L(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "test4L.h5"
    generate(GenerateConfig(out=path, preset="paper-4L", n=12, seed=9, quiet=True, join="copy"))
    return path


def test_evaluate_writes_metrics_tables_and_figures(model_4L, test_4L, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(model_4L), "--data", str(test_4L), "--n", "10", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["n"] == 10 and report["preset"] == "paper-4L" and report["field_mae"] > 0
    # the extraction itself is near exact from the true field: the ceiling the network is judged against
    reference = report["true_field_extraction"]["r2_per_group"]
    assert min(reference[g] for g in ("c", "B", "O_ap", "O_eq", "p")) > 0.99
    with open(out / "labels.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 * len(report["r2_per_label"])
    for name in ("density_slices", "positions", "scatter", "r2", "field_00"):
        assert (out / f"{name}.png").stat().st_size > 1000
    assert "mean R² per atom type" in capsys.readouterr().out


def test_evaluate_refuses_data_of_another_preset(model_4L, tmp_path, capsys):
    other = tmp_path / "12L.h5"
    generate(GenerateConfig(out=other, preset="paper-12L", n=4, seed=1, quiet=True, join="copy"))
    assert main(["evaluate", "--model", str(model_4L), "--data", str(other), "--n", "4", "--out",
                 str(tmp_path / "e")]) == 2
    assert "trained on preset 'paper-4L'" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(model_4L), "--data", str(other), "--n", "5", "--out",
                 str(tmp_path / "e")]) == 2
    assert "holds 4 structures" in capsys.readouterr().err


def _write_csv(path, grid, intensity, drop=0, shift_L=0.0):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["structure", "L", "h", "k", "intensity"])
        points = [(s, r, i) for s in range(intensity.shape[0]) for r in range(grid.n_rods) for i in range(grid.n_L)]
        rng = np.random.default_rng(0)
        for s, r, i in [points[j] for j in rng.permutation(len(points))][drop:]:  # any order
            writer.writerow([s, f"{grid.L[i] + shift_L:.6f}", grid.h[r], grid.k[r], repr(float(intensity[s, r, i]))])


def test_predict_from_hdf5_and_csv_agree(model_4L, test_4L, tmp_path, capsys):
    from mamba_ctr.data.hdf5 import read_rods

    grid, intensity, _, _ = read_rods(test_4L)
    csv_path = tmp_path / "rods.csv"
    _write_csv(csv_path, grid, intensity[:2])
    assert main(["predict", "--model", str(model_4L), "--input", str(test_4L), "--out", str(tmp_path / "h5")]) == 0
    assert main(["predict", "--model", str(model_4L), "--input", str(csv_path), "--out", str(tmp_path / "csv")]) == 0
    from_h5 = json.loads((tmp_path / "h5" / "structure.json").read_text())["structures"]
    from_csv = json.loads((tmp_path / "csv" / "structure.json").read_text())["structures"]
    assert len(from_h5) == 12 and len(from_csv) == 2
    for name, value in from_csv[1].items():
        assert value == pytest.approx(from_h5[1][name], abs=1e-6) or (value is None and from_h5[1][name] is None)
    import h5py

    with h5py.File(tmp_path / "csv" / "prediction.h5") as f:
        assert f["film_field"].shape == (2, 16, 240) and f["density/columns"].shape[:2] == (2, 4)
    assert (tmp_path / "csv" / "density_slices.png").is_file()
    capsys.readouterr()
    assert main(["predict", "--model", str(model_4L), "--input", str(csv_path), "--out", str(tmp_path / "csv")]) == 2
    assert "--overwrite" in capsys.readouterr().err  # nothing already written is replaced silently


@pytest.mark.parametrize("drop, shift, message", [(1, 0.0, "grid point(s) are missing"),
                                                  (0, 0.01, "not on the model's grid")])
def test_predict_csv_off_the_grid_is_refused(model_4L, test_4L, tmp_path, capsys, drop, shift, message):
    from mamba_ctr.data.hdf5 import read_rods

    grid, intensity, _, _ = read_rods(test_4L)
    csv_path = tmp_path / "bad.csv"
    _write_csv(csv_path, grid, intensity[:1], drop=drop, shift_L=shift)
    assert main(["predict", "--model", str(model_4L), "--input", str(csv_path), "--out", str(tmp_path / "p")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "p").exists()


def test_compare_runs_every_method_on_both_conditions(model_4L, tmp_path, capsys):
    out = tmp_path / "compare"
    assert main(["compare", "--presets", "4L", "--n", "3", "--methods", "mamba,mamba+refine,cobra,lsq",
                 "--models", f"4L={model_4L}", "--out", str(out)]) == 0
    with open(out / "compare.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["condition"], r["method"]) for r in rows} == {
        (c, m) for c in ("noise-free", "noisy") for m in ("mamba", "mamba+refine", "cobra", "lsq")}
    refine = next(r for r in rows if r["method"] == "mamba+refine" and r["condition"] == "noise-free")
    assert float(refine["R2_c"]) > 0.999 and float(refine["R2_B"]) > 0.999  # refinement recovers the structure
    assert (out / "compare.png").is_file() and "| paper-4L |" in (out / "compare.md").read_text()
    assert main(["compare", "--presets", "4L", "--methods", "mamba", "--out", str(out)]) == 2
    assert "need a model for every preset" in capsys.readouterr().err


def test_study_reuses_a_model_and_skips_finished_stages(model_4L, tmp_path):
    out = tmp_path / "study"
    argv = ["study", "thickness", "--presets", "4L", "--models", f"paper-4L={model_4L}", "--n-test", "6",
            "--out", str(out)]
    assert main(argv) == 0
    first = (out / "table.csv").read_text()
    metrics = out / "paper-4L" / "eval" / "metrics.json"
    stamp = metrics.stat().st_mtime_ns
    assert main(argv) == 0
    assert metrics.stat().st_mtime_ns == stamp and (out / "table.csv").read_text() == first
    assert (out / "thickness.png").is_file()


def test_demo_end_to_end_tiny(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--n-test", "8", "--train-minutes", "0.05", "--n-refine", "2"]) == 0
    report = (out / "report.md").read_text()
    assert "## Structure recovered from the predicted field" in report and "eval-trained/r2.png" in report
    summary = json.loads((out / "summary.json").read_text())
    assert "trained" in summary["reports"]
    assert main(["demo", "--out", str(out), "--n-test", "8", "--n-refine", "2"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_shipped_model_loads_and_predicts_fresh_structures():
    from mamba_ctr import models, presets
    from mamba_ctr.nn.predict import predict_field
    from mamba_ctr.simulate import simulate
    from mamba_ctr.workflows.evaluate import field_mae

    assert "paper-12L" in models.available()
    checkpoint = models.load("paper-12L")
    assert checkpoint.metadata["weights_dtype"] == "float16" and checkpoint.metadata["test_mae"] < 0.2
    preset = presets.get("paper-12L")
    rods = simulate(preset.sample(64, seed=424242), preset.grid)
    mae, per_rod = field_mae(checkpoint, predict_field(checkpoint, rods.intensity), rods.film_field)
    assert mae < 0.2 and per_rod.shape == (16,)  # the shipped weights predict (an untrained net gives ~0.8)
    with pytest.raises(ValueError, match="no shipped model"):
        models.load("paper-99L")


def test_an_unwritable_output_is_one_line_not_a_traceback(model_4L, test_4L, tmp_path, capsys):
    out = tmp_path / "p"
    (out / "prediction.h5").mkdir(parents=True)  # a directory where the output file must go
    assert main(["predict", "--model", str(model_4L), "--input", str(test_4L), "--out", str(out),
                 "--overwrite"]) == 2
    assert f"cannot write {out}" in capsys.readouterr().err


def test_fit_start_replaces_outliers_and_missing_values_by_nominal():
    from mamba_ctr import presets
    from mamba_ctr.reconstruct import fit_start

    preset = presets.get("paper-4L")
    labels = preset.labels(preset.sample(3, seed=2))
    specs = {spec.name: spec for spec in preset.label_specs()}
    name = next(iter(specs))
    labels[name] = np.array([np.nan, specs[name].high + 10.0, labels[name][2]])
    start = fit_start(labels, preset)
    np.testing.assert_array_equal(start[name], [specs[name].nominal, specs[name].nominal, labels[name][2]])
    assert all(np.all(np.isfinite(values)) for values in start.values())
