"""Uncertainty by test-time draws (nn.uncertainty) and its conformal calibration (reconstruct.calibration)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mamba_ctr.errors import InputError
from mamba_ctr.physics import Grid
from mamba_ctr.reconstruct.calibration import (
    Calibration,
    GroupCalibration,
    calibrate_groups,
    conformal_quantile,
    coverage_by_group,
    group_quantile,
    read_calibration,
    scores,
)

# ---- the conformal quantile: numpy only ------------------------------------------------------------------------


def test_conformal_quantile_is_the_finite_sample_rank():
    values = np.arange(1.0, 101.0)[::-1]  # 100 scores, any order
    assert conformal_quantile(values, 0.68) == 69.0  # ⌈101 · 0.68⌉ = 69th smallest
    assert conformal_quantile(values, 0.5) == 51.0
    assert conformal_quantile(np.array([3.0]), 0.68) == math.inf  # rank 2 of 1: no finite quantile
    with pytest.raises(InputError, match="level"):
        conformal_quantile(values, 1.0)
    with pytest.raises(InputError, match="no calibration scores"):
        conformal_quantile(np.array([]))


def test_constant_spread_gives_the_normal_68_percent_half_width():
    """With s = σ everywhere τ = σ and the half-width q (s + τ) is the 68 % quantile of |N(0, σ²)|: 0.9945 σ."""
    rng = np.random.default_rng(0)
    sigma = 0.3
    y_hat = rng.normal(size=200_000)
    y = y_hat + sigma * rng.normal(size=y_hat.size)
    cal = group_quantile(y, y_hat, np.full(y.shape, sigma))
    assert cal.tau == pytest.approx(sigma)
    assert cal.q * (sigma + cal.tau) == pytest.approx(0.99446 * sigma, rel=0.01)


def test_coverage_on_synthetic_gaussian_data_is_68_percent_per_group():
    """Heteroscedastic errors whose spread is known only up to a factor per group: calibrated on one half, the
    intervals cover 68 % ± 2 % (4σ of the sampling spread of both halves) of the other half in each group, where
    the raw ±s intervals do not."""
    rng = np.random.default_rng(0)
    n, groups = 8000, ["a", "a", "b", "b", "b"]
    factor = np.array([0.5, 0.5, 2.0, 2.0, 2.0])  # the spread under- (b) or over- (a) states the error
    spread = np.exp(rng.normal(0, 0.7, (2 * n, 5)))
    y_hat = rng.normal(size=(2 * n, 5))
    y = y_hat + factor * spread * rng.normal(size=(2 * n, 5))
    cal = calibrate_groups(y[:n], y_hat[:n], spread[:n], groups)
    assert set(cal) == {"a", "b"} and cal["a"].n == 2 * n and cal["b"].n == 3 * n
    covered = coverage_by_group(y[n:], y_hat[n:], spread[n:], groups, cal)
    for g in ("a", "b"):
        assert covered[g]["coverage"] == pytest.approx(0.68, abs=0.02)
        assert covered[g]["n"] == cal[g].n
    raw = {g: GroupCalibration(q=1.0, tau=0.0, n=0) for g in ("a", "b")}
    naive = coverage_by_group(y[n:], y_hat[n:], spread[n:], groups, raw)
    assert naive["a"]["coverage"] > 0.9 and naive["b"]["coverage"] < 0.45
    assert covered["b"]["mean_half_width"] > covered["a"]["mean_half_width"]


def test_missing_predictions_are_never_covered_and_missing_truths_not_counted():
    y = np.array([[1.0, np.nan], [2.0, 3.0]])
    y_hat = np.array([[np.nan, 5.0], [2.0, 3.5]])
    s = np.array([[0.1, 0.1], [0.1, 0.1]])
    assert np.array_equal(scores(y, y_hat, s, 0.1), [np.inf, 0.0, 2.5])
    cal = {"g": GroupCalibration(q=3.0, tau=0.1, n=3)}
    assert coverage_by_group(y, y_hat, s, ["g", "g"], cal)["g"] == pytest.approx(
        {"coverage": 2 / 3, "mean_half_width": 0.6, "n": 3})
    with pytest.raises(InputError, match="no group 'h'"):
        coverage_by_group(y, y_hat, s, ["g", "h"], cal)
    # columns calibrated one by one, counted together
    two = {"g": GroupCalibration(q=3.0, tau=0.1, n=3), "h": GroupCalibration(q=1.0, tau=0.1, n=3)}
    assert coverage_by_group(y, y_hat, s, ["g", "h"], two, report=["x", "x"])["x"] == pytest.approx(
        {"coverage": 1 / 3, "mean_half_width": (0.6 + 0.6 + 0.2) / 3, "n": 3})
    with pytest.raises(InputError, match="m = 2 group names"):
        calibrate_groups(y, y_hat, s, ["g"])


def test_zero_spread_falls_back_to_the_error_scale():
    y = np.array([0.0, 1.0, -2.0, 0.5])
    cal = group_quantile(y, np.zeros(4), np.zeros(4))
    assert cal.tau == pytest.approx(0.75)  # median |error|
    assert math.isfinite(cal.q)


def test_calibration_round_trip_and_errors(tmp_path):
    cal = Calibration(level=0.68, labels={"c": GroupCalibration(1.2, 0.01, 100)}, label_groups={"c_1": "c"},
                      points={"00": GroupCalibration(0.5, 2.0, 1000)}, meta={"draws": {"draws": 8}})
    path = cal.write(tmp_path / "calibration.json")
    back = read_calibration(path)
    assert back.to_dict() == cal.to_dict()
    np.testing.assert_allclose(back.label_half_width("c_1", np.array([0.0, 0.02])), [0.012, 0.036])
    with pytest.raises(InputError, match="no group for label 'c_2'"):
        back.label_half_width("c_2", np.zeros(1))
    (tmp_path / "bad.json").write_text('{"labels": {}}')
    with pytest.raises(InputError, match="not a calibration"):
        read_calibration(tmp_path / "bad.json")
    with pytest.raises(InputError, match="cannot read"):
        read_calibration(tmp_path / "missing.json")


# ---- test-time draws on a tiny untrained scale-free network ----------------------------------------------------

torch = pytest.importorskip("torch")


def _grid() -> Grid:
    return Grid(h=np.arange(3), k=np.zeros(3, dtype=int), L=np.linspace(0.05, 2.0, 40), a=3.9, b=3.9, c_ref=3.9)


def _checkpoint(tmp_path, input_name: str = "scale-free"):
    from mamba_ctr.data.torch_data import Normalisation
    from mamba_ctr.nn import build
    from mamba_ctr.nn.checkpoint import load_checkpoint, save_checkpoint

    grid = _grid()
    zeros, ones = np.zeros(grid.shape), np.ones(grid.shape)
    torch.manual_seed(0)
    kwargs = {"rods": 3, "widths": [4, 8], "inputs_per_rod": 2 if input_name == "scale-free" else 1}
    save_checkpoint(tmp_path / input_name, build("rods", **kwargs), arch="rods", arch_kwargs=kwargs, grid=grid,
                    normalisation=Normalisation(1.0, 2.5, zeros, ones, zeros, ones),
                    extra={"train_config": {"input": input_name}})
    return load_checkpoint(tmp_path / input_name)


def _intensity(n: int = 5, seed: int = 0) -> np.ndarray:
    return np.exp(np.random.default_rng(seed).normal(3, 1, (n, *_grid().shape)))


def _extract(U: np.ndarray) -> dict[str, np.ndarray]:
    return {"a": np.abs(U).mean(axis=(1, 2)), "b": U.real[:, 0, :5].mean(axis=1)}


def test_draws_are_keyed_by_seed_and_structure_index(tmp_path):
    from mamba_ctr.nn.uncertainty import predict_with_uncertainty

    checkpoint, intensity = _checkpoint(tmp_path), _intensity()
    first = predict_with_uncertainty(checkpoint, intensity, counts=1000, draws=4, extract=_extract)
    again = predict_with_uncertainty(checkpoint, intensity, counts=1000, draws=4, extract=_extract)
    np.testing.assert_array_equal(first.film_field, again.film_field)
    np.testing.assert_array_equal(first.labels["a"], again.labels["a"])
    # other chunks: the same draws (float32 network sums over other batch sizes may differ in the last bits)
    chunked = predict_with_uncertainty(checkpoint, intensity, counts=1000, draws=4, extract=_extract, chunk=2)
    np.testing.assert_allclose(chunked.film_field, first.film_field, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(chunked.labels["a"], first.labels["a"], rtol=1e-5)
    tail = predict_with_uncertainty(checkpoint, intensity[2:], counts=1000, draws=4, extract=_extract, start=2)
    np.testing.assert_allclose(tail.field_std, first.field_std[2:], rtol=1e-4, atol=1e-6)
    other = predict_with_uncertainty(checkpoint, intensity, counts=1000, draws=4, extract=_extract, seed=1)
    assert not np.allclose(other.field_std, first.field_std)
    assert first.film_field.shape == first.field_std.shape == intensity.shape
    assert set(first.labels) == set(first.label_std) == {"a", "b"} and first.labels["a"].shape == (5,)
    assert (first.field_std.real > 0).all() and (first.label_std["a"] > 0).all()


def test_draw_inputs_resample_counts_mask_and_shift():
    from mamba_ctr.nn.uncertainty import DrawSettings, draw_inputs

    grid = _grid()
    intensity = np.full(grid.shape, 50.0)
    intensity[:, ::2] = 200.0  # the median point is 200
    measured = ~grid.bragg & np.ones(grid.shape, dtype=bool)
    measured[1, :10] = False
    settings = DrawSettings(draws=400, counts=100, mask_fraction=0.1, l_offset=0.0)
    x, m = draw_inputs(intensity, measured, grid.L, grid.bragg, settings, np.random.default_rng(0))
    assert x.shape == m.shape == (400, *grid.shape)
    assert not m[:, 1, :10].any() and not m[:, :, grid.bragg].any()  # unmeasured stays unmeasured
    assert m[:, measured].mean() == pytest.approx(0.9, abs=0.01)
    # each rod's median point re-counted at 100 counts: relative std 1/√(100 · I/200)
    values = np.where(m, x, np.nan)[:, 0, 2:12]
    rel = np.nanstd(values, axis=0) / intensity[0, 2:12]
    expected = 1 / np.sqrt(100 * intensity[0, 2:12] / 200)
    np.testing.assert_allclose(rel, expected, rtol=0.15)
    quiet = DrawSettings(draws=3, counts=0, mask_fraction=0.0, l_offset=0.0)
    x, m = draw_inputs(intensity, measured, grid.L, grid.bragg, quiet, np.random.default_rng(0))
    assert np.array_equal(m[0], measured) and np.array_equal(x[2][measured], intensity[measured])
    shifted = DrawSettings(draws=50, counts=0, mask_fraction=0.0, l_offset=0.02)
    x, m = draw_inputs(intensity, measured, grid.L, grid.bragg, shifted, np.random.default_rng(0))
    assert not np.array_equal(x[0][m[0]], intensity[m[0]])  # ln I interpolated at L + δ
    assert not m[:, 1, :10].any()


def test_calibrate_and_coverage_of_a_prediction(tmp_path):
    from mamba_ctr.nn.uncertainty import calibrate, coverage_of, predict_with_uncertainty, rod_names

    checkpoint, intensity = _checkpoint(tmp_path), _intensity(12)
    prediction = predict_with_uncertainty(checkpoint, intensity, counts=300, draws=4, extract=_extract)
    rng = np.random.default_rng(3)
    true_labels = {k: v + rng.normal(0, 0.01, v.shape) for k, v in prediction.labels.items()}
    true_field = prediction.film_field + 0.1 * (rng.normal(size=intensity.shape) + 1j)
    rods = rod_names(checkpoint.grid)
    assert rods == ["00", "10", "20"]
    cal = calibrate(prediction, true_labels, true_field, {"a": "A", "b": "B"}, rods, meta={"model": "tiny"})
    assert set(cal.labels) == {"A", "B"} and set(cal.points) == set(rods) and cal.meta["draws"]["draws"] == 4
    pooled = calibrate(prediction, true_labels, true_field, {"a": "A"}, rods, pooled=True)
    assert set(pooled.points) == {"all"} and set(pooled.labels) == {"A"}
    again = predict_with_uncertainty(checkpoint, intensity, calibration=cal, extract=_extract)
    assert again.settings.draws == 4 and again.settings.counts == 300  # the calibration's settings
    covered = coverage_of(again, true_labels, true_field, rods)
    assert covered["labels"]["A"]["n"] == 12 and covered["points"]["00"]["n"] == 12 * 2 * 40
    assert set(covered["per_label"]) == {"a", "b"}
    together = coverage_of(again, true_labels, true_field, rods, report={"a": "AB", "b": "AB"})
    assert set(together["labels"]) == {"AB"} and together["labels"]["AB"]["n"] == 24
    assert together["labels"]["AB"]["coverage"] == pytest.approx(
        (covered["labels"]["A"]["coverage"] + covered["labels"]["B"]["coverage"]) / 2)
    low, high = again.label_interval("a")
    assert (high - low > 0).all()
    assert again.field_half_width(rods).shape == intensity.shape
    with pytest.raises(InputError, match="other draws"):
        predict_with_uncertainty(checkpoint, intensity, calibration=cal, draws=8, extract=_extract)


def test_default_extraction_is_the_presets(tmp_path):
    """Without `extract`, a checkpoint that records its preset gets every label of it, extracted per draw."""
    from mamba_ctr.data.torch_data import Normalisation
    from mamba_ctr.nn import build
    from mamba_ctr.nn.checkpoint import load_checkpoint, save_checkpoint
    from mamba_ctr.nn.uncertainty import predict_with_uncertainty
    from mamba_ctr.physics import presets
    from mamba_ctr.simulate import simulate

    preset = presets.get("paper-4L")
    grid = preset.grid
    zeros, ones = np.zeros(grid.shape), np.ones(grid.shape)
    torch.manual_seed(0)
    kwargs = {"rods": grid.shape[0], "widths": [4, 8], "inputs_per_rod": 2}
    save_checkpoint(tmp_path / "p4", build("rods", **kwargs), arch="rods", arch_kwargs=kwargs, grid=grid,
                    normalisation=Normalisation(1.0, 2.5, zeros, ones, zeros, ones), preset=preset.to_dict(),
                    extra={"train_config": {"input": "scale-free"}})
    intensity = simulate(preset.sample(2, seed=0), grid).intensity
    result = predict_with_uncertainty(load_checkpoint(tmp_path / "p4"), intensity, counts=0, draws=2)
    assert list(result.labels) == [spec.name for spec in preset.label_specs()]
    assert result.labels["c_1"].shape == (2,)


def test_refusals(tmp_path):
    from mamba_ctr.nn.uncertainty import DrawSettings, predict_with_uncertainty

    checkpoint, intensity = _checkpoint(tmp_path), _intensity(2)
    with pytest.raises(InputError, match="counts level"):
        predict_with_uncertainty(checkpoint, intensity, extract=_extract)
    with pytest.raises(InputError, match="draws must be an integer ≥ 2"):
        DrawSettings(draws=1)
    with pytest.raises(InputError, match="mask_fraction"):
        DrawSettings(mask_fraction=1.0)
    with pytest.raises(InputError, match=r"\(n, 3, 40\)"):
        predict_with_uncertainty(checkpoint, intensity[:, :2], counts=10, extract=_extract)
    with pytest.raises(InputError, match="scale-free model"):
        predict_with_uncertainty(_checkpoint(tmp_path, "standardised"), intensity, counts=10)
    with pytest.raises(InputError, match="no calibration"):
        predict_with_uncertainty(checkpoint, intensity, counts=10, draws=2, extract=_extract).label_interval("a")
    sigma = predict_with_uncertainty(checkpoint, intensity, sigma=0.05 * intensity, draws=3, extract=_extract)
    assert sigma.settings.counts is None and (sigma.field_std.real > 0).all()


def test_calibrate_command_refusals(tmp_path):
    from mamba_ctr.cli import main
    from mamba_ctr.workflows import calibrate

    data = tmp_path / "cal.h5"
    data.write_bytes(b"")
    with pytest.raises(InputError, match="disjoint"):
        calibrate.Config(model="m", data=data, test=data)
    with pytest.raises(InputError, match="counts"):
        calibrate.Config(model="m", data=data, counts=-1.0)
    assert main(["calibrate", "m", "--data", str(tmp_path / "none.h5")]) == 2
    from mamba_ctr.workflows import evaluate

    with pytest.raises(InputError, match="no calibration file"):
        evaluate.Config(model="m", data=data, calibration=tmp_path / "none.json")
    command = calibrate.command(calibrate.Config(model="m", data=data, draws=8, pooled=True, per_label=False))
    assert command == f"mamba-ctr calibrate m --data {data} --counts 1000 --draws 8 --no-per-label --pooled"


def test_figures(tmp_path):
    pytest.importorskip("matplotlib")
    from mamba_ctr.plots.uncertainty import plot_field_band, plot_label_intervals

    rng = np.random.default_rng(0)
    true = {f"x_{i}": rng.normal(size=30) for i in range(3)}
    predicted = {k: v + rng.normal(0, 0.1, 30) for k, v in true.items()}
    widths = {k: np.full(30, 0.1) for k in true}
    fig = plot_label_intervals(true, predicted, widths, {"x_0": "A", "x_1": "A", "x_2": "B"}, {"A": 0.7},
                               path=tmp_path / "labels.png")
    assert (tmp_path / "labels.png").stat().st_size > 0 and len([a for a in fig.axes if a.has_data()]) == 2
    L = np.linspace(0, 3, 60)
    U = rng.normal(size=(2, 60)) + 1j * rng.normal(size=(2, 60))
    plot_field_band(L, U, U + 0.1, np.full(U.shape, 0.2 + 0.2j), ["00", "10"], show=(0, 1),
                    path=tmp_path / "band.png")
    assert (tmp_path / "band.png").stat().st_size > 0
    with pytest.raises(ValueError, match="holds no point"):
        plot_field_band(L, U, U, U, ["00", "10"], L_range=(5.0, 6.0))
