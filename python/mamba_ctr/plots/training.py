"""The training curves (paper Figure 5): training and validation MAE against the training samples seen."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._base import new_figure, save

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["PAPER_BEST_VAL_MAE", "plot_training_curves"]

PAPER_BEST_VAL_MAE = 0.124  # the authors' best validation MAE (z-score units; 0.1240 Re, 0.1231 Im)


def plot_training_curves(history: Sequence[dict[str, Any]], path: str | Path | None = None) -> Figure:
    """Training and validation MAE (standardised targets, log scale) of a training history (rows with
    samples_seen, train_mae and val_mae), with the paper's best validation MAE; saved to `path` when given."""
    fig = new_figure(figsize=(6, 4), layout="tight")
    ax = fig.add_subplot()
    samples = [row["samples_seen"] for row in history]
    ax.plot(samples, [row["train_mae"] for row in history], "o-", label="train")
    ax.plot(samples, [row["val_mae"] for row in history], "s-", label="validation")
    ax.axhline(PAPER_BEST_VAL_MAE, color="grey", ls="--", lw=1, label=f"paper's best validation ({PAPER_BEST_VAL_MAE})")
    ax.set(xlabel="training samples seen", ylabel="MAE (standardised targets)", yscale="log")
    ax.legend()
    return save(fig, path, dpi=120)
