"""Calibration of the forward-consistency thresholds (mamba_ctr.reconstruct.consistency): the shipped paper-12L
models on 500 noise-free paper-12L test structures (seed 20261125, never used for training). Prints the R1 and
scale percentiles and checks that each model's threshold (R1_THRESHOLD for the standardised model, its own
`r1_threshold` for the scale-free one) still flags ≤ 1 % of them.

    PYTHONPATH=python python -m pytest benchmarks/test_consistency_calibration.py -s -p no:cacheprovider
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

N = 500


@pytest.mark.parametrize("model", ["paper-12L-standardised", "paper-12L"])
def test_consistency_calibration(model: str) -> None:
    from mamba_ctr import models
    from mamba_ctr.nn.predict import check_prediction, predict_field
    from mamba_ctr.physics import presets
    from mamba_ctr.reconstruct.consistency import R1_THRESHOLD, SCALE_RANGE, forward_consistency
    from mamba_ctr.simulate import simulate
    from mamba_ctr.workflows._common import TEST_SEED

    preset = presets.get("paper-12L")
    rods = simulate(preset.sample(N, seed=TEST_SEED), preset.grid)
    checkpoint = models.load(model)
    field = predict_field(checkpoint, rods.intensity)
    check = check_prediction(checkpoint, rods.intensity, field)
    r1_q = np.percentile(check.r1, [50, 90, 99, 100])
    k_q = np.percentile(check.scale, [0.5, 50, 99.5])
    print(f"\nR1 median {r1_q[0]:.4f}, 90th {r1_q[1]:.4f}, 99th {r1_q[2]:.4f}, max {r1_q[3]:.4f}; "
          f"scale 0.5/50/99.5th percentiles {k_q[0]:.4f} {k_q[1]:.4f} {k_q[2]:.4f}; "
          f"flagged {int(check.flagged.sum())} of {N}")
    assert r1_q[2] <= (R1_THRESHOLD if model.endswith("standardised") else checkpoint.metadata["r1_threshold"])
    assert SCALE_RANGE[0] < k_q[0] and k_q[2] < SCALE_RANGE[1]
    assert check.flagged.mean() <= 0.01
    scaled = forward_consistency(field, rods.substrate_field, rods.intensity * 1e-6, preset.grid.bragg)
    assert scaled.flagged.all()
