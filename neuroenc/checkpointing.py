"""When checkpoints are written (best by val_bps_overall, last.ckpt also mid-epoch) and how:
atomically, so a process killed while saving leaves the previous file intact."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO


def checkpoint_callbacks(cfg, dirpath: Path) -> list[ModelCheckpoint]:
    """The best checkpoint by ``val_bps_overall`` and ``last.ckpt`` after every validation, plus
    ``last.ckpt`` on the mid-epoch triggers of ``cfg.checkpoint``. The best one comes first.

    All write ``last.ckpt`` under that one name (no ``last-v1.ckpt`` when another callback or an
    earlier process wrote it), which is what ``resume`` continues from.
    """
    # no '=' in the name (Lightning's default "epoch=3"): the path can then be a Hydra override value
    best = ModelCheckpoint(dirpath=dirpath, filename="best-epoch{epoch:03d}-step{step}", auto_insert_metric_name=False,
                           monitor="val_bps_overall", mode="max", save_last=True, enable_version_counter=False)
    mid_epoch = dict(dirpath=dirpath, save_top_k=0, save_last=True, enable_version_counter=False)
    out = [best]
    if cfg.checkpoint.every_n_train_steps:
        out.append(ModelCheckpoint(every_n_train_steps=cfg.checkpoint.every_n_train_steps, **mid_epoch))
    if cfg.checkpoint.every_n_minutes:
        out.append(ModelCheckpoint(train_time_interval=timedelta(minutes=cfg.checkpoint.every_n_minutes), **mid_epoch))
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoint IO, written to a temporary file beside the target,
    flushed to disk and then renamed over it (``os.replace`` is atomic on POSIX and Windows).

    A reader therefore sees either the old checkpoint or the complete new one, never a torn file;
    a kill mid-save leaves at most a ``.<name>.tmp-*`` file, which the next save of that name
    clears away.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.glob(f".{path.name}.tmp-*"):  # left by a process killed mid-save
            stale.unlink(missing_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        try:
            with open(tmp, "xb") as f:  # not mkstemp: the checkpoint gets the usual permissions
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (a power cut right after could otherwise undo it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # not possible on every platform (Windows): the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
