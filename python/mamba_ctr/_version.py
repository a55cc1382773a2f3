"""The one version source of mamba-ctr (read by the build and by the package)."""

__version__ = "0.1.0"
