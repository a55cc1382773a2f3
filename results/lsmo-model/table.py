"""Collects results/lsmo-model into README tables (run by run.sh): R1 per rod and overall, time taken, and the
structures' differences from the authors' structure, for the authors' structure, the network alone (through the
forward model), network + refinement and least squares from a nominal film; R² per label group on the simulated
test sets. Writes comparison.md, comparison.json and structures.png."""

import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
AUTHORS = HERE.parent / "lsmo-authors-structure"  # the same points, σ model and global scale
GROUPS = (("c", "c_", "Å"), ("B", "z_B_", "z"), ("O_ap", "z_O_ap_", "z"), ("O_eq", "z_O_eq_", "z"),
          ("Sr", "sr_", ""), ("occupancy", "occ_", ""))


def load(name: str) -> dict:
    return json.loads((HERE / name).read_text())


def main() -> None:
    predict, refine, lsq = load("predict/prediction.json"), load("refine/fit.json"), load("lsq-nominal/fit.json")
    authors = _authors()
    start = {p["name"]: p["start"] for p in refine["parameters"]}
    family_nominal = _family_nominal()
    values = {"authors": family_nominal, "network": predict["labels"],
              "network + refinement": {p["name"]: p["value"] for p in refine["parameters"]},
              "lsq from nominal": {p["name"]: p["value"] for p in lsq["parameters"]},
              "nominal start": {p["name"]: p["start"] for p in lsq["parameters"]}}
    assert all(abs(start[k] - predict["labels"][k]) < 1e-9 for k in start if k in predict["labels"])
    rods = list(predict["agreement"]["rods"])
    rows = [("authors' structure", [authors["rods"][r] for r in rods], authors["r1"], "—"),
            ("network alone", [predict["agreement"]["rods"][r]["r1"] for r in rods], predict["agreement"]["r1"],
             f"{predict['seconds']['network'] + predict['seconds']['labels']:.1f} s"),
            ("network + refinement", [r["r1"] for r in refine["rods"]], refine["r1"],
             f"{predict['seconds']['network'] + predict['seconds']['labels'] + refine['seconds']:.1f} s"),
            ("least squares from a nominal film", [r["r1"] for r in lsq["rods"]], lsq["r1"],
             f"{lsq['seconds']:.1f} s")]
    lines = ["| structure | " + " | ".join(rods) + " | all | χ²_red | time |", "|---" * (len(rods) + 4) + "|"]
    chi2 = {"authors' structure": authors["chi2_red"], "network alone": predict["agreement"]["chi2_red"],
            "network + refinement": refine["chi2_red"], "least squares from a nominal film": lsq["chi2_red"]}
    for name, per_rod, total, seconds in rows:
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in per_rod) + f" | **{total:.3f}** | "
                     f"{chi2[name]:.1f} | {seconds} |")
    lines += ["", "Differences from the authors' structure (RMS over the labels of each group; c in Å, z in "
              "fractions of the layer height, Sr and occupancy fractions):", "",
              "| structure | " + " | ".join(f"{g} ({len(_names(values['authors'], p))})" for g, p, _ in GROUPS)
              + " |", "|---" * (len(GROUPS) + 1) + "|"]
    for name in ("network", "network + refinement", "lsq from nominal", "nominal start"):
        diffs = [_rms(values[name], values["authors"], prefix) for _, prefix, _ in GROUPS]
        lines.append(f"| {name} | " + " | ".join(f"{d:.3f}" for d in diffs) + " |")
    header = "| test set | field MAE | " + " | ".join(g for g, _, _ in GROUPS) + " |"
    lines += ["", "Simulated test structures of the family (R² per label group, mean over its identifiable labels; "
              "labels fitted to the predicted U):", "", header, "|---" * (len(GROUPS) + 2) + "|"]
    for name, folder in (("noise-free", "eval-clean"), ("10^3 counts, 20 % rod scales, LSMO coverage",
                                                        "eval-measured-like")):
        metrics = json.loads((HERE / folder / "metrics.json").read_text())
        groups = metrics["r2_per_group"]
        lines.append(f"| {name} ({metrics['n']}) | {metrics['field_mae']:.3f} | "
                     + " | ".join(f"{groups.get(g, float('nan')):.3f}" for g, _, _ in GROUPS) + " |")
    lines += _uncertainty(predict)
    (HERE / "comparison.md").write_text("\n".join(lines) + "\n")
    (HERE / "comparison.json").write_text(json.dumps({"rods": rods, "rows": rows, "chi2_red": chi2,
                                                      "values": values}, indent=1) + "\n")
    _figure(values)
    print("\n".join(lines))


def _uncertainty(predict: dict) -> list[str]:
    """Coverage of the calibrated intervals per group (simulated test set) and the measured film's intervals."""
    coverage = json.loads((HERE / "uncertainty" / "coverage.json").read_text())
    groups = coverage["labels"]
    lines = ["", f"Calibrated {coverage['level']:.0%} intervals ({coverage['n_test']} simulated test structures at "
             f"{coverage['counts']:g} counts; target 63–73 % per group):", "",
             "| | " + " | ".join(groups) + " | U |", "|---" * (len(groups) + 2) + "|",
             "| coverage | " + " | ".join(f"{g['coverage']:.3f}" for g in groups.values())
             + f" | {coverage['points_overall']:.3f} |",
             "| mean half-width | " + " | ".join(f"{g['mean_half_width']:.3g}" for g in groups.values()) + " | |"]
    intervals = predict.get("intervals", {}).get("labels", {})
    if intervals:
        lines += ["", "The measured film: the network's labels with their calibrated intervals (draws' mean, low, "
                  "high), the top of the film:", "", "| label | network | draws' mean | 68 % interval |",
                  "|---|---:|---:|---|"]
        for name in ("c_10", "c_11", "c_12", "z_B_12", "z_O_ap_12", "z_O_eq_12", "sr_10", "sr_11", "sr_12",
                     "occ_12", "occ_13"):
            i = intervals[name]
            lines.append(f"| {name} | {predict['labels'][name]:.3f} | {i['mean']:.3f} | "
                         f"[{i['low']:.3f}, {i['high']:.3f}] |")
    return lines


def _family_nominal() -> dict:
    from mamba_ctr import families

    family = families.resolve(HERE / "family.toml")
    return {name: float(v) for name, v in zip(family.params.names, family.nominal_vector(), strict=True)}


def _authors() -> dict:
    import csv

    overall = json.loads((AUTHORS / "agreement.json").read_text())["agreement"]["global"]
    with open(AUTHORS / "rods.csv", newline="") as f:
        rods = {row["rod"]: float(row["R1"]) for row in csv.DictReader(f) if row["scale"] == "global"}
    return {"r1": overall["R1"], "chi2_red": overall["chi2_red"], "rods": rods}


def _names(values: dict, prefix: str) -> list[str]:
    return [k for k in values if k.startswith(prefix)]


def _rms(a: dict, b: dict, prefix: str) -> float:
    names = _names(b, prefix)
    return float(np.sqrt(np.mean([(a[k] - b[k]) ** 2 for k in names])))


def _figure(values: dict) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 7), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    styles = {"authors": "k-o", "network": "C0-s", "network + refinement": "C1-^", "lsq from nominal": "C2-v"}
    for ax, (group, prefix, unit) in zip(axes, GROUPS, strict=True):
        for name, style in styles.items():
            names = _names(values[name], prefix)
            layers = [int(k.rsplit("_", 1)[1]) for k in names]
            ax.plot(layers, [values[name][k] for k in names], style, ms=4, lw=1, label=name)
        ax.set_title(f"{group} {unit}".strip())
        ax.set_xlabel("layer")
    axes[0].legend(fontsize=7)
    fig.suptitle("LSMO film: the authors' structure, the network, network + refinement, least squares from nominal")
    fig.savefig(HERE / "structures.png", dpi=110)


if __name__ == "__main__":
    main()
