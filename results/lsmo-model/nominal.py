"""Writes results/lsmo-model/nominal.json: the start of "least squares from a nominal film" (issue 16 item 5).

    python results/lsmo-model/nominal.py      # from the repository root

A nominal La0.67Sr0.33MnO3 film on SrTiO3 as a scientist would write it down before any fit: layers 1–3 SrTiO3
(c = 3.905 Å, Sr = 1), layers 4–13 LSMO (c = 3.85 Å: bulk 3.88 Å, compressed out of plane by the tensile in-plane
strain on SrTiO3; Sr = 0.33), ideal perovskite heights (B at z = 1/2, apical O at 0, equatorial O at 1/2), a
full layer 12 and a third of layer 13. Each value is moved into the family's bounds (which are centred on the
authors' structure); the output says which were moved.
"""

import json
from pathlib import Path

from mamba_ctr import families

HERE = Path(__file__).parent
SUBSTRATE_LAYERS = (1, 2, 3)


def nominal_value(name: str) -> float:
    kind, _, layer = name.rpartition("_")
    j = int(layer)
    film = j not in SUBSTRATE_LAYERS
    if kind == "c":
        return 3.85 if film else 3.905
    if kind == "sr":
        return 0.33 if film else 1.0
    return {"z_B": 0.5, "z_O_ap": 0.0, "z_O_eq": 0.5, "occ": 1.0 if j == 12 else 0.33}[kind]


def main() -> None:
    family = families.resolve(HERE / "family.toml")
    values, moved = {}, []
    for spec in family.label_specs():
        value = nominal_value(spec.name)
        clipped = min(max(value, spec.low), spec.high)
        if clipped != value:
            moved.append(f"{spec.name} {value:g} → {clipped:g}")
        values[spec.name] = clipped
    (HERE / "nominal.json").write_text(json.dumps(values, indent=1) + "\n")
    print(f"{len(values)} start values; moved into the bounds: {', '.join(moved) or 'none'}")


if __name__ == "__main__":
    main()
