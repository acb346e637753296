"""Health figures: the stimulus-shuffled control, the behaviour-only reference and the warning."""

import numpy as np
import pytest
import torch

from neuroenc.data.datamodule import SyntheticDataModule
from neuroenc.data.windows import WindowDataset
from neuroenc.training import health

SIM = dict(seed=0, num_sessions=2, neurons_min=6, neurons_max=8, trials_train=6, trials_val=3, trials_test=1,
           trial_frames=100, height=12, width=16)


def datamodule(tmp_path) -> SyntheticDataModule:
    dm = SyntheticDataModule(str(tmp_path), SIM, window=40, burn_in=10, batch_size=4, num_workers=0, seed=0,
                             eye_px_per_unit=1.0, allow_no_validation=False)
    dm.setup()
    return dm


def test_shuffled_windows_permute_within_each_session():
    sessions = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    source = health.shuffled_windows(sessions, seed=3)
    assert sorted(source.tolist()) == list(range(len(sessions)))
    np.testing.assert_array_equal(sessions[source], sessions)
    assert np.all((source != np.arange(len(sessions))) | (sessions == 2))  # all but the lone window move
    np.testing.assert_array_equal(source, health.shuffled_windows(sessions, seed=3))


def test_shuffled_dataset_takes_only_the_stimulus_from_another_window(tmp_path):
    dm = datamodule(tmp_path)
    windows = dm.windows["val"]
    dataset = WindowDataset(dm.sessions, windows, dm.window)
    source = health.shuffled_windows(windows[:, 0], seed=0)
    shuffled = health.StimulusFrom(dataset, source)
    i = int(np.flatnonzero(source != np.arange(len(source)))[0])
    torch.testing.assert_close(shuffled[i]["stim"], dataset[int(source[i])]["stim"])
    for key in ("behavior", "robs", "mask", "rates"):
        torch.testing.assert_close(shuffled[i][key], dataset[i][key])


def test_behavior_only_rates_follow_the_simulators_gain_and_score_between_null_and_oracle(tmp_path):
    dm = datamodule(tmp_path)
    session = dm.sessions[0]
    rates = health.behavior_only_rates(session)
    assert rates.shape == (session.n_frames, session.n_neurons)
    train = session.split_frames("train")
    valid = session.dfs[train] > 0
    np.testing.assert_allclose(np.where(valid, rates[train], 0).sum(0), np.where(valid, session.robs[train], 0).sum(0),
                               rtol=1e-6)  # scaled to each neuron's training mean
    # the true rates are the behaviour gain times a stimulus drive: they correlate with the gain
    corr = [np.corrcoef(rates[:, i], session.rates[:, i])[0, 1] for i in range(session.n_neurons)]
    assert np.mean(corr) > 0
    assert -0.1 < health.behavior_only_score(dm) < 0.5


def test_warning_when_the_trained_score_is_under_twice_the_shuffled_one():
    assert health.stimulus_warning({"best_val_bps_overall": 0.07, "val_bps_stimulus_shuffled": 0.06})
    assert health.stimulus_warning({"best_val_bps_overall": 0.05, "val_bps_stimulus_shuffled": -0.01}) is None
    assert health.stimulus_warning({"best_val_bps_overall": 0.5, "val_bps_stimulus_shuffled": 0.1}) is None
    assert health.stimulus_warning({"best_val_bps_overall": 0.5, "val_bps_stimulus_shuffled": None}) is None


def test_shifter_response_reads_the_raw_gaze_and_scores_the_shift_against_it(tmp_path):
    from types import SimpleNamespace

    from neuroenc.model.shifter import MLPShifter

    dm = datamodule(tmp_path)
    ids = [s.id for s in dm.sessions]
    names = dm.sessions[0].behavior_names
    shifter = MLPShifter(names, ids, columns=["eye_x", "eye_y"], hidden=[], shared=False, required=True)
    for s in dm.sessions:  # a linear shifter that undoes the standardisation: shift = the raw gaze
        st = s.stats()
        eye = [names.index("eye_x"), names.index("eye_y")]
        last = shifter.mlps[s.id][-1]
        last.weight.data = torch.diag(torch.tensor([st["behavior_std"][i] for i in eye], dtype=torch.float32))
        last.bias.data = torch.tensor([st["behavior_mean"][i] for i in eye], dtype=torch.float32)
    model = SimpleNamespace(shifter=shifter)
    response = health.shifter_response(model, dm.sessions, "val", eye_px_per_unit=1.0)
    for s in dm.sessions:
        frames = s.split_frames("val")
        np.testing.assert_allclose(response[s.id]["gaze"], s.behavior[frames][:, eye])
        np.testing.assert_allclose(response[s.id]["shift"], response[s.id]["gaze"], atol=1e-4)
    summary = health.shifter_summary(response, 1.0)
    assert summary["slope_x"] == pytest.approx(1, abs=1e-4) and summary["slope_y"] == pytest.approx(1, abs=1e-4)
    assert summary["rms_error_px"] < 1e-4 and summary["gaze_in_px"]

    for s in dm.sessions:  # half the gaze, at 2 px per data unit: a slope of 1/4 px per px, off by 3/4 of it
        shifter.mlps[s.id][-1].weight.data *= 0.5
        shifter.mlps[s.id][-1].bias.data *= 0.5
    response = health.shifter_response(model, dm.sessions, "val", eye_px_per_unit=2.0)
    gaze = np.concatenate([r["gaze"] for r in response.values()])
    summary = health.shifter_summary(response, 2.0)
    assert summary["slope_x"] == pytest.approx(0.25, abs=1e-4) and summary["slope_y"] == pytest.approx(0.25, abs=1e-4)
    assert summary["rms_error_px"] == pytest.approx(np.sqrt(np.mean(np.sum((0.75 * gaze) ** 2, 1))), rel=1e-3)
    assert health.shifter_summary(response, None)["rms_error_px"] is None
    assert health.shifter_response(SimpleNamespace(shifter=None), dm.sessions, "val", 1.0) is None
