"""Continue the robust paper-12L model (../paper12L-robust/model) under a new schedule.

Writes its weights, normalisation and train_config as the `last` checkpoint of an empty run folder (no history,
no optimizer state), so that `mamba-ctr train --resume --out OUT ...` starts a fresh one-cycle schedule from them.
"""
import sys

from mamba_ctr import models
from mamba_ctr.nn.checkpoint import save_checkpoint

out = sys.argv[1]
robust = models.load("results/training/paper12L-robust/model")
meta = robust.metadata
config = {**meta["train_config"], "warm_start": "results/training/paper12L-robust/model"}
save_checkpoint(f"{out}/last", robust.model, arch=meta["architecture"], arch_kwargs=meta["arch_kwargs"],
                grid=robust.grid, normalisation=robust.normalisation, preset=meta["preset"], history=[],
                extra={"train_config": config, "warm_start": "robust paper-12L after 22 min (val MAE 0.163)"})
print("written", out)
