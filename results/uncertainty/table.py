"""Collect <OUT>/*/coverage.json (one per count level, mamba-ctr calibrate --test) into OUT/coverage.json,
OUT/coverage.csv and OUT/coverage.md (coverage and mean half-width per label group and for U's points)."""

import csv
import json
import sys
from pathlib import Path

out = Path(sys.argv[1] if len(sys.argv) > 1 else "results/uncertainty")
runs = {}
for path in sorted(out.glob("*/coverage.json")):
    runs[path.parent.name] = json.loads(path.read_text())
runs = dict(sorted(runs.items(), key=lambda item: (-(item[1]["counts"] or float("inf")), item[0])))

rows = []
for name, run in runs.items():
    for kind in ("labels", "per_label", "points"):
        for group, values in run[kind].items():
            rows.append({"run": name, "counts": run["counts"], "kind": kind, "group": group, **values})
    rows.append({"run": name, "counts": run["counts"], "kind": "points", "group": "all rods",
                 "coverage": run["points_overall"], "mean_half_width": "", "n": ""})
with open(out / "coverage.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
(out / "coverage.json").write_text(json.dumps(runs, indent=1) + "\n")

groups = list(next(iter(runs.values()))["labels"])
head = ("| run | counts at rod median | " + " | ".join(groups)
        + " | U (all points) | U (rods: min–max) | single labels: min–max | labels in 0.63–0.73 |")
lines = ["Coverage of the 68 % intervals (target 0.63–0.73 in every group):", "", head,
         "|---|---|" + "---:|" * (len(groups) + 4)]
widths = ["", "Mean half-width of the intervals (Å; p: fraction; U: simulator units):", "",
          "| run | counts at rod median | " + " | ".join(groups) + " | U (all points) |",
          "|---|---|" + "---:|" * (len(groups) + 1)]
for name, run in runs.items():
    counts = f"10^{len(str(int(run['counts']))) - 1}" if run["counts"] else "noise-free"
    rods = [v["coverage"] for v in run["points"].values()]
    single = [v["coverage"] for v in run["per_label"].values()]
    inside = sum(0.63 <= v <= 0.73 for v in single)
    lines.append(f"| {name} | {counts} | " + " | ".join(f"{run['labels'][g]['coverage']:.3f}" for g in groups)
                 + f" | {run['points_overall']:.3f} | {min(rods):.3f}–{max(rods):.3f} | "
                 f"{min(single):.2f}–{max(single):.2f} | {inside} of {len(single)} |")
    mean_width = sum(v["mean_half_width"] * v["n"] for v in run["points"].values()) / sum(
        v["n"] for v in run["points"].values())
    widths.append(f"| {name} | {counts} | " + " | ".join(f"{run['labels'][g]['mean_half_width']:.4f}" for g in groups)
                  + f" | {mean_width:.3g} |")
(out / "coverage.md").write_text("\n".join(lines + widths) + "\n")
print("\n".join(lines + widths))
