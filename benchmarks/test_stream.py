"""On-the-fly training stream (issue 4, item 9): batches of 32 per second from SimulatedRods.

    PYTHONPATH=python python3 -m pytest benchmarks/test_stream.py -p no:cacheprovider

paper-12L, batches (X, re, im) of 32 standardised float32 tensors (32, 16, 240), simulated by the kernel
(sampling, kernel, ln I, standardisation, tensors), read through DataLoader(batch_size=None) with
num_workers 0 (the kernel on all cores of the process) and 2 (one kernel thread per worker); the time
includes starting the workers. MAMBA_CTR_BENCH_BATCHES batches per measurement (default 400).

Target: faster than the paper network consumes them on a GPU. That rate is an ASSUMPTION, not a
measurement: the paper network costs ~26 GFLOP per training sample (forward + backward, learning.md); an
H100 at an assumed sustained 100 TFLOP/s for its convolutions in bf16/fp16 would take
100e12 / 26e9 ≈ 3,850 samples/s ≈ 120 batches of 32 per second.
"""

from __future__ import annotations

import os
import time

import pytest

torch = pytest.importorskip("torch")

from torch.utils.data import DataLoader  # noqa: E402

from mamba_ctr import simulate  # noqa: E402
from mamba_ctr.data.stats import Stats  # noqa: E402
from mamba_ctr.data.torch_data import Normalisation, SimulatedRods  # noqa: E402
from mamba_ctr.physics import presets  # noqa: E402

BATCHES = int(os.environ.get("MAMBA_CTR_BENCH_BATCHES", 400))
BATCH = 32
GPU_FLOPS = 100e12           # assumed sustained conv throughput of an H100 in bf16/fp16 (not measured)
FLOP_PER_SAMPLE = 26e9       # paper network, forward + backward (learning.md)
GPU_BATCHES_PER_S = GPU_FLOPS / FLOP_PER_SAMPLE / BATCH


@pytest.fixture(scope="module")
def normalisation() -> Normalisation:
    preset = presets.get("paper-12L")
    pilot = 2048  # a pilot sample from an index range the stream below never uses
    rods = simulate(preset.sample(pilot, 0, 10**7), preset.grid)
    return Normalisation.from_stats(Stats.of_arrays(rods.intensity, rods.film_field, preset.grid.bragg))


@pytest.mark.parametrize("workers", [0, 2])
def test_stream_batches_per_second(benchmark, normalisation, workers, record_extra):
    dataset = SimulatedRods("paper-12L", 0, 0, BATCHES * BATCH, BATCH, normalisation)
    next(iter(DataLoader(SimulatedRods("paper-12L", 0, 0, BATCH, BATCH, normalisation), batch_size=None)))  # warm

    def run() -> int:
        count = 0
        for X, re, im in DataLoader(dataset, batch_size=None, num_workers=workers):
            assert X.shape == re.shape == im.shape == (BATCH, 16, 240)
            count += 1
        return count

    start = time.perf_counter()
    count = benchmark.pedantic(run, rounds=1, iterations=1)
    seconds = time.perf_counter() - start
    assert count == BATCHES
    rate = count / seconds
    benchmark.extra_info["batches_per_s"] = rate
    record_extra(f"SimulatedRods paper-12L, batches of {BATCH}/s, num_workers={workers}",
                 f"{rate:,.1f} ({rate * BATCH:,.0f} structures/s, {os.cpu_count()} CPUs); assumed GPU consumption "
                 f"{GPU_BATCHES_PER_S:,.0f} batches/s (H100 at 100 TFLOP/s, 26 GFLOP/sample: an assumption)")
