"""A run killed with SIGKILL mid-epoch and repeated with ``resume=true`` ends exactly where an
uninterrupted run ends; checkpoints survive a kill during their own save."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import MICRO, MICRO_RUN, compose_config, run_cli

from neuroenc.config.validate import ConfigError
from neuroenc.data.windows import ResumableLoader, SessionBatchSampler
from neuroenc.training.build import build_encoder_without_data
from neuroenc.training.checkpointing import AtomicCheckpointIO
from neuroenc.training.module import EncoderModule
from neuroenc.training.resume import find_run, search_root
from neuroenc.training.run import train

STEPS_PER_EPOCH = 6  # MICRO: 2 sessions x 6 trials x 4 windows / batches of 8 (one session per batch)
ARGS = [*MICRO, "trainer.max_epochs=2", "checkpoint.every_n_train_steps=2", "checkpoint.every_n_minutes=null",
        "optim.warmup_steps=2", "seed=5"]


def _metrics(cwd: Path) -> dict:
    (path,) = (cwd / "outputs").glob("*/*/metrics.json")
    return json.loads(path.read_text())


def _kill_when_last_checkpoint_reaches(proc: subprocess.Popen, cwd: Path, step: int, timeout: float = 300) -> int:
    """SIGKILL ``proc`` as soon as its last.ckpt was saved at ``step`` or later; returns that step."""
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        found = list((cwd / "outputs").glob("*/*/checkpoints/last.ckpt"))
        if found:
            stamp = found[0].stat().st_mtime_ns
            if stamp != seen:
                seen = stamp
                saved = torch.load(found[0], map_location="cpu", weights_only=False)["global_step"]
                if saved >= step:
                    proc.send_signal(signal.SIGKILL)
                    proc.wait()
                    return saved
        assert proc.poll() is None, f"the run ended before a checkpoint at step {step}:\n{proc.stderr.read()[-3000:]}"
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no checkpoint at step >= {step} within {timeout} s")


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_uninterrupted_metrics(tmp_path):
    whole, crashed = tmp_path / "whole", tmp_path / "crashed"
    whole.mkdir()
    crashed.mkdir()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    # the uninterrupted run and the one to kill run side by side (2 cores)
    victim = subprocess.Popen([sys.executable, "-m", "neuroenc", *ARGS], cwd=crashed, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    reference = subprocess.Popen([sys.executable, "-m", "neuroenc", *ARGS], cwd=whole, env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # kill in the second epoch, so the restored data order must be that epoch's, two batches in
    killed_at = _kill_when_last_checkpoint_reaches(victim, crashed, STEPS_PER_EPOCH + 2)
    assert victim.returncode == -signal.SIGKILL
    assert killed_at % STEPS_PER_EPOCH != 0, f"checkpoint at step {killed_at} is not mid-epoch"
    assert not list(crashed.glob("outputs/*/*/metrics.json")), "the killed run got to the end"
    _, err = reference.communicate(timeout=600)
    assert reference.returncode == 0, err[-3000:]

    r = run_cli([*ARGS, "resume=true"], cwd=crashed)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Restoring states from the checkpoint" in r.stderr + r.stdout
    expect, got = _metrics(whole), _metrics(crashed)
    print(f"uninterrupted: best {expect['best_val_bps_overall']!r} final {expect['final_val_bps_overall']!r}\n"
          f"resumed at step {killed_at}: best {got['best_val_bps_overall']!r} final {got['final_val_bps_overall']!r}")
    assert got["status"] == "finished" and got["resumed_at_steps"] == [killed_at]
    assert got["steps"] == expect["steps"] == 2 * STEPS_PER_EPOCH
    assert got["final_val_bps_overall"] == expect["final_val_bps_overall"]
    assert got["best_val_bps_overall"] == expect["best_val_bps_overall"]
    assert got["history"] == expect["history"]
    assert got["init_val_bps_overall"] == expect["init_val_bps_overall"]
    # the resumed job wrote into the run it continued and left a pointer in its own directory
    (pointer,) = crashed.glob("outputs/*/*/resumed.json")
    assert Path(json.loads(pointer.read_text())["continued_run"]) == Path(got["last_checkpoint"]).parents[1]
    run_dir = Path(got["last_checkpoint"]).parents[1]
    env_record = json.loads((run_dir / "environment.json").read_text())
    assert len(env_record["resumed"]) == 1 and env_record["git"] == env_record["resumed"][0]["git"]
    assert (run_dir / ".hydra" / "config.yaml").exists()  # the resolved config of the original command


def test_resume_refuses_trainer_max_time_before_training(micro_run):
    run_dir, _ = micro_run
    last = run_dir / "checkpoints" / "last.ckpt"
    before = last.stat().st_mtime_ns
    # the stopping point of a run on the clock depends on the machine: no resumed run can end where it would
    with pytest.raises(ConfigError, match="max_steps or trainer.max_epochs") as e:
        train(compose_config([*MICRO_RUN, "trainer.max_time=00:00:05:00", f"resume={run_dir}"]), run_dir)
    assert e.value.key == "trainer.max_time"
    assert last.stat().st_mtime_ns == before


def _epoch_batches(sampler: SessionBatchSampler, epoch: int) -> list[list[int]]:
    sampler.set_epoch(epoch)
    return list(sampler)


def test_loader_state_continues_an_epoch_in_the_same_order_after_the_batches_seen():
    sessions = np.repeat([0, 1, 2], [20, 13, 7])
    make = lambda: ResumableLoader(list(range(40)), SessionBatchSampler(sessions, 4, shuffle=True, seed=1))
    loader = make()
    loader.batch_sampler.set_epoch(3)
    it = iter(loader)
    seen = [next(it).tolist() for _ in range(5)]
    state = loader.state_dict()
    assert state == {"epoch": 3, "batches_served": 5}
    rest = [b.tolist() for b in it]

    resumed = make()  # a new process: epoch 0, nothing served
    resumed.load_state_dict(state)
    assert [b.tolist() for b in resumed] == rest
    assert seen + rest == _epoch_batches(SessionBatchSampler(sessions, 4, shuffle=True, seed=1), 3)
    assert len(resumed) == len(seen) + len(rest)  # Lightning counts the skipped batches as done
    assert [b.tolist() for b in resumed] == seen + rest  # the skip applies to one pass only


def test_loader_state_after_an_epoch_cut_short_by_the_trainer_is_the_next_epoch_at_its_first_batch():
    sessions = np.repeat([0, 1], [20, 12])  # 8 batches of 4
    loader = ResumableLoader(list(range(32)), SessionBatchSampler(sessions, 4, shuffle=True, seed=1))
    it = iter(loader)
    for _ in range(3):  # limit_train_batches=3: the Trainer takes no more of this epoch
        next(it)
    assert loader.state_dict(epoch_length=3) == {"epoch": 1, "batches_served": 0}
    assert loader.state_dict(epoch_length=5) == {"epoch": 0, "batches_served": 3}  # mid-epoch


def test_lightning_gives_the_session_sampler_a_new_order_every_epoch(tmp_path):
    import lightning as L

    seen: list[tuple[int, list[int]]] = []

    class Record(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            seen.append((self.current_epoch, batch.tolist()))
            return (self.w * batch.float()).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    loader = ResumableLoader(list(range(12)), SessionBatchSampler(np.zeros(12, int), 4, shuffle=True, seed=0))
    L.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
              enable_model_summary=False, default_root_dir=tmp_path).fit(Record(), loader)
    epochs = [[b for e, b in seen if e == k] for k in (0, 1)]
    assert epochs[0] == _epoch_batches(SessionBatchSampler(np.zeros(12, int), 4, shuffle=True, seed=0), 0)
    assert epochs[1] == _epoch_batches(SessionBatchSampler(np.zeros(12, int), 4, shuffle=True, seed=0), 1)
    assert epochs[0] != epochs[1]


class _KillWhilePickled:
    """Pickling this kills the process: a crash in the middle of writing a checkpoint."""

    def __reduce__(self):
        os.kill(os.getpid(), signal.SIGKILL)


def test_kill_during_checkpoint_save_leaves_the_previous_checkpoint_usable(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"global_step": 7, "weights": torch.arange(1000.0)}, path)
    code = ("import sys, torch; sys.path[:0] = sys.argv[2:]; from test_resume import _KillWhilePickled; "
            "from neuroenc.training.checkpointing import AtomicCheckpointIO; "
            "AtomicCheckpointIO().save_checkpoint({'weights': torch.zeros(10**6), 'then': _KillWhilePickled()}, "
            "sys.argv[1])")
    here = Path(__file__).parent  # and conftest, one up
    r = subprocess.run([sys.executable, "-c", code, str(path), str(here), str(here.parent)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert list(tmp_path.glob(".last.ckpt.tmp-*")), "the kill did not happen while writing"
    old = torch.load(path, weights_only=False)
    assert old["global_step"] == 7 and torch.equal(old["weights"], torch.arange(1000.0))
    AtomicCheckpointIO().save_checkpoint({"global_step": 8}, path)  # the next save clears the leftover
    assert torch.load(path, weights_only=False)["global_step"] == 8
    assert not list(tmp_path.glob(".last.ckpt.tmp-*"))


def _fake_run(root: Path, name: str, overrides: list[str], checkpoint: bool = True) -> Path:
    run = root / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if checkpoint:
        (run / "checkpoints").mkdir()
        (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    return run


def test_resume_true_finds_the_newest_run_with_the_same_overrides(tmp_path):
    root = tmp_path / "outputs"
    old = _fake_run(root, "2024-01-01/10-00-00", ["seed=1", "data.window=24"])
    time.sleep(0.01)
    new = _fake_run(root, "2024-01-02/09-00-00", ["data.window=24", "seed=1", "resume=true"])
    _fake_run(root, "2024-01-02/11-00-00", ["seed=2", "data.window=24"])  # other overrides
    _fake_run(root, "2024-01-03/08-00-00", ["seed=1", "data.window=24", "resume=true"], checkpoint=False)
    assert find_run(["resume=true", "seed=1", "data.window=24"], root) == new != old
    with pytest.raises(ConfigError, match="resume") as e:
        find_run(["seed=3", "resume=true"], root)
    assert "seed=3" in str(e.value)


def test_search_root_is_the_fixed_part_of_the_run_dir_pattern():
    assert search_root("outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}") == Path("outputs")
    assert search_root("runs/exp1") == Path("runs/exp1")


def test_the_lr_schedule_is_in_checkpoints_and_a_restored_one_continues_it_exactly(micro_run):
    _, metrics = micro_run
    ckpt = torch.load(metrics["last_checkpoint"], weights_only=False)
    (state,) = ckpt["lr_schedulers"]
    assert state["last_epoch"] == ckpt["global_step"] > 0

    def schedule(total: int = 40):
        encoder, info, _, _ = build_encoder_without_data(compose_config(MICRO))
        module = EncoderModule(encoder, info.n_neurons, {"lr": 0.01, "weight_decay": 1e-4, "warmup_steps": 5,
                                                         "min_lr_ratio": 0.05, "position_lr_ratio": 0.1})
        module._trainer = type("Trainer", (), {"estimated_stepping_batches": total})()
        out = module.configure_optimizers()
        return out["optimizer"], out["lr_scheduler"]["scheduler"]

    def lrs(opt, sched, steps: int) -> list[list[float]]:
        seen = []
        for _ in range(steps):
            seen.append([g["lr"] for g in opt.param_groups])
            opt.step()
            sched.step()
        return seen

    whole = lrs(*schedule(), 45)  # past the end: the floor holds
    assert len({tuple(x) for x in whole[40:]}) == 1 and whole[40][0] == pytest.approx(0.01 * 0.05)
    for stop in (3, 5, 20):  # in the warmup, at its end, mid-cosine
        opt, sched = schedule()
        lrs(opt, sched, stop)
        saved = (opt.state_dict(), sched.state_dict())
        opt, sched = schedule()
        opt.load_state_dict(saved[0])  # as Lightning restores them
        sched.load_state_dict(saved[1])
        assert lrs(opt, sched, 45 - stop) == whole[stop:]  # bit for bit
