"""Plots of rods: semilog intensities of simulated rods, and a (predicted) film field on every rod."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..physics.grid import Grid
from ..simulate import Rods
from ._base import new_figure, save

__all__ = ["plot_field_rods", "plot_rods"]


def plot_rods(rods: Rods, out_dir: str | Path, index: int = 0, title: str = "") -> list[Path]:
    """One PNG per rod of structure `index`: I(L) on a log scale, film-only |U|² beside it.

    Returns the written paths (rod_h{h}_k{k}.png, plus rods_overview.png with every rod).
    """
    out_dir = Path(out_dir)
    grid = rods.grid
    off = ~grid.bragg
    paths = []
    for r in range(grid.n_rods):
        fig = new_figure(figsize=(6, 3.6), layout="tight")
        ax = fig.subplots()
        _draw_rod(ax, rods, index, r, off)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{title} rod ({grid.h[r]}, {grid.k[r]})".strip())
        paths.append(out_dir / f"rod_h{grid.h[r]}_k{grid.k[r]}.png")
        save(fig, paths[-1])
    cols = int(np.ceil(np.sqrt(grid.n_rods)))
    rows = int(np.ceil(grid.n_rods / cols))
    fig = new_figure(figsize=(3.2 * cols, 2.4 * rows), layout="tight")
    axes = fig.subplots(rows, cols, squeeze=False, sharex=True)
    for r, ax in enumerate(axes.ravel()):
        if r < grid.n_rods:
            _draw_rod(ax, rods, index, r, off)
            ax.set_title(f"({grid.h[r]}, {grid.k[r]})", fontsize=9)
        else:
            ax.axis("off")
    fig.suptitle(title or "simulated rods")
    paths.append(out_dir / "rods_overview.png")
    save(fig, paths[-1], dpi=100)
    return paths


def _draw_rod(ax, rods: Rods, index: int, r: int, off: np.ndarray) -> None:
    L = rods.grid.L
    ax.semilogy(L[off], rods.intensity[index, r, off], lw=1.2, label="I = |S + U|²")
    if rods.film_field is not None:
        ax.semilogy(L[off], np.abs(rods.film_field[index, r, off]) ** 2, lw=0.9, ls="--", label="|U|² (film)")
    ax.set_xlabel("L (r.l.u.)")
    ax.set_ylabel("intensity (e²)")
    for bragg_L in L[rods.grid.bragg]:
        ax.axvline(bragg_L, color="0.85", lw=0.6, zorder=0)


def plot_field_rods(grid: Grid, field: np.ndarray, path: str | Path | None = None):
    """Re U and Im U of one structure's film field (complex (R, NL), electrons) on every rod, one panel each."""
    fig = new_figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(4, 4, sharex=True)
    for r, ax in enumerate(axes.flat[: grid.n_rods]):
        ax.plot(grid.L, field[r].real, lw=0.9, label="Re U")
        ax.plot(grid.L, field[r].imag, lw=0.9, label="Im U")
        ax.set_title(f"({grid.h[r]} {grid.k[r]})", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.supxlabel("L (r.l.u.)")
    fig.supylabel("predicted U (electrons)")
    return save(fig, path, dpi=100)
