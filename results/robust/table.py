"""The R² against count level table of results/robust (issue 16 item 3), from the evaluate runs of run.sh.

    python results/robust/table.py results/robust/eval   → counts.md, counts.csv, counts.png beside eval/
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

GROUPS = ("c", "B", "O_ap", "O_eq", "p")


def main() -> None:
    folder = Path(sys.argv[1])
    rows = []
    for metrics in sorted(folder.glob("*/metrics.json")):
        report = json.loads(metrics.read_text())
        noise = report.get("noise", {})
        rows.append({"run": metrics.parent.name, "model": metrics.parent.name.split("-")[0],
                     "counts": noise.get("counts", 0.0), "rod_scale": noise.get("rod_scale", 0.0),
                     "scale": noise.get("scale", 1.0), "n": report["n"], "field_mae": report["field_mae"],
                     **{f"R2_{g}": report["r2_per_group"].get(g, float("nan")) for g in GROUPS},
                     "outliers": report["outliers_total"]})
    rows.sort(key=lambda r: (r["model"], r["scale"] != 1.0, r["rod_scale"], r["counts"] or 1e99))
    out = folder.parent
    with open(out / "counts.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| model | counts at rod median | rod scale σ | global scale | n | field MAE | "
             + " | ".join(f"R² {g}" for g in GROUPS) + " | outliers |",
             "|---|---:|---:|---:|---:|---:|" + "---:|" * (len(GROUPS) + 1)]
    for r in rows:
        counts = "noise-free" if not r["counts"] else f"{r['counts']:.0e}"
        lines.append(f"| {r['model']} | {counts} | {r['rod_scale']:g} | {r['scale']:g} | {r['n']} | "
                     f"{r['field_mae']:.4f} | " + " | ".join(f"{r[f'R2_{g}']:.3f}" for g in GROUPS)
                     + f" | {r['outliers']} |")
    (out / "counts.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    _figure(rows, out / "counts.png")


def _figure(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(GROUPS), figsize=(16, 3.4), sharey=True, layout="constrained")
    for model, style in (("robust", "o-"), ("shipped", "s--")):
        series = sorted((r["counts"], r) for r in rows if r["model"] == model and r["counts"]
                        and r["rod_scale"] == 0 and r["scale"] == 1.0)
        clean = [r for r in rows if r["model"] == model and not r["counts"] and r["scale"] == 1.0]
        for ax, g in zip(axes, GROUPS, strict=True):
            line, = ax.semilogx([c for c, _ in series], [r[f"R2_{g}"] for _, r in series], style, label=model)
            if clean:
                ax.axhline(clean[0][f"R2_{g}"], color=line.get_color(), lw=0.8, ls=":")
            ax.set_title(f"R² {g}")
            ax.set_xlabel("counts at each rod's median point")
    axes[0].set_ylim(0.5, 1.01)
    axes[0].set_ylabel("mean R² (dotted: noise-free)")
    axes[-1].legend(fontsize=8)
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
