"""The whole chain on the CPU in minutes, ending in a Markdown report with figures (out/report.md).

1. simulate: a test set of `n_test` paper-12L structures (seed 20261125, never used for training);
2. train: the fast rods-as-channels U-Net (dilated bottleneck, `--dilations 1,2,4,8`) for `train_minutes` on
   rods simulated on the fly (AdamW, one-cycle schedule annealed within the budget, bf16 where the CPU supports
   it);
3. predict + reconstruct + evaluate: that network and, when installed, the shipped pretrained model on the test
   set (field MAE, labels extracted from the predicted density, R² per label and atom type, figures);
4. refine: the structures of the first `n_refine` test structures fitted to their intensities (√I least squares)
   from the shipped model's extraction — the ML-initialised refinement;
5. report: `out/report.md` linking every figure and table.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import _files
from .._checks import check_count
from .._version import __version__
from ..errors import InputError
from ._common import TEST_SEED, Result, progress, user_path

__all__ = ["Config", "run"]


@dataclass
class Config:
    out: Path = field(default=Path("mamba-ctr-demo"), metadata={"help": "output directory"})
    n_test: int = field(default=500, metadata={"help": "test structures"})
    train_minutes: float = field(default=3.0, metadata={"help": "CPU training budget of the demo network (0: skip)"})
    n_refine: int = field(default=20, metadata={"help": "structures refined from the shipped model's prediction "
                                                        "(0: skip)"})
    overwrite: bool = field(default=False, metadata={"help": "reuse a non-empty out"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        check_count("n_test", self.n_test, 2)
        check_count("n_refine", self.n_refine, 0)
        if not (self.train_minutes >= 0 and np.isfinite(self.train_minutes)):
            raise InputError(f"train_minutes must be ≥ 0, got {self.train_minutes!r}")
        if self.n_refine > self.n_test:
            raise InputError(f"n_refine ({self.n_refine}) must be ≤ n_test ({self.n_test})")
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())) and not self.overwrite:
            raise InputError(f"{self.out} exists and is not an empty directory (pass --overwrite to reuse it)")


def _say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


def run(config: Config) -> Result:
    """Run the demo; `Result.value`: the summary (also written to out/summary.json)."""
    with user_path(config.out):
        summary = _run(config)
    return Result(summary)  # _run has said where the report is


def _run(config: Config) -> dict[str, Any]:
    import shutil

    from .. import models
    from ..data.generate import generate
    from ..data.generate_config import GenerateConfig
    from ..nn.train import TrainConfig, cpu_bf16_supported, train
    from ..nn.unet_rods import DILATED_BOTTLENECK  # val MAE 0.168 vs 0.196 plain in a 4-min pilot
    from . import evaluate

    out = config.out
    if config.overwrite and out.is_dir():
        for child in ("train", "eval-trained", "eval-shipped"):
            shutil.rmtree(out / child, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"mamba_ctr_version": __version__, "config": _json_values(vars(config)),
                               "seconds": {}}
    started = time.perf_counter()

    test_file = out / "test.h5"
    _say(f"simulating {config.n_test} paper-12L test structures → {test_file}")
    generate(GenerateConfig(out=test_file, preset="paper-12L", n=config.n_test, seed=TEST_SEED, join="copy",
                            quiet=True, overwrite=True))
    summary["seconds"]["simulate"] = round(time.perf_counter() - started, 1)

    evaluations: dict[str, str] = {}
    if config.train_minutes > 0:
        bf16 = cpu_bf16_supported()
        _say(f"training the rods U-Net (dilated bottleneck) for {config.train_minutes:g} min on the CPU (bf16: {bf16})")
        t0 = time.perf_counter()
        train(TrainConfig(stream="paper-12L", arch="rods", target="both", epochs=1000, batch_size=64, lr=2e-3,
                          arch_kwargs={"bottleneck_dilations": list(DILATED_BOTTLENECK)},
                          optimizer="adamw", weight_decay=0.01, schedule="onecycle",
                          schedule_minutes=config.train_minutes, max_minutes=config.train_minutes * 1.2,
                          # a validation (one loss-curve point) about every 4 000 structures: several
                          # points within minutes even on a busy machine
                          pilot_samples=20_000, val_samples=1_000, samples_per_epoch=4_000, bf16=bf16,
                          out=out / "train", progress=progress(config.quiet)))
        summary["seconds"]["train"] = round(time.perf_counter() - t0, 1)
        evaluations["trained"] = str(out / "train")
    if "paper-12L" in models.available():
        evaluations["shipped"] = "paper-12L"
    if not evaluations:
        raise InputError("nothing to evaluate: no training (train_minutes 0) and no shipped model")
    reports = {}
    for name, model in evaluations.items():
        _say(f"predicting, reconstructing and evaluating the {name} model on the test set")
        t0 = time.perf_counter()
        reports[name] = evaluate.run(evaluate.Config(model=str(model), data=test_file, out=out / f"eval-{name}",
                                                      n=config.n_test)).value
        summary["seconds"][f"evaluate {name}"] = round(time.perf_counter() - t0, 1)
    if config.n_refine and "shipped" in reports:
        _say(f"refining {config.n_refine} structures from the shipped model's prediction (√I least squares)")
        t0 = time.perf_counter()
        summary["refine"] = _refine(test_file, config.n_refine)
        summary["seconds"]["refine"] = round(time.perf_counter() - t0, 1)
    summary["seconds"]["total"] = round(time.perf_counter() - started, 1)
    summary["reports"] = {name: {key: report[key] for key in ("field_mae", "r2_per_group", "outliers_total",
                                                               "targets")}
                          for name, report in reports.items()}
    _files.write_json(out / "summary.json", summary)
    _write_report(out, summary, reports)
    _say(f"done in {summary['seconds']['total']:.0f} s: {out / 'report.md'}")
    return summary


def _json_values(values: dict[str, Any]) -> dict[str, Any]:
    """Numbers and booleans as they are (not strings), paths as text."""
    return {k: v if isinstance(v, (bool, int, float, str)) or v is None else str(v) for k, v in values.items()}


def _refine(test_file: Path, n: int) -> dict[str, Any]:
    """√I fits of the first n test structures started from the labels the shipped model's density gives."""
    from .. import models
    from ..baselines import fit_intensities
    from ..nn.predict import predict_field
    from ..physics.presets import PerovskitePreset
    from ..reconstruct import extract_labels, fit_start, r2_scores
    from ..reconstruct.refine import REFINE_OPTIONS, exact_recovery
    from .evaluate import read_test_set

    preset, intensity, _, true = read_test_set(test_file, 0, n)
    assert isinstance(preset, PerovskitePreset)  # the demo's test set is paper-12L
    predicted = extract_labels(predict_field(models.load("paper-12L"), intensity), preset.grid, preset)
    start = fit_start(predicted, preset, true=true)
    t0 = time.perf_counter()
    fits = fit_intensities(intensity.astype(np.float64), preset, start=start, transform="sqrt",
                           options=REFINE_OPTIONS)
    seconds = (time.perf_counter() - t0) / n
    fitted = fits.labels
    exact = exact_recovery(true, fitted, preset.label_specs())
    per_label, per_group, _ = r2_scores(true, fitted, preset)
    return {"n": n, "seconds_per_structure": seconds, "exact_fraction": float(np.mean(exact)),
            "r2_per_group": per_group, "min_identifiable_r2": float(min(
                v for s, v in ((s, per_label[s.name]) for s in preset.label_specs()) if s.identifiable))}


def _table(reports: dict) -> list[str]:
    groups = list(next(iter(reports.values()))["r2_per_group"])
    lines = ["| model | field MAE | " + " | ".join(f"R² {g}" for g in groups) + " | outliers | targets met |",
             "|---|---:|" + "---:|" * len(groups) + "---:|---:|"]
    for name, r in reports.items():
        lines.append(f"| {name} | {r['field_mae']:.3f} | " + " | ".join(f"{r['r2_per_group'][g]:.3f}" for g in groups)
                     + f" | {r['outliers_total']} | {r['targets']['met']}/{r['targets']['of']} |")
    first = next(iter(reports.values()))
    if "true_field_extraction" in first:
        ref = first["true_field_extraction"]["r2_per_group"]
        lines.append("| (extraction from the true field) | 0 | " + " | ".join(f"{ref[g]:.4f}" for g in groups)
                     + f" | {first['true_field_extraction']['outliers_total']} | |")
    return lines


def _write_report(out: Path, summary: dict, reports: dict) -> None:
    lines = ["# mamba-ctr demo report", "",
             f"paper-12L test set: {summary['config']['n_test']} structures (seed {TEST_SEED}). Wall time per step "
             "(s): " + ", ".join(f"{k} {v}" for k, v in summary["seconds"].items()) + ".", "",
             "## Structure recovered from the predicted field", "",
             "Mean R² per atom type over the identifiable labels (the paper's outlier rule applied):", "",
             *_table(reports), ""]
    if "refine" in summary:
        refine = summary["refine"]
        lines += ["## ML-initialised refinement", "",
                  f"{refine['n']} structures fitted to √I from the shipped model's extraction: "
                  f"{100 * refine['exact_fraction']:.0f} % recovered exactly (every identifiable label within 1e-3 "
                  f"of its range), lowest identifiable R² {refine['min_identifiable_r2']:.5f}, "
                  f"{refine['seconds_per_structure']:.3f} s per structure.", ""]
    for name in reports:
        lines += [f"## Figures: {name} model", "",
                  f"![density](eval-{name}/density_slices.png)", "",
                  f"![positions](eval-{name}/positions.png)", "",
                  f"![R²](eval-{name}/r2.png)", "",
                  f"![scatter](eval-{name}/scatter.png)", "",
                  f"![00 rod](eval-{name}/field_00.png)", ""]
    if (out / "train" / "loss.png").exists():
        lines += ["## Training curve of the demo network", "", "![loss](train/loss.png)", ""]
    if "trained" in reports:
        lines += ["The demo network trained for only "
                  f"{summary['config']['train_minutes']:g} min on this CPU ({summary['seconds'].get('train', 0):g} s "
                  "with setup): it is expected to be weak, the more so on a busy machine, and far below the shipped "
                  "model (trained 2 hours on a 2-core CPU, then fine-tuned 90 minutes); it shows the chain works, "
                  "not what the method reaches.", ""]
    _files.write_text(out / "report.md", "\n".join(lines))
