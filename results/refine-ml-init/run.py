"""ML-initialised refinement on noise-free paper-12L test structures (issue 8, item 2).

The shipped model predicts U from the intensities, its density gives the labels (outlier rule applied, no
truth used), and a √I least-squares fit with the compiled kernel starts from them. Counted as exact: every
identifiable label within 1e-3 of its sampled range of the truth.

    mamba-ctr generate --preset paper-12L --n 500 --seed 20261125 --out test12L.h5 --join copy
    python run.py test12L.h5 200 > result.json          # scipy's trf
    python run.py test12L.h5 200 lm > result-lm.json    # the bounded Levenberg–Marquardt (issue 17 item 4)
"""

import hashlib
import json
import sys
import time

import numpy as np

from mamba_ctr import models
from mamba_ctr.baselines import fit_intensities
from mamba_ctr.nn.predict import predict_field
from mamba_ctr.reconstruct import extract_labels, fit_start, r2_scores
from mamba_ctr.reconstruct.refine import SolverOptions, exact_recovery
from mamba_ctr.workflows.evaluate import read_test_set

path, n = sys.argv[1], int(sys.argv[2])
method = sys.argv[3] if len(sys.argv) > 3 else "trf"
preset, intensity, _, truth = read_test_set(path, 0, n)
started = time.perf_counter()
field = predict_field(models.load("paper-12L"), intensity)
labels = extract_labels(field, preset.grid, preset)
start = fit_start(labels, preset)
network_s = (time.perf_counter() - started) / n
cpu = time.process_time()
fits = fit_intensities(intensity.astype(np.float64), preset, start=start, transform="sqrt",
                       options=SolverOptions(method=method))
cpu_fits = time.process_time() - cpu
seconds = fits.values("time")
exact = exact_recovery(truth, fits.labels, preset.label_specs())
per_label, per_group, _ = r2_scores(truth, fits.labels, preset)
_, network_groups, _ = r2_scores(truth, labels, preset)
print(json.dumps({
    "n": n, "method": method, "exact": int(exact.sum()), "exact_fraction": float(exact.mean()),
    "seconds_per_structure_fit": {"median": float(np.median(seconds)), "mean": float(seconds.mean()),
                                  "max": float(seconds.max())},
    "seconds_per_structure_network_and_extraction": network_s,
    "r2_per_group_network": network_groups, "r2_per_group_refined": per_group,
    "lowest_identifiable_r2_refined": min(v for s, v in ((s, per_label[s.name]) for s in preset.label_specs())
                                          if s.identifiable),
    "not_exact": [int(i) for i in np.flatnonzero(~exact)],
    "evaluations_per_fit": float(fits.n_evaluations.mean()), "cpu_seconds_total_fits": cpu_fits,
    "parameters_sha1": hashlib.sha1(np.ascontiguousarray(fits.parameters)).hexdigest(),
}, indent=1))
