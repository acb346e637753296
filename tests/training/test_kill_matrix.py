"""The kill matrix: a run SIGKILLed at each boundary of training (mid-epoch, after validation,
right after each end-of-epoch checkpoint, inside a checkpoint write, after the last epoch, inside
the metrics.json write, between metrics.json and per_neuron.csv) and repeated with
``resume=true`` ends with the metrics.json and per_neuron.csv of a run never interrupted, exactly,
on the CPU; also when the resumed run is killed again.

Where a run dies is chosen by events, not sleeps: tests/training/killable.py stops the run at the event
and writes a file; the test sends SIGKILL when the file appears.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MICRO

KILLABLE = Path(__file__).with_name("killable.py")
STEPS_PER_EPOCH = 6  # MICRO: 2 sessions x 6 trials x 4 windows / batches of 8 (one session per batch)
EPOCHS = 3
ARGS = [*MICRO, f"trainer.max_epochs={EPOCHS}", "checkpoint.every_n_train_steps=2", "checkpoint.every_n_minutes=null",
        "optim.warmup_steps=2", "seed=7", "logger.csv=null"]
# (where the first process dies, where its resumed run dies again or None); see tests/training/killable.py
KILL_POINTS = [
    ("saved:2", None),             # right after the first mid-epoch checkpoint
    ("batch:5", None),             # mid-epoch, one step after the last checkpoint
    ("validated:0", None),         # after epoch 0's validation, before its checkpoint
    ("saved:6", None),             # right after the end-of-epoch-0 checkpoint (issue 15)
    ("saving:8", None),            # inside the write of a checkpoint
    ("saved:12", None),            # right after the end-of-epoch-1 checkpoint
    ("batch:13", None),            # first step of the last epoch
    ("saved:18", None),            # right after the last epoch's checkpoint
    ("summary", None),             # after the last epoch, before metrics.json
    ("writing:metrics.json", None),  # inside the metrics.json write
    ("before:per_neuron.csv", None),  # metrics.json written, per_neuron.csv not
    ("saved:6", "saved:14"),       # killed again during the resumed run
]
COMPARED = ("status", "best_val_bps_overall", "final_val_bps_overall", "best_epoch", "best_val_bps_neuron_mean",
            "val_bps_per_session", "init_val_bps_overall", "epochs", "steps", "history")


def _start(cwd: Path, args: list[str], event: str | None) -> tuple[subprocess.Popen, Path]:
    cwd.mkdir(parents=True, exist_ok=True)
    pause_file = cwd / f"paused-{time.monotonic_ns()}.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NEUROENC_TEST_PAUSE_AT": event or "",
           "NEUROENC_TEST_PAUSE_FILE": str(pause_file)}
    log = open(cwd / "log.txt", "a")  # a file, not a pipe: a paused process must never block on output
    proc = subprocess.Popen([sys.executable, str(KILLABLE), *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    return proc, pause_file


def _log(cwd: Path) -> str:
    return (cwd / "log.txt").read_text()[-3000:]


def kill_at(cwd: Path, args: list[str], event: str, timeout: float = 300) -> dict:
    """Run until ``event``, SIGKILL the process there; returns what it reported (last.ckpt's step)."""
    proc, pause_file = _start(cwd, args, event)
    deadline = time.monotonic() + timeout
    while not pause_file.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {event}:\n{_log(cwd)}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {event} within {timeout} s:\n{_log(cwd)}")
        time.sleep(0.02)
    info = json.loads(pause_file.read_text())
    assert info["pid"] == proc.pid
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    return info


def run_to_end(cwd: Path, args: list[str], timeout: float = 300) -> None:
    proc, _ = _start(cwd, args, None)
    assert proc.wait(timeout=timeout) == 0, _log(cwd)


def outputs(cwd: Path) -> tuple[dict, str]:
    """metrics.json and per_neuron.csv of the one run under ``cwd`` (resumed runs write into it)."""
    (metrics,) = cwd.glob("outputs/*/*/metrics.json")
    return json.loads(metrics.read_text()), (metrics.parent / "per_neuron.csv").read_text()


@pytest.mark.slow
def test_runs_killed_at_every_boundary_resume_to_the_uninterrupted_metrics_and_per_neuron_csv(tmp_path):
    run_to_end(tmp_path / "reference", ARGS)
    expect, expect_csv = outputs(tmp_path / "reference")
    assert expect["steps"] == EPOCHS * STEPS_PER_EPOCH and len(expect["history"]) == EPOCHS
    rows, failures = [], []
    for i, (first, second) in enumerate(KILL_POINTS):
        cwd = tmp_path / f"kill{i:02d}"
        killed = [kill_at(cwd, ARGS, first)]
        if first.startswith("writing:"):  # killed inside the write: no torn metrics.json, only a temporary file
            assert not list(cwd.glob("outputs/*/*/metrics.json")) and list(cwd.glob("outputs/*/*/.metrics.json.tmp-*"))
        if first.startswith("saving:"):  # the checkpoint on disk is the previous one, intact
            assert killed[0]["last_ckpt_step"] == int(first.split(":")[1]) - 2
        if second:
            killed.append(kill_at(cwd, [*ARGS, "resume=true"], second))
        run_to_end(cwd, [*ARGS, "resume=true"])
        got, got_csv = outputs(cwd)
        differs = [k for k in COMPARED if got[k] != expect[k]] + (["per_neuron.csv"] if got_csv != expect_csv else [])
        rows.append((" then ".join(e for e in (first, second) if e), [k["last_ckpt_step"] for k in killed],
                     got["resumed_at_steps"], got["steps"], got["final_val_bps_overall"], differs))
        if differs:
            failures.append(f"{rows[-1][0]}: {differs}")
        assert got["resumed_at_steps"] == [k["last_ckpt_step"] for k in killed]

    print(f"\nuninterrupted: steps {expect['steps']}, final val bps {expect['final_val_bps_overall']!r}, "
          f"best {expect['best_val_bps_overall']!r} (epoch {expect['best_epoch']})")
    print(f"{'kill point':<28} {'last.ckpt step at kill':<24} {'resumed at':<12} {'steps':<6} "
          f"{'final val bps':<24} equal")
    for name, at_kill, resumed, steps, final, differs in rows:
        print(f"{name:<28} {str(at_kill):<24} {str(resumed):<12} {steps:<6} {final!r:<24} "
              f"{'yes' if not differs else differs}")
    assert not failures, "resumed runs differ from the uninterrupted one:\n" + "\n".join(failures)
