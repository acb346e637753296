"""Saccade detection on the simulator's microsaccades, and saccade-triggered averages of a known model."""

import numpy as np
import pytest
from conftest import compose_config
from omegaconf import OmegaConf
from units import FRAME_RATE, H, W, gabor_units

from neuroenc.analysis.insilico.probe import Probe, Skipped
from neuroenc.analysis.insilico.saccades import detect, run
from neuroenc.config.records import SimulationParams
from neuroenc.data.sessions import open_session, write_session
from neuroenc.data.synthetic import eye_positions, microsaccade_offsets, smooth_walk


def test_detect_finds_the_primate_presets_microsaccades():
    """Every onset lies on a true jump (within a frame), and the jumps of 2 px or more are found.
    Smaller ones, rounded to whole pixels, often make the 1-px step the drift makes too."""
    p = SimulationParams(**OmegaConf.to_container(compose_config(["data=synthetic_primate"]).data.simulation,
                                                  resolve=True))
    n = round(300 * p.frame_rate)  # 5 minutes
    eye = eye_positions(np.random.default_rng([7]), np.random.default_rng([7, 2]), n, p)
    # the same draws as eye_positions makes, to read the true jumps off the microsaccades alone
    rng = np.random.default_rng([7])
    drift = np.stack([smooth_walk(rng, n, p.eye_tau_s * p.frame_rate, p.eye_drift_px) for _ in range(2)], 1)
    jumps = np.diff(microsaccade_offsets(np.random.default_rng([7, 2]), drift, p.microsaccade_rate_hz / p.frame_rate,
                                         p.microsaccade_px), axis=0)
    at = np.flatnonzero(np.hypot(*jumps.T) > 0) + 1  # the first frame at the new position
    large = at[np.hypot(*jumps[at - 1].T) >= 2]
    assert len(large) > 150

    onsets = detect(eye, p.frame_rate)
    precision = np.mean(np.abs(onsets[:, None] - at[None]).min(1) <= 1)
    recall = np.mean(np.abs(large[:, None] - onsets[None]).min(1) <= 1)
    assert precision >= 0.9 and recall >= 0.9, (precision, recall)


def test_detect_calls_the_mouse_defaults_one_pixel_drift_no_saccade():
    p = SimulationParams()
    eye = eye_positions(np.random.default_rng(0), None, round(600 * p.frame_rate), p)
    assert (np.hypot(*np.diff(eye, axis=0).T) > 0).sum() > 1000  # the eye moves ...
    assert len(detect(eye, p.frame_rate)) == 0  # ... but never jumps


def test_detect_takes_a_run_of_fast_frames_as_one_saccade_from_its_first_frame():
    eye = np.zeros((40, 2))
    eye[10:, 0] = 3.0  # 90 px/s at 30 Hz
    eye[11:, 0] = 10.0  # 210 px/s: the same saccade, one frame later
    eye[30:, 1] = 10.0  # another
    eye[32:, 1] = 20.0  # within 0.1 s of it, after a still frame
    assert detect(eye, 30.0).tolist() == [11, 30, 32]
    assert detect(eye, 30.0, threshold_px_s=60).tolist() == [10, 30, 32]
    assert detect(eye, 30.0, min_interval_s=0.1).tolist() == [11, 30]
    eye[20] = np.nan  # no position: no speed
    assert detect(eye, 30.0).tolist() == [11, 30, 32]


TRIAL, JUMPS = 120, (30, 60, 90)


def saccade_session(tmp_path, jump_px: float = 10.0):
    """A session for :func:`gabor_units`: 4 trials of noise, the eye jumping ``jump_px`` at
    :data:`JUMPS` of each; its responses are the model's own rates, with garbage in invalid bins."""
    rng = np.random.default_rng(0)
    T = 4 * TRIAL
    stim = rng.integers(0, 256, (T, H, W), dtype=np.uint8)
    trial = np.repeat(np.arange(4), TRIAL)
    eye = np.zeros((T, 2), np.float32)
    within = np.arange(T) % TRIAL
    for k, t in enumerate(JUMPS):
        eye[within >= t, 0] = jump_px * ((k + 1) % 2)  # there and back
    splits = {"train": [0], "val": [1, 2], "test": [3]}
    write = dict(session_id="s", stim=stim, trial=trial, splits=splits, frame_rate=FRAME_RATE, behavior=eye,
                 behavior_names=["eye_x", "eye_y"])
    path = write_session(tmp_path / "s", robs=np.zeros((T, 2), np.float32), **write)
    model = gabor_units()
    rates = model.predict(stim.reshape(4, TRIAL, H, W), eye.reshape(4, TRIAL, 2), "s",
                          normalization=open_session(path).stats()).reshape(T, 2)
    dfs = (np.isfinite(rates) & (rng.random((T, 2)) > 0.1)).astype(np.uint8)
    robs = np.where(dfs > 0, rates, 1000.0).astype(np.float32)
    write_session(path, robs=robs, dfs=dfs, rates=np.nan_to_num(rates), overwrite=True, **write)
    return model, open_session(path)


def probe_of(model, session) -> Probe:
    return Probe(model=model, session_id="s", neurons=np.arange(2), frame_rate=FRAME_RATE, frame_shape=(H, W),
                 window=16, session=session)


def test_responses_equal_to_the_models_rates_give_identical_averages(tmp_path):
    result = run(probe_of(*saccade_session(tmp_path)))
    assert result.summary["saccades"] == 3 * len(JUMPS)  # the val and test trials'
    np.testing.assert_allclose(result.columns["sta_corr"], 1.0, atol=1e-9)
    np.testing.assert_allclose(result.columns["sta_corr_truth"], 1.0, atol=1e-9)
    np.testing.assert_allclose(result.columns["sta_range_observed_hz"], result.columns["sta_range_predicted_hz"],
                               rtol=1e-6)
    psth = result.summary["population_psth"]
    np.testing.assert_allclose(psth["observed_hz"], psth["predicted_hz"], rtol=1e-4)
    np.testing.assert_allclose(psth["observed_hz"], psth["truth_hz"], rtol=1e-4)
    assert psth["lag_s"][0] == pytest.approx(-8 / FRAME_RATE, abs=1e-4) and 0.0 in psth["lag_s"]
    result.plot(tmp_path / "saccades.png")
    assert (tmp_path / "saccades.png").stat().st_size > 0


def test_too_few_saccades_or_no_eye_columns_skip(tmp_path):
    model, session = saccade_session(tmp_path, jump_px=1.0)  # 30 px/s: drift, not saccades
    with pytest.raises(Skipped, match="^0 saccades"):
        run(probe_of(model, session))
    with pytest.raises(Skipped, match="no eye_x/eye_y columns"):
        run(probe_of(model, None))
