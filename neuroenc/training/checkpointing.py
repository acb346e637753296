"""When checkpoints are written, and so where a resumed run continues; written atomically.

THE RESUME RULE. A restored run continues with the first thing its checkpoint does not
contain: the next training batch of the epoch if batches are left, else that epoch's
validation if it was due and is not in the checkpoint, else the first batch of the next epoch.
To make that hold, ``last.ckpt`` is written only at the kinds of point from which Lightning's
loops and our loader restore exactly:

1. after a training batch that is neither the last of its epoch nor one after which validation
   is due (``every_n_train_steps``, ``every_n_minutes``): Lightning resumes the epoch at the next
   batch and the loader skips the batches done (:class:`~neuroenc.data.windows.ResumableLoader`);
2. after every validation (``on_validation_end``), at the epoch's end or within it: Lightning
   resumes "on last" -- it neither trains that batch again nor validates again -- and, at an
   epoch's end, starts the next epoch at its first batch;
3. at the end of training, where Lightning (2.6) writes it for a callback that wrote none in the
   process (a run too short for its time trigger, one that ends on ``max_steps`` before any
   validation): restored there, training is done and the run only writes its outputs
   (:class:`~neuroenc.training.callbacks.summary.RunSummary` records that resumption, for which
   Lightning runs no ``on_train_start``).

Never at ``on_train_epoch_end`` (Lightning's default when validation runs once per epoch) and
never after a batch that validation follows, before that validation: Lightning restores the
first as an epoch whose end is still to run and counts that epoch twice, so the next epoch is
skipped (the bug of issue 15: 66 steps instead of 99), and the second as past the validation,
so it is lost. A trigger that falls on such a batch is left to the save after validation,
which follows within the same step (where no validation runs, as with ``limit_val_batches=0``,
the trigger is dropped: the run resumes from an earlier point, still exactly).

Points of the first two kinds are skipped the same way where (issue 26)

- gradients wait for the next optimizer step (``accumulate_grad_batches``: a trigger or a
  validation between the micro-batches of a step): ``.grad`` is in no checkpoint, so a
  restored run would step without the micro-batches before it;
- ``max_steps`` is reached: restored there, within the epoch, Lightning finds training done
  before it enters the loop and so never counts the unfinished epoch, which the uninterrupted
  run counts when its loop ends (a save of the third kind comes after that).

A run killed after a skipped point repeats the steps since the checkpoint before (the best
checkpoint is still written after such a validation).

The best checkpoint by ``val_bps_overall`` is written after validation too. Everything a
resumed run needs to write the same ``metrics.json`` and ``per_neuron.csv`` is callback state
inside every checkpoint (:class:`~neuroenc.training.callbacks.summary.RunSummary`,
:class:`~neuroenc.training.callbacks.per_neuron.BestPerNeuron`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from neuroenc import atomic


class AfterValidation(ModelCheckpoint):
    """The best checkpoint by ``val_bps_overall`` and ``last.ckpt`` after every validation (rule 2),
    whether or not the score improved (Lightning's own ``save_last`` skips it when it did not)."""

    def __init__(self, dirpath: Path):
        # no '=' in the name (Lightning's default "epoch=3"): the path can then be a Hydra override value
        super().__init__(dirpath=dirpath, filename="best-epoch{epoch:03d}-step{step}", auto_insert_metric_name=False,
                         monitor="val_bps_overall", mode="max", save_last=True, enable_version_counter=False,
                         save_on_train_epoch_end=False)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        return  # never here (see the module docstring)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        self._save_topk_checkpoint(trainer, candidates)
        if _restorable(trainer):
            self._save_last_checkpoint(trainer, candidates)


class MidEpoch(ModelCheckpoint):
    """``last.ckpt`` on a step or time trigger, after a batch that is not its epoch's last (rule 1)."""

    def __init__(self, dirpath: Path, **trigger):
        super().__init__(dirpath=dirpath, save_top_k=0, save_last=True, enable_version_counter=False,
                         save_on_train_epoch_end=False, **trigger)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if _validation_may_follow(trainer, batch_idx) or not _restorable(trainer):
            return  # rule 2 covers the first: restored from here, Lightning would skip that validation
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        return

    def on_validation_end(self, trainer, pl_module) -> None:
        return


def _validation_may_follow(trainer, batch_idx: int) -> bool:
    """Whether this batch is its epoch's last or one after which ``val_check_interval`` validates."""
    if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch or batch_idx + 1 >= trainer.num_training_batches:
        return True
    every = trainer.val_check_batch
    return isinstance(every, int) and (batch_idx + 1) % every == 0


def _restorable(trainer) -> bool:
    """Whether neither gradients of micro-batches wait for the optimizer step nor ``max_steps`` is reached,
    the two cases in which a point of rule 1 or 2 is skipped."""
    done = trainer.fit_loop.epoch_loop.batch_progress.current.ready  # batches of this epoch trained
    # Lightning steps after every accumulate_grad_batches batches and after the epoch's last
    gradients_pending = done % trainer.accumulate_grad_batches != 0 and done < trainer.num_training_batches
    steps_done = trainer.max_steps != -1 and trainer.global_step >= trainer.max_steps
    return not gradients_pending and not steps_done


def checkpoint_callbacks(cfg, dirpath: Path) -> list[ModelCheckpoint]:
    """:class:`AfterValidation` first, then a :class:`MidEpoch` for each mid-epoch trigger of
    ``cfg.checkpoint``.

    All write ``last.ckpt`` under that one name (no ``last-v1.ckpt`` when another callback or an
    earlier process wrote it), which is what ``resume`` continues from.
    """
    out: list[ModelCheckpoint] = [AfterValidation(dirpath)]
    if cfg.checkpoint.every_n_train_steps:
        out.append(MidEpoch(dirpath, every_n_train_steps=cfg.checkpoint.every_n_train_steps))
    if cfg.checkpoint.every_n_minutes:
        out.append(MidEpoch(dirpath, train_time_interval=timedelta(minutes=cfg.checkpoint.every_n_minutes)))
    return out


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's ``torch.save`` checkpoint IO through :func:`neuroenc.atomic.open_for_write`:
    a reader sees either the old checkpoint or the complete new one, never a torn file; a kill
    mid-save leaves at most a hidden temporary file, cleared by the next save of that name."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        with atomic.open_for_write(path, "wb") as f:
            torch.save(checkpoint, f)
