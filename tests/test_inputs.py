"""The network input transforms (nn.inputs): scale-free by construction, masks, resampling, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mamba_ctr.data.torch_data import Normalisation
from mamba_ctr.errors import InputError
from mamba_ctr.nn import build
from mamba_ctr.nn.inputs import InputTransform, resample_rod, rods_on_grid, scale_free
from mamba_ctr.physics import Grid
from mamba_ctr.simulate import network_input


def _grid(rods: int = 3, n_L: int = 40) -> Grid:
    return Grid(h=np.arange(rods), k=np.zeros(rods, dtype=int), L=np.linspace(0.05, 2.0, n_L), a=3.9, b=3.9,
                c_ref=3.9)


def _intensity(grid: Grid, n: int = 4, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.exp(rng.normal(3, 2, (n, *grid.shape)))


def _normalisation(grid: Grid) -> Normalisation:
    zeros, ones = np.zeros(grid.shape), np.ones(grid.shape)
    return Normalisation(1.0, 2.5, zeros, ones, zeros, ones)


def test_scale_free_value_and_mask_channels():
    grid = _grid()
    intensity = _intensity(grid)
    intensity[0, 1, 5], intensity[1, 0, 7] = 0.0, np.nan  # zero counts, a bad point: unmeasured
    mask = np.ones(intensity.shape, dtype=bool)
    mask[2, 2, :10] = False
    X = scale_free(intensity, mask, 2.0)
    assert X.shape == (4, 6, grid.n_L) and X.dtype == np.float32
    value, measured = X[:, :3], X[:, 3:]
    assert measured[0, 1, 5] == 0 and measured[1, 0, 7] == 0 and not measured[2, 2, :10].any()
    assert measured.sum() == intensity.size - 12
    assert (value[measured == 0] == 0).all()
    # the value channel has zero mean over each rod's measured points
    means = (value * measured).sum(-1) / measured.sum(-1)
    np.testing.assert_allclose(means, 0, atol=1e-6)
    expected = (np.log(intensity[3, 0]) - np.log(intensity[3, 0]).mean()) / 2.0
    np.testing.assert_allclose(value[3, 0], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", range(-8, 9, 2))
def test_scale_free_prediction_unchanged_by_any_scale(k):
    """A tiny untrained network: the output for I × 10^k (and per-rod factors) equals the output for I."""
    grid = _grid()
    transform = InputTransform.of("scale-free", _normalisation(grid), grid.bragg)
    torch.manual_seed(0)
    net = build("rods", rods=3, widths=[4, 8], inputs_per_rod=2).eval()
    intensity = _intensity(grid)
    rod_factors = 10.0 ** np.random.default_rng(k + 8).uniform(-3, 3, (4, 3, 1))
    with torch.no_grad():
        reference = net(torch.from_numpy(transform(intensity)))
        scaled = net(torch.from_numpy(transform(intensity * 10.0 ** k)))
        per_rod = net(torch.from_numpy(transform(intensity * 10.0 ** k * rod_factors)))
    tolerance = 1e-4 * reference.abs().max()
    assert (scaled - reference).abs().max() <= tolerance
    assert (per_rod - reference).abs().max() <= tolerance


def test_scale_free_global_subtracts_one_mean_over_all_rods():
    grid = _grid()
    intensity = _intensity(grid)
    intensity[0, 1, 5] = 0.0  # zero counts: unmeasured, left out of the mean
    X = scale_free(intensity, None, 2.0, per_rod=False)
    value, measured = X[:, :3], X[:, 3:]
    assert measured[0, 1, 5] == 0 and measured.sum() == intensity.size - 1
    # zero mean over all measured points of a structure, not per rod: the ratios between rods stay
    np.testing.assert_allclose((value * measured).sum((-2, -1)) / measured.sum((-2, -1)), 0, atol=1e-6)
    log = np.log(intensity[2])
    np.testing.assert_allclose(value[2], (log - log.mean()) / 2.0, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(value[2, 1] - value[2, 0], (log[1] - log[0]) / 2.0, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [-8, -3, 0, 5, 8])
def test_scale_free_global_prediction_unchanged_by_a_global_scale_but_not_by_rod_factors(k):
    grid = _grid()
    transform = InputTransform.of("scale-free-global", _normalisation(grid), grid.bragg)
    assert transform.is_scale_free and not transform.per_rod and transform.channels_per_rod == 2
    torch.manual_seed(0)
    net = build("rods", rods=3, widths=[4, 8], inputs_per_rod=2).eval()
    intensity = _intensity(grid)
    rod_factors = np.array([1.0, 10.0, 0.1])[:, None]
    with torch.no_grad():
        reference = net(torch.from_numpy(transform(intensity)))
        scaled = net(torch.from_numpy(transform(intensity * 10.0 ** k)))
        per_rod = net(torch.from_numpy(transform(intensity * rod_factors)))
    tolerance = 1e-4 * reference.abs().max()
    assert (scaled - reference).abs().max() <= tolerance
    assert (per_rod - reference).abs().max() > 100 * tolerance  # rod ratios reach the network


def test_standardised_transform_is_the_papers_input():
    grid = _grid()
    norm = _normalisation(grid)
    intensity = _intensity(grid).astype(np.float32)
    transform = InputTransform.of("standardised", norm, grid.bragg)
    np.testing.assert_array_equal(transform(intensity),
                                  norm.apply_x(network_input(intensity.astype(np.float64), grid.bragg)))
    mask = np.ones(intensity.shape, dtype=bool)
    mask[0, 0, 3] = False
    with pytest.raises(InputError, match="scale-free"):
        transform(intensity, mask)
    with pytest.raises(InputError, match="input must be"):
        InputTransform.of("log", norm, grid.bragg)


def test_checkpoints_record_their_input(tmp_path):
    from mamba_ctr.nn.checkpoint import load_checkpoint, save_checkpoint
    from mamba_ctr.nn.predict import predict_field

    grid = _grid()
    norm = _normalisation(grid)
    torch.manual_seed(1)
    kwargs = {"rods": 3, "widths": [4, 8], "inputs_per_rod": 2}
    save_checkpoint(tmp_path / "free", build("rods", **kwargs), arch="rods", arch_kwargs=kwargs, grid=grid,
                    normalisation=norm, extra={"train_config": {"input": "scale-free"}})
    free = load_checkpoint(tmp_path / "free")
    assert InputTransform.of_checkpoint(free).name == "scale-free"
    intensity = _intensity(grid, 2)
    U = predict_field(free, intensity)
    for k in (-8, 8):
        np.testing.assert_allclose(predict_field(free, intensity * 10.0 ** k), U, rtol=1e-4,
                                   atol=1e-4 * np.abs(U).max())
    masked = intensity.copy()
    masked[0, 0, :5] = 0.0  # unmeasured points: masked, not refused
    mask = np.ones(intensity.shape, dtype=bool)
    mask[0, 0, :5] = False
    np.testing.assert_allclose(predict_field(free, masked), predict_field(free, intensity, mask=mask), rtol=1e-6)
    plain = {"rods": 3, "widths": [4, 8]}
    save_checkpoint(tmp_path / "old", build("rods", **plain), arch="rods", arch_kwargs=plain, grid=grid,
                    normalisation=norm)
    old = load_checkpoint(tmp_path / "old")
    assert InputTransform.of_checkpoint(old).name == "standardised"
    with pytest.raises(InputError, match="> 0"):
        predict_field(old, masked)


def test_resample_rod_interpolates_ln_I_and_masks_gaps():
    model_L = np.arange(0.5, 3.0, 0.025)
    L = np.concatenate([np.arange(0.61, 1.5, 0.01), np.arange(1.7, 2.51, 0.01)])
    intensity = np.exp(-2.0 * L + 1.0)  # ln I linear in L: interpolation exact
    values, mask = resample_rod(L[::-1], intensity[::-1], model_L)
    assert values.shape == mask.shape == model_L.shape
    inside = (model_L >= L[0]) & (model_L <= L[-1])
    assert not mask[~inside].any()
    in_gap = (model_L > 1.5 + 0.025) & (model_L < 1.7 - 0.025)
    assert in_gap.any() and not mask[in_gap].any()
    near = inside & ~((model_L > 1.49 + 0.025) & (model_L < 1.7 - 0.025))
    assert mask[near].all()
    np.testing.assert_allclose(values[mask], np.exp(-2.0 * model_L[mask] + 1.0), rtol=1e-9)
    assert (values[~mask] == 1.0).all()
    _, empty = resample_rod(np.array([1.0]), np.array([2.0]), model_L)
    assert not empty.any()
    with pytest.raises(InputError):
        resample_rod(L, intensity[:-1], model_L)


def test_compare_has_one_noisy_condition_per_count_level(tmp_path):
    from mamba_ctr.workflows import compare

    config = compare.Config(out=tmp_path / "c", presets=("paper-4L",), n=2, methods=("lsq",), counts=(100, 1e4))
    cases = compare._cases(config, "paper-4L")
    assert list(cases) == ["noise-free", "counts=1e+02", "counts=1e+04"]
    rel = [np.abs(cases[c].intensity / cases["noise-free"].intensity - 1)[..., ~cases[c].preset.grid.bragg].mean()
           for c in ("counts=1e+02", "counts=1e+04")]
    assert rel[0] > 3 * rel[1]
    assert list(compare._cases(compare.Config(out=tmp_path / "d", presets=("paper-4L",), n=1, methods=("lsq",)),
                               "paper-4L")) == ["noise-free", "noisy"]
    with pytest.raises(InputError, match="counts"):
        compare.Config(out=tmp_path / "e", methods=("lsq",), counts=(100, 0))


def test_measured_rods_on_a_model_grid():
    from mamba_ctr.io.measured import MeasuredRods

    grid = _grid(rods=3, n_L=40)  # rods 00, 10, 20; L 0.05 … 2.0 in steps of 0.05
    L = np.arange(0.5, 1.6, 0.01)
    h = np.r_[np.zeros(L.size), np.ones(L.size), np.full(L.size, 3)]
    F = np.exp(-np.tile(L, 3))
    measured = MeasuredRods.from_points(h, np.zeros(h.size), np.tile(L, 3), F, quantity="F")
    intensity, mask, left_out = rods_on_grid(measured, grid)
    assert left_out == ["3 0"] and not mask[2].any()
    inside = (grid.L >= 0.5) & (grid.L <= L[-1])
    assert (mask[0] == inside).all() and (mask[1] == inside).all()
    np.testing.assert_allclose(intensity[0][inside], np.exp(-2 * grid.L[inside]), rtol=1e-9)


def test_a_global_input_model_trains_records_its_nuisances_and_ignores_the_scale(tmp_path, monkeypatch):
    from mamba_ctr import models
    from mamba_ctr.data.augment import Augmentation
    from mamba_ctr.nn import batches
    from mamba_ctr.nn.predict import check_prediction, predict_field
    from mamba_ctr.nn.train import TrainConfig, train
    from mamba_ctr.presets import get
    from mamba_ctr.simulate import simulate

    config = TrainConfig(stream="paper-4L", arch="rods", arch_kwargs={"widths": [4, 8]}, input="scale-free-global",
                         augment=True, augmentation={"rod_scale": "0", "full_coverage": "1"}, epochs=1,
                         batch_size=8, samples_per_epoch=16, val_samples=8, pilot_samples=32, out=tmp_path / "m",
                         progress=False)
    made = []
    monkeypatch.setattr(batches, "Augmentation", type("Recorded", (Augmentation,), {
        "from_options": classmethod(lambda cls, options: made.append(Augmentation.from_options(options)) or made[-1])}))
    train(config)
    assert made and all(a == Augmentation(rod_scale=0.0, full_coverage=1.0) for a in made)  # the stream's nuisances
    checkpoint = models.load(tmp_path / "m")
    stored = checkpoint.metadata["train_config"]
    assert stored["input"] == "scale-free-global" and stored["augmentation"] == {"rod_scale": "0",
                                                                                "full_coverage": "1"}
    preset = get("paper-4L")
    rods = simulate(preset.sample(3, seed=5), preset.grid)
    U = predict_field(checkpoint, rods.intensity)
    np.testing.assert_allclose(predict_field(checkpoint, rods.intensity * 1e-7), U, rtol=1e-4,
                               atol=1e-4 * np.abs(U).max())
    check = check_prediction(checkpoint, rods.intensity * 1e-7, U)
    assert check is not None and np.allclose(check.scale, 1e-7, rtol=0.9)  # one global scale, never flagged
    assert check.scale.shape == (3,) and not check.scale_checked and check.r1_threshold == 0.03  # the default
    checkpoint.metadata["r1_threshold"] = 0.5  # a model's own threshold (recorded when it is exported)
    assert check_prediction(checkpoint, rods.intensity, U).r1_threshold == 0.5
