"""Scale test (issue 16 item 3): the predicted film field for I × 10^k, k = −8 … 8, against the one for I.

    PYTHONPATH=python python results/robust/invariance.py MODEL TEST.h5 N OUT.json

Prints and writes, per k, the relative change max_i ‖U(10^k I_i) − U(I_i)‖ / ‖U(I_i)‖ over N test structures
(‖·‖ over all rods and L points), for MODEL (a scale-free one) and for the standardised paper-12L model
(`paper-12L-standardised`, shipped as `paper-12L` until 2026-12-02; JSON files written before then call it
"shipped paper-12L").
"""

from __future__ import annotations

import json
import sys

import numpy as np

from mamba_ctr import models
from mamba_ctr.nn.inputs import InputTransform
from mamba_ctr.nn.predict import predict_field
from mamba_ctr.workflows.evaluate import read_test_set


def changes(model: str, intensity: np.ndarray) -> dict[int, float]:
    checkpoint = models.load(model)
    transform = InputTransform.of_checkpoint(checkpoint)
    reference = predict_field(checkpoint, intensity)
    norm = np.linalg.norm(reference, axis=(1, 2))
    out = {}
    for k in range(-8, 9):
        scaled = transform.admissible(intensity * 10.0 ** k)
        with np.errstate(over="ignore"):
            U = predict_field(checkpoint, np.minimum(scaled, np.finfo(np.float64).max))
        out[k] = float((np.linalg.norm(U - reference, axis=(1, 2)) / norm).max())
    return out


def main() -> None:
    model, data, n, path = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    _, intensity, _, _ = read_test_set(data, 0, n)
    intensity = intensity.astype(np.float64)
    result = {"model": model, "data": data, "n": n, "robust": changes(model, intensity),
              "standardised paper-12L": changes("paper-12L-standardised", intensity)}
    for k in range(-8, 9):
        print(f"k={k:+d}  robust {result['robust'][k]:.2e}  standardised {result['standardised paper-12L'][k]:.2e}")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
