"""Typing stub of the compiled core (cpp/bindings/module.cpp); contract in docs/kernel.md."""


import numpy as np
import numpy.typing as npt

def film_fields(
    z: npt.ArrayLike,
    weight: npt.ArrayLike,
    entry_site: npt.ArrayLike,
    entry_pair: npt.ArrayLike,
    pair_column: npt.ArrayLike,
    pair_species: npt.ArrayLike,
    pattern_phase: npt.ArrayLike,
    rod_pattern: npt.ArrayLike,
    qz: npt.ArrayLike,
    uniform_step: float,
    ff_re: npt.ArrayLike,
    ff_im: npt.ArrayLike,
    substrate: npt.ArrayLike,
    rough: npt.ArrayLike,
    film_field: np.ndarray | None = None,
    intensity: np.ndarray | None = None,
    threads: int = 0,
) -> None:
    """Fill film_field (complex64/complex128, (n, R, NL)) and/or intensity
    (float32/float64, (n, R, NL)) in place; both outputs share one precision.
    Uses the ISA variant isa() names. Raises ValueError on any shape, dtype, index or
    output problem, or if MAMBA_CTR_ISA names a variant that cannot be used."""

def _film_fields_isa(
    isa: str,
    z: npt.ArrayLike,
    weight: npt.ArrayLike,
    entry_site: npt.ArrayLike,
    entry_pair: npt.ArrayLike,
    pair_column: npt.ArrayLike,
    pair_species: npt.ArrayLike,
    pattern_phase: npt.ArrayLike,
    rod_pattern: npt.ArrayLike,
    qz: npt.ArrayLike,
    uniform_step: float,
    ff_re: npt.ArrayLike,
    ff_im: npt.ArrayLike,
    substrate: npt.ArrayLike,
    rough: npt.ArrayLike,
    film_field: np.ndarray | None = None,
    intensity: np.ndarray | None = None,
    threads: int = 0,
) -> None:
    """Test hook: film_fields with the given ISA variant (one of isa_variants())
    instead of the one chosen at run time. Raises ValueError if it cannot be used."""

def isa() -> str:
    """The ISA variant in use: 'baseline', 'avx2' (x86-64-v3) or 'avx512' (x86-64-v4).
    The best one the CPU supports, chosen at the first call, unless the environment
    variable MAMBA_CTR_ISA forces one (ValueError if it is unknown or unsupported;
    film_fields raises the same). All variants give bit-identical results."""

def isa_variants() -> list[str]:
    """The ISA variants compiled into this build that this CPU supports, baseline first."""

def max_threads() -> int:
    """OpenMP's default thread count (1 without OpenMP)."""

def have_openmp() -> bool:
    """Whether the kernel was built with OpenMP."""
