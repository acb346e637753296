"""``python -m neuroenc.bench gpu`` on the CPU with tiny sizes: everything but the GPU itself."""

import json
import os
import sys
import time
from pathlib import Path

import pytest
from conftest import MICRO_DATA, run_cli

from neuroenc.bench._processes import Job, run_jobs
from neuroenc.bench.gpu import BUDGETS_S, TOLERANCE_BPS

TINY_STEPS = ["--device", "cpu", "--presets", "vivit_small", "--input", "16,12,16", "--batch", "1", "--repeats", "1",
              "--warmup", "0", "--steps", "2"]
# a loaded CPU must not trip the budgets the H200 gets: these tests check what is written, not the clock
GENEROUS = ["--budget", "training=900,ddp=900,steps=900,compile=900"]


def test_the_default_budgets_fit_8_minutes():
    assert sum(BUDGETS_S.values()) <= 8 * 60 - 30  # the rest: this process's start and the report


@pytest.mark.slow  # ~60 s: keeps `make test` near 10 minutes; CI runs it with `make test-slow`
def test_gpu_command_on_a_cpu_writes_json_and_markdown_and_records_a_failed_part(tmp_path, monkeypatch):
    """compile=true without a C++ compiler fails: recorded with its error, the other parts still run."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.delenv("CXX", raising=False)
    out = tmp_path / "out"
    r = run_cli(["gpu", *MICRO_DATA, *TINY_STEPS, "--variants", "fp32,bf16+compile", "--models", "default",
                 "--out", str(out), *GENEROUS], cwd=tmp_path, module="neuroenc.bench")
    assert r.returncode == 0, r.stderr[-3000:]
    assert str(out / "gpu.md") in r.stdout
    result = json.loads((out / "gpu.json").read_text())
    parts = result["parts"]
    assert list(parts) == ["training", "ddp", "steps", "compile"]
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["gpus"] == [] and result["device"] == "cpu"
    assert result["tolerance_bps"] == TOLERANCE_BPS and result["total_s"] > 0

    training = parts["training"]
    assert training["status"] == "done", training
    assert sorted(run["name"] for run in training["runs"]) == ["default-bf16", "default-fp32"]
    for run in training["runs"]:
        assert run["status"] == "finished" and run["steps"] == 2 and isinstance(run["best_val_bps_overall"], float)
    (c,) = training["comparisons"]
    assert c["bf16_minus_fp32"] == pytest.approx(c["bf16_val_bps"] - c["fp32_val_bps"])
    assert c["result"] == ("pass" if abs(c["bf16_minus_fp32"]) <= TOLERANCE_BPS else "fail")

    assert parts["ddp"]["status"] == "skipped" and "--device cpu" in parts["ddp"]["summary"]
    (row,) = parts["steps"]["rows"]
    assert parts["steps"]["status"] == "done" and row["variant"] == "fp32" and row["preset"] == "vivit_small"
    assert row["step_s"] > 0 and row["input"] == {"frames": 16, "height": 12, "width": 16, "burn_in": 8}
    (row,) = parts["compile"]["rows"]
    assert parts["compile"]["status"] == "failed" and "C++ compiler" in row["error"]
    assert all(p["used_s"] <= p["budget_s"] + 5 for p in parts.values())

    md = (out / "gpu.md").read_text()
    assert "| vivit_small |" in md and "| default |" in md and c["result"] in md
    assert "- vivit_small, bf16-mixed + compile: ConfigError: config key 'compile'" in md
    assert "DDP: skipped" in md and "| compile | failed |" in md
    assert (out / "logs" / "steps-vivit_small.log").exists() and (out / "runs" / "default-fp32" / "metrics.json").exists()


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status  # a zombie has ended; only its parent's wait is missing


def test_a_child_past_its_deadline_is_stopped_with_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    code = ("import subprocess, sys, time; print('started', flush=True); "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
            f"open({str(pid_file)!r}, 'w').write(str(p.pid)); time.sleep(60)")
    job = Job("sleeper", [sys.executable, "-c", code], tmp_path / "log", stdout=tmp_path / "out")
    t0 = time.monotonic()
    (outcome,) = run_jobs([job], time.monotonic() + 3)
    assert time.monotonic() - t0 < 15
    assert outcome.timed_out and outcome.stdout == "started\n"
    assert "time budget" in outcome.error_line(job.log)
    time.sleep(0.5)
    assert not _alive(int(pid_file.read_text()))


def test_a_failed_child_reports_its_error_line(tmp_path):
    job = Job("fails", [sys.executable, "-c", "raise SystemExit('no such preset')"], tmp_path / "log")
    (outcome,) = run_jobs([job], time.monotonic() + 60)
    assert outcome.returncode == 1 and outcome.error_line(job.log) == "exit status 1: no such preset"


@pytest.mark.slow
def test_gpu_command_on_a_cpu_with_every_part(tmp_path):
    """Both models in both precisions, the compiled step and a 2-rank DDP run (CPU processes)."""
    out = tmp_path / "out"
    r = run_cli(["gpu", *MICRO_DATA, *TINY_STEPS, "--ddp-devices", "2", "--ddp-steps", "3", "--out", str(out),
                 *GENEROUS], cwd=tmp_path, module="neuroenc.bench", timeout=3600)
    assert r.returncode == 0, r.stderr[-3000:]
    parts = json.loads((out / "gpu.json").read_text())["parts"]
    assert {p: parts[p]["status"] for p in parts} == dict.fromkeys(parts, "done"), parts
    assert [c["model"] for c in parts["training"]["comparisons"]] == ["default", "vivit_p1"]
    assert all(c["result"] in ("pass", "fail") for c in parts["training"]["comparisons"])
    assert parts["ddp"]["devices"] == 2 and parts["ddp"]["steps"] == 3
    assert [r["variant"] for r in parts["steps"]["rows"]] == ["fp32", "bf16"]
    (row,) = parts["compile"]["rows"]
    assert row["compile"] is True and row["step_s"] > 0
    assert os.path.getsize(out / "gpu.md") > 0
