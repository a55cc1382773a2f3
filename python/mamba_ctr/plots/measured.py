"""Measured vs calculated rods: one panel per rod, log intensity against L (matplotlib Figure API, no pyplot)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def measured_rods_figure(
    labels: Sequence[str],
    L: Sequence[np.ndarray],
    measured: Sequence[np.ndarray],
    calculated: Mapping[str, Sequence[np.ndarray]],
    *,
    title: str = "",
    columns: int = 3,
) -> Figure:
    """A grid of panels, one per rod: measured I (points) and each calculated curve (lines), log scale.

    Args:
        labels: rod names, e.g. "(1, 0)".
        L: per rod, (n_r,) L values.
        measured: per rod, (n_r,) measured intensities (values ≤ 0 are not drawn on the log axis).
        calculated: curve name → per rod, (n_r,) calculated intensities on the measured scale.
        title: the figure's title.
        columns: panels per row.
    """
    from matplotlib.figure import Figure

    n = len(labels)
    if not (len(L) == len(measured) == n and all(len(curves) == n for curves in calculated.values())):
        raise ValueError("labels, L, measured and every calculated curve need one entry per rod")
    rows = max(1, math.ceil(n / columns))
    fig = Figure(figsize=(4.2 * min(columns, n), 3.2 * rows), layout="constrained")
    axes = fig.subplots(rows, min(columns, n), squeeze=False).ravel()
    for i, ax in enumerate(axes):
        if i >= n:
            ax.set_visible(False)
            continue
        order = np.argsort(L[i])
        positive = measured[i][order] > 0
        ax.semilogy(L[i][order][positive], measured[i][order][positive], ".", ms=2.5, color="0.3", label="measured")
        for name, curves in calculated.items():
            ax.semilogy(L[i][order], np.maximum(curves[i][order], np.finfo(float).tiny), lw=1.1, label=name)
        ax.set_title(labels[i], fontsize=10)
        ax.set_xlabel("L (r.l.u.)")
        ax.set_ylabel("I")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
