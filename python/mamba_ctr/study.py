"""`mamba-ctr study thickness`: one model per film thickness (paper Fig. 3d) and for rough films (Fig. 4).

For each preset of the thickness family: a test set (`n_test` structures, seed TEST_SEED), a rods-as-channels
U-Net trained on rods simulated on the fly for `minutes` of CPU wall time (AdamW, one-cycle schedule annealed
within the budget), and its evaluation (`mamba_ctr.evaluate`). Every stage is skipped when its output exists, and
an interrupted training resumes, so the study can run in parts (`--minutes` is the budget of each model, summed
over its parts). The table of mean R² per atom type against thickness goes to table.csv / table.md and the
figure to thickness.png.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import presets as _presets
from ._checks import check_count
from ._tables import r2_cells, write_csv, write_text
from ._version import __version__

__all__ = ["DEFAULT_PRESETS", "GROUPS", "StudyConfig", "run_study"]

DEFAULT_PRESETS = ("paper-4L", "paper-12L", "paper-16L", "paper-24L", "paper-11-13L-rough")
GROUPS = ("c", "B", "O_ap", "O_eq", "p", "occupancy")
TEST_SEED = 20261125


@dataclass
class StudyConfig:
    """out: study directory; presets: the thickness family; minutes: training budget per model; n_test: test
    structures per preset; batch_size, lr: of the one-cycle AdamW training; bf16: bf16 autocast on the CPU (None:
    where supported); samples_per_epoch: structures per (validation) epoch of the stream; threads: torch threads
    (0: default)."""

    out: Path = Path("mamba-ctr-study")
    presets: tuple[str, ...] = DEFAULT_PRESETS
    minutes: float = 10.0
    n_test: int = 500
    batch_size: int = 64
    lr: float = 2e-3
    bf16: bool | None = None
    samples_per_epoch: int = 30_000
    threads: int = 0
    progress: bool | None = None
    models: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        self.presets = tuple(self.presets)
        if not self.presets:
            raise ValueError("presets is empty: give at least one preset")
        for name in self.presets:
            _presets.get(name)  # raises a ValueError naming the known presets
        unknown = sorted(set(self.models) - set(self.presets))
        if unknown:
            raise ValueError(f"models given for presets not in the study: {unknown}")
        if not (self.minutes > 0 and math.isfinite(self.minutes)):
            raise ValueError(f"minutes must be > 0, got {self.minutes!r}")
        for name in ("n_test", "batch_size", "samples_per_epoch"):
            check_count(name, getattr(self, name), 2 if name == "n_test" else 1)
        check_count("threads", self.threads, 0)
        if self.out.exists() and not self.out.is_dir():
            raise ValueError(f"out must be a directory, got the file {self.out}")


def _bf16(config: StudyConfig) -> bool:
    if config.bf16 is not None:
        return config.bf16
    from .nn.train import cpu_bf16_supported

    return cpu_bf16_supported()


def _train_one(config: StudyConfig, preset: str, directory: Path) -> Path:
    from .nn.train import TrainConfig, train

    if preset in config.models:
        return Path(config.models[preset])
    out = directory / "train"
    settings: dict[str, Any] = dict(stream=preset, arch="rods", target="both", epochs=10_000,
                                    batch_size=config.batch_size,
                    lr=config.lr, optimizer="adamw", weight_decay=0.01, schedule="onecycle",
                    schedule_minutes=config.minutes, samples_per_epoch=config.samples_per_epoch,
                    val_samples=5_000, pilot_samples=50_000, bf16=_bf16(config), threads=config.threads,
                    out=out, progress=config.progress)
    train(TrainConfig(resume=(out / "last.json").is_file(), **settings))
    return out


def _row(preset_name: str, report: dict, train_dir: Path) -> dict[str, Any]:
    preset = _presets.get(preset_name)
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


def run_study(config: StudyConfig) -> list[dict[str, Any]]:
    """Train (or resume, or reuse) and evaluate a model per preset; returns the table rows."""
    from .data.generate import GenerateConfig, generate
    from .evaluate import EvaluateConfig, evaluate

    rows = []
    for name in config.presets:
        directory = config.out / name
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
            evaluate(EvaluateConfig(model=str(train_dir), data=test_file, out=directory / "eval", n=config.n_test))
        report = json.loads(metrics.read_text())
        rows.append(_row(name, report, train_dir))
        print(f"[study] {name}: done in {time.perf_counter() - started:.0f} s; mean R² "
              + ", ".join(f"{g} {report['r2_per_group'][g]:.3f}" for g in report["r2_per_group"]), flush=True)
    _write_table(config, rows)
    return rows


def _write_table(config: StudyConfig, rows: list[dict[str, Any]]) -> None:
    import matplotlib.pyplot as plt
    import numpy as np

    from .plots import plot_r2_table

    out = config.out
    write_csv(out / "table.csv", rows)
    header = "| preset | layers | " + " | ".join(f"R² {g}" for g in GROUPS) + " | outliers | field MAE | val MAE | " \
             "train min | samples |"
    lines = [header, "|---|---:|" + "---:|" * (len(GROUPS) + 5)]
    for row in rows:
        lines.append(f"| {row['preset']} | {row['layers']} | {r2_cells(row, GROUPS)} | {row['outliers']} | "
                     f"{row['field_mae']:.3f} | {row['val_mae']:.3f} | {row['train_minutes']:.1f} | "
                     f"{row['samples_seen']:,} |")
    write_text(out / "table.md", "\n".join(lines) + "\n")
    values = np.array([[row[f"R2_{g}"] for g in GROUPS[:5]] for row in rows])
    plt.close(plot_r2_table([row["preset"].replace("paper-", "") for row in rows], GROUPS[:5], values,
                            path=out / "thickness.png", xlabel="preset (film thickness)",
                            title=f"mean R² per atom type, {config.minutes:g} min CPU training per model"))
