"""``python -m neuroenc.bench quality``: a real run for a wall-clock budget, compared with a saved one."""

import json

import pytest
from conftest import MICRO, run_cli

from neuroenc.bench.quality import main, max_time


def test_quality_trains_for_its_budget_and_prints_the_comparison(tmp_path):
    # a result saved before on another machine (the fields --save writes)
    ref = {"benchmark": "quality", "overrides": ["seed=1"], "minutes": 0.1, "budget_s": 6, "best_val_bps_overall": -0.5,
           "val_bps_oracle": 1.0, "oracle_fraction": -0.5, "steps": 1000, "mean_train_step_s": 0.001,
           "machine": {"cpu_model": "another CPU", "cpu_count": 64, "torch_threads": 64, "gpus": [],
                       "git_commit": "0123456789abcdef", "git_dirty": False}}
    (tmp_path / "ref.json").write_text(json.dumps(ref))
    r = run_cli(["quality", *MICRO, "trainer.max_epochs=1000", "--minutes", "0.1", "--save", str(tmp_path / "a.json"),
                 "--run-dir", str(tmp_path / "run"), "--against", str(tmp_path / "ref.json")],
                cwd=tmp_path, module="neuroenc.bench")
    assert r.returncode == 0, r.stderr[-3000:]
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["benchmark"] == "quality" and a["budget_s"] == 6 and a["max_time"] == "00:00:00:06"
    assert a["status"] == "finished" and a["run_dir"] == str(tmp_path / "run")
    # the clock stopped it long before its 1000 epochs of 6 steps
    assert a["planned_steps"] == 6000 and 1 <= a["steps"] < 6000 and a["stopped_by"] == "clock"
    assert a["oracle_fraction"] == pytest.approx(a["best_val_bps_overall"] / a["val_bps_oracle"])
    assert a["budget_s_per_step"] == pytest.approx(6 / a["steps"]) and a["mean_train_step_s"] > 0
    for key in ("val_bps_stimulus_shuffled", "rf_distance_px_median", "data_prepare_s", "process_s"):
        assert isinstance(a[key], float), key
    assert {"cpu_model", "cpu_count", "torch_threads", "gpus", "torch", "git_commit"} <= set(a["machine"])
    # side by side, with the differences and a warning about the machines
    assert "against" in r.stdout and "difference" in r.stdout and "best val bits/spike" in r.stdout
    assert f"{a['steps'] - 1000:+d} " in r.stdout
    assert "different machines" in r.stdout and "another CPU" in r.stdout and "seed=1" in r.stdout


def test_quality_refuses_a_bad_reference_and_its_own_settings(tmp_path, capsys):
    (tmp_path / "other.json").write_text(json.dumps({"benchmark": "gpu"}))
    assert main(["--minutes", "1", "--against", str(tmp_path / "other.json")]) == 2
    assert "--against" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--minutes", "1", "trainer.max_time=00:00:01:00"])
    assert e.value.code == 2 and "trainer.max_time" in capsys.readouterr().err


def test_max_time_is_lightnings_format():
    assert max_time(6) == "00:00:00:06" and max_time(90061) == "01:01:01:01"
