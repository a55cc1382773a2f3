"""From a film field back to the structure: electron density by inverse Fourier transform, labels from its peaks.

    >>> from mamba_ctr import presets, simulate, reconstruct
    >>> preset = presets.get("paper-12L")
    >>> structures = preset.sample(100, seed=0)
    >>> U = simulate(structures, preset.grid).film_field
    >>> labels = reconstruct.extract_labels(U, preset.grid, preset)
    >>> per_label, per_atom, outliers = reconstruct.r2_scores(preset.labels(structures), labels, preset)
"""

from ..physics.perovskite import PEROVSKITE_COLUMNS, Column
from .density import (
    ColumnDensity,
    DensitySettings,
    column_density,
    column_spectra,
    density_slices,
    full_reciprocal,
    z_axis,
)
from .extract import (
    ATOMS,
    ExtractionSettings,
    Positions,
    References,
    a_site_references,
    extract_labels,
    extract_positions,
    labels_from_positions,
)
from .metrics import OUTLIER_MARGIN, apply_outlier_rule, fit_start, label_rmse, r2_score, r2_scores
from .parameters import ParameterSpace, parameter_space
from .refine import (
    FitBatch,
    FitResult,
    SimulatedLeastSquares,
    SolverOptions,
    exact_recovery,
    refine_field,
    refine_fields,
)

__all__ = [
    "ATOMS",
    "OUTLIER_MARGIN",
    "PEROVSKITE_COLUMNS",
    "Column",
    "ColumnDensity",
    "DensitySettings",
    "ExtractionSettings",
    "FitBatch",
    "FitResult",
    "ParameterSpace",
    "Positions",
    "References",
    "SimulatedLeastSquares",
    "SolverOptions",
    "a_site_references",
    "apply_outlier_rule",
    "column_density",
    "column_spectra",
    "density_slices",
    "exact_recovery",
    "extract_labels",
    "extract_positions",
    "fit_start",
    "full_reciprocal",
    "label_rmse",
    "labels_from_positions",
    "parameter_space",
    "r2_score",
    "r2_scores",
    "refine_field",
    "refine_fields",
    "z_axis",
]
