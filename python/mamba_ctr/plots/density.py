"""Figures of reconstructed densities and extracted structures (the paper's Fig. 2a and 2b).

Arrays in, a matplotlib Figure out (also saved when `path` is given); no pyplot, so they work without a display
and leave the user's backend alone. Compute the inputs with `mamba_ctr.reconstruct` (density_slices,
extract_labels, label_rmse).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..physics.presets import PerovskitePreset
from ._base import new_figure, save

_GROUP_TITLES = {"c": "layer height c_j", "B": "B: d_B_j", "O_ap": "apical O: d_O_ap_j",
                 "O_eq": "equatorial O: d_O_eq_j", "p": "Sr fraction p_i", "occupancy": "top occupancy"}


def plot_density_slices(x: np.ndarray, z: np.ndarray, truth: np.ndarray, prediction: np.ndarray | None = None,
                        y: Sequence[float] = (0.0, 0.5), path: str | Path | None = None, title: str = "",
                        name: str = "truth"):
    """Density slices ρ(x, y, z) at each y, truth beside prediction (paper Fig. 2a).

    Args:
        x: (nx,) fractional x of the slices.
        z: (nz,) heights, Å.
        truth: (len(y), nx, nz) density of the true film field, e/Å³ (`density_slices(...)[2][i]`).
        prediction: the same for a predicted field, or None to draw the truth alone.
        y: the fractional y of each slice (row labels).
        path: where to save the figure (PNG, PDF, ... by suffix), or None.
        title: figure title.
        name: the panel title of `truth` (e.g. "prediction" when a predicted density is drawn alone).

    Returns:
        the matplotlib Figure.
    """
    x, z = np.asarray(x, np.float64).reshape(-1), np.asarray(z, np.float64).reshape(-1)
    panels = [(name, np.asarray(truth, np.float64))]
    if prediction is not None:
        panels.append(("prediction", np.asarray(prediction, np.float64)))
    y = [float(v) for v in y]
    for name, array in panels:
        if array.shape != (len(y), x.size, z.size):
            raise ValueError(f"{name} must have shape (len(y), nx, nz) = {(len(y), x.size, z.size)}, got {array.shape}")
    size = (3.2 * len(panels) + 1.2, 1.0 + len(y) * (1.2 + 0.05 * np.ptp(z)))
    fig = new_figure(figsize=size, layout="constrained")
    axes = fig.subplots(len(y), len(panels), squeeze=False, sharey=True)
    for row, y_value in enumerate(y):
        limit = max(float(np.max(np.abs(array[row]))) for _, array in panels) or 1.0
        for column, (name, array) in enumerate(panels):
            ax = axes[row, column]
            image = ax.imshow(array[row].T, origin="lower", aspect="auto", cmap="RdBu_r", vmin=-limit, vmax=limit,
                              extent=(x[0], x[-1], z[0], z[-1]), interpolation="bilinear")
            ax.set_title(f"{name}, y = {y_value:g}", fontsize=9)
            ax.set_xlabel("x (fraction of a)")
            if column == 0:
                ax.set_ylabel("z (Å)")
        fig.colorbar(image, ax=list(axes[row]), label="ρ (e/Å³)")
    if title:
        fig.suptitle(title)
    return save(fig, path)


def crop_to_film(z: np.ndarray, *slices: np.ndarray, margin: float = 4.0, level: float = 0.02):
    """(z, *slices) cut to the film: the heights where any slice exceeds `level` × its largest |ρ|, widened by
    `margin` Å (the density transform's z axis reaches far above the film). Slices are (..., nz)."""
    z = np.asarray(z, np.float64)
    strong = np.zeros(z.size, dtype=bool)
    for array in slices:
        magnitude = np.abs(np.asarray(array, np.float64)).reshape(-1, z.size).max(axis=0)
        strong |= magnitude > level * (magnitude.max() or 1.0)
    if not strong.any():
        return (z, *slices)
    keep = (z >= z[strong].min() - margin) & (z <= z[strong].max() + margin)
    return (z[keep], *(np.asarray(array)[..., keep] for array in slices))


def plot_extracted_labels(preset: PerovskitePreset, truth: Mapping[str, float], prediction: Mapping[str, float],
                          rmse: Mapping[str, float] | None = None, path: str | Path | None = None, title: str = ""):
    """Extracted labels of one structure against the truth, per atom and layer (paper Fig. 2b).

    One panel per label group (c, B, O_ap, O_eq, p, occupancy): the value of each layer's label, truth as
    circles, prediction as crosses with error bars = `rmse` of that label over a test set.

    Args:
        preset: gives the labels and their groups.
        truth, prediction: label name → value for one structure (e.g. `{k: v[i] for k, v in labels.items()}`).
        rmse: label name → RMSE over a test set (`mamba_ctr.reconstruct.label_rmse`), or None for no bars.
        path, title: as for `plot_density_slices`.

    Returns:
        the matplotlib Figure.
    """
    if not isinstance(preset, PerovskitePreset):
        raise TypeError(f"preset must be a PerovskitePreset, got {type(preset).__name__}")
    groups: dict[str, list[tuple[int, str]]] = {}
    for spec in preset.label_specs():
        match = re.search(r"_(\d+)$", spec.name)
        if match is None:  # c_top, occ_top: shown at the top layer's place
            layer = preset.n_layers - 1 if spec.group == "c" else 0
        else:
            layer = int(match.group(1))
        groups.setdefault(spec.group, []).append((layer, spec.name))
    for name in (spec.name for spec in preset.label_specs()):
        for mapping, what in ((truth, "truth"), (prediction, "prediction")):
            if name not in mapping:
                raise ValueError(f"{what} lacks label {name!r}")
    from matplotlib.ticker import MaxNLocator

    fig = new_figure(figsize=(3.0 * len(groups), 3.4), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)
    for ax, (group, entries) in zip(axes[0], groups.items(), strict=True):
        layers = np.array([layer for layer, _ in entries])
        names = [name for _, name in entries]
        true_values = np.array([float(truth[name]) for name in names])
        predicted = np.array([float(prediction[name]) for name in names])
        bars = None if rmse is None else np.array([float(rmse.get(name, np.nan)) for name in names])
        ax.plot(layers, true_values, "o", mfc="none", color="k", label="truth")
        ax.errorbar(layers, predicted, yerr=bars, fmt="x", color="C3", capsize=2, label="extracted")
        ax.set_title(_GROUP_TITLES.get(group, group), fontsize=9)
        ax.set_xlabel("mixing layer i" if group == "p" else "layer j")
        ax.set_ylabel("" if group in ("p", "occupancy") else "Å")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0, 0].legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return save(fig, path)

