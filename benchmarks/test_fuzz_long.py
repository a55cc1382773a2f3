"""The long fuzzing profile (issue 18 item 3): tests/test_fuzz.py with MAMBA_CTR_FUZZ_EXAMPLES cases per property
(default 300; the fast profile in the test suite uses 12), printing the number of cases tried per reader.

    PYTHONPATH=python python -m pytest benchmarks/test_fuzz_long.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MAMBA_CTR_FUZZ_EXAMPLES", "300")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_fuzz  # after the environment variable: hypothesis settings are read at import
from test_fuzz import *  # noqa: F403  (collected here as this module's tests)


@pytest.fixture(scope="module", autouse=True)
def report_counts():
    yield
    counts = dict(sorted(test_fuzz.CASES.items()))
    print(f"\nfuzz cases tried ({test_fuzz.FUZZ_EXAMPLES} per property): {counts}; total {sum(counts.values())}")
