"""Training never runs without validation unless asked to: data without a single val window stop
the run before it starts, naming each session and its meta.json splits; with
``data.allow_no_validation=true`` it trains and metrics.json says it has no val score."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import compose_config, tiny_session

import neuroenc
from neuroenc.analysis.evaluate import evaluate
from neuroenc.data.sessions import SessionFormatError
from neuroenc.training.run import train

RUN = ["data=sessions", "data.window=20", "data.burn_in=6", "data.batch_size=4", "frontend.num_channels=2",
       "frontend.kernel_size=4", "convnet.stages=[{out_channels:4,kernel_size:[2,3,3],stride:1}]", "modulator=none",
       "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
       "logger.csv=null", "optim.warmup_steps=1"]


def sessions_without_val_windows(root: Path) -> Path:
    """Session 'a' has no val split; session 'b' has one, of a trial shorter than data.window=20."""
    tiny_session(root / "a", "a", splits={"train": [0, 1, 2], "test": [3]})
    tiny_session(root / "b", "b", trial=np.repeat(np.arange(5), [30, 30, 30, 15, 15]),
                 splits={"train": [0, 1, 2], "val": [3], "test": [4]})
    return root


def test_data_without_validation_windows_stop_training_naming_sessions_splits_and_the_opt_in(tmp_path):
    root = sessions_without_val_windows(tmp_path / "sessions")
    run_dir = tmp_path / "run"
    with pytest.raises(SessionFormatError) as e:
        train(compose_config([*RUN, f"data.root={root}"]), run_dir)
    message = str(e.value)
    print(message)
    assert "no validation windows of data.window=20 frames" in message and str(root) in message
    assert "meta.json splits: session 'a': no 'val' in its splits; session 'b': its longest val trial has 15 frames" \
        in message
    assert "Training never runs without validation" in message and "data.allow_no_validation=true" in message
    assert not run_dir.exists() or not any(run_dir.iterdir())  # nothing written: no run started


def test_with_allow_no_validation_the_run_trains_and_says_it_has_no_val_score(tmp_path):
    root = sessions_without_val_windows(tmp_path / "sessions")
    run_dir = tmp_path / "run"
    m = train(compose_config([*RUN, f"data.root={root}", "data.allow_no_validation=true"]), run_dir)
    assert json.loads((run_dir / "metrics.json").read_text()) == json.loads(json.dumps(m))
    assert m["status"] == "finished" and m["epochs"] == 2 and m["steps"] > 0 and m["history"] == []
    assert m["no_validation"].startswith("this run never validated: no validation windows")
    assert "data.allow_no_validation=true" in m["no_validation"] and "session 'a'" in m["no_validation"]
    for key in ("best_val_bps_overall", "init_val_bps_overall", "val_bps_stimulus_shuffled", "best_checkpoint"):
        assert m[key] is None, key
    last = Path(m["last_checkpoint"])
    assert last == run_dir / "checkpoints" / "last.ckpt" and last.exists()
    assert neuroenc.load(last).checkpoint["global_step"] == m["steps"]  # the final weights

    with pytest.raises(FileNotFoundError, match=r"it never validated, so no checkpoint is best; give "
                                                rf"checkpoint={last}"):
        evaluate(run_dir, out_dir=tmp_path / "evaluation")
    with pytest.raises(ValueError, match=r"splits: no session under .* has a window of data.window=20 frames in "
                                         r"\['val'\] \(meta.json splits\); evaluate the others: splits=\[test\]"):
        evaluate(last, out_dir=tmp_path / "evaluation")
    assert not (tmp_path / "evaluation").exists()
