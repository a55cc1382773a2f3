"""The numba kernel against the literal numpy contract (docs/kernel.md)."""

from __future__ import annotations

import numpy as np
import pytest

numba = pytest.importorskip("numba")

from kernel_contract import film_fields_contract, paper_like_inputs  # noqa: E402
from mamba_ctr._kernels_numba import film_fields, max_threads  # noqa: E402

N = 20


def _contract(inp):
    return film_fields_contract(**{k: v for k, v in inp.items() if k != "uniform_step"})


def _outputs(n, single, shape=(16, 240)):
    ct, rt = (np.complex64, np.float32) if single else (np.complex128, np.float64)
    return np.full((n, *shape), np.nan, ct), np.full((n, *shape), np.nan, rt)


def _rel_err(got, ref):
    """max over structures and rods of max_l |got - ref| / max_l |ref|."""
    scale = np.abs(ref).max(axis=-1)
    return float((np.abs(got - ref).max(axis=-1) / scale).max())


CASES = [
    dict(uniform=True),
    dict(uniform=False),
    dict(uniform=True, complex_ff=True),
    dict(uniform=True, general_phase=True),
    dict(uniform=True, with_rough=True),
    dict(uniform=False, complex_ff=True, general_phase=True, with_rough=True),
    dict(uniform=True, complex_ff=True, general_phase=True, with_rough=True),
]


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(k for k, v in c.items() if v) or "nonuniform")
def test_matches_contract(case, single):
    inp = paper_like_inputs(N, seed=3, **case)
    U_ref, I_ref = _contract(inp)
    U, I = _outputs(N, single)
    film_fields(**inp, film_field=U, intensity=I)
    tol = 1e-5 if single else 1e-12
    assert _rel_err(U, U_ref) <= tol
    assert _rel_err(I, I_ref) <= tol


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_u_only_and_i_only(single):
    inp = paper_like_inputs(N, seed=5, complex_ff=True, with_rough=True)
    U_ref, I_ref = _contract(inp)
    U, I = _outputs(N, single)
    film_fields(**inp, film_field=U, intensity=None)
    film_fields(**inp, film_field=None, intensity=I)
    tol = 1e-5 if single else 1e-12
    assert _rel_err(U, U_ref) <= tol
    assert _rel_err(I, I_ref) <= tol
    U2, I2 = _outputs(N, single)
    film_fields(**inp, film_field=U2, intensity=I2)
    np.testing.assert_array_equal(U, U2)
    np.testing.assert_array_equal(I, I2)
    film_fields(**inp)  # no outputs: nothing to do


def test_zero_weight_sites_are_skipped_consistently():
    inp = paper_like_inputs(N, seed=7, uniform=True, general_phase=True)
    w = inp["weight"].copy()
    w[:, :10] = 0.0          # whole sites empty
    w[::2, 40] = 0.0         # one entry of a site with two entries
    inp["weight"] = w
    U_ref, I_ref = _contract(inp)
    U, I = _outputs(N, False)
    film_fields(**inp, film_field=U, intensity=I)
    assert _rel_err(U, U_ref) <= 1e-12
    assert _rel_err(I, I_ref) <= 1e-12


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_bits_do_not_depend_on_threads(single):
    n = 50
    inp = paper_like_inputs(n, seed=11, complex_ff=True, general_phase=True, with_rough=True)
    U1, I1 = _outputs(n, single)
    U2, I2 = _outputs(n, single)
    before = numba.get_num_threads()
    film_fields(**inp, film_field=U1, intensity=I1, threads=1)
    assert numba.get_num_threads() == before
    film_fields(**inp, film_field=U2, intensity=I2, threads=2)
    assert numba.get_num_threads() == before
    assert U1.tobytes() == U2.tobytes()
    assert I1.tobytes() == I2.tobytes()
    # one structure alone gives the same bits as inside a batch
    U3, I3 = _outputs(1, single)
    one = {k: (v[7:8] if k in ("z", "weight", "rough") and v.size else v) for k, v in inp.items()}
    film_fields(**one, film_field=U3, intensity=I3)
    assert U3.tobytes() == U1[7:8].tobytes()
    assert I3.tobytes() == I1[7:8].tobytes()


def test_n_zero_and_max_threads():
    inp = paper_like_inputs(0)
    U, I = _outputs(0, False)
    film_fields(**inp, film_field=U, intensity=I)
    assert max_threads() >= 1


def test_small_odd_sizes():
    """Few L points (< one recurrence block), one rod, one pattern."""
    inp = paper_like_inputs(3, seed=2, complex_ff=True)
    keep = slice(0, 5)
    inp["qz"] = inp["qz"][:5]
    inp["ff_re"] = inp["ff_re"][:, :1, keep]
    inp["ff_im"] = inp["ff_im"][:, :1, keep]
    inp["substrate"] = inp["substrate"][:1, keep]
    inp["rod_pattern"] = inp["rod_pattern"][:1]
    U_ref, I_ref = _contract(inp)
    U, I = _outputs(3, False, shape=(1, 5))
    film_fields(**inp, film_field=U, intensity=I)
    assert _rel_err(U, U_ref) <= 1e-12
    assert _rel_err(I, I_ref) <= 1e-12


def _bad(inp, match, **out):
    with pytest.raises(ValueError, match=match):
        film_fields(**inp, **out)


def test_bad_inputs_raise_clear_errors():
    n = 4
    inp = paper_like_inputs(n)
    U, I = _outputs(n, False)
    ok = dict(film_field=U, intensity=I)

    _bad({**inp, "weight": inp["weight"][:, :77]},
         r"weight must have shape \(n, E\) = \(4, 78\), got \(4, 77\)", **ok)
    _bad({**inp, "z": inp["z"][0]}, r"z must have shape \(n, S\)", **ok)
    es = inp["entry_site"].copy()
    es[5], es[6] = es[6], es[5] - 1
    _bad({**inp, "entry_site": es}, "entry_site must be non-decreasing", **ok)
    es = inp["entry_site"].copy()
    es[-1] = 65
    _bad({**inp, "entry_site": es}, r"entry_site values must lie in \[0, S\) = \[0, 65\), got 65", **ok)
    ep = inp["entry_pair"].copy()
    ep[0] = -1
    _bad({**inp, "entry_pair": ep}, r"entry_pair values must lie in \[0, P\) = \[0, 7\), got -1", **ok)
    pc = inp["pair_column"].copy()
    pc[0] = 4
    _bad({**inp, "pair_column": pc}, r"pair_column values must lie in \[0, C\)", **ok)
    ps = inp["pair_species"].copy()
    ps[0] = 6
    _bad({**inp, "pair_species": ps}, r"pair_species values must lie in \[0, NSP\)", **ok)
    rp = inp["rod_pattern"].copy()
    rp[0] = 4
    _bad({**inp, "rod_pattern": rp}, r"rod_pattern values must lie in \[0, NP\)", **ok)
    _bad({**inp, "entry_site": inp["entry_site"].astype(float)}, "entry_site must have an integer dtype", **ok)
    _bad({**inp, "pair_species": inp["pair_species"][:6]},
         r"pair_species must have shape \(P,\) = \(7,\), got \(6,\)", **ok)
    _bad({**inp, "ff_re": inp["ff_re"][:, :, :239]}, r"ff_re must have shape \(NSP, R, NL\) = \(6, 16, 240\)", **ok)
    _bad({**inp, "ff_im": np.ones((6, 16, 239))}, "ff_im must have shape", **ok)
    _bad({**inp, "substrate": inp["substrate"][:15]}, r"substrate must have shape \(R, NL\) = \(16, 240\)", **ok)
    _bad({**inp, "rough": np.ones((n, 239))}, r"rough must have shape \(n, NL\) or size 0 = \(4, 240\)", **ok)
    _bad({**inp, "uniform_step": -0.1}, "uniform_step must be", **ok)

    _bad(inp, r"film_field must have shape \(n, R, NL\) = \(4, 16, 240\), got \(4, 16, 239\)",
         film_field=U[:, :, :239], intensity=I)
    _bad(inp, "film_field must have dtype complex64 or complex128, got float64",
         film_field=I, intensity=None)
    _bad(inp, "intensity must have dtype float32 or float64, got complex128",
         film_field=None, intensity=U)
    _bad(inp, r"both be single \(complex64, float32\) or both double", film_field=U, intensity=I.astype(np.float32))
    _bad(inp, "film_field must be C-contiguous",
         film_field=np.zeros((n, 240, 16), complex).transpose(0, 2, 1), intensity=I)
    ro = I.copy()
    ro.flags.writeable = False
    _bad(inp, "intensity must be writeable", film_field=U, intensity=ro)
    _bad(inp, "threads must be an integer >= 0", film_field=U, intensity=I, threads=-1)
    # outputs untouched by failed calls
    assert np.isnan(I).all()


@pytest.mark.parametrize("uniform", [False, True], ids=["list", "uniform"])
def test_large_arguments_fall_back_to_libm(uniform):
    """|qz z| beyond the vectorised sincos range (2^19) takes the libm path per structure."""
    inp = paper_like_inputs(6, seed=13, uniform=uniform, general_phase=True)
    z = inp["z"].copy()
    z[::2] += 6.0e4          # every other structure out of the fast range
    inp["z"] = z
    U_ref, I_ref = _contract(inp)
    U, I = _outputs(6, False)
    film_fields(**inp, film_field=U, intensity=I)
    # recurrence phases lose ~k ulp(step z) on uniform grids: looser there
    tol = 1e-9 if uniform else 1e-12
    assert _rel_err(U, U_ref) <= tol
    assert _rel_err(I, I_ref) <= tol


def test_no_entries_no_scatterers():
    """E = P = NSP = 0: U = 0 and I = |S|^2 (rough)."""
    inp = paper_like_inputs(3, seed=17, with_rough=True)
    empty = np.zeros(0, np.int64)
    inp.update(weight=np.zeros((3, 0)), entry_site=empty, entry_pair=empty, pair_column=empty,
               pair_species=empty, ff_re=np.zeros((0, 16, 240)), ff_im=np.zeros(0))
    _U_ref, I_ref = _contract(inp)
    U, I = _outputs(3, False)
    film_fields(**inp, film_field=U, intensity=I)
    assert np.all(U == 0)
    np.testing.assert_allclose(I, I_ref, rtol=1e-14)
