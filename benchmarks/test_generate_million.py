"""10^6 paper-12L structures generated into one dataset: peak memory flat in n, the file readable (issue 18, item 5).

    MAMBA_CTR_BENCH_MILLION=1 MAMBA_CTR_BENCH_DIR=/big/disk python -m pytest benchmarks/test_generate_million.py \
        -p no:cacheprovider -s

Opt-in (skipped unless MAMBA_CTR_BENCH_MILLION=1): the dataset takes about 46 GB (float32 intensity and complex64
film field, 16 × 240 points a structure) and several minutes. `mamba-ctr generate` runs in a fresh process for
n = 10^5 and for n = 10^6; the peak RSS of each (`os.wait4`) must agree within 25 % + 64 MiB (memory flat in n).
The 10^6 file is then opened with the PyTorch dataset (`RodsH5Dataset`, its own /stats as normalisation) and
structures at the start, the middle and the end are read and checked to be finite, and the
files are deleted. Figures go to benchmarks/results/generate_million.json.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import pytest

from test_generate import _clean, dataset_bytes, generate_in_subprocess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "generate_million.json"

pytestmark = [
    pytest.mark.skipif(os.environ.get("MAMBA_CTR_BENCH_MILLION") != "1",
                       reason="writes ~46 GB: set MAMBA_CTR_BENCH_MILLION=1 to run"),
    pytest.mark.skipif(not hasattr(os, "wait4"), reason="needs os.wait4 (POSIX)"),
]


def _generate(out: Path, n: int) -> dict:
    """Seconds, structures/s, peak RSS and bytes of `mamba-ctr generate` of n structures in a fresh process."""
    seconds, peak = generate_in_subprocess(out, n)
    size = dataset_bytes(out)
    return {"n": n, "seconds": round(seconds, 1), "structures_per_s": round(n / seconds),
            "peak_rss_MiB": round(peak / 2**20), "bytes": size}


def _read_back(out: Path, n: int) -> dict:
    """Open the file with the PyTorch dataset and read structures at the start, middle and end."""
    torch_data = pytest.importorskip("mamba_ctr.data.torch_data")
    start = time.perf_counter()
    dataset = torch_data.RodsH5Dataset(out)
    opened = time.perf_counter() - start
    assert len(dataset) == n
    for index in (0, n // 2, n - 1):
        for tensor in dataset[index]:
            assert np.isfinite(np.asarray(tensor)).all(), f"structure {index} is not finite"
    return {"dataset_length": len(dataset), "open_seconds_incl_stats": round(opened, 2)}


def test_generate_a_million(tmp_path):
    base = Path(os.environ.get("MAMBA_CTR_BENCH_DIR", tmp_path))
    base.mkdir(parents=True, exist_ok=True)
    runs = []
    for n in (100_000, 1_000_000):
        out = base / f"million-bench-{n}.h5"
        _clean(out)
        try:
            runs.append(_generate(out, n))
            if n == 1_000_000:
                runs[-1].update(_read_back(out, n))
        finally:
            _clean(out)
    small, large = runs
    record = {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(), "runs": runs,
              "peak_rss_ratio_1e6_to_1e5": round(large["peak_rss_MiB"] / small["peak_rss_MiB"], 3)}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(record, indent=1) + "\n")
    print(json.dumps(record, indent=1))
    assert large["peak_rss_MiB"] < 1.25 * small["peak_rss_MiB"] + 64, "peak memory grows with n"
