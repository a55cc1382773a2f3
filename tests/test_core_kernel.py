"""The compiled kernel mamba_ctr._core.film_fields against the numpy contract (docs/kernel.md)."""

from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("MAMBA_CTR_BACKEND") == "compiled":
    import mamba_ctr._core as core  # must be importable: fail loudly otherwise
else:
    core = pytest.importorskip("mamba_ctr._core")

from kernel_contract import film_fields_contract, paper_like_inputs

N = 24
R, NL = 16, 240


def contract(args):
    return film_fields_contract(**{k: v for k, v in args.items() if k != "uniform_step"})


def rel_err(got, ref):
    """Max over (structure, rod) of max |got - ref| / max |ref| along the rod."""
    scale = np.abs(ref).max(axis=-1)
    return float((np.abs(got.astype(ref.dtype) - ref).max(axis=-1) / scale).max())


def outputs(n, single):
    if single:
        return np.empty((n, R, NL), np.complex64), np.empty((n, R, NL), np.float32)
    return np.empty((n, R, NL), np.complex128), np.empty((n, R, NL), np.float64)


CASES = [
    dict(),
    dict(uniform=False),
    dict(complex_ff=True),
    dict(general_phase=True),
    dict(with_rough=True),
    dict(uniform=False, complex_ff=True, general_phase=True, with_rough=True),
    dict(complex_ff=True, general_phase=True, with_rough=True),
]


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c) or "paper")
def test_matches_contract(case, single):
    args = paper_like_inputs(N, seed=3, **case)
    U0, I0 = contract(args)
    U, I = outputs(N, single)
    core.film_fields(**args, film_field=U, intensity=I, threads=1)
    tol = 1e-5 if single else 1e-12
    assert rel_err(U, U0) <= tol
    assert rel_err(I, I0) <= tol


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_u_only_and_i_only(single):
    args = paper_like_inputs(N, seed=4, with_rough=True)
    U0, I0 = contract(args)
    U, I = outputs(N, single)
    core.film_fields(**args, film_field=U, threads=1)
    core.film_fields(**args, intensity=I, threads=1)
    U2, I2 = outputs(N, single)
    core.film_fields(**args, film_field=U2, intensity=I2, threads=1)
    tol = 1e-5 if single else 1e-12
    assert rel_err(U, U0) <= tol
    assert rel_err(I, I0) <= tol
    # writing one output does not change the other's bits
    np.testing.assert_array_equal(U, U2)
    np.testing.assert_array_equal(I, I2)


def test_no_output_is_a_no_op():
    args = paper_like_inputs(3, seed=5)
    assert core.film_fields(**args) is None


@pytest.mark.parametrize("case", [dict(), dict(uniform=False, complex_ff=True, general_phase=True,
                                                with_rough=True)], ids=["paper", "general"])
@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_bits_do_not_depend_on_threads(case, single):
    n = 37
    args = paper_like_inputs(n, seed=6, **case)
    results = []
    for threads in (1, 2, 3):
        U, I = outputs(n, single)
        core.film_fields(**args, film_field=U, intensity=I, threads=threads)
        results.append((U, I))
    for U, I in results[1:]:
        np.testing.assert_array_equal(U.view(np.uint8), results[0][0].view(np.uint8))
        np.testing.assert_array_equal(I.view(np.uint8), results[0][1].view(np.uint8))


def test_padding_sites_are_skipped():
    """Entries of weight 0 (padding layers) contribute nothing."""
    args = paper_like_inputs(N, seed=7)
    args["weight"][:, 60:] = 0.0
    args["weight"][::2, :12] = 0.0
    U0, I0 = contract(args)
    U, I = outputs(N, False)
    core.film_fields(**args, film_field=U, intensity=I)
    assert rel_err(U, U0) <= 1e-12
    assert rel_err(I, I0) <= 1e-12


def test_all_weights_zero_gives_substrate():
    args = paper_like_inputs(4, seed=8)
    args["weight"][:] = 0.0
    U, I = outputs(4, False)
    core.film_fields(**args, film_field=U, intensity=I)
    assert not U.any()
    np.testing.assert_allclose(I, np.broadcast_to(np.abs(args["substrate"]) ** 2, I.shape), rtol=1e-15)


def test_short_and_odd_grids():
    """NL not a multiple of the block / chunk sizes; one point."""
    for nl in (1, 7, 33, 45):
        args = paper_like_inputs(5, seed=9, with_rough=True, complex_ff=True)
        args["qz"] = args["qz"][:nl].copy()
        for key in ("ff_re", "ff_im"):
            args[key] = np.ascontiguousarray(args[key][..., :nl])
        args["substrate"] = np.ascontiguousarray(args["substrate"][:, :nl])
        args["rough"] = np.ascontiguousarray(args["rough"][:, :nl])
        if nl == 1:
            args["uniform_step"] = 0.0
        U0, I0 = contract(args)
        U = np.empty((5, R, nl), complex)
        I = np.empty((5, R, nl))
        core.film_fields(**args, film_field=U, intensity=I)
        assert rel_err(U, U0) <= 1e-12
        assert rel_err(I, I0) <= 1e-12


def test_large_phase_arguments_use_libm():
    """|qz z| beyond the fast sincos range still matches."""
    args = paper_like_inputs(3, seed=10, uniform=False)
    args["z"] = args["z"] * 1e4
    U0, _I0 = contract(args)
    U, I = outputs(3, False)
    core.film_fields(**args, film_field=U, intensity=I)
    assert rel_err(U, U0) <= 1e-9  # the contract's own products qz*z round at ~1e-11 here


def test_n_zero():
    args = paper_like_inputs(0)
    U, I = outputs(0, True)
    core.film_fields(**args, film_field=U, intensity=I)
    args = paper_like_inputs(0)
    core.film_fields(**args, film_field=np.empty((0, R, NL), complex), threads=2)


def test_accepts_other_input_dtypes_and_memmap(tmp_path):
    args = paper_like_inputs(4, seed=11)
    _U0, I0 = contract(args)
    args["entry_site"] = args["entry_site"].astype(np.int32)
    args["z"] = np.asfortranarray(args["z"])
    args["weight"] = args["weight"].tolist()
    I = np.memmap(tmp_path / "i.dat", dtype=np.float64, mode="w+", shape=(4, R, NL))
    core.film_fields(**args, intensity=I)
    assert rel_err(np.asarray(I), I0) <= 1e-12


def test_helpers():
    assert core.max_threads() >= 1
    assert isinstance(core.have_openmp(), bool)


# --- bad inputs ---------------------------------------------------------------

def bad(match, n=3, **changes):
    args = paper_like_inputs(n, seed=12)
    out = dict(film_field=np.empty((n, R, NL), np.complex128), intensity=np.empty((n, R, NL)))
    for key, value in changes.items():
        if key in out:
            out[key] = value
        else:
            args[key] = value(args[key]) if callable(value) else value
    with pytest.raises(ValueError, match=match):
        core.film_fields(**args, **out)


def test_bad_shapes():
    bad(r"weight must have shape \(n, E\) = \(3, 78\), got \(3, 77\)", weight=lambda w: w[:, :77])
    bad(r"z must have shape \(n, S\) \(2-D\), got \(195,\)", z=lambda z: z.ravel())
    bad(r"entry_pair must have shape \(E,\) = \(78,\), got \(77,\)", entry_pair=lambda a: a[:77])
    bad(r"pair_species must have shape", pair_species=lambda a: a[:6])
    bad(r"ff_re must have shape \(NSP, R, NL\) = \(6, 16, 240\), got \(6, 16, 239\)",
        ff_re=lambda f: f[..., :239])
    bad(r"ff_im must have shape", ff_im=np.zeros((6, 16, 239)))
    bad(r"substrate must have shape \(R, NL\)", substrate=lambda s: s[:15])
    bad(r"rough must have shape \(n, NL\) or size 0", rough=np.ones((2, NL)))


def test_bad_indices():
    def set_at(k, v):
        def f(a):
            a = a.copy()
            a[k] = v
            return a
        return f

    bad(r"entry_site values must lie in \[0, S\) = \[0, 65\), got 65", entry_site=set_at(-1, 65))
    bad(r"entry_site values must lie in \[0, S\)", entry_site=set_at(0, -1))
    bad(r"entry_site must be non-decreasing", entry_site=set_at(5, 0))
    bad(r"entry_pair values must lie in \[0, P\) = \[0, 7\), got 7", entry_pair=set_at(3, 7))
    bad(r"pair_column values must lie in \[0, C\) = \[0, 4\)", pair_column=set_at(0, 4))
    bad(r"pair_species values must lie in \[0, NSP\) = \[0, 6\)", pair_species=set_at(0, 6))
    bad(r"rod_pattern values must lie in \[0, NP\) = \[0, 4\)", rod_pattern=set_at(2, -3))


def test_bad_scalars_and_values():
    bad(r"uniform_step must be a finite number >= 0", uniform_step=-0.1)
    bad(r"uniform_step must be a finite number >= 0", uniform_step=float("nan"))
    bad(r"threads must be an integer >= 0", threads=-1)
    bad(r"z must be finite", z=lambda z: np.where(z > 10, np.inf, z))
    bad(r"qz must be finite", qz=lambda q: np.where(q > 1, np.nan, q))


def test_bad_outputs():
    n = 3
    bad(r"film_field and intensity must both be single .* or both double", n=n,
        film_field=np.empty((n, R, NL), np.complex64), intensity=np.empty((n, R, NL)))
    bad(r"film_field and intensity must both be single", n=n,
        film_field=np.empty((n, R, NL), np.complex128), intensity=np.empty((n, R, NL), np.float32))
    bad(r"film_field must be C-contiguous", n=n,
        film_field=np.empty((n, R, 2 * NL), np.complex128)[:, :, ::2])
    bad(r"intensity must be C-contiguous", n=n, intensity=np.empty((NL, R, n)).T)
    bad(r"film_field must have dtype complex64 or complex128, got float64", n=n,
        film_field=np.empty((n, R, NL)))
    bad(r"intensity must have dtype float32 or float64, got complex128", n=n,
        intensity=np.empty((n, R, NL), complex))
    bad(r"intensity must have shape \(n, R, NL\) = \(3, 16, 240\), got \(3, 16, 241\)", n=n,
        intensity=np.empty((n, R, NL + 1)))
    ro = np.empty((n, R, NL))
    ro.flags.writeable = False
    bad(r"intensity must be writeable", n=n, intensity=ro)
    bad(r"film_field must be a numpy array or None, got list", n=n, film_field=[1, 2])
    buf = np.empty((n, R, NL), np.complex128)
    overlapping = buf.view(np.float64).reshape(-1)[: n * R * NL].reshape(n, R, NL)
    bad(r"must not overlap", n=n, film_field=buf, intensity=overlapping)


# --- ISA variants (runtime dispatch) ------------------------------------------

def test_isa_names():
    variants = core.isa_variants()
    assert variants[0] == "baseline"
    assert set(variants) <= {"baseline", "avx2", "avx512"}
    if os.environ.get("MAMBA_CTR_ISA"):
        assert core.isa() == os.environ["MAMBA_CTR_ISA"]
    else:
        assert core.isa() == variants[-1]  # the best one the CPU supports


BIT_CASES = [
    dict(),
    dict(uniform=False),
    dict(complex_ff=True, general_phase=True, with_rough=True),
    dict(uniform=False, complex_ff=True, general_phase=True, with_rough=True),
]


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
@pytest.mark.parametrize("case", BIT_CASES, ids=lambda c: "-".join(c) or "paper")
def test_bits_do_not_depend_on_isa(case, single):
    """Every ISA variant the CPU supports gives the same bits (no FMA contraction,
    vectorisation across L only, fixed order of the sums)."""
    n = 13
    args = paper_like_inputs(n, seed=14, **case)
    args["weight"][::3, 20:40] = 0.0  # some padding
    if not case.get("uniform", True):
        args["z"][0, :3] *= 1e4  # a few arguments beyond the fast sincos range
    ref = None
    for name in core.isa_variants():
        U, I = outputs(n, single)
        core._film_fields_isa(name, **args, film_field=U, intensity=I, threads=2)
        if ref is None:
            ref = (U, I)
            U0, _I0 = contract(args)
            tol = 1e-5 if single else 1e-9
            assert rel_err(U, U0) <= tol
            continue
        np.testing.assert_array_equal(U.view(np.uint8), ref[0].view(np.uint8), err_msg=name)
        np.testing.assert_array_equal(I.view(np.uint8), ref[1].view(np.uint8), err_msg=name)


def test_default_is_the_chosen_variant():
    args = paper_like_inputs(5, seed=15, with_rough=True)
    U, I = outputs(5, True)
    U2, I2 = outputs(5, True)
    core.film_fields(**args, film_field=U, intensity=I)
    core._film_fields_isa(core.isa(), **args, film_field=U2, intensity=I2)
    np.testing.assert_array_equal(U.view(np.uint8), U2.view(np.uint8))
    np.testing.assert_array_equal(I.view(np.uint8), I2.view(np.uint8))


def test_bad_isa_names():
    args = paper_like_inputs(2, seed=16)
    with pytest.raises(ValueError, match=r"isa must be one of baseline, avx2, avx512, got 'sse9'"):
        core._film_fields_isa("sse9", **args, intensity=np.empty((2, R, NL)))
    for name in {"avx2", "avx512"} - set(core.isa_variants()):
        with pytest.raises(ValueError, match=name):
            core._film_fields_isa(name, **args, intensity=np.empty((2, R, NL)))


def _run_with_env(value):
    import subprocess
    import sys

    code = ("import numpy as np, mamba_ctr._core as c, sys; sys.path.insert(0, sys.argv[1]);"
            "from kernel_contract import paper_like_inputs as p; a = p(2);"
            "print(c.isa_variants());"
            "\ntry:\n print('ISA', c.isa())\nexcept ValueError as e:\n print('ERR', e)"
            "\ntry:\n c.film_fields(**a, intensity=np.empty((2, 16, 240))); print('RUN ok')"
            "\nexcept ValueError as e:\n print('RUNERR', e)")
    env = dict(os.environ, MAMBA_CTR_ISA=value)
    out = subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout


def test_env_forces_a_variant():
    for name in core.isa_variants():
        out = _run_with_env(name)
        assert f"ISA {name}" in out and "RUN ok" in out
    out = _run_with_env("avx1024")
    assert "ERR MAMBA_CTR_ISA must be one of baseline, avx2, avx512, got 'avx1024'" in out
    assert "RUNERR MAMBA_CTR_ISA must be one of" in out
    for name in {"avx2", "avx512"} - set(core.isa_variants()):
        assert "ERR MAMBA_CTR_ISA" in _run_with_env(name)
