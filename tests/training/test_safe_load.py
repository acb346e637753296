"""Opening a checkpoint runs no code: a file carrying a pickled callable is refused by every path
that opens checkpoints a user may have been sent (``neuroenc.load``, ``python -m neuroenc.evaluate``,
``resume``), with an error that says why, and the callable never runs."""

import os
from pathlib import Path

import pytest
import torch
from conftest import MICRO_RUN, compose_config, run_cli

import neuroenc
from neuroenc.training.loading import UnsafeCheckpointError, read_checkpoint
from neuroenc.training.resume import checkpoint_to_continue


class RunsAShellCommand:
    """Unpickling this runs ``touch <marker>``: what a crafted checkpoint could do instead."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def crafted_checkpoint(path: Path, marker: Path) -> Path:
    """A file that looks like a neuroenc checkpoint, with the callable among its callback state."""
    torch.save({"neuroenc": {"config": {}}, "state_dict": {"encoder.w": torch.zeros(3)},
                "callbacks": {"RunSummary": {"history": [], "hook": RunsAShellCommand(marker)}}}, path)
    return path


def open_with_load(path: Path, tmp_path: Path):
    neuroenc.load(path)


def open_with_resume(path: Path, tmp_path: Path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    os.replace(path, run / "checkpoints" / "last.ckpt")
    checkpoint_to_continue(compose_config([*MICRO_RUN, f"resume={run}"]), run)


@pytest.mark.parametrize("open_checkpoint", [open_with_load, open_with_resume])
def test_a_checkpoint_carrying_a_pickled_callable_is_refused_and_the_callable_never_runs(tmp_path, open_checkpoint):
    marker = tmp_path / "the-callable-ran"
    path = crafted_checkpoint(tmp_path / "sent.ckpt", marker)
    with pytest.raises(UnsafeCheckpointError) as e:
        open_checkpoint(path, tmp_path)
    message = str(e.value)
    print(message)
    assert "refused" in message and "posix.system" in message and "could run code" in message
    assert not marker.exists()


def test_evaluate_cli_refuses_a_checkpoint_carrying_a_pickled_callable(tmp_path):
    marker = tmp_path / "the-callable-ran"
    path = crafted_checkpoint(tmp_path / "sent.ckpt", marker)
    r = run_cli([f"checkpoint={path}"], cwd=tmp_path, module="neuroenc.evaluate")
    assert r.returncode != 0
    assert "UnsafeCheckpointError" in r.stderr and "posix.system" in r.stderr, r.stderr[-2000:]
    assert not marker.exists()


def test_every_checkpoint_a_run_writes_opens_without_unpickling_objects(micro_run):
    run_dir, _ = micro_run
    paths = sorted((run_dir / "checkpoints").glob("*.ckpt"))
    assert {p.name for p in paths} >= {"last.ckpt"} and any(p.name.startswith("best-") for p in paths)
    for p in paths:
        assert read_checkpoint(p)["neuroenc"]["session_ids"] == ["sim00", "sim01"]
