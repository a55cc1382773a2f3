"""The scattering model: grids, form factors, layered structures, presets and the numpy reference."""

from . import presets
from .form_factors import Scatterer, known_ions, register_form_factor
from .grid import Grid, paper_grid, rod_grid
from .lowering import substrate_field
from .model import Site, StructureModel, Structures, Substrate, SubstrateAtom
from .reference import film_field_reference, simulate_reference

__all__ = [
    "Grid", "Scatterer", "Site", "StructureModel", "Structures", "Substrate", "SubstrateAtom",
    "film_field_reference", "known_ions", "paper_grid", "presets", "register_form_factor", "rod_grid",
    "simulate_reference", "substrate_field",
]
