"""The free parameters of a perovskite preset as one vector: names, bounds, vector ↔ Structures.

Vector layout (F = n_sub + n_film free layers, j = 1..F; physics.md, "Structure"):

    c_1..c_F (Å) | z_B_1..z_B_F | z_Oap_1..z_Oap_F | z_Oeq_1..z_Oeq_F | p_1..p_4 | occ_top (rough presets)

z are fractional heights within the layer; z_Oeq is shared by both equatorial O (z_Ox = z_Oy), as the
sampler draws them. p_i is the Sr fraction of the A site of mixing layer i (`preset.mixing_layers`).
Constants: layer 0 (nominal SrTiO3), the species of every site, the occupancies of a smooth film and,
for a variable-thickness preset, the zero-occupancy padding layers above the film.

Limitation: the film thickness is not a parameter. A variable-thickness preset (e.g. paper-11-13L-rough)
is fitted at a given number of film layers `n_film`; choosing n_film is left to the caller (fit each
candidate and compare the costs).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ..physics.grid import SRTIO3_A
from ..physics.model import Structures
from ..physics.perovskite import NOMINAL_Z
from ..physics.presets import PerovskitePreset

_Z_SITES = (("B", "z_B", "B"), ("O_ap", "z_Oap", "O_ap"), ("O_x", "z_Oeq", "O_eq"))  # site, parameter, label


class ParameterSpace:
    """The free parameters of `preset` at `n_film` film layers, with their bounds.

    Args:
        preset: a PerovskitePreset (e.g. `mamba_ctr.presets.get("paper-12L")`).
        n_film: film layers (LaAlO3) present; default the preset's only (or largest) thickness.
        widen: multiplies the half-widths of the c and z sampling ranges to give the bounds (1 = the
            sampling ranges exactly). p stays in [0, 1] and the top occupancy in `preset.occupancy_range`.

    Attributes:
        names: (P,) parameter names (`c_3`, `z_B_3`, `z_Oap_3`, `z_Oeq_3`, `p_2`, `occ_top`).
        lower, upper: (P,) bounds (Å for c, fractional for z, none for p and occupancy).
    """

    def __init__(self, preset: PerovskitePreset, n_film: int | None = None, widen: float = 1.0) -> None:
        if not isinstance(preset, PerovskitePreset):
            raise TypeError(f"preset must be a PerovskitePreset, got {type(preset).__name__}")
        lo, hi = preset.film_layers
        n_film = hi if n_film is None else n_film
        if isinstance(n_film, bool) or not isinstance(n_film, (int, np.integer)) or not lo <= n_film <= hi:
            raise ValueError(f"n_film must be an integer in [{lo}, {hi}] for preset {preset.name!r}, got {n_film!r}")
        if max(preset.mixing_layers) > preset.n_sub + n_film:
            raise ValueError(f"n_film = {n_film} leaves mixing layers {preset.mixing_layers} outside the film")
        if not (isinstance(widen, (int, float)) and np.isfinite(widen) and widen > 0):
            raise ValueError(f"widen must be a positive number, got {widen!r}")
        self.preset = preset
        self.n_film = int(n_film)
        self.n_free_layers = preset.n_sub + self.n_film
        self.widen = float(widen)
        self._base = self._base_layers()
        self.names = self._names()
        self.lower, self.upper = self._bounds()
        for array in (self.lower, self.upper):
            array.setflags(write=False)

    # ----------------------------------------------------------------- layout
    @property
    def size(self) -> int:
        """P: number of free parameters."""
        return len(self.names)

    def block(self, kind: str) -> slice:
        """Slice of the vector holding `kind`: "c", "z_B", "z_Oap", "z_Oeq", "p" or "occupancy"."""
        F = self.n_free_layers
        starts = {"c": 0, "z_B": F, "z_Oap": 2 * F, "z_Oeq": 3 * F}
        if kind in starts:
            return slice(starts[kind], starts[kind] + F)
        if kind == "p":
            return slice(4 * F, 4 * F + 4)
        if kind == "occupancy" and self.preset.rough_top:
            return slice(4 * F + 4, 4 * F + 5)
        raise ValueError(f"unknown parameter block {kind!r} for preset {self.preset.name!r}")

    def _names(self) -> tuple[str, ...]:
        layers = range(1, self.n_free_layers + 1)
        names = [f"{kind}_{j}" for kind in ("c", "z_B", "z_Oap", "z_Oeq") for j in layers]
        names += [f"p_{i}" for i in range(1, 5)]
        if self.preset.rough_top:
            names.append("occ_top")
        return tuple(names)

    def _base_layers(self) -> dict[str, np.ndarray]:
        """(1, J) per-layer arrays of the constants: nominal c and z, pure A sites, the film's occupancy."""
        preset = self.preset
        nominal = preset.parameters(preset.nominal())
        J, top = preset.n_layers, self.n_free_layers
        layer = np.arange(J)[None, :]
        return {
            "c": nominal["c"],  # the nominal c of every layer (also of the padding layers)
            "z_B": np.full((1, J), NOMINAL_Z["B"]),
            "z_Oap": np.full((1, J), NOMINAL_Z["O_ap"]),
            "z_Oeq": np.full((1, J), NOMINAL_Z["O_x"]),
            "sr_fraction": (layer <= preset.n_sub).astype(np.float64),
            "occupancy": (layer <= top).astype(np.float64),
        }

    def _bounds(self) -> tuple[np.ndarray, np.ndarray]:
        preset, free = self.preset, slice(1, self.n_free_layers + 1)
        c_mid = self._base["c"][0, free]
        half_c, half_z = self.widen * preset.delta_c, self.widen * preset.delta_z
        lower = [c_mid - half_c]
        upper = [c_mid + half_c]
        for _, kind, _ in _Z_SITES:
            z_mid = self._base[kind][0, free]
            lower.append(z_mid - half_z)
            upper.append(z_mid + half_z)
        lower.append(np.zeros(4))
        upper.append(np.ones(4))
        if preset.rough_top:
            lower.append(np.array([preset.occupancy_range[0]]))
            upper.append(np.array([preset.occupancy_range[1]]))
        return np.concatenate(lower), np.concatenate(upper)

    # ---------------------------------------------------------- vector checks
    def check(self, x, name: str = "parameters") -> np.ndarray:
        """`x` as a float64 (n, P) array; ValueError on a wrong length or non-finite values."""
        try:
            array = np.array(x, dtype=np.float64, ndmin=2)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{name} must be an array of numbers: {error}") from None
        if array.ndim != 2 or array.shape[1] != self.size:
            raise ValueError(f"{name} must have shape (P,) or (n, P) with P = {self.size} for preset "
                             f"{self.preset.name!r} at n_film = {self.n_film}, got {np.shape(x)}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} must be finite, got {np.count_nonzero(~np.isfinite(array))} NaN/inf values")
        return array

    def clip(self, x, margin: float = 0.0) -> np.ndarray:
        """(n, P) `x` projected into the bounds, `margin` × the range width inside them."""
        x = self.check(x)
        inset = margin * (self.upper - self.lower)
        return np.clip(x, self.lower + inset, self.upper - inset)

    def inside(self, x) -> np.ndarray:
        """(n,) True where the vector lies within the bounds."""
        x = self.check(x)
        return np.all((x >= self.lower) & (x <= self.upper), axis=1)

    # ------------------------------------------------------ vector ↔ Structures
    def layers(self, x) -> dict[str, np.ndarray]:
        """Per-layer arrays (n, J) of from_parameters (c, z_B, z_Oap, z_Ox, z_Oy, sr_fraction, occupancy)."""
        x = self.check(x)
        n, free = x.shape[0], slice(1, self.n_free_layers + 1)
        out = {key: np.repeat(value, n, axis=0) for key, value in self._base.items()}
        for kind in ("c", "z_B", "z_Oap", "z_Oeq"):
            out[kind][:, free] = x[:, self.block(kind)]
        out["sr_fraction"][:, list(self.preset.mixing_layers)] = x[:, self.block("p")]
        if self.preset.rough_top:
            out["occupancy"][:, self.n_free_layers] = x[:, self.block("occupancy")][:, 0]
        return {"c": out["c"], "z_B": out["z_B"], "z_Oap": out["z_Oap"], "z_Ox": out["z_Oeq"],
                "z_Oy": out["z_Oeq"].copy(), "sr_fraction": out["sr_fraction"], "occupancy": out["occupancy"]}

    def structures(self, x) -> Structures:
        """Structures of the (n, P) or (P,) parameter vectors."""
        return self.preset.from_parameters(**self.layers(x))

    def vector(self, structures: Structures) -> np.ndarray:
        """(n, P) parameter vectors of structures of this preset with n_film film layers."""
        params = self.preset.parameters(structures)
        if np.any(params["n_film"] != self.n_film):
            raise ValueError(f"these structures have {sorted(set(params['n_film'].astype(int)))} film layers, "
                             f"this parameter space {self.n_film}")
        if np.any(np.abs(params["z_Ox"] - params["z_Oy"]) > 1e-12):
            raise ValueError("z_Ox and z_Oy differ: this parameter space shares one z_Oeq for both")
        n, free = len(structures), slice(1, self.n_free_layers + 1)
        x = np.empty((n, self.size))
        for kind, key in (("c", "c"), ("z_B", "z_B"), ("z_Oap", "z_Oap"), ("z_Oeq", "z_Ox")):
            x[:, self.block(kind)] = params[key][:, free]
        x[:, self.block("p")] = params["sr_fraction"][:, list(self.preset.mixing_layers)]
        if self.preset.rough_top:
            x[:, self.block("occupancy")] = params["occupancy"][:, [self.n_free_layers]]
        return x

    def labels(self, x) -> dict[str, np.ndarray]:
        """preset.labels of the structures of `x`: label name → (n,)."""
        return self.preset.labels(self.structures(x))

    # ------------------------------------------------------------ start points
    def nominal(self) -> np.ndarray:
        """(P,) start vector: nominal c and z, p_i = ½ (mid-range, summing to 2), mid-range occupancy."""
        x = self.vector(self._nominal_structure())
        x[0, self.block("p")] = 0.5
        if self.preset.rough_top:
            x[0, self.block("occupancy")] = 0.5 * sum(self.preset.occupancy_range)
        return x[0]

    def _nominal_structure(self) -> Structures:
        layers = {key: value.copy() for key, value in self._base.items()}
        layers["sr_fraction"][:, list(self.preset.mixing_layers)] = 0.5
        return self.preset.from_parameters(layers["c"], layers["z_B"], layers["z_Oap"], layers["z_Oeq"],
                                           layers["z_Oeq"], layers["sr_fraction"], layers["occupancy"])

    def random(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, P) vectors drawn uniformly inside the bounds."""
        return self.lower + (self.upper - self.lower) * rng.uniform(size=(n, self.size))

    def from_labels(self, labels: Mapping[str, object]) -> np.ndarray:
        """(n, P) parameter vectors from labels (preset.labels names; each a scalar or an (n,) array).

        c_j comes from `c_j` (the top layer's from `c_top`); the absolute height of each small atom is
        walked up from the substrate, H_j = H_{j−1} + d_j, and z_j = (H_j − Z_j) / c_j with
        Z_j = Σ_{i<j} c_i. Errors of the d labels therefore add up towards the top. The result is not
        clipped to the bounds (use `clip`).
        """
        top = self.n_free_layers
        needed = [f"c_{j}" for j in range(1, top)] + ["c_top"]
        needed += [f"d_{label}_{j}" for _, _, label in _Z_SITES for j in range(1, top + 1)]
        needed += [f"p_{i}" for i in range(1, 5)] + (["occ_top"] if self.preset.rough_top else [])
        values = _label_columns(labels, needed)
        n = values[needed[0]].shape[0]
        c = np.repeat(self._base["c"], n, axis=0)
        for j in range(1, top):
            c[:, j] = values[f"c_{j}"]
        c[:, top] = values["c_top"]
        start = np.zeros_like(c)
        np.cumsum(c[:, :-1], axis=1, out=start[:, 1:])
        x = np.empty((n, self.size))
        x[:, self.block("c")] = c[:, 1: top + 1]
        for site, kind, label in _Z_SITES:
            z0 = NOMINAL_Z[site]
            height = np.full(n, SRTIO3_A * z0)  # layer 0: nominal SrTiO3 at Z_0 = 0
            z = np.empty((n, top))
            for j in range(1, top + 1):
                height = height + values[f"d_{label}_{j}"]
                z[:, j - 1] = (height - start[:, j]) / c[:, j]
            x[:, self.block(kind)] = z
        x[:, self.block("p")] = np.stack([values[f"p_{i}"] for i in range(1, 5)], axis=1)
        if self.preset.rough_top:
            x[:, self.block("occupancy")] = values["occ_top"][:, None]
        return x

    def perturbed(self, x, rng: np.random.Generator, d_rmse: float = 0.015, p_rmse: float = 0.05) -> np.ndarray:
        """(n, P) `x` with the errors of an estimate whose d and c labels have RMSE ≈ d_rmse (Å).

        Models an estimate that measures absolute atom heights (as peak positions in a density do): every
        A plane Z_j (j ≥ 2; Z_1 = c_0 is fixed) and every small atom's absolute height get independent
        N(0, (d_rmse/√2)²) errors, so their differences (the c and d labels) have RMSE ≈ d_rmse (d_rmse/√2
        in layer 1, above the fixed layer 0) and errors do not add up along the film. p and the top
        occupancy get N(0, p_rmse²). The result is clipped into the bounds.
        """
        x = self.check(x)
        n, top = x.shape[0], self.n_free_layers
        layers = self.layers(x)
        c = layers["c"][:, : top + 1]
        planes = np.concatenate([np.zeros((n, 1)), np.cumsum(c, axis=1)], axis=1)  # Z_0 .. Z_top, Z_top + c_top
        sigma = d_rmse / np.sqrt(2)
        new_planes = planes.copy()
        new_planes[:, 2:] += rng.normal(0.0, sigma, (n, top))  # Z_1 = c_0 is fixed by the nominal layer 0
        new_c = np.diff(new_planes, axis=1)
        out = x.copy()
        out[:, self.block("c")] = new_c[:, 1:]
        for _, kind, _ in _Z_SITES:
            key = "z_Ox" if kind == "z_Oeq" else kind
            height = planes[:, 1: top + 1] + c[:, 1:] * layers[key][:, 1: top + 1]
            height = height + rng.normal(0.0, sigma, height.shape)
            out[:, self.block(kind)] = (height - new_planes[:, 1: top + 1]) / new_c[:, 1:]
        out[:, self.block("p")] += rng.normal(0.0, p_rmse, (n, 4))
        if self.preset.rough_top:
            out[:, self.block("occupancy")] += rng.normal(0.0, p_rmse, (n, 1))
        return self.clip(out)

    def start_vectors(self, start, n: int) -> np.ndarray:
        """(n, P) start vectors from None (nominal), a (P,) or (n, P) array, Structures or a labels mapping."""
        if start is None:
            return np.repeat(self.nominal()[None, :], n, axis=0)
        if isinstance(start, Structures):
            x = self.vector(start)
        elif isinstance(start, Mapping):
            x = self.from_labels(start)
        else:
            x = self.check(start, "start")
        if x.shape[0] == 1 and n != 1:
            x = np.repeat(x, n, axis=0)
        if x.shape[0] != n:
            raise ValueError(f"start gives {x.shape[0]} vectors for {n} structures")
        return x

    def __repr__(self) -> str:
        return f"ParameterSpace({self.preset.name!r}, n_film={self.n_film}, P={self.size}, widen={self.widen:g})"


def _label_columns(labels: Mapping[str, object], needed: list[str]) -> dict[str, np.ndarray]:
    """The needed labels as float64 (n,) arrays of one common n; ValueError if missing or not finite."""
    if not isinstance(labels, Mapping):
        raise TypeError(f"labels must be a mapping of label name → values, got {type(labels).__name__}")
    missing = [name for name in needed if name not in labels]
    if missing:
        raise ValueError(f"labels lack {', '.join(missing[:6])}{' …' if len(missing) > 6 else ''}")
    columns = {name: np.atleast_1d(np.asarray(labels[name], dtype=np.float64)) for name in needed}
    sizes = {column.shape for column in columns.values()}
    n = max(column.shape[0] for column in columns.values())
    if any(column.ndim != 1 or column.shape[0] not in (1, n) for column in columns.values()):
        raise ValueError(f"each label must be a scalar or an (n,) array of one common n, got shapes {sorted(sizes)}")
    for name, column in columns.items():
        if not np.all(np.isfinite(column)):
            raise ValueError(f"label {name} must be finite, got NaN/inf")
    return {name: np.broadcast_to(column, (n,)) for name, column in columns.items()}


def parameter_space(preset: PerovskitePreset | str, n_film: int | None = None, widen: float = 1.0) -> ParameterSpace:
    """ParameterSpace of a preset object or name (see ParameterSpace)."""
    if isinstance(preset, str):
        from ..physics.presets import get

        preset = get(preset)
    return ParameterSpace(preset, n_film, widen)
