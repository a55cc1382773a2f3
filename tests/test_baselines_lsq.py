"""Direct least-squares fits of intensities (ROD/GenX style) and the shared noise model."""

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.baselines.lsq import GlobalOptions, fit_intensities, fit_intensity, parameter_uncertainties
from mamba_ctr.baselines.noise import NoiseModel, add_noise
from mamba_ctr.reconstruct.parameters import ParameterSpace
from mamba_ctr.reconstruct.refine import exact_recovery

FOUR = mamba_ctr.presets.get("paper-4L")
SPACE = ParameterSpace(FOUR)
GRID = FOUR.grid


@pytest.fixture(scope="module")
def truth():
    s = FOUR.sample(2, seed=21)
    return s, mamba_ctr.simulate(s, GRID, dtype="float64").intensity


def _recovered(fit_labels, structures, tolerance=1e-6):
    return exact_recovery(FOUR.labels(structures), fit_labels, FOUR.label_specs(), tolerance)


# ------------------------------------------------------------------- fits
def test_sqrt_fit_recovers_from_nominal(truth):
    s, I = truth
    fits = fit_intensities(I, FOUR, transform="sqrt", progress=False)
    assert _recovered(fits.labels, s).all()
    assert np.all(fits.values("r1") < 1e-8) and np.all(fits.values("log_r1") < 1e-8)
    assert np.all(fits.values("best_start") == 0) and np.all(fits.values("n_points") == 16 * 234)


def test_log_fit_recovers_from_a_nearby_start(truth):
    s, I = truth
    start = SPACE.perturbed(SPACE.vector(s), np.random.default_rng(3), d_rmse=0.01, p_rmse=0.03)
    fits = fit_intensities(I, FOUR, start=start, progress=False)
    assert _recovered(fits.labels, s).all()
    assert fits.values("transform").tolist() == ["log", "log"]
    assert np.all(fits.cost < 1e-12)


def test_rod_scales_are_found(truth):
    s, I = truth
    g = np.linspace(0.9, 1.1, GRID.n_rods)
    for transform in ("log", "sqrt"):
        fit = fit_intensity(I[0] * g[:, None], FOUR, start=SPACE.vector(s[0])[0] + 1e-4, transform=transform,
                            scale="rods")
        np.testing.assert_allclose(fit.scales, g, rtol=1e-7)
        assert fit.r1 < 1e-8
    fit = fit_intensity(I[0] * 2.5, FOUR, start=SPACE.vector(s[0])[0], transform="sqrt", scale="global")
    np.testing.assert_allclose(fit.scales, 2.5, rtol=1e-9)


def test_multi_start_is_keyed_and_stops_early(truth):
    _, I = truth
    far = SPACE.lower + 0.02 * (SPACE.upper - SPACE.lower)  # a poor first start in a corner of the bounds
    runs = [fit_intensity(I[0], FOUR, start=far, transform="sqrt", n_starts=3, seed=5, index=1)
            for _ in range(2)]
    np.testing.assert_array_equal(runs[0].parameters, runs[1].parameters)
    assert runs[0].n_starts == 3 and runs[0].n_simulated == runs[1].n_simulated
    early = fit_intensity(I[0], FOUR, transform="sqrt", n_starts=3, stop_cost=1e-12)
    assert early.n_starts == 1 and early.cost <= 1e-12


def test_global_search_keeps_the_start_and_polishes(truth):
    s, I = truth
    start = SPACE.perturbed(SPACE.vector(s[1]), np.random.default_rng(4), d_rmse=0.01)[0]
    fit = fit_intensity(I[1], FOUR, start=start, transform="sqrt", global_search=True,
                        global_options=GlobalOptions(popsize=3, maxiter=3))
    assert fit.best_start == -1 and fit.n_simulated > 3 * 3 * SPACE.size
    assert _recovered({k: np.array([v]) for k, v in fit.labels.items()}, s[1]).all()


def test_uncertainties_follow_the_linear_formula():
    rng = np.random.default_rng(0)
    J = rng.normal(size=(50, 3))
    r = rng.normal(size=50)
    expected = np.sqrt(np.diag(np.linalg.inv(J.T @ J)) * (r @ r) / 47)
    np.testing.assert_allclose(parameter_uncertainties(J, r, 47), expected, rtol=1e-10)
    degenerate = np.column_stack([J, J[:, 0] + J[:, 1]])  # the sum direction is not determined
    sigma = parameter_uncertainties(degenerate, r, 46)
    assert np.all(np.isinf(sigma[[0, 1, 3]])) and np.isfinite(sigma[2])


def test_noisy_fit_has_unit_chi2_and_calibrated_errors():
    s = FOUR.sample(6, seed=30)
    I = mamba_ctr.simulate(s, GRID, dtype="float64").intensity
    noisy = add_noise(I, GRID, NoiseModel(counts=2000, rod_scale=0.03, seed=1))
    fits = fit_intensities(noisy.intensity, FOUR, start=SPACE.vector(s), transform="sqrt", scale="rods",
                           sigma=noisy.sigma, weight_by_sigma=True, progress=False)
    chi2 = fits.values("chi2_red")
    assert np.all((chi2 > 0.85) & (chi2 < 1.15))
    z = (fits.parameters - SPACE.vector(s)) / fits.values("uncertainties")
    finite = np.isfinite(z) & (z != 0)
    assert 0.6 < np.std(z[finite]) < 1.5
    np.testing.assert_allclose(fits.values("scales"), noisy.rod_scale, rtol=0.03)


def test_fit_intensity_bad_inputs(truth):
    _, I = truth
    with pytest.raises(ValueError, match="shape"):
        fit_intensity(I[0, :, :100], FOUR)
    bad = I[0].copy()
    bad[2, 5] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_intensity(bad, FOUR)
    mask = np.ones(GRID.shape, bool)
    mask[2, 5] = False
    bad[2, 5] = 0.0
    with pytest.raises(ValueError, match="I > 0"):
        fit_intensity(bad, FOUR)
    bad[2, 5] = -1.0
    with pytest.raises(ValueError, match="negative"):
        fit_intensity(bad, FOUR, transform="sqrt")
    with pytest.raises(ValueError, match="shape"):
        fit_intensity(I[0], FOUR, start=np.zeros(3))
    with pytest.raises(ValueError, match="transform"):
        fit_intensity(I[0], FOUR, transform="linear")
    with pytest.raises(ValueError, match="scale"):
        fit_intensity(I[0], FOUR, scale="per-point")
    with pytest.raises(ValueError, match="sigma"):
        fit_intensity(I[0], FOUR, sigma=np.zeros(GRID.shape))
    with pytest.raises(ValueError, match="mask"):
        fit_intensity(I[0], FOUR, mask=np.ones(GRID.shape))
    with pytest.raises(ValueError, match="n_starts"):
        fit_intensity(I[0], FOUR, n_starts=2, global_search=True)
    with pytest.raises(ValueError, match="shape"):
        fit_intensities(I[0], FOUR)
    fit = fit_intensity(np.where(mask, I[0], np.nan), FOUR, mask=mask, start=SPACE.vector(FOUR.sample(2, 21)[0]),
                        transform="sqrt")
    assert fit.n_points == 16 * 234 - 1  # a masked NaN is fine


# ------------------------------------------------------------------ noise
def test_noise_is_reproducible_and_keyed_by_structure(truth):
    _, I = truth
    model = NoiseModel(counts=500, seed=9)
    a, b = add_noise(I, GRID, model), add_noise(I, GRID, model)
    np.testing.assert_array_equal(a.intensity, b.intensity)
    alone = add_noise(I[1], GRID, model, start=1)
    np.testing.assert_array_equal(alone.intensity[0], a.intensity[1])
    assert not np.array_equal(add_noise(I, GRID, NoiseModel(counts=500, seed=10)).intensity, a.intensity)


def test_noise_counts_have_poisson_mean_and_variance():
    flat = np.full((40, *GRID.shape), 2.0)
    noisy = add_noise(flat, GRID, NoiseModel(counts=50.0, level="flux", rod_scale=0.0, seed=3))
    measured = noisy.counts[..., ~GRID.bragg]
    assert measured.mean() == pytest.approx(100.0, abs=0.2)  # λ = 50 × 2, 150,000 draws
    assert measured.var() == pytest.approx(100.0, rel=0.02)
    np.testing.assert_allclose(noisy.intensity[..., ~GRID.bragg], measured / 50.0)
    np.testing.assert_array_equal(noisy.intensity[..., GRID.bragg], 2.0)
    assert np.all(np.isinf(noisy.sigma[..., GRID.bragg]))


def test_rod_median_level_and_rod_scales(truth):
    _, I = truth
    many = np.repeat(I[:1], 200, axis=0)
    noisy = add_noise(many, GRID, NoiseModel(counts=300, rod_scale=0.05, distribution="lognormal", seed=4))
    assert np.log(noisy.rod_scale).std() == pytest.approx(0.05, rel=0.05)
    expected = noisy.exposure[:, :, None] * noisy.rod_scale[:, :, None] * many
    np.testing.assert_allclose(np.median(expected[..., ~GRID.bragg], axis=-1), 300)
    uniform = add_noise(I, GRID, NoiseModel(rod_scale=0.04, distribution="uniform"))
    assert np.all(np.abs(uniform.rod_scale - 1) <= 0.04)


def test_noise_bad_inputs(truth):
    _, I = truth
    with pytest.raises(ValueError, match="counts"):
        NoiseModel(counts=0)
    with pytest.raises(ValueError, match="level"):
        NoiseModel(level="peak")
    with pytest.raises(ValueError, match="rod_scale"):
        NoiseModel(rod_scale=-0.1)
    with pytest.raises(ValueError, match="shape"):
        add_noise(I[:, :, :10], GRID)
    negative = I.copy()
    negative[0, 0, 0] = -1
    with pytest.raises(ValueError, match="≥ 0"):
        add_noise(negative, GRID)
