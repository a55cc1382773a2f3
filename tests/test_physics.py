"""Analytic checks of the scattering model, on every backend against closed forms and the reference."""

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.physics import Grid, Scatterer, Site, StructureModel, Structures, simulate_reference
from mamba_ctr.physics.form_factors import form_factor
from mamba_ctr.physics.lowering import roughness_factor
from mamba_ctr.physics.perovskite import SITES, paper_scatterers, srtio3_substrate

PAPER = mamba_ctr.presets.get("paper-12L")


def close_per_rod(ours, ref, rtol=1e-9):
    scale = np.abs(ref).max(axis=-1, keepdims=True) + 1e-300
    return np.all(np.abs(ours - ref) <= rtol * scale)


def test_single_layer_gives_structure_factor_squared(backend):
    """One free-standing layer: I = |F|², F = Σ_atoms f0(q) e^{−q²U/2} e^{i q·r}, written out by hand."""
    scatterers = {"Sr": Scatterer("Sr", "Sr2+", 0.006), "Ti": Scatterer("Ti", "Ti4+", 0.004),
                  "O": Scatterer("O", "O", 0.01)}
    model = StructureModel(scatterers, (Site("A", 0, 0), Site("B", 0.5, 0.5), Site("O", 0.5, 0)),
                           ((("Sr",), ("Ti",), ("O",)),), substrate=None)
    c, z = 3.9, np.array([0.0, 0.47, 0.52])
    structures = Structures(model, [[c]], [[z]], np.ones((1, 1, 3, 1)), [[1.0]])
    grid = Grid(h=[0, 1, 2, 1], k=[0, 0, 1, 3], L=np.linspace(0.1, 4.3, 37))
    rods = mamba_ctr.simulate(structures, grid, backend=backend, dtype="float64")
    q = grid.q
    F = np.zeros(grid.shape, complex)
    for (ion, u_iso), (x, y), zf in zip([("Sr2+", 0.006), ("Ti4+", 0.004), ("O", 0.01)],
                                        [(0, 0), (0.5, 0.5), (0.5, 0)], z, strict=True):
        f = form_factor(ion)(q) * np.exp(-0.5 * u_iso * q**2)
        F += f * np.exp(2j * np.pi * (grid.h * x + grid.k * y))[:, None] * np.exp(1j * grid.qz * c * zf)
    assert close_per_rod(rods.intensity[0], np.abs(F) ** 2, 1e-10)
    assert close_per_rod(rods.film_field[0], F, 1e-10)


def test_layer_with_zero_occupancy_equals_no_layer(backend):
    structures = PAPER.sample(4, seed=3)
    structures.occupancy[:, -1] = 0.0
    shorter_model = StructureModel(PAPER.model.scatterers, SITES, PAPER.model.species[:-1], srtio3_substrate())
    shorter = Structures(shorter_model, structures.c[:, :-1], structures.z[:, :-1],
                         structures.fraction[:, :-1], structures.occupancy[:, :-1])
    a = mamba_ctr.simulate(structures, PAPER.grid, backend=backend, dtype="float64")
    b = mamba_ctr.simulate(shorter, PAPER.grid, backend=backend, dtype="float64")
    assert close_per_rod(a.film_field, b.film_field, 1e-12)
    assert close_per_rod(a.intensity, b.intensity, 1e-12)


def test_field_is_linear_in_the_sr_fraction(backend):
    base = PAPER.sample(1, seed=5)
    params = PAPER.parameters(base)
    fields = []
    for p in (0.0, 1.0, 0.3):
        sr = params["sr_fraction"].copy()
        sr[:, 8] = p
        s = PAPER.from_parameters(params["c"], params["z_B"], params["z_Oap"], params["z_Ox"], params["z_Oy"],
                                  sr, params["occupancy"])
        fields.append(mamba_ctr.simulate(s, PAPER.grid, backend=backend, dtype="float64").film_field[0])
    U0, U1, U_mid = fields
    assert close_per_rod(U_mid, 0.3 * U1 + 0.7 * U0, 1e-11)


@pytest.mark.parametrize("epsilon", [1e-2, 1e-3])
def test_substrate_term_is_the_limit_of_many_absorbing_layers(epsilon):
    """S = lim_{ε→0} Σ_{n≥1} e^{−nε} F_bulk e^{−i q_z c n}: the explicit sum of N nominal cells."""
    grid = Grid(h=[0, 1, 1, 2], k=[0, 0, 1, 1], L=np.arange(1, 120, 4) / 40.0)  # no Bragg point
    n_cells = int(np.ceil(14 / epsilon))  # e^{−14} tail
    model = StructureModel(paper_scatterers(), SITES,
                           ((("Sr",), ("Ti",), ("O_ap",), ("O_eq",), ("O_eq",)),) * n_cells, None)
    c = 3.905
    m = np.arange(n_cells)
    occupancy = np.exp(-(n_cells - m) * epsilon)[None]  # layer m ↔ cell n = N − m below the surface
    z = np.broadcast_to([0.0, 0.5, 0.0, 0.5, 0.5], (1, n_cells, 5))
    cells = Structures(model, np.full((1, n_cells), c), z, np.ones((1, n_cells, 5, 1)), occupancy)
    U = mamba_ctr.simulate(cells, grid, backend="auto", dtype="float64").film_field[0]
    explicit = U * np.exp(-1j * grid.qz * c * n_cells)[None]
    S = mamba_ctr.physics.substrate_field(PAPER.model, grid)
    theta = grid.qz * c
    first_order = epsilon * np.abs(np.exp(1j * theta) / (np.exp(1j * theta) - 1))  # |dS/dε| / |S| · ε
    relative = np.abs(explicit - S) / np.abs(S)
    assert np.all(relative <= 1.5 * first_order[None] + 1e-9)
    assert np.all(relative >= 0.5 * first_order[None])  # and it really is the O(ε) term that remains


def test_h_k_symmetry_of_the_paper_preset(backend):
    structures = PAPER.sample(3, seed=11)
    rods = mamba_ctr.simulate(structures, PAPER.grid, backend=backend, dtype="float64")
    swapped = 4 * PAPER.grid.h + PAPER.grid.k  # rod index of (k, h)
    assert close_per_rod(rods.film_field[:, swapped], rods.film_field, 1e-12)


def test_friedel_law_and_in_plane_mirror(backend):
    structures = PAPER.sample(2, seed=2)
    grid = Grid(h=[0, 1, 2, 3], k=[0, 2, 1, 3], L=np.linspace(0.05, 3.0, 25))
    inverted = Grid(h=-grid.h, k=-grid.k, L=-grid.L)
    mirrored = Grid(h=-grid.h, k=grid.k, L=grid.L)
    U = mamba_ctr.simulate(structures, grid, backend=backend, dtype="float64").film_field
    U_minus = mamba_ctr.simulate(structures, inverted, backend=backend, dtype="float64").film_field
    U_mirror = mamba_ctr.simulate(structures, mirrored, backend=backend, dtype="float64").film_field
    assert close_per_rod(U_minus, np.conj(U), 1e-12)
    assert close_per_rod(U_mirror, U, 1e-12)


def supercell_model(displacement: float) -> StructureModel:
    """2×2 in-plane supercell of the perovskite cell; the equatorial O of three sub-cells shifted in-plane
    (fractions of the supercell edge, scaled by `displacement`), as rotated octahedra do."""
    shifts = {("O_x", 0, 0): (0.3, 1.0), ("O_y", 1, 1): (-0.8, 0.4), ("O_x", 1, 0): (0.5, -0.6)}
    sites = []
    for i in range(2):
        for j in range(2):
            for site in SITES:
                dx, dy = (displacement * d for d in shifts.get((site.name, i, j), (0.0, 0.0)))
                sites.append(Site(f"{site.name}_{i}{j}", (site.x + i) / 2 + dx, (site.y + j) / 2 + dy))
    layer = tuple((("Sr",), ("Ti",), ("O_ap",), ("O_eq",), ("O_eq",)) * 4)
    return StructureModel(paper_scatterers(), tuple(sites), (layer,) * 3, None)


def supercell_structures(model: StructureModel) -> Structures:
    rng = np.random.default_rng(0)
    z = np.tile([0.0, 0.5, 0.0, 0.5, 0.5], 4) + rng.uniform(-0.02, 0.02, (3, 20))
    z[:, 0::5] = 0.0
    z = np.tile(z[:, :5], (1, 4))  # the same heights in the four sub-cells
    return Structures(model, [[3.9, 3.95, 3.8]], z[None], np.ones((1, 3, 20, 1)), np.ones((1, 3)))


def test_undistorted_supercell_has_no_half_order_rods(backend):
    """A 2×2 supercell of identical sub-cells: integer rods = 4 × the 1×1 field, half-order rods = 0."""
    model = supercell_model(0.0)
    s = supercell_structures(model)
    grid = Grid(h=[0, 2, 2, 1, 1, 3], k=[0, 0, 4, 0, 1, 2], L=np.linspace(0.1, 3, 30), a=7.81, b=7.81)
    U = mamba_ctr.simulate(s, grid, backend=backend, dtype="float64").film_field[0]
    one_cell = StructureModel(paper_scatterers(), SITES, (model.species[0][:5],) * 3, None)
    s1 = Structures(one_cell, s.c, s.z[:, :, :5], np.ones((1, 3, 5, 1)), s.occupancy)
    U1 = simulate_reference(s1, Grid(h=[0, 1, 1], k=[0, 0, 2], L=grid.L))[0][0]
    assert close_per_rod(U[:3], 4 * U1, 1e-12)
    assert np.abs(U[3:]).max() < 1e-10 * np.abs(U1).max()


def test_rotated_octahedra_give_half_order_rods_consistently(backend):
    model = supercell_model(0.02)
    s = supercell_structures(model)
    grid = Grid(h=[1, 1, 3, 2], k=[0, 1, 2, 1], L=np.linspace(0.1, 3, 30), a=7.81, b=7.81)
    rods = mamba_ctr.simulate(s, grid, backend=backend, dtype="float64")
    U_ref, _ = simulate_reference(s, grid)
    assert np.all(np.abs(U_ref).max(axis=-1) > 0.1)  # the distortion makes every half-order rod
    assert close_per_rod(rods.film_field, U_ref, 1e-10)


def test_anomalous_terms_break_friedel_and_agree_across_backends(backend):
    scatterers = dict(paper_scatterers())
    scatterers["Sr"] = Scatterer("Sr", "Sr2+", scatterers["Sr"].u_iso, f_prime=-7.5, f_double_prime=3.2)
    model = StructureModel(scatterers, SITES, PAPER.model.species, srtio3_substrate())
    base = PAPER.sample(2, seed=4)
    s = Structures(model, base.c, base.z, base.fraction, base.occupancy)
    grid = Grid(h=[0, 1, -1, 0], k=[0, 0, 0, 0], L=[0.5, 1.5, -1.5, 2.5])
    rods = mamba_ctr.simulate(s, grid, backend=backend, dtype="float64")
    U_ref, I_ref = simulate_reference(s, grid)
    assert close_per_rod(rods.film_field, U_ref, 1e-10) and close_per_rod(rods.intensity, I_ref, 1e-10)
    # Bijvoet pair (1,0,1.5) vs (−1,0,−1.5): no longer conjugate
    assert abs(rods.film_field[0, 1, 1] - np.conj(rods.film_field[0, 2, 2])) > 1e-3 * abs(rods.film_field[0, 1, 1])


def test_beta_roughness_multiplies_the_intensity(backend):
    s = PAPER.sample(3, seed=8)
    smooth = mamba_ctr.simulate(s, PAPER.grid, backend=backend, dtype="float64").intensity
    s.beta = np.array([0.0, 0.2, 0.5])
    rough = mamba_ctr.simulate(s, PAPER.grid, backend=backend, dtype="float64").intensity
    factor = roughness_factor(s.beta, PAPER.grid.qz, 3.905)
    assert close_per_rod(rough, smooth * factor[:, None, :], 1e-12)
    assert np.array_equal(rough[0], smooth[0])


def test_debye_waller_from_b_equals_u_iso():
    s = Scatterer.from_b("O", "O", 8 * np.pi**2 * 0.01)
    assert s.u_iso == pytest.approx(0.01, rel=1e-15) and s.b_iso == pytest.approx(8 * np.pi**2 * 0.01)
    q = np.linspace(0, 5, 11)
    np.testing.assert_allclose(s.factor(q), form_factor("O")(q) * np.exp(-0.005 * q**2), rtol=1e-14)


def test_cromer_mann_at_zero_angle_is_the_electron_count():
    for ion, electrons in (("Sr2+", 36), ("Ti4+", 18), ("O", 8), ("La3+", 54), ("Al3+", 10)):
        assert form_factor(ion)(np.array(0.0)) == pytest.approx(electrons, abs=0.01)


def test_anomalous_from_xraydb():
    pytest.importorskip("xraydb")
    near_edge = Scatterer("Sr", "Sr2+", 0.006).at_energy(16_100.0)  # Sr K edge at 16.105 keV
    assert near_edge.f_prime < -5 and near_edge.f_double_prime > 0
