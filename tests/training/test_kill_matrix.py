"""The kill matrix: a run SIGKILLed at each boundary of training (mid-epoch, after validation,
right after each end-of-epoch checkpoint, inside a checkpoint write, after the last epoch, inside
the metrics.json write, between metrics.json and per_neuron.csv) and repeated with
``resume=true`` ends with the metrics.json and per_neuron.csv of a run never interrupted, exactly,
on the CPU; also when the resumed run is killed again.

The same holds under every Trainer option that changes what an epoch is or when validation and
checkpoints happen (issue 26: with ``limit_train_batches`` a resumed run trained on other batches):
:data:`OPTIONS`, each with a checkpoint step trigger, killed at the points where that option moves
an epoch's end, a validation or a checkpoint: the fast suite kills four of them once each, at the
point where each broke before issue 26, the slow suite kills every option at its other points in turn.

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
# metrics.json keys that differ between any two runs (times) or name the run's own files; every other
# key (scores, best epoch, steps, history, health figures, parameters) must be equal
VARIES = ("wall_time_s", "mean_train_step_s", "resumed_at_steps", "best_checkpoint", "last_checkpoint")

def _start(cwd: Path, args: list[str], event: str | None, env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    cwd.mkdir(parents=True, exist_ok=True)
    pause_file = cwd / f"paused-{time.monotonic_ns()}.json"
    env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1", "NEUROENC_TEST_PAUSE_AT": event or "",
           "NEUROENC_TEST_PAUSE_FILE": str(pause_file)}
    log = open(cwd / "log.txt", "a")  # a file, not a pipe: a paused process must never block on output
    proc = subprocess.Popen([sys.executable, str(KILLABLE), *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    log.close()
    return proc, pause_file


def _log(cwd: Path) -> str:
    return (cwd / "log.txt").read_text()[-3000:]


def kill_at(cwd: Path, args: list[str], event: str, timeout: float = 300, env: dict | None = None) -> dict:
    """Run until ``event``, SIGKILL the process there; returns what it reported (last.ckpt's step)."""
    proc, pause_file = _start(cwd, args, event, env)
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


def run_to_end(cwd: Path, args: list[str], timeout: float = 300, env: dict | None = None) -> None:
    proc, _ = _start(cwd, args, None, env)
    assert proc.wait(timeout=timeout) == 0, _log(cwd)


def outputs(cwd: Path) -> tuple[dict, str]:
    """metrics.json and per_neuron.csv of the one run under ``cwd`` (resumed runs write into it)."""
    (metrics,) = cwd.glob("outputs/*/*/metrics.json")
    return json.loads(metrics.read_text()), (metrics.parent / "per_neuron.csv").read_text()


def differences(got: tuple[dict, str], expect: tuple[dict, str]) -> dict[str, tuple]:
    """What differs between two runs' :func:`outputs`: metrics.json keys (all but :data:`VARIES`), the best
    checkpoint's file name and per_neuron.csv, each with (this run's, the other's) value."""
    (metrics, csv), (want, want_csv) = got, expect
    pairs = {k: (metrics.get(k), want.get(k)) for k in sorted(set(metrics) | set(want)) if k not in VARIES}
    name = lambda m: m["best_checkpoint"] and Path(m["best_checkpoint"]).name
    pairs["best checkpoint's name"] = (name(metrics), name(want))
    pairs["per_neuron.csv"] = (csv, want_csv)
    return {k: v for k, v in pairs.items() if v[0] != v[1]}


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
        differs = list(differences((got, got_csv), (expect, expect_csv)))
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


# Trainer options that change what an epoch is or when validation and checkpoints happen (issue 26):
# name -> (overrides, the uninterrupted run's steps, the fast suite's kill point or None, the slow
# suite's chain of kill points: killed at the first, resumed and killed at the next, ..., resumed to the
# end). Between the two suites every option is killed at each of its points. MICRO has 6 batches per
# epoch; OPTION_EPOCHS epochs unless a row sets trainer.max_epochs. Each resumed run of a chain writes a
# checkpoint before its kill, so resumed_at_steps lists every kill's checkpoint.
OPTION_EPOCHS = 2
OPTIONS = {
    # 4 of the 6 batches an epoch, checkpoint at the end of epoch 0: the case
    "limit_train_batches=4": (["trainer.limit_train_batches=4", "checkpoint.every_n_train_steps=2"], 8,
                              "saved:4", ("saved:2", "batch:7")),
    "limit_train_batches=0.5": (["trainer.limit_train_batches=0.5", "checkpoint.every_n_train_steps=2"], 6,
                                None, ("saved:3",)),
    "limit_val_batches=0.5": (["trainer.limit_val_batches=0.5", "checkpoint.every_n_train_steps=2"], 12,
                              None, ("validated:0",)),
    # training ends mid-epoch 1, with a step trigger on its last step; the run resumed at step 8 writes no
    # checkpoint before the end of training, where Lightning writes last.ckpt
    "max_steps=10": (["trainer.max_steps=10", "checkpoint.every_n_train_steps=2"], 10,
                     "summary", ("saved:6", "batch:9", "summary")),
    # validation after batches 3 and 6 of every epoch; training ends on the validation of step 9
    "val_check_interval=0.5 max_steps=9": (["trainer.val_check_interval=0.5", "trainer.max_steps=9",
                                            "checkpoint.every_n_train_steps=2"], 9,
                                           None, ("saved:3", "validated:0", "checkpointed:9")),
    # validation after epoch 1 only: no checkpoint ends epochs 0 and 2
    "check_val_every_n_epoch=2": (["trainer.check_val_every_n_epoch=2", "trainer.max_epochs=3",
                                   "checkpoint.every_n_train_steps=2"], 18, None, ("batch:7", "summary")),
    # a step after every 2 batches; step 3 ends epoch 0, where the step trigger is not taken (validation
    # follows), so the trigger comes due after epoch 1's first batch, between the micro-batches of step 4
    "accumulate_grad_batches=2": (["trainer.accumulate_grad_batches=2", "checkpoint.every_n_train_steps=3"], 6,
                                  "accumulated:3", ("saved:3", "summary")),
    # validation after batch 3 of an epoch, between the micro-batches of a step
    "accumulate_grad_batches=2 val_check_interval=0.5": (
        ["trainer.accumulate_grad_batches=2", "trainer.val_check_interval=0.5", "checkpoint.every_n_train_steps=2"],
        6, "checkpointed:4", ("saved:2", "summary")),
}
OPTION_ARGS = [*MICRO, "checkpoint.every_n_minutes=null", "optim.warmup_steps=2", "seed=7", "logger.csv=null"]


def resumes_exactly(tmp_path: Path, overrides: list[str], steps: int, kills: tuple[str, ...]) -> None:
    """The uninterrupted run, and side by side with it (a core each) a run killed at each of ``kills``
    in turn and resumed to the end, give the same outputs."""
    args = [*OPTION_ARGS, *([] if any(o.startswith("trainer.max_epochs=") for o in overrides)
                            else [f"trainer.max_epochs={OPTION_EPOCHS}"]), *overrides]
    one_core = {"OMP_NUM_THREADS": "1"}
    reference, _ = _start(tmp_path / "reference", args, None, one_core)
    cwd = tmp_path / "killed"
    try:
        killed = [kill_at(cwd, [*args, "resume=true"] if i else args, event, env=one_core)["last_ckpt_step"]
                  for i, event in enumerate(kills)]
        run_to_end(cwd, [*args, "resume=true"], env=one_core)
        assert reference.wait(timeout=300) == 0, _log(tmp_path / "reference")
    finally:
        if reference.poll() is None:
            reference.kill()
    expect, got = outputs(tmp_path / "reference"), outputs(cwd)
    assert expect[0]["steps"] == steps, f"the option did not shape the run as this test assumes: {expect[0]['steps']} steps"
    differs = differences(got, expect)
    print(f"\n{overrides}, killed at {list(kills)} (last.ckpt steps {killed}): steps {got[0]['steps']}, "
          f"final val bps {got[0]['final_val_bps_overall']!r} (uninterrupted {expect[0]['final_val_bps_overall']!r}), "
          f"{'equal' if not differs else list(differs)}")
    assert not differs, "\n".join(f"{k}: resumed {a!r:.400}, uninterrupted {b!r:.400}" for k, (a, b) in differs.items())
    assert got[0]["resumed_at_steps"] == killed


@pytest.mark.parametrize("option", [name for name, row in OPTIONS.items() if row[2]])
def test_a_run_with_a_trainer_option_killed_where_it_matters_resumes_to_the_uninterrupted_outputs(tmp_path, option):
    overrides, steps, fast, _ = OPTIONS[option]
    resumes_exactly(tmp_path, overrides, steps, (fast,))


@pytest.mark.slow
@pytest.mark.parametrize("option", list(OPTIONS))
def test_a_run_with_a_trainer_option_killed_at_each_of_its_boundaries_in_turn_resumes_to_the_uninterrupted_outputs(
        tmp_path, option):
    overrides, steps, _, chain = OPTIONS[option]
    resumes_exactly(tmp_path, overrides, steps, chain)
