"""The mamba-ctr command: info and simulate, outputs and errors."""

import json

import h5py
import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.cli import main


def test_info_reports_version_backend_and_threads(capsys):
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mamba-ctr"] == mamba_ctr.__version__
    assert info["backend"] in ("compiled", "numba", "numpy")
    assert info["numpy backend"] == "available"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and mamba_ctr.__version__ in capsys.readouterr().out


def test_simulate_nominal_writes_csv_hdf5_and_plots(tmp_path, golden):
    out = tmp_path / "rods"
    assert main(["simulate", "--preset", "paper-12L", "--out", str(out)]) == 0
    rows = np.genfromtxt(out / "rods.csv", delimiter=",", names=True)
    assert rows.size == 16 * 240
    intensity = rows["intensity"].reshape(16, 240)
    off = ~golden["bragg"]
    np.testing.assert_allclose(intensity[:, off], golden["nominal/intensity"][:, off], rtol=1e-9)
    with h5py.File(out / "rods.h5") as f:
        assert f.attrs["format_version"] == 1 and f.attrs["complete"]
        assert f["film_field"].shape == (1, 16, 240)
        assert json.loads(f.attrs["preset"])["name"] == "paper-12L"
        assert "d_B_5" in f["labels"] and "sr_fraction" in f["params"]
    assert (out / "rod_h0_k0.png").stat().st_size > 1000 and (out / "rods_overview.png").exists()


def test_simulate_structure_file(tmp_path, golden):
    spec = tmp_path / "asym.toml"
    layers = {"c": golden["asym/cn"], "z_B": golden["asym/z_B"], "z_Oap": golden["asym/z_O1"],
              "z_Ox": golden["asym/z_O3"], "z_Oy": golden["asym/z_O2"], "sr_fraction": golden["asym/mix"],
              "occupancy": golden["asym/occ"]}
    lines = ['preset = "paper-12L"', "[layers]"]
    lines += [f"{key} = [{', '.join(repr(float(v)) for v in value)}]" for key, value in layers.items()]
    spec.write_text("\n".join(lines))
    out = tmp_path / "asym"
    assert main(["simulate", "--structure", str(spec), "--out", str(out), "--no-plot"]) == 0
    grid, _intensity, field, _ = mamba_ctr.data.read_rods(out / "rods.h5")
    off = ~grid.bragg
    scale = np.abs(golden["asym/film_field"][:, off]).max(axis=1, keepdims=True)
    assert np.all(np.abs(field[0][:, off] - golden["asym/film_field"][:, off]) <= 1e-9 * scale)
    assert not list(out.glob("*.png"))


@pytest.mark.parametrize("content,message", [
    ('preset = "paper-99L"', "unknown preset"),
    ("[layers]\nc = [3.9, 3.9]", "must have 13 values"),
    ("[layers]\noccupancy = " + str([-1.0] * 13), "occupancy must lie in"),
    ("[layers]\nspin = 1", "unknown \\[layers\\] keys"),
    ("this is not toml", "cannot parse"),
])
def test_bad_structure_files_exit_2_with_one_line(tmp_path, capsys, content, message):
    spec = tmp_path / "bad.toml"
    spec.write_text(content)
    assert main(["simulate", "--structure", str(spec), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert not (tmp_path / "o").exists()


def test_existing_output_is_kept(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["simulate", "--out", str(out), "--no-plot"]) == 0
    before = (out / "rods.csv").read_bytes()
    assert main(["simulate", "--preset", "paper-4L", "--out", str(out), "--no-plot"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "rods.csv").read_bytes() == before
    assert main(["simulate", "--preset", "paper-4L", "--out", str(out), "--no-plot", "--overwrite"]) == 0
    assert (out / "rods.csv").read_bytes() != before


def test_missing_structure_file_exits_2(tmp_path, capsys):
    assert main(["simulate", "--structure", str(tmp_path / "none.toml"), "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


# ------------------------------------------------------------------ the command pattern
def _options(command):
    from mamba_ctr import cli, workflows

    module = workflows.load(command)
    return module, cli._parser(command, module)


@pytest.mark.parametrize("command", __import__("mamba_ctr.workflows").workflows.COMMANDS)
def test_every_command_is_reachable_and_its_help_shows_the_defaults(command, capsys):
    import dataclasses

    module, parser = _options(command)
    assert dataclasses.is_dataclass(module.Config) and callable(module.run)
    with pytest.raises(SystemExit) as stop:
        main([command, "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")  # argparse wraps lines (also at hyphens)
    assert "--config FILE.toml" in text and "--quiet" in text
    for f in dataclasses.fields(module.Config):
        if f.default not in (dataclasses.MISSING, None, (), ""):  # empty strings are not shown
            shown = ",".join(map(str, f.default)) if isinstance(f.default, tuple) else str(f.default)
            assert f"(default: {shown})" in text, (f.name, text)
    assert parser.parse_args(["--quiet"]).quiet  # --quiet is accepted by every command


def test_quiet_switches_off_progress_bars():
    pytest.importorskip("torch")
    from mamba_ctr import cli

    module, parser = _options("train")
    args = parser.parse_args(["--stream", "paper-4L", "--quiet"])
    assert cli._config("train", module, args).progress is False
    assert cli._config("train", module, parser.parse_args(["--stream", "paper-4L"])).progress is None
    module, parser = _options("compare")
    assert cli._config("compare", module, parser.parse_args(["--methods", "cobra", "--quiet"])).quiet


def test_config_file_with_flags_on_top(tmp_path):
    config = tmp_path / "sim.toml"
    config.write_text(f'preset = "4L"\nplot = false\nout = "{tmp_path / "from_file"}"\n')
    assert main(["simulate", "--config", str(config), "--out", str(tmp_path / "from_flag")]) == 0
    assert not (tmp_path / "from_file").exists()
    grid = mamba_ctr.data.read_rods(tmp_path / "from_flag" / "rods.h5")[0]
    assert grid.same_as(mamba_ctr.presets.get("paper-4L").grid) and not list((tmp_path / "from_flag").glob("*.png"))


def test_unknown_config_key_is_one_line_and_nothing_is_written(tmp_path, capsys):
    config = tmp_path / "sim.toml"
    config.write_text(f'out = "{tmp_path / "o"}"\nbogus = 1\n')
    assert main(["simulate", "--config", str(config)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("mamba-ctr simulate: error:")
    assert "unknown key(s) bogus; allowed: out, preset, structure" in err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "--data", "x.h5"], "evaluate needs --model"),
    (["stats"], "stats needs FILE"),
    (["compare", "--models", "12L"], "models must be KEY=VALUE"),
    (["generate", "--out", "x.h5", "--n", "ten"], "n must be int"),
    (["generate", "--out", "x.h5", "--shard", "3/2"], "0 ≤ i < K"),
    (["study", "--presets", "4L,paper-99L"], "unknown preset 'paper-99L'"),
])
def test_bad_options_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and message in err, err
    assert not list(tmp_path.iterdir())


def test_a_bug_is_a_traceback_and_exit_1_not_bad_input(monkeypatch, capsys):
    from mamba_ctr.workflows import info

    def broken(config):
        raise RuntimeError("NaN loss")

    monkeypatch.setattr(info, "run", broken)
    assert main(["info"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: NaN loss" in err


def test_a_missing_extra_is_one_line(monkeypatch, capsys):
    from mamba_ctr.workflows import info

    def needs_torch(config):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr(info, "run", needs_torch)
    assert main(["info"]) == 2
    assert 'pip install "mamba-ctr[train]"' in capsys.readouterr().err


def test_figures_leave_pyplot_and_the_backend_alone(tmp_path):
    import os
    import subprocess
    import sys

    pytest.importorskip("matplotlib")
    code = ("import sys, matplotlib; from mamba_ctr.cli import main; "
            f"assert main(['simulate', '--preset', '4L', '--out', {str(tmp_path)!r}]) == 0; "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert matplotlib.rcParams['backend'] == 'svg', matplotlib.rcParams['backend']")
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "MPLBACKEND": "svg"})
    assert (tmp_path / "rods_overview.png").stat().st_size > 1000 and not list(tmp_path.glob(".*tmp*"))


# --- issue 18, item 1: no silent wrong answers, nothing touched, one-line messages ------------------------------

def _rods_csv(path, preset="paper-4L", edit=None):
    """The nominal structure of `preset` as a predict input CSV (h, k, L, intensity); `edit(row)` changes rows."""
    import csv

    from mamba_ctr.physics import presets
    from mamba_ctr.simulate import simulate

    p = presets.get(preset)
    rods = simulate(p.nominal(), p.grid)
    rows = [{"h": str(h), "k": str(k), "L": repr(float(L)), "intensity": repr(float(rods.intensity[0, r, i]))}
            for r, (h, k) in enumerate(zip(p.grid.h, p.grid.k, strict=True)) for i, L in enumerate(p.grid.L)]
    for row in rows:
        if edit is not None:
            edit(row)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return p, rods


@pytest.mark.parametrize("value", ["1.5", "0.9999999", "1.0000001"])
def test_csv_rods_with_a_non_integer_h_are_refused_not_truncated(tmp_path, value):
    from mamba_ctr.errors import InputError
    from mamba_ctr.io.rods_input import read_intensities

    def edit(row):
        if row["h"] == "1":
            row["h"] = value

    p, _ = _rods_csv(tmp_path / "r.csv", edit=edit)
    with pytest.raises(InputError, match=rf"h must be an integer, got '{value}'"):
        read_intensities(tmp_path / "r.csv", p.grid)


def test_csv_rods_read_exactly_with_integers_written_as_floats(tmp_path):
    from mamba_ctr.io.rods_input import read_intensities

    def edit(row):
        row["h"], row["k"] = f"{float(row['h'])}", f"{float(row['k']):e}"

    p, rods = _rods_csv(tmp_path / "r.csv", edit=edit)
    np.testing.assert_array_equal(read_intensities(tmp_path / "r.csv", p.grid), rods.intensity)


def test_an_off_grid_L_names_the_grid_step_without_numpy_reprs(tmp_path):
    from mamba_ctr.errors import InputError
    from mamba_ctr.io.rods_input import read_intensities

    def edit(row):
        if row["L"] == repr(0.05):
            row["L"] = "0.50348"

    p, _ = _rods_csv(tmp_path / "r.csv", edit=edit)
    with pytest.raises(InputError) as error:
        read_intensities(tmp_path / "r.csv", p.grid)
    message = str(error.value)
    assert "first: 0.50348" in message and f"m × {p.grid.uniform_L_step:g}" in message and "np." not in message


def _small_dataset(tmp_path, name="d.h5", n=4):
    from mamba_ctr.data.generate import generate
    from mamba_ctr.data.generate_config import GenerateConfig

    return generate(GenerateConfig(out=tmp_path / name, preset="paper-4L", n=n, join="copy", quiet=True))


def test_stats_of_a_file_with_flipped_bytes_is_an_error_not_nan(tmp_path, capsys):
    path = _small_dataset(tmp_path)
    with h5py.File(path) as f:
        dataset = f["intensity"].id
        chunk = dataset.get_chunk_info(0) if f["intensity"].chunks else None
        offset = dataset.get_offset() if chunk is None else chunk.byte_offset
        size = dataset.get_storage_size() if chunk is None else chunk.size
    data = bytearray(path.read_bytes())
    for i in np.random.default_rng(0).integers(offset, offset + size, 64):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    assert main(["stats", str(path), "--recompute"]) == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "not finite" in captured.err and "nan" not in captured.out


def test_evaluate_keeps_earlier_metrics_and_predict_folders(tmp_path, capsys):
    data = tmp_path / "test.h5"
    data.write_bytes(b"")  # never opened: the output folder is checked first
    for folder, kept in (("eval", "metrics.json"), ("pred", "prediction.h5")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / kept).write_text("earlier")
        assert main(["evaluate", "--model", "paper-12L", "--data", str(data), "--out", str(tmp_path / folder)]) == 2
        assert (tmp_path / folder / kept).read_text() == "earlier"
    err = capsys.readouterr().err.splitlines()
    assert "pass --overwrite" in err[0] and "holds a prediction" in err[1]


def test_compare_leaves_no_empty_folder_after_an_error(tmp_path, capsys):
    out = tmp_path / "cmp"
    argv = ["compare", "--out", str(out), "--presets", "4L", "--n", "1", "--methods", "mamba",
            "--models", f"4L={tmp_path / 'missing.pt'}", "--quiet"]
    assert main(argv) == 2
    assert capsys.readouterr().err.count("\n") == 1 and not out.exists()


@pytest.mark.parametrize("argv, message", [
    (["simulate", "--out", "{tmp}/file.toml/x", "--no-plot"], "cannot write {tmp}/file.toml/x"),
    (["simulate", "--structure", "{tmp}"], "got the directory {tmp}"),
    (["predict", "--input", "{tmp}/file.toml", "--model", "other.pt"], "no shipped model or checkpoint 'other.pt'"),
    (["predict", "--input", "{tmp}/file.toml", "--model", "paper12L"], "shipped: lsmo, paper-12L"),
    (["generate", "--out", "{tmp}/x.txt", "--n", "2"], "ending in .h5 or .hdf5, got {tmp}/x.txt"),
])
def test_paths_and_names_are_one_clear_line(tmp_path, capsys, argv, message):
    (tmp_path / "file.toml").write_text("")
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message.format(tmp=tmp_path) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.toml"]


def test_an_existing_training_run_names_the_resume_flag(tmp_path):
    pytest.importorskip("torch")
    from mamba_ctr.errors import InputError
    from mamba_ctr.nn.config import TrainConfig

    (tmp_path / "last.json").write_text("{}")
    with pytest.raises(InputError, match="--resume"):
        TrainConfig(stream="paper-4L", out=tmp_path)


@pytest.mark.parametrize("command, option", [("study", "--presets"), ("compare", "--methods"),
                                             ("compare", "--presets")])
def test_list_options_say_they_are_comma_separated(command, option, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert f"{option} {option[2:].upper()} comma-separated" in text


def test_a_predicted_density_is_not_titled_truth(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    import mamba_ctr.plots as plots

    seen = {}
    original = plots.plot_density_slices

    def spy(*args, **kwargs):
        figure = original(*args, **kwargs)
        seen["titles"] = [ax.get_title() for ax in figure.axes]
        return figure

    monkeypatch.setattr(plots, "plot_density_slices", spy)
    _rods_csv(tmp_path / "r.csv", preset="paper-12L")
    assert main(["predict", "--input", str(tmp_path / "r.csv"), "--out", str(tmp_path / "p")]) == 0
    assert seen["titles"] and all(t.startswith("prediction") for t in seen["titles"] if t)


def test_demo_summary_keeps_numbers_and_the_report_says_a_short_network_is_weak(tmp_path):
    from mamba_ctr.workflows import demo

    values = demo._json_values(vars(demo.Config(out=tmp_path / "d", n_test=30, train_minutes=0.5)))
    assert values["n_test"] == 30 and values["train_minutes"] == 0.5 and values["out"] == str(tmp_path / "d")
    report = {"field_mae": 0.3, "r2_per_group": {"c": 0.5}, "outliers_total": 0, "targets": {"met": 0, "of": 1}}
    summary = {"config": values, "seconds": {"train": 40.0}}
    demo._write_report(tmp_path, summary, {"trained": report})
    text = (tmp_path / "report.md").read_text()
    assert "expected to be weak" in text and "busy machine" in text


def test_a_streams_pilot_keeps_to_a_quarter_of_max_minutes():
    """train --max-minutes 0.3 ran 5 min (the 100 000-structure pilot alone); the pilot now stops after the
    1024-structure chunk that passes a quarter of the budget."""
    pytest.importorskip("torch")
    from mamba_ctr.nn.batches import _pilot_normalisation
    from mamba_ctr.physics import presets

    preset = presets.get("paper-4L")
    early = _pilot_normalisation(preset, 0, 100_000, budget_s=1e-3)
    first_chunk = _pilot_normalisation(preset, 0, 1024)
    assert early.X_mean == pytest.approx(first_chunk.X_mean, rel=1e-12)
    np.testing.assert_allclose(early.U_re_std, first_chunk.U_re_std, rtol=1e-12)
