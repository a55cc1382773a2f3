"""Structure parameter vectors and the least-squares refinement of the structure against a film field U."""

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.reconstruct.parameters import ParameterSpace, parameter_space
from mamba_ctr.reconstruct.refine import (
    SimulatedLeastSquares,
    SolverOptions,
    exact_recovery,
    field_residual,
    refine_field,
    refine_fields,
)

PAPER = mamba_ctr.presets.get("paper-12L")
FOUR = mamba_ctr.presets.get("paper-4L")
VARIABLE = mamba_ctr.presets.get("paper-11-13L-rough")


def _field(preset, structures):
    return mamba_ctr.simulate(structures, preset.grid, dtype="float64").film_field


# ------------------------------------------------------------ parameter space
def test_layout_of_the_paper_preset():
    space = ParameterSpace(PAPER)
    assert space.size == 4 * 12 + 4
    assert space.names[:2] == ("c_1", "c_2") and space.names[12] == "z_B_1" and space.names[-1] == "p_4"
    assert space.names[space.block("z_Oeq")][0] == "z_Oeq_1"
    np.testing.assert_allclose(space.lower[space.block("c")][:8], 3.805)
    np.testing.assert_allclose(space.upper[space.block("c")][8:], 3.89)
    np.testing.assert_allclose(space.lower[space.block("z_Oap")], -0.05)
    assert np.all(space.lower[space.block("p")] == 0) and np.all(space.upper[space.block("p")] == 1)
    rough = ParameterSpace(mamba_ctr.presets.get("paper-12L-rough"))
    assert rough.names[-1] == "occ_top" and (rough.lower[-1], rough.upper[-1]) == (0.3, 1.0)
    wide = ParameterSpace(PAPER, widen=2.0)
    np.testing.assert_allclose(wide.upper[wide.block("z_B")], 0.6)


@pytest.mark.parametrize("preset, n_film", [(PAPER, 4), (FOUR, 2), (VARIABLE, 3), (VARIABLE, 5)])
def test_vector_structures_round_trip(preset, n_film):
    space = ParameterSpace(preset, n_film)
    s = preset.sample(300, seed=2)
    s = s[preset.parameters(s)["n_film"] == n_film]
    x = space.vector(s)
    assert space.inside(x).all()  # the bounds are the sampling ranges
    back = space.structures(x)
    for name in ("c", "z", "fraction", "occupancy"):
        np.testing.assert_array_equal(getattr(back, name), getattr(s, name))
    np.testing.assert_allclose(space.from_labels(preset.labels(s)), x, rtol=0, atol=1e-12)


def test_nominal_start_is_the_nominal_structure_with_mid_range_p():
    space = ParameterSpace(PAPER)
    x = space.nominal()
    nominal = PAPER.parameters(PAPER.nominal())
    np.testing.assert_array_equal(x[space.block("c")], nominal["c"][0, 1:])
    np.testing.assert_array_equal(x[space.block("z_Oeq")], 0.5)
    np.testing.assert_array_equal(x[space.block("p")], 0.5)
    assert space.inside(x).all()


def test_labels_walk_up_the_heights():
    """d labels shifted by δ on one layer move that atom and no other: heights, not fractions, are walked."""
    space = ParameterSpace(PAPER)
    s = PAPER.sample(1, seed=5)
    labels = PAPER.labels(s)
    labels["d_B_3"] = labels["d_B_3"] + 0.01
    labels["d_B_4"] = labels["d_B_4"] - 0.01
    moved = space.structures(space.from_labels(labels)).heights - s.heights
    expected = np.zeros_like(moved)
    expected[0, 3, 1] = 0.01
    np.testing.assert_allclose(moved, expected, atol=1e-12)


def test_perturbed_estimate_has_the_stated_label_errors():
    space = ParameterSpace(PAPER)
    s = PAPER.sample(2000, seed=3)
    x = space.perturbed(space.vector(s), np.random.default_rng(0), d_rmse=0.015, p_rmse=0.05)
    true, rough = PAPER.labels(s), space.labels(x)
    for name in ("d_B_5", "d_O_eq_9", "c_4"):
        assert np.sqrt(np.mean((true[name] - rough[name]) ** 2)) == pytest.approx(0.015, rel=0.1)
    assert np.sqrt(np.mean((true["p_2"] - rough["p_2"]) ** 2)) == pytest.approx(0.05, rel=0.15)
    assert space.inside(x).all()


def test_parameter_space_bad_inputs():
    space = ParameterSpace(PAPER)
    with pytest.raises(ValueError, match="shape"):
        space.structures(np.zeros(space.size - 1))
    with pytest.raises(ValueError, match="finite"):
        space.structures(np.full(space.size, np.nan))
    with pytest.raises(ValueError, match="n_film"):
        ParameterSpace(VARIABLE, n_film=6)
    with pytest.raises(TypeError, match="PerovskitePreset"):
        ParameterSpace("paper-12L")
    with pytest.raises(ValueError, match="lack"):
        space.from_labels({"c_1": 3.9})
    labels = PAPER.labels(PAPER.sample(2, seed=0))
    labels["d_B_2"][1] = np.nan
    with pytest.raises(ValueError, match="d_B_2"):
        space.from_labels(labels)
    thin = VARIABLE.sample(200, seed=0)
    with pytest.raises(ValueError, match="film layers"):
        ParameterSpace(VARIABLE, n_film=4).vector(thin)
    assert parameter_space("4L").size == 4 * 4 + 4


# ------------------------------------------------------------------ engine
def test_jacobian_of_the_linear_parameters_is_exact():
    """U is linear in p: its column must equal U(p_i = 1) − U(p_i = 0) of that layer."""
    space = ParameterSpace(FOUR)
    x = space.vector(FOUR.sample(1, seed=4))[0]
    problem = SimulatedLeastSquares(space, field_residual(np.zeros(FOUR.grid.shape, complex)), quantity="field")
    J = problem.jac(x)
    i = space.names.index("p_3")
    high, low = x.copy(), x.copy()
    high[i], low[i] = 1.0, 0.0
    U = problem.simulate_rows(np.stack([high, low]))
    expected = U[0] - U[1]
    np.testing.assert_allclose(J[:, i], np.concatenate([expected.real.ravel(), expected.imag.ravel()]),
                               rtol=1e-6, atol=1e-6 * np.abs(expected).max())
    assert problem.n_simulated == 1 + space.size + 2  # one base, one batch of P, the two checks


# --------------------------------------------------------------- the U fit
def test_refine_recovers_four_layer_structures_from_nominal():
    s = FOUR.sample(3, seed=7)
    fits = refine_fields(_field(FOUR, s), FOUR, progress=False)
    assert fits.success.all()
    assert exact_recovery(FOUR.labels(s), fits.labels, FOUR.label_specs(), tolerance=1e-6).all()
    assert np.all(fits.cost < 1e-12)
    assert fits.parameters.shape == (3, ParameterSpace(FOUR).size)
    assert np.all(fits.time > 0) and np.all(fits.n_evaluations >= 1)


def test_refine_from_labels_and_with_weights():
    s = FOUR.sample(1, seed=8)
    space = ParameterSpace(FOUR)
    labels = space.labels(space.perturbed(space.vector(s), np.random.default_rng(1)))
    weights = np.ones(FOUR.grid.shape)
    weights[3] = 0  # a dropped rod changes nothing about exactness
    fit = refine_field(_field(FOUR, s)[0], FOUR, start=labels, weights=weights)
    assert fit.success and fit.cost < 1e-12
    for name, value in FOUR.labels(s).items():
        if name != "c_top":
            assert fit.labels[name] == pytest.approx(value[0], abs=1e-6)


def test_refine_field_bad_inputs():
    s = FOUR.sample(1, seed=0)
    U = _field(FOUR, s)
    with pytest.raises(ValueError, match="shape"):
        refine_fields(U[:, :, :100], FOUR)
    with pytest.raises(ValueError, match="one \\(R, NL\\) field"):
        refine_field(U, FOUR)
    with pytest.raises(ValueError, match="complex"):
        refine_fields(np.abs(U), FOUR)
    bad = U.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="finite"):
        refine_fields(bad, FOUR)
    with pytest.raises(ValueError, match="shape"):
        refine_fields(U, FOUR, start=np.zeros(7))
    with pytest.raises(ValueError, match="weights"):
        refine_fields(U, FOUR, weights=np.ones((2, 2)))
    with pytest.raises(ValueError, match="preset"):
        refine_fields(U, FOUR, space=ParameterSpace(PAPER))
    with pytest.raises(ValueError, match="fd_step"):
        SolverOptions(fd_step=0.5)
