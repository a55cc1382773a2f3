"""thickness: one model per film thickness (paper Fig. 3d) and for rough films (Fig. 4).

For each preset of the thickness family: a test set (`n_test` structures, seed TEST_SEED), a rods-as-channels
U-Net trained on rods simulated on the fly for `minutes` of CPU wall time (AdamW, one-cycle schedule annealed
within the budget), and its evaluation (workflows.evaluate). Every stage is skipped when its output exists, and
an interrupted training resumes, so the study can run in parts (rerun the same command to continue; `minutes` is
the budget of each model, summed over its parts). The table of mean R² per atom type against thickness goes to
table.csv / table.md and the figure to thickness.png.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _files
from .._checks import check_count
from .._version import __version__
from ..errors import InputError
from ..physics import presets
from ._common import GROUPS, TEST_SEED, THICKNESS, Result, output_dir, preset_name, progress, r2_cells, user_path

__all__ = ["Config", "run"]


@dataclass
class Config:
    study: str = field(default="thickness", metadata={"help": "the study", "positional": True,
                                                      "choices": ("thickness",)})
    out: Path = field(default=Path("mamba-ctr-study"), metadata={"help": "study directory"})
    presets: tuple[str, ...] = field(default=THICKNESS, metadata={
        "help": "comma-separated presets of the thickness family to train and evaluate (names or aliases)"})
    minutes: float = field(default=10.0, metadata={"help": "CPU training budget per model"})
    n_test: int = field(default=500, metadata={"help": "test structures per preset"})
    models: dict[str, str] = field(default_factory=dict, metadata={
        "help": "reuse trained models: PRESET=DIR[,PRESET=DIR...]"})
    batch_size: int = field(default=64, metadata={"help": "batch size of the one-cycle AdamW training"})
    lr: float = field(default=2e-3, metadata={"help": "peak learning rate of the one-cycle AdamW training"})
    bf16: bool | None = field(default=None, metadata={"help": "bf16 autocast on the CPU (default: where supported)"})
    samples_per_epoch: int = field(default=30_000, metadata={"help": "structures per (validation) epoch"})
    threads: int = field(default=0, metadata={"help": "torch threads (0: torch's default)"})
    quiet: bool = field(default=False, metadata={"help": "no progress bars"})

    def __post_init__(self) -> None:
        self.out = output_dir(self.out)
        if self.study != "thickness":
            raise InputError(f"study must be thickness, got {self.study!r}")
        self.presets = tuple(map(preset_name, self.presets))
        if not self.presets:
            raise InputError("presets is empty: give at least one preset")
        self.models = {preset_name(name): str(model) for name, model in dict(self.models).items()}
        unknown = sorted(set(self.models) - set(self.presets))
        if unknown:
            raise InputError(f"models given for presets not in the study: {unknown}")
        if not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise InputError(f"minutes must be > 0, got {self.minutes!r}")
        for name in ("n_test", "batch_size", "samples_per_epoch"):
            check_count(name, getattr(self, name), 2 if name == "n_test" else 1)
        check_count("threads", self.threads, 0)


def _train_one(config: Config, preset: str, directory: Path) -> Path:
    from ..nn.train import TrainConfig, cpu_bf16_supported, train

    if preset in config.models:
        return Path(config.models[preset])
    out = directory / "train"
    bf16 = cpu_bf16_supported() if config.bf16 is None else config.bf16
    train(TrainConfig(stream=preset, arch="rods", target="both", epochs=10_000, batch_size=config.batch_size,
                      lr=config.lr, optimizer="adamw", weight_decay=0.01, schedule="onecycle",
                      schedule_minutes=config.minutes, samples_per_epoch=config.samples_per_epoch,
                      val_samples=5_000, pilot_samples=50_000, bf16=bf16, threads=config.threads, out=out,
                      progress=progress(config.quiet), resume=(out / "last.json").is_file()))
    return out


def _row(preset_name: str, report: dict, train_dir: Path) -> dict[str, Any]:
    preset = presets.get(preset_name)
    history = json.loads((train_dir / "best.json").read_text()).get("history", []) if \
        (train_dir / "best.json").is_file() else []
    best = min(history, key=lambda r: r["val_mae"]) if history else {}
    row: dict[str, Any] = {"preset": preset_name, "layers": preset.n_layers - 1,
                           "film": "-".join(str(v) for v in sorted(set(preset.film_layers))),
                           "rough": preset.rough_top}
    row.update({f"R2_{group}": report["r2_per_group"].get(group, math.nan) for group in GROUPS})
    row.update({"outliers": report["outliers_total"], "field_mae": report["field_mae"],
                "val_mae": best.get("val_mae", math.nan),
                "train_minutes": history[-1]["wall_s"] / 60 if history else math.nan,
                "samples_seen": history[-1]["samples_seen"] if history else 0, "mamba_ctr_version": __version__})
    return row


def run(config: Config) -> Result:
    """Train (or resume, or reuse) and evaluate a model per preset; `Result.value`: the table rows."""
    from ..data.generate import generate
    from ..data.generate_config import GenerateConfig
    from . import evaluate

    rows = []
    for name in config.presets:
        directory = config.out / name
        with user_path(directory):
            directory.mkdir(parents=True, exist_ok=True)
        test_file = directory / "test.h5"
        if not test_file.is_file():
            generate(GenerateConfig(out=test_file, preset=name, n=config.n_test, seed=TEST_SEED, join="copy",
                                    quiet=True))
        print(f"[study] {name}: training ({config.minutes:g} min budget)", flush=True)
        started = time.perf_counter()
        train_dir = _train_one(config, name, directory)
        metrics = directory / "eval" / "metrics.json"
        stale = not metrics.is_file() or metrics.stat().st_mtime < (train_dir / "best.json").stat().st_mtime
        if stale:
            print(f"[study] {name}: evaluating on {config.n_test} test structures", flush=True)
            evaluate.run(evaluate.Config(model=str(train_dir), data=test_file, out=directory / "eval",
                                         n=config.n_test, overwrite=True))  # stale: replaced
        report = json.loads(metrics.read_text())
        rows.append(_row(name, report, train_dir))
        print(f"[study] {name}: done in {time.perf_counter() - started:.0f} s; mean R² "
              + ", ".join(f"{g} {report['r2_per_group'][g]:.3f}" for g in report["r2_per_group"]), flush=True)
    with user_path(config.out):
        return Result(rows, _write_table(config, rows))


def _write_table(config: Config, rows: list[dict[str, Any]]) -> str:
    """table.csv, table.md and thickness.png; returns the Markdown table."""
    import numpy as np

    from ..plots import plot_r2_table

    out = config.out
    _files.write_csv(out / "table.csv", rows)
    header = "| preset | layers | " + " | ".join(f"R² {g}" for g in GROUPS) + " | outliers | field MAE | val MAE | " \
             "train min | samples |"
    lines = [header, "|---|---:|" + "---:|" * (len(GROUPS) + 5)]
    for row in rows:
        lines.append(f"| {row['preset']} | {row['layers']} | {r2_cells(row)} | {row['outliers']} | "
                     f"{row['field_mae']:.3f} | {row['val_mae']:.3f} | {row['train_minutes']:.1f} | "
                     f"{row['samples_seen']:,} |")
    text = "\n".join(lines) + "\n"
    _files.write_text(out / "table.md", text)
    values = np.array([[row[f"R2_{g}"] for g in GROUPS[:5]] for row in rows])
    plot_r2_table([row["preset"].replace("paper-", "") for row in rows], GROUPS[:5], values,
                  path=out / "thickness.png", xlabel="preset (film thickness)",
                  title=f"mean R² per atom type, {config.minutes:g} min CPU training per model")
    return text
