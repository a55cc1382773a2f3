"""Figures of calibrated uncertainty (mamba_ctr.nn.uncertainty): predicted vs true labels with their intervals,
one panel per label group, and one structure's predicted Re U / Im U with the interval band against the truth.

Arrays in, a matplotlib Figure out (saved when `path` is given); no pyplot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ._base import new_figure, save

__all__ = ["plot_field_band", "plot_label_intervals"]


def plot_label_intervals(true: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray],
                         half_width: Mapping[str, np.ndarray], groups: Mapping[str, str],
                         coverage: Mapping[str, float] | None = None, points: int = 120, seed: int = 0,
                         path: str | Path | None = None, title: str = ""):
    """Predicted vs true labels with error bars (the interval half-widths), one panel per group.

    Args:
        true, predicted, half_width: label name → (n,) values.
        groups: label name → group (the panels, in order of first appearance); labels without a group are left out.
        coverage: group → measured coverage, written in the panel's title.
        points: at most this many (structure, label) pairs per panel, drawn at random (`seed`) so the bars stay
            readable; points outside their interval are drawn in red.
    """
    order = list(dict.fromkeys(groups.values()))
    columns = min(3, len(order)) or 1
    rows = -(-len(order) // columns) or 1
    fig = new_figure(figsize=(3.6 * columns, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    rng = np.random.default_rng(seed)
    for ax, group in zip(axes.flat, order, strict=False):
        names = [name for name, g in groups.items() if g == group and name in predicted]
        t, p, w = (np.concatenate([np.asarray(source[name], dtype=float) for name in names])
                   for source in (true, predicted, half_width))
        keep = np.flatnonzero(np.isfinite(t) & np.isfinite(p) & np.isfinite(w))
        keep = rng.choice(keep, min(points, keep.size), replace=False) if keep.size else keep
        inside = np.abs(p[keep] - t[keep]) <= w[keep]
        for mask, colour in ((inside, "tab:blue"), (~inside, "tab:red")):
            ax.errorbar(t[keep][mask], p[keep][mask], yerr=w[keep][mask], fmt="o", ms=2, lw=0.6, color=colour)
        if keep.size:
            low, high = np.nanmin(t[keep]), np.nanmax(t[keep])
            ax.plot([low, high], [low, high], color="grey", lw=0.8)
        text = group if coverage is None else f"{group}: coverage {coverage.get(group, np.nan):.0%}"
        ax.set_title(text, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    fig.supxlabel("true")
    fig.supylabel("predicted (mean of the draws) ± interval")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)


def plot_field_band(L: np.ndarray, true: np.ndarray, predicted: np.ndarray, half_width: np.ndarray,
                    rods: Sequence[str], show: Sequence[int] = (0, 1, 2, 3),
                    L_range: tuple[float, float] | None = (1.1, 1.9), path: str | Path | None = None,
                    title: str = "", band_label: str = "68 % interval"):
    """One structure's predicted Re U and Im U with a band ± half-width against the truth, for the rods `show`.

    Args:
        L: (NL,) the grid's L; true, predicted: (R, NL) complex U; half_width: (R, NL) complex (Re: the band of
            Re U, Im: that of Im U); rods: (R,) names; show: indices of the rods drawn (one row each).
        L_range: the L window drawn (None: the whole rod; the default, between two Bragg peaks, keeps the band
            visible: near the peaks U is 10–100× larger than the intervals).
    """
    show = [r for r in show if 0 <= r < len(rods)]
    window = np.ones(L.shape, dtype=bool) if L_range is None else (L >= L_range[0]) & (L <= L_range[1])
    if not window.any():
        raise ValueError(f"L_range {L_range} holds no point of L ({L.min():g}…{L.max():g})")
    L, true, predicted, half_width = L[window], true[:, window], predicted[:, window], half_width[:, window]
    fig = new_figure(figsize=(10, 1.9 * len(show) + 0.6), layout="constrained")
    axes = fig.subplots(len(show), 2, squeeze=False, sharex=True)
    for row, r in zip(axes, show, strict=True):
        for ax, part, name in zip(row, (np.real, np.imag), ("Re U", "Im U"), strict=True):
            centre, width = part(predicted[r]), part(half_width[r])
            ax.fill_between(L, centre - width, centre + width, color="tab:blue", alpha=0.3, lw=0, label=band_label)
            ax.plot(L, centre, color="tab:blue", lw=0.8, label="predicted")
            ax.plot(L, part(true[r]), color="k", lw=0.7, ls="--", label="true")
            inside = np.abs(part(true[r]) - centre) <= width
            ax.set_title(f"rod {rods[r]}: {name} (inside {inside.mean():.0%})", fontsize=8)
            ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="best")
    for ax in axes[-1]:
        ax.set_xlabel("L (r.l.u.)")
    if title:
        fig.suptitle(title, fontsize=10)
    return save(fig, path)
