"""From measured or simulated intensities to the film field U with a trained checkpoint.

    >>> from mamba_ctr import models
    >>> from mamba_ctr.nn.predict import predict_field
    >>> U = predict_field(models.load("paper-12L"), rods.intensity)      # (n, R, NL) complex128

The intensities go through the same path as in training (nn.inputs, the transform recorded in the checkpoint):
X = ln I with the Bragg points set to 0, standardised with the checkpoint's statistics, or the scale-free input
(ln I minus its per-rod mean, a mask channel); the networks' standardised Re/Im outputs are turned back into U.

`predict` also checks each prediction against its input (`check_prediction`: |U + S|² with a fitted scale vs I,
mamba_ctr.reconstruct.consistency) and warns (ConsistencyWarning, one line) when the scale is far from 1 or R1 is
above the calibrated threshold.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InputError
from ..reconstruct.consistency import Consistency, forward_consistency
from .checkpoint import Checkpoint
from .inputs import InputTransform

__all__ = ["ConsistencyWarning", "Prediction", "check_prediction", "predict", "predict_field"]


class ConsistencyWarning(UserWarning):
    """A prediction whose |U + S|² does not reproduce its input intensities (see reconstruct.consistency)."""


@dataclass(frozen=True)
class Prediction:
    """film_field: (n, R, NL) complex128 U; consistency: its scale and R1 against the input (None when the
    checkpoint records no preset, so that S is unknown)."""

    film_field: np.ndarray
    consistency: Consistency | None


def _check_intensity(intensity: np.ndarray, checkpoint: Checkpoint, positive: bool = True) -> np.ndarray:
    """(n, R, NL) intensities on the model's grid; `positive`: refuse I ≤ 0 or not finite off the Bragg points (a
    scale-free model masks them instead)."""
    intensity = np.asarray(intensity)
    if intensity.ndim == 2:
        intensity = intensity[None]
    rods, points = checkpoint.grid.shape
    if intensity.ndim != 3 or intensity.shape[1:] != (rods, points):
        raise InputError(f"expected intensities (n, {rods}, {points}) or ({rods}, {points}) on the model's grid, "
                         f"got shape {intensity.shape}")
    off_bragg = intensity[..., ~checkpoint.grid.bragg]
    if positive and (not np.all(np.isfinite(off_bragg)) or np.any(off_bragg <= 0)):
        raise InputError("intensities must be finite and > 0 away from the Bragg points (the input is ln I)")
    return intensity


def predict_field(checkpoint: Checkpoint, intensity: np.ndarray, *, batch_size: int = 256,
                  device: str | torch.device = "cpu", mask: np.ndarray | None = None) -> np.ndarray:
    """The film field U predicted by `checkpoint` for intensities I (n, R, NL) (or one structure (R, NL)).

    The input transform is the one the checkpoint was trained with (nn.inputs.InputTransform.of_checkpoint).
    mask: (n, R, NL) or broadcastable bool, False = not measured (scale-free models only). Returns complex128
    (n, R, NL). Runs in eval mode without gradients, `batch_size` structures at a time.
    """
    transform = InputTransform.of_checkpoint(checkpoint)
    intensity = _check_intensity(intensity, checkpoint, positive=not transform.is_scale_free)
    if mask is not None:
        mask = np.broadcast_to(np.asarray(mask, dtype=bool), intensity.shape)
    if batch_size < 1:
        raise InputError(f"batch_size must be ≥ 1, got {batch_size!r}")
    norm, model = checkpoint.normalisation, checkpoint.model.to(device).eval()
    if tuple(model.targets) != ("real", "imag"):
        raise InputError(f"a prediction needs both targets; this checkpoint has only {list(model.targets)}")
    out = np.empty(intensity.shape, dtype=np.complex128)
    with torch.no_grad():
        for lo in range(0, intensity.shape[0], batch_size):
            X = transform(intensity[lo:lo + batch_size], None if mask is None else mask[lo:lo + batch_size])
            y = model(torch.from_numpy(X).to(device)).double().cpu().numpy()
            out[lo:lo + batch_size] = norm.invert_targets(y[:, 0], y[:, 1])
    return out


def check_prediction(checkpoint: Checkpoint, intensity: np.ndarray, film_field: np.ndarray,
                     mask: np.ndarray | None = None, r1_threshold: float | None = None) -> Consistency | None:
    """Scale and R1 of |U + S|² against the intensities (n, R, NL) (on the points of `mask`, broadcastable, if
    given), S being the substrate field of the checkpoint's preset on its grid; None when the checkpoint records
    no preset. A scale-free model's check never flags the scale (that of the per-rod input fits one scale per
    rod), and its input may hold unmeasured points (I ≤ 0 or not finite), as `predict_field` takes them.
    `r1_threshold`: None for the checkpoint's own (`reconstruct.calibration.consistency_threshold`)."""
    from .. import families
    from ..reconstruct.calibration import consistency_threshold
    from ..simulate import simulate

    stored = checkpoint.metadata.get("preset")
    if not stored:
        return None
    preset = families.from_dict(stored)
    substrate = simulate(preset.nominal(), checkpoint.grid).substrate_field
    if r1_threshold is None:
        r1_threshold = consistency_threshold(None, checkpoint)[0]
    transform = InputTransform.of_checkpoint(checkpoint)  # any scale is fine for a scale-free input
    intensity = _check_intensity(intensity, checkpoint, positive=not transform.is_scale_free)
    return forward_consistency(film_field, substrate, intensity, checkpoint.grid.bragg, mask,
                               scale_checked=not transform.is_scale_free, r1_threshold=r1_threshold,
                               scale_per_rod=transform.per_rod)


def predict(checkpoint: Checkpoint, intensity: np.ndarray, **kwargs) -> Prediction:
    """`predict_field` (same arguments) and `check_prediction`; a ConsistencyWarning (one line) names the
    predictions that do not reproduce their intensities. Nothing is refused: the field is returned as predicted."""
    film_field = predict_field(checkpoint, intensity, **kwargs)
    consistency = check_prediction(checkpoint, intensity, film_field)
    message = None if consistency is None else consistency.warning()
    if message:
        warnings.warn(message, ConsistencyWarning, stacklevel=2)
    return Prediction(film_field, consistency)
