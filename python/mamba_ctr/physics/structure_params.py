"""What a structure fit may change: the `[[param]]` entries of a PARAMS TOML file, resolved against a structure.

Format (docs/fit.md has a full example):

    [fit]
    scale = "global"            # scale factors solved in closed form: "global", "rods" or "none"

    [[param]]
    name = "z_B_5"              # any identifier; ties and reports use it
    target = "z"                # z | c | occupancy | fraction | mix | u_iso | b_iso | beta | scale
    layer = 5                   # z, c, occupancy, fraction, mix (negative counts from the top: -1 = top layer)
    site = "B"                  # z, fraction, mix: a site name or a list of them (default: every site holding
    species = "Mn"              #   `species`); fraction, mix, u_iso, b_iso: a scatterer name or element
    z_window = [-0.25, 0.25]    # z, fraction, mix: only sites whose fractional z in the layer lies in it
    partner = "Ti"              # mix only: the species that gives up what `species` gains (their sum is kept)
    rod = [1, 0]                # scale only: (H, K) of one rod in the data's basis (default: all rods)
    bounds = [0.45, 0.55]       # required for a free parameter; lower < upper
    value = 0.5                 # optional start (default: from the structure)
    tie = "z_B_4"               # instead of value and bounds: "other", "a*other", "other + b", "a*other - b"

A parameter acts on a group of slots of the structure arrays (several sites, or the A sites of a supercell):
its value is the group's mean and every member moves by the same amount, so a pattern of displacements
within the group is kept. Values are fractional for z, Å for c, Å² for u_iso and b_iso (B = 8π² U_iso).

(Over 450 lines because one file format is read, resolved and checked here, every bad entry with its own
one-line message; split, the format would live in two places.)
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .form_factors import Scatterer
from .model import StructureModel, Structures

TARGETS = ("z", "c", "occupancy", "fraction", "mix", "u_iso", "b_iso", "beta", "scale")
SCALE_MODES = ("global", "rods", "none")
_KEYS = {"name", "target", "layer", "site", "species", "partner", "z_window", "rod", "bounds", "value", "tie"}
_NEEDS = {  # target → (selector keys required, selector keys allowed)
    "z": (("layer",), ("layer", "site", "species", "z_window")), "c": (("layer",), ("layer",)),
    "occupancy": (("layer",), ("layer",)),
    "fraction": (("layer", "species"), ("layer", "site", "species", "z_window")),
    "mix": (("layer", "species", "partner"), ("layer", "site", "species", "partner", "z_window")),
    "u_iso": (("species",), ("species",)), "b_iso": (("species",), ("species",)), "beta": ((), ()),
    "scale": ((), ("rod",)),
}
_NUMBER = r"\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?"
_TIE = re.compile(rf"^\s*(?:(?P<a>[+-]?(?:{_NUMBER}))\s*\*\s*|(?P<neg>-)\s*)?(?P<name>[A-Za-z_]\w*)"
                  rf"\s*(?:(?P<sign>[+-])\s*(?P<b>{_NUMBER}))?\s*$")
_B_PER_U = 8 * math.pi**2
_LIMITS = {"c": (0.0, math.inf, "c > 0 Å"), "occupancy": (0.0, 1.0, "0 ≤ occupancy ≤ 1"),
           "fraction": (0.0, 1.0, "0 ≤ fraction ≤ 1"), "beta": (0.0, 1.0, "0 ≤ β < 1"),
           "u_iso": (0.0, math.inf, "U_iso ≥ 0 Å²"), "scale": (0.0, math.inf, "scale > 0"),
           "z": (-math.inf, math.inf, "")}


@dataclass(frozen=True)
class Tie:
    """value = factor · value(other) + offset."""

    other: str
    factor: float = 1.0
    offset: float = 0.0


@dataclass(frozen=True)
class Slot:
    """One number the parameter moves: array ("c", "z", "fraction", "occupancy", "beta", "u_iso", "scale"),
    flat index into it (per structure), and the factor on the parameter's change."""

    array: str
    index: int
    factor: float = 1.0


@dataclass(frozen=True)
class Parameter:
    """One resolved `[[param]]` entry.

    Attributes:
        name, target: as given.
        slots: what it moves.
        start: the group's mean in the structure (NaN for scale: solved in closed form at the start).
        value: the start value of the fit (given or `start`); NaN for a scale without a value.
        lower, upper: bounds (NaN for a tied parameter).
        tie: None for a free parameter.
        rod: (H, K) of a per-rod scale, else None.
        where: a short description of the group ("layer 5 site B").
    """

    name: str
    target: str
    slots: tuple[Slot, ...]
    start: float
    value: float
    lower: float
    upper: float
    tie: Tie | None = None
    rod: tuple[float, float] | None = None
    where: str = ""


@dataclass(frozen=True)
class StructureArrays:
    """The per-structure arrays a fit changes, flattened (one structure; `values` maps array → 1-D copy)."""

    values: Mapping[str, np.ndarray]
    scatterers: tuple[str, ...]

    @classmethod
    def of(cls, structure: Structures) -> StructureArrays:
        names = tuple(sorted(structure.model.scatterers))
        return cls({"c": structure.c[0].ravel().copy(), "z": structure.z[0].ravel().copy(),
                    "fraction": structure.fraction[0].ravel().copy(), "occupancy": structure.occupancy[0].copy(),
                    "beta": structure.beta[:1].copy(),
                    "u_iso": np.array([structure.model.scatterers[n].u_iso for n in names])}, names)


class FitParameters:
    """The parameters of a PARAMS file resolved against one structure: free vector ↔ structures.

    Args:
        spec: the parsed TOML (a dict with `[[param]]` and an optional `[fit]` table).
        structure: the start structure (one Structures of the model the fit uses).
        rods: (H, K) of the measured rods (for per-rod scale parameters).
        source: file name for messages.

    Attributes:
        parameters: every resolved parameter (free and tied), in file order.
        names: (P,) names of the free parameters (the fit's vector), lower, upper (P,) their bounds.
        scale_mode: the closed-form scale ("global", "rods" or "none").
    """

    def __init__(self, spec: Mapping, structure: Structures, rods: Sequence[tuple[float, float]] = (),
                 source: str = "PARAMS") -> None:
        if not isinstance(structure, Structures) or len(structure) != 1:
            raise TypeError("structure must be one Structures (n = 1)")
        self.source, self.structure, self.model = source, structure, structure.model
        self.base = StructureArrays.of(structure)
        entries, self.scale_mode = _read_spec(spec, source)
        self.rods = [(float(h), float(k)) for h, k in rods]
        self.parameters = tuple(self._resolve(entry) for entry in entries)
        self._check_names_and_ties()
        free = [p for p in self.parameters if p.tie is None]
        self.names = tuple(p.name for p in free)
        self.lower = np.array([p.lower for p in free])
        self.upper = np.array([p.upper for p in free])
        if not free:
            raise InputError(f"{source}: no free parameter (every [[param]] is tied)")
        if any(p.target == "scale" for p in self.parameters) and self.scale_mode != "none":
            raise InputError(f"{source}: scale parameters are fitted, so [fit] scale must be \"none\" "
                             f"(the closed-form scale), got {self.scale_mode!r}")
        self._column = {name: i for i, name in enumerate(self.names)}
        self._check_physical_limits()

    # ------------------------------------------------------------- vectors
    @property
    def size(self) -> int:
        return len(self.names)

    @property
    def x0(self) -> np.ndarray:
        """(P,) start vector (NaN for a scale without a value: the engine fills it)."""
        return np.array([p.value for p in self.parameters if p.tie is None])

    def full(self, X) -> np.ndarray:
        """(k, Q) values of every parameter (free and tied, file order) from (k, P) free vectors."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float64))
        out = np.empty((X.shape[0], len(self.parameters)))
        for q, p in enumerate(self.parameters):
            if p.tie is None:
                out[:, q] = X[:, self._column[p.name]]
            else:
                out[:, q] = p.tie.factor * X[:, self._column[p.tie.other]] + p.tie.offset
        return out

    def clip(self, x) -> np.ndarray:
        """(1, P) or (n, P) `x` moved into the bounds."""
        return np.clip(np.atleast_2d(np.asarray(x, dtype=np.float64)), self.lower, self.upper)

    def labels(self, x) -> dict[str, np.ndarray]:
        """name → (n,) value of every parameter (free and tied) of the vectors x."""
        values = self.full(x)
        return {p.name: values[:, q] for q, p in enumerate(self.parameters)}

    def arrays(self, X) -> dict[str, np.ndarray]:
        """(k, size) flat arrays of the structures of (k, P) vectors: c, z, fraction, occupancy, beta, u_iso, scale.

        "scale" has one column per measured rod (ones where no scale parameter acts).
        """
        values = self.full(X)
        k = values.shape[0]
        out = {name: np.repeat(array[None], k, axis=0) for name, array in self.base.values.items()}
        out["scale"] = np.ones((k, max(len(self.rods), 1)))
        for q, p in enumerate(self.parameters):
            change = values[:, q] - (p.start if p.target != "scale" else 0.0)
            for slot in p.slots:
                if p.target == "scale":
                    out["scale"][:, slot.index] = values[:, q]
                else:
                    out[slot.array][:, slot.index] += slot.factor * change
        return out

    def structures(self, arrays: Mapping[str, np.ndarray], model: StructureModel | None = None) -> Structures:
        """Structures of `arrays` (from `arrays`, all rows) with `model` (default: the start's)."""
        k = arrays["c"].shape[0]
        values = {"c": arrays["c"], "z": arrays["z"].reshape(k, *self.structure.z.shape[1:]),
                  "fraction": arrays["fraction"].reshape(k, *self.structure.fraction.shape[1:]),
                  "occupancy": arrays["occupancy"], "beta": arrays["beta"][:, 0]}
        # Every vector within the bounds gives a valid structure (_check_physical_limits proved it for the
        # whole box), so the batch skips Structures' validation, as Structures.__getitem__ does: it cost
        # a sixth of a fit's time.
        batch = object.__new__(Structures)
        batch.model = model or self.model
        for name, value in values.items():
            setattr(batch, name, np.ascontiguousarray(value, dtype=np.float64))
        return batch

    def model_with(self, u_iso: np.ndarray) -> StructureModel:
        """The start's model with the scatterers' U_iso replaced by `u_iso` (in `base.scatterers` order)."""
        scatterers = dict(self.model.scatterers)
        for name, u in zip(self.base.scatterers, u_iso, strict=True):
            if u != scatterers[name].u_iso:
                scatterers[name] = dataclasses.replace(scatterers[name], u_iso=float(u))
        return dataclasses.replace(self.model, scatterers=scatterers)

    @property
    def varies_debye_waller(self) -> bool:
        return any(p.target in ("u_iso", "b_iso") for p in self.parameters)

    # ----------------------------------------------------------- resolving
    def _resolve(self, entry: dict) -> Parameter:
        name, target = entry["name"], entry["target"]
        where = f"{self.source}: parameter {name!r}"
        slots, description = self._slots(entry, where)
        base = self.base.values
        if target == "scale":
            start = math.nan
        else:
            members = [s for s in slots if s.factor > 0]
            start = float(np.mean([base[s.array][s.index] for s in members]))
            if target == "b_iso":
                start *= _B_PER_U
        tie = entry.get("tie")
        if tie is not None:
            return Parameter(name, target, slots, start, math.nan, math.nan, math.nan, tie, entry.get("rod"),
                             description)
        lower, upper = entry["bounds"]
        value = float(entry["value"]) if "value" in entry else start
        if not math.isnan(value) and not lower <= value <= upper:
            raise InputError(f"{where}: start value {value:g} lies outside its bounds [{lower:g}, {upper:g}]")
        return Parameter(name, target, slots, start, value, lower, upper, None, entry.get("rod"), description)

    def _slots(self, entry: dict, where: str) -> tuple[tuple[Slot, ...], str]:
        target, model = entry["target"], self.model
        if target == "beta":
            return (Slot("beta", 0),), "β"
        if target == "scale":
            rod = entry.get("rod")
            if rod is None:
                return tuple(Slot("scale", r) for r in range(max(len(self.rods), 1))), "all rods"
            hits = [r for r, hk in enumerate(self.rods) if np.allclose(hk, rod, atol=1e-9)]
            if not hits:
                raise InputError(f"{where}: no measured rod ({rod[0]:g}, {rod[1]:g}); rods are "
                                 f"{', '.join(f'({h:g}, {k:g})' for h, k in self.rods)}")
            return (Slot("scale", hits[0]),), f"rod ({rod[0]:g}, {rod[1]:g})"
        if target in ("u_iso", "b_iso"):
            names = [n for n in self.base.scatterers if _matches(entry["species"], n, model)]
            if not names:
                raise InputError(f"{where}: unknown species {entry['species']!r}; known are "
                                 f"{', '.join(_species_choices(model))}")
            factor = 1.0 / _B_PER_U if target == "b_iso" else 1.0
            return (tuple(Slot("u_iso", self.base.scatterers.index(n), factor) for n in names),
                    f"scatterers {', '.join(names)}")
        layer = self._layer(entry["layer"], where)
        if target in ("c", "occupancy"):
            return (Slot(target, layer),), f"layer {layer}"
        sites = self._sites(entry, layer, where)
        S, M = model.n_sites, model.max_species
        description = f"layer {layer} site {', '.join(model.sites[s].name for s in sites)}"
        if target == "z":
            return tuple(Slot("z", layer * S + s) for s in sites), description
        slots = [Slot("fraction", (layer * S + s) * M + m) for s in sites
                 for m in self._species_slots(entry["species"], layer, s, where)]
        if target == "mix":
            slots += [Slot("fraction", (layer * S + s) * M + m, -1.0) for s in sites
                      for m in self._species_slots(entry["partner"], layer, s, where)]
        return tuple(slots), description

    def _layer(self, layer: int, where: str) -> int:
        J = self.model.n_layers
        if not -J <= layer < J:
            raise InputError(f"{where}: layer {layer} does not exist; layers are 0..{J - 1} (or -1..-{J} from "
                             "the top)")
        return layer % J

    def _sites(self, entry: dict, layer: int, where: str) -> list[int]:
        model = self.model
        names = [s.name for s in model.sites]
        given = entry.get("site")
        if entry["target"] == "z" and given is None and "species" not in entry and "z_window" not in entry:
            raise InputError(f"{where}: a z parameter needs site, species or z_window; sites are {', '.join(names)}")
        if given is not None:
            unknown = [s for s in given if s not in names]
            if unknown:
                raise InputError(f"{where}: unknown site {unknown[0]!r}; sites are {', '.join(names)}")
            sites = [names.index(s) for s in given]
            empty = [model.sites[s].name for s in sites if not model.species[layer][s]]
            if empty:
                raise InputError(f"{where}: site {empty[0]!r} holds no atom in layer {layer}")
        else:
            sites = [s for s in range(model.n_sites) if model.species[layer][s]]
        species = entry.get("species")
        if species is not None:
            sites = [s for s in sites if any(_matches(species, n, model) for n in model.species[layer][s])]
            if not sites:
                held = sorted({n for site in model.species[layer] for n in site})
                raise InputError(f"{where}: no site of layer {layer} holds species {species!r}"
                                 f"{' among ' + ', '.join(given) if given else ''}; layer {layer} holds "
                                 f"{', '.join(held)}")
        window = entry.get("z_window")
        if window is not None:
            z = self.structure.z[0, layer]
            sites = [s for s in sites if window[0] <= z[s] <= window[1] and model.species[layer][s]]
            if not sites:
                raise InputError(f"{where}: no site of layer {layer} with the given site/species has its z in "
                                 f"z_window {list(window)}")
        return sites

    def _species_slots(self, species: str, layer: int, site: int, where: str) -> list[int]:
        held = self.model.species[layer][site]
        hits = [m for m, n in enumerate(held) if _matches(species, n, self.model)]
        if not hits:
            raise InputError(f"{where}: site {self.model.sites[site].name} of layer {layer} does not hold species "
                             f"{species!r}; it holds {', '.join(held)}")
        return hits

    # -------------------------------------------------------------- checks
    def _check_names_and_ties(self) -> None:
        names = [p.name for p in self.parameters]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise InputError(f"{self.source}: parameter name {repeated[0]!r} is used twice")
        by_name = {p.name: p for p in self.parameters}
        for p in self.parameters:
            if p.tie is None:
                continue
            other = by_name.get(p.tie.other)
            if other is None:
                raise InputError(f"{self.source}: parameter {p.name!r} is tied to unknown parameter "
                                 f"{p.tie.other!r}; parameters are {', '.join(names)}")
            if other.tie is not None:
                raise InputError(f"{self.source}: parameter {p.name!r} is tied to {other.name!r}, which is tied "
                                 "itself; tie both to a free parameter")
            if (p.target == "scale") != (other.target == "scale"):
                raise InputError(f"{self.source}: parameter {p.name!r} ({p.target}) cannot be tied to "
                                 f"{other.name!r} ({other.target})")
        seen: dict[tuple[str, int], str] = {}
        for p in self.parameters:
            for slot in p.slots:
                key = (slot.array, slot.index)
                if key in seen and seen[key] != p.name:
                    raise InputError(f"{self.source}: parameters {seen[key]!r} and {p.name!r} both move "
                                     f"{p.target} of {p.where}; tie one to the other instead")
                seen[key] = p.name

    def _check_physical_limits(self) -> None:
        """Every slot stays physical over the whole box of bounds (interval arithmetic, ties included)."""
        low = {name: array.copy() for name, array in self.base.values.items()}
        high = {name: array.copy() for name, array in self.base.values.items()}
        J, S, M = self.structure.fraction.shape[1:]
        site_low = self.base.values["fraction"].reshape(J * S, M).sum(axis=1)
        site_high = site_low.copy()
        for p in self.parameters:
            lo, hi = self._range(p)
            if p.target == "scale":
                if lo <= 0:
                    raise InputError(f"{self.source}: parameter {p.name!r}: a scale must stay > 0, bounds give "
                                     f"{lo:g}")
                continue
            per_site: dict[int, float] = {}
            for slot in p.slots:
                a, b = slot.factor * (lo - p.start), slot.factor * (hi - p.start)
                low[slot.array][slot.index] += min(a, b)
                high[slot.array][slot.index] += max(a, b)
                if slot.array == "fraction":
                    per_site[slot.index // M] = per_site.get(slot.index // M, 0.0) + slot.factor
            for site, factor in per_site.items():  # a mix moves two species and keeps their sum
                a, b = factor * (lo - p.start), factor * (hi - p.start)
                site_low[site] += min(a, b)
                site_high[site] += max(a, b)
        for p in self.parameters:
            for slot in p.slots:
                if p.target == "scale":
                    continue
                floor, ceiling, rule = _LIMITS[slot.array]
                lo, hi = low[slot.array][slot.index], high[slot.array][slot.index]
                if lo < floor or (slot.array == "c" and lo <= floor) or hi > ceiling or (
                        slot.array == "beta" and hi >= ceiling):
                    raise InputError(f"{self.source}: parameter {p.name!r} can move {slot.array} of {p.where} to "
                                     f"[{lo:g}, {hi:g}] within its bounds; it must keep {rule}")
        if np.any(site_high > 1 + 1e-9):
            j, s = divmod(int(np.argmax(site_high)), S)
            raise InputError(f"{self.source}: within the bounds the species fractions of site "
                             f"{self.model.sites[s].name} in layer {j} can sum to {site_high.max():.3g} > 1")

    def _range(self, p: Parameter) -> tuple[float, float]:
        """The values `p` can take: its bounds, or its tie applied to the bounds of the parameter it follows."""
        if p.tie is None:
            return p.lower, p.upper
        other = next(q for q in self.parameters if q.name == p.tie.other)
        a, b = p.tie.factor * other.lower + p.tie.offset, p.tie.factor * other.upper + p.tie.offset
        return min(a, b), max(a, b)


# ------------------------------------------------------------------ reading
def _read_spec(spec: Mapping, source: str) -> tuple[list[dict], str]:
    if not isinstance(spec, Mapping):
        raise InputError(f"{source}: expected a TOML table with [[param]] entries")
    unknown = set(spec) - {"param", "fit"}
    if unknown:
        raise InputError(f"{source}: unknown top-level key {sorted(unknown)[0]!r}; allowed are [fit] and [[param]]")
    fit = spec.get("fit", {})
    if not isinstance(fit, Mapping) or set(fit) - {"scale"}:
        raise InputError(f"{source}: [fit] takes only scale = \"global\" | \"rods\" | \"none\", got {dict(fit)}")
    scale = fit.get("scale", "global")
    if scale not in SCALE_MODES:
        raise InputError(f"{source}: [fit] scale must be one of {', '.join(SCALE_MODES)}, got {scale!r}")
    entries = spec.get("param")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, Mapping) for e in entries):
        raise InputError(f"{source}: expected at least one [[param]] table")
    return [_read_entry(dict(e), i, source) for i, e in enumerate(entries)], scale


def _read_entry(entry: dict, index: int, source: str) -> dict:
    where = f"{source}: [[param]] {entry.get('name', f'#{index + 1}')!r}"
    unknown = set(entry) - _KEYS
    if unknown:
        raise InputError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed are {', '.join(sorted(_KEYS))}")
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_]\w*", name):
        raise InputError(f"{where}: name must be an identifier (letters, digits, _), got {name!r}")
    target = entry.get("target")
    if target not in TARGETS:
        raise InputError(f"{where}: target must be one of {', '.join(TARGETS)}, got {target!r}")
    required, allowed = _NEEDS[target]
    for key in required:
        if key not in entry:
            raise InputError(f"{where}: target {target!r} needs {key!r}")
    extra = {"layer", "site", "species", "partner", "z_window", "rod"} & set(entry) - set(allowed)
    if extra:
        raise InputError(f"{where}: target {target!r} takes no {sorted(extra)[0]!r} (it takes "
                         f"{', '.join(allowed) or 'no selector'})")
    out: dict = {"name": name, "target": target}
    if "layer" in entry:
        if isinstance(entry["layer"], bool) or not isinstance(entry["layer"], int):
            raise InputError(f"{where}: layer must be an integer, got {entry['layer']!r}")
        out["layer"] = entry["layer"]
    if "site" in entry:
        site = entry["site"]
        sites = [site] if isinstance(site, str) else site
        if not isinstance(sites, list) or not sites or not all(isinstance(s, str) for s in sites):
            raise InputError(f"{where}: site must be a site name or a list of them, got {site!r}")
        out["site"] = sites
    for key in ("species", "partner"):
        if key in entry:
            if not isinstance(entry[key], str) or not entry[key]:
                raise InputError(f"{where}: {key} must be a species name, got {entry[key]!r}")
            out[key] = entry[key]
    if "rod" in entry:
        out["rod"] = _pair(entry["rod"], where, "rod")
    if "z_window" in entry:
        out["z_window"] = _pair(entry["z_window"], where, "z_window")
    if "tie" in entry:
        if "bounds" in entry or "value" in entry:
            raise InputError(f"{where}: a tied parameter takes its value from the tie; remove bounds and value")
        out["tie"] = _parse_tie(entry["tie"], where)
        return out
    if "bounds" not in entry:
        raise InputError(f"{where}: bounds = [lower, upper] is required")
    lower, upper = _pair(entry["bounds"], where, "bounds")
    if not lower < upper:
        raise InputError(f"{where}: bounds must satisfy lower < upper, got [{lower:g}, {upper:g}]")
    out["bounds"] = (lower, upper)
    if "value" in entry:
        value = entry["value"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{where}: value must be a finite number, got {value!r}")
        out["value"] = float(value)
    return out


def _pair(value, where: str, key: str) -> tuple[float, float]:
    ok = (isinstance(value, list) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if not ok:
        raise InputError(f"{where}: {key} must be two finite numbers [a, b], got {value!r}")
    return float(value[0]), float(value[1])


def _parse_tie(text, where: str) -> Tie:
    match = _TIE.match(text) if isinstance(text, str) else None
    if match is None:
        raise InputError(f"{where}: tie must read \"other\", \"a*other\", \"other + b\" or \"a*other + b\", "
                         f"got {text!r}")
    factor = float(match["a"]) if match["a"] else (-1.0 if match["neg"] else 1.0)
    offset = float(match["b"]) * (-1.0 if match["sign"] == "-" else 1.0) if match["b"] else 0.0
    return Tie(match["name"], factor, offset)


def element_of(scatterer: Scatterer) -> str:
    """The element symbol of a scatterer's ion ("La3+" → "La")."""
    found = re.match(r"[A-Za-z]+", scatterer.ion)
    return found.group(0) if found else scatterer.ion


def _matches(species: str, name: str, model: StructureModel) -> bool:
    """True if `species` names the scatterer `name` or its element (case-insensitive)."""
    wanted = species.lower()
    return wanted == name.lower() or wanted == element_of(model.scatterers[name]).lower()


def _species_choices(model: StructureModel) -> list[str]:
    return sorted(set(model.scatterers) | {element_of(s) for s in model.scatterers.values()})
