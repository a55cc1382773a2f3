"""Forward consistency of predictions (issue 18 item 2): |U + S|² with a fitted scale against the input I."""

import json

import h5py
import numpy as np
import pytest

from mamba_ctr.physics import presets
from mamba_ctr.reconstruct.consistency import R1_THRESHOLD, SCALE_RANGE, forward_consistency
from mamba_ctr.simulate import simulate


@pytest.fixture(scope="module")
def rods():
    preset = presets.get("paper-12L")
    return preset, simulate(preset.sample(3, seed=7), preset.grid)


def test_the_true_field_reproduces_its_intensities(rods):
    preset, r = rods
    check = forward_consistency(r.film_field, r.substrate_field, r.intensity, preset.grid.bragg)
    np.testing.assert_allclose(check.scale, 1.0, atol=1e-6)
    assert np.all(check.r1 < 1e-6) and not check.flagged.any() and check.warning() is None


@pytest.mark.parametrize("factor", [1e-6, 3.0])
def test_intensities_on_another_scale_are_flagged_with_the_scale(rods, factor):
    preset, r = rods
    check = forward_consistency(r.film_field, r.substrate_field, factor * r.intensity, preset.grid.bragg)
    np.testing.assert_allclose(check.scale, factor, rtol=1e-5)
    assert np.all(check.r1 < 1e-6)  # the shape is right: only the scale is off
    assert check.flagged.all() and "intensity scale" in check.warning() and "\n" not in check.warning()


def test_a_wrong_field_is_flagged_by_r1(rods):
    preset, r = rods
    wrong = r.film_field[::-1]  # another structure's field for each
    check = forward_consistency(wrong, r.substrate_field, r.intensity, preset.grid.bragg)
    assert np.all(check.r1[[0, 2]] > R1_THRESHOLD) and check.flagged[[0, 2]].all()
    assert "R1" in check.warning()


def test_a_model_threshold_replaces_the_default(rods):
    """A calibration's R1 threshold (noisy, measured-like data) decides instead of the noise-free default."""
    preset, r = rods
    wrong = r.film_field[::-1]
    default = forward_consistency(wrong, r.substrate_field, r.intensity, preset.grid.bragg)
    loose = forward_consistency(wrong, r.substrate_field, r.intensity, preset.grid.bragg, scale_checked=False,
                                r1_threshold=float(default.r1.max()) * 1.01)
    assert default.flagged[[0, 2]].all() and not loose.flagged.any() and loose.warning() is None
    tight = forward_consistency(wrong, r.substrate_field, r.intensity, preset.grid.bragg, r1_threshold=0.01)
    assert "R1" in tight.warning() and "> 0.01" in tight.warning()


def test_the_threshold_comes_from_the_calibration_then_the_model_then_the_default(tmp_path):
    from types import SimpleNamespace

    from mamba_ctr.reconstruct.calibration import consistency_threshold

    own = SimpleNamespace(metadata={"r1_threshold": 0.041})
    assert consistency_threshold(None) == (R1_THRESHOLD, "R1_THRESHOLD (noise-free paper-12L, standardised model)")
    assert consistency_threshold(None, SimpleNamespace(metadata={}))[0] == R1_THRESHOLD
    value, source = consistency_threshold(None, own)
    assert value == 0.041 and "model's r1_threshold" in source
    calibration = tmp_path / "calibration.json"
    calibration.write_text(json.dumps({"level": 0.68, "meta": {"consistency": {"r1_threshold": 0.2}}}))
    # the calibration (noisy, measured-like rods) decides over the model's noise-free one
    assert consistency_threshold(calibration, own) == (0.2, f"{calibration} (99th percentile of the calibration "
                                                            "set's R1)")
    calibration.write_text(json.dumps({"level": 0.68}))  # an older calibration without one: the model's
    assert consistency_threshold(calibration, own)[0] == 0.041


def test_scale_per_rod_cancels_rod_scales(rods):
    """A scale-free model's check fits one scale per rod: rod scale errors leave R1 at 0, a wrong field does not."""
    preset, r = rods
    factors = np.exp(np.linspace(-0.5, 0.5, preset.grid.n_rods))[None, :, None]
    global_ = forward_consistency(r.film_field, r.substrate_field, r.intensity * factors, preset.grid.bragg)
    per_rod = forward_consistency(r.film_field, r.substrate_field, r.intensity * factors, preset.grid.bragg,
                                  scale_per_rod=True)
    assert np.all(global_.r1 > 0.05) and np.all(per_rod.r1 < 1e-6)
    np.testing.assert_allclose(per_rod.scale, np.exp(np.mean(np.log(factors))), rtol=1e-6)
    mask = np.ones(r.intensity.shape, dtype=bool)
    mask[:, 3] = False  # a rod never measured has no scale and adds nothing
    masked = forward_consistency(r.film_field, r.substrate_field, r.intensity * factors, preset.grid.bragg, mask,
                                 scale_per_rod=True)
    assert np.all(masked.r1 < 1e-6) and np.all(np.isfinite(masked.scale))
    wrong = forward_consistency(r.film_field[::-1], r.substrate_field, r.intensity, preset.grid.bragg,
                                scale_per_rod=True)
    assert np.all(wrong.r1[[0, 2]] > R1_THRESHOLD)


def test_thresholds_are_the_calibrated_ones():
    # benchmarks/test_consistency_calibration.py: R1 99th percentile 0.0275, scale 0.991 … 1.010 (paper-12L)
    assert R1_THRESHOLD == 0.03 and SCALE_RANGE == (0.9, 1.1)


def _csv(path, preset, intensity):
    rows = ["h,k,L,intensity"] + [f"{h},{k},{L!r},{float(intensity[r, i])!r}" for r, (h, k) in
                                  enumerate(zip(preset.grid.h, preset.grid.k, strict=True))
                                  for i, L in enumerate(preset.grid.L.tolist())]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("factor, warned", [(1.0, False), (1e-6, True)])
def test_predict_stores_the_check_and_warns_in_one_line(tmp_path, capsys, rods, factor, warned):
    pytest.importorskip("torch")
    from mamba_ctr.cli import main

    preset, r = rods
    _csv(tmp_path / "in.csv", preset, factor * r.intensity[0].astype(np.float64))
    assert main(["predict", "--input", str(tmp_path / "in.csv"), "--model", "paper-12L-standardised", "--out",
                 str(tmp_path / "p"), "--no-figures"]) == 0
    err = capsys.readouterr().err
    assert (err.count("\n") == 1 and "warning" in err and "intensity scale" in err) if warned else err == ""
    with h5py.File(tmp_path / "p" / "prediction.h5") as f:
        scale, r1 = f["consistency/scale"][()], f["consistency/r1"][()]
    assert scale.shape == r1.shape == (1,)
    assert (scale < 1e-5) if warned else (abs(scale - 1) < 0.05)  # the network is lost off its scale: ~1.6e-6
    entry = json.loads((tmp_path / "p" / "structure.json").read_text())["structures"][0]["consistency"]
    assert entry["flagged"] is warned and entry["r1"] == pytest.approx(float(r1[0]))


def test_the_shipped_scale_free_model_takes_any_scale_and_its_own_threshold(tmp_path, capsys, rods):
    pytest.importorskip("torch")
    from mamba_ctr import models
    from mamba_ctr.cli import main

    preset, r = rods
    _csv(tmp_path / "in.csv", preset, 1e-6 * r.intensity[0].astype(np.float64))
    assert main(["predict", "--input", str(tmp_path / "in.csv"), "--out", str(tmp_path / "p"), "--no-figures"]) == 0
    assert capsys.readouterr().err == ""  # no warning: the scale is no concern of a scale-free model
    consistency = json.loads((tmp_path / "p" / "structure.json").read_text())["consistency"]
    assert consistency["r1_threshold"] == models.load("paper-12L").metadata["r1_threshold"]
    assert "model's r1_threshold" in consistency["r1_threshold_source"]
    with h5py.File(tmp_path / "p" / "prediction.h5") as f:
        assert abs(f["consistency/scale"][0] / 1e-6 - 1) < 0.05 and f["consistency/r1"][0] < 0.033


def test_the_python_api_warns_and_returns_the_field(rods):
    pytest.importorskip("torch")
    from mamba_ctr import models
    from mamba_ctr.nn.predict import ConsistencyWarning, predict, predict_field

    _, r = rods
    checkpoint = models.load("paper-12L-standardised")  # it reads the absolute scale
    with pytest.warns(ConsistencyWarning, match="intensity scale"):
        result = predict(checkpoint, r.intensity[:1] * 1e-6)
    np.testing.assert_array_equal(result.film_field, predict_field(checkpoint, r.intensity[:1] * 1e-6))
    assert result.consistency.flagged.all()
