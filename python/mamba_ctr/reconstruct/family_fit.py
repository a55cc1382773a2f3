"""Labels of a structure family from a film field: the family's parameters fitted to U (issue 16 item 1).

For the paper presets the labels are read off the density's peaks (`reconstruct.extract`). A family around a
structure file has whatever parameters its FAMILY.toml names (an in-plane supercell, mixed sites, groups of
displaced atoms), so its labels are extracted the general way: bounded least squares of the family's free
parameters against the predicted field U, [Re, Im] of U_calc − U on every point but the Bragg points, started
from the structure file's values. The field carries the phase the intensities lost, so this fit is far better
posed than a fit to the intensities; on the true field it recovers the labels to round-off (tested).

The same engine as every other fit (`refine.SimulatedLeastSquares`: one batched simulate call per Jacobian).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ..physics.family import StructureFamily
from .refine import FitBatch, SimulatedLeastSquares, SolverOptions, field_residual, fit_once, progress_bar

__all__ = ["FamilySpace", "family_labels", "fit_family_fields", "labels_of_fields"]


class FamilySpace:
    """A family's free parameters in the form `SimulatedLeastSquares` takes (the ParameterSpace interface)."""

    def __init__(self, family: StructureFamily) -> None:
        self.preset = family  # SimulatedLeastSquares reads preset.grid
        self.family = family
        self.names = family.params.names
        self.lower, self.upper = family.params.lower, family.params.upper

    @property
    def size(self) -> int:
        return len(self.names)

    def structures(self, X: np.ndarray):
        return self.family.structures(X)

    def clip(self, x, margin: float = 0.0) -> np.ndarray:
        width = self.upper - self.lower
        return np.clip(np.atleast_2d(np.asarray(x, dtype=np.float64)), self.lower + margin * width,
                       self.upper - margin * width)

    def labels(self, x) -> dict[str, np.ndarray]:
        X = np.atleast_2d(np.asarray(x, dtype=np.float64))
        return {name: X[:, q] for q, name in enumerate(self.names)}

    def start_vectors(self, start, n: int) -> np.ndarray:
        """(n, P) starts: None = the structure file's values; a (P,) or (n, P) vector; a labels mapping."""
        if start is None:
            return np.repeat(self.family.nominal_vector()[None], n, axis=0)
        if isinstance(start, Mapping):
            start = np.stack([np.broadcast_to(np.asarray(start[name], dtype=np.float64), (n,))
                              for name in self.names], axis=1)
        return np.broadcast_to(self.clip(start), (n, self.size)).copy()


def fit_family_fields(U: np.ndarray, family: StructureFamily, *, start=None, options: SolverOptions | None = None,
                      backend: str | None = "auto", threads: int = 1, keep_jacobian: bool = False,
                      progress: bool | None = None) -> FitBatch:
    """The family's parameters fitted to n film fields U (n, R, NL) complex (electrons) on `family.grid`.

    start: see `FamilySpace.start_vectors`. Returns a FitBatch (`.labels` name → (n,)).
    """
    U = np.asarray(U)
    if U.ndim == 2:
        U = U[None]
    if U.ndim != 3 or U.shape[1:] != family.grid.shape:
        raise ValueError(f"U must be (n, {family.grid.shape[0]}, {family.grid.shape[1]}) on the family's grid, "
                         f"got {U.shape}")
    space = FamilySpace(family)
    weights = np.broadcast_to(~family.grid.bragg, family.grid.shape).astype(np.float64)
    starts = space.start_vectors(start, U.shape[0])
    results = []
    for i in progress_bar(range(U.shape[0]), progress, "fit U"):
        problem = SimulatedLeastSquares(space, field_residual(U[i], weights), quantity="field",  # type: ignore[arg-type]
                                        backend=backend, threads=threads, options=options)
        results.append(fit_once(problem, starts[i], keep_jacobian=keep_jacobian))
    return FitBatch(results)


def labels_of_fields(U: np.ndarray, preset: Any) -> dict[str, np.ndarray]:
    """Labels of film fields U (n, R, NL) of any family: the density's peaks for a paper preset
    (`reconstruct.extract_labels`), the family's parameters fitted to U for a family around a structure file."""
    if isinstance(preset, StructureFamily):
        return family_labels(U, preset)
    from .extract import extract_labels

    return extract_labels(U, preset.grid, preset)


def family_labels(U: np.ndarray, family: StructureFamily, **kwargs) -> dict[str, np.ndarray]:
    """Label name → (n,) of the fields U (n, R, NL): `fit_family_fields(...).labels` in label order."""
    fitted = fit_family_fields(U, family, **kwargs).labels
    return {spec.name: np.asarray(fitted[spec.name], dtype=np.float64) for spec in family.label_specs()}
