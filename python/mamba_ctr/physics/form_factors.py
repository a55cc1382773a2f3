"""Atomic form factors, Debye–Waller factors and optional anomalous terms.

Two sources of f0, chosen per scatterer (`Scatterer.source`):

* "cromer-mann" (default): the paper's table, f0(s) = Σ_{i=1..4} a_i exp(−b_i s²) + c with s = |q| / (4π)
  in Å⁻¹ (International Tables for Crystallography Vol. C, Table 6.1.1.4). The paper presets use it, so
  the golden rods never change.
* "xraydb": every element and common ion (Waasmaier & Kirfel 1995, as tabulated by xraydb), for structures
  read from files. xraydb is an optional dependency (`pip install "mamba-ctr[structure]"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from ..errors import InputError

SOURCES = ("cromer-mann", "xraydb")


@dataclass(frozen=True)
class CromerMann:
    """Cromer–Mann coefficients a1..a4, b1..b4 (Å²), c of one atom or ion."""

    a: tuple[float, float, float, float]
    b: tuple[float, float, float, float]
    c: float

    def __call__(self, q: np.ndarray) -> np.ndarray:
        """f0 at momentum transfer |q| (Å⁻¹), any shape; electrons."""
        s2 = (np.asarray(q, dtype=np.float64) / (4 * np.pi)) ** 2
        f = np.full(s2.shape, self.c, dtype=np.float64)
        for a_i, b_i in zip(self.a, self.b, strict=True):
            f += a_i * np.exp(-b_i * s2)
        return f


_CROMER_MANN: dict[str, CromerMann] = {
    "Sr2+": CromerMann((18.0874, 8.1373, 2.5654, -34.193), (1.4907, 12.6963, 24.5651, -0.0138), 41.4025),
    "Ti4+": CromerMann((19.5114, 8.23473, 2.01341, 1.5208), (0.178847, 6.67018, -0.29263, 12.9464), -13.28),
    "O": CromerMann((3.0485, 2.2868, 1.5463, 0.867), (13.2771, 5.7011, 0.3239, 32.9089), 0.2508),
    "La3+": CromerMann((20.2489, 19.3763, 11.6323, 0.336048), (2.9207, 0.250698, 17.8211, 54.9453), 2.4086),
    "Al3+": CromerMann((4.17448, 3.3876, 1.20296, 0.528137), (1.93816, 4.14553, 0.228753, 8.28524), 0.706786),
}


def register_form_factor(ion: str, a, b, c: float, *, replace: bool = False) -> None:
    """Add Cromer–Mann coefficients for `ion` (e.g. "Mn3+") so scatterers can use it."""
    if ion in _CROMER_MANN and not replace:
        raise ValueError(f"form factor {ion!r} is already defined; pass replace=True to change it")
    a, b = tuple(float(x) for x in a), tuple(float(x) for x in b)
    if len(a) != 4 or len(b) != 4 or not np.all(np.isfinite(a + b + (float(c),))):
        raise ValueError(f"need four finite a_i, four finite b_i and a finite c, got a={a}, b={b}, c={c}")
    _CROMER_MANN[ion] = CromerMann(a, b, float(c))  # type: ignore[arg-type]


def known_ions() -> list[str]:
    """Names accepted as `ion` by Scatterer."""
    return sorted(_CROMER_MANN)


def form_factor(ion: str, source: str = "cromer-mann") -> CromerMann | XraydbF0:
    """The f0(|q|) callable of `ion` from `source` ("cromer-mann" table or "xraydb")."""
    if source == "xraydb":
        return xraydb_form_factor(ion)
    if source != "cromer-mann":
        raise InputError(f"form-factor source must be one of {', '.join(SOURCES)}, got {source!r}")
    try:
        return _CROMER_MANN[ion]
    except KeyError:
        raise ValueError(
            f"unknown ion {ion!r}: known are {', '.join(known_ions())}; "
            "add one with mamba_ctr.physics.register_form_factor, or use source='xraydb'"
        ) from None


def _xraydb():
    try:
        import xraydb
    except ImportError:  # pragma: no cover - depends on the environment
        raise InputError(
            'form factors of elements outside the paper table need xraydb: pip install "mamba-ctr[structure]"'
        ) from None
    return xraydb


@dataclass(frozen=True)
class XraydbF0:
    """f0 of one element or ion from xraydb (Waasmaier–Kirfel), called with |q| in Å⁻¹."""

    ion: str

    def __call__(self, q: np.ndarray) -> np.ndarray:
        q = np.asarray(q, dtype=np.float64)
        # xraydb takes sin(θ)/λ = |q| / (4π)
        return np.asarray(_xraydb().f0(self.ion, (q / (4 * np.pi)).ravel()), dtype=np.float64).reshape(q.shape)


@cache
def xraydb_form_factor(ion: str) -> XraydbF0:
    """The xraydb f0 of `ion` (e.g. "Mn3+", "O", "La3+"); InputError if xraydb does not know it."""
    known = _xraydb().f0_ions()
    if ion not in known:
        raise InputError(f"xraydb has no form factor for {ion!r}: use an element or ion such as Mn, Mn3+, O2-")
    return XraydbF0(ion)


@dataclass(frozen=True)
class Scatterer:
    """One kind of scatterer: a form factor, its Debye–Waller factor and anomalous terms.

    Two sites with the same ion but different thermal motion (the apical and
    equatorial O of the paper) are two scatterers.

    Attributes:
        name: label used in structures (e.g. "Sr", "O_ap").
        ion: key of the Cromer–Mann table (e.g. "Sr2+").
        u_iso: isotropic mean-square displacement, Å² (B = 8π² U_iso).
        f_prime, f_double_prime: anomalous corrections, electrons (0 off resonance).
        source: where f0 comes from, "cromer-mann" (the paper's table) or "xraydb".
    """

    name: str
    ion: str
    u_iso: float = 0.0
    f_prime: float = 0.0
    f_double_prime: float = 0.0
    source: str = "cromer-mann"

    def __post_init__(self) -> None:
        form_factor(self.ion, self.source)  # unknown ion → ValueError now, not at simulation time
        for attr in ("u_iso", "f_prime", "f_double_prime"):
            if not np.isfinite(getattr(self, attr)):
                raise ValueError(f"{attr} of scatterer {self.name!r} must be finite, got {getattr(self, attr)}")
        if self.u_iso < 0:
            raise ValueError(f"u_iso of scatterer {self.name!r} must be ≥ 0 Å², got {self.u_iso}")

    @classmethod
    def from_b(cls, name: str, ion: str, b_iso: float, f_prime: float = 0.0, f_double_prime: float = 0.0,
               source: str = "cromer-mann") -> Scatterer:
        """Build from a Debye–Waller B (Å²) instead of U_iso: U_iso = B / (8π²)."""
        return cls(name, ion, float(b_iso) / (8 * np.pi**2), f_prime, f_double_prime, source)

    @property
    def b_iso(self) -> float:
        """Debye–Waller B, Å²."""
        return 8 * np.pi**2 * self.u_iso

    @property
    def is_anomalous(self) -> bool:
        return self.f_prime != 0.0 or self.f_double_prime != 0.0

    def factor(self, q: np.ndarray) -> np.ndarray:
        """(f0(q) + f′ + i f″) · exp(−q² U_iso / 2) at |q| (Å⁻¹); complex only if anomalous."""
        q = np.asarray(q, dtype=np.float64)
        debye_waller = np.exp(-0.5 * self.u_iso * q**2)
        f: np.ndarray = form_factor(self.ion, self.source)(q) + self.f_prime
        if self.f_double_prime != 0.0:
            f = f + 1j * self.f_double_prime
        return f * debye_waller

    def at_energy(self, energy_eV: float) -> Scatterer:
        """The same scatterer with f′, f″ from xraydb (Chantler tables) at `energy_eV`.

        Needs the optional dependency: pip install "mamba-ctr[anomalous]".
        """
        try:
            import xraydb
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError('anomalous terms need xraydb: pip install "mamba-ctr[anomalous]"') from error
        if not (np.isfinite(energy_eV) and energy_eV > 0):
            raise ValueError(f"energy must be a positive number of eV, got {energy_eV}")
        element = "".join(ch for ch in self.ion if ch.isalpha())
        # xraydb's f1_chantler is already the anomalous part f′ (≈ 0 far from edges).
        f1 = float(xraydb.f1_chantler(element, energy_eV))
        f2 = float(xraydb.f2_chantler(element, energy_eV))
        return Scatterer(self.name, self.ion, self.u_iso, f1, f2, self.source)
