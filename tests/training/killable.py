"""Test-only: ``python tests/training/killable.py <overrides>`` runs ``python -m neuroenc <overrides>`` and, with
``NEUROENC_TEST_PAUSE_AT=<event>``, stops at that exact point of the run, writes
``$NEUROENC_TEST_PAUSE_FILE`` (JSON: event, pid, the global step of the last.ckpt on disk) and waits
there to be killed. The kill itself is a real SIGKILL from the test (tests/training/test_kill_matrix.py),
sent when the file appears: no sleeps decide where a run dies.

Events:
    batch:N         after training step N, before any checkpoint of that step
    accumulated:N   after a batch whose gradients wait for the next optimizer step (accumulate_grad_batches),
                    at global step N, after that batch's checkpoints
    validated:E     after the validation of epoch E is recorded, before its checkpoints
    checkpointed:N  after a validation at global step N and the checkpoints written after it
    saved:N         right after last.ckpt of global step N was renamed into place
    saving:N        inside the write of last.ckpt of step N: half of it in the temporary file
    summary         after the last epoch, before metrics.json is written
    writing:NAME    inside the atomic write of NAME (metrics.json): half of it in the temporary file
    before:NAME     before NAME (per_neuron.csv) is written, metrics.json already there
"""

from __future__ import annotations

import io
import json
import os
import runpy
import sys
import time
from pathlib import Path

EVENT = os.environ.get("NEUROENC_TEST_PAUSE_AT", "")
PAUSE_FILE = os.environ.get("NEUROENC_TEST_PAUSE_FILE", "")


def _last_step_on_disk() -> int | None:
    import torch

    found = sorted(Path.cwd().glob("outputs/*/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime)
    return torch.load(found[-1], weights_only=True)["global_step"] if found else None


def pause() -> None:
    """Tell the test where we are, then wait for its SIGKILL."""
    info = {"event": EVENT, "pid": os.getpid(), "last_ckpt_step": _last_step_on_disk()}
    tmp = Path(PAUSE_FILE + ".tmp")
    tmp.write_text(json.dumps(info))
    os.replace(tmp, PAUSE_FILE)
    while True:
        time.sleep(60)


def install() -> None:
    kind, _, arg = EVENT.partition(":")
    import torch

    from neuroenc import atomic
    from neuroenc.training import checkpointing
    from neuroenc.training.callbacks import per_neuron, summary

    if kind == "batch":
        original = summary.RunSummary.on_train_batch_end

        def on_train_batch_end(self, trainer, *args):
            original(self, trainer, *args)
            if trainer.global_step == int(arg):
                pause()

        summary.RunSummary.on_train_batch_end = on_train_batch_end
    elif kind == "accumulated":
        from neuroenc.training.module import EncoderModule

        def after_batch(self, outputs, batch, batch_idx):  # the module's hook runs after the callbacks'
            stepped = (batch_idx + 1) % self.trainer.accumulate_grad_batches == 0 or \
                batch_idx + 1 >= self.trainer.num_training_batches  # Lightning steps on an epoch's last batch
            if self.global_step == int(arg) and not stepped:
                pause()

        EncoderModule.on_train_batch_end = after_batch
    elif kind == "checkpointed":
        from neuroenc.training.module import EncoderModule

        def after_validation(self):  # the module's hook runs after the callbacks' (checkpoints)
            if self.trainer.state.fn == "fit" and not self.trainer.sanity_checking and self.global_step == int(arg):
                pause()

        EncoderModule.on_validation_end = after_validation
    elif kind == "validated":
        original_val = summary.RunSummary.on_validation_end

        def on_validation_end(self, trainer, pl_module):
            original_val(self, trainer, pl_module)
            if trainer.state.fn == "fit" and not trainer.sanity_checking and trainer.current_epoch == int(arg):
                pause()

        summary.RunSummary.on_validation_end = on_validation_end
    elif kind in ("saved", "saving"):
        original_save = checkpointing.AtomicCheckpointIO.save_checkpoint
        real_torch_save = torch.save
        target = {"on": False}

        def torch_save(obj, f, *args, **kwargs):
            if target["on"]:  # half a checkpoint in the temporary file, then stop
                buf = io.BytesIO()
                real_torch_save(obj, buf, *args, **kwargs)
                f.write(buf.getvalue()[: buf.tell() // 2])
                f.flush()
                pause()
            return real_torch_save(obj, f, *args, **kwargs)

        def save_checkpoint(self, checkpoint, path, storage_options=None):
            ours = Path(path).name == "last.ckpt" and checkpoint["global_step"] == int(arg)
            target["on"] = ours and kind == "saving"
            original_save(self, checkpoint, path, storage_options)
            if ours:
                pause()

        torch.save = torch_save
        checkpointing.AtomicCheckpointIO.save_checkpoint = save_checkpoint
    elif kind == "summary":
        original_write = summary.RunSummary.write

        def write(self, *args, **kwargs):
            if kwargs.get("status", "finished") == "finished":  # train() passes status by name
                pause()
            return original_write(self, *args, **kwargs)

        summary.RunSummary.write = write
    elif kind == "writing":
        original_text = atomic.write_text

        def write_text(path, text, durable=True):
            if Path(path).name == arg:
                with atomic.open_for_write(path, "w") as f:
                    f.write(text[: len(text) // 2])
                    f.flush()
                    pause()
            return original_text(path, text, durable)

        atomic.write_text = write_text
    elif kind == "before" and arg == "per_neuron.csv":
        original_rows = per_neuron.BestPerNeuron.write

        def write_rows(self):
            pause()
            return original_rows(self)

        per_neuron.BestPerNeuron.write = write_rows
    elif EVENT:
        raise SystemExit(f"NEUROENC_TEST_PAUSE_AT: unknown event {EVENT!r}")


if __name__ == "__main__":
    install()
    sys.argv = ["neuroenc", *sys.argv[1:]]
    runpy.run_module("neuroenc", run_name="__main__", alter_sys=True)
