"""A GPU check, ready for the day a GPU is lent (issue 17, item 5). Run it through benchmarks/gpu_check.sh.

    python benchmarks/gpu_check.py [--out benchmarks/results/gpu_check.json] [--budget-s 450]
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check.json     # every step on the CPU, tiny sizes

Sections (each in its own try/except: an error is recorded as text in its section and the rest still run; the
JSON is rewritten after every section, so a kill keeps what was done; a SIGALRM guard stops the whole run at
--budget-s and every section left is recorded as skipped):

* ``paper``: ONE of the paper's twin networks (`nn.build("paper", targets=["real"])`), batch 32, CUDA with AMP
  (bf16 where supported, else fp16 with a grad scaler, as `nn.train` does): a fixed number of optimisation steps
  (forward, MAE, backward, Adam) after warm-up, extrapolated to an epoch of the paper's 90,000 training samples
  (+ validation forward passes over its 10,000) and to 30 epochs, against the paper's ~13 h per network on an
  Apple M2 Pro (shared/design/learning.md).
* ``rods``: samples/s of the rods networks (`nn.build("rods")`, plain and dilated bottleneck), batch 64, AMP.
* ``feed``: whether on-the-fly simulation on the CPU keeps the GPU fed: samples/s produced by the stream dataset
  (`data.torch_data.SimulatedRods` through a DataLoader, with 0 and with k workers) against samples/s consumed by
  a training step of each network above, and an end-to-end rods run (stream → step) against the step alone.
* ``ddp``: a two-process NCCL torchrun smoke test (all-reduce, then DDP steps of the rods network, parameters equal
  on both ranks afterwards) where two GPUs exist; else skipped with the reason. The dry run does it with gloo.

Without CUDA (and without --dry-run) the GPU sections are skipped with the reason; the CPU side of ``feed`` runs.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
PAPER_EPOCH, PAPER_VAL, PAPER_EPOCHS, PAPER_HOURS_M2_PRO = 90_000, 10_000, 30, 13.0
SIZES = {  # real run / dry run
    False: {"paper_kwargs": {}, "paper_batch": 32, "rods_kwargs": {}, "rods_batch": 64, "warmup": 5,
            "steps": 40, "section_s": 90.0, "pilot": 4096, "feed_batches": 100, "feed_workers": None,
            "end_to_end_steps": 100},
    True: {"paper_kwargs": {"base": 4}, "paper_batch": 4, "rods_kwargs": {"widths": (8, 16)}, "rods_batch": 8,
           "warmup": 1, "steps": 2, "section_s": 20.0, "pilot": 64, "feed_batches": 3, "feed_workers": 1,
           "end_to_end_steps": 2},
}
PRESET = "paper-12L"


class TimeGuard(Exception):
    """The overall time budget ran out."""


def _skip(reason: str) -> dict[str, str]:
    return {"skipped": reason}


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _autocast(device):
    """(autocast factory, GradScaler, dtype name): bf16 where supported, else fp16 (scaled), as nn.train does."""
    import torch

    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:  # the dry run: bf16 autocast on the CPU exercises the same code path
        dtype = torch.bfloat16
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler, str(dtype).removeprefix("torch.")


def _stepper(model, device, batch: int, shape: tuple[int, int]) -> tuple[Callable[..., None], str]:
    """A training step (forward, MAE, backward, Adam) with AMP on fixed random inputs, as `nn.train` does it."""
    import torch
    import torch.nn.functional as F

    autocast, scaler, dtype = _autocast(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn((batch, *shape), generator=generator).to(device)
    with torch.no_grad():
        y0 = torch.randn((batch, *model(x0[:1]).shape[1:]), generator=generator).to(device)

    def step(x=None, y=None) -> None:
        x = x0 if x is None else x.to(device, non_blocking=True)
        y = y0 if y is None else y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with autocast():
            loss = F.l1_loss(model(x).float(), y)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()

    return step, dtype


def _timed(run: Callable[[], None], device, warmup: int, steps: int, max_s: float) -> tuple[int, float]:
    """(steps done, seconds): `steps` calls after `warmup`, fewer if `max_s` runs out (at least one)."""
    for _ in range(warmup):
        run()
    _sync(device)
    start, done = time.perf_counter(), 0
    while done < steps and (done == 0 or time.perf_counter() - start < max_s):
        run()
        done += 1
    _sync(device)
    return done, time.perf_counter() - start


def section_paper(ctx: dict) -> dict:
    import torch

    from mamba_ctr.nn import build, count_parameters

    device, size = ctx["device"], ctx["size"]
    model = build("paper", targets=["real"], **size["paper_kwargs"]).to(device)
    step, dtype = _stepper(model, device, size["paper_batch"], ctx["grid_shape"])
    done, seconds = _timed(step, device, size["warmup"], size["steps"], size["section_s"] / 2)
    x = torch.randn((size["paper_batch"], *ctx["grid_shape"]), device=device)
    autocast = _autocast(device)[0]

    def forward() -> None:
        with torch.no_grad(), autocast():
            model(x)

    f_done, f_seconds = _timed(forward, device, 1, size["steps"], size["section_s"] / 4)
    step_s, forward_s = seconds / done, f_seconds / f_done
    batch = size["paper_batch"]
    epoch_s = math.ceil(PAPER_EPOCH / batch) * step_s + math.ceil(PAPER_VAL / batch) * forward_s
    total_h = PAPER_EPOCHS * epoch_s / 3600
    return {"network": "one of PaperTwinUNet's twins", "parameters": count_parameters(model), "batch": batch,
            "amp_dtype": dtype, "steps_timed": done, "step_s": step_s, "samples_per_s": batch / step_s,
            "val_forward_s_per_batch": forward_s, "epoch_s": epoch_s, "epochs": PAPER_EPOCHS,
            "hours_30_epochs_per_network": total_h, "hours_twins": 2 * total_h,
            "paper_hours_per_network_m2_pro": PAPER_HOURS_M2_PRO,
            "speedup_over_paper_m2_pro": PAPER_HOURS_M2_PRO / total_h}


def section_rods(ctx: dict) -> dict:
    from mamba_ctr.nn import build
    from mamba_ctr.nn.unet_rods import DILATED_BOTTLENECK

    device, size = ctx["device"], ctx["size"]
    out: dict[str, Any] = {"batch": size["rods_batch"]}
    rods = ctx["grid_shape"][0]
    for name, extra in (("plain", {}), ("dilated", {"bottleneck_dilations": DILATED_BOTTLENECK})):
        try:
            model = build("rods", rods=rods, **size["rods_kwargs"], **extra).to(device)
            step, dtype = _stepper(model, device, size["rods_batch"], ctx["grid_shape"])
            done, seconds = _timed(step, device, size["warmup"], 3 * size["steps"], size["section_s"] / 2)
            out[name] = {"amp_dtype": dtype, "steps_timed": done, "samples_per_s": done * size["rods_batch"] / seconds}
        except TimeGuard:
            raise
        except Exception as error:  # one network's failure does not lose the other's figure
            out[name] = {"error": f"{type(error).__name__}: {error}"}
    return out


def _normalisation(preset, n: int):
    from mamba_ctr import simulate
    from mamba_ctr.data.stats import Stats
    from mamba_ctr.data.torch_data import Normalisation

    rods = simulate(preset.sample(n, seed=1), preset.grid)
    assert rods.film_field is not None
    return Normalisation.from_stats(Stats.of_arrays(rods.intensity, rods.film_field, preset.grid.bragg))


def _loader(preset, normalisation, batch: int, n_batches: int, workers: int, start: int):
    from torch.utils.data import DataLoader

    from mamba_ctr.data.torch_data import SimulatedRods

    stream = SimulatedRods(preset, seed=0, start=start, stop=start + batch * n_batches, batch_size=batch,
                           normalisation=normalisation)
    return DataLoader(stream, batch_size=None, num_workers=workers, pin_memory=_pin())


def _pin() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _produced(preset, normalisation, batch: int, n_batches: int, workers: int, start: int, max_s: float) -> dict:
    """Samples/s of the stream alone (workers started before the clock; the first batch not timed)."""
    iterator = iter(_loader(preset, normalisation, batch, n_batches + 1, workers, start))
    next(iterator)
    t0, count = time.perf_counter(), 0
    for x, _, _ in iterator:
        count += int(x.shape[0])
        if time.perf_counter() - t0 > max_s:
            break
    seconds = time.perf_counter() - t0
    return {"workers": workers, "samples": count, "samples_per_s": count / seconds}


def section_feed(ctx: dict) -> dict:
    from mamba_ctr.nn import build
    from mamba_ctr.physics.presets import resolve

    device, size = ctx["device"], ctx["size"]
    preset = resolve(PRESET)
    normalisation = _normalisation(preset, size["pilot"])
    batch = size["rods_batch"]
    cpus = os.cpu_count() or 1
    workers = size["feed_workers"] if size["feed_workers"] is not None else max(1, min(8, cpus - 2))
    produced = [_produced(preset, normalisation, batch, size["feed_batches"], w, 10**6 * (i + 1),
                          size["section_s"] / 4) for i, w in enumerate((0, workers))]
    best = max(p["samples_per_s"] for p in produced)
    out: dict[str, Any] = {"preset": PRESET, "batch": batch, "cpus": cpus, "produced": produced,
                           "produced_best_samples_per_s": best}
    consumers = {"paper (one network)": ctx["results"].get("paper", {}).get("samples_per_s")}
    for name in ("plain", "dilated"):
        consumers[f"rods {name}"] = ctx["results"].get("rods", {}).get(name, {}).get("samples_per_s")
    out["consumed_samples_per_s"] = consumers
    out["produced_over_consumed"] = {name: (best / rate if rate else None) for name, rate in consumers.items()}
    out["fed"] = {name: (best >= rate if rate else None) for name, rate in consumers.items()}
    if device.type != "cuda" and not ctx["dry_run"]:
        out["end_to_end"] = _skip("no CUDA device: only the CPU side was measured")
        return out
    model = build("rods", rods=ctx["grid_shape"][0], **size["rods_kwargs"]).to(device)
    step, _ = _stepper(model, device, batch, ctx["grid_shape"])
    loader = iter(_loader(preset, normalisation, batch, size["end_to_end_steps"] + 1, workers, 10**7))
    step(*_targets(next(loader)))  # workers started, first batch and warm-up not timed
    _sync(device)
    t0, steps = time.perf_counter(), 0
    for item in loader:
        step(*_targets(item))
        steps += 1
        if time.perf_counter() - t0 > size["section_s"] / 4:
            break
    _sync(device)
    rate = steps * batch / (time.perf_counter() - t0)
    alone = consumers["rods plain"]
    out["end_to_end"] = {"network": "rods plain", "workers": workers, "steps": steps, "samples_per_s": rate,
                         "fraction_of_step_alone": rate / alone if alone else None}
    return out


def _targets(item):
    import torch

    x, re, im = item
    return x, torch.stack([re, im], dim=1)


def section_ddp(ctx: dict) -> dict:
    import torch

    if not ctx["dry_run"]:
        if not torch.cuda.is_available():
            return _skip("no CUDA device")
        if torch.cuda.device_count() < 2:
            return _skip(f"{torch.cuda.device_count()} CUDA device(s): the NCCL smoke test needs 2")
    out_file = ctx["out"].with_suffix(".ddp.json")
    out_file.unlink(missing_ok=True)
    import mamba_ctr

    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join(filter(None, [str(Path(mamba_ctr.__file__).parent.parent),
                                                        os.environ.get("PYTHONPATH")])))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).resolve()), "--ddp-worker", str(out_file)] + (["--dry-run"] if ctx["dry_run"] else [])
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=max(1.0, min(180, ctx["left"]())))
    if done.returncode != 0:
        raise RuntimeError(f"torchrun exited {done.returncode}: {(done.stderr or done.stdout)[-1500:]}")
    result = json.loads(out_file.read_text())
    out_file.unlink()
    return {**result, "wall_s": time.perf_counter() - start}


def ddp_worker(out_file: Path, dry_run: bool) -> None:
    """One rank of the torchrun smoke test: all-reduce, DDP steps of the rods network, parameters compared."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mamba_ctr.nn import build

    size = SIZES[dry_run]
    rank = int(os.environ["RANK"])
    device = torch.device("cpu") if dry_run else torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = "gloo" if dry_run else "nccl"
    dist.init_process_group(backend)
    try:
        value = torch.full((4,), float(rank + 1), device=device)
        dist.all_reduce(value)
        torch.manual_seed(0)
        model = DistributedDataParallel(build("rods", rods=16, **size["rods_kwargs"]).to(device),
                                        device_ids=[device.index] if device.type == "cuda" else None)
        step, _ = _stepper(model, device, size["rods_batch"], (16, 240))
        torch.manual_seed(rank)  # different data per rank: DDP must still keep the parameters equal
        x = torch.randn((size["rods_batch"], 16, 240))
        y = torch.randn((size["rods_batch"], 2, 16, 240))
        done, seconds = _timed(lambda: step(x, y), device, 1, size["steps"], math.inf)  # same count on both ranks
        flat = torch.cat([p.detach().float().reshape(-1) for p in model.parameters()])
        reference = flat.clone()
        dist.broadcast(reference, 0)
        differ = torch.tensor([float((flat - reference).abs().max())], device=device)
        dist.all_reduce(differ, op=dist.ReduceOp.MAX)
        if rank == 0:
            out_file.write_text(json.dumps({
                "backend": backend, "world_size": dist.get_world_size(),
                "all_reduce_ok": bool(torch.all(value == 3.0)), "ddp_steps": done,
                "samples_per_s_per_rank": done * size["rods_batch"] / seconds,
                "max_parameter_difference_between_ranks": float(differ)}))
    finally:
        dist.destroy_process_group()


SECTIONS: dict[str, Callable[[dict], dict]] = {"paper": section_paper, "rods": section_rods, "feed": section_feed,
                                               "ddp": section_ddp}
GPU_SECTIONS = ("paper", "rods")


def _environment(dry_run: bool) -> dict:
    env: dict[str, Any] = {"python": platform.python_version(), "machine": platform.platform(),
                           "cpus": os.cpu_count(), "load_average_1_5_15": list(os.getloadavg()), "dry_run": dry_run,
                           "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    try:
        import mamba_ctr

        env["mamba_ctr"] = mamba_ctr.__version__
        import torch

        env["torch"] = torch.__version__
        env["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            env["cuda"] = torch.version.cuda
            env["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            env["bf16"] = torch.cuda.is_bf16_supported()
    except Exception as error:
        env["error"] = f"{type(error).__name__}: {error}"
    return env


def _write(path: Path, report: dict) -> None:
    try:
        from mamba_ctr._files import write_json

        write_json(path, report, fsync=False)
    except ImportError:
        path.write_text(json.dumps(report, indent=2, default=str) + "\n")


def run(out: Path, dry_run: bool, budget_s: float) -> dict:
    """Every section in order; the report (also written to `out` after each section)."""
    started = time.perf_counter()
    report: dict[str, Any] = {"environment": _environment(dry_run), "budget_s": budget_s}
    out.parent.mkdir(parents=True, exist_ok=True)
    _write(out, report)

    def alarm(signum, frame):
        raise TimeGuard(f"the overall time budget of {budget_s:.0f} s ran out")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(max(1, int(budget_s)))
    try:
        import torch
    except ImportError as error:
        torch = None
        report["error"] = f"torch is not installed: {error}"
    def left() -> float:
        return budget_s - (time.perf_counter() - started)

    ctx: dict[str, Any] = {"dry_run": dry_run, "size": SIZES[dry_run], "results": report, "out": out,
                           "grid_shape": (16, 240), "left": left}
    if torch is not None:
        ctx["device"] = torch.device("cuda" if torch.cuda.is_available() and not dry_run else "cpu")
        if dry_run:
            torch.set_num_threads(min(2, os.cpu_count() or 1))
    try:
        for name, section in SECTIONS.items():
            t0 = time.perf_counter()
            if torch is None:
                report[name] = _skip("torch is not installed")
            elif name in GPU_SECTIONS and ctx["device"].type != "cuda" and not dry_run:
                report[name] = _skip("no CUDA device (torch.cuda.is_available() is False)")
            elif left() < 0.5:
                report[name] = _skip("the overall time budget ran out before this section")
            else:
                try:
                    report[name] = section(ctx)
                except TimeGuard as error:
                    report[name] = {"error": str(error)}
                    raise
                except Exception as error:
                    report[name] = {"error": f"{type(error).__name__}: {error}",
                                    "traceback": traceback.format_exc(limit=4)[-2000:]}
            report[name]["section_s"] = time.perf_counter() - t0
            _write(out, report)
    except TimeGuard:
        for name in SECTIONS:
            report.setdefault(name, _skip("the overall time budget ran out before this section"))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    report["total_s"] = time.perf_counter() - started
    _write(out, report)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes (seconds)")
    parser.add_argument("--out", type=Path, default=None, help="the JSON report (default "
                        "benchmarks/results/gpu_check.json; gpu_check_dry_run.json with --dry-run)")
    parser.add_argument("--budget-s", type=float, default=450.0, help="hard overall time limit, s")
    parser.add_argument("--ddp-worker", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.ddp_worker is not None:
        ddp_worker(args.ddp_worker, args.dry_run)
        return 0
    out = args.out or RESULTS / ("gpu_check_dry_run.json" if args.dry_run else "gpu_check.json")
    report = run(out, args.dry_run, args.budget_s)
    failed = [name for name in SECTIONS if "error" in report.get(name, {})]
    print(f"gpu_check: {out} ({report['total_s']:.1f} s); sections with errors: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
