"""Benchmarks of simulation throughput (pytest-benchmark). Not part of the default test run.

    pytest benchmarks --benchmark-only

At the end a table of structures/s per backend and thread count, with the ratio to the
numpy reference measured in the same run, is printed and written to
benchmarks/results/last_run.json (path overridable with MAMBA_CTR_BENCH_OUT).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import pytest

RATES: dict[str, float] = {}
EXTRA: dict[str, object] = {}


@pytest.fixture(scope="session")
def record_rate():
    def record(key: str, structures_per_s: float) -> None:
        RATES[key] = structures_per_s

    return record


@pytest.fixture(scope="session")
def record_extra():
    def record(key: str, value) -> None:
        EXTRA[key] = value

    return record


def pytest_terminal_summary(terminalreporter):
    if not RATES and not EXTRA:
        return
    numpy_rate = RATES.get("numpy/1")
    lines = ["", "mamba-ctr throughput, paper-12L, intensity + film field out (float32):",
             f"{'backend/threads':<18}{'structures/s':>14}{'x numpy':>10}"]
    for key, rate in sorted(RATES.items()):
        ratio = f"{rate / numpy_rate:10.1f}" if numpy_rate else f"{'-':>10}"
        lines.append(f"{key:<18}{rate:14,.0f}{ratio}")
    for key, value in EXTRA.items():
        lines.append(f"{key}: {value}")
    terminalreporter.write_line("\n".join(lines))
    out = Path(os.environ.get("MAMBA_CTR_BENCH_OUT", Path(__file__).parent / "results" / "last_run.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        import mamba_ctr._core as core

        isa = core.isa()
    except (ImportError, ValueError):
        isa = None
    out.write_text(json.dumps({"machine": platform.platform(), "processor": platform.processor(), "kernel_isa": isa,
                               "cpus": os.cpu_count(), "structures_per_s": RATES, "extra": EXTRA}, indent=2))
