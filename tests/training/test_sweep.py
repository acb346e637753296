"""A multirun of two tiny jobs logs to CSV and W&B (offline) and reports one row per config."""

import csv
import json
import os
from pathlib import Path

import pytest
from conftest import TINY_DATA, TINY_MODEL, run_cli

from neuroenc.analysis.evaluate import evaluate
from neuroenc.analysis.report import write_report

FAST = [*TINY_DATA, *TINY_MODEL, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
        "trainer.enable_progress_bar=false", "eval_init=false"]


def sweep_dir(root):
    (d,) = [p for p in (root / "multirun").glob("*/*") if p.is_dir()]
    return d


def test_multirun_with_csv_and_wandb_gives_two_runs_two_job_dirs_and_a_report(tmp_path):
    os.environ["WANDB_MODE"] = "offline"
    r = run_cli(["-m", "modulator.hidden_dim=4,8", "logger=csv_wandb", *[o for o in FAST if "hidden_dim" not in o]],
                cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0_modulator.hidden_dim=4", "1_modulator.hidden_dim=8"]
    for j in jobs:
        m = json.loads((j / "metrics.json").read_text())
        assert m["status"] == "finished" and (j / "per_neuron.csv").exists() and (j / "csv").is_dir()
    wandb_runs = list(sweep.rglob("wandb/offline-run-*"))
    assert len(wandb_runs) == 2, wandb_runs
    table = write_report(sweep, compare=("hidden_dim=4", "hidden_dim=8"))
    assert [row["config"] for row in table] == ["modulator.hidden_dim=4", "modulator.hidden_dim=8"]
    for f in ("report.md", "report.csv", "val_bps.png", "curves.png", "compare.png", "bps_by_rf_size.png"):
        assert (sweep / f).stat().st_size > 0, f


def test_a_failing_job_is_recorded_and_the_others_keep_their_results(tmp_path):
    # optim.lr=-1 is refused by the config checks: that job fails, the other one trains
    r = run_cli(["-m", "optim.lr=0.003,-1", *FAST], cwd=tmp_path)
    assert r.returncode != 0 and "optim.lr" in r.stderr
    sweep = sweep_dir(tmp_path)
    good = json.loads((sweep / "0_optim.lr=0.003" / "metrics.json").read_text())
    assert good["status"] == "finished"
    assert not (sweep / "1_optim.lr=-1" / "metrics.json").exists()
    table = write_report(sweep)
    status = {row["config"]: row["status"] for row in table}
    assert status == {"optim.lr=0.003": "1 finished", "optim.lr=-1": "1 failed"}


@pytest.mark.slow
def test_ddp_multirun_runs_each_job_once_in_its_own_dir(tmp_path):
    r = run_cli(["-m", "modulator.hidden_dim=4,8", "trainer.accelerator=cpu", "trainer.devices=2",
                 "trainer.strategy=ddp", *[o for o in FAST if "hidden_dim" not in o]], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert len(list((tmp_path / "multirun").glob("*/*"))) == 1  # no duplicate sweep tree
    assert not (tmp_path / "outputs").exists()
    sweep = sweep_dir(tmp_path)
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_modulator.hidden_dim=4", "1_modulator.hidden_dim=8"]
    for j in jobs:
        m = json.loads((sweep / j / "metrics.json").read_text())
        assert m["status"] == "finished"
        # the val score the 2 ranks logged (each scored its shard of the val batches, summed across
        # ranks) is that of the whole split: one process evaluating the checkpoint gets it back.
        # Found bit-identical; the tolerance only allows for float sums in another order or other
        # CPU kernels, far below what a window scored twice or not at all would change
        best = Path(m["best_checkpoint"])
        assert best.parent.resolve() == (sweep / j / "checkpoints").resolve() and best.name.startswith("best-")
        summary = evaluate(best, out_dir=tmp_path / "evaluation" / j, splits=("val",), accelerator="cpu")
        val = summary["splits"]["val"]
        assert summary["logged_val_bps_overall"] == m["best_val_bps_overall"]  # the checkpoint of that score
        assert val["bps_overall"] == pytest.approx(m["best_val_bps_overall"], rel=0, abs=1e-6)
        assert val["bps_per_session"] == pytest.approx(m["val_bps_per_session"], rel=0, abs=1e-6)
        with open(next((sweep / j / "csv").glob("version_*/metrics.csv"))) as f:
            logged = [r for r in csv.DictReader(f) if r.get("val_bps_overall")]
        (row,) = [r for r in logged if int(r["epoch"]) == m["best_epoch"]]
        assert float(row["val_bps_overall"]) == pytest.approx(val["bps_overall"], rel=0, abs=1e-6)  # float32 in the CSV


@pytest.mark.slow
def test_optuna_search_maximises_val_bps_with_in_memory_storage(tmp_path):
    r = run_cli(["hparams_search=optuna", "hydra.sweeper.n_trials=2", *FAST], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    sweep = sweep_dir(tmp_path)
    jobs = [p for p in sweep.iterdir() if p.is_dir()]
    assert len(jobs) == 2 and all(j.name.split("_", 1)[1].startswith("optim.lr=") for j in jobs)
    results = (sweep / "optimization_results.yaml").read_text()
    best = max(json.loads((j / "metrics.json").read_text())["best_val_bps_overall"] for j in jobs)
    assert f"best_value: {best}" in results
