"""Least-squares structure fits on paper-12L with the simulator: accuracy and time per structure (issues 6, 8).

    MAMBA_CTR_BENCH_OUT=benchmarks/results/refine.json pytest benchmarks/test_refine.py -p no:cacheprovider

Targets:
* issue 6: the refinement of the TRUE film field U (mamba_ctr.reconstruct.refine) from the nominal start gives
  R² ≥ 0.999 for every identifiable label on MAMBA_CTR_BENCH_N_REFINE (default 500) structures.
* issue 8.2: the intensity fit (mamba_ctr.baselines.lsq) started from a good estimate (the truth with the errors
  of a network: 0.015 Å RMSE on the c and d labels, 0.05 on p; ParameterSpace.perturbed) recovers every
  identifiable label exactly (within 1e-3 of its range) on ≥ 99 % of noise-free structures, < 0.2 s each.
  The √I fit meets it; the classic ln I fit is recorded for comparison (it stalls in local minima).
Also recorded, on MAMBA_CTR_BENCH_N_LSQ (default 100) structures: U fit from the perturbed start, ln I and √I
fits from the nominal start, and a noisy case (1000 counts at each rod's median, 3 % rod scales, √I fit with
per-rod scales, weighted by σ). Times are single-process, one kernel thread, wall clock.

Where the time of a √I fit goes (issue 17 item 4; `test_sqrt_fit_time_breakdown`, 20 structures, perturbed
start, CPU seconds per fit, 2-core VM loaded by other jobs, 2026-12-01, two alternating runs each):

    |                                            | before (f101078) | after (plan)  |
    | fit, CPU s per structure                   | 0.102, 0.107     | 0.073, 0.096  |
    |   simulate_rows (ParameterSpace → Structures, |  0.019, 0.020  | 0.016, 0.021  |
    |     lowering, kernel calls)                |                  |               |
    |   residuals                                | 0.027, 0.031     | 0.010, 0.015  |
    |   the rest: scipy's least_squares (trf,    | 0.056, 0.056     | 0.046, 0.060  |
    |     LSMR on the 3744 × 52 Jacobian)        |                  |               |

A fit makes ~16 kernel calls (8 residuals of 1 structure, 8 Jacobians of 52); their per-call overhead was
~0.09 ms (the plan rebuilt at every call), i.e. ~2 % of a fit; the kernel's own work is ~9 ms. Most of a fit
is scipy's trust-region solver, which no change to the kernel speeds up, so the issue's 2× target for the
ML-initialised refinement is not reached: on its 200 test structures the fits gave bit-identical vectors
(200/200 exact) in 0.081-0.085 CPU s per structure before and 0.081-0.083 after (median, alternating runs).
"""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

import mamba_ctr
from mamba_ctr.baselines.lsq import IntensityResidual, fit_intensities
from mamba_ctr.baselines.noise import NoiseModel, add_noise
from mamba_ctr.reconstruct.metrics import r2_scores
from mamba_ctr.reconstruct.parameters import ParameterSpace
from mamba_ctr.reconstruct.refine import SimulatedLeastSquares, exact_recovery, refine_fields

PRESET = mamba_ctr.presets.get("paper-12L")
SPACE = ParameterSpace(PRESET)
N_REFINE = int(os.environ.get("MAMBA_CTR_BENCH_N_REFINE", 500))
N_LSQ = int(os.environ.get("MAMBA_CTR_BENCH_N_LSQ", 100))
SEED = 2024
ERROR = {"d_rmse": 0.015, "p_rmse": 0.05}


@pytest.fixture(scope="module")
def truth():
    structures = PRESET.sample(max(N_REFINE, N_LSQ), seed=SEED)
    rods = mamba_ctr.simulate(structures, PRESET.grid, dtype="float64")
    perturbed = SPACE.perturbed(SPACE.vector(structures), np.random.default_rng(SEED), **ERROR)
    return structures, rods.film_field, rods.intensity, perturbed


def _summary(structures, fits, seconds: float) -> dict:
    true = PRESET.labels(structures)
    per_label, per_group, _ = r2_scores(true, fits.labels, PRESET, outlier_rule=False)
    identifiable = {spec.name for spec in PRESET.label_specs() if spec.identifiable}
    worst = min((value, name) for name, value in per_label.items() if name in identifiable)
    exact = exact_recovery(true, fits.labels, PRESET.label_specs())
    return {
        "n": len(fits), "exact_recovery": float(exact.mean()), "min_r2": round(worst[0], 6), "min_r2_label": worst[1],
        "r2_per_group": {group: round(value, 6) for group, value in per_group.items()},
        "s_per_structure": round(seconds / len(fits), 4), "median_evaluations": float(np.median(fits.n_evaluations)),
        "r2_per_label": {name: round(value, 6) for name, value in per_label.items()},
    }


def _record(record_extra, key: str, summary: dict) -> None:
    shown = {k: v for k, v in summary.items() if k != "r2_per_label"}
    record_extra(key, shown)
    record_extra(key + " R² per label", summary["r2_per_label"])


def test_refine_true_field_from_nominal(truth, record_extra):
    structures, U, _, _ = truth
    started = time.perf_counter()
    fits = refine_fields(U[:N_REFINE], PRESET, progress=False)
    summary = _summary(structures[:N_REFINE], fits, time.perf_counter() - started)
    _record(record_extra, f"U fit, nominal start, n={N_REFINE}", summary)
    assert summary["min_r2"] >= 0.999


def test_refine_true_field_from_perturbed(truth, record_extra):
    structures, U, _, perturbed = truth
    started = time.perf_counter()
    fits = refine_fields(U[:N_LSQ], PRESET, start=perturbed[:N_LSQ], progress=False)
    summary = _summary(structures[:N_LSQ], fits, time.perf_counter() - started)
    _record(record_extra, f"U fit, perturbed start, n={N_LSQ}", summary)
    assert summary["min_r2"] >= 0.999


@pytest.mark.parametrize("start", ["nominal", "perturbed"])
@pytest.mark.parametrize("transform", ["log", "sqrt"])
def test_intensity_fit(truth, record_extra, transform, start):
    structures, _, I, perturbed = truth
    starting = None if start == "nominal" else perturbed[:N_LSQ]
    started = time.perf_counter()
    fits = fit_intensities(I[:N_LSQ], PRESET, start=starting, transform=transform, progress=False)
    summary = _summary(structures[:N_LSQ], fits, time.perf_counter() - started)
    _record(record_extra, f"{transform} I fit, {start} start, n={N_LSQ}", summary)
    if transform == "sqrt" and start == "perturbed":
        assert summary["exact_recovery"] >= 0.99


def test_noisy_sqrt_fit_from_perturbed(truth, record_extra):
    structures, _, I, perturbed = truth
    n = max(N_LSQ // 2, 1)
    noisy = add_noise(I[:n], PRESET.grid, NoiseModel(counts=1000, rod_scale=0.03, seed=SEED))
    started = time.perf_counter()
    fits = fit_intensities(noisy.intensity, PRESET, start=perturbed[:n], transform="sqrt", scale="rods",
                           sigma=noisy.sigma, weight_by_sigma=True, progress=False)
    summary = _summary(structures[:n], fits, time.perf_counter() - started)
    summary["median_chi2_red"] = round(float(np.median(fits.values("chi2_red"))), 3)
    summary["median_r1"] = round(float(np.median(fits.values("r1"))), 4)
    _record(record_extra, f"sqrt I fit with noise (1000 counts/rod median, 3 % rod scales), perturbed start, n={n}",
            summary)
    assert 0.8 < summary["median_chi2_red"] < 1.2


def test_sqrt_fit_time_breakdown(truth, record_extra, monkeypatch):
    """CPU seconds per √I fit from the perturbed start: simulating, residuals, and the rest (the solver)."""
    structures, _, I, perturbed = truth
    n, spent = min(N_LSQ, 20), {"simulate_rows": 0.0, "residuals": 0.0}

    def timed(function, key):
        def run(*args, **kwargs):
            started = time.process_time()
            try:
                return function(*args, **kwargs)
            finally:
                spent[key] += time.process_time() - started
        return run

    monkeypatch.setattr(SimulatedLeastSquares, "simulate_rows", timed(SimulatedLeastSquares.simulate_rows,
                                                                      "simulate_rows"))
    monkeypatch.setattr(IntensityResidual, "__call__", timed(IntensityResidual.__call__, "residuals"))
    fit_intensities(I[:1], PRESET, start=perturbed[:1], transform="sqrt", progress=False)  # warm-up
    spent.update(simulate_rows=0.0, residuals=0.0)
    started = time.process_time()
    fits = fit_intensities(I[:n], PRESET, start=perturbed[:n], transform="sqrt", progress=False)
    total = time.process_time() - started
    figures = {"cpu_s_per_fit": total / n, **{key: value / n for key, value in spent.items()}}
    figures["rest (solver)"] = figures["cpu_s_per_fit"] - spent["simulate_rows"] / n - spent["residuals"] / n
    record_extra(f"sqrt I fit time breakdown, perturbed start, n={n} (CPU s per fit)",
                 {key: round(value, 4) for key, value in figures.items()})
    assert exact_recovery(PRESET.labels(structures[:n]), fits.labels, PRESET.label_specs()).all()
