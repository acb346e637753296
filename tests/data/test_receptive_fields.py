"""Receptive-field centres estimated from training data, where readouts start, are near the truth
for simple and complex cells alike."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from neuroenc.config.compose import compose_config
from neuroenc.data.receptive_fields import estimate_centers, retinal_stimulus, session_centers, temporal_kernel
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


def test_the_retinal_stimulus_is_each_frame_shifted_by_its_gaze_as_the_simulator_shifts_it():
    rng = np.random.default_rng(1)
    stim = rng.normal(size=(50, 9, 13)).astype(np.float32)
    gaze = rng.integers(-3, 4, (50, 2)).astype(np.float64) + rng.uniform(-0.4, 0.4, (50, 2))  # rounded to pixels
    m = 3  # the simulator's way (neuroenc/data/synthetic.py): pad, then read the window the eye points at
    padded = np.pad(stim, ((0, 0), (m, m), (m, m)), constant_values=stim.mean())
    shift = np.rint(gaze).astype(int)
    expected = np.stack([padded[t, m + dy : m + dy + 9, m + dx : m + dx + 13] for t, (dx, dy) in enumerate(shift)])
    np.testing.assert_array_equal(retinal_stimulus(stim, gaze), expected)
    np.testing.assert_array_equal(retinal_stimulus(stim, np.zeros((50, 2))), stim)


def test_gaze_corrected_maps_find_the_primate_cells_that_fixational_eye_movements_hide(tmp_path):
    cfg = compose_config(["data=synthetic_primate"])
    sim = OmegaConf.to_container(cfg.data.simulation, resolve=True)
    p = SimulationParams(**{**sim, "num_sessions": 1, "neurons_min": 60, "neurons_max": 60, "trials_val": 1,
                            "trials_test": 1})
    (session,) = open_sessions(ensure_simulated(tmp_path, p))
    truth = np.array([[n["x"], n["y"]] for n in session.meta["neurons"]])
    lost = {}
    for name, factor in (("screen", None), ("retina", 1.0)):  # the simulator's eye_x, eye_y are in pixels
        error = np.hypot(*(session_centers(session, factor) - truth).T)
        lost[name] = np.mean(error > 5)
    assert lost["retina"] <= 0.1 and lost["retina"] < lost["screen"], lost


def test_gaze_correction_without_eye_columns_names_the_key_and_the_session(tmp_path):
    p = SimulationParams(num_sessions=1, neurons_min=3, neurons_max=3, trials_train=2, trials_val=1, trials_test=1,
                         trial_frames=60)
    (session,) = open_sessions(ensure_simulated(tmp_path, p))
    session.meta["behavior_names"] = ["x", "y", "running", "pupil"]
    with pytest.raises(ValueError, match=r"eye_px_per_unit: session 'sim00' has no behaviour column 'eye_x'"):
        session_centers(session, 1.0)
