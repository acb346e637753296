"""Receptive-field centres estimated from training data, where readouts start, are near the truth
for simple and complex cells alike."""

import numpy as np

from neuroenc.data.receptive_fields import estimate_centers, temporal_kernel
from neuroenc.data.sessions import open_sessions
from neuroenc.data.synthetic import SimulationParams, ensure_simulated


def test_estimated_centres_of_simple_and_complex_cells_lie_near_the_true_ones(tmp_path):
    p = SimulationParams(num_sessions=1, neurons_min=40, neurons_max=40, trials_train=12, trials_val=1,
                         trials_test=1, trial_frames=300)
    (session,) = open_sessions(ensure_simulated(tmp_path, p))
    frames = session.split_frames("train")
    centers = estimate_centers(session.stim[frames], session.robs[frames], session.trial[frames], session.frame_rate)
    neurons = session.meta["neurons"]
    truth = np.array([[n["x"], n["y"]] for n in neurons])
    error = np.hypot(*(centers - truth).T)
    kinds = np.array([n["type"] for n in neurons])
    assert {"simple", "complex"} <= set(kinds)
    for kind in ("simple", "complex"):
        assert np.median(error[kinds == kind]) < 1.5, f"{kind} cells: median error {np.median(error[kinds == kind]):.2f} px"
    assert np.mean(error < 3) > 0.75


def test_responses_that_follow_no_stimulus_still_give_one_centre_per_neuron_inside_the_frame():
    rng = np.random.default_rng(0)
    stim = rng.integers(0, 255, (2000, 12, 16)).astype(np.uint8)
    robs = rng.poisson(0.3, (2000, 5)).astype(np.float32)
    centers = estimate_centers(stim, robs, np.repeat(np.arange(20), 100), 30.0)
    assert centers.shape == (5, 2)
    assert np.all((centers >= 0) & (centers <= [15, 11]))


def test_the_generic_kernel_is_given_in_milliseconds():
    # 300 ms of lags at any rate; the positive lobe peaks near 75 ms
    for rate in (30.0, 120.0):
        k = temporal_kernel(rate)
        assert len(k) == int(0.3 * rate) + 1
        assert abs(np.argmax(k) * 1000 / rate - 75) <= 1000 / rate
