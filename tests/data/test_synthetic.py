"""The simulated V1: seeded, written in the session format, ground truth kept."""

import numpy as np

from neuroenc.data.sessions import open_sessions
from neuroenc.data.synthetic import SimulationParams, ensure_simulated, simulate_session

SMALL = SimulationParams(num_sessions=2, neurons_min=5, neurons_max=9, trials_train=3, trials_val=1,
                         trials_test=1, trial_frames=60, height=12, width=16)


def test_same_seed_same_data_other_seed_other_data():
    a, b = simulate_session(SMALL, 0), simulate_session(SMALL, 0)
    np.testing.assert_array_equal(a["robs"], b["robs"])
    np.testing.assert_array_equal(a["stim"], b["stim"])
    c = simulate_session(SimulationParams(**{**SMALL.__dict__, "seed": 1}), 0)
    assert not np.array_equal(a["stim"], c["stim"])


def test_sessions_have_their_own_neurons_and_ground_truth(tmp_path):
    root = ensure_simulated(tmp_path, SMALL)
    assert ensure_simulated(tmp_path, SMALL) == root  # reused, not regenerated
    sessions = open_sessions(root)
    assert [s.id for s in sessions] == ["sim00", "sim01"]
    for s in sessions:
        assert s.rates is not None and s.rates.shape == s.robs.shape
        assert s.stim.dtype == np.uint8 and s.stim.shape[1:] == (12, 16)
        assert s.behavior_names == ["eye_x", "eye_y", "running", "pupil"]
        neurons = s.meta["neurons"]
        assert len(neurons) == s.n_neurons and {"x", "y", "rf_size", "type"} <= set(neurons[0])
        assert set(sum(s.meta["splits"].values(), [])) == set(range(5))
    sizes = [n["rf_size"] for s in sessions for n in s.meta["neurons"]]
    assert min(sizes) < 2.0  # small receptive fields exist


def test_spikes_are_poisson_around_the_true_rates():
    d = simulate_session(SimulationParams(num_sessions=1, trials_train=6, trial_frames=100, height=12, width=16), 0)
    rates, robs = d["rates"], d["robs"]
    assert abs(robs.mean() / rates.mean() - 1) < 0.05
    assert np.corrcoef(rates.ravel(), robs.ravel())[0, 1] > 0.2


def test_true_rates_respond_to_the_stimulus_at_each_neurons_receptive_field():
    """The pixel whose past best predicts a simple cell's rate lies at its recorded RF centre."""
    p = SimulationParams(num_sessions=1, neurons_min=8, neurons_max=8, trials_train=20, trials_val=0, trials_test=0,
                         trial_frames=100, height=16, width=24, complex_fraction=0.0, max_eye_shift=0)
    d = simulate_session(p, 0)
    stim = d["stim"].astype(np.float64)
    stim = (stim - stim.mean()) / stim.std()
    rates = d["rates"] - d["rates"].mean(0)
    hits = 0
    for i, nd in enumerate(d["extra_meta"]["neurons"]):
        k = np.array(nd["temporal_kernel"])
        lag = int(np.argmax(np.abs(k)))
        sta = np.tensordot(rates[lag:, i], stim[: len(stim) - lag], axes=(0, 0))  # (H, W) covariance map
        y, x = np.unravel_index(np.argmax(np.abs(sta)), sta.shape)
        hits += np.hypot(x - nd["x"], y - nd["y"]) <= max(2.0, 2 * nd["sigma"])
    assert hits >= 7, f"only {hits} of 8 neurons respond at their recorded receptive field"
