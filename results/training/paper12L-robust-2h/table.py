"""The evaluations of evaluate.sh as one Markdown table (field MAE and R² per atom type): python table.py [DIR]
(DIR: the model folder whose eval/ to read and eval.md to write; default this one)."""
import json
import sys
from pathlib import Path

HERE = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent
rows = ["| condition | field MAE | R² c | R² B | R² O_ap | R² O_eq | R² p |", "|---|---:|---:|---:|---:|---:|---:|"]
for name in ("noise-free", "counts1000000", "counts10000", "counts1000", "counts100", "counts1000-rodscale0.2",
             "scale1e-6", "augment"):
    path = HERE / "eval" / name / "metrics.json"
    if path.is_file():
        m = json.loads(path.read_text())
        r2 = m["r2_per_group"]
        rows.append(f"| {name} | {m['field_mae']:.4f} | " + " | ".join(f"{r2[g]:.3f}" for g in
                                                                       ("c", "B", "O_ap", "O_eq", "p")) + " |")
(HERE / "eval.md").write_text("\n".join(rows) + "\n")
print("\n".join(rows))
