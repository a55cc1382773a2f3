"""Readers and writers of files people bring: structure files (TOML/JSON), later measured rods."""

from .structure_file import load_structure

__all__ = ["load_structure"]
