"""Families around a structure file (FAMILY.toml): reading, sampling keyed by index, labels, the grid from a
measured file, labels fitted to U, and the chain generate → train → predict (a measured file) → fit --family."""
import json
import re

import numpy as np
import pytest

from mamba_ctr import families
from mamba_ctr.errors import InputError
from mamba_ctr.io.family_file import family_from_dict, read_family
from mamba_ctr.reconstruct.family_fit import family_labels
from mamba_ctr.simulate import simulate

A = 3.905
BULK = """// SrTiO3
3.905 3.905 3.905 90.0 90.0 90.0
Sr 0.0 0.0 0.0 0.5 0.5 1.0
Ti 0.5 0.5 0.5 0.4 0.4 1.0
O 0.5 0.5 0.0 0.6 0.6 1.0
O 0.5 0.0 0.5 0.6 0.6 1.0
O 0.0 0.5 0.5 0.6 0.6 1.0
"""


def film_xyz(layers: int = 4, cells: int = 1) -> str:
    """A SrTiO3-like film of `layers` perovskite layers, `cells` × 1 in-plane, La/Sr mixed A sites above layer 0."""
    rows = []
    for j in range(layers):
        z = j * A
        for i in range(cells):
            x = i * A
            if j == 0:
                rows.append(f"Sr {x} 0 {z} 0.006 1.0")
            else:
                rows += [f"Sr {x} 0 {z} 0.006 0.5", f"La {x} 0 {z} 0.006 0.5"]
            rows += [f"Ti {x + A / 2} {A / 2} {z + A / 2} 0.005 1.0", f"O {x + A / 2} {A / 2} {z} 0.008 1.0",
                     f"O {x + A / 2} 0 {z + A / 2} 0.008 1.0", f"O {x} {A / 2} {z + A / 2} 0.008 1.0"]
    return f"{len(rows)}\nsmall film\n" + "\n".join(rows) + "\n"


PARAMS = """
[[param]]
name = "c_1"
target = "c"
layer = 1
bounds = [3.8, 4.0]

[[param]]
name = "z_B_2"
target = "z"
layer = 2
species = "Ti"
bounds = [0.46, 0.54]
group = "B"

[[param]]
name = "sr_2"
target = "mix"
layer = 2
species = "Sr"
partner = "La"
bounds = [0.2, 0.8]
group = "Sr"

[[param]]
name = "occ_3"
target = "occupancy"
layer = 3
bounds = [0.5, 1.0]
"""


def measured_file(path, rods=((0, 0), (1, 0), (1, 1)), low=0.3, high=2.6) -> None:
    """A plain h k l I file with points every 0.013 in L (not the model's grid), a gap at L = 1 on rod (1, 0)."""
    lines = []
    for h, k in rods:
        for L in np.arange(low, high, 0.013):
            if h == 1 and k == 0 and abs(L - 1) < 0.1:
                continue
            lines.append(f"{h} {k} {L:.4f} {1e3 * (1 + np.cos(3 * L) ** 2):.6g}")
    path.write_text("\n".join(lines) + "\n")


def write_family(folder, *, cells: int = 1, extra: str = "", grid: str | None = None) -> object:
    (folder / "film.xyz").write_text(film_xyz(cells=cells))
    (folder / "bulk.bul").write_text(BULK)
    measured_file(folder / "rods.txt")
    grid = grid if grid is not None else ('data = "rods.txt"\nformat = "plain"\ncolumns = "h,k,l,I"\n'
                                          "points_per_L = 20\n")
    text = (f'[family]\nname = "small"\nstructure = "film.xyz"\nsubstrate = "bulk.bul"\ncell = [{cells * A}, {A}]\n'
            f"{extra}\n[grid]\n{grid}\n{PARAMS}")
    (folder / "family.toml").write_text(text)
    return folder / "family.toml"


@pytest.fixture()
def family(tmp_path):
    return read_family(write_family(tmp_path))


def test_the_grid_comes_from_the_measured_file(family):
    grid = family.grid
    assert grid.shape == (3, 47)  # L = 6/20 … 52/20 (the measured 0.3 … 2.588, rounded out to the step)
    assert (grid.h.tolist(), grid.k.tolist()) == ([0, 1, 1], [0, 0, 1])
    assert grid.L[0] == pytest.approx(0.3) and grid.L[-1] == pytest.approx(2.6)
    assert grid.L[grid.bragg].tolist() == pytest.approx([1.0, 2.0])
    assert family.params.size == 4 and family.multiple == (1, 1)


def test_a_supercell_maps_measured_rods_into_its_cell(tmp_path):
    family = read_family(write_family(tmp_path, cells=2))
    assert family.multiple == (2, 1)
    assert (family.grid.h.tolist(), family.grid.k.tolist()) == ([0, 2, 2], [0, 0, 1])


def test_sampling_is_keyed_by_index_and_inside_the_bounds(family):
    whole = family.vectors(40, seed=3)
    assert np.array_equal(family.vectors(7, seed=3, start=20), whole[20:27])
    assert np.all((whole >= family.params.lower) & (whole <= family.params.upper))
    assert not np.array_equal(family.vectors(5, seed=4), whole[:5])


def test_labels_read_back_exactly(family):
    X = family.vectors(16, seed=1)
    labels = family.labels(family.structures(X))
    assert list(labels) == ["c_1", "z_B_2", "sr_2", "occ_3"]
    assert np.allclose(np.stack(list(labels.values()), axis=1), X, rtol=0, atol=1e-12)
    specs = family.label_specs()
    assert [s.group for s in specs] == ["c", "B", "Sr", "occupancy"]
    assert specs[0].unit == "Å" and all(s.identifiable for s in specs)


def test_a_stored_description_rebuilds_the_same_family(family):
    again = family_from_dict(json.loads(json.dumps(family.to_dict())))
    assert again.grid.same_as(family.grid)
    a, b = family.sample(5, seed=2), again.sample(5, seed=2)
    assert np.array_equal(a.z, b.z) and np.array_equal(a.fraction, b.fraction)
    assert families.from_dict(family.to_dict()).name == "small"
    from mamba_ctr.physics.family import FAMILY_KIND

    assert families.FAMILY_KIND == FAMILY_KIND  # families.py names it without importing the family module


def test_labels_fitted_to_the_true_field_are_the_true_labels(family):
    structures = family.sample(3, seed=5)
    U = simulate(structures, family.grid).film_field
    fitted = family_labels(U, family)
    true = family.labels(structures)
    for spec in family.label_specs():
        width = spec.high - spec.low
        assert np.abs(fitted[spec.name] - true[spec.name]).max() < 1e-5 * width, spec.name


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t.replace("[family]", "[famly]"), "needs a [family] table"),
    (lambda t: t.replace('name = "small"', 'name = "small"\ncolour = "red"'), "unknown key 'colour'"),
    (lambda t: t.replace('structure = "film.xyz"', 'structure = "nope.xyz"'), "cannot read"),
    (lambda t: t.replace('target = "occupancy"', 'target = "beta"').replace("layer = 3\n", ""),
     "a family cannot vary"),
    (lambda t: t.replace("points_per_L = 20", "points_per_L = 0"), "points_per_L must be an integer ≥ 1"),
    (lambda t: t.replace('data = "rods.txt"', 'rods = [[0, 0]]'), "give data"),
    (lambda t: t.replace('group = "B"', 'identifiable = "yes"'), "identifiable must be true or false"),
])
def test_bad_family_files_are_one_clear_error(tmp_path, change, message):
    path = write_family(tmp_path)
    path.write_text(change(path.read_text()))
    with pytest.raises(InputError, match=re.escape(message)):
        read_family(path)


def test_a_cell_that_cannot_produce_a_rod_is_refused_or_left_out(tmp_path):
    path = write_family(tmp_path, grid='rods = [[0, 0], [0.5, 0]]\nL = [0.2, 2.0]\n')
    with pytest.raises(InputError, match="cannot produce rods"):
        read_family(path)
    (tmp_path / "rods.txt").write_text("0 0 0.5 10\n0 0 0.9 12\n0.5 0 0.5 3\n0.5 0 0.9 4\n")
    path = write_family(tmp_path, grid='data = "rods.txt"\ncolumns = "h,k,l,I"\n')
    (tmp_path / "rods.txt").write_text("0 0 0.5 10\n0 0 0.9 12\n0.5 0 0.5 3\n0.5 0 0.9 4\n")
    assert read_family(path).grid.n_rods == 1


torch = pytest.importorskip("torch")


def test_generate_train_predict_and_fit_a_family(tmp_path, capsys):
    from mamba_ctr.cli import main
    from mamba_ctr.data.hdf5 import open_complete
    from mamba_ctr.nn.train import TrainConfig, train

    path = write_family(tmp_path)
    assert main(["generate", "--preset", str(path), "--n", "20", "--seed", "1", "--out", str(tmp_path / "d.h5"),
                 "--quiet"]) == 0
    with open_complete(tmp_path / "d.h5") as f:
        assert f["intensity"].shape == (20, 3, 47) and sorted(f["labels"]) == ["c_1", "occ_3", "sr_2", "z_B_2"]
    config = {"stream": str(path), "arch": "rods", "arch_kwargs": {"widths": [8, 16]}, "input": "scale-free",
              "augment": True, "batch_size": 16, "samples_per_epoch": 32, "val_samples": 16, "pilot_samples": 64,
              "out": tmp_path / "model", "progress": False}
    first = train(TrainConfig(epochs=1, **config))
    resumed = train(TrainConfig(epochs=2, resume=True, **config))  # the family stream continues where it stopped
    assert [row["epoch"] for row in resumed] == [1, 2] and resumed[:1] == first
    assert resumed[-1]["samples_seen"] == 64
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "d.h5"), "--n", "4",
                 "--out", str(tmp_path / "ev"), "--no-figures"]) == 0
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert metrics["true_field_extraction"]["r2_per_group"]["c"] > 0.999  # the fit to the true U is exact
    assert main(["evaluate", "--model", str(tmp_path / "model"), "--data", str(tmp_path / "d.h5"), "--n", "4",
                 "--augment", "--mask-from", str(tmp_path / "rods.txt"), "--out", str(tmp_path / "ev2"),
                 "--no-figures"]) == 0
    masked = json.loads((tmp_path / "ev2" / "metrics.json").read_text())["masked_points"]
    assert 0 < masked["measured"] < masked["of"] and masked["mask_from"].endswith("rods.txt")
    capsys.readouterr()
    assert main(["calibrate", str(tmp_path / "model"), "--data", str(tmp_path / "d.h5"), "--n", "6", "--draws", "2",
                 "--threads", "1", "--mask-from", str(tmp_path / "rods.txt"), "--out", str(tmp_path / "cal")]) == 0
    assert main(["predict", str(tmp_path / "rods.txt"), "--model", str(tmp_path / "model"),
                 "--calibration", str(tmp_path / "cal" / "calibration.json"), "--out", str(tmp_path / "p")]) == 0
    report = json.loads((tmp_path / "p" / "prediction.json").read_text())
    meta = json.loads((tmp_path / "cal" / "calibration.json").read_text())["meta"]
    assert meta["mask_from"].endswith("rods.txt") and 0 < meta["measured_points"] < 3 * 47  # the file's gaps
    calibrated = meta["consistency"]
    assert 0 < calibrated["r1_median"] <= calibrated["r1_p90"] <= calibrated["r1_p99"] == calibrated["r1_threshold"]
    assert report["consistency"]["r1_threshold"] == calibrated["r1_threshold"]  # the model's own threshold
    assert report["consistency"]["flagged"] == (report["consistency"]["r1"] > calibrated["r1_threshold"])
    interval = report["intervals"]["labels"]["c_1"]
    assert interval["low"] <= interval["mean"] <= interval["high"] and report["intervals"]["draws"] == 2
    assert report["grid"]["measured_points_on_grid"] < 3 * 47  # the gap at L = 1 and the Bragg points masked
    assert set(report["labels"]) == {"c_1", "z_B_2", "sr_2", "occ_3"}
    assert report["agreement"]["points"] == sum(1 for _ in open(tmp_path / "rods.txt"))
    assert (tmp_path / "p" / "structure_predicted.xyz").is_file() and (tmp_path / "p" / "rods.png").is_file()
    written = tmp_path / "p" / "family" / "family.toml"  # the model's own family, self-contained
    assert read_family(written).grid.same_as(read_family(path).grid)
    assert main(["fit", str(tmp_path / "rods.txt"), "--family", str(written), "--start",
                 str(tmp_path / "p" / "labels.json"), "--max-nfev", "5", "--no-figures", "--error-model",
                 "relative:0.1", "--out", str(tmp_path / "fit")]) == 0
    fitted = json.loads((tmp_path / "fit" / "fit.json").read_text())
    starts = {p["name"]: p["start"] for p in fitted["parameters"]}
    assert starts["c_1"] == pytest.approx(report["labels"]["c_1"])
    assert main(["fit", str(tmp_path / "rods.txt"), "--family", str(path), "--structure", str(tmp_path / "film.xyz"),
                 "--out", str(tmp_path / "fit2")]) == 2
    assert "drop --structure" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"c_9": 3.9}')
    assert main(["fit", str(tmp_path / "rods.txt"), "--family", str(path), "--start", str(tmp_path / "bad.json"),
                 "--error-model", "relative:0.1", "--out", str(tmp_path / "fit3")]) == 2
    assert "'c_9' is not a free parameter" in capsys.readouterr().err
    measured_file(tmp_path / "far.txt", low=5.0, high=6.0)  # beyond the model's L range
    assert main(["predict", str(tmp_path / "far.txt"), "--model", str(tmp_path / "model"),
                 "--out", str(tmp_path / "p2")]) == 2
    assert "none of its points lies on the model's grid" in capsys.readouterr().err
    assert not (tmp_path / "p2").exists()  # refused before anything is written
