"""A warm start for the robust model: the shipped paper-12L weights in a scale-free network (2 channels per rod).

The first conv's value-channel weights are the shipped model's input weights; the mask-channel weights are 0,
so the network starts as the shipped one fed (ln I − per-rod mean) / X_std. Written as the `last` checkpoint of
an empty run folder (no history, no optimizer state): `mamba-ctr train --resume --out warm ...` trains from it
with the shipped model's normalisation (no pilot).
"""
import sys

import torch

from mamba_ctr import models
from mamba_ctr.nn import build
from mamba_ctr.nn.checkpoint import save_checkpoint

out = sys.argv[1]
shipped = models.load("paper-12L")
kwargs = {**shipped.metadata["arch_kwargs"], "inputs_per_rod": 2}
model = build("rods", **kwargs)
state = shipped.model.state_dict()
first = "down.0.0.weight"
weight = torch.zeros_like(model.state_dict()[first])
weight[:, :16] = state[first]
state[first] = weight
model.load_state_dict(state)
config = {"arch": "rods", "target": "both", "batch_size": 64, "data": None, "stream": "paper-12L",
          "input": "scale-free", "augment": True, "warm_start": "paper-12L"}
save_checkpoint(f"{out}/last", model, arch="rods", arch_kwargs=kwargs, grid=shipped.grid,
                normalisation=shipped.normalisation, preset=shipped.metadata["preset"], history=[],
                extra={"train_config": config, "warm_start": "shipped paper-12L (value-channel weights; mask 0)"})
print("written", out)
