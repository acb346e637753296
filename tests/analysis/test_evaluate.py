"""``python -m neuroenc.evaluate``: per-neuron scores and plots of a checkpoint, and the val score
training logged for it."""

import csv
import json
import math

import numpy as np
import torch
from conftest import run_cli

from neuroenc.metrics import Correlation

PNG = b"\x89PNG\r\n\x1a\n"


def test_evaluate_writes_per_neuron_csv_and_plots_and_reproduces_the_logged_val_bps(micro_run, tmp_path):
    run_dir, metrics = micro_run
    out = tmp_path / "evaluation"
    r = run_cli([f"checkpoint={metrics['best_checkpoint']}", f"out_dir={out}", "accelerator=cpu"], cwd=tmp_path,
                module="neuroenc.evaluate", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    val = summary["splits"]["val"]
    print(f"training logged {metrics['best_val_bps_overall']!r}, evaluate computed {val['bps_overall']!r}")
    assert val["bps_overall"] == metrics["best_val_bps_overall"] == summary["logged_val_bps_overall"]
    assert val["bps_per_session"] == metrics["val_bps_per_session"]
    assert val["bps_oracle"] == metrics["val_bps_oracle"]
    assert val["bps_neuron_mean_clamped"] == metrics["best_val_bps_neuron_mean_clamped"]
    assert set(summary["splits"]) == {"val", "test"}

    with open(out / "neurons.csv") as f:
        rows = list(csv.DictReader(f))
    n_neurons = torch.load(metrics["best_checkpoint"], weights_only=False)["neuroenc"]["data_info"]["n_neurons"]
    n = len(rows)
    assert n == sum(n_neurons.values())  # one row per neuron
    assert {r["session"] for r in rows} == {"sim00", "sim01"}
    for split in ("val", "test"):
        bps = np.array([float(r[f"{split}_bps"]) for r in rows])
        corr = np.array([float(r[f"{split}_corr"]) for r in rows])
        assert np.isfinite(bps).sum() > n // 2 and np.all(np.abs(corr[np.isfinite(corr)]) <= 1)
    assert math.isclose(np.nanmean([float(r["val_bps"]) for r in rows]), metrics["best_val_bps_neuron_mean"],
                        rel_tol=1e-12)
    for r_ in rows:  # simulated data: readout position and true receptive field, both in pixels
        assert 0 <= float(r_["rf_x_px"]) <= 15 and 0 <= float(r_["rf_y_px"]) <= 11
        assert 0 <= float(r_["true_x_px"]) <= 15 and float(r_["rf_error_px"]) >= 0
    assert summary["rf_recovery"]["median_error_px"] >= 0
    assert 0 <= summary["frontend_nyquist_gain"] <= 1  # the micro run's frontend is learnable, not anti-aliased
    shifter = summary["shifter"]  # the simulator writes the gaze in pixels (data.eye_px_per_unit=1)
    assert shifter["gaze_in_px"] and shifter["rms_error_px"] >= 0 and math.isfinite(shifter["slope_x"])
    assert "shifter:" in r.stdout
    for name in ("bps_histogram", "rf_positions", "temporal_filters", "rf_recovery", "shifter"):
        png = (out / f"{name}.png").read_bytes()
        assert png.startswith(PNG) and len(png) > 5000, name


def test_correlation_metric_equals_pearson_over_the_masked_bins_per_neuron():
    g = torch.Generator().manual_seed(0)
    rates = torch.rand(6, 10, 3, generator=g)
    counts = torch.poisson(rates * 3, generator=g)
    mask = torch.rand(6, 10, 3, generator=g) > 0.2
    counts[~mask] = float("nan")  # masked bins may hold anything
    metric = Correlation({"a": 3})
    metric.update("a", rates[:3], counts[:3], mask[:3])
    metric.update("a", rates[3:], counts[3:], mask[3:])
    got = metric.compute()
    for j in range(3):
        m = mask[..., j]
        expect = np.corrcoef(rates[..., j][m].double().numpy(), counts[..., j][m].double().numpy())[0, 1]
        assert math.isclose(float(got[j]), expect, rel_tol=1e-9)
