"""Figures of a structure fit to measured rods: per rod, measured and calculated intensity (log scale) over the
normalised residuals (|F|_obs − |F|_calc) / σ_F. (All rods in one figure, without residuals:
`plots.measured.measured_rods_figure`.)"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ._base import new_figure, save

if TYPE_CHECKING:
    from ..baselines.structure_fit import MeasuredPoints

__all__ = ["plot_fit_rods", "rod_label"]


def rod_label(hk: tuple[float, float]) -> str:
    """'(1, 0)' or '(0.5, 2.5)': a rod's (H, K) as short text."""
    return f"({hk[0]:g}, {hk[1]:g})"


def _broken(L: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(L, y) with NaN in gaps wider than 3 median steps, so that a line does not bridge left-out stretches."""
    if L.size < 3:
        return L, y
    step = np.diff(L)
    gaps = np.flatnonzero(step > 3 * np.median(step)) + 1
    return np.insert(L, gaps, np.nan), np.insert(y, gaps, np.nan)


def _draw(axes, points: MeasuredPoints, r: int, I_start: np.ndarray | None, I_fit: np.ndarray,
          legend: bool) -> None:
    top, bottom = axes
    used = points.used[r]
    L, F, sF = points.L[r, used], points.F[r, used], points.sigma[r, used]
    top.errorbar(L, F**2, yerr=2 * F * sF, fmt="o", ms=2, lw=0.5, color="0.25", label="measured")
    if I_start is not None:
        top.plot(*_broken(L, I_start[r, used]), lw=1, ls="--", color="tab:blue", label="start")
    top.plot(*_broken(L, I_fit[r, used]), lw=1.2, color="tab:red", label="fit")
    top.set_yscale("log")
    top.set_ylabel("I = |F|² (data units)")
    residual = (np.sqrt(np.maximum(I_fit[r, used], 0)) - F) / sF
    bottom.axhline(0, color="0.6", lw=0.6)
    bottom.plot(L, residual, ".", ms=2, color="tab:red")
    bottom.set_ylabel("Δ|F|/σ")
    bottom.set_xlabel("L (r.l.u.)")
    if legend:
        top.legend(fontsize=7, loc="best")


def plot_fit_rods(points: MeasuredPoints, I_fit: np.ndarray, out_dir: str | Path, *,
                  I_start: np.ndarray | None = None, title: str = "") -> list[Path]:
    """One PNG per rod (`fit_rod_<H>_<K>.png`): measured vs calculated intensity, residuals below.

    Args:
        points: the measured points.
        I_fit: (R, NL) calculated intensity of the fit, scales applied; I_start likewise for the start (optional).
        out_dir: folder of the figures (created).
        title: prefix of each figure's title.

    Returns:
        The written paths.
    """
    paths = []
    for r, hk in enumerate(points.rods):
        fig = new_figure(figsize=(6.4, 4.6), layout="constrained")
        axes = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": (3, 1)})
        _draw(axes, points, r, I_start, I_fit, legend=True)
        axes[0].set_title(f"{title} rod {rod_label(hk)}".strip())
        name = f"fit_rod_{hk[0]:g}_{hk[1]:g}.png".replace("/", "_")
        paths.append(Path(out_dir) / name)
        save(fig, paths[-1])
    return paths
