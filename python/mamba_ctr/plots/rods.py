"""Semilog plots of simulated rods."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..simulate import Rods


def _pyplot():
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError('plots need matplotlib: pip install "mamba-ctr[plot]"') from error
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_rods(rods: Rods, out_dir: str | Path, index: int = 0, title: str = "") -> list[Path]:
    """One PNG per rod of structure `index`: I(L) on a log scale, film-only |U|² beside it.

    Returns the written paths (rod_h{h}_k{k}.png, plus rods_overview.png with every rod).
    """
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = rods.grid
    off = ~grid.bragg
    paths = []
    for r in range(grid.n_rods):
        fig, ax = plt.subplots(figsize=(6, 3.6))
        _draw_rod(ax, rods, index, r, off)
        ax.legend(loc="upper right", fontsize=8)
        ax.set_title(f"{title} rod ({grid.h[r]}, {grid.k[r]})".strip())
        fig.tight_layout()
        path = out_dir / f"rod_h{grid.h[r]}_k{grid.k[r]}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    cols = int(np.ceil(np.sqrt(grid.n_rods)))
    rows = int(np.ceil(grid.n_rods / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False, sharex=True)
    for r, ax in enumerate(axes.ravel()):
        if r < grid.n_rods:
            _draw_rod(ax, rods, index, r, off)
            ax.set_title(f"({grid.h[r]}, {grid.k[r]})", fontsize=9)
        else:
            ax.axis("off")
    fig.suptitle(title or "simulated rods")
    fig.tight_layout()
    path = out_dir / "rods_overview.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [*paths, path]


def _draw_rod(ax, rods: Rods, index: int, r: int, off: np.ndarray) -> None:
    L = rods.grid.L
    ax.semilogy(L[off], rods.intensity[index, r, off], lw=1.2, label="I = |S + U|²")
    if rods.film_field is not None:
        ax.semilogy(L[off], np.abs(rods.film_field[index, r, off]) ** 2, lw=0.9, ls="--", label="|U|² (film)")
    ax.set_xlabel("L (r.l.u.)")
    ax.set_ylabel("intensity (e²)")
    for bragg_L in L[rods.grid.bragg]:
        ax.axvline(bragg_L, color="0.85", lw=0.6, zorder=0)
