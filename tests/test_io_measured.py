"""Measured rods: readers, writers, exact fractional h, k, basis transform, p4mm merging, supercell indices."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mamba_ctr.errors import InputError
from mamba_ctr.io import MeasuredRods, merge_p4mm, read_rods, supercell_indices, write_genx, write_rod_dat
from mamba_ctr.io.ctr_formats import read_plain

LSMO = Path(__file__).parent / "data" / "lsmo" / "lsmo_slice.txt"
HALF = Fraction(1, 2)


def _rods(quantity: str = "F", sigma: bool = True, meta: bool = False) -> MeasuredRods:
    """Three rods with fractional h, k (0.5, 1.5, 2.5, 0.9999999) as strings, the way a reader passes them."""
    h = ["0.5"] * 3 + ["1.5"] * 2 + ["0.9999999"] * 2
    k = ["2.5"] * 3 + ["0.5"] * 2 + ["0"] * 2
    l = [0.1, 0.35, 1.2, 0.5, 0.6, 2.0, 2.1]
    value = [3.0, 1.0 / 3.0, 0.125, 7.5e-5, 12.0, 2.0, 1e7]
    per_rod = [1.0] * 3 + [2.0] * 2 + [3.0] * 2
    return MeasuredRods.from_points(h, k, l, value, quantity=quantity,  # type: ignore[arg-type]
                                    sigma=[0.1 * v for v in value] if sigma else None,
                                    l_bragg=per_rod if meta else None, dl=[2.0 * x for x in per_rod] if meta else None,
                                    source="synthetic")


def _assert_identical(a: MeasuredRods, b: MeasuredRods) -> None:
    for name in ("h", "k", "l", "value", "rod"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ("sigma", "l_bragg", "dl"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.rod_keys == b.rod_keys
    assert a.quantity == b.quantity


# --- the measured LSMO slice ------------------------------------------------------------------------------------------


def test_lsmo_slice_reads_and_transforms_to_exact_pseudocubic_rods():
    rods = read_rods(LSMO, "plain", columns="h,k,l,I,skip")
    assert rods.n_points == 300 and rods.quantity == "I" and rods.sigma is None
    assert rods.rod_keys == ((0, 0), (2, 0), (3, 1), (1, 1))  # -0.0 and 0.0 are one rod
    pc = rods.transform_basis([["1/2", 0], [0, "1/2"]])
    assert pc.rod_keys == ((0, 0), (1, 0), (Fraction(3, 2), HALF), (HALF, HALF))
    assert all(isinstance(x, Fraction) for key in pc.rod_keys for x in key)
    assert [r.l.size for r in pc.rods()] == [100, 60, 60, 80]
    half = next(r for r in pc.rods() if r.key == (HALF, HALF))
    assert np.all(half.h == 0.5) and np.all(half.k == 0.5) and np.all(np.diff(half.l) > 0)
    np.testing.assert_array_equal(pc.value, np.loadtxt(LSMO)[:, 3])
    assert "(1/2, 1/2)" in pc.summary() and "in-plane basis" in pc.summary()
    nx, ny, hk = supercell_indices(pc.rod_keys)
    assert (nx, ny) == (2, 2)
    np.testing.assert_array_equal(hk, [[0, 0], [2, 0], [3, 1], [1, 1]])
    merged, report = merge_p4mm(pc, l_tolerance=0.002)
    assert math.isnan(report.r_sym) and report.n_multiple == 0 and merged.n_points == pc.n_points


# --- fractional h, k are kept exactly ---------------------------------------------------------------------------------


@pytest.mark.parametrize("writer, fmt", [(write_rod_dat, "rod"), (write_genx, "genx")])
def test_fractional_hk_never_rounded(tmp_path, writer, fmt):
    rods = _rods()
    assert rods.rod_keys == ((HALF, Fraction(5, 2)), (Fraction(3, 2), HALF), (Fraction(9999999, 10**7), 0))
    assert set(rods.h.tolist()) == {0.5, 1.5, 0.9999999} and set(rods.k.tolist()) == {2.5, 0.5, 0.0}
    writer(rods, tmp_path / "x.dat")
    back = read_rods(tmp_path / "x.dat", fmt)
    assert back.rod_keys == rods.rod_keys and back.hk_deviation == 0.0
    assert set(back.h.tolist()) == {0.5, 1.5, 0.9999999}


def test_grouping_with_tolerance_is_stated_and_bounded():
    h, k, l, v = ["0.9999999", "1.0000001", "0.5"], ["0", "0", "0.5"], [1.0, 1.1, 1.0], [1.0, 2.0, 3.0]
    rods = MeasuredRods.from_points(h, k, l, v, quantity="I", hk_tolerance=1e-6, source="t")
    assert rods.rod_keys == ((1, 0), (HALF, HALF))
    assert rods.h.tolist() == [0.9999999, 1.0000001, 0.5]  # points keep their measured h
    assert rods.hk_deviation == pytest.approx(1e-7) and "max deviation 1e-07" in rods.summary()
    with pytest.raises(InputError, match=r"t point 0: .* not within 1e-09"):
        MeasuredRods.from_points(h, k, l, v, quantity="I", hk_tolerance=1e-9, source="t")


# --- round trips ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("meta", [False, True])
@pytest.mark.parametrize("writer, fmt, quantity", [(write_rod_dat, "rod", "F"), (write_genx, "genx", "I")])
def test_write_read_identical(tmp_path, writer, fmt, quantity, meta):
    rods = _rods(quantity, meta=meta)
    if fmt == "rod":  # ROD .dat carries l_bragg only
        rods = replace(rods, dl=None)
    writer(rods, tmp_path / "rods.txt")
    back = read_rods(tmp_path / "rods.txt", fmt)
    _assert_identical(rods, back)
    assert back.source == "rods.txt"
    writer(back, tmp_path / "again.txt")  # and a second generation is byte-identical
    assert (tmp_path / "again.txt").read_text().splitlines()[1:] == (tmp_path / "rods.txt").read_text().splitlines()[1:]


def test_writers_convert_the_quantity_and_need_sigma(tmp_path):
    f = _rods("F")
    write_genx(f, tmp_path / "g.dat")
    i = read_rods(tmp_path / "g.dat", "genx")
    np.testing.assert_array_equal(i.value, f.value**2)
    np.testing.assert_array_equal(i.sigma, 2 * f.value * f.sigma)
    with pytest.raises(InputError, match="needs σ"):
        write_rod_dat(_rods(sigma=False), tmp_path / "r.dat")
    assert not (tmp_path / "r.dat").exists()
    with pytest.raises(InputError, match="for some rods only"):
        write_genx(replace(_rods(meta=True), dl=None), tmp_path / "r.dat")


def test_gsecars_tdl_header_names_the_columns(tmp_path):
    path = tmp_path / "ctr.lst"
    path.write_text("# GSECARS rods\n#idx     H     K     L       F    Ferr  extra\n"
                    "0 1.5 0.5 0.25 10.0 1.0 99\n1 1.5 0.5 0.30 11.0 1.5 98\n2 0.0 1.0 0.30 5.0 0.5 97\n")
    rods = read_rods(path, "tdl")
    assert rods.quantity == "F" and rods.rod_keys == ((Fraction(3, 2), HALF), (0, 1))
    np.testing.assert_array_equal(rods.sigma, [1.0, 1.5, 0.5])
    assert rods.history == ("ignored columns: idx, extra",)
    path.write_text("# h k l f ferr lb dl\n1 0 0.5 2.0 0.2 1 2\n1 0 0.6 2.5 0.2 1 2\n")
    rods = read_rods(path, "gsecars")
    assert rods.l_bragg.tolist() == [1.0] and rods.dl.tolist() == [2.0]


def test_ana_export_as_orgui_writes_it(tmp_path):
    data = np.array([[0.5, 0.5, 0.1, 3.0, 0.3, -3], [0.5, 0.5, 0.2, 2.0, 0.2, -3], [1, 0, 0.2, 9.0, 0.5, -3]])
    np.savetxt(tmp_path / "a.ana", data, header="H  K  L  F_HKL  errorF  mode", fmt="%.5f")
    rods = read_rods(tmp_path / "a.ana", "ana")
    assert rods.quantity == "F" and rods.rod_keys == ((HALF, HALF), (1, 0))
    np.testing.assert_array_equal(rods.value, data[:, 3])
    np.savetxt(tmp_path / "c.ana", data[:, :5], header="H  K  L  F_HKL  phi", fmt="%.5f")
    with pytest.raises(InputError, match=r"c.ana line 1: .*calculated"):
        read_rods(tmp_path / "c.ana", "ana")


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 25),
    hk=st.lists(st.sampled_from(["0", "1", "-1", "0.5", "1.5", "2.5", "0.9999999", "-0.0"]),
                min_size=2, max_size=2),
    values=st.lists(st.floats(1e-12, 1e12, allow_nan=False), min_size=25, max_size=25),
    csv=st.booleans(), pad=st.sampled_from(["", " ", "\t", "   "]), order=st.permutations(range(5)),
)
def test_plain_reader_property(tmp_path_factory, n, hk, values, csv, pad, order):
    """Random whitespace / CSV tables in any column order read back exactly."""
    names = ["h", "k", "l", "F", "skip"]
    table = [[hk[0], hk[1], repr(0.01 * (i + 1)), repr(values[i]), "junk"] for i in range(n)]
    sep = f"{pad}," if csv else f"{pad} "
    text = "# a comment\n" + "\n".join(pad + sep.join(row[j] for j in order) for row in table) + "\n"
    path = tmp_path_factory.mktemp("plain") / ("t.csv" if csv else "t.dat")
    path.write_text(text)
    rods = read_plain(path, [names[j] for j in order])
    assert rods.rod_keys == ((Fraction(hk[0]), Fraction(hk[1])),)
    assert rods.h.tolist() == [float(hk[0])] * n and rods.value.tolist() == values[:n]
    assert rods.l.tolist() == [0.01 * (i + 1) for i in range(n)] and rods.sigma is None and rods.quantity == "F"


# --- quantities, basis transforms, merging, supercells ----------------------------------------------------------------


def test_as_quantity_propagates_sigma():
    f = _rods("F")
    i = f.as_quantity("I")
    np.testing.assert_allclose(i.as_quantity("F").value, f.value, rtol=1e-15)
    np.testing.assert_allclose(i.as_quantity("F").sigma, f.sigma, rtol=1e-15)
    assert f.as_quantity("F") is f
    bad = replace(i, value=np.where(np.arange(i.n_points) == 2, 0.0, i.value))
    with pytest.raises(InputError, match=r"point 2 .* expected I > 0"):
        bad.as_quantity("F")


def test_basis_transform_is_exact():
    rods = MeasuredRods.from_points(["1", "0.5", "3"], ["2", "1.5", "0"], [1.0, 1.0, 1.0], [1.0, 2.0, 3.0],
                                    quantity="I", source="t")
    third = rods.transform_basis([[Fraction(1, 3), 0], [0, 1]])
    assert third.rod_keys == ((Fraction(1, 3), 2), (Fraction(1, 6), Fraction(3, 2)), (1, 0))
    assert third.h.tolist() == [1 / 3, 1 / 6, 1.0]
    rotated = rods.transform_basis([[1, 1], ["-1", "1"]])
    assert rotated.rod_keys == ((3, 1), (2, 1), (3, -3))
    back = third.transform_basis([[3, 0], [0, 1]])
    assert back.rod_keys == rods.rod_keys and back.h.tolist() == rods.h.tolist()
    for matrix in ([[1, 2], [2, 4]], [[1, 0]], [["a", 0], [0, 1]], 3):
        with pytest.raises(InputError, match=r"matrix|exact number"):
            rods.transform_basis(matrix)  # type: ignore[arg-type]


def test_p4mm_merge_averages_equivalent_rods_and_reports_r_sym():
    l_grid = [0.5, 1.0, 1.5]
    h = ["1"] * 3 + ["0"] * 2 + ["-1"] * 1 + ["2"] * 2
    k = ["0"] * 3 + ["1"] * 2 + ["0"] * 1 + ["1"] * 2
    l = [*l_grid, 0.5004, 1.0, 1.0, 1.0, 2.0]
    y = [10.0, 20.0, 30.0, 12.0, 24.0, 22.0, 5.0, 6.0]
    s = [1.0, 2.0, 3.0, 1.0, 2.0, 2.0, 0.5, 0.5]
    rods = MeasuredRods.from_points(h, k, l, y, quantity="I", sigma=s, source="t")
    merged, report = merge_p4mm(rods, l_tolerance=0.001)
    assert merged.rod_keys == ((1, 0), (2, 1)) and report.n_multiple == 2
    # groups: L ≈ 0.5 {10, 12}, L = 1.0 {20, 24, 22}, L = 1.5 {30}
    expected = (1 + 1 + 2 + 2 + 0) / (10 + 12 + 20 + 24 + 22)
    assert report.r_sym == pytest.approx(expected, rel=1e-15)
    first = next(merged.rods())
    np.testing.assert_allclose(first.l, [0.5002, 1.0, 1.5], rtol=1e-15)
    np.testing.assert_allclose(first.value, [11.0, 22.0, 30.0], rtol=1e-15)
    np.testing.assert_allclose(first.sigma, [math.sqrt(2) / 2, math.sqrt(12) / 3, 3.0], rtol=1e-15)
    assert merged.n_points == 5 and "R_sym(I) = 0.0682" in report.summary()
    assert np.all(first.h == 1.0) and np.all(first.k == 0.0)  # points of (0, 1), (-1, 0) moved onto (1, 0)
    lone = merge_p4mm(rods, l_tolerance=0.0)[1]
    assert lone.n_multiple == 1  # only the exact L = 1.0 triple
    with pytest.raises(InputError, match="l_tolerance"):
        merge_p4mm(rods, l_tolerance=-1.0)


def test_merge_never_averages_neighbours_of_one_scan():
    rods = MeasuredRods.from_points(["1"] * 4, ["0"] * 4, [1.0, 1.01, 1.02, 1.03], [1.0, 2.0, 3.0, 4.0],
                                    quantity="I", source="t")
    merged, report = merge_p4mm(rods, l_tolerance=0.5)
    assert merged.n_points == 4 and report.n_multiple == 0 and math.isnan(report.r_sym)


def test_supercell_indices():
    assert supercell_indices([(0, 0), ("1/2", "1/2"), ("3/2", "1/2")])[:2] == (2, 2)
    nx, ny, hk = supercell_indices([(Fraction(1, 3), 0), (1, "1/2"), ("-2/3", 2)])
    assert (nx, ny) == (3, 2)
    np.testing.assert_array_equal(hk, [[1, 0], [3, 1], [-2, 4]])
    with pytest.raises(InputError):
        supercell_indices([])


# --- bad input: one InputError line naming the file, the line and what was expected -----------------------------------


BAD_FILES = {
    "wrong column count": ("rod", "comment\n1 0 0.5 2.0 0.1\n1 0 0.6 2.0\n", r"bad line 3: expected 5 columns"),
    "too few columns": ("genx", "1 0 0.5 2.0\n", r"bad line 1: expected 5 or 7 columns"),
    "non-numeric": ("genx", "# x\n1 0 0.5 abc 0.1\n", r"bad line 2: column 4 \(value\): expected a number, got 'abc'"),
    "nan": ("genx", "1 0 nan 2.0 0.1\n", r"bad line 1: column 3 \(l\): expected a finite number, got 'nan'"),
    "inf": ("rod", "c\n1 0 0.5 inf 0.1\n", r"bad line 2: .*finite number, got 'inf'"),
    "negative sigma": ("genx", "1 0 0.5 2.0 -0.1\n", r"bad line 1: σ must be ≥ 0, got -0.1"),
    "empty": ("genx", "", r"bad: no data lines; expected GenX"),
    "comments only": ("ana", "# H K L F_HKL errorF mode\n", r"bad: no data lines"),
    "duplicate": ("genx", "1 0 0.5 2 .1\n1.0 0.0 0.5 3 .1\n",
                  r"bad line 2: duplicate point \(1, 0\) L = 0.5, already on line 1"),
    "rod without comment": ("rod", "1 0 0.5 2.0 0.1\n", r"bad line 1: expected a comment line"),
    "gsecars without header": ("gsecars", "1 0 0.5 2.0 0.1\n", r"bad: expected a header line"),
    "gsecars header without ferr": ("gsecars", "# h k l f\n1 0 0.5 2\n", r"bad line 1: expected a header naming"),
    "l_bragg varies in a rod": ("rod", "c\n1 0 0.5 2 .1 1\n1 0 0.6 2 .1 2\n", r"bad line 3: l_bragg 2.0 differs"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_raise_one_line_input_error(tmp_path, case):
    fmt, text, message = BAD_FILES[case]
    path = tmp_path / "bad"
    path.write_text(text)
    with pytest.raises(InputError, match=message) as error:
        read_rods(path, fmt)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("columns, message", [
    ("h,k,I,skip", "naming h, k, l"), ("h,k,l,skip", "one of I or F"), ("h,k,l,I,F", "one of I or F"),
    ("h,h,l,I", "once each"), ("h,k,l,I,weight", "got 'h,k,l,I,weight'"),
])
def test_bad_column_maps(columns, message):
    with pytest.raises(InputError, match=message):
        read_rods(LSMO, "plain", columns=columns)


def test_bad_arguments_and_paths(tmp_path):
    with pytest.raises(InputError, match=r"lsmo_slice.txt line 1: expected 4 columns \(columns h,k,l,I\), got 5"):
        read_rods(LSMO, "plain", columns="h,k,l,I")
    with pytest.raises(InputError, match="unknown CTR format 'fit'; expected one of rod, genx"):
        read_rods(LSMO, "fit")
    with pytest.raises(InputError, match="needs a column map"):
        read_rods(LSMO, "plain")
    with pytest.raises(InputError, match="apply to format 'plain' only"):
        read_rods(LSMO, "genx", columns="h,k,l,I,skip")
    with pytest.raises(InputError, match="no such file"):
        read_rods(tmp_path / "missing.dat", "rod")
    with pytest.raises(InputError, match="directory"):
        read_rods(tmp_path, "rod")
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(InputError, match="undecodable"):
        read_rods(tmp_path / "bin", "genx")
    (tmp_path / "semi.csv").write_text("h,k,l,I\n1,0,0.5,2\n")
    with pytest.raises(InputError, match=r"semi.csv line 1: column 1 \(h\): expected a number, got 'h'"):
        read_rods(tmp_path / "semi.csv", "plain", columns="h,k,l,I", delimiter=",")
    assert read_rods(tmp_path / "semi.csv", "plain", columns="h,k,l,I", skip_rows=1).n_points == 1  # .csv → ","
    (tmp_path / "semi.txt").write_text("1,0,0.5,2\n")
    with pytest.raises(InputError, match=r"semi.txt line 1: expected 4 columns"):
        read_rods(tmp_path / "semi.txt", "plain", columns="h,k,l,I")
