"""Figures (matplotlib, optional: pip install "mamba-ctr[plot]"), drawn on Figure objects: no pyplot, no backend
switch, every file written atomically."""

from .density import plot_density_slices, plot_extracted_labels
from .evaluation import (
    plot_evaluation,
    plot_field_00,
    plot_label_scatter,
    plot_method_comparison,
    plot_r2_bars,
    plot_r2_table,
)
from .rods import plot_field_rods, plot_rods

__all__ = ["plot_density_slices", "plot_evaluation", "plot_extracted_labels", "plot_field_00", "plot_field_rods",
           "plot_label_scatter", "plot_method_comparison", "plot_r2_bars", "plot_r2_table", "plot_rods"]
