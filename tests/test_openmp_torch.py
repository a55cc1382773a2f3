"""torch and the OpenMP kernel in one process: either import order, and the kernel inside DataLoader workers.

libgomp (GCC's OpenMP runtime) is not fork-safe: a child forked after the parent ran an OpenMP parallel region
can deadlock on its first parallel region, and two OpenMP runtimes in one process (torch's and ours, libgomp vs
libomp / a vendored copy) can crash or abort. Each check runs in a fresh subprocess with a timeout, so a
deadlock fails the test instead of hanging the suite. The subprocesses import the same mamba_ctr as this test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import mamba_ctr
from mamba_ctr import _backend

pytest.importorskip("torch")

if _backend.compiled_module() is None:
    if os.environ.get("MAMBA_CTR_BACKEND") == "compiled":
        pytest.fail("MAMBA_CTR_BACKEND=compiled but mamba_ctr._core cannot be imported", pytrace=False)
    pytest.skip("the compiled kernel (mamba_ctr._core) is not built", allow_module_level=True)

TIMEOUT_S = 120

# Runs the compiled kernel with 2 OpenMP threads and checks it against a 1-thread run.
KERNEL = """
import numpy as np
import mamba_ctr

def run_kernel(seed=0):
    preset = mamba_ctr.presets.get("paper-12L")
    s = preset.sample(16, seed=seed)
    two = mamba_ctr.simulate(s, preset.grid, backend="compiled", threads=2)
    one = mamba_ctr.simulate(s, preset.grid, backend="compiled", threads=1)
    assert np.array_equal(one.intensity, two.intensity), "2 threads differ from 1"
    return float(two.intensity.sum())
"""


def _run(code: str, tmp_path: Path) -> str:
    script = tmp_path / "check.py"  # a file, not -c: spawned workers re-import the main module
    script.write_text(KERNEL + textwrap.dedent(code))
    env = dict(os.environ, PYTHONPATH=str(Path(mamba_ctr.__file__).resolve().parent.parent), OMP_NUM_THREADS="2")
    env.pop("MAMBA_CTR_BACKEND", None)
    try:
        proc = subprocess.run([sys.executable, str(script)], env=env, cwd=tmp_path, capture_output=True,
                              text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"deadlock? no result within {TIMEOUT_S} s\nstdout: {error.stdout}\nstderr: {error.stderr}")
    assert proc.returncode == 0, f"exit {proc.returncode}\nstdout: {proc.stdout}\nstderr: {proc.stderr[-4000:]}"
    assert "OK" in proc.stdout, proc.stdout
    return proc.stdout


@pytest.mark.parametrize("first", ["torch", "mamba_ctr"])
def test_import_order(first, tmp_path):
    second = "mamba_ctr" if first == "torch" else "torch"
    _run(f"""
        import importlib
        importlib.import_module({first!r})
        importlib.import_module({second!r})
        import mamba_ctr._core as core
        import torch
        assert core.__file__.startswith(mamba_ctr.__path__[0]), (core.__file__, mamba_ctr.__path__)
        run_kernel()
        torch.set_num_threads(2)
        x = torch.randn(256, 256)
        assert torch.isfinite((x @ x).sum())  # torch's own intra-op pool after ours
        run_kernel(1)
        print("OK", core.have_openmp())
        """, tmp_path)


# libgomp's pool does not survive fork(): the kernel runs single-threaded in a child forked after the parent
# ran a parallel region (pthread_atfork in cpp/src/film_fields.cpp). Without that, the fork case deadlocks.
@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_kernel_in_dataloader_workers_after_the_parent_ran_it(context, tmp_path):
    if context == "fork" and sys.platform != "linux":
        pytest.skip("fork start method: Linux only")
    _run(f"""
        import torch
        from torch.utils.data import DataLoader, Dataset

        class Rods(Dataset):
            def __len__(self):
                return 4

            def __getitem__(self, i):
                return torch.tensor(run_kernel(i))

        if __name__ == "__main__":
            expected = [run_kernel(i) for i in range(4)]  # the parent's OpenMP pool exists before the fork
            loader = DataLoader(Rods(), batch_size=1, num_workers=2, multiprocessing_context={context!r})
            got = [float(b.item()) for b in loader]
            assert len(got) == 4 and all(abs(a - b) <= 1e-6 * abs(a) for a, b in zip(got, expected)), (got, expected)
            print("OK")
        """, tmp_path)
