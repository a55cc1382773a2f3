"""Figures (matplotlib, optional: pip install "mamba-ctr[plot]")."""

from .rods import plot_rods

__all__ = ["plot_rods"]
