"""``model.predict`` on raw arrays and ``python -m neuroenc.predict``: the rates the training loop scores."""

import csv
import json

import numpy as np
import pytest
import torch
from conftest import run_cli

import neuroenc
from neuroenc.analysis.predict import session_predictions
from neuroenc.data.windows import WindowDataset, collate_windows
from neuroenc.metrics import BitsPerSpike
from neuroenc.training.build import build_datamodule


@pytest.fixture(scope="module")
def loaded(micro_run):
    _, metrics = micro_run
    model = neuroenc.load(metrics["best_checkpoint"])
    dm = build_datamodule(model.config)
    dm.prepare_data()
    dm.setup()
    return model, dm, metrics


def training_loop_rates(model, dm, split):
    """Per session ``(T, N)``: the rate validation computes for each scored frame (NaN elsewhere),
    from WindowDataset's normalised windows through the encoder, as validation_step runs it."""
    window = model.config.data.window
    ds = WindowDataset(dm.sessions, dm.windows[split], window)
    out = {s.id: np.full((s.n_frames, s.n_neurons), np.nan, np.float32) for s in dm.sessions}
    with torch.no_grad():
        for i in range(0, len(ds), 8):
            rows = list(range(i, min(i + 8, len(ds))))
            for si in sorted({int(dm.windows[split][r, 0]) for r in rows}):
                mine = [r for r in rows if dm.windows[split][r, 0] == si]
                batch = collate_windows([ds[r] for r in mine])
                sid = dm.sessions[si].id
                rates = model(batch["stim"], batch["behavior"], sid).float().numpy()
                for k, r in enumerate(mine):
                    _, start, score_from = (int(v) for v in dm.windows[split][r])
                    out[sid][start + score_from : start + window] = rates[k, score_from:]
    return out


def test_predict_on_raw_arrays_equals_the_rates_the_training_loop_scores(loaded):
    model, dm, metrics = loaded
    expected = training_loop_rates(model, dm, "val")
    bps = BitsPerSpike(model.info.n_neurons)
    for s in dm.sessions:
        rates, frames = session_predictions(model, s, "val")
        want = expected[s.id][frames[:, 0]]
        assert np.array_equal(np.isfinite(rates), np.isfinite(want))  # NaN exactly on the burn-in frames
        np.testing.assert_allclose(rates, want, rtol=1e-5, atol=1e-7, equal_nan=True)
        valid = s.valid(0, s.n_frames)[frames[:, 0]] & np.isfinite(rates)
        robs = np.nan_to_num(np.asarray(s.robs)[frames[:, 0]])
        bps.update(s.id, torch.from_numpy(np.nan_to_num(rates, nan=1.0)), torch.from_numpy(robs),
                   torch.from_numpy(valid))
    # bits per spike of the predictions over the val split is the score training logged
    assert bps.result().overall == pytest.approx(metrics["best_val_bps_overall"], rel=1e-5)


def test_predict_takes_uint8_or_float_single_or_batched_and_chunks_long_inputs(loaded):
    model, dm, _ = loaded
    s = dm.sessions[0]
    a, b = (int(v) for v in s.segments("val")[0])
    stim, beh = np.asarray(s.stim[a:b]), np.asarray(s.behavior[a:b])
    one = model.predict(stim, beh, s.id)
    burn_in, window = model.config.data.burn_in, model.config.data.window
    assert one.shape == (b - a, s.n_neurons) and one.dtype == np.float32
    assert np.isnan(one[:burn_in]).all() and np.isfinite(one[burn_in:]).all() and (one[burn_in:] > 0).all()
    assert b - a > window  # more than one chunk
    np.testing.assert_allclose(model.predict(stim.astype(np.float64), beh.astype(np.float64), s.id), one,
                               rtol=1e-6, equal_nan=True)
    batched = model.predict(np.stack([stim, stim]), np.stack([beh, beh]), s.id, batch_size=1)
    assert batched.shape == (2, b - a, s.n_neurons)
    np.testing.assert_allclose(batched[1], one, rtol=1e-5, atol=1e-7, equal_nan=True)


def test_predict_refuses_wrong_shapes_and_unknown_sessions_naming_them(loaded):
    model, dm, _ = loaded
    s = dm.sessions[0]
    stim, beh = np.asarray(s.stim[:30]), np.asarray(s.behavior[:30])
    with pytest.raises(ValueError, match=r"session 'nope' has no readout.*\['sim00', 'sim01'\]"):
        model.predict(stim, beh, "nope")
    with pytest.raises(ValueError, match=r"stim frames are \(12, 8\), the model was trained on \(12, 16\)"):
        model.predict(stim[:, :, :8], beh, s.id)
    with pytest.raises(ValueError, match=r"behavior has shape \(1, 29, 4\); expected \(1, 30, 4\)"):
        model.predict(stim, beh[:29], s.id)


def test_predict_command_writes_npy_and_csv_per_session(loaded, tmp_path):
    model, dm, metrics = loaded
    out = tmp_path / "pred"
    r = run_cli([f"checkpoint={metrics['best_checkpoint']}", f"out_dir={out}", "split=test"], cwd=tmp_path,
                module="neuroenc.predict", timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    summary = json.loads((out / "predictions.json").read_text())
    assert set(summary["sessions"]) == {"sim00", "sim01"}
    for s in dm.sessions:
        rates = np.load(out / f"{s.id}.npy", allow_pickle=False)
        frames = np.load(out / f"{s.id}_frames.npy", allow_pickle=False)
        want, want_frames = session_predictions(model, s, "test")
        np.testing.assert_array_equal(frames, want_frames)
        np.testing.assert_allclose(rates, want, rtol=1e-6, equal_nan=True)
        assert summary["sessions"][s.id]["normalization"] == "checkpoint"
        with open(out / f"{s.id}.csv") as f:
            rows = list(csv.reader(f))
        assert rows[0] == ["frame", "trial", *[str(i) for i in s.meta["neuron_ids"]]]
        assert len(rows) == 1 + len(frames)
        last = np.array([float(v) for v in rows[-1][2:]])
        np.testing.assert_allclose(last, rates[-1], rtol=1e-6)
