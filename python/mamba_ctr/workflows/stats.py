"""Normalisation statistics of a dataset file: mean/std of X = ln I (Bragg points 0; global) and of Re U, Im U
(per grid point); the stored /stats, or computed for another index range."""

from __future__ import annotations

import json as _json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ._common import Result, user_path

__all__ = ["Config", "run"]


@dataclass
class Config:
    file: Path = field(metadata={"help": "dataset FILE.h5", "positional": True})
    start: int | None = field(default=None, metadata={"help": "first structure index (default: the file's first)"})
    stop: int | None = field(default=None, metadata={
        "help": "one past the last structure index (default: the file's last)"})
    recompute: bool = field(default=False, metadata={"help": "ignore the stored /stats"})
    json: bool = field(default=False, metadata={"help": "print everything (per-point arrays too) as JSON"})

    def __post_init__(self) -> None:
        self.file = Path(self.file)


def run(config: Config) -> Result:
    """`Result.value`: the statistics as a JSON-able dict (`Stats.summary()`)."""
    from ..data.stats import file_stats

    with user_path(config.file, "read"):
        summary = file_stats(config.file, config.start, config.stop, recompute=config.recompute).summary()
    if config.json:
        return Result(summary, _json.dumps(summary))
    lines = [f"structures  [{summary['start']}, {summary['stop']})  ({summary['structures']})",
             f"X = ln I    mean {summary['X_mean']:.12g}  std {summary['X_std']:.12g}"]
    for part in ("U_re", "U_im"):
        mean, std = np.asarray(summary[f"{part}_mean"]), np.asarray(summary[f"{part}_std"])
        lines.append(f"{part:<10}  mean per point in [{mean.min():.6g}, {mean.max():.6g}], "
                     f"std per point in [{std.min():.6g}, {std.max():.6g}]  (shape {mean.shape}; --json for all)")
    return Result(summary, "\n".join(lines))
