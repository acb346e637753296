"""The simulated V1: seeded, written in the session format, ground truth kept, physical time, the primate preset."""

import hashlib
from dataclasses import replace

import numpy as np
import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from neuroenc.config.validate import check
from neuroenc.data.sessions import open_sessions
from neuroenc.data.synthetic import (
    SimulationParams,
    biphasic_kernel,
    ensure_simulated,
    pink_noise_movie,
    simulate_session,
)
from neuroenc.training.build import build_datamodule

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


# Digests of simulate_session's arrays as the simulator wrote them at commit 9106fe9, before its
# times were physical (kernels, time constants, movie bandwidth and rates then in frames): the
# 30 Hz mouse default must keep generating exactly that data, bit for bit.
BEFORE_PHYSICAL_TIME = {
    ("small", 0): "f679b7805c27148d2ca4345fabb8e22e5952d43c860449629529603a112564b7",
    ("small", 1): "4bc1a375770aa7304b9d1725f0af4c2b132bcdd717a83bef77c0164b37c8ea8d",
    ("repeats", 0): "bf0d89b7f45ad412206b7ead901a52a0168458e516beefa3b5692d28420b9813",
}


def digest(d: dict) -> str:
    h = hashlib.sha256()
    for k in ("stim", "robs", "rates", "behavior", "dfs", "trial"):
        a = np.ascontiguousarray(d[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(repr(d["splits"]).encode())
    return h.hexdigest()


def test_the_30hz_mouse_default_generates_the_data_it_did_before_times_were_physical():
    repeats = SimulationParams(num_sessions=1, neurons_min=6, neurons_max=6, trials_train=4, trials_val=1,
                               trials_test=1, trial_frames=40, height=12, width=16, repeats=3)
    params = {"small": SMALL, "repeats": repeats}
    for (name, index), expected in BEFORE_PHYSICAL_TIME.items():
        assert digest(simulate_session(params[name], index)) == expected, (name, index)


def simulation(*overrides: str) -> SimulationParams:
    cfg = compose_config(list(overrides))
    return SimulationParams(**OmegaConf.to_container(cfg.data.simulation, resolve=True))


@pytest.mark.parametrize("data", ["synthetic", "synthetic_primate"])
def test_kernels_are_the_same_function_of_time_at_any_frame_rate(data):
    p120 = simulation(f"data={data}", "data.simulation.frame_rate=120")
    p30 = simulation(f"data={data}", "data.simulation.frame_rate=30")
    k120 = biphasic_kernel(np.random.default_rng(3), p120)
    k30 = biphasic_kernel(np.random.default_rng(3), p30)
    assert len(k120) == 4 * len(k30) == round(p120.kernel_ms * 120 / 1000)
    # the same draws: the 120 Hz kernel at every 4th frame is the 30 Hz kernel (up to its norm)
    np.testing.assert_allclose(k120[::4] / np.linalg.norm(k120[::4]), k30, atol=1e-12)
    peak_ms = np.argmax(k120) * 1000 / 120
    assert p120.kernel_ms / 8 - 1000 / 120 <= peak_ms <= p120.kernel_ms / 4 + 1000 / 120


def test_primate_kernels_peak_at_the_same_time_in_ms_as_at_30hz():
    p120, p30 = simulation("data=synthetic_primate"), simulation("data=synthetic_primate", "data.simulation.frame_rate=30")
    assert p120.frame_rate == 120
    peaks = [[np.argmax(biphasic_kernel(np.random.default_rng(s), p)) * 1000 / p.frame_rate for s in range(50)]
             for p in (p120, p30)]
    # sampled 4x more finely; the same kernel's peak agrees within a 30 Hz frame
    assert np.max(np.abs(np.subtract(*peaks))) <= 1000 / 30 / 2 + 1e-9


def test_movies_have_the_same_temporal_bandwidth_in_hz_at_any_frame_rate():
    def correlation_at(movie, lag):
        m = movie.astype(np.float64) - movie.mean()
        return (m[lag:] * m[:-lag]).mean() / m.var()

    rng = np.random.default_rng(0)
    slow = pink_noise_movie(rng, 1200, 8, 8, cutoff=6 / 30)
    fast = pink_noise_movie(rng, 4800, 8, 8, cutoff=6 / 120)
    for ms in (33.3, 100):  # one and three 30 Hz frames
        assert abs(correlation_at(slow, round(ms * 30 / 1000)) - correlation_at(fast, round(ms * 120 / 1000))) < 0.05


def primate_session(**changes) -> dict:
    """One short session of the primate preset: 4 trials of 576 frames (19 s)."""
    p = simulation("data=synthetic_primate")
    return simulate_session(replace(p, num_sessions=1, trials_train=2, trials_val=1, trials_test=1, **changes), 0)


def test_primate_receptive_fields_are_smaller_in_pixels_than_the_mouses():
    primate = [n["rf_size"] for n in primate_session()["extra_meta"]["neurons"]]
    mouse = [n["rf_size"] for n in simulate_session(replace(simulation(), num_sessions=1, trials_train=2, trials_val=1,
                                                                    trials_test=1), 0)["extra_meta"]["neurons"]]
    assert max(primate) <= 2.0 and min(primate) >= 0.5
    assert np.median(primate) < 0.7 * np.median(mouse)


def test_primate_eye_drifts_and_makes_microsaccades():
    p = simulation("data=synthetic_primate")

    def steps(**changes) -> np.ndarray:
        eye = primate_session(**changes)["behavior"][:, :2].astype(np.float64)
        assert np.abs(eye).max() <= p.max_eye_shift
        return np.hypot(*np.diff(eye, axis=0).T)

    step = steps()
    seconds = len(step) / p.frame_rate
    # microsaccades: jumps of 2 px or more within a frame (8 ms); the smaller ones round to 1 px
    jumps = (step >= 2).sum()
    assert 0.25 * p.microsaccade_rate_hz * seconds < jumps < 1.5 * p.microsaccade_rate_hz * seconds
    # drift: the eye also moves a pixel at a time, far more often
    assert ((step > 0) & (step < 2)).sum() > 5 * jumps
    # the jumps are the microsaccades': drift alone moves the eye but never jumps
    drift_only = steps(microsaccade_rate_hz=0.0)
    assert drift_only.max() < 2 and (drift_only > 0).sum() > 50
    # and the mouse's eye only drifts
    mouse = simulate_session(replace(simulation(), num_sessions=1, trials_train=2, trials_val=1, trials_test=1), 0)
    assert np.hypot(*np.diff(mouse["behavior"][:, :2], axis=0).T).max() < 2


def test_the_primate_preset_is_the_seeds_input_at_120hz():
    cfg = compose_config(["data=synthetic_primate"])
    assert cfg.data.simulation.frame_rate == 120 and (cfg.data.window, cfg.data.burn_in) == (300, 24)
    # every frame after a trial's burn-in is scored exactly once, by two windows per trial
    assert (cfg.data.simulation.trial_frames - cfg.data.burn_in) % (cfg.data.window - cfg.data.burn_in) == 0
    check(cfg)
    build_datamodule(cfg)  # the data's own arguments are checked as it is made


def test_the_large_rf_regime_draws_cells_that_span_several_4px_map_cells():
    fine, large = simulation("data=synthetic_primate"), simulation("data=synthetic_primate_large_rf")
    # the same primate recording but for the receptive fields' sizes and wavelengths
    assert {k: v for k, v in vars(large).items() if k not in ("rf_sigma_min_px", "rf_sigma_max_px",
                                                             "min_wavelength_px")} == \
        {k: v for k, v in vars(fine).items() if k not in ("rf_sigma_min_px", "rf_sigma_max_px", "min_wavelength_px")}
    small = SimulationParams(**{**vars(large), "num_sessions": 1, "neurons_min": 30, "neurons_max": 30,
                                "trials_train": 1, "trials_val": 1, "trials_test": 1, "trial_frames": 24})
    neurons = simulate_session(small, 0)["extra_meta"]["neurons"]
    sigma = np.array([n["sigma"] for n in neurons])
    assert np.all((sigma >= 3.0) & (sigma <= 6.0))  # 0.75-1.5 cells of a 4 px map
    assert min(n["wavelength"] for n in neurons) >= 8.0  # at or above a 4 px grid's Nyquist wavelength
