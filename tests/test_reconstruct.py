"""mamba_ctr.reconstruct: density by inverse FT, label extraction, R² with the outlier rule, density figures.

Checked against analytic facts (a single layer's atoms, the electrons under a peak, a real density) and the
simulator (the nominal structure and random structures of the presets extract to their own labels).
"""

from __future__ import annotations

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr import presets, reconstruct
from mamba_ctr.physics import Grid, paper_grid
from mamba_ctr.physics.perovskite import perovskite_model, perovskite_structures

GRID = paper_grid()
# one SrTiO3 layer with every small atom off its nominal height (O_x and O_y differ, to tell the columns apart)
C, Z_B, Z_OAP, Z_OX, Z_OY = 3.9, 0.53, 0.04, 0.46, 0.52
PURE_COLUMNS = (
    reconstruct.Column("A", 0.0, 0.0, ("Sr",)),
    reconstruct.Column("B+O_ap", 0.5, 0.5, ("Ti", "O_ap")),
    reconstruct.Column("O_x", 0.5, 0.0, ("O_eq",)),
    reconstruct.Column("O_y", 0.0, 0.5, ("O_eq",)),
)


def _field(structures, grid=GRID):
    return mamba_ctr.simulate(structures, grid, dtype="float64").film_field


@pytest.fixture(scope="module")
def single_layer():
    model = perovskite_model([("Sr",)], ["Ti"])
    return _field(perovskite_structures(model, [C], [Z_B], [Z_OAP], [Z_OX], [Z_OY], [1.0], [1.0]))


def _local_maxima(z, rho, fraction=0.2):
    """Refined positions of the local maxima above `fraction` of the largest."""
    inner = (rho[1:-1] > rho[:-2]) & (rho[1:-1] >= rho[2:]) & (rho[1:-1] > fraction * rho.max())
    index = np.flatnonzero(inner) + 1
    left, mid, right = rho[index - 1], rho[index], rho[index + 1]
    return z[index] + 0.5 * (left - right) / (left - 2 * mid + right) * (z[1] - z[0])


# ------------------------------------------------------------------ density
def test_single_layer_gives_one_peak_per_atom_at_its_height(single_layer):
    settings = reconstruct.DensitySettings(z_min=-8.0, z_max=12.0)
    density = reconstruct.column_density(single_layer, GRID, settings, columns=PURE_COLUMNS)
    assert density.rho.shape == (1, 4, density.z.size) and density.unit == "e/Å"
    expected = [[0.0], [C * Z_OAP, C * Z_B], [C * Z_OX], [C * Z_OY]]
    for column, heights in enumerate(expected):
        peaks = _local_maxima(density.z, density.rho[0, column])
        np.testing.assert_allclose(peaks, heights, atol=0.006)  # e^{−iq·r}: atoms at +z, not −z


def test_peak_integrates_to_the_atoms_electrons(single_layer):
    """The site-resolved column density is a linear density, e/Å: Sr²⁺ 36 e, Ti⁴⁺ + O 26 e, O 8 e."""
    settings = reconstruct.DensitySettings(l0="quadratic")
    density = reconstruct.column_density(single_layer, GRID, settings, columns=PURE_COLUMNS)
    electrons = density.rho[0].sum(axis=-1) * density.dz  # one full period
    np.testing.assert_allclose(electrons, [36.0, 26.0, 8.0, 8.0], rtol=0.01)


def test_site_columns_remove_the_in_plane_cross_talk(single_layer):
    """With rods up to h, k = 3 the plain density at (½, 0) also sees the A atom (weight −7/49): O_x moves."""
    sites = reconstruct.column_density(single_layer, GRID, columns=PURE_COLUMNS)
    fourier = reconstruct.column_density(single_layer, GRID, reconstruct.DensitySettings(in_plane="fourier"),
                                         columns=PURE_COLUMNS)
    assert fourier.unit == "e/Å³"
    error = {name: abs(_local_maxima(d.z, d.rho[0, 2])[0] - C * Z_OX) for name, d in (("sites", sites),
                                                                                         ("fourier", fourier))}
    assert error["sites"] < 0.01 < error["fourier"]


def test_mirror_and_friedel_extension_gives_a_real_density():
    preset = presets.get("paper-4L")
    U = _field(preset.sample(2, seed=5))
    h, _, L, full = reconstruct.full_reciprocal(U, GRID)
    assert full.shape == (2, 7, 7, 481) and h.tolist() == list(range(-3, 4)) and L[240] == 0.0
    np.testing.assert_allclose(full[:, 3 + 1, 3 - 2], full[:, 3 + 1, 3 + 2])  # U(−h, k) = U(h, k)
    np.testing.assert_allclose(full[..., 240 - 7], np.conj(full[..., 240 + 7]))  # U(h, k, −L) = U(h, k, L)*
    # the 3-D inverse transform over all (h, k, L) is real everywhere
    rho = np.fft.ifftn(np.fft.ifftshift(full, axes=(1, 2, 3)), axes=(1, 2, 3))
    assert np.max(np.abs(rho.imag)) < 1e-12 * np.max(np.abs(rho.real))
    # and density_slices is that transform: a direct sum of U e^{−i q·r} at x = y = 0
    settings = reconstruct.DensitySettings(window=None, l0="quadratic", z_min=-2.0, z_max=20.0)
    _, z, slices = reconstruct.density_slices(U, GRID, settings, y=(0.0,), x=np.array([0.0]))
    phases = np.exp(-2j * np.pi * np.outer(z, L) / GRID.c_ref)
    by_sum = (full.sum(axis=(1, 2)) @ phases.T) * GRID.uniform_L_step / (GRID.a * GRID.b * GRID.c_ref)
    assert np.max(np.abs(by_sum.imag)) < 1e-9 * np.max(np.abs(by_sum.real))
    np.testing.assert_allclose(slices[:, 0, 0], by_sum.real, atol=1e-9 * np.max(np.abs(by_sum.real)))


def test_slices_at_the_columns_equal_the_fourier_column_density():
    preset = presets.get("paper-4L")
    U = _field(preset.sample(2, seed=6))
    settings = reconstruct.DensitySettings(in_plane="fourier", z_max=30.0)
    columns = reconstruct.column_density(U, GRID, settings)
    _, z, slices = reconstruct.density_slices(U, GRID, settings, y=(0.0, 0.5), x=np.array([0.0, 0.5]))
    np.testing.assert_array_equal(z, columns.z)
    np.testing.assert_allclose(slices[:, 0, 0], columns.rho[:, 0], rtol=1e-10, atol=1e-10)  # (0, 0) A
    np.testing.assert_allclose(slices[:, 1, 1], columns.rho[:, 1], rtol=1e-10, atol=1e-10)  # (½, ½) B+O_ap
    np.testing.assert_allclose(slices[:, 0, 1], columns.rho[:, 2], rtol=1e-10, atol=1e-10)  # (½, 0) O_x


def test_padding_changes_the_sampling_not_the_peaks():
    preset = presets.get("paper-12L")
    U = _field(preset.sample(20, seed=3))
    found = {}
    for padding in (4, 16):
        settings = reconstruct.ExtractionSettings(density=reconstruct.DensitySettings(l0="vacuum", padding=padding))
        assert reconstruct.z_axis(GRID, settings.density)[1] - reconstruct.z_axis(GRID, settings.density)[0] == \
            pytest.approx(GRID.c_ref / (GRID.uniform_L_step * 2 * 241 * padding))
        found[padding] = reconstruct.extract_positions(U, GRID, preset, settings)
    np.testing.assert_allclose(found[4].heights, found[16].heights, atol=0.001)
    np.testing.assert_allclose(found[4].a_weight, found[16].a_weight, rtol=0.005)


def test_l0_extrapolation_orders():
    spectrum = (2.0 + 0.5j) + (3.0 - 1j) * np.arange(1, 6) + 0.25 * np.arange(1, 6) ** 2  # at L = 1..5
    assert reconstruct.density.extend_to_l0(spectrum, "quadratic")[0] == pytest.approx(2.0)
    assert reconstruct.density.extend_to_l0(spectrum, "linear")[0] == pytest.approx(2.0 - 0.5)
    assert reconstruct.density.extend_to_l0(spectrum, "nearest")[0] == pytest.approx(5.25)
    assert reconstruct.density.extend_to_l0(spectrum, "zero")[0] == 0.0


# --------------------------------------------------------------- extraction
@pytest.mark.parametrize("name", presets.names())
def test_nominal_structure_extracts_its_own_labels(name):
    preset = presets.get(name)
    nominal = preset.nominal()
    extracted = reconstruct.extract_labels(_field(nominal, preset.grid), preset.grid, preset)
    truth = preset.labels(nominal)
    assert list(extracted) == list(truth)
    for label, value in truth.items():
        if label == "c_top":
            continue
        assert np.isnan(extracted[label][0]) == np.isnan(value[0]), label
        if np.isfinite(value[0]):
            assert extracted[label][0] == pytest.approx(value[0], abs=0.003), label


@pytest.fixture(scope="module")
def paper12_batch():
    preset = presets.get("paper-12L")
    structures = preset.sample(80, seed=21)
    return preset, structures, reconstruct.extract_labels(_field(structures), GRID, preset)


def test_true_field_extracts_every_identifiable_label_to_r2_099(paper12_batch):
    preset, structures, extracted = paper12_batch
    per_label, per_group, outliers = reconstruct.r2_scores(preset.labels(structures), extracted, preset)
    identifiable = [spec.name for spec in preset.label_specs() if spec.identifiable]
    worst = min(identifiable, key=lambda name: per_label[name])
    assert per_label[worst] >= 0.99, (worst, per_label[worst])
    assert set(per_group) == {"c", "B", "O_ap", "O_eq", "p"}
    assert sum(outliers[name] for name in identifiable) == 0


def test_extracted_positions_follow_the_atoms(paper12_batch):
    preset, structures, _ = paper12_batch
    positions = reconstruct.extract_positions(_field(structures[:20]), GRID, preset)
    truth = structures[:20].heights  # (n, J, S): A, B, O_ap, O_x, O_y
    assert np.all(positions.top == preset.n_layers - 1)
    np.testing.assert_allclose(positions.heights, truth, atol=0.03)
    assert np.sqrt(np.mean((positions.heights - truth) ** 2)) < 0.005


def test_variable_thickness_finds_the_number_of_layers():
    preset = presets.get("paper-11-13L-rough")
    structures = preset.sample(60, seed=4)
    truth = preset.labels(structures)
    U = _field(structures)
    positions = reconstruct.extract_positions(U, GRID, preset)
    n_film = preset.parameters(structures)["n_film"]
    assert len(set(n_film.tolist())) == 3
    np.testing.assert_array_equal(positions.top, preset.n_sub + n_film)
    extracted = reconstruct.labels_from_positions(
        positions, preset, reconstruct.a_site_references(GRID, preset))
    for name, values in truth.items():
        np.testing.assert_array_equal(np.isnan(extracted[name]), np.isnan(values), err_msg=name)
    per_label, per_group, outliers = reconstruct.r2_scores(truth, extracted, preset)
    assert per_label["occ_top"] >= 0.99 and min(per_group.values()) >= 0.99
    assert sum(outliers.values()) == 0


def test_a_site_references_are_the_sr_and_la_electrons():
    """Integrated over ±1.5 Å, the A peak of pure Sr / La layers holds the ions' electrons (36, 54)."""
    preset = presets.get("paper-12L")
    references = reconstruct.a_site_references(GRID, preset, reconstruct.ExtractionSettings(weight_half_width=1.5))
    layers = list(preset.mixing_layers)
    np.testing.assert_allclose(references.sr[0, layers], 36.0, rtol=0.01)
    np.testing.assert_allclose(references.la[0, layers], 54.0, rtol=0.01)
    assert references.film.tolist() == [4] and not np.any(np.isnan(references.sr) | np.isnan(references.la))


def test_a_single_field_and_an_empty_batch():
    preset = presets.get("paper-4L")
    U = _field(preset.sample(3, seed=2))
    one = reconstruct.extract_labels(U[1], GRID, preset)
    batch = reconstruct.extract_labels(U, GRID, preset)
    for name in one:
        assert one[name].shape == (1,) and one[name][0] == pytest.approx(batch[name][1], rel=1e-9, abs=1e-12)
    empty = reconstruct.extract_labels(U[:0], GRID, preset)
    assert all(values.shape == (0,) for values in empty.values())


# -------------------------------------------------------------------- inputs
@pytest.mark.parametrize("bad, match", [
    (lambda U: U[:, :15], "shape"),
    (lambda U: U[..., :200], "shape"),
    (lambda U: np.where(np.arange(240) == 7, np.nan, U), "finite"),
    (lambda U: U.real.astype(np.int64), "complex"),
    (lambda U: U[0, 0], "shape"),
])
def test_bad_fields_raise(bad, match):
    preset = presets.get("paper-4L")
    U = _field(preset.nominal())
    with pytest.raises(ValueError, match=match):
        reconstruct.extract_labels(bad(U), GRID, preset)
    with pytest.raises(ValueError, match=match):
        reconstruct.column_density(bad(U), GRID)


def test_bad_grids_and_settings_raise():
    U = np.ones((1, 16, 240), complex)
    uneven = Grid(GRID.h, GRID.k, np.sort(np.r_[GRID.L[:-1], 5.99]))
    late = Grid(GRID.h, GRID.k, GRID.L + 0.5)
    negative = Grid(GRID.h - 1, GRID.k, GRID.L)
    for grid, match in ((uneven, "evenly spaced"), (late, "start at 0"), (negative, "h or k < 0")):
        with pytest.raises(ValueError, match=match):
            reconstruct.column_density(U, grid)
    with pytest.raises(TypeError, match="Grid"):
        reconstruct.column_density(U, "paper")
    for kwargs, match in (({"padding": 0}, "padding"), ({"window": -1.0}, "window"), ({"l0": "cubic"}, "l0"),
                          ({"in_plane": "xy"}, "in_plane"), ({"z_min": 5.0, "z_max": 1.0}, "z_max"),
                          ({"vacuum": (9.0, 3.0)}, "vacuum")):
        with pytest.raises(ValueError, match=match):
            reconstruct.DensitySettings(**kwargs)
    with pytest.raises(ValueError, match="vacuum"):
        reconstruct.column_density(U, GRID, reconstruct.DensitySettings(l0="vacuum"))
    with pytest.raises(ValueError, match="period"):
        reconstruct.z_axis(GRID, reconstruct.DensitySettings(z_min=0.0, z_max=400.0))
    for kwargs, match in (({"a_search": 0.0}, "a_search"), ({"weight": "volume"}, "weight"),
                          ({"presence": 1.5}, "presence")):
        with pytest.raises(ValueError, match=match):
            reconstruct.ExtractionSettings(**kwargs)
    with pytest.raises(TypeError, match="PerovskitePreset"):
        reconstruct.extract_labels(U, GRID, "paper-12L")


# ------------------------------------------------------------------ metrics
def test_outlier_rule_replaces_far_values_by_the_nominal_and_counts_them():
    preset = presets.get("paper-4L")
    truth = preset.labels(preset.sample(50, seed=1))
    predicted = {name: values.copy() for name, values in truth.items()}
    spec = {s.name: s for s in preset.label_specs()}
    width = spec["c_1"].high - spec["c_1"].low
    predicted["c_1"][:3] = [spec["c_1"].high + 0.05 * width, spec["c_1"].high + 0.2 * width, -1.0]
    predicted["p_2"][0] = np.nan  # the layer exists: a missed value is an outlier too
    corrected, counts = reconstruct.apply_outlier_rule(predicted, preset, true=truth)
    assert counts["c_1"] == 2 and counts["p_2"] == 1 and sum(counts.values()) == 3
    assert corrected["c_1"][0] == predicted["c_1"][0] and corrected["c_1"][1] == spec["c_1"].nominal
    assert corrected["p_2"][0] == 0.5
    per_label, per_group, outliers = reconstruct.r2_scores(truth, predicted, preset)
    assert outliers == counts
    assert per_label["c_2"] == 1.0 and per_label["c_1"] < 1.0
    identifiable_c = [f"c_{j}" for j in range(1, preset.n_layers - 1)]  # c_top is left out of the mean
    assert "c_top" in per_label and per_group["c"] == pytest.approx(np.mean([per_label[n] for n in identifiable_c]))


def test_r2_ignores_absent_layers_and_needs_every_label():
    assert reconstruct.r2_score(np.array([1.0, 2.0, np.nan, 3.0]), np.array([1.0, 2.0, 9.0, 3.0])) == 1.0
    assert reconstruct.r2_score(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0])) == pytest.approx(0.0)
    assert np.isnan(reconstruct.r2_score(np.array([1.0, 1.0]), np.array([1.0, 2.0])))
    preset = presets.get("paper-4L")
    truth = preset.labels(preset.sample(5, seed=1))
    with pytest.raises(ValueError, match="missing"):
        reconstruct.r2_scores(truth, {"c_1": truth["c_1"]}, preset)
    rmse = reconstruct.label_rmse(truth, truth, preset)
    assert set(rmse) == set(truth) and all(value == 0.0 for value in rmse.values())


# ------------------------------------------------------------------ figures
def test_density_figures_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    from mamba_ctr.plots.density import plot_density_slices, plot_extracted_labels

    preset = presets.get("paper-4L")
    structures = preset.sample(4, seed=8)
    U = _field(structures)
    settings = reconstruct.DensitySettings(z_min=-3.0, z_max=20.0)
    x, z, truth = reconstruct.density_slices(U[:1], GRID, settings, x=np.linspace(-0.5, 0.5, 21))
    _, _, noisy = reconstruct.density_slices(U[:1] * 1.05, GRID, settings, x=np.linspace(-0.5, 0.5, 21))
    fig = plot_density_slices(x, z, truth[0], noisy[0], path=tmp_path / "slices.png", title="paper-4L")
    assert (tmp_path / "slices.png").stat().st_size > 10_000 and len(fig.axes) >= 4
    labels = preset.labels(structures)
    extracted = reconstruct.extract_labels(U, GRID, preset)
    rmse = reconstruct.label_rmse(labels, extracted, preset)
    one = {name: values[0] for name, values in labels.items()}
    fig = plot_extracted_labels(preset, one, {name: values[0] for name, values in extracted.items()}, rmse,
                                path=tmp_path / "labels.png")
    assert (tmp_path / "labels.png").stat().st_size > 10_000 and len(fig.axes) == 5
    with pytest.raises(ValueError, match="shape"):
        plot_density_slices(x, z, truth[0][:, :5])
    with pytest.raises(ValueError, match="lacks"):
        plot_extracted_labels(preset, {}, one)
