"""Validation MAE against training samples seen: the paper's twin U-Nets and the rods U-Net, same protocol
(stream paper-12L, Adam lr 1e-3, batch 32, the same 256 validation structures), plus the longer rods runs and the
paper's reported points. Usage: python plot_curves.py PAPER_RUN RODS_RUN [LONG_RUN ...] OUT.png"""

import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curve(path):
    with open(f"{path}/history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [int(r["samples_seen"]) for r in rows], [float(r["val_mae"]) for r in rows], float(rows[-1]["wall_s"])


paper, rods, *longer, out = sys.argv[1:]
fig, ax = plt.subplots(figsize=(6.5, 4.2), layout="constrained")
for path, label, style in [(paper, "paper twin U-Nets (Adam 1e-3, batch 32)", "o-"),
                           (rods, "rods U-Net, same protocol", "s-")] + [(p, f"rods U-Net, one-cycle ({p})", "-")
                                                                          for p in longer]:
    x, y, wall = curve(path)
    ax.plot(x, y, style, ms=3, label=f"{label}, {wall / 60:.1f} min")
ax.plot([90_000, 2_700_000], [0.21, 0.124], "k*", ms=10, label="paper: 1 epoch (0.21), best (0.124)")
ax.set_xscale("log")
ax.set_yscale("log")
ax.set_xlabel("training samples seen")
ax.set_ylabel("validation MAE (z-score units)")
ax.legend(fontsize=7)
fig.savefig(out, dpi=120)
