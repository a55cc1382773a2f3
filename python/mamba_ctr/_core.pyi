"""Typing stub of the compiled core (cpp/bindings/module.cpp); contract in docs/kernel.md."""

from typing import Optional

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
    film_field: Optional[np.ndarray] = None,
    intensity: Optional[np.ndarray] = None,
    threads: int = 0,
) -> None:
    """Fill film_field (complex64/complex128, (n, R, NL)) and/or intensity
    (float32/float64, (n, R, NL)) in place; both outputs share one precision.
    Raises ValueError on any shape, dtype, index or output problem."""

def max_threads() -> int:
    """OpenMP's default thread count (1 without OpenMP)."""

def have_openmp() -> bool:
    """Whether the kernel was built with OpenMP."""
