"""Continue a robust paper-12L model under a new schedule: `python warm_start.py OUT [SOURCE]` (SOURCE: a
checkpoint or training folder, default ../paper12L-robust/model, the 22-minute model).

Writes its weights, normalisation and train_config as the `last` checkpoint of an empty run folder (no history,
no optimizer state), so that `mamba-ctr train --resume --out OUT ...` starts a fresh one-cycle schedule from them.
"""
import sys

from mamba_ctr import models
from mamba_ctr.nn.checkpoint import save_checkpoint

out = sys.argv[1]
source = sys.argv[2] if len(sys.argv) > 2 else "results/training/paper12L-robust/model"
robust = models.load(source)
meta = robust.metadata
config = {**meta["train_config"], "warm_start": source}
save_checkpoint(f"{out}/last", robust.model, arch=meta["architecture"], arch_kwargs=meta["arch_kwargs"],
                grid=robust.grid, normalisation=robust.normalisation, preset=meta["preset"], history=[],
                extra={"train_config": config, "warm_start": source})
print("written", out)
