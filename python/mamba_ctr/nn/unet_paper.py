"""The paper's 1-D U-Net, exactly (see shared/design/learning.md): one network per target (Re U or Im U).

`PaperUNet1d` is one network: the flattened network input X, (B, 1, R·NL) rod-major (16 × 240 = 3840 for
paper-12L) → one standardised target, the same shape; 2,592,129 parameters; R·NL must be divisible by 4 (two
poolings). `PaperTwinUNet` is the twins as one module with the trainer's interface: X (B, R, NL) → (B, 2, R, NL).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["PaperTwinUNet", "PaperUNet1d"]

# the paper's k=2 convs are "same" padded (PyTorch pads one more zero on the right); that is intended
warnings.filterwarnings("ignore", message="Using padding='same' with even kernel lengths")


def _double(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv1d(c_in, c_out, 3, padding="same"), nn.ReLU(inplace=True),
                         nn.Conv1d(c_out, c_out, 3, padding="same"), nn.ReLU(inplace=True))


def _up(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv1d(c_in, c_out, 2, padding="same"),
                         nn.ReLU(inplace=True))


class PaperUNet1d(nn.Module):
    """enc 1→128→128, pool, 128→256→256, pool, mid 256→512→512, up 512→256 (k=2), concat, 512→256→256,
    up 256→128 (k=2), concat, 256→128→128, head 128→1 (k=1, linear). All convs 'same' padded.

    Args:
        in_channels, out_channels: 1 and 1 in the paper.
        base: width of the first level (128 in the paper; the others are 2× and 4×).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, base: int = 128) -> None:
        super().__init__()
        if min(in_channels, out_channels, base) < 1:
            raise ValueError(f"need channels and base ≥ 1, got {in_channels}, {out_channels}, {base}")
        self.enc1 = _double(in_channels, base)
        self.enc2 = _double(base, 2 * base)
        self.mid = _double(2 * base, 4 * base)
        self.pool = nn.MaxPool1d(2)
        self.up2 = _up(4 * base, 2 * base)
        self.dec2 = _double(4 * base, 2 * base)
        self.up1 = _up(2 * base, base)
        self.dec1 = _double(2 * base, base)
        self.head = nn.Conv1d(base, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] % 4:
            raise ValueError(f"expected input (B, C, N) with N divisible by 4, got {tuple(x.shape)}")
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], dim=1))
        return self.head(d1)


class PaperTwinUNet(nn.Module):
    """The paper's twin networks as one module: one `PaperUNet1d` per target on the flattened input.

    Input X (B, R, NL); output (B, T, R, NL), the standardised targets in the order of `targets` (default
    ("real", "imag"): Re U, Im U; the paper trains one alone with target "real" or "imag"). The sub-networks are
    the attributes `real` and `imag`, so the state-dict keys are "real.<parameter>", "imag.<parameter>".

    Args:
        targets: which of "real" and "imag" to predict.
        base: width of the first level of each network (the paper's 128).
    """

    def __init__(self, targets: Sequence[str] = ("real", "imag"), base: int = 128) -> None:
        super().__init__()
        self.targets = tuple(targets)
        if not self.targets or len(set(self.targets)) < len(self.targets) or set(self.targets) - {"real", "imag"}:
            raise ValueError(f"targets must be distinct entries of real, imag; got {list(targets)}")
        for target in self.targets:
            self.add_module(target, PaperUNet1d(base=base))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3:
            raise ValueError(f"expected input (B, R, NL), got {tuple(x.shape)}")
        b, r, n = x.shape
        flat = x.reshape(b, 1, r * n)
        return torch.stack([self.get_submodule(t)(flat).reshape(b, r, n) for t in self.targets], dim=1)
