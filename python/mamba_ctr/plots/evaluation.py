"""Figures of a model evaluation: predicted vs true labels (paper Fig. 3a–b), R² per label (Fig. 3c), the film
field on the 00 rod against the truth and a random other structure (Fig. 6), and a per-method/thickness R² chart.

Arrays in, a matplotlib Figure out (saved when `path` is given), Agg backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..physics.grid import Grid
from ..physics.presets import PerovskitePreset
from .density import _finish
from .rods import _pyplot

__all__ = ["plot_field_00", "plot_label_scatter", "plot_r2_bars", "plot_r2_table"]

_GROUP_COLOURS = {"c": "tab:blue", "B": "tab:orange", "O_ap": "tab:green", "O_eq": "tab:red", "p": "tab:purple",
                  "occupancy": "tab:brown"}


def plot_label_scatter(preset: PerovskitePreset, true: Mapping[str, np.ndarray], predicted: Mapping[str, np.ndarray],
                       r2: Mapping[str, float] | None = None, path: str | Path | None = None, title: str = ""):
    """Predicted vs true value of every identifiable label, one small panel each (paper Fig. 3a–b).

    Args:
        preset: gives the labels, their groups and sampled ranges.
        true, predicted: label name → (n,) values (after the outlier rule, if it is to be shown).
        r2: label name → R², written in each panel.
    """
    specs = [spec for spec in preset.label_specs() if spec.identifiable]
    columns = 8
    rows = -(-len(specs) // columns)
    plt = _pyplot()
    fig, axes = plt.subplots(rows, columns, figsize=(2.0 * columns, 2.0 * rows), squeeze=False, layout="constrained")
    for ax, spec in zip(axes.flat, specs, strict=False):
        t, p = np.asarray(true[spec.name], float), np.asarray(predicted[spec.name], float)
        keep = np.isfinite(t) & np.isfinite(p)
        ax.plot([spec.low, spec.high], [spec.low, spec.high], color="grey", lw=0.8)
        ax.scatter(t[keep], p[keep], s=3, alpha=0.5, color=_GROUP_COLOURS.get(spec.group, "k"))
        text = spec.name if r2 is None else f"{spec.name}  R²={r2.get(spec.name, np.nan):.3f}"
        ax.set_title(text, fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(specs):]:
        ax.axis("off")
    fig.supxlabel("true")
    fig.supylabel("predicted")
    if title:
        fig.suptitle(title)
    return _finish(fig, path)


def plot_r2_bars(preset: PerovskitePreset, r2: Mapping[str, float], reference: Mapping[str, float] | None = None,
                 path: str | Path | None = None, title: str = "", reference_label: str = "from the true field"):
    """R² of every identifiable label as bars coloured by atom type (paper Fig. 3c); `reference` (e.g. the R²
    of the extraction from the true field) drawn as black ticks."""
    specs = [spec for spec in preset.label_specs() if spec.identifiable]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.16 * len(specs)), 3.2), layout="constrained")
    values = [r2.get(spec.name, np.nan) for spec in specs]
    ax.bar(range(len(specs)), np.clip(values, 0, 1), color=[_GROUP_COLOURS.get(s.group, "k") for s in specs])
    if reference is not None:
        ax.plot(range(len(specs)), [reference.get(s.name, np.nan) for s in specs], "k_", ms=8,
                label=reference_label)
        ax.legend(fontsize=7, loc="lower left")
    ax.set_xticks(range(len(specs)), [s.name for s in specs], rotation=90, fontsize=6)
    ax.set_ylim(min(0.8, np.nanmin(values) if np.isfinite(values).any() else 0.8), 1.0)
    ax.set_ylabel("R² (predicted vs true)")
    if title:
        ax.set_title(title)
    return _finish(fig, path)


def plot_field_00(grid: Grid, truth: np.ndarray, prediction: np.ndarray, other: np.ndarray,
                  path: str | Path | None = None, title: str = ""):
    """Re U and Im U on the 00 rod: truth, prediction, and a random other structure for scale (paper Fig. 6).

    Args:
        grid: the grid of the (R, NL) fields.
        truth, prediction, other: complex (R, NL) film fields.
    """
    rod = int(np.flatnonzero((grid.h == 0) & (grid.k == 0))[0])
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(7, 5), sharex=True, layout="constrained")
    for ax, part, name in ((axes[0], np.real, "Re U"), (axes[1], np.imag, "Im U")):
        ax.plot(grid.L, part(truth[rod]), "k-", lw=1.2, label="truth")
        ax.plot(grid.L, part(prediction[rod]), "r--", lw=1.0, label="prediction")
        ax.plot(grid.L, part(other[rod]), color="grey", lw=0.8, alpha=0.7, label="another structure")
        ax.set_ylabel(f"{name} (electrons)")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("L (r.l.u.)")
    axes[0].set_title(title or "film field on the 00 rod")
    return _finish(fig, path)


def plot_r2_table(rows: Sequence[str], groups: Sequence[str], values: np.ndarray, path: str | Path | None = None,
                  title: str = "", xlabel: str = ""):
    """Mean R² per atom type (lines) against the `rows` (e.g. film thickness or method) (paper Fig. 3d)."""
    values = np.asarray(values, float)
    if values.shape != (len(rows), len(groups)):
        raise ValueError(f"values must be (rows, groups) = {(len(rows), len(groups))}, got {values.shape}")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    for j, group in enumerate(groups):
        ax.plot(range(len(rows)), values[:, j], "o-", color=_GROUP_COLOURS.get(group), label=group)
    ax.set_xticks(range(len(rows)), list(rows))
    ax.set_ylabel("mean R²")
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return _finish(fig, path)
