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
