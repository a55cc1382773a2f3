"""Start a scale-free-global paper-12L model from the shipped standardised one: `python warm_start.py OUT DATA`
(DATA: an HDF5 dataset of paper-12L rods, to estimate the mean ln I the new input subtracts).

The shipped network reads X = (ln I − X_mean)/X_std (Bragg points ln I = 0); the new input reads the value
v = (ln I − m)/X_std (m: the structure's mean ln I over its measured points; Bragg points 0) and a mask channel.
Every weight is copied; the first convolution gets mask weights w·(X_mean/X_std − δ̄) and its bias
b − Σw·X_mean/X_std, with δ̄ = (X_mean − m̄)/X_std and m̄ the dataset's mean of m. Its output then equals the old
one's for a structure with m = m̄, on measured points (v − δ̄ = old X) and on Bragg points (old X = −X_mean/X_std
comes from the bias), except next to the ends of each rod, where the old convolution saw zero padding; the wide
bottleneck carries that inward (on 64 structures, mean |ΔU| 0.024 in normalised units). Other structures are off
by the constant (m − m̄)/X_std (mean |ΔU| 0.097 on the real input), which the fine-tuning removes.

Writes the `last` checkpoint of an empty run folder (no history, no optimizer state), so that
`mamba-ctr train --resume --out OUT --input scale-free-global ...` starts a fresh schedule from it.
"""
import sys

import h5py
import numpy as np
import torch

from mamba_ctr import models
from mamba_ctr.nn import build
from mamba_ctr.nn.checkpoint import save_checkpoint
from mamba_ctr.nn.inputs import scale_free

out, data = sys.argv[1], sys.argv[2]
shipped = models.load("paper-12L")
meta, norm, bragg = shipped.metadata, shipped.normalisation, shipped.grid.bragg
with h5py.File(data, "r") as f:
    intensity = f["intensity"][:2000]
log = np.log(intensity[..., ~bragg])
m_bar = float(log.mean(axis=(-2, -1)).mean())
delta = (norm.X_mean - m_bar) / norm.X_std
print(f"mean ln I over structures {m_bar:.4f}, X_mean {norm.X_mean:.4f}, delta {delta:.4f}")

arch_kwargs = {**meta["arch_kwargs"], "inputs_per_rod": 2}
network = build(meta["architecture"], **arch_kwargs)
state = shipped.model.state_dict()
first = "down.0.0"
w, b = state[f"{first}.weight"], state[f"{first}.bias"]  # (C, R, k), (C,)
w_mask = w * (norm.X_mean / norm.X_std - delta)
state[f"{first}.weight"] = torch.cat([w, w_mask], dim=1)
state[f"{first}.bias"] = b - w.sum(dim=(1, 2)) * norm.X_mean / norm.X_std
network.load_state_dict(state)

# the check: the new network equals the old one when m = m̄ (the value channels set to old X + δ̄ on measured
# points), up to the padded ends of each rod; the real input differs by the per-structure (m − m̄)/X_std
sample = intensity[:64]
old_x = ((np.log(np.where(bragg, 1.0, sample)) - norm.X_mean) / norm.X_std).astype(np.float32)
new_x = scale_free(sample, ~bragg, norm.X_std, per_rod=False)
at_m_bar = new_x.copy()
at_m_bar[:, :16] = np.where(bragg, 0.0, old_x + delta)
shift = (new_x[:, :16] - old_x - delta)[..., ~bragg].mean(axis=-1)
with torch.no_grad():
    network.eval()
    reference = shipped.model(torch.from_numpy(old_x))
    exact = network(torch.from_numpy(at_m_bar))
    real = network(torch.from_numpy(new_x))
inner = slice(8, -8)  # away from the padded ends, where the bias term differs
gap = (exact - reference).abs()
print(f"output difference (normalised U), new network at m = m̄ vs old: mean {float(gap.mean()):.2g},"
      f" max {float(gap[..., inner].max()):.2g} away from the ends; on the real new input: "
      f"mean |Δ| {float((real - reference).abs().mean()):.3f}; "
      f"input shift (m − m̄)/X_std {float(shift.mean()):.3f} ± {float(shift.std()):.3f}")

config = {**meta["train_config"], "input": "scale-free-global", "arch_kwargs": arch_kwargs,
          "warm_start": "paper-12L (shipped)"}
save_checkpoint(f"{out}/last", network, arch=meta["architecture"], arch_kwargs=arch_kwargs, grid=shipped.grid,
                normalisation=norm, preset=meta["preset"], history=[],
                extra={"train_config": config, "warm_start": "paper-12L (shipped)"})
print("written", out)
