"""Datasets: HDF5 files in the format of architecture.md (version 1)."""

from .hdf5 import FORMAT_VERSION, read_rods, write_rods

__all__ = ["FORMAT_VERSION", "read_rods", "write_rods"]
