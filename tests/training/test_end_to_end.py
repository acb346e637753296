"""A tiny ``python -m neuroenc`` run in a subprocess trains, checkpoints and beats its initial score."""

import csv
import json
import math

from conftest import TINY_DATA, run_cli

from neuroenc.metrics import neuron_mean_clamped_bps

# Small enough to train in a minute, learnable enough to beat the null model in that minute:
# simple cells only, no eye movements, and a convnet wide enough to find their receptive fields.
LEARNABLE = [
    *[o for o in TINY_DATA if not o.startswith("data.batch_size=")],
    "data.simulation.complex_fraction=0",
    "data.simulation.max_eye_shift=0",
    "data.batch_size=4",
    "frontend.kernel_size=8",
    "convnet.stages=[{out_channels:16,kernel_size:[3,5,5],stride:1}]",
    "modulator.hidden_dim=16",
    "modulator.beh_emb_dim=4",
    "optim.lr=0.01",
    "optim.warmup_steps=5",
]


def test_tiny_training_run_writes_checkpoint_and_metrics_and_learns(tmp_path):
    r = run_cli([*LEARNABLE, "trainer.max_epochs=8", "trainer.enable_progress_bar=false"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    (metrics_file,) = list((tmp_path / "outputs").rglob("metrics.json"))
    run_dir = metrics_file.parent
    m = json.loads(metrics_file.read_text())
    assert m["status"] == "finished"
    assert m["epochs"] == 8 and m["steps"] > 0
    assert list((run_dir / "checkpoints").glob("best-*.ckpt")) and (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "csv").is_dir()
    assert m["best_val_bps_overall"] > 0
    assert m["best_val_bps_overall"] > m["init_val_bps_overall"]
    assert 0 < m["val_oracle_fraction"] <= 1 and m["val_bps_oracle"] > m["best_val_bps_overall"]
    assert set(m["val_bps_per_session"]) == {"sim00", "sim01"}
    assert set(m["parameters"]) == {"frontend", "convnet", "modulator", "shifter", "readout", "total"}
    # it learned the stimulus, not only the behaviour: its score falls with the stimulus shuffled
    assert m["val_bps_stimulus_shuffled"] < 0.5 * m["best_val_bps_overall"]
    assert m["val_bps_behavior_only"] is not None
    # the readouts start on their cells' estimated centres; training keeps them there or brings them closer
    print("rf distance: start", m["init_rf_distance_px_median"], "best epoch", m["rf_distance_px_median"])
    assert m["rf_distance_px_median"] <= m["init_rf_distance_px_median"] + 0.1
    assert "stimulus shuffled" in r.stdout and "not using the stimulus" not in r.stdout
    assert "best val bits/spike" in r.stdout
    # VisionCore's figure: every validation, and at the best epoch from that epoch's per-neuron scores
    assert all(math.isfinite(row["val_bps_neuron_mean_clamped"]) for row in m["history"])
    with open(run_dir / "per_neuron.csv") as f:
        per_session: dict[str, list[float]] = {}
        for row in csv.DictReader(f):
            per_session.setdefault(row["session"], []).append(float(row["bps"]))
    assert math.isclose(m["best_val_bps_neuron_mean_clamped"], neuron_mean_clamped_bps(per_session), rel_tol=1e-12)
    (csv_log,) = list((run_dir / "csv").rglob("metrics.csv"))
    assert "val_bps_neuron_mean_clamped" in csv_log.read_text().splitlines()[0].split(",")
    assert "VisionCore's definition" in r.stdout
    assert not list(tmp_path.glob("*.ckpt")) and not (tmp_path / "lightning_logs").exists()


def test_bf16_mixed_and_compile_switches_train_in_the_real_trainer(tmp_path):
    """``trainer.precision=bf16-mixed`` and ``compile=true`` go through Lightning's trainer (not only the
    benchmark): the run finishes with finite scores."""
    import math

    from conftest import MICRO, compose_config

    from neuroenc.training.run import train

    cfg = compose_config([*MICRO, "trainer.max_epochs=1", "trainer.precision=bf16-mixed", "compile=true",
                          "logger.csv=null", "trainer.enable_progress_bar=false"])
    metrics = train(cfg, tmp_path)
    assert math.isfinite(metrics["best_val_bps_overall"]) and metrics["best_val_bps_overall"] > -1
