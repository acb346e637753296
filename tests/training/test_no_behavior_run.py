"""Sessions without behaviour columns train (a real Trainer), evaluate (``python -m neuroenc.evaluate``)
and predict (``model.predict`` with no behaviour, ``python -m neuroenc.predict``'s files); a shifter
that needs the eye position says the data has none, before training."""

import json
import math

import numpy as np
import pytest
from conftest import compose_config, run_cli, tiny_session

import neuroenc
from neuroenc.analysis.predict import predict_split
from neuroenc.config.validate import ConfigError
from neuroenc.training.run import train

TINY = ["data=sessions", "data.window=20", "data.burn_in=6", "data.batch_size=4",
        "frontend.num_channels=2", "frontend.kernel_size=4", "convnet.stages=[{out_channels:4,kernel_size:[2,3,3],stride:1}]",
        "modulator.hidden_dim=4", "modulator.beh_emb_dim=4", "modulator.kernel_size=1",  # convgru, its default embedding
        "trainer.max_epochs=2", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false",
        "logger.csv=null", "optim.warmup_steps=1"]


def sessions(root):
    for sid in ("a", "b"):
        tiny_session(root / sid, sid)
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("no-behaviour")
    root = sessions(tmp / "sessions")
    run_dir = tmp / "run"
    return run_dir, train(compose_config([*TINY, f"data.root={root}"]), run_dir)


def test_sessions_without_behaviour_train_with_a_real_trainer(run):
    run_dir, m = run
    assert m["status"] == "finished" and m["steps"] > 0
    assert math.isfinite(m["best_val_bps_overall"]) and set(m["val_bps_per_session"]) == {"a", "b"}
    assert math.isfinite(m["val_bps_stimulus_shuffled"]) and m["val_bps_behavior_only"] is None
    assert "shifter" not in m["parameters"]  # shifter=auto: no eye columns, no shifter
    model = neuroenc.load(m["best_checkpoint"])
    assert model.info.behavior_dim == 0 and model.modulator.embed is None


def test_python_m_neuroenc_evaluate_scores_a_model_without_behaviour(run, tmp_path):
    run_dir, m = run
    r = run_cli([f"checkpoint={run_dir}", f"out_dir={tmp_path}", "accelerator=cpu"], cwd=tmp_path,
                module="neuroenc.evaluate", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["splits"]["val"]["bps_overall"] == m["best_val_bps_overall"]
    assert math.isfinite(summary["splits"]["test"]["bps_overall"]) and summary["shifter"] is None


def test_predict_takes_no_behaviour_for_a_model_without_it_and_writes_every_test_frame(run, tmp_path):
    run_dir, m = run
    model = neuroenc.load(m["best_checkpoint"])
    movie = np.random.default_rng(1).integers(0, 255, (30, 12, 16), dtype=np.uint8)
    rates = model.predict(movie, None, "b")
    np.testing.assert_array_equal(rates, model.predict(movie, np.zeros((30, 0)), "b"))
    assert rates.shape == (30, 5) and np.isnan(rates[:6]).all() and (rates[6:] > 0).all()
    summary = predict_split(m["best_checkpoint"], "test", out_dir=tmp_path, csv_files=False)
    for sid in ("a", "b"):
        written = np.load(tmp_path / f"{sid}.npy")
        assert written.shape == (30, 5) and summary["sessions"][sid]["trials"] == [3]
        assert np.isfinite(written[6:]).all()


def test_predict_without_behaviour_for_a_model_that_reads_it_names_the_columns(micro_run):
    _, m = micro_run
    model = neuroenc.load(m["best_checkpoint"])
    with pytest.raises(ValueError, match=r"predict: behavior is None, but the model reads 4 behaviour columns "
                                         r"\['eye_x', 'eye_y', 'running', 'pupil'\]"):
        model.predict(np.zeros((30, 12, 16), np.uint8), None, "sim00")


def test_shifter_mlp_on_sessions_without_behaviour_says_the_data_has_none_before_training(tmp_path):
    root = sessions(tmp_path / "sessions")
    run_dir = tmp_path / "run"
    with pytest.raises(ConfigError) as e:
        train(compose_config([*TINY, f"data.root={root}", "shifter=mlp"]), run_dir)
    print(e.value)
    assert "config key 'shifter.columns': ['eye_x', 'eye_y'] not among the data's behaviour columns: it has none " \
           "(meta.json behavior_names is empty)" in str(e.value)
    assert not run_dir.exists() or not any(run_dir.iterdir())
