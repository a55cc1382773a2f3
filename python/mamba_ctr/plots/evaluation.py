"""Figures of a model evaluation: predicted vs true labels (paper Fig. 3a–b), R² per label (Fig. 3c), the film
field on the 00 rod against the truth and a random other structure (Fig. 6), all of these for an evaluation at
once (`plot_evaluation`), and R² charts per thickness (Fig. 3d) and per method.

Arrays in, a matplotlib Figure out (saved when `path` is given); no pyplot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..physics.family import StructureFamily
from ..physics.grid import Grid
from ..physics.presets import PerovskitePreset
from ._base import new_figure, save

__all__ = ["plot_evaluation", "plot_field_00", "plot_label_scatter", "plot_method_comparison", "plot_r2_bars",
           "plot_r2_table"]

_GROUP_COLOURS = {"c": "tab:blue", "B": "tab:orange", "O_ap": "tab:green", "O_eq": "tab:red", "p": "tab:purple",
                  "occupancy": "tab:brown"}


def plot_label_scatter(preset: PerovskitePreset | StructureFamily, true: Mapping[str, np.ndarray],
                       predicted: Mapping[str, np.ndarray], r2: Mapping[str, float] | None = None,
                       path: str | Path | None = None, title: str = ""):
    """Predicted vs true value of every identifiable label, one small panel each (paper Fig. 3a–b).

    Args:
        preset: gives the labels, their groups and sampled ranges.
        true, predicted: label name → (n,) values (after the outlier rule, if it is to be shown).
        r2: label name → R², written in each panel.
    """
    specs = [spec for spec in preset.label_specs() if spec.identifiable]
    columns = 8
    rows = -(-len(specs) // columns)
    fig = new_figure(figsize=(2.0 * columns, 2.0 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
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
    return save(fig, path)


def plot_r2_bars(preset: PerovskitePreset | StructureFamily, r2: Mapping[str, float],
                 reference: Mapping[str, float] | None = None, path: str | Path | None = None, title: str = "",
                 reference_label: str = "from the true field"):
    """R² of every identifiable label as bars coloured by atom type (paper Fig. 3c); `reference` (e.g. the R²
    of the extraction from the true field) drawn as black ticks."""
    specs = [spec for spec in preset.label_specs() if spec.identifiable]
    fig = new_figure(figsize=(max(6.0, 0.16 * len(specs)), 3.2), layout="constrained")
    ax = fig.subplots()
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
    return save(fig, path)


def plot_field_00(grid: Grid, truth: np.ndarray, prediction: np.ndarray, other: np.ndarray,
                  path: str | Path | None = None, title: str = ""):
    """Re U and Im U on the 00 rod: truth, prediction, and a random other structure for scale (paper Fig. 6).

    Args:
        grid: the grid of the (R, NL) fields.
        truth, prediction, other: complex (R, NL) film fields.
    """
    rod = int(np.flatnonzero((grid.h == 0) & (grid.k == 0))[0])
    fig = new_figure(figsize=(7, 5), layout="constrained")
    axes = fig.subplots(2, 1, sharex=True)
    for ax, part, name in ((axes[0], np.real, "Re U"), (axes[1], np.imag, "Im U")):
        ax.plot(grid.L, part(truth[rod]), "k-", lw=1.2, label="truth")
        ax.plot(grid.L, part(prediction[rod]), "r--", lw=1.0, label="prediction")
        ax.plot(grid.L, part(other[rod]), color="grey", lw=0.8, alpha=0.7, label="another structure")
        ax.set_ylabel(f"{name} (electrons)")
    axes[0].legend(fontsize=8)
    axes[1].set_xlabel("L (r.l.u.)")
    axes[0].set_title(title or "film field on the 00 rod")
    return save(fig, path)


def plot_r2_table(rows: Sequence[str], groups: Sequence[str], values: np.ndarray, path: str | Path | None = None,
                  title: str = "", xlabel: str = ""):
    """Mean R² per atom type (lines) against the `rows` (e.g. film thickness or method) (paper Fig. 3d)."""
    values = np.asarray(values, float)
    if values.shape != (len(rows), len(groups)):
        raise ValueError(f"values must be (rows, groups) = {(len(rows), len(groups))}, got {values.shape}")
    fig = new_figure(figsize=(6, 3.6), layout="constrained")
    ax = fig.subplots()
    for j, group in enumerate(groups):
        ax.plot(range(len(rows)), values[:, j], "o-", color=_GROUP_COLOURS.get(group), label=group)
    ax.set_xticks(range(len(rows)), list(rows))
    ax.set_ylabel("mean R²")
    ax.set_xlabel(xlabel)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return save(fig, path)


def plot_evaluation(out: str | Path, preset: PerovskitePreset | StructureFamily, report: Mapping,
                    true_labels: Mapping[str, np.ndarray],
                    predicted_labels: Mapping[str, np.ndarray], true_field: np.ndarray, predicted_field: np.ndarray,
                    start: int = 0, example: int = 0) -> list[Path]:
    """The figures of a model evaluation in `out`: density_slices.png (Fig. 2a) and positions.png (Fig. 2b) of
    structure `example` (paper presets only: a family around a structure file has no perovskite columns),
    scatter.png (Fig. 3a–b), r2.png (Fig. 3c) and field_00.png (Fig. 6).

    Args:
        report: the evaluation report (`r2_per_label`, `rmse_per_label`, optionally `true_field_extraction`).
        true_labels, predicted_labels: label name → (n,) values.
        true_field, predicted_field: complex (n, R, NL) film fields.
        start: index in the dataset of structure 0 (for the titles and the choice of the other structure).
    """
    from ..reconstruct import apply_outlier_rule, density_slices
    from .density import crop_to_film, plot_density_slices, plot_extracted_labels

    out, i, n = Path(out), example, len(true_field)
    paths = []
    corrected = dict(predicted_labels)
    if isinstance(preset, PerovskitePreset):  # density and positions: the perovskite columns of a paper preset
        paths = [out / "density_slices.png", out / "positions.png"]
        x, z, rho = density_slices(np.stack([true_field[i], predicted_field[i]]), preset.grid)
        z, truth_slices, predicted_slices = crop_to_film(z, rho[0], rho[1])
        plot_density_slices(x, z, truth_slices, predicted_slices, path=paths[0],
                            title=f"{preset.name}, structure {start + i}")
        corrected, _ = apply_outlier_rule(dict(predicted_labels), preset, true=dict(true_labels))
        plot_extracted_labels(preset, {name: float(v[i]) for name, v in true_labels.items()},
                              {name: float(v[i]) for name, v in corrected.items()}, rmse=report["rmse_per_label"],
                              path=paths[1], title=f"structure {start + i}; error bars: RMSE over {n}")
    paths += [out / "scatter.png", out / "r2.png", out / "field_00.png"]
    plot_label_scatter(preset, true_labels, corrected, report["r2_per_label"], path=paths[-3],
                       title=f"{preset.name}: {n} test structures")
    reference = report.get("true_field_extraction", {}).get("r2_per_label")
    plot_r2_bars(preset, report["r2_per_label"], reference, path=paths[-2], title=f"R² per label ({n} structures)")
    other = (i + 1 + np.random.default_rng(start).integers(n - 1)) % n if n > 1 else i
    plot_field_00(preset.grid, true_field[i], predicted_field[i], true_field[other], path=paths[-1])
    return paths


def plot_method_comparison(rows: Sequence[Mapping], methods: Sequence[str], groups: Sequence[str],
                           path: str | Path | None = None):
    """Mean R² over `groups` of each method (lines) against the preset, one panel per condition (noise-free,
    noisy or one per count level). `rows`: table rows with keys preset, method, condition and R2_<group>."""
    conditions = list(dict.fromkeys(row["condition"] for row in rows)) or ["noise-free"]
    fig = new_figure(figsize=(1 + 5 * len(conditions), 4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(conditions), sharey=True))
    presets = list(dict.fromkeys(row["preset"] for row in rows))
    for ax, condition in zip(axes, conditions, strict=True):
        for method in methods:
            mean_r2 = []
            for name in presets:
                match = [r for r in rows if (r["preset"], r["method"], r["condition"]) == (name, method, condition)]
                values = np.array([match[0][f"R2_{g}"] for g in groups] if match else [np.nan], float)
                mean_r2.append(np.nanmean(values) if np.isfinite(values).any() else np.nan)
            ax.plot(range(len(presets)), mean_r2, "o-", label=method)
        ax.set_xticks(range(len(presets)), [p.replace("paper-", "") for p in presets])
        ax.set_title(condition)
        ax.set_ylim(-0.2, 1.02)
        ax.set_xlabel("preset")
    axes[0].set_ylabel("mean R² over atom types")
    axes[-1].legend(fontsize=8)
    return save(fig, path)
