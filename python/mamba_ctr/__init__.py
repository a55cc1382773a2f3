"""mamba-ctr: crystal truncation rods of epitaxial films, simulated fast, and their phases retrieved.

    >>> import mamba_ctr
    >>> preset = mamba_ctr.presets.get("paper-12L")
    >>> rods = mamba_ctr.simulate(preset.sample(100, seed=0), preset.grid)
    >>> rods.film_field.shape, rods.intensity.shape, rods.X.shape
    ((100, 16, 240), (100, 16, 240), (100, 16, 240))
"""

from . import (
    data,
    physics,
    presets,
)
from ._version import __version__
from .physics import Grid, Scatterer, Structures, paper_grid
from .simulate import Rods, network_input, simulate

__all__ = [
    "Grid", "Rods", "Scatterer", "Structures", "__version__", "data", "network_input", "paper_grid", "physics",
    "presets", "simulate",
]
