"""``neuroenc.report`` on fabricated job directories: the files training writes, with known numbers."""

import csv
import json

import yaml

from neuroenc.report import write_report


def fake_job(sweep, num, overrides, data_seed, per_neuron, best):
    d = sweep / f"{num}_{','.join(overrides)}"
    (d / ".hydra").mkdir(parents=True)
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (d / "config_resolved.yaml").write_text(yaml.safe_dump(
        {"data": {"window": 64, "seed": data_seed, "simulation": {"seed": data_seed, "num_sessions": 1}}}))
    (d / "metrics.json").write_text(json.dumps({
        "status": "finished", "best_val_bps_overall": best, "val_oracle_fraction": best, "mean_train_step_s": 1.0,
        "parameters": {"total": 10}, "val_bps_per_session": {"sim00": best}, "history": []}))
    with (d / "per_neuron.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["session", "neuron", "neuron_id", "bps", "rf_size"])
        for i, (bps, rf) in enumerate(per_neuron):
            w.writerow(["sim00", i, i, bps, rf])


def test_rf_breakdown_keeps_neurons_of_different_simulated_datasets_apart(tmp_path):
    # the seed draws the simulated neurons: neuron 0 is a 0.5 px cell in seed 0's data and a 2.5 px
    # cell in seed 1's. Averaging neuron 0 over seeds would put one made-up cell in one bin.
    for num, (model, seed) in enumerate([(m, s) for m in ("a", "b") for s in (0, 1)]):
        shift = 0.0 if model == "a" else 1.0
        cells = [(0.1 + shift, 0.5), (0.2 + shift, 2.5)] if seed == 0 else [(0.3 + shift, 2.5), (0.4 + shift, 0.5)]
        fake_job(tmp_path, num, [f"model={model}", f"seed={seed}"], seed, cells, best=0.1 * (num + 1))
    write_report(tmp_path, compare=("model=a", "model=b"))
    report = (tmp_path / "report.md").read_text()
    # model a: 0-1 px bin holds 0.1 (seed 0) and 0.4 (seed 1): mean 0.25 over 2 neurons; 2-3 px: 0.2, 0.3
    assert "| `model=a` | 0.2500 (n=2) | n/a (n=0) | 0.2500 (n=2) |" in report
    assert "| `model=b` | 1.2500 (n=2) | n/a (n=0) | 1.2500 (n=2) |" in report
    rows = list(csv.DictReader((tmp_path / "report.csv").open()))
    assert [r["config"] for r in rows] == ["model=a", "model=b"] and rows[0]["seeds"] == "0 1"
    assert (tmp_path / "compare.png").stat().st_size > 0


def test_jobs_are_read_in_job_number_order(tmp_path):
    for num in (9, 10, 2):
        fake_job(tmp_path, num, [f"x={num}"], 0, [(0.1, 1.5)], best=num / 100)
    write_report(tmp_path)
    assert [r["config"] for r in csv.DictReader((tmp_path / "report.csv").open())] == ["x=2", "x=9", "x=10"]
