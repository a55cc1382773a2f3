"""Neural networks for phase retrieval of crystal truncation rods (needs torch: ``pip install mamba-ctr[train]``).

    >>> from mamba_ctr.nn import PaperUNet1d, RodsUNet1d, build
    >>> net = PaperUNet1d()                 # the paper's 1-D U-Net, (B, 1, 3840) -> (B, 1, 3840), 2,592,129 parameters
    >>> fast = RodsUNet1d()                 # rods as channels, (B, 16, 240) -> (B, 32, 240) = Re and Im of all rods

Nothing else in mamba_ctr imports this package, so `import mamba_ctr` works without torch.
"""

from __future__ import annotations

from .unet_paper import PaperUNet1d
from .unet_rods import RodsUNet1d

ARCHITECTURES = {"paper": PaperUNet1d, "rods": RodsUNet1d}

__all__ = ["ARCHITECTURES", "PaperUNet1d", "RodsUNet1d", "build", "count_parameters"]


def build(arch: str, **kwargs):
    """A network of architecture `arch` ("paper" or "rods") with constructor arguments `kwargs`."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[arch](**kwargs)


def count_parameters(module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
