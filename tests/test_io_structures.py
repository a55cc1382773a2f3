"""Structure files: XYZ, ROD .bul/.sur/.fit, CIF — readers, writers (write → read identical) and bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mamba_ctr.errors import InputError
from mamba_ctr.io.structure_formats import (
    Atom,
    AtomStructure,
    read_cif,
    read_rod_cell,
    read_rod_fit,
    read_structure,
    read_xyz,
    write_rod_cell,
    write_rod_fit,
    write_xyz,
)

DATA = Path(__file__).parent / "data" / "structures"
LSMO = DATA / "LSMO_3layers.XYZ"
A = 3.905


def test_xyz_reads_the_authors_file():
    s = read_xyz(LSMO)
    assert len(s.atoms) == 42 and s.units == "angstrom" and s.cell is None
    first = s.atoms[0]
    assert (first.species, first.x, first.y, first.z) == ("Sr", 0.0, 0.0, -0.010120833459)
    assert first.u_iso == 0.00643736686658 and first.occupancy == 1.0
    assert first.b_iso == pytest.approx(8 * math.pi**2 * 0.00643736686658, rel=1e-15)
    assert {a.species for a in s.atoms} == {"Sr", "La", "Ti", "Mn", "O"}


@pytest.mark.parametrize("writer, reader, suffix, units", [
    (write_xyz, read_xyz, ".xyz", "angstrom"),
    (write_rod_cell, read_rod_cell, ".sur", "fractional"),
    (write_rod_cell, read_rod_cell, ".bul", "fractional"),
    (write_rod_fit, read_rod_fit, ".fit", "fractional"),
])
def test_write_read_identical(tmp_path, writer, reader, suffix, units):
    structure = read_xyz(LSMO).with_cell((2 * A, A, A, 90.0, 90.0, 90.0)).to_units(units)
    first = tmp_path / f"a{suffix}"
    writer(first, structure)
    once = reader(first)
    second = tmp_path / f"b{suffix}"
    writer(second, once)
    assert reader(second) == once
    assert first.read_text() == second.read_text()
    if reader is not read_rod_fit:  # .fit carries no U or occupancy
        np.testing.assert_allclose([a.u_iso for a in once.atoms], [a.u_iso for a in structure.atoms], rtol=1e-15)
        assert [a.occupancy for a in once.atoms] == [a.occupancy for a in structure.atoms]
    np.testing.assert_allclose(once.to_units(units).positions, structure.positions, rtol=0, atol=1e-12)


def test_xyz_round_trip_is_exact_from_the_file(tmp_path):
    structure = read_xyz(LSMO)
    write_xyz(tmp_path / "x.xyz", structure)
    assert read_xyz(tmp_path / "x.xyz") == structure


def test_rod_cell_column_variants(tmp_path):
    path = tmp_path / "v.bul"
    path.write_text("// SrTiO3\n3.905 3.905 3.905 90 90 90\nSr 0 0 0\nTi 0.5 0.5 0.5 0.4\n"
                    "O 0.5 0.5 0 0.5 0.9\nO 0.5 0 0.5 0.6 0.6 1.0 // comment\n")
    s = read_rod_cell(path)
    assert s.title == "SrTiO3" and s.cell == (3.905, 3.905, 3.905, 90.0, 90.0, 90.0)
    assert [a.b_iso for a in s.atoms] == [0.0, 0.4, 0.5, 0.6]
    assert [a.occupancy for a in s.atoms] == [1.0, 1.0, 0.9, 1.0]
    assert s.atoms[1].u_iso == pytest.approx(0.4 / (8 * math.pi**2), rel=1e-15)


def test_fit_keeps_parameter_ties_verbatim(tmp_path):
    path = tmp_path / "t.fit"
    path.write_text("comment\n3.905 3.905 3.905 90 90 90\n"
                    "Sr 0.0 1.0 1 0.0 0 0.0 0.0 0 0.0 0 0.02 1 1 2 1\n"
                    "O 0.5 -1.0 2 0.5 3 0.5 0.0 0 0.0 0 0.0 2 1 2 0\n")
    s = read_rod_fit(path)
    assert [(a.species, a.x, a.y, a.z) for a in s.atoms] == [("Sr", 0.0, 0.0, 0.02), ("O", 0.5, 0.5, 0.0)]
    assert s.atoms[1].ties == ("-1.0", "2", "0.5", "3", "0.0", "0", "0.0", "0", "2", "1", "2", "0")
    write_rod_fit(tmp_path / "u.fit", s)
    assert read_rod_fit(tmp_path / "u.fit") == s


CIF = """data_SrTiO3
_cell_length_a 3.905
_cell_length_b 3.905
_cell_length_c 3.905
_cell_angle_alpha 90
_cell_angle_beta 90
_cell_angle_gamma 90
_symmetry_space_group_name_H-M 'P m -3 m'
loop_
_space_group_symop_operation_xyz
{ops}
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_U_iso_or_equiv
_atom_site_occupancy
Sr1 Sr2+ 0 0 0 0.006 1
Ti1 Ti4+ 0.5 0.5 0.5 0.004 1
O1 O2- 0.5 0.5 0 0.008 1
"""


def _cubic_ops() -> str:
    """The 48 operations of Pm-3m as x,y,z strings (permutations × signs)."""
    from itertools import permutations, product

    ops = []
    for perm in permutations("xyz"):
        for signs in product("+-", repeat=3):
            ops.append("'" + ",".join(("" if s == "+" else "-") + p for s, p in zip(signs, perm, strict=True)) + "'")
    return "\n".join(ops)


def test_cif_gives_every_site_of_the_cell(tmp_path):
    pytest.importorskip("gemmi")
    path = tmp_path / "SrTiO3.cif"
    path.write_text(CIF.format(ops=_cubic_ops()))
    s = read_cif(path)
    assert s.cell == pytest.approx((3.905, 3.905, 3.905, 90, 90, 90))
    assert sorted(a.species for a in s.atoms) == ["O2-", "O2-", "O2-", "Sr2+", "Ti4+"]
    oxygen = sorted((a.x, a.y, a.z) for a in s.atoms if a.element == "O")
    assert oxygen == [(0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0)]
    assert [a.u_iso for a in s.atoms if a.element == "Ti"] == pytest.approx([0.004])
    assert read_structure(path) == s


def test_read_structure_dispatches_and_takes_a_cell_for_xyz():
    s = read_structure(LSMO, cell=(2 * A, A, A, 90, 90, 90))
    assert s.cell == (2 * A, A, A, 90.0, 90.0, 90.0)
    assert s.to_units("fractional").atoms[3].x == pytest.approx(0.25)


@pytest.mark.parametrize("text, message", [
    ("2\ntitle\nSr 0 0 0 0.01 1\n", "announces 2 atoms"),
    ("1\ntitle\nSr 0 0 zero 0.01 1\n", "must be a number"),
    ("1\ntitle\nXx9 0 0 0 0.01 1\n", "element or ion symbol"),
    ("1\ntitle\nSr 0 0 0 0.01 1.5\n", "occupancy"),
    ("1\ntitle\nSr 0 0 0 0.01\n", "species x y z U_iso occupancy"),
])
def test_bad_xyz_is_one_input_error(tmp_path, text, message):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_xyz(path)


@pytest.mark.parametrize("text, message", [
    ("c\n3.905 3.905 90 90 90\nSr 0 0 0\n", "a b c alpha beta gamma"),
    ("c\n3.905 3.905 3.905 90 90 90\nSr 0 0 0 0.1 0.2 1\n", "isotropic"),
    ("c\n3.905 3.905 3.905 90 90 90\nSr 0 0\n", "El x y z"),
    ("c\n-1 3.905 3.905 90 90 90\nSr 0 0 0\n", "a, b, c > 0"),
])
def test_bad_rod_cell_is_one_input_error(tmp_path, text, message):
    path = tmp_path / "bad.sur"
    path.write_text(text)
    with pytest.raises(InputError, match=message):
        read_rod_cell(path)


def test_bad_paths_and_conversions(tmp_path):
    with pytest.raises(InputError, match="cannot read"):
        read_xyz(tmp_path / "missing.xyz")
    with pytest.raises(InputError, match=r"\.xyz, \.bul"):
        read_structure(tmp_path / "s.pdb")
    with pytest.raises(InputError, match="needs a cell"):
        read_xyz(LSMO).to_units("fractional")
    with pytest.raises(InputError, match="16 fields"):
        (tmp_path / "f.fit").write_text("c\n1 1 1 90 90 90\nSr 0 0 0\n")
        read_rod_fit(tmp_path / "f.fit")
    skew = AtomStructure((Atom("Sr", 0, 0, 0),), (1.0, 1.0, 1.0, 90.0, 90.0, 120.0), "fractional")
    with pytest.raises(InputError, match="orthogonal"):
        skew.to_units("angstrom")
