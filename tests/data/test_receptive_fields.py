"""Receptive-field centres estimated from training data, where readouts start, are near the truth
for simple and complex cells alike."""

import numpy as np
import pytest
from omegaconf import OmegaConf

from neuroenc.config.compose import compose_config
from neuroenc.data.receptive_fields import (
    LATENCY_SCALES,
    PEAK_MS,
    CausalFilter,
    estimate_centers,
    estimate_receptive_fields,
    retinal_stimulus,
    session_centers,
    session_receptive_fields,
    temporal_kernel,
)
from neuroenc.data.sessions import open_sessions
from neuroenc.data.synthetic import SimulationParams, ensure_simulated


def _primate_session(tmp_path, **changes):
    cfg = compose_config(["data=synthetic_primate"])
    sim = OmegaConf.to_container(cfg.data.simulation, resolve=True)
    p = SimulationParams(**{**sim, "num_sessions": 1, "neurons_min": 40, "neurons_max": 40, "trials_train": 12,
                            "trials_val": 1, "trials_test": 1, **changes})
    (session,) = open_sessions(ensure_simulated(tmp_path, p))
    return session


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


def test_the_candidate_kernels_are_given_in_milliseconds():
    # at any rate, the positive lobe of the kernel at each scale peaks at scale * 75 ms (to a frame)
    for rate in (30.0, 120.0):
        for scale in LATENCY_SCALES:
            k = temporal_kernel(rate, scale)
            assert len(k) == int(0.3 * scale * rate) + 1
            assert abs(np.argmax(k) * 1000 / rate - scale * PEAK_MS) <= 1000 / rate


def test_the_causal_filter_equals_a_convolution_restarted_at_each_trial():
    rng = np.random.default_rng(3)
    trial = np.repeat([4, 9, 2, 7], [23, 5, 40, 17])  # unequal trials, ids in no order
    x = rng.normal(size=(len(trial), 6)).astype(np.float32)
    kernel = rng.normal(size=9)
    expected = np.zeros_like(x)
    for t in range(len(x)):  # y(t) = sum over lags l of k(l) x(t - l), within t's trial
        for lag in range(min(len(kernel), t + 1)):
            if trial[t - lag] == trial[t]:
                expected[t] += kernel[lag] * x[t - lag]
    causal = CausalFilter(trial, max_taps=12)
    np.testing.assert_allclose(causal.apply(causal.spectrum(x), kernel), expected, atol=1e-4)


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
    session = _primate_session(tmp_path, neurons_min=60, neurons_max=60)
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


@pytest.mark.parametrize("kernel_ms", [150.0, 200.0, 300.0])
def test_readouts_start_on_their_cells_whatever_the_kernels_timing(tmp_path, kernel_ms):
    session = _primate_session(tmp_path, kernel_ms=kernel_ms)
    start = session_receptive_fields(session, 1.0)
    neurons = session.meta["neurons"]
    error = np.hypot(*(start.centers - np.array([[n["x"], n["y"]] for n in neurons])).T)
    assert np.median(error) < 1.5, f"{kernel_ms} ms kernels: median {np.median(error):.2f} px from the cells"
    # the latency chosen is near the true kernel's positive peak
    peak_ms = np.array([np.argmax(n["temporal_kernel"]) for n in neurons]) * 1000 / session.frame_rate
    assert np.median(np.abs(start.latency_ms - peak_ms)) <= 25.0


def test_invalid_bins_add_nothing_to_the_receptive_field_maps(tmp_path):
    session = _primate_session(tmp_path, trials_train=6, neurons_min=8, neurons_max=8)
    frames = session.split_frames("train")
    stim, trial = session.stim[frames], np.asarray(session.trial[frames])
    robs = np.asarray(session.robs[frames]).copy()
    rng = np.random.default_rng(0)
    invalid = rng.random(robs.shape) < 0.3
    # in the invalid bins, every neuron follows the stimulus at one corner: counted, it would pull the maps there
    corner = np.asarray(stim[:, 2:5, 2:5], np.float32).mean((1, 2))
    garbage = np.repeat(np.clip(corner - corner.mean(), 0, None)[:, None], robs.shape[1], 1)
    corrupted = np.where(invalid, 50 * garbage, robs)
    gaze = np.asarray(session.behavior[frames][:, :2])
    masked = estimate_receptive_fields(stim, corrupted, trial, session.frame_rate, gaze, valid=~invalid)
    as_nan = estimate_receptive_fields(stim, np.where(invalid, np.nan, robs), trial, session.frame_rate, gaze)
    np.testing.assert_allclose(masked.centers, as_nan.centers, atol=1e-6)
    counted = estimate_receptive_fields(stim, corrupted, trial, session.frame_rate, gaze)
    assert np.median(np.hypot(*(counted.centers - [3, 3]).T)) < np.median(np.hypot(*(masked.centers - [3, 3]).T))
