"""One kernel test matrix: every compiled ISA variant this CPU runs and the numba twin, against the numpy
contract (tests/kernel_contract.py, docs/kernel.md), through the plan API: Plan(*tables).run(z, weight, rough).

The compiled cases skip when the extension is absent (numba-only installs), unless MAMBA_CTR_BACKEND=compiled
(CI), where a missing extension fails.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from kernel_contract import film_fields_contract, paper_like_inputs
from mamba_ctr._kernel_args import MOMENT_GROUP, PlanTables, l_segments

try:
    import mamba_ctr._core as core
except ImportError:
    if os.environ.get("MAMBA_CTR_BACKEND") == "compiled":
        raise  # forced: fail loudly
    core = None
try:
    from mamba_ctr import _kernels_numba as numba_kernel
except ImportError:
    numba_kernel = None

N = 24
S, R, NL = 65, 16, 240  # sites, rods and points of paper_like_inputs
PER_CALL = ("z", "weight", "rough")
needs_core = pytest.mark.skipif(core is None, reason="compiled extension not built")


def _kernels() -> list:
    compiled = ([pytest.param(("compiled", isa), id=f"compiled-{isa}") for isa in core.isa_variants()] if core
                else [pytest.param(None, id="compiled", marks=pytest.mark.skip(reason="compiled extension not built"))])
    numba = pytest.param(("numba", ""), id="numba",
                         marks=pytest.mark.skipif(numba_kernel is None, reason="numba not installed"))
    return [*compiled, numba]


@pytest.fixture(params=_kernels())
def kernel(request):
    """kernel(args, **outputs): build the plan of the flat contract `args` and run it."""
    kind, isa = request.param

    def run(args: dict, **outputs) -> None:
        plan = core.Plan(*tables(args), isa=isa) if kind == "compiled" else numba_kernel.Plan(*tables(args))
        plan.run(**{k: args[k] for k in PER_CALL}, **outputs)

    return run


def tables(args: dict) -> PlanTables:
    return PlanTables(**{k: v for k, v in args.items() if k not in PER_CALL}, n_sites=S)


def contract(args):
    return film_fields_contract(**{k: v for k, v in args.items() if k != "uniform_step"})


def rel_err(got, ref):
    """Max over (structure, rod) of max |got - ref| / max |ref| along the rod."""
    scale = np.abs(ref).max(axis=-1)
    return float((np.abs(got.astype(ref.dtype) - ref).max(axis=-1) / scale).max())


def outputs(n, single, shape=(R, NL)):
    ct, rt = (np.complex64, np.float32) if single else (np.complex128, np.float64)
    return np.full((n, *shape), np.nan, ct), np.full((n, *shape), np.nan, rt)


def assert_bits(a, b, msg=""):
    np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=msg)


CASES = [
    dict(),
    dict(uniform=False),
    dict(complex_ff=True),
    dict(general_phase=True),
    dict(with_rough=True),
    dict(uniform=False, complex_ff=True, general_phase=True, with_rough=True),
    dict(complex_ff=True, general_phase=True, with_rough=True),
    dict(gapped=True),
    dict(gapped=True, complex_ff=True, general_phase=True, with_rough=True),
]


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(c) or "paper")
def test_matches_contract(kernel, case, single):
    args = paper_like_inputs(N, seed=3, **case)
    U0, I0 = contract(args)
    U, I = outputs(N, single)
    kernel(args, film_field=U, intensity=I, threads=1)
    tol = 1e-5 if single else 1e-12
    assert rel_err(U, U0) <= tol
    assert rel_err(I, I0) <= tol


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_u_only_and_i_only(kernel, single):
    args = paper_like_inputs(N, seed=4, complex_ff=True, with_rough=True)
    U0, I0 = contract(args)
    U, I = outputs(N, single)
    kernel(args, film_field=U, threads=1)
    kernel(args, intensity=I, threads=1)
    U2, I2 = outputs(N, single)
    kernel(args, film_field=U2, intensity=I2, threads=1)
    tol = 1e-5 if single else 1e-12
    assert rel_err(U, U0) <= tol
    assert rel_err(I, I0) <= tol
    assert_bits(U, U2)  # writing one output does not change the other's bits
    assert_bits(I, I2)
    kernel(args)  # no outputs: nothing to do


@pytest.mark.parametrize("case", [dict(), dict(uniform=False, complex_ff=True, general_phase=True,
                                                with_rough=True), dict(gapped=True, general_phase=True)],
                         ids=["paper", "general", "gapped"])
@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_bits_do_not_depend_on_threads_nor_batch(kernel, case, single):
    n = 37
    args = paper_like_inputs(n, seed=6, **case)
    threads_before = numba_kernel.max_threads() if numba_kernel else 0
    results = []
    for threads in (1, 2, 3):
        U, I = outputs(n, single)
        kernel(args, film_field=U, intensity=I, threads=threads)
        results.append((U, I))
    for U, I in results[1:]:
        assert_bits(U, results[0][0])
        assert_bits(I, results[0][1])
    if numba_kernel:
        assert numba_kernel.max_threads() == threads_before  # the numba plan restores its thread count
    # one structure alone gives the same bits as inside a batch
    one = {k: (v[7:8] if k in PER_CALL and np.size(v) else v) for k, v in args.items()}
    U, I = outputs(1, single)
    kernel(one, film_field=U, intensity=I)
    assert_bits(U, results[0][0][7:8])
    assert_bits(I, results[0][1][7:8])


def test_padding_sites_are_skipped(kernel):
    """Entries of weight 0 (padding layers, one species of a two-species site) contribute nothing."""
    args = paper_like_inputs(N, seed=7, general_phase=True)
    args["weight"][:, 60:] = 0.0
    args["weight"][::2, :12] = 0.0
    args["weight"][1::2, 40] = 0.0
    U0, I0 = contract(args)
    U, I = outputs(N, False)
    kernel(args, film_field=U, intensity=I)
    assert rel_err(U, U0) <= 1e-12
    assert rel_err(I, I0) <= 1e-12


def test_all_weights_zero_gives_substrate(kernel):
    args = paper_like_inputs(4, seed=8)
    args["weight"][:] = 0.0
    U, I = outputs(4, False)
    kernel(args, film_field=U, intensity=I)
    assert not U.any()
    np.testing.assert_allclose(I, np.broadcast_to(np.abs(args["substrate"]) ** 2, I.shape), rtol=1e-15)


def test_no_entries_no_scatterers(kernel):
    """E = P = NSP = 0: U = 0 and I = |S|² rough."""
    args = paper_like_inputs(3, seed=17, with_rough=True)
    empty = np.zeros(0, np.int64)
    args.update(weight=np.zeros((3, 0)), entry_site=empty, entry_pair=empty, pair_column=empty,
                pair_species=empty, ff_re=np.zeros((0, R, NL)), ff_im=np.zeros(0))
    _, I0 = contract(args)
    U, I = outputs(3, False)
    kernel(args, film_field=U, intensity=I)
    assert not U.any()
    np.testing.assert_allclose(I, I0, rtol=1e-14)


@pytest.mark.parametrize("nl, rods", [(1, R), (5, 1), (7, R), (33, R), (45, 3)])
def test_short_and_odd_grids(kernel, nl, rods):
    """NL not a multiple of the block / chunk sizes, one point, few rods."""
    args = paper_like_inputs(5, seed=9, with_rough=True, complex_ff=True)
    args["qz"] = args["qz"][:nl].copy()
    for key in ("ff_re", "ff_im"):
        args[key] = np.ascontiguousarray(args[key][:, :rods, :nl])
    args["substrate"] = np.ascontiguousarray(args["substrate"][:rods, :nl])
    args["rod_pattern"] = args["rod_pattern"][:rods].copy()
    args["rough"] = np.ascontiguousarray(args["rough"][:, :nl])
    if nl == 1:
        args["uniform_step"] = 0.0
    U0, I0 = contract(args)
    U, I = outputs(5, False, (rods, nl))
    kernel(args, film_field=U, intensity=I)
    assert rel_err(U, U0) <= 1e-12
    assert rel_err(I, I0) <= 1e-12


@pytest.mark.parametrize("uniform", [False, True], ids=["list", "uniform"])
def test_large_phase_arguments_fall_back_to_libm(kernel, uniform):
    """|qz z| beyond the fast sincos range takes the libm path, per structure."""
    args = paper_like_inputs(6, seed=13, uniform=uniform, general_phase=True)
    args["z"][::2] += 6.0e4  # every other structure out of the fast range
    U0, I0 = contract(args)
    U, I = outputs(6, False)
    kernel(args, film_field=U, intensity=I)
    # the contract's own products qz·z round at ~1e-11 here; recurrences lose ~k ulp(step z)
    assert rel_err(U, U0) <= 1e-9
    assert rel_err(I, I0) <= 1e-9


def test_gapped_grid_segments():
    """The gapped case is cut into more segments than blocks (runs, gaps and single points), the uniform one
    into one segment per block, and a grid without runs of the given spacing into single points."""
    gapped = paper_like_inputs(1, gapped=True)
    first, length = l_segments(gapped["qz"], gapped["uniform_step"])
    assert length.sum() == NL and np.all(np.diff(first) == length[:-1]) and length.max() == 32
    assert first.size > 8 + 6 and {50, 51, 52, 170, 171} <= set(first.tolist())  # 8 blocks, 6 gaps
    assert np.count_nonzero(length == 1) >= 2
    paper = paper_like_inputs(1)
    assert l_segments(paper["qz"], paper["uniform_step"])[1].tolist() == [32] * 7 + [16]
    assert l_segments(paper["qz"], 0.0)[1].tolist() == [1] * NL
    assert l_segments(paper["qz"], paper["uniform_step"] * 1.01)[1].max() <= 2


@pytest.mark.parametrize("factor", [0.0, 0.5, 1.0 + 1e-9, 3.0])
def test_any_step_gives_the_same_rods(kernel, factor):
    """uniform_step only says where to look for runs: a step that matches no spacing of qz (or none) gives the
    same rods to round-off, through single-point segments."""
    args = paper_like_inputs(5, seed=15, gapped=True, general_phase=True, with_rough=True)
    U0, I0 = contract(args)
    args["uniform_step"] *= factor
    U, I = outputs(5, False)
    kernel(args, film_field=U, intensity=I)
    assert rel_err(U, U0) <= 1e-12
    assert rel_err(I, I0) <= 1e-12


def test_n_zero(kernel):
    U, I = outputs(0, True)
    kernel(paper_like_inputs(0), film_field=U, intensity=I)
    kernel(paper_like_inputs(0), film_field=np.empty((0, R, NL), complex), threads=2)


def test_accepts_other_input_dtypes_and_memmap(kernel, tmp_path):
    args = paper_like_inputs(4, seed=11)
    _, I0 = contract(args)
    args["entry_site"] = args["entry_site"].astype(np.int32)
    args["z"] = np.asfortranarray(args["z"])
    args["weight"] = args["weight"].tolist()
    I = np.memmap(tmp_path / "i.dat", dtype=np.float64, mode="w+", shape=(4, R, NL))
    kernel(args, intensity=I)
    assert rel_err(np.asarray(I), I0) <= 1e-12


# --- bad inputs: raised by the plan or by the call, before anything is written --------------------------

def bad(kernel, match, n=3, **changes):
    args = paper_like_inputs(n, seed=12)
    default = dict(film_field=np.full((n, R, NL), np.nan, np.complex128), intensity=np.full((n, R, NL), np.nan))
    out = dict(default)
    for key, value in changes.items():
        if key in out or key in ("threads", "bragg", "moments"):
            out[key] = value
        else:
            args[key] = value(args[key]) if callable(value) else value
    with pytest.raises(ValueError, match=match):
        kernel(args, **out)
    for key, value in default.items():
        assert out[key] is not value or np.isnan(value).all(), key  # outputs untouched by a failed call


def set_at(k, v):
    def change(a):
        a = a.copy()
        a[k] = v
        return a
    return change


def test_bad_shapes(kernel):
    bad(kernel, r"weight must have shape \(n, E\) = \(3, 78\), got \(3, 77\)", weight=lambda w: w[:, :77])
    bad(kernel, r"z must have shape \(n, S\) \(2-D\), got \(195,\)", z=lambda z: z.ravel())
    bad(kernel, r"z must have shape \(n, S\) = \(3, 65\), got \(3, 64\)", z=lambda z: z[:, :64])
    bad(kernel, r"entry_pair must have shape \(E,\) = \(78,\), got \(77,\)", entry_pair=lambda a: a[:77])
    bad(kernel, r"pair_species must have shape \(P,\) = \(7,\), got \(6,\)", pair_species=lambda a: a[:6])
    bad(kernel, r"ff_re must have shape \(NSP, R, NL\) = \(6, 16, 240\), got \(6, 16, 239\)",
        ff_re=lambda f: f[..., :239])
    bad(kernel, r"ff_im must have shape", ff_im=np.zeros((6, 16, 239)))
    bad(kernel, r"substrate must have shape \(R, NL\) = \(16, 240\)", substrate=lambda s: s[:15])
    bad(kernel, r"rough must have shape \(n, NL\) or size 0 = \(3, 240\), got \(2, 240\)", rough=np.ones((2, NL)))


def test_bad_indices(kernel):
    bad(kernel, r"entry_site values must lie in \[0, S\) = \[0, 65\), got 65", entry_site=set_at(-1, 65))
    bad(kernel, r"entry_site values must lie in \[0, S\)", entry_site=set_at(0, -1))
    bad(kernel, r"entry_site must be non-decreasing", entry_site=set_at(5, 0))
    bad(kernel, r"entry_pair values must lie in \[0, P\) = \[0, 7\), got 7", entry_pair=set_at(3, 7))
    bad(kernel, r"pair_column values must lie in \[0, C\) = \[0, 4\)", pair_column=set_at(0, 4))
    bad(kernel, r"pair_species values must lie in \[0, NSP\) = \[0, 6\)", pair_species=set_at(0, 6))
    bad(kernel, r"rod_pattern values must lie in \[0, NP\) = \[0, 4\), got -3", rod_pattern=set_at(2, -3))


def test_bad_scalars_and_values(kernel):
    bad(kernel, r"uniform_step must be a finite number >= 0", uniform_step=-0.1)
    bad(kernel, r"uniform_step must be a finite number >= 0", uniform_step=float("nan"))
    bad(kernel, r"threads must be an integer >= 0", threads=-1)
    bad(kernel, r"z must be finite", z=lambda z: np.where(z > 10, np.inf, z))
    bad(kernel, r"qz must be finite", qz=lambda q: np.where(q > 1, np.nan, q))


def test_bad_outputs(kernel):
    n = 3
    bad(kernel, r"film_field and intensity must both be single .* or both double", n=n,
        film_field=np.empty((n, R, NL), np.complex64), intensity=np.empty((n, R, NL)))
    bad(kernel, r"film_field and intensity must both be single", n=n,
        film_field=np.empty((n, R, NL), np.complex128), intensity=np.empty((n, R, NL), np.float32))
    bad(kernel, r"film_field must be C-contiguous", n=n, film_field=np.empty((n, R, 2 * NL), np.complex128)[:, :, ::2])
    bad(kernel, r"intensity must be C-contiguous", n=n, intensity=np.empty((NL, R, n)).T)
    bad(kernel, r"film_field must have dtype complex64 or complex128, got float64", n=n,
        film_field=np.empty((n, R, NL)))
    bad(kernel, r"intensity must have dtype float32 or float64, got complex128", n=n,
        intensity=np.empty((n, R, NL), complex))
    bad(kernel, r"intensity must have shape \(n, R, NL\) = \(3, 16, 240\), got \(3, 16, 241\)", n=n,
        intensity=np.empty((n, R, NL + 1)))
    read_only = np.empty((n, R, NL))
    read_only.flags.writeable = False
    bad(kernel, r"intensity must be writeable", n=n, intensity=read_only)
    bad(kernel, r"film_field must be a numpy array or None, got list", n=n, film_field=[1, 2])
    buf = np.empty((n, R, NL), np.complex128)
    overlapping = buf.view(np.float64).reshape(-1)[: n * R * NL].reshape(n, R, NL)
    bad(kernel, r"must not overlap", n=n, film_field=buf, intensity=overlapping)


# --- the compiled plan: ISA variants (run-time dispatch) ---------------------------------------------------

@needs_core
def test_helpers_and_isa_names():
    assert core.max_threads() >= 1
    assert isinstance(core.have_openmp(), bool)
    variants = core.isa_variants()
    assert variants[0] == "baseline"
    assert set(variants) <= {"baseline", "avx2", "avx512"}
    expected = os.environ.get("MAMBA_CTR_ISA") or variants[-1]  # else the best one the CPU supports
    assert core.isa() == expected
    assert core.Plan(*tables(paper_like_inputs(1))).isa == expected
    assert core.Plan(*tables(paper_like_inputs(1))).shape == (S, 78, R, NL)


@needs_core
@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
@pytest.mark.parametrize("case", [dict(), dict(uniform=False),
                                  dict(uniform=False, complex_ff=True, general_phase=True, with_rough=True),
                                  dict(gapped=True, complex_ff=True)],
                         ids=["paper", "list", "general", "gapped"])
def test_bits_do_not_depend_on_isa(case, single):
    """Every variant gives the same bits (no FMA contraction, vectorisation along L only, fixed order of sums)."""
    n = 13
    args = paper_like_inputs(n, seed=14, **case)
    args["weight"][::3, 20:40] = 0.0  # some padding
    if not case.get("uniform", True):
        args["z"][0, :3] *= 1e4  # a few arguments beyond the fast sincos range
    results = {}
    for isa in core.isa_variants():
        U, I = outputs(n, single)
        moments = np.empty((1, 6, R, NL))
        core.Plan(*tables(args), isa=isa).run(args["z"], args["weight"], args["rough"], U, I, threads=2,
                                              bragg=np.arange(NL) % 40 == 39, moments=moments)
        results[isa] = (U, I, moments)
    U0, I0, M0 = results["baseline"]
    for isa, (U, I, M) in results.items():
        assert_bits(U, U0, isa)
        assert_bits(I, I0, isa)
        assert_bits(M, M0, isa)  # the moments too (the same log and Welford operations in every variant)


@needs_core
def test_bad_isa_names():
    with pytest.raises(ValueError, match=r"isa must be one of baseline, avx2, avx512, got 'sse9'"):
        core.Plan(*tables(paper_like_inputs(1)), isa="sse9")
    for name in {"avx2", "avx512"} - set(core.isa_variants()):
        with pytest.raises(ValueError, match=name):
            core.Plan(*tables(paper_like_inputs(1)), isa=name)


def _run_with_env(value):
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import numpy as np, mamba_ctr._core as c;"
            "from kernel_contract import paper_like_inputs as p; a = p(2);"
            "t = {k: v for k, v in a.items() if k not in ('z', 'weight', 'rough')};"
            "\ntry:\n print('ISA', c.isa())\nexcept ValueError as e:\n print('ERR', e)"
            "\ntry:\n c.Plan(**t, n_sites=65).run(a['z'], a['weight'], intensity=np.empty((2,16,240))); print('RUN ok')"
            "\nexcept ValueError as e:\n print('RUNERR', e)")
    env = dict(os.environ, MAMBA_CTR_ISA=value)
    return subprocess.run([sys.executable, "-c", code, os.path.dirname(__file__)], env=env, capture_output=True,
                          text=True, check=True).stdout


@needs_core
def test_env_forces_a_variant():
    for name in core.isa_variants():
        out = _run_with_env(name)
        assert f"ISA {name}" in out and "RUN ok" in out
    out = _run_with_env("avx1024")
    assert "ERR MAMBA_CTR_ISA must be one of baseline, avx2, avx512, got 'avx1024'" in out
    assert "RUNERR MAMBA_CTR_ISA must be one of" in out
    for name in {"avx2", "avx512"} - set(core.isa_variants()):
        assert "ERR MAMBA_CTR_ISA" in _run_with_env(name)


# --- per-point moments of the dataset statistics, accumulated in the kernel's pass ----------------------

def _two_pass(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = values.mean(axis=0)
    return mean, ((values - mean) ** 2).sum(axis=0)


@pytest.mark.parametrize("single", [False, True], ids=["double", "single"])
def test_moments_match_two_pass(kernel, single):
    """moments[g] = (means, M2) of X = ln I (Bragg points 0, in the outputs' precision), Re U, Im U per group of
    MOMENT_GROUP structures, as a two-pass float64 computation on the stored outputs gives them."""
    n = MOMENT_GROUP + 37  # a full group and a partial one
    args = paper_like_inputs(n, seed=21, with_rough=True)
    bragg = np.zeros(NL, bool)
    bragg[39::40] = True
    U, I = outputs(n, single)
    moments = np.full((2, 6, R, NL), np.nan)
    kernel(args, film_field=U, intensity=I, bragg=bragg, moments=moments, threads=2)
    U2, I2 = outputs(n, single)
    kernel(args, film_field=U2, intensity=I2)
    assert_bits(U, U2)  # the moments do not change the rods
    assert_bits(I, I2)
    X = np.log(I.astype(np.float64)).astype(I.dtype).astype(np.float64)
    X[..., bragg] = 0.0
    for g, rows in enumerate((slice(0, MOMENT_GROUP), slice(MOMENT_GROUP, n))):
        for c, values in enumerate((X[rows], U[rows].real.astype(np.float64), U[rows].imag.astype(np.float64))):
            mean, m2 = _two_pass(values)
            np.testing.assert_allclose(moments[g, c], mean, rtol=1e-12, atol=1e-12 * np.abs(mean).max())
            np.testing.assert_allclose(moments[g, 3 + c], m2, rtol=1e-10, atol=1e-12 * m2.max())


def test_moments_bits_do_not_depend_on_threads(kernel):
    n = 3 * MOMENT_GROUP // 2
    args = paper_like_inputs(n, seed=22, gapped=True, general_phase=True)
    results = []
    for threads in (1, 2, 3):
        U, I = outputs(n, True)
        moments = np.empty((2, 6, R, NL))
        kernel(args, film_field=U, intensity=I, bragg=np.arange(NL) % 40 == 0, moments=moments, threads=threads)
        results.append(moments)
    for moments in results[1:]:
        assert_bits(moments, results[0])


def test_bad_moments(kernel):
    n = 3
    mask = np.zeros(NL, bool)
    good = np.empty((1, 6, R, NL))
    bad(kernel, r"moments need both film_field and intensity", n=n, intensity=None, moments=good, bragg=mask)
    bad(kernel, r"moments need bragg", n=n, moments=good)
    bad(kernel, r"bragg must have shape \(NL,\) = \(240,\), got \(239,\)", n=n, moments=good, bragg=mask[1:])
    bad(kernel, r"moments must have shape \(ceil\(n / MOMENT_GROUP\), 6, R, NL\) = \(1, 6, 16, 240\)", n=n,
        moments=np.empty((2, 6, R, NL)), bragg=mask)
    bad(kernel, r"moments must have dtype float64, got float32", n=n, moments=good.astype(np.float32), bragg=mask)


@pytest.mark.parametrize("backend", ["compiled", "numba"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_stats_from_kernel_moments_match_of_arrays(backend, dtype):
    """/stats of a generated block from the kernel's moments equal `Stats.of_arrays` of the stored rods to
    round-off (float32: X = ln I differs by at most an ulp of float32 between numpy's log and the kernel's)."""
    from mamba_ctr import _backend, presets, simulate
    from mamba_ctr.data.stats import Stats

    if _backend.available()[backend] is not None:
        pytest.skip(f"{backend} backend unavailable")
    preset = presets.get("paper-12L")
    n = MOMENT_GROUP * 2 + 100
    rods = simulate(preset.sample(n, seed=5, start=1000), preset.grid, backend=backend, dtype=dtype,
                    point_moments=True)
    assert rods.point_moments is not None
    got = Stats.of_point_moments(n, *rods.point_moments, start=1000)
    ref = Stats.of_arrays(rods.intensity, rods.film_field, preset.grid.bragg, start=1000)
    assert (got.start, got.stop, got.x.count, got.u_re.count) == (ref.start, ref.stop, ref.x.count, ref.u_re.count)
    rtol = 1e-6 if dtype == "float32" else 1e-10
    for a, b in ((got.x, ref.x), (got.u_re, ref.u_re), (got.u_im, ref.u_im)):
        np.testing.assert_allclose(a.mean, b.mean, rtol=rtol, atol=rtol * np.abs(b.mean).max())
        np.testing.assert_allclose(a.std, b.std, rtol=rtol, atol=rtol * np.abs(b.std).max())
