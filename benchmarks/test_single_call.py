"""One-structure kernel calls, as refinement makes them (issue 14 item 2, issue 17 item 4): µs per call.

    MAMBA_CTR_BENCH_OUT=benchmarks/results/single_call.json \\
        pytest benchmarks/test_single_call.py -p no:cacheprovider --benchmark-columns=min,median

paper-12L, compiled backend, one thread, float64 out (as `SimulatedLeastSquares` asks):
* `simulate` of one structure, U + I and I only (the public API: lowering + cached plan + kernel);
* `Plan.run` of one structure (the arrays already lowered: the binding + kernel alone);
* per structure inside a batch of 256 (`Plan.run`: the kernel's own cost, no per-call overhead).
The per-call overhead is a call's time minus the per-structure time in the batch, all measured in one run.

Measured 2026-12-01 on the 2-core AMD EPYC VM (compiled avx512) while other jobs loaded it (load 4-8): the
lowest of five runs' medians, "before" and "after" run alternately:

    | µs per structure                 | before (f101078) | after (plan) |
    | simulate, 1 structure, U + I     | 112              | 48           |
    | simulate, 1 structure, I only    | 109              | 47           |
    | Plan.run, 1 structure, U + I     | -                | 22           |
    | in a batch of 256, U + I         | 24-67            | 45-73        |

"before" is this file run on commit f101078 (the flat 17-argument `_core.film_fields`, whose C++ side rebuilt
the structure-independent tables at every call; only the `simulate` rows and the batch exist there). The
per-call overhead of a one-structure `simulate` fell from ~90 µs to ~26 µs (lowering the structure, the
argument checks and the `Rods`); `Plan.run` of one structure costs about what one structure costs inside a
batch. The batch row varies most between runs (it writes 24 MB of outputs on a shared machine).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr import _backend

PRESET = mamba_ctr.presets.get("paper-12L")
_simulate_module = sys.modules["mamba_ctr.simulate"]
HAS_PLAN = hasattr(_simulate_module, "cached_plan")  # False on the commits before the plan (for "before")


@pytest.fixture(scope="module", autouse=True)
def _compiled():
    if _backend.available()["compiled"] is not None:
        pytest.skip("compiled backend unavailable")


@pytest.fixture(scope="module")
def structures():
    return PRESET.sample(256, seed=0)


def _per_call(benchmark, record_extra, key: str, run, n: int = 1) -> None:
    run()  # warm-up: tables and plan built, caches filled
    benchmark.pedantic(run, rounds=200 if n == 1 else 20, iterations=1, warmup_rounds=5)
    microseconds = benchmark.stats.stats.median / n * 1e6
    benchmark.extra_info["us_per_structure"] = microseconds
    record_extra(key, f"{microseconds:.1f} µs per structure")


@pytest.mark.parametrize("film_field", [True, False], ids=["U+I", "I"])
def test_simulate_one_structure(benchmark, record_extra, structures, film_field):
    one = structures[:1]
    _per_call(benchmark, record_extra, f"simulate, 1 structure, {'U + I' if film_field else 'I only'}",
              lambda: mamba_ctr.simulate(one, PRESET.grid, backend="compiled", dtype="float64",
                                         film_field=film_field, threads=1))


def _lowered(structures):
    from mamba_ctr.physics.lowering import batch_arrays

    tables, plan = _simulate_module.cached_plan(PRESET.model, PRESET.grid, "compiled")
    return plan, batch_arrays(structures, tables)


@pytest.mark.skipif(not HAS_PLAN, reason="no kernel plan on this commit")
def test_plan_run_one_structure(benchmark, record_extra, structures):
    plan, arrays = _lowered(structures[:1])
    U, I = np.empty((1, *PRESET.grid.shape), np.complex128), np.empty((1, *PRESET.grid.shape))
    _per_call(benchmark, record_extra, "Plan.run, 1 structure, U + I",
              lambda: plan.run(**arrays, film_field=U, intensity=I, threads=1))


def test_batch_per_structure(benchmark, record_extra, structures):
    n = len(structures)
    U, I = np.empty((n, *PRESET.grid.shape), np.complex128), np.empty((n, *PRESET.grid.shape))
    _per_call(benchmark, record_extra, f"in a batch of {n}, U + I",
              lambda: mamba_ctr.simulate(structures, PRESET.grid, backend="compiled", dtype="float64", threads=1,
                                         out_intensity=I, out_film_field=U), n=n)
