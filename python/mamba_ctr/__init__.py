"""mamba-ctr: crystal truncation rods of layered films (package entry point; placeholder)."""
