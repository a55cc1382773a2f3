"""Preset samplers: distributions, index-keyed determinism, labels."""

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.physics.presets import BLOCK

ALL = mamba_ctr.presets.names()


@pytest.fixture(scope="module")
def paper_sample():
    preset = mamba_ctr.presets.get("paper-12L")
    return preset, preset.sample(20_000, seed=1234)


def test_interface_mixing_statistics(paper_sample):
    preset, s = paper_sample
    p = preset.parameters(s)["sr_fraction"][:, list(preset.mixing_layers)]
    np.testing.assert_allclose(p.sum(axis=1), 2.0, rtol=0, atol=1e-12)
    assert p.min() >= 0 and p.max() <= 1
    np.testing.assert_allclose(p.mean(axis=0), 0.5, atol=0.01)
    np.testing.assert_allclose(p.var(axis=0), 0.065, atol=0.003)
    corr = np.corrcoef(p.T)[np.triu_indices(4, 1)]
    np.testing.assert_allclose(corr, -1 / 3, atol=0.02)


def test_parameter_ranges(paper_sample):
    preset, s = paper_sample
    prm = preset.parameters(s)
    assert np.all(prm["c"][:, 0] == 3.905) and np.all(prm["z_B"][:, 0] == 0.5) and np.all(prm["z_Oap"][:, 0] == 0)
    for name, lo, hi in (("c", 3.805, 4.005), ("z_B", 0.45, 0.55), ("z_Oap", -0.05, 0.05), ("z_Ox", 0.45, 0.55)):
        part = prm[name][:, 1:9]
        assert part.min() >= lo and part.max() <= hi
        assert part.min() < lo + 0.01 and part.max() > hi - 0.01  # the whole range is used
    assert prm["c"][:, 9:].min() >= 3.69 and prm["c"][:, 9:].max() <= 3.89
    assert np.array_equal(prm["z_Ox"], prm["z_Oy"])  # one draw for both equatorial O
    np.testing.assert_allclose(prm["c"][:, 1:9].mean(), 3.905, atol=0.002)
    assert np.all(prm["sr_fraction"][:, :7] == 1) and np.all(prm["sr_fraction"][:, 11:] == 0)
    assert np.all(prm["occupancy"] == 1)


@pytest.mark.parametrize("name", ALL)
def test_same_structure_for_same_index_in_any_batch(name):
    preset = mamba_ctr.presets.get(name)
    whole = preset.sample(2 * BLOCK + 10, seed=7)
    for start, n in ((0, 5), (BLOCK - 3, 7), (2 * BLOCK + 1, 9), (17, 1)):
        part = preset.sample(n, seed=7, start=start)
        for field in ("c", "z", "fraction", "occupancy"):
            assert np.array_equal(getattr(part, field), getattr(whole, field)[start: start + n]), (start, field)
    other_seed = preset.sample(5, seed=8)
    assert not np.array_equal(other_seed.c, whole.c[:5])


@pytest.mark.parametrize("name", ALL)
def test_labels_are_in_their_ranges(name):
    preset = mamba_ctr.presets.get(name)
    s = preset.sample(3000, seed=0)
    labels = preset.labels(s)
    specs = preset.label_specs()
    assert list(labels) == [spec.name for spec in specs]
    for spec in specs:
        value = labels[spec.name]
        assert value.shape == (3000,)
        finite = value[np.isfinite(value)]
        assert finite.size > 0, spec.name
        assert finite.min() >= spec.low - 1e-12 and finite.max() <= spec.high + 1e-12, spec.name
    assert [spec.name for spec in specs if not spec.identifiable] == ["c_top"]


def test_labels_match_physics_definition():
    preset = mamba_ctr.presets.get("paper-12L")
    s = preset.sample(3, seed=2)
    labels = preset.labels(s)
    prm = preset.parameters(s)
    c, zB = prm["c"], prm["z_B"]
    Z = np.concatenate([np.zeros((3, 1)), np.cumsum(c, axis=1)[:, :-1]], axis=1)
    j = 5
    expected = Z[:, j] + c[:, j] * zB[:, j] - (Z[:, j - 1] + c[:, j - 1] * zB[:, j - 1])
    np.testing.assert_allclose(labels[f"d_B_{j}"], expected, rtol=1e-14)
    # layer 1's lower neighbour is the nominal layer 0
    np.testing.assert_allclose(labels["d_O_ap_1"], 3.905 + c[:, 1] * prm["z_Oap"][:, 1], rtol=1e-14)
    np.testing.assert_allclose(labels["c_top"], c[:, 12])
    np.testing.assert_allclose(labels["p_2"], prm["sr_fraction"][:, 8])


def test_nominal_structure_reproduces_the_golden_nominal(golden):
    preset = mamba_ctr.presets.get("paper-12L")
    prm = preset.parameters(preset.nominal())
    np.testing.assert_allclose(prm["c"][0], golden["nominal/cn"])
    np.testing.assert_allclose(prm["sr_fraction"][0], golden["nominal/mix"])
    np.testing.assert_allclose(prm["z_B"][0], golden["nominal/z_B"])


def test_rough_preset_top_occupancy():
    preset = mamba_ctr.presets.get("paper-12L-rough")
    occ = preset.labels(preset.sample(5000, seed=0))["occ_top"]
    assert occ.min() >= 0.3 and occ.max() <= 1.0
    np.testing.assert_allclose(occ.mean(), 0.65, atol=0.01)


def test_variable_thickness_pads_with_empty_layers():
    preset = mamba_ctr.presets.get("paper-11-13L-rough")
    s = preset.sample(3000, seed=0)
    n_film = preset.parameters(s)["n_film"]
    assert set(np.unique(n_film)) == {3, 4, 5}
    labels = preset.labels(s)
    thin = n_film == 3
    assert np.all(np.isnan(labels["d_B_12"][thin])) and np.all(np.isnan(labels["c_11"][thin]))
    assert np.all(np.isfinite(labels["d_B_12"][n_film == 5]))
    assert np.all(s.occupancy[thin][:, 12:] == 0)


@pytest.mark.parametrize("name,layers", [("paper-4L", 5), ("paper-12L", 13), ("paper-16L", 17), ("paper-24L", 25)])
def test_thickness_family_layouts(name, layers):
    preset = mamba_ctr.presets.get(name)
    assert preset.n_layers == layers
    assert preset.grid.shape == (16, 240)
    mixing = preset.parameters(preset.sample(200, seed=0))["sr_fraction"][:, list(preset.mixing_layers)]
    np.testing.assert_allclose(mixing.sum(axis=1), 2.0)


def test_aliases_and_unknown_preset():
    assert mamba_ctr.presets.get("12L") is mamba_ctr.presets.get("paper-12L")
    with pytest.raises(ValueError, match=r"unknown preset 'paper-13L'.*paper-12L"):
        mamba_ctr.presets.get("paper-13L")


@pytest.mark.parametrize("kwargs", [dict(n=-1), dict(n=2.5), dict(n=3, seed=-1), dict(n=3, start=-2),
                                    dict(n=True)])
def test_sample_rejects_bad_counts(kwargs):
    with pytest.raises(ValueError, match="must be an integer"):
        mamba_ctr.presets.get("paper-12L").sample(**kwargs)


def test_empty_sample_simulates_to_empty_arrays(backend):
    preset = mamba_ctr.presets.get("paper-12L")
    rods = mamba_ctr.simulate(preset.sample(0), preset.grid, backend=backend)
    assert rods.intensity.shape == (0, 16, 240) and rods.film_field.shape == (0, 16, 240)
