"""Writes results/lsmo-model/family.toml: the LSMO family around the authors' structure (issue 16 item 5).

    python results/lsmo-model/make_family.py      # from the repository root

What varies (uniform within the bounds, centred on the authors' LSMO_newdat2.XYZ values as build_film reads
them): c of layers 1–12 (± 0.12 Å), the fractional heights of the B cation (± 0.04), the apical O (± 0.06) and
the equatorial O (± 0.06) of layers 1–13, the Sr share of the A site of layers 1–12 (± 0.3, within [0, site
occupancy]), and the coverage of the two top layers. Layer 0 (SrTiO3) and the top layer's c (not identifiable:
it only rescales the top layer's z) stay the file's. β and Debye–Waller factors are not varied (see
docs/families.md).
"""

from pathlib import Path

import numpy as np

from mamba_ctr.io.structure_formats import read_structure
from mamba_ctr.physics.film_from_atoms import build_film

HERE = Path(__file__).parent
IONS = {"Sr": "Sr2+", "La": "La3+", "Ti": "Ti4+", "Mn": "Mn3+", "O": "O"}
GROUPS = (("B", "Mn", None, 0.04), ("O_ap", "O", (-0.2, 0.2), 0.06), ("O_eq", "O", (0.3, 0.7), 0.06))


def main() -> None:
    film = build_film(read_structure(HERE / "LSMO_newdat2.XYZ"), read_structure(HERE / "SrTiO3.bul"),
                      cell=(7.81, 3.905), ions=IONS)
    n = film.nominal
    model = film.model
    lines = [
        "# The LSMO family (issue 16 item 5), written by make_family.py: the authors' structure with what varies.",
        "[family]",
        'name = "lsmo"',
        'description = "La1-xSrxMnO3 on SrTiO3 around the MAMBA authors\' LSMO_newdat2.XYZ (2x1 cell, 14 layers)"',
        'structure = "LSMO_newdat2.XYZ"',
        'substrate = "SrTiO3.bul"',
        "cell = [7.81, 3.905]",
        'ions = { Sr = "Sr2+", La = "La3+", Ti = "Ti4+", Mn = "Mn3+", O = "O" }',
        "",
        "[grid]",
        'data = "../../../shared/data/lsmo/all_2xrods_LSMO9_hklcorr_Disa.txt"',
        'format = "plain"',
        'columns = "h,k,l,I,skip"',
        'basis = ["1/2", 0, 0, "1/2"]',
        "points_per_L = 50",
        "L = [0.0, 4.52]                     # from L = 0.02 (so that the density can be reconstructed) to the end",
        'rods = "producible"',
        "",
    ]

    def param(**entry) -> None:
        lines.append("[[param]]")
        for key, value in entry.items():
            lines.append(f"{key} = {_toml(value)}")
        lines.append("")

    for j in range(1, 13):
        c = float(n.c[0, j])
        param(name=f"c_{j}", target="c", layer=j, bounds=[round(c - 0.12, 4), round(c + 0.12, 4)], group="c")
    for label, species, window, half in GROUPS:
        for j in range(1, 14):
            z = _group_z(model, n, j, species, window)
            entry = {"name": f"z_{label}_{j}", "target": "z", "layer": j, "species": species}
            if window is not None:
                entry["z_window"] = list(window)
            param(**entry, bounds=[round(z - half, 4), round(z + half, 4)], group=label)
    for j in range(1, 13):
        sr, total = _a_site(model, n, j)
        param(name=f"sr_{j}", target="mix", layer=j, species="Sr", partner="La",
              bounds=[round(max(sr - 0.3, 0.0), 4), np.floor(min(sr + 0.3, total) * 1e4) / 1e4], group="Sr")
    param(name="occ_12", target="occupancy", layer=12, bounds=[0.7, 1.0], group="occupancy")
    param(name="occ_13", target="fraction", layer=13, species="La", bounds=[0.05, 0.6], group="occupancy")
    param(name="occ_B_13", target="fraction", layer=13, species="Ti", tie="occ_13")
    param(name="occ_O_13", target="fraction", layer=13, species="O", tie="occ_13")
    (HERE / "family.toml").write_text("\n".join(lines), encoding="utf-8")


def _group_z(model, n, j, species, window) -> float:
    zs = []
    for s in range(model.n_sites):
        names = model.species[j][s]
        if any(name.split()[0] == species for name in names):
            z = float(n.z[0, j, s])
            if window is None or window[0] <= z <= window[1]:
                zs.append(z)
    return float(np.mean(zs))


def _a_site(model, n, j) -> tuple[float, float]:
    for s in range(model.n_sites):
        names = model.species[j][s]
        if any(name.startswith("Sr") for name in names):
            fractions = n.fraction[0, j, s, :len(names)]
            sr = sum(f for name, f in zip(names, fractions, strict=True) if name.startswith("Sr"))
            return float(sr), float(fractions.sum())
    raise ValueError(f"layer {j} has no A site")


def _toml(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(float(value)) if isinstance(value, np.floating) else repr(value)


if __name__ == "__main__":
    main()
