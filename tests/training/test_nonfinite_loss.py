"""A non-finite loss stops training naming step and session; the last checkpoint stays good."""

import json
import re

import pytest
import torch
from conftest import MICRO, compose_config

import neuroenc
from neuroenc.training.module import NonFiniteLossError
from neuroenc.training.run import train


def test_non_finite_loss_stops_training_naming_step_and_session_and_keeps_the_last_good_checkpoint(tmp_path):
    # a learning rate this large turns the loss into NaN within two steps
    cfg = compose_config([*MICRO, "trainer.max_epochs=1", "optim.lr=1e30", "optim.warmup_steps=0",
                          "checkpoint.every_n_train_steps=1", "eval_init=false", "logger.csv=null"])
    with pytest.raises(NonFiniteLossError) as e:
        train(cfg, tmp_path)
    message = str(e.value)
    print(message)
    found = re.search(r"at step (\d+) \(epoch 0, batch \d+\) in session '(sim0[01])'", message)
    assert found, message
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "failed" and message in metrics["error"]
    assert metrics["error"].startswith("NonFiniteLossError")

    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=False)
    assert ckpt["global_step"] == int(found.group(1)), "the failing step wrote a checkpoint, or a good one is missing"
    assert all(torch.isfinite(v).all() for v in ckpt["state_dict"].values() if v.is_floating_point())
    # it loads as it was saved (its forward is the one that overflowed, so its rates need not be finite)
    model = neuroenc.load(last)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, ckpt["state_dict"][f"encoder.{name}"], rtol=0, atol=0)
