"""Calibration of the forward-consistency thresholds (mamba_ctr.reconstruct.consistency): the shipped paper-12L
model on 500 noise-free paper-12L test structures (seed 20261125, never used for training). Prints the R1 and
scale percentiles and checks that the thresholds in the module still flag ≤ 1 % of them.

    PYTHONPATH=python python -m pytest benchmarks/test_consistency_calibration.py -s -p no:cacheprovider
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

N = 500


def test_consistency_calibration() -> None:
    from mamba_ctr import models
    from mamba_ctr.nn.predict import predict_field
    from mamba_ctr.physics import presets
    from mamba_ctr.reconstruct.consistency import R1_THRESHOLD, SCALE_RANGE, forward_consistency
    from mamba_ctr.simulate import simulate
    from mamba_ctr.workflows._common import TEST_SEED

    preset = presets.get("paper-12L")
    rods = simulate(preset.sample(N, seed=TEST_SEED), preset.grid)
    field = predict_field(models.load("paper-12L"), rods.intensity)
    check = forward_consistency(field, rods.substrate_field, rods.intensity, preset.grid.bragg)
    r1_q = np.percentile(check.r1, [50, 90, 99, 100])
    k_q = np.percentile(check.scale, [0.5, 50, 99.5])
    print(f"\nR1 median {r1_q[0]:.4f}, 90th {r1_q[1]:.4f}, 99th {r1_q[2]:.4f}, max {r1_q[3]:.4f}; "
          f"scale 0.5/50/99.5th percentiles {k_q[0]:.4f} {k_q[1]:.4f} {k_q[2]:.4f}; "
          f"flagged {int(check.flagged.sum())} of {N}")
    assert r1_q[2] <= R1_THRESHOLD
    assert SCALE_RANGE[0] < k_q[0] and k_q[2] < SCALE_RANGE[1]
    assert check.flagged.mean() <= 0.01
    scaled = forward_consistency(field, rods.substrate_field, rods.intensity * 1e-6, preset.grid.bragg)
    assert scaled.flagged.all()
