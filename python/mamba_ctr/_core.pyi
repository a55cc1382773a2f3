"""Typing stub of the compiled core (cpp/bindings/module.cpp); contract in docs/kernel.md."""


import numpy as np
import numpy.typing as npt

class Plan:
    """The kernel's plan of one (model, grid): the tables of `_kernel_args.PlanTables`, checked and laid
    out once. Raises ValueError on any shape, index or value problem, or if `isa` (or MAMBA_CTR_ISA when
    `isa` is "") names a variant that cannot be used."""

    def __init__(
        self,
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
        n_sites: int,
        *,
        isa: str = "",
    ) -> None: ...
    def run(
        self,
        z: npt.ArrayLike,
        weight: npt.ArrayLike,
        rough: npt.ArrayLike | None = None,
        film_field: np.ndarray | None = None,
        intensity: np.ndarray | None = None,
        threads: int = 0,
        bragg: npt.ArrayLike | None = None,
        moments: np.ndarray | None = None,
    ) -> None:
        """Fill film_field (complex64/complex128, (n, R, NL)) and/or intensity (float32/float64,
        (n, R, NL)) of the structures z (n, S), weight (n, E), rough (n, NL) / None in place; both
        outputs share one precision. With both outputs, the (NL,) Bragg mask and moments (float64
        (ceil(n / MOMENT_GROUP), 6, R, NL)): the per-group means and M2 of X = ln I, Re U, Im U
        (docs/kernel.md). The GIL is released. Raises ValueError on any shape, dtype, value or
        output problem."""
    @property
    def isa(self) -> str:
        """The ISA variant this plan runs."""
    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(S, E, R, NL): sites and entries per structure, rods, points per rod."""

MOMENT_GROUP: int
"""Structures per group of Plan.run's moments (512)."""

def isa() -> str:
    """The ISA variant in use: 'baseline', 'avx2' (x86-64-v3) or 'avx512' (x86-64-v4).
    The best one the CPU supports, chosen at the first call, unless the environment
    variable MAMBA_CTR_ISA forces one (ValueError if it is unknown or unsupported;
    Plan raises the same). All variants give bit-identical results."""

def isa_variants() -> list[str]:
    """The ISA variants compiled into this build that this CPU supports, baseline first."""

def max_threads() -> int:
    """OpenMP's default thread count (1 without OpenMP)."""

def have_openmp() -> bool:
    """Whether the kernel was built with OpenMP."""
