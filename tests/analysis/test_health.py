"""Health figures: the stimulus-shuffled control, the behaviour-only reference and the warning."""

import numpy as np
import torch

from neuroenc.analysis import health
from neuroenc.data.datamodule import SyntheticDataModule
from neuroenc.data.windows import WindowDataset

SIM = dict(seed=0, num_sessions=2, neurons_min=6, neurons_max=8, trials_train=6, trials_val=3, trials_test=1,
           trial_frames=100, height=12, width=16)


def datamodule(tmp_path) -> SyntheticDataModule:
    dm = SyntheticDataModule(str(tmp_path), SIM, window=40, burn_in=10, batch_size=4, num_workers=0, seed=0,
                             eye_px_per_unit=1.0)
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
