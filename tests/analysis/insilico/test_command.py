"""``python -m neuroenc.insilico``: every analysis on a trained checkpoint, one CSV row per neuron,
a summary, a figure per analysis and session; analyses that cannot run say why; bad arguments
are refused by name before anything runs."""

import csv
import json

import pytest
from conftest import run_cli

from neuroenc.analysis.insilico.experiments import InsilicoError, run_insilico

PNG = b"\x89PNG\r\n\x1a\n"


def test_insilico_writes_one_row_per_neuron_a_summary_and_figures(micro_run, tmp_path):
    _, metrics = micro_run
    out = tmp_path / "insilico"
    r = run_cli([f"checkpoint={metrics['best_checkpoint']}", f"out_dir={out}"], cwd=tmp_path,
                module="neuroenc.insilico", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    with open(out / "neurons.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == summary["neurons"] > 0
    assert {row["session"] for row in rows} == set(summary["sessions"])
    # the simulated data has truth: the recovered and true values sit side by side
    assert {"true_theta_deg", "orientation_error_deg", "rf_center_error_px"} <= set(rows[0])
    assert summary["truth"]["orientation_error_deg_median"] is not None
    ran = [name for name, a in summary["analyses"].items() if a["sessions"]]
    assert {"receptive_fields", "gratings", "mei"} <= set(ran)
    for name in ran:
        for sid in summary["analyses"][name]["sessions"]:
            assert (out / f"{name}_{sid}.png").read_bytes()[:8] == PNG
    # the micro data has no per-trial stimulus labels: skipped, with the reason, per session
    skipped = summary["analyses"]["stimulus_classes"]["skipped"]
    assert set(skipped) == set(summary["sessions"]) and all("label" in why for why in skipped.values())
    assert "stimulus_classes" in r.stdout


@pytest.mark.parametrize("kwargs,message", [
    ({"analyses": ["gratings", "tuning"]}, "analyses: ['tuning'] unknown"),
    ({"neurons": [0, 10_000]}, "neurons: index 10000 is out of range for session"),
    ({"sessions": ["nope"]}, "sessions: ['nope'] not in this model's data"),
])
def test_bad_arguments_are_refused_naming_them(micro_run, tmp_path, kwargs, message):
    _, metrics = micro_run
    with pytest.raises(InsilicoError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run_insilico(metrics["best_checkpoint"], out_dir=tmp_path / "out", **kwargs)
    assert not (tmp_path / "out" / "summary.json").exists()


def test_a_missing_checkpoint_is_refused_naming_the_path(tmp_path):
    with pytest.raises(InsilicoError, match="checkpoint: .*nothing.ckpt"):
        run_insilico(str(tmp_path / "nothing.ckpt"))
