"""Simulation throughput on paper-12L: every backend at 1 and 2 threads, 10^4 structures.

Targets (issue 3): compiled ≥ 50,000 structures/s per core; numba within 2× of compiled;
compiled ≥ 20× the numpy reference; 10^6 rods (62,500 structures) in < 2 s on 2 cores with
< 1 GB beyond the output arrays. Ratios are taken within one run (machines are noisy).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr import _backend

PRESET = mamba_ctr.presets.get("paper-12L")
N = 10_000


@pytest.fixture(scope="module")
def structures():
    return PRESET.sample(N, seed=0)


def _needs(backend: str) -> None:
    if _backend.available()[backend] is not None:
        pytest.skip(f"{backend} backend unavailable")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("backend", ["compiled", "numba"])
def test_kernel_throughput(benchmark, structures, record_rate, backend, threads):
    _needs(backend)
    intensity = np.empty((N, *PRESET.grid.shape), np.float32)
    field = np.empty((N, *PRESET.grid.shape), np.complex64)
    mamba_ctr.simulate(structures[:64], PRESET.grid, backend=backend, threads=threads)  # warm-up / JIT

    def run():
        mamba_ctr.simulate(structures, PRESET.grid, backend=backend, threads=threads,
                           out_intensity=intensity, out_film_field=field)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    rate = N / benchmark.stats.stats.min
    benchmark.extra_info["structures_per_s"] = rate
    record_rate(f"{backend}/{threads}", rate)


def test_numpy_reference_throughput(benchmark, structures, record_rate):
    def run():
        mamba_ctr.simulate(structures, PRESET.grid, backend="numpy")

    benchmark.pedantic(run, rounds=1, iterations=1)
    rate = N / benchmark.stats.stats.min
    benchmark.extra_info["structures_per_s"] = rate
    record_rate("numpy/1", rate)


MILLION_RODS = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np, mamba_ctr
    intensity_only = sys.argv[1] == "intensity"
    preset = mamba_ctr.presets.get("paper-12L")
    n = 62_500  # x 16 rods = 10^6 rods
    s = preset.sample(n, seed=0)
    mamba_ctr.simulate(s[:64], preset.grid, backend="compiled")
    I = np.empty((n, 16, 240), np.float32); I.fill(0)
    U = None if intensity_only else np.empty((n, 16, 240), np.complex64)
    if U is not None: U.fill(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    mamba_ctr.simulate(s, preset.grid, backend="compiled", film_field=not intensity_only,
                       out_intensity=I, out_film_field=U)
    seconds = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "extra_bytes": peak - before,
                      "output_bytes": I.nbytes + (0 if U is None else U.nbytes)}))
""")


@pytest.mark.parametrize("what", ["field+intensity", "intensity"])
def test_million_rods(record_extra, what):
    """10^6 rods on 2 threads: wall time and peak memory beyond the (preallocated, touched) outputs."""
    _needs("compiled")
    result = subprocess.run([sys.executable, "-c", MILLION_RODS, what], capture_output=True, text=True,
                            timeout=600, check=True)
    figures = json.loads(result.stdout)
    record_extra(f"10^6 rods ({what})", f"{figures['seconds']:.2f} s, "
                 f"{figures['extra_bytes'] / 2**20:.0f} MiB beyond {figures['output_bytes'] / 2**30:.2f} GiB "
                 "of outputs")
    assert figures["extra_bytes"] < 1 << 30
