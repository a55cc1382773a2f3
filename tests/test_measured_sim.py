"""Films from atoms simulated on measured points: analytic cases, Friedel's law, supercells, β, scales, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mamba_ctr.errors import InputError
from mamba_ctr.io.measured import MeasuredRods
from mamba_ctr.io.structure_formats import Atom, AtomStructure, read_xyz
from mamba_ctr.measured_sim import MeasuredSimulator, agreement, relative_sigma, roughness
from mamba_ctr.physics.film_from_atoms import build_film
from mamba_ctr.physics.model import Structures
from mamba_ctr.simulate import simulate

xraydb = pytest.importorskip("xraydb")

A = 3.905
CUBIC = (A, A, A, 90.0, 90.0, 90.0)
LSMO = Path(__file__).parent / "data" / "structures" / "LSMO_3layers.XYZ"
BACKENDS = ["numpy", "auto"]


def srtio3() -> AtomStructure:
    atoms = (Atom("Sr", 0, 0, 0, 0.006), Atom("Ti", 0.5, 0.5, 0.5, 0.004), Atom("O", 0.5, 0.5, 0, 0.008),
             Atom("O", 0.5, 0, 0.5, 0.008), Atom("O", 0, 0.5, 0.5, 0.008))
    return AtomStructure(atoms, CUBIC, "fractional", "SrTiO3")


def perovskite_film(layers: int = 3) -> AtomStructure:
    """A distorted (along z only) 1×1 perovskite film in Å, with a La/Sr mixture and a partial top layer."""
    atoms = []
    for j in range(layers):
        z0, top = j * 3.93, j == layers - 1
        occ = 0.6 if top else 1.0
        atoms += [Atom("Sr", 0, 0, z0 + 0.01 * j, 0.006, 0.3 * occ), Atom("La", 0, 0, z0 + 0.01 * j, 0.009, 0.7 * occ),
                  Atom("Mn", A / 2, A / 2, z0 + 1.97 - 0.02 * j, 0.005, occ),
                  Atom("O", A / 2, A / 2, z0 + 0.03, 0.01, occ), Atom("O", A / 2, 0, z0 + 1.99, 0.02, occ),
                  Atom("O", 0, A / 2, z0 + 1.95, 0.02, occ)]
    return AtomStructure(tuple(atoms), None, "angstrom", "test film")


def rods_at(keys, L) -> MeasuredRods:
    h = [key[0] for key in keys for _ in L]
    k = [key[1] for key in keys for _ in L]
    L_all = np.tile(np.asarray(L, dtype=np.float64), len(keys))
    return MeasuredRods.from_points(h, k, L_all, np.ones(L_all.size), quantity="I")


@pytest.mark.parametrize("backend", BACKENDS)
def test_one_atom_is_its_form_factor_times_debye_waller(backend):
    film = build_film(AtomStructure((Atom("Sr", 0, 0, 1.234, 0.01, 0.8),), None, "angstrom"), cell=(A, A),
                      c_ref=A)
    L = np.array([0.13, 0.5, 0.77, 1.9, 2.05, 3.3])  # not a uniform grid
    rods = rods_at([("1", "0"), ("1/1", "2"), ("0", "0")], L)
    I = MeasuredSimulator(film, rods, backend=backend).intensity()[0]
    H, K = rods.h, rods.k
    q = 2 * np.pi * np.sqrt((H**2 + K**2) / A**2 + rods.l**2 / A**2)
    expected = (0.8 * xraydb.f0("Sr", q / (4 * np.pi)) * np.exp(-0.5 * 0.01 * q**2)) ** 2
    np.testing.assert_allclose(I, expected, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_friedel_law_without_anomalous_terms(backend):
    film = build_film(perovskite_film(), srtio3(), cell=(A, A))
    L = np.array([0.31, 0.74, 1.52, 2.66])
    plus = MeasuredSimulator(film, rods_at([("1", "2"), ("2", "1")], L), backend=backend).intensity()[0]
    minus = MeasuredSimulator(film, rods_at([("-1", "-2"), ("-2", "-1")], -L), backend=backend).intensity()[0]
    # each rod's points are sorted by L: −L runs backwards
    np.testing.assert_allclose(plus, minus.reshape(2, -1)[:, ::-1].ravel(), rtol=1e-10)


def doubled_along_x(film: AtomStructure) -> AtomStructure:
    atoms = [Atom(a.species, a.x + shift, a.y, a.z, a.u_iso, a.occupancy) for shift in (0.0, A) for a in film.atoms]
    return AtomStructure(tuple(atoms), None, "angstrom", "2×1")


def test_a_supercell_reproduces_the_integer_rods_and_nothing_at_half_order():
    single = build_film(perovskite_film(), srtio3(), cell=(A, A))
    double = build_film(doubled_along_x(perovskite_film()), srtio3(), cell=(2 * A, A))
    L = np.linspace(0.2, 2.8, 11)
    integer = rods_at([("0", "0"), ("1", "0"), ("1", "1"), ("2", "1")], L)
    # F is per film cell: the 2×1 cell holds two 1×1 cells, so F doubles and I grows 4×
    np.testing.assert_allclose(MeasuredSimulator(double, integer).intensity(),
                               4 * MeasuredSimulator(single, integer).intensity(), rtol=1e-9)
    half = MeasuredSimulator(double, rods_at([("1/2", "0"), ("3/2", "1")], L)).intensity()
    strong = MeasuredSimulator(single, integer).intensity()
    assert np.all(half < 1e-20 * strong.max())
    with pytest.raises(InputError, match=r"cannot produce the rods \(1/2, 1/2\)"):
        MeasuredSimulator(double, rods_at([("1", "0"), ("1/2", "1/2")], L))


def test_unproducible_rods_are_left_out_and_named_never_zero_filled():
    film = build_film(perovskite_film(), srtio3(), cell=(A, A))
    rods = rods_at([("1", "0"), ("1/2", "1/2"), ("3/2", "1/2")], np.array([0.5, 1.5]))
    sim = MeasuredSimulator(film, rods, on_unproducible="skip")
    assert [r.key for r in sim.rods] == [rods.rod_keys[0]] and sim.n_points == 2
    assert sim.unproducible == rods.rod_keys[1:]
    assert "cannot produce (1/2, 1/2), (3/2, 1/2)" in sim.message()
    assert sim.intensity().shape == (1, 2)
    with pytest.raises(InputError, match="none of the measured rods"):
        MeasuredSimulator(film, rods_at([("1/2", "1/2")], np.array([0.5])), on_unproducible="skip")


def test_beta_roughness_matches_the_models_factor_on_a_substrate_indexed_axis():
    film = build_film(perovskite_film(), srtio3(), cell=(A, A))
    L = np.array([0.3, 0.9, 1.4, 2.2])
    sim = MeasuredSimulator(film, rods_at([("1", "1")], L), backend="numpy")
    ours = sim.intensity(beta=0.3)[0]
    s = film.nominal
    with_beta = Structures(s.model, s.c, s.z, s.fraction, s.occupancy, np.array([0.3]))
    theirs = simulate(with_beta, sim.rods[0].grid, backend="numpy", dtype="float64").intensity[0, 0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    np.testing.assert_allclose(roughness(np.array([0.3]), L, 1.0, 1.0), roughness(np.array([0.3]), L, 0.0, 1.0))
    assert np.all(roughness(np.array([0.3]), np.array([2.0, 4.0]), 0.0, 2.0) == 1.0)
    with pytest.raises(InputError, match="not in Structures"):
        sim.intensity(with_beta)


def test_closed_form_scales_recover_known_factors_and_r1():
    rng = np.random.default_rng(3)
    I_calc = rng.uniform(0.1, 10.0, 12)
    rod = np.repeat([0, 1, 2], 4)
    sigma = relative_sigma(I_calc, 0.1)
    fit = agreement(2.5 * I_calc, 2.5 * sigma, I_calc, rod, "global")
    assert fit.scales == pytest.approx([2.5] * 3) and fit.r1 == pytest.approx(0, abs=1e-14)
    assert fit.chi2_red == pytest.approx(0, abs=1e-20)
    factors = np.array([1.0, 4.0, 0.25])
    per_rod = agreement(factors[rod] * I_calc, sigma, I_calc, rod, "rods")
    assert per_rod.scales == pytest.approx(factors)
    # R1 by hand for a small mismatch with a fixed (global) scale
    I_obs = np.array([4.0, 9.0, 16.0])
    fit = agreement(I_obs, np.ones(3), np.array([4.0, 9.0, 16.0]) * np.array([1.21, 1.0, 1.0]), np.zeros(3, int),
                    "global")
    F_calc = np.sqrt(fit.scales[0] * np.array([4.84, 9.0, 16.0]))
    assert fit.r1 == pytest.approx(np.abs(F_calc - [2, 3, 4]).sum() / 9.0, rel=1e-12)
    with pytest.raises(InputError, match="scale must be"):
        agreement(I_obs, np.ones(3), I_obs, np.zeros(3, int), "per-point")


def test_lsmo_atoms_group_into_mixed_sites_and_layers():
    xyz = read_xyz(LSMO)
    film = build_film(xyz, srtio3(), cell=(2 * A, A), ions={"Sr": "Sr2+", "La": "La3+", "Mn": "Mn3+"})
    assert film.model.n_layers == 3 and film.n_groups == 30
    mixed = [names for names in film.site_species if len(names) == 2]
    assert len(mixed) == 12  # 2 A and 2 B sites per layer hold La/Sr and Mn/Ti
    assert {film.model.scatterers[n].ion for n in film.model.scatterers} == {"Sr2+", "La3+", "Mn3+", "Ti", "O"}
    np.testing.assert_allclose(film.layer_start[1:], [3.89479364572, 7.81152431728])
    back = film.atoms()
    np.testing.assert_allclose(back.positions, xyz.positions, atol=1e-12)
    assert [(a.species, a.u_iso, a.occupancy) for a in back.atoms] == [(a.species, a.u_iso, a.occupancy)
                                                                      for a in xyz.atoms]
    moved = film.site_height + 0.05
    np.testing.assert_allclose(film.structures(moved).heights[0][film.site_layer, film.site_slot], moved, atol=1e-12)


@pytest.mark.parametrize("atoms, message", [
    ((Atom("Sr", 0, 0, 0), Atom("O", 0.3, 0, 0)), "overlapping atoms"),
    ((Atom("Sr", 0, 0, 0), Atom("O", A - 0.2, 0, 0)), "overlapping atoms"),  # through the periodic boundary
    ((Atom("Sr", 0, 0, 0, occupancy=0.7), Atom("La", 0, 0, 0, occupancy=0.4)), "sum to 1.1 > 1"),
    ((Atom("Sr", 0, 0, 0, occupancy=0.5), Atom("Sr", 0, 0, 0, occupancy=0.5)), "listed twice"),
    ((Atom("Qq", 0, 0, 0),), "no form factor for .Qq."),
])
def test_bad_structures_are_one_input_error(atoms, message):
    with pytest.raises(InputError, match=message):
        film = build_film(AtomStructure(atoms, None, "angstrom"), cell=(A, A))
        MeasuredSimulator(film, rods_at([("1", "0")], np.array([0.5]))).intensity()


def test_film_against_substrate_and_cells():
    with pytest.raises(InputError, match="substrate's top cell"):
        build_film(AtomStructure((Atom("Sr", 0, 0, -3.7),), None, "angstrom"), srtio3(), cell=(A, A))
    with pytest.raises(InputError, match="integer multiple"):
        build_film(perovskite_film(), srtio3(), cell=(1.5 * A, A))
    with pytest.raises(InputError, match="in-plane cell is unknown"):
        build_film(perovskite_film(), srtio3())


def test_measured_rods_figure_has_a_panel_per_rod():
    pytest.importorskip("matplotlib")
    from mamba_ctr.plots.measured import measured_rods_figure

    L = [np.linspace(0.5, 2, 5)] * 4
    fig = measured_rods_figure(["(0, 0)", "(1, 0)", "(1, 1)", "(2, 0)"], L, [np.ones(5)] * 4,
                               {"calc": [np.full(5, 2.0)] * 4}, title="t")
    assert sum(ax.get_visible() for ax in fig.axes) == 4
    with pytest.raises(ValueError, match="one entry per rod"):
        measured_rods_figure(["(0, 0)"], L, [np.ones(5)], {"calc": []})


def test_xraydb_form_factors_next_to_the_paper_table():
    from mamba_ctr.physics.form_factors import Scatterer, form_factor

    q = np.array([0.0, 2.0, 6.0])
    mn = Scatterer("Mn", "Mn3+", 0.01, source="xraydb")
    np.testing.assert_allclose(mn.factor(q), xraydb.f0("Mn3+", q / (4 * np.pi)) * np.exp(-0.005 * q**2), rtol=1e-14)
    assert mn.factor(np.zeros(1))[0] == pytest.approx(22.0, abs=0.01)  # 25 − 3 electrons
    # the paper's Cromer–Mann Sr2+ and xraydb's (Waasmaier–Kirfel) agree to a fraction of an electron
    np.testing.assert_allclose(form_factor("Sr2+")(q), form_factor("Sr2+", "xraydb")(q), atol=0.1)
    with pytest.raises(InputError, match=r"no form factor for 'Mn7\+'"):
        Scatterer("Mn", "Mn7+", source="xraydb")
    with pytest.raises(InputError, match="source must be one of"):
        Scatterer("Mn", "Mn3+", source="table")


def test_film_batches_and_atoms_back():
    film = build_film(read_xyz(LSMO), srtio3(), cell=(2 * A, A))
    G, M = film.site_occupancy.shape
    heights = film.site_height + np.array([[0.0], [0.1]])
    batch = film.structures(heights, np.broadcast_to(film.site_occupancy, (2, G, M)) * 0.5)
    assert len(batch) == 2
    second = film.atoms(batch, index=1)
    np.testing.assert_allclose(second.positions[:, 2], read_xyz(LSMO).positions[:, 2] + 0.1, atol=1e-12)
    assert second.atoms[0].occupancy == 0.5
    with pytest.raises(InputError, match=r"heights must be \(n, 30\)"):
        film.structures(np.zeros((1, 29)))
