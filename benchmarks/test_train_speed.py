"""Training speed per architecture (issue 5, item 5): samples per second of one optimisation step
(forward, MAE loss, backward, Adam) on the CPU, and on CUDA when a GPU is present, plus the time of one epoch
of the paper protocol (90,000 training samples) extrapolated from it.

    PYTHONPATH=python python3 -m pytest benchmarks/test_train_speed.py -p no:cacheprovider -s

The inputs are random tensors of the paper-12L shape (the cost of a step does not depend on the values).
"paper" is ONE of the twin networks (`PaperUNet1d`, batch 32, the paper's): the twins together take twice as
long per epoch; "rods" predicts Re and Im together (batch 64); "rods-dilated" is the same with `--dilations 1,2,4,8`.
MAMBA_CTR_BENCH_STEPS steps per measurement (default 20, after 3 warm-up steps). bf16 runs only where the CPU
has native bf16 (torch.backends.mkldnn).
"""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")

from mamba_ctr.nn import PaperUNet1d, build  # noqa: E402
from mamba_ctr.nn.train import cpu_bf16_supported  # noqa: E402
from mamba_ctr.nn.unet_rods import DILATED_BOTTLENECK  # noqa: E402

STEPS = int(os.environ.get("MAMBA_CTR_BENCH_STEPS", 20))
EPOCH = 90_000
CASES = {"paper": ({}, 32), "rods": ({"rods": 16}, 64),
         "rods-dilated": ({"rods": 16, "bottleneck_dilations": DILATED_BOTTLENECK}, 64)}


def _devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _bf16_supported(device: str) -> bool:
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return cpu_bf16_supported()


def _step_rate(arch: str, batch: int, device: str, bf16: bool) -> float:
    model = (PaperUNet1d() if arch == "paper" else build("rods", **CASES[arch][0])).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((batch, 1, 3840) if arch == "paper" else (batch, 16, 240), generator=generator).to(device)
    with torch.no_grad():
        y = torch.randn((batch, *model(x[:1]).shape[1:]), generator=generator).to(device)
    dtype = torch.bfloat16 if bf16 else None

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device, dtype=dtype, enabled=bf16):
            loss = torch.nn.functional.l1_loss(model(x).float(), y)
        loss.backward()
        optimizer.step()

    for _ in range(3):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(STEPS):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return STEPS * batch / (time.perf_counter() - start)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("device", _devices())
@pytest.mark.parametrize("arch", list(CASES))
def test_training_samples_per_second(benchmark, arch, device, bf16, record_extra):
    if bf16 and not _bf16_supported(device):
        pytest.skip(f"no native bf16 on this {device}")
    rate = benchmark.pedantic(_step_rate, args=(arch, CASES[arch][1], device, bf16), rounds=1, iterations=1)
    networks = 2 if arch == "paper" else 1  # the paper's twins train one network per target
    epoch_min = networks * EPOCH / rate / 60
    threads = torch.get_num_threads() if device == "cpu" else "-"
    record_extra(f"train {arch} {device} {'bf16' if bf16 else 'fp32'} (threads {threads})",
                 f"{rate:,.1f} samples/s per network; paper-protocol epoch (90,000 samples, {networks} network(s)) "
                 f"≈ {epoch_min:,.1f} min")
    assert rate > 0
