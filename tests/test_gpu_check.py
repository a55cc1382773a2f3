"""benchmarks/gpu_check.py (issue 17, item 5): the dry run (every step on the CPU at tiny sizes) writes a report
in which every section holds numbers or an explicit reason for skipping; a failing section and the overall time
guard are recorded without losing the other sections."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

import mamba_ctr

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
SECTIONS = ("paper", "rods", "feed", "ddp")


def _module():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


@pytest.mark.slow  # ~25 s on a quiet 2-core machine: three torch imports for the torchrun smoke test
def test_dry_run_reports_every_section(tmp_path):
    out = tmp_path / "gpu_check.json"
    env = dict(os.environ, PYTHONPATH=str(Path(mamba_ctr.__file__).parent.parent), PYTHON=sys.executable)
    done = subprocess.run(["bash", str(SCRIPT), "--dry-run", "--out", str(out)], env=env, capture_output=True,
                          text=True, timeout=240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["environment"]["dry_run"] is True
    for name in SECTIONS:
        assert "error" not in report[name], (name, report[name])
        assert "skipped" in report[name] or report[name], name
    paper = report["paper"]
    assert _positive(paper["samples_per_s"]) and _positive(paper["hours_30_epochs_per_network"])
    assert paper["speedup_over_paper_m2_pro"] == pytest.approx(13.0 / paper["hours_30_epochs_per_network"])
    assert all(_positive(report["rods"][name]["samples_per_s"]) for name in ("plain", "dilated"))
    feed = report["feed"]
    assert [p["workers"] for p in feed["produced"]] == [0, 1]
    assert all(_positive(p["samples_per_s"]) for p in feed["produced"])
    assert set(feed["fed"]) == {"paper (one network)", "rods plain", "rods dilated"}
    assert _positive(feed["end_to_end"]["samples_per_s"])
    ddp = report["ddp"]  # the dry run does the two-process smoke test with gloo on the CPU
    assert ddp["backend"] == "gloo" and ddp["world_size"] == 2 and ddp["all_reduce_ok"]
    assert ddp["max_parameter_difference_between_ranks"] == 0.0


def test_a_failing_section_and_the_time_guard_keep_the_rest(tmp_path, monkeypatch):
    gpu_check = _module()

    def broken(ctx):
        raise RuntimeError("no such kernel")

    def slow(ctx):
        time.sleep(30)
        return {"never": 1}

    monkeypatch.setattr(gpu_check, "SECTIONS", {"paper": broken, "rods": lambda ctx: {"samples_per_s": 1.0},
                                                "feed": slow, "ddp": slow})
    out = tmp_path / "report.json"
    started = time.perf_counter()
    report = gpu_check.run(out, dry_run=True, budget_s=2)
    assert time.perf_counter() - started < 10
    assert "RuntimeError: no such kernel" in report["paper"]["error"]
    assert report["rods"]["samples_per_s"] == 1.0
    assert "time budget" in report["feed"]["error"]
    assert "time budget" in report["ddp"]["skipped"]
    assert json.loads(out.read_text())["rods"]["samples_per_s"] == 1.0
