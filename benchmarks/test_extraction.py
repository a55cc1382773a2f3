"""Labels from the density of the TRUE film field: R² per label and time per structure (issue 6).

    pytest benchmarks/test_extraction.py --benchmark-only -s

Target: from the true U (complex64, as stored in datasets), `extract_labels` gives R² ≥ 0.99 for every
identifiable label on 500 paper-12L structures (learning.md's outlier rule applied, outliers counted). The other
presets of the thickness family are measured the same way. Per-label R², the mean R² per atom type, outliers
and ms per structure are printed and recorded (benchmarks/results/last_run.json, "extra"). n is
MAMBA_CTR_BENCH_EXTRACT_N (default 500).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr import presets, reconstruct

N = int(os.environ.get("MAMBA_CTR_BENCH_EXTRACT_N", 500))
SEED = 2024


@pytest.mark.parametrize("name", ["paper-12L", "paper-4L", "paper-16L", "paper-24L", "paper-12L-rough",
                                  "paper-11-13L-rough"])
def test_extraction_from_true_field(benchmark, record_extra, name):
    preset = presets.get(name)
    structures = preset.sample(N, seed=SEED)
    U = mamba_ctr.simulate(structures, preset.grid).film_field  # complex64, as in the datasets
    truth = preset.labels(structures)
    reconstruct.a_site_references(preset.grid, preset)  # simulated once per preset, cached

    extracted = benchmark.pedantic(reconstruct.extract_labels, args=(U, preset.grid, preset), rounds=3,
                                   iterations=1, warmup_rounds=1)
    ms_per_structure = 1e3 * benchmark.stats.stats.min / N
    per_label, per_group, outliers = reconstruct.r2_scores(truth, extracted, preset)
    identifiable = [spec.name for spec in preset.label_specs() if spec.identifiable]
    worst = min(identifiable, key=lambda label: per_label[label])
    summary = (f"{ms_per_structure:.3f} ms/structure; mean R² per atom type "
               + ", ".join(f"{group} {value:.5f}" for group, value in per_group.items())
               + f"; worst {worst} {per_label[worst]:.5f}; outliers {sum(outliers[n] for n in identifiable)}"
               + f"; c_top (not identifiable) {per_label['c_top']:.3f}")
    print(f"\n{name}, n = {N}: {summary}")
    print("  " + ", ".join(f"{label} {value:.5f}" for label, value in per_label.items()))
    benchmark.extra_info.update({"ms_per_structure": ms_per_structure, "r2": per_label, "r2_per_atom": per_group})
    record_extra(f"extraction {name} (n = {N}, true U)", summary)
    assert per_label[worst] >= 0.99
    assert all(np.isfinite(per_label[label]) for label in identifiable)
