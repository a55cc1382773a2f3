"""Export the scale-free-global paper-12L model and make it the shipped `paper-12L` (the standardised one stays as
`paper-12L-standardised`). From the repository root, after training (train.sh):

    PYTHONPATH=python python results/training/paper12L-global/ship.py export RUN     # RUN/best → model.json/.pt
    bash results/training/paper12L-robust-2h/evaluate.sh /tmp/mamba-robust results/training/paper12L-global
    PYTHONPATH=python python results/training/paper12L-global/ship.py ship TEST.h5    # metadata, copy to models/

`ship` measures the forward-consistency R1 of the float16 weights on the 500 noise-free test structures
(the seed-20261125 test set, as the standardised model's R1_THRESHOLD was) and records its 99th percentile as the
model's `r1_threshold`; the test MAE and R² per atom type come from eval/noise-free (evaluate.sh).
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent
MODELS = Path("python/mamba_ctr/models")
PROVENANCE = {
    "trained": "2026-12-02 06:53 to 08:23 UTC on a 2-core AMD EPYC VM (torch 2.13.0 CPU, bf16 autocast), shared "
               "with short tests and evaluations",
    "warm_start": "the standardised paper-12L model (now paper-12L-standardised) with mask channels added: "
                  "results/training/paper12L-global/warm_start.py",
    "command": " ".join(line.strip().rstrip("\\").strip() for line in (HERE / "train.sh").read_text().splitlines()
                        if line.strip().startswith(("train ", "--"))),
    "test_set": "mamba-ctr generate --preset paper-12L --n 500 --seed 20261125 (500 structures); "
                "mamba-ctr evaluate --n 500 (noise-free)",
    "validation": "2000 structures simulated with the training nuisances (half of them clean)",
}


def export(run: str) -> None:
    from mamba_ctr.nn.checkpoint import export_checkpoint, load_checkpoint

    best = load_checkpoint(f"{run}/best")
    history = best.metadata["history"]
    chosen = min((row for row in history if row.get("best")), key=lambda row: row["val_mae"])
    extra = {"val_mae": chosen["val_mae"], "provenance": {
        **PROVENANCE, "samples_seen": history[-1]["samples_seen"], "wall_minutes": round(history[-1]["wall_s"] / 60, 1),
        "best": {k: chosen[k] for k in ("epoch", "batches", "val_mae")}}}
    print("written", export_checkpoint(f"{run}/best", HERE / "model", half=True, extra=extra))


def ship(test: str) -> None:
    from mamba_ctr import models
    from mamba_ctr.nn.predict import check_prediction, predict_field
    from mamba_ctr.workflows.evaluate import read_test_set

    meta_path = HERE / "model.json"
    checkpoint = models.load(HERE / "model")
    _, intensity, _, _ = read_test_set(test, 0, 500)
    check = check_prediction(checkpoint, intensity, predict_field(checkpoint, intensity), r1_threshold=np.inf)
    r1 = np.percentile(check.r1, [50, 90, 99, 100])
    metrics = json.loads((HERE / "eval" / "noise-free" / "metrics.json").read_text())
    meta = json.loads(meta_path.read_text())
    meta.update({"test_mae": metrics["field_mae"], "test_r2_per_group": metrics["r2_per_group"],
                 "r1_threshold": float(np.ceil(r1[2] * 1000) / 1000)})
    meta["provenance"].update({
        "test_mae_note": "test_mae and test_r2_per_group measured with these float16 weights",
        "r1_threshold_note": f"99th percentile of R1 on the 500 noise-free test structures, rounded up; median "
                             f"{r1[0]:.4f}, 90th {r1[1]:.4f}, 99th {r1[2]:.4f}, max {r1[3]:.4f}"})
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    for suffix in (".json", ".pt"):
        shutil.copyfile(HERE / f"model{suffix}", MODELS / f"paper-12L{suffix}")
    shipped = json.loads((MODELS / "paper-12L.json").read_text())
    shipped["weights"] = "paper-12L.pt"
    (MODELS / "paper-12L.json").write_text(json.dumps(shipped, indent=1) + "\n")
    print(f"test MAE {meta['test_mae']:.4f}, R1 percentiles {np.round(r1, 4)}, r1_threshold {meta['r1_threshold']}")


if __name__ == "__main__":
    {"export": export, "ship": ship}[sys.argv[1]](sys.argv[2])
