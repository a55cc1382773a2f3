"""From measured or simulated intensities to the film field U with a trained checkpoint.

    >>> from mamba_ctr import models
    >>> from mamba_ctr.nn.predict import predict_field
    >>> U = predict_field(models.load("paper-12L"), rods.intensity)      # (n, R, NL) complex128

The intensities go through the same path as in training: X = ln I with the Bragg points set to 0, standardised
with the checkpoint's statistics; the networks' standardised Re/Im outputs are turned back into U.
"""

from __future__ import annotations

import numpy as np
import torch

from ..simulate import network_input
from .checkpoint import Checkpoint

__all__ = ["predict_field"]


def _check_intensity(intensity: np.ndarray, checkpoint: Checkpoint) -> np.ndarray:
    intensity = np.asarray(intensity)
    if intensity.ndim == 2:
        intensity = intensity[None]
    rods, points = checkpoint.grid.shape
    if intensity.ndim != 3 or intensity.shape[1:] != (rods, points):
        raise ValueError(f"expected intensities (n, {rods}, {points}) or ({rods}, {points}) on the model's grid, "
                         f"got shape {intensity.shape}")
    off_bragg = intensity[..., ~checkpoint.grid.bragg]
    if not np.all(np.isfinite(off_bragg)) or np.any(off_bragg <= 0):
        raise ValueError("intensities must be finite and > 0 away from the Bragg points (the input is ln I)")
    return intensity


def predict_field(checkpoint: Checkpoint, intensity: np.ndarray, *, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """The film field U predicted by `checkpoint` for intensities I (n, R, NL) (or one structure (R, NL)).

    Returns complex128 (n, R, NL). Runs in eval mode without gradients, `batch_size` structures at a time.
    """
    intensity = _check_intensity(intensity, checkpoint)
    if batch_size < 1:
        raise ValueError(f"batch_size must be ≥ 1, got {batch_size!r}")
    norm, rods = checkpoint.normalisation, checkpoint.grid.shape[0]
    models = {name: model.to(device).eval() for name, model in checkpoint.models.items()}
    out = np.empty(intensity.shape, dtype=np.complex128)
    with torch.no_grad():
        for lo in range(0, intensity.shape[0], batch_size):
            X = norm.apply_x(network_input(intensity[lo:lo + batch_size].astype(np.float64),
                                           checkpoint.grid.bragg))
            x = torch.from_numpy(X).to(device)
            re, im = _standardised_outputs(checkpoint.arch, models, x, rods)
            out[lo:lo + batch_size] = norm.invert_targets(re.double().cpu().numpy(), im.double().cpu().numpy())
    return out


def _standardised_outputs(arch: str, models: dict, x: torch.Tensor, rods: int) -> tuple[torch.Tensor, torch.Tensor]:
    if "both" in models:
        y = models["both"](x)
        return y[:, :rods], y[:, rods:]
    if set(models) != {"real", "imag"}:
        raise ValueError(f"a prediction needs both targets; this checkpoint has only {sorted(models)}")
    b, r, n = x.shape
    flat = x.reshape(b, 1, r * n) if arch == "paper" else x
    return tuple(models[name](flat).reshape(b, r, n) for name in ("real", "imag"))  # type: ignore[return-value]
