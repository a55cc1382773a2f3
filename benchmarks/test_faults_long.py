"""The long fault-injection profile (issue 18 item 4): tests/test_faults.py with kill -9 at 20 random points of
`generate` and 20 of `train` (MAMBA_CTR_KILL_POINTS, MAMBA_CTR_TRAIN_KILL_POINTS), printing what each point did.

    PYTHONPATH=python python -m pytest benchmarks/test_faults_long.py -q -s -p no:cacheprovider
"""

from __future__ import annotations

import collections
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MAMBA_CTR_KILL_POINTS", "20")
os.environ.setdefault("MAMBA_CTR_TRAIN_KILL_POINTS", "20")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_faults  # after the environment variables: read at import
from test_faults import *  # noqa: F403  (collected here as this module's tests)


@pytest.fixture(scope="module", autouse=True)
def report_outcomes():
    yield
    for command, outcomes in test_faults.OUTCOMES.items():
        print(f"\nkill -9 of {command}: {len(outcomes)} points: {dict(collections.Counter(outcomes))}")
