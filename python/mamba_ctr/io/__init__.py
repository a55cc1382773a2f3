"""Readers and writers of files people bring: structure files (TOML/JSON), later measured rods."""

from .structure_file import load_structure

__all__ = ["load_structure"]
from .ctr_formats import FORMATS as CTR_FORMATS
from .ctr_formats import read_rods, write_genx, write_rod_dat
from .measured import MeasuredRods, MergeReport, merge_p4mm, supercell_indices

__all__ += ["CTR_FORMATS", "MeasuredRods", "MergeReport", "merge_p4mm", "read_rods", "supercell_indices",
            "write_genx", "write_rod_dat"]
