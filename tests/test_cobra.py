"""COBRA baseline: the two-circle solver against analytic cases, the projections against true films, the
iteration against noise-free paper-4L data, and input checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mamba_ctr import presets
from mamba_ctr.baselines.cobra import (
    CobraConfig,
    CobraProblem,
    FilmTransform,
    FitProjection,
    MaskProjection,
    cobra,
    cobra_batch,
    cobra_labels,
    cobra_remainder,
    intersect_circles,
    r_factor,
)
from mamba_ctr.physics.grid import rod_grid
from mamba_ctr.simulate import simulate


@pytest.fixture(scope="module")
def film4():
    """Preset, problem and three noise-free paper-4L structures (float64)."""
    preset = presets.get("paper-4L")
    structures = preset.sample(3, seed=0)
    rods = simulate(structures, preset.grid, dtype="float64")
    return preset, CobraProblem.from_preset(preset), structures, rods


def relative_error(U: np.ndarray, truth: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """Mean |U − U_true| / mean |U_true| over the measured points, per structure."""
    return np.abs(U - truth)[..., measured].mean(axis=(-2, -1)) / np.abs(truth[..., measured]).mean(axis=(-2, -1))


# ----------------------------------------------------------------------------- two circles
def test_two_circles_give_back_a_known_point_and_its_mirror_image():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50) + 1j * rng.normal(size=50)
    c1 = 3 * (rng.normal(size=50) + 1j * rng.normal(size=50))
    c2 = 3 * (rng.normal(size=50) + 1j * rng.normal(size=50))
    r1, r2 = np.abs(x - c1), np.abs(x - c2)
    found, meet = intersect_circles(c1, r1, c2, r2, x + 0.01)
    np.testing.assert_allclose(found, x, atol=1e-9)
    assert meet.all()
    # the other root: x reflected in the line through the centres
    axis = (c2 - c1) / np.abs(c2 - c1)
    mirror = c1 + axis * np.conj((x - c1) / axis)
    other, _ = intersect_circles(c1, r1, c2, r2, mirror)
    np.testing.assert_allclose(other, mirror, atol=1e-9)


@pytest.mark.parametrize(("c2", "r1", "r2", "expected"), [
    (4.0, 1.0, 1.0, 2.0),    # apart: the middle of the gap
    (1.0, 3.0, 1.0, 2.5),    # circle 2 inside circle 1
    (1.0, 1.0, 3.0, -1.5),   # circle 1 inside circle 2
    (4.0, 1.0, 2.0, 1.5),    # apart, unequal radii
])
def test_circles_that_do_not_meet_give_the_least_squares_point(c2, r1, r2, expected):
    x, meet = intersect_circles(0.0, r1, c2, r2, 0.3j)
    assert not meet
    assert x == pytest.approx(expected, abs=1e-12)
    # brute force over the plane: no point fits both circles better
    g = np.linspace(-5, 5, 801)
    plane = g[None, :] + 1j * g[:, None]
    cost = (np.abs(plane) - r1) ** 2 + (np.abs(plane - c2) - r2) ** 2
    best = (abs(x) - r1) ** 2 + (abs(x - c2) - r2) ** 2
    assert best <= cost.min() + 1e-12


def test_coincident_centres_keep_the_guess_direction():
    x, meet = intersect_circles(1 + 1j, 2.0, 1 + 1j, 2.0, 1 + 5j)
    assert not meet
    assert x == pytest.approx(1 + 3j)


@pytest.mark.parametrize(("continuity", "size"), [(True, 5.0), (False, 0.5)])
def test_pair_solve_is_exact_for_a_remainder_constant_in_the_film_frame(film4, continuity, size):
    """With continuity any remainder is followed; without, a small one (the root nearer 0) is."""
    preset, problem, _, _ = film4
    grid, measured = preset.grid, ~preset.grid.bragg
    reference = problem.substrate + problem.nominal_field
    origin = 8.0
    remainder = size * (0.8 - 0.6j) * np.exp(1j * grid.qz * origin)[None, :] * np.ones((grid.n_rods, 1))
    intensity = np.abs(reference + remainder) ** 2
    found = cobra_remainder(intensity, reference, grid.qz, measured, origin, continuity)
    np.testing.assert_allclose(found[:, measured], remainder[:, measured], rtol=1e-9, atol=1e-9)
    assert np.all(np.isnan(found[:, ~measured]))


# ----------------------------------------------------------------------------- projections
def test_transform_round_trip_and_fill_of_bragg_points(film4):
    preset, _, _, rods = film4
    grid, measured = preset.grid, ~preset.grid.bragg
    U = rods.film_field[0]
    transform = FilmTransform(grid, xy_points=8, z_oversampling=1)
    filled = transform.fill(np.where(measured, U, np.nan), origin=8.0)
    np.testing.assert_allclose(transform.field(transform.density(filled))[:, measured], U[:, measured], atol=1e-9)
    # Bragg points interpolated along L in the film frame: close to the true film
    assert relative_error(filled[:, transform.m][:, ~measured], U[:, ~measured], np.ones(6, bool)) < 0.1


def test_projections_keep_a_true_film_nearly_unchanged(film4):
    preset, problem, _, rods = film4
    grid, measured = preset.grid, ~preset.grid.bragg
    low, high = problem.atom_range
    z_range = (low - 1.0, high + 1.0)
    U = rods.film_field[0]
    truth = np.where(measured, U, np.nan)
    fit = FitProjection(grid, z_range, z_step=0.16, rcond=1e-2)
    assert relative_error(fit(truth), U, measured) < 2e-3
    mask = MaskProjection(grid, z_range, CobraConfig(projection="mask"), origin=8.0)
    assert relative_error(mask(truth), U, measured) < 0.05
    # truncation ripples make the true density negative: positivity changes it much more (documented)
    positive = MaskProjection(grid, z_range, CobraConfig(projection="mask", positivity=True), origin=8.0)
    assert relative_error(positive(truth), U, measured) > 0.1


# ----------------------------------------------------------------------------- the iteration
def test_cobra_recovers_paper_4l_films_far_better_than_the_nominal_start(film4):
    preset, problem, _, rods = film4
    measured = ~preset.grid.bragg
    batch = cobra_batch(rods.intensity, problem, CobraConfig(max_iterations=15), grid=preset.grid, progress=False)
    start = relative_error(problem.nominal_field[None], rods.film_field, measured)  # measured 0.33-0.39
    found = relative_error(batch.film_field, rods.film_field, measured)            # measured 0.07-0.10
    assert np.all(found < 0.5 * start), (found, start)
    assert np.all(batch.r_reference < 0.1 * batch.r_start)                         # 0.001 vs 0.23-0.27
    for result, intensity in zip(batch.results, rods.intensity, strict=True):
        nominal_total = problem.substrate + problem.nominal_field
        assert result.r_reference[0] == pytest.approx(r_factor(nominal_total, intensity, measured))
        assert result.r_reference[result.best_iteration] == result.r_reference.min()
        assert result.change.size == result.iterations == result.r_factor.size - 1
    assert batch.film_field.shape == rods.film_field.shape and batch.seconds.shape == (3,)


def test_textbook_mask_projection_also_converges_towards_the_truth(film4):
    preset, problem, _, rods = film4
    measured = ~preset.grid.bragg
    result = cobra(rods.intensity[0], problem, CobraConfig(projection="mask", max_iterations=4, z_oversampling=1,
                                                           xy_points=8))
    start = relative_error(problem.nominal_field, rods.film_field[0], measured)
    assert relative_error(result.film_field, rods.film_field[0], measured) < 0.5 * start
    assert result.r_reference[-1] < 0.25 * result.r_reference[0]


def test_cobra_labels_returns_every_label(film4):
    preset, _, structures, rods = film4
    batch, labels = cobra_labels(rods.intensity[:1], preset, CobraConfig(max_iterations=2))
    assert list(labels) == list(preset.labels(structures[:1]))
    assert all(v.shape == (1,) for v in labels.values())
    assert batch.film_field.shape == (1, *preset.grid.shape)


# ----------------------------------------------------------------------------- bad input
def test_bad_intensities_are_refused_before_any_work(film4):
    _, problem, _, rods = film4
    I = rods.intensity[0].copy()
    with pytest.raises(ValueError, match="shape"):
        cobra(I[:, :100], problem)
    with pytest.raises(ValueError, match="shape"):
        cobra_batch(I, problem)  # one structure where a batch is expected
    bad = I.copy()
    bad[3, 10] = np.nan
    with pytest.raises(ValueError, match="finite"):
        cobra(bad, problem)
    bad[3, 10] = -1.0
    with pytest.raises(ValueError, match="≥ 0"):
        cobra(bad, problem)
    with pytest.raises(ValueError, match="grid"):
        cobra(I, problem, grid=rod_grid(3, 3, 40, 5.0))
    with pytest.raises(TypeError):
        cobra(I, "paper-4L")
    I[:, 39] = np.inf  # Bragg points are never used
    assert cobra(I, problem, CobraConfig(max_iterations=1)).iterations == 1


@pytest.mark.parametrize("change", [
    {"max_iterations": 0}, {"tolerance": -1.0}, {"projection": "fft"}, {"mixing": 0.0}, {"rcond": 0.0},
    {"positivity": True}, {"column_radius": -1.0, "projection": "mask"}, {"xy_points": 1.5}, {"origin": np.nan},
])
def test_bad_settings_are_refused(change):
    with pytest.raises(ValueError):
        CobraConfig(**change)


def test_bad_problems_are_refused(film4):
    _, problem, _, _ = film4
    with pytest.raises(ValueError, match="shape"):
        dataclasses.replace(problem, nominal_field=problem.nominal_field[:, :10])
    with pytest.raises(ValueError, match="atom_range"):
        dataclasses.replace(problem, atom_range=(5.0, 1.0))
    with pytest.raises(ValueError, match="xy_points"):
        FilmTransform(problem.grid, xy_points=6)
    with pytest.raises(ValueError, match="uniform"):
        FilmTransform(dataclasses.replace(problem.grid, L=problem.grid.L ** 1.01))
