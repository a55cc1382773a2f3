"""The shipped LSMO model (issue 16 item 6): it loads, carries its family, and `mamba-ctr predict FILE --model lsmo`
runs on a measured-format file as documented, giving a structure that reproduces the data better than the
family's nominal structure (the authors') does."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from mamba_ctr import models  # noqa: E402
from mamba_ctr.cli import main  # noqa: E402
from mamba_ctr.io.family_file import family_from_dict  # noqa: E402
from mamba_ctr.io.measured import MeasuredRods  # noqa: E402
from mamba_ctr.measured_sim import MeasuredSimulator, agreement, relative_sigma  # noqa: E402


@pytest.fixture(scope="module")
def lsmo():
    assert "lsmo" in models.available()
    checkpoint = models.load("lsmo")
    return checkpoint, family_from_dict(checkpoint.metadata["preset"])


def test_the_shipped_lsmo_model_carries_its_family(lsmo):
    checkpoint, family = lsmo
    assert checkpoint.grid.same_as(family.grid)
    assert family.grid.shape == (6, 226) and family.multiple == (2, 1) and family.params.size == 65
    assert checkpoint.metadata["train_config"]["input"] == "scale-free"


def _write_like_the_authors(path, family, structure) -> None:
    """Rods of `structure` at L 0.55 … 4.45 every 0.01 (not the model grid), h and k doubled, a fifth column."""
    lines = []
    for H, K in ((0, 0), (1, 0), (1, 1), (2, 0), (2, 1), (2, 2)):
        L = np.round(np.arange(0.55, 4.45, 0.01), 4)
        rods = MeasuredRods.from_points([H] * L.size, [K] * L.size, L, np.ones(L.size), quantity="I")
        sim = MeasuredSimulator(family.film, rods, reference_cell=(3.905, 3.905), threads=1)
        intensity = 1e-6 * sim.intensity(structure)[0]  # on a measured scale
        lines += [f"{2 * H} {2 * K} {l_:.4f} {i:.6e} 0" for l_, i in zip(L, intensity, strict=True)]
    path.write_text("\n".join(lines) + "\n")


def test_predict_with_the_shipped_lsmo_model_beats_the_nominal_structure(lsmo, tmp_path):
    _, family = lsmo
    structure = family.sample(1, seed=424242)
    _write_like_the_authors(tmp_path / "rods.txt", family, structure)
    assert main(["predict", str(tmp_path / "rods.txt"), "--model", "lsmo", "--out", str(tmp_path / "p"),
                 "--no-figures"]) == 0
    report = json.loads((tmp_path / "p" / "prediction.json").read_text())
    assert report["grid"]["measured_points_on_grid"] > 0 and not report["rods_left_out"]
    rods = MeasuredRods.from_points(*np.loadtxt(tmp_path / "rods.txt", usecols=(0, 1, 2, 3), unpack=True),
                                    quantity="I").transform_basis([["1/2", 0], [0, "1/2"]])
    sim = MeasuredSimulator(family.film, rods, reference_cell=(3.905, 3.905), threads=1)
    observed, _ = sim.observed()
    nominal = agreement(observed, relative_sigma(observed, 0.1), sim.intensity(family.nominal())[0],
                        sim.rod_of_point, "global")
    assert report["agreement"]["r1"] < nominal.r1


def test_the_consistency_check_takes_unmeasured_points_of_a_scale_free_model(lsmo):
    """Zero counts and unmeasured points are input a scale-free model masks: `check_prediction` takes them too
    (it refused them before) and leaves the masked points out of R1."""
    from mamba_ctr.nn.predict import check_prediction, predict_field
    from mamba_ctr.simulate import simulate

    checkpoint, family = lsmo
    intensity = simulate(family.sample(2, seed=9), family.grid).intensity.astype(np.float64)
    mask = np.ones(intensity.shape, dtype=bool)
    mask[:, 2, :40] = False
    intensity[:, 2, :40] = 0.0  # zero counts where nothing was measured
    field = predict_field(checkpoint, intensity, mask=mask)
    check = check_prediction(checkpoint, intensity, field, mask)
    assert check is not None and np.all(np.isfinite(check.r1)) and not check.scale_checked
    assert not check.flagged.any() or np.all(check.r1 > check.r1_threshold)  # flagged only by R1, never the scale
