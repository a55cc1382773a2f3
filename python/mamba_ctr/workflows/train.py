"""Train the paper's twin U-Nets (arch paper) or the rods-as-channels U-Net (arch rods) on an HDF5 dataset or on
rods simulated on the fly; writes best/last checkpoints, history.csv and loss.png to out. Needs torch
(pip install "mamba-ctr[train]")."""

from __future__ import annotations

from ..nn.config import TrainConfig
from ._common import Result, user_path

__all__ = ["Config", "run"]

Config = TrainConfig  # it owns the options, their defaults, help and checks


def run(config: TrainConfig) -> Result:
    """Train; `Result.value` is the history (one dict per validation)."""
    from ..nn.train import train

    with user_path(config.out, "train into"):
        history = train(config)
    if not history:
        return Result(history)
    best = min(history, key=lambda row: row["val_mae"])
    return Result(history, f"{len(history)} epoch(s) recorded; best validation MAE {best['val_mae']:.4f} "
                           f"(epoch {best['epoch']}); checkpoints in {config.out}")
