"""Neural networks for phase retrieval of crystal truncation rods (needs torch: ``pip install mamba-ctr[train]``).

    >>> from mamba_ctr.nn import PaperTwinUNet, RodsUNet1d, build
    >>> twins = PaperTwinUNet()             # the paper's twin U-Nets as one module, 2 × 2,592,129 parameters
    >>> fast = RodsUNet1d()                 # rods as channels

Every architecture of `build` takes the standardised network input X (B, R, NL) (16 × 240 for paper-12L) and
returns the standardised targets (B, T, R, NL) in the order of its `targets` attribute (("real", "imag"): Re U,
Im U), so the trainer, the checkpoints and the prediction treat them alike. Nothing else in mamba_ctr imports
this package, so `import mamba_ctr` works without torch.
"""

from __future__ import annotations

from ..errors import InputError
from .unet_paper import PaperTwinUNet, PaperUNet1d
from .unet_rods import RodsUNet1d

ARCHITECTURES = {"paper": PaperTwinUNet, "rods": RodsUNet1d}
Network = PaperTwinUNet | RodsUNet1d  # what `build` returns

__all__ = ["ARCHITECTURES", "Network", "PaperTwinUNet", "PaperUNet1d", "RodsUNet1d", "build", "count_parameters"]


def build(arch: str, **kwargs) -> Network:
    """A network of architecture `arch` ("paper" or "rods") with constructor arguments `kwargs`."""
    if arch not in ARCHITECTURES:
        raise InputError(f"unknown architecture {arch!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    return ARCHITECTURES[arch](**kwargs)


def count_parameters(module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
