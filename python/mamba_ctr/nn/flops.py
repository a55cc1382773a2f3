"""FLOPs per sample of the networks, counted by torch.utils.flop_counter.FlopCounterMode (one multiply-add = 2
FLOPs; convolutions and matrix products only, as FlopCounterMode counts them; pooling, activations and norms are
not counted)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from . import PaperTwinUNet, PaperUNet1d, RodsUNet1d, build
from .unet_rods import DILATED_BOTTLENECK

__all__ = ["count_flops", "example_input", "flops_table"]


def example_input(model: torch.nn.Module, batch: int = 1, rods: int = 16, n_L: int = 240) -> torch.Tensor:
    """A zero input of the shape `model` takes for a grid of `rods` × `n_L` points."""
    if isinstance(model, PaperUNet1d):
        return torch.zeros(batch, 1, rods * n_L)
    if isinstance(model, RodsUNet1d):
        return torch.zeros(batch, model.rods, n_L)
    if isinstance(model, PaperTwinUNet):
        return torch.zeros(batch, rods, n_L)
    raise ValueError(f"no example input known for {type(model).__name__}")


def count_flops(model: torch.nn.Module, x: torch.Tensor, backward: bool = False) -> float:
    """FLOPs per sample of one forward (backward=True: forward + backward) pass of `model` on the batch `x`."""
    was_training = model.training
    model.train(backward)
    try:
        with FlopCounterMode(display=False) as counter:
            if backward:
                x = x.clone().requires_grad_(False)
                model(x).sum().backward()
            else:
                with torch.no_grad():
                    model(x)
    finally:
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / x.shape[0]


def flops_table(rods: int = 16, n_L: int = 240) -> dict[str, dict[str, float]]:
    """{network: {"parameters", "forward", "forward+backward"}} (FLOPs per sample) for ONE of the paper's twin
    networks, the default rods network and the rods network with the dilated bottleneck (`--dilations 1,2,4,8`)."""
    networks = {"paper": PaperUNet1d(), "rods": build("rods", rods=rods),
                "rods-dilated": build("rods", rods=rods, bottleneck_dilations=DILATED_BOTTLENECK)}
    table = {}
    for name, model in networks.items():
        x = example_input(model, 2, rods, n_L)
        table[name] = {"parameters": float(sum(p.numel() for p in model.parameters())),
                       "forward": count_flops(model, x), "forward+backward": count_flops(model, x, backward=True)}
    return table


if __name__ == "__main__":  # pragma: no cover
    for name, row in flops_table().items():
        print(f"{name:12s} {row['parameters'] / 1e6:.3f} M parameters, forward {row['forward'] / 1e9:.3f} GFLOP, "
              f"forward+backward {row['forward+backward'] / 1e9:.3f} GFLOP per sample")
