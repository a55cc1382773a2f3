"""A faster 1-D U-Net that keeps the rod axis: rods are channels, L is the convolution axis.

Input X (B, R, NL) (16 rods × 240 L for paper-12L); output (B, 2, R, NL): the standardised Re U and Im U of each
rod (the head's 2R channels, Re then Im). One network predicts both targets.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DILATED_BOTTLENECK", "RodsUNet1d"]

# the bottleneck of the fast recipe (`train --dilations 1,2,4,8`): receptive field ~25 → ~77 L points
DILATED_BOTTLENECK = (1, 2, 4, 8)


def _block(c_in: int, c_out: int, kernel: int, dilations: Sequence[int] = (1, 1)) -> nn.Sequential:
    """One conv + batch norm + ReLU per dilation (the default: two plain convs)."""
    layers: list[nn.Module] = []
    for i, dilation in enumerate(dilations):
        layers += [nn.Conv1d(c_out if i else c_in, c_out, kernel, padding="same", dilation=dilation),
                   nn.BatchNorm1d(c_out), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


class RodsUNet1d(nn.Module):
    """Rods-as-channels U-Net: len(widths) levels (the last is the bottleneck), each two k-wide convs with
    batch norm and ReLU; max-pool down, linear upsampling + 1×1 conv up, skip connections by concatenation.

    Args:
        rods: input rods R (in channels); the head has 2R channels (Re, Im), returned as (B, 2, R, NL).
        widths: channels per level, e.g. (64, 128, 256): 3 levels, 2 poolings (NL need not divide; the
            upsampled maps are interpolated to the skip's length).
        kernel: convolution width along L.
        bottleneck_dilations: one conv per entry in the bottleneck, with that dilation. The default (1, 1) is
            the plain block; e.g. (1, 2, 4, 8) widens the receptive field from about 25 to about 77 L points (a
            third of a 240-point rod; the bottleneck runs at stride 4) for about 40 % more FLOPs.
        inputs_per_rod: input channels per rod (2 for the scale-free input: value and mask, nn.inputs).
    """

    targets = ("real", "imag")

    def __init__(self, rods: int = 16, widths: Sequence[int] = (64, 128, 256), kernel: int = 3,
                 bottleneck_dilations: Sequence[int] = (1, 1), inputs_per_rod: int = 1) -> None:
        super().__init__()
        widths = [int(w) for w in widths]
        dilations = [int(d) for d in bottleneck_dilations]
        if len(widths) < 1 or min(widths) < 1 or rods < 1 or kernel < 1:
            raise ValueError(f"need rods ≥ 1, kernel ≥ 1 and ≥ 1 positive widths, got {rods}, {kernel}, {widths}")
        if len(dilations) < 1 or min(dilations) < 1:
            raise ValueError(f"bottleneck_dilations must be ≥ 1 positive integers, got {list(bottleneck_dilations)}")
        self.rods, self.widths, self.kernel = int(rods), widths, int(kernel)
        self.bottleneck_dilations = dilations
        self.in_channels = self.rods * int(inputs_per_rod)
        self.down = nn.ModuleList()
        c = self.in_channels
        for level, w in enumerate(widths):
            last = level == len(widths) - 1
            self.down.append(_block(c, w, kernel, dilations if last else (1, 1)))
            c = w
        self.reduce = nn.ModuleList()
        self.up = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.reduce.append(nn.Conv1d(c, w, 1))
            self.up.append(_block(2 * w, w, kernel))
            c = w
        self.head = nn.Conv1d(c, 2 * self.rods, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[1] != self.in_channels:
            raise ValueError(f"expected input (B, {self.in_channels}, NL), got {tuple(x.shape)}")
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool1d(x, 2, ceil_mode=True)
            x = block(x)
            skips.append(x)
        skips.pop()
        for reduce, block in zip(self.reduce, self.up, strict=True):
            skip = skips.pop()
            x = reduce(F.interpolate(x, size=skip.shape[-1], mode="linear", align_corners=False))
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x).unflatten(1, (2, self.rods))
