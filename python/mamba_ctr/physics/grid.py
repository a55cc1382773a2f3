"""Reciprocal-space grids: which rods (h, k) and which L values are simulated."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SRTIO3_A = 3.905
"""Cubic lattice constant of SrTiO3, Å (in-plane a = b and the reference c of the paper grid)."""


@dataclass(frozen=True, eq=False)
class Grid:
    """Integer rods (h, k) sampled at a shared list of L values.

    Attributes:
        h, k: (R,) int rod indices in the basis of the in-plane cell (a, b).
        L: (NL,) float64 out-of-plane index in units of 2π / c_ref.
        bragg: (NL,) bool, the points where the substrate has Bragg peaks.
        a, b: in-plane cell edges, Å (a supercell's edges when rods are in its basis).
        c_ref: out-of-plane reference spacing, Å, so q_z = 2π L / c_ref.
    """

    h: np.ndarray
    k: np.ndarray
    L: np.ndarray
    bragg: np.ndarray = field(default=None)  # type: ignore[assignment,arg-type]
    a: float = SRTIO3_A
    b: float = SRTIO3_A
    c_ref: float = SRTIO3_A

    def __post_init__(self) -> None:
        h = _as_int_vector("h", self.h)
        k = _as_int_vector("k", self.k)
        if h.shape != k.shape:
            raise ValueError(f"h and k must have the same length, got {h.size} and {k.size}")
        L = np.array(self.L, dtype=np.float64).reshape(-1)
        if L.size == 0 or not np.all(np.isfinite(L)):
            raise ValueError(f"L must be a non-empty list of finite numbers, got {self.L!r:.80}")
        for name in ("a", "b", "c_ref"):
            value = float(getattr(self, name))
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive length in Å, got {value}")
        bragg = default_bragg_mask(L) if self.bragg is None else np.asarray(self.bragg, dtype=bool)
        if bragg.shape != L.shape:
            raise ValueError(f"bragg must have shape (NL,) = {L.shape}, got {bragg.shape}")
        for name, array in (("h", h), ("k", k), ("L", L), ("bragg", bragg)):
            array.setflags(write=False)
            object.__setattr__(self, name, array)

    @property
    def n_rods(self) -> int:
        return int(self.h.size)

    @property
    def n_L(self) -> int:
        return int(self.L.size)

    @property
    def shape(self) -> tuple[int, int]:
        """(R, NL): the trailing shape of every per-structure array."""
        return (self.n_rods, self.n_L)

    @property
    def qx(self) -> np.ndarray:
        """(R,) Å⁻¹."""
        return 2 * np.pi * self.h / self.a

    @property
    def qy(self) -> np.ndarray:
        """(R,) Å⁻¹."""
        return 2 * np.pi * self.k / self.b

    @property
    def qz(self) -> np.ndarray:
        """(NL,) Å⁻¹."""
        return 2 * np.pi * self.L / self.c_ref

    @property
    def q(self) -> np.ndarray:
        """(R, NL) |q|, Å⁻¹."""
        q_par2 = self.qx**2 + self.qy**2
        return np.sqrt(q_par2[:, None] + self.qz[None, :] ** 2)

    @property
    def uniform_L_step(self) -> float:
        """ΔL if L is an arithmetic progression (to 1e-12 relative), else 0."""
        if self.L.size < 2:
            return 0.0
        steps = np.diff(self.L)
        step = (self.L[-1] - self.L[0]) / (self.L.size - 1)
        if step > 0 and np.all(np.abs(steps - step) <= 1e-12 * max(abs(self.L).max(), 1.0)):
            return float(step)
        return 0.0

    @property
    def L_run_step(self) -> float:
        """ΔL of the evenly spaced runs of L (the kernels' recurrence runs inside them, docs/kernel.md):
        `uniform_L_step` when L is one arithmetic progression, else the median spacing of consecutive
        points (a grid with gaps), 0 if that is not positive."""
        step = self.uniform_L_step
        if step > 0 or self.L.size < 2:
            return step
        median = float(np.median(np.diff(self.L)))
        return median if median > 0 else 0.0

    def same_as(self, other: Grid) -> bool:
        """True if both grids sample the same points (exactly)."""
        return (
            np.array_equal(self.h, other.h)
            and np.array_equal(self.k, other.k)
            and np.array_equal(self.L, other.L)
            and np.array_equal(self.bragg, other.bragg)
            and (self.a, self.b, self.c_ref) == (other.a, other.b, other.c_ref)
        )

    def to_dict(self) -> dict:
        return {
            "h": self.h.tolist(), "k": self.k.tolist(), "L": self.L.tolist(),
            "bragg": self.bragg.tolist(), "a": self.a, "b": self.b, "c_ref": self.c_ref,
        }

    def __repr__(self) -> str:
        return (f"Grid({self.n_rods} rods, {self.n_L} L points in [{self.L[0]:g}, {self.L[-1]:g}], "
                f"a={self.a} Å, b={self.b} Å, c_ref={self.c_ref} Å)")


def _as_int_vector(name: str, values) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of integers, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer):
        if not (np.all(np.isfinite(array)) and np.all(array == np.round(array))):
            raise ValueError(f"{name} must hold integers (rods are integer (h, k)), got {array[:8]}")
    return array.astype(np.int64)


def default_bragg_mask(L: np.ndarray) -> np.ndarray:
    """Points at integer L (within 1e-9), where the substrate's Bragg peaks lie."""
    return np.abs(L - np.round(L)) < 1e-9


def rod_grid(
    max_h: int = 3, max_k: int = 3, points_per_L: int = 40, max_L: float = 6.0,
    a: float = SRTIO3_A, b: float = SRTIO3_A, c_ref: float = SRTIO3_A,
) -> Grid:
    """Rods 0 ≤ h ≤ max_h, 0 ≤ k ≤ max_k (rod = (max_h+1)·k + h) at L = i/points_per_L, i = 1..

    The Bragg mask is built from the index i (every points_per_L-th point), not a float test.
    """
    if points_per_L < 1 or max_h < 0 or max_k < 0 or max_L <= 0:
        raise ValueError(
            f"need max_h, max_k ≥ 0, points_per_L ≥ 1, max_L > 0; got {max_h}, {max_k}, {points_per_L}, {max_L}"
        )
    n_points = round(max_L * points_per_L)
    index = np.arange(1, n_points + 1)
    hh, kk = np.meshgrid(np.arange(max_h + 1), np.arange(max_k + 1))  # k slow, h fast
    return Grid(
        h=hh.ravel(), k=kk.ravel(), L=index / points_per_L, bragg=(index % points_per_L) == 0,
        a=a, b=b, c_ref=c_ref,
    )


def paper_grid() -> Grid:
    """The MAMBA paper grid: h, k ∈ {0..3} (16 rods, rod = 4k + h), L = i/40, i = 1..240."""
    return rod_grid(3, 3, 40, 6.0)
