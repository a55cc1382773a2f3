"""The bounded Levenberg–Marquardt solver (mamba_ctr.reconstruct.levenberg) against exact answers and scipy."""

import numpy as np
import pytest
from scipy.optimize import least_squares, lsq_linear

import mamba_ctr
from mamba_ctr.baselines.lsq import fit_intensities
from mamba_ctr.reconstruct.levenberg import levenberg_marquardt
from mamba_ctr.reconstruct.parameters import ParameterSpace
from mamba_ctr.reconstruct.refine import SolverOptions, exact_recovery, refine_fields

FOUR = mamba_ctr.presets.get("paper-4L")


def _linear(seed=0, m=40, p=6):
    rng = np.random.default_rng(seed)
    A, b = rng.standard_normal((m, p)) * np.logspace(0, 3, p), rng.standard_normal(m)
    return A, b


def test_linear_problem_inside_the_bounds_gives_the_least_squares_solution():
    A, b = _linear()
    x_ls = np.linalg.lstsq(A, b, rcond=None)[0]
    wide = 10 * np.abs(x_ls).max() + 1
    out = levenberg_marquardt(lambda x: A @ x - b, lambda x: A, np.zeros(6), -wide * np.ones(6), wide * np.ones(6))
    assert out.success
    np.testing.assert_allclose(out.x, x_ls, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(out.jac, A)


def test_active_bounds_match_the_bounded_linear_solution():
    A, b = _linear(1)
    lower, upper = -0.02 * np.ones(6), 0.02 * np.ones(6)
    expected = lsq_linear(A, b, bounds=(lower, upper), tol=1e-14).x
    out = levenberg_marquardt(lambda x: A @ x - b, lambda x: A, np.zeros(6), lower, upper, max_nfev=500)
    assert np.all(out.x >= lower) and np.all(out.x <= upper)
    assert np.any(np.isclose(out.x, lower) | np.isclose(out.x, upper))  # the test has bounds that bind
    np.testing.assert_allclose(out.x, expected, atol=1e-9)


def test_rosenbrock_from_a_far_start():
    def fun(x):
        return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])

    def jac(x):
        return np.array([[-20 * x[0], 10.0], [-1.0, 0.0]])

    out = levenberg_marquardt(fun, jac, np.array([-1.2, 1.0]), np.array([-5.0, -5.0]), np.array([5.0, 5.0]))
    assert out.success and out.status in (1, 2, 3)
    np.testing.assert_allclose(out.x, [1, 1], atol=1e-7)
    scipy = least_squares(fun, [-1.2, 1.0], jac=jac, bounds=([-5, -5], [5, 5]), xtol=1e-12)
    np.testing.assert_allclose(out.x, scipy.x, atol=1e-7)


def test_evaluation_limit_is_reported():
    def fun(x):
        return np.array([10 * (x[1] - x[0] ** 2), 1 - x[0]])

    def jac(x):
        return np.array([[-20 * x[0], 10.0], [-1.0, 0.0]])

    out = levenberg_marquardt(fun, jac, np.array([-1.2, 1.0]), -5 * np.ones(2), 5 * np.ones(2), max_nfev=3,
                              final_jacobian=False)
    assert out.status == 0 and not out.success and out.nfev == 3 and "max_nfev" in out.message
    assert out.jac is None


def test_refinement_with_lm_recovers_structures_exactly():
    """U fit from nominal and √I fit from a perturbed start, as trf does (paper-4L)."""
    s = FOUR.sample(2, seed=7)
    rods = mamba_ctr.simulate(s, FOUR.grid, dtype="float64")
    fits = refine_fields(rods.film_field, FOUR, options=SolverOptions(method="lm"), progress=False)
    assert fits.success.all() and np.all(fits.cost < 1e-12)
    assert exact_recovery(FOUR.labels(s), fits.labels, FOUR.label_specs(), tolerance=1e-6).all()
    space = ParameterSpace(FOUR)
    start = space.perturbed(space.vector(s), np.random.default_rng(3))
    lm = fit_intensities(rods.intensity, FOUR, start=start, transform="sqrt", options=SolverOptions(method="lm"),
                         progress=False)
    trf = fit_intensities(rods.intensity, FOUR, start=start, transform="sqrt", progress=False)
    assert exact_recovery(FOUR.labels(s), lm.labels, FOUR.label_specs(), tolerance=1e-6).all()
    for spec in FOUR.label_specs():  # parameters that the data do not fix may differ; the labels that they fix not
        if spec.identifiable:
            np.testing.assert_allclose(lm.labels[spec.name], trf.labels[spec.name], atol=1e-6, err_msg=spec.name)


def test_bad_method():
    with pytest.raises(ValueError, match="method must be 'trf' or 'lm', got 'newton'"):
        SolverOptions(method="newton")
