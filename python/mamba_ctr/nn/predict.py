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

from ..errors import InputError
from ..simulate import network_input
from .checkpoint import Checkpoint

__all__ = ["predict_field"]


def _check_intensity(intensity: np.ndarray, checkpoint: Checkpoint) -> np.ndarray:
    intensity = np.asarray(intensity)
    if intensity.ndim == 2:
        intensity = intensity[None]
    rods, points = checkpoint.grid.shape
    if intensity.ndim != 3 or intensity.shape[1:] != (rods, points):
        raise InputError(f"expected intensities (n, {rods}, {points}) or ({rods}, {points}) on the model's grid, "
                         f"got shape {intensity.shape}")
    off_bragg = intensity[..., ~checkpoint.grid.bragg]
    if not np.all(np.isfinite(off_bragg)) or np.any(off_bragg <= 0):
        raise InputError("intensities must be finite and > 0 away from the Bragg points (the input is ln I)")
    return intensity


def predict_field(checkpoint: Checkpoint, intensity: np.ndarray, *, batch_size: int = 256,
                  device: str | torch.device = "cpu") -> np.ndarray:
    """The film field U predicted by `checkpoint` for intensities I (n, R, NL) (or one structure (R, NL)).

    Returns complex128 (n, R, NL). Runs in eval mode without gradients, `batch_size` structures at a time.
    """
    intensity = _check_intensity(intensity, checkpoint)
    if batch_size < 1:
        raise InputError(f"batch_size must be ≥ 1, got {batch_size!r}")
    norm, model = checkpoint.normalisation, checkpoint.model.to(device).eval()
    if tuple(model.targets) != ("real", "imag"):
        raise InputError(f"a prediction needs both targets; this checkpoint has only {list(model.targets)}")
    out = np.empty(intensity.shape, dtype=np.complex128)
    with torch.no_grad():
        for lo in range(0, intensity.shape[0], batch_size):
            X = norm.apply_x(network_input(intensity[lo:lo + batch_size].astype(np.float64),
                                           checkpoint.grid.bragg))
            y = model(torch.from_numpy(X).to(device)).double().cpu().numpy()
            out[lo:lo + batch_size] = norm.invert_targets(y[:, 0], y[:, 1])
    return out
