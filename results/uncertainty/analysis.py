"""Beyond the marginal coverage per group: coverage per label, coverage by spread tercile (is the spread
informative?), the uncalibrated ±std intervals, and the point estimate (mean of the draws vs the plain prediction).

    PYTHONPATH=python python results/uncertainty/analysis.py MODEL TEST.h5 results/uncertainty/counts1000 [N]

Uses the calibration in DIR/calibration.json and the same test draws as `calibrate --test` (seed + 1, test noise
seed 0); writes DIR/analysis.json and prints a Markdown summary.
"""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from mamba_ctr import models
from mamba_ctr.nn.predict import predict_field
from mamba_ctr.nn.uncertainty import predict_with_uncertainty
from mamba_ctr.reconstruct import extract_labels
from mamba_ctr.reconstruct.calibration import read_calibration
from mamba_ctr.workflows.calibrate import measured_intensity
from mamba_ctr.workflows.evaluate import read_test_set

torch.set_num_threads(1)
model, test, folder = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
n = int(sys.argv[4]) if len(sys.argv) > 4 else 500
calibration = read_calibration(folder / "calibration.json")
counts = float(calibration.meta["counts"])
checkpoint = models.load(model)
preset, intensity, true_field, true_labels = read_test_set(test, 0, n)
measured = measured_intensity(intensity, preset.grid, counts, 0, 0)
prediction = predict_with_uncertainty(checkpoint, measured, calibration=calibration,
                                      seed=int(calibration.meta["seed"]) + 1,
                                      extract=lambda U: extract_labels(U, preset.grid, preset))
plain = extract_labels(predict_field(checkpoint, measured), preset.grid, preset)

groups = calibration.meta.get("atom_groups") or calibration.label_groups  # report per atom type
result: dict = {"counts": counts, "n_test": n, "per_label": {}, "by_spread_tercile": {}, "raw_std_coverage": {},
                "rmse_mean_of_draws": {}, "rmse_plain_prediction": {}, "spearman_error_vs_std": {}}
for group in dict.fromkeys(groups.values()):
    names = [name for name, g in groups.items() if g == group]
    y = np.stack([true_labels[k] for k in names], 1)
    y_hat = np.stack([prediction.labels[k] for k in names], 1)
    s = np.stack([prediction.label_std[k] for k in names], 1)
    w = np.stack([prediction.label_half_width(k) for k in names], 1)
    y_plain = np.stack([plain[k] for k in names], 1)
    known = np.isfinite(y)
    error = np.abs(y - y_hat)
    inside = np.where(known, error <= w, np.nan)
    result["per_label"][group] = {k: float(np.nanmean(inside[:, j])) for j, k in enumerate(names)}
    cuts = np.nanquantile(s[known], [1 / 3, 2 / 3])
    bins = np.digitize(s, cuts)
    # a tercile may be empty where most spreads are equal (c_top: 0 in most structures)
    result["by_spread_tercile"][group] = [float(np.mean(inside[(bins == b) & known])) if ((bins == b) & known).any()
                                          else None for b in range(3)]
    result["raw_std_coverage"][group] = float(np.mean((error <= s)[known]))
    result["rmse_mean_of_draws"][group] = float(np.sqrt(np.nanmean(((y - y_hat) ** 2)[known])))
    result["rmse_plain_prediction"][group] = float(np.sqrt(np.nanmean(((y - y_plain) ** 2)[known])))
    e, t = error[known & np.isfinite(error) & np.isfinite(s)], s[known & np.isfinite(error) & np.isfinite(s)]
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    result["spearman_error_vs_std"][group] = float(np.corrcoef(rank(e), rank(t))[0, 1])

(folder / "analysis.json").write_text(json.dumps(result, indent=1) + "\n")
print("| group | per-label coverage min–max (worst label) | coverage by spread tercile (low, mid, high) | "
      "raw ±std coverage | Spearman(|error|, std) | RMSE mean of draws | RMSE plain prediction |")
print("|---|---|---|---:|---:|---:|---:|")
for group in result["per_label"]:
    per = result["per_label"][group]
    worst = min(per, key=per.get)
    terciles = ", ".join("–" if v is None else f"{v:.2f}" for v in result["by_spread_tercile"][group])
    print(f"| {group} | {min(per.values()):.2f}–{max(per.values()):.2f} ({worst}) | {terciles} | "
          f"{result['raw_std_coverage'][group]:.2f} | {result['spearman_error_vs_std'][group]:.2f} | "
          f"{result['rmse_mean_of_draws'][group]:.4f} | {result['rmse_plain_prediction'][group]:.4f} |")
