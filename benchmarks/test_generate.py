"""End-to-end dataset generation into HDF5: structures/s and peak memory (issue 4, item 9).

    pytest benchmarks/test_generate.py --benchmark-only

Targets: paper-12L, n = 10^5 in ≤ 15 s on 2 cores (≥ 7,000 structures/s written, everything included:
sampling, kernel, statistics, block files, fsync, the output file, cleanup), for --join vds (the default: the
block files are the data, FILE.h5 maps onto them) and --join copy (the blocks copied into one file), and a peak RSS
independent of n and under 2 GB. n is MAMBA_CTR_BENCH_N (default 10^5); the files are written under
MAMBA_CTR_BENCH_DIR (default: pytest's tmp_path) and removed afterwards (≈ 47 KB per structure).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mamba_ctr.data.generate import GenerateConfig, generate

N = int(os.environ.get("MAMBA_CTR_BENCH_N", 100_000))
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path):
    base = Path(os.environ.get("MAMBA_CTR_BENCH_DIR", tmp_path))
    path = base / f"mamba-ctr-bench-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _clean(out: Path) -> None:
    out.unlink(missing_ok=True)
    shutil.rmtree(Path(str(out) + ".parts"), ignore_errors=True)
    shutil.rmtree(Path(str(out) + ".data"), ignore_errors=True)


@pytest.mark.parametrize("join", ["vds", "copy"])
def test_generate_throughput(benchmark, workdir, record_rate, join):
    out = workdir / "bench.h5"
    generate(GenerateConfig(out=workdir / "warm.h5", n=64, quiet=True))  # JIT caches, first-call costs
    _clean(workdir / "warm.h5")

    def run():
        generate(GenerateConfig(out=out, n=N, seed=0, quiet=True, join=join))

    benchmark.pedantic(run, setup=lambda: _clean(out), rounds=1, iterations=1)
    rate = N / benchmark.stats.stats.min
    benchmark.extra_info["structures_per_s"] = rate
    data = Path(str(out) + ".data")
    benchmark.extra_info["bytes"] = out.stat().st_size + sum(p.stat().st_size for p in data.glob("*"))
    record_rate(f"generate->HDF5 --join {join} n={N}", rate)
    _clean(out)


def _peak_rss(out: Path, n: int) -> tuple[float, float]:
    """(seconds, peak RSS in bytes) of `mamba-ctr generate` in a fresh process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "python"), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "mamba_ctr.cli", "generate", "--out", str(out), "--n", str(n),
                                "--quiet"], env=env)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0
    _clean(out)
    return seconds, usage.ru_maxrss * 1024  # Linux: KiB


@pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 (POSIX)")
def test_generate_peak_memory(workdir, record_extra):
    small, large = max(N // 5, 1), N
    results = {n: _peak_rss(workdir / f"rss-{n}.h5", n) for n in (small, large)}
    for n, (seconds, peak) in results.items():
        record_extra(f"generate n={n} (subprocess, with start-up)",
                     f"{seconds:.1f} s, {n / seconds:,.0f} structures/s, peak RSS {peak / 2**20:,.0f} MiB")
    assert results[large][1] < 2 << 30
    assert results[large][1] < 1.25 * results[small][1] + (64 << 20), "peak memory grows with n"
