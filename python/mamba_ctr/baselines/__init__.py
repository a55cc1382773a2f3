"""Classical baselines to compare the networks with: the direct least-squares fit of the structure model to
intensities (as ROD and GenX do), started from the nominal structure, random starts, a global search or a given
estimate (ML-initialised refinement); COBRA phase retrieval (Yacoby et al.); and the noise model the comparisons
share.

    >>> from mamba_ctr import presets, simulate
    >>> from mamba_ctr.baselines import fit_intensity
    >>> preset = presets.get("paper-4L")
    >>> structure = preset.sample(1, seed=0)
    >>> I = simulate(structure, preset.grid, dtype="float64").intensity[0]
    >>> fit = fit_intensity(I, preset, transform="sqrt")
"""

from .cobra import (
    CobraBatch,
    CobraConfig,
    CobraProblem,
    CobraResult,
    cobra,
    cobra_batch,
    cobra_labels,
    intersect_circles,
)
from .lsq import (
    GlobalOptions,
    IntensityFit,
    IntensityResidual,
    fit_intensities,
    fit_intensity,
    parameter_uncertainties,
)
from .noise import NoiseModel, NoisyIntensities, add_noise

__all__ = [
    "CobraBatch",
    "CobraConfig",
    "CobraProblem",
    "CobraResult",
    "GlobalOptions",
    "IntensityFit",
    "IntensityResidual",
    "NoiseModel",
    "NoisyIntensities",
    "add_noise",
    "cobra",
    "cobra_batch",
    "cobra_labels",
    "fit_intensities",
    "fit_intensity",
    "intersect_circles",
    "parameter_uncertainties",
]
