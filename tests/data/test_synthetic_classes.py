"""The simulator's stimulus classes: the default is today's data, each trial's label is its content,
and data.train_classes trains on the labelled classes only."""

import hashlib
import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from neuroenc.config.records import STIMULUS_CLASSES, SimulationParams
from neuroenc.data.synthetic import cache_key, simulate_session
from neuroenc.training.build import build_datamodule

TINY = SimulationParams(num_sessions=1, neurons_min=5, neurons_max=7, trials_train=3, trials_val=1, trials_test=1,
                        trial_frames=50, height=12, width=16)
# simulate_session(TINY, 0) and the cache keys, computed on main at 3687b26, before stimulus classes
BEFORE_CLASSES = "17e4bd01cc5637082b1aca0b045839128e10fa344a18003e5338ba43f206d224"
CACHE_KEYS_BEFORE = {"tiny": "34aaa91adb", "default": "5b40e76656"}
MIX = SimulationParams(num_sessions=1, neurons_min=5, neurons_max=7, trials_train=4, trials_val=4, trials_test=4,
                       trial_frames=60, height=24, width=32, stimuli=list(STIMULUS_CLASSES))


def full_digest(d: dict) -> str:
    """Every array, the splits and everything meta.json gets."""
    h = hashlib.sha256()
    for k in ("stim", "robs", "rates", "behavior", "dfs", "trial"):
        a = np.ascontiguousarray(d[k])
        h.update(k.encode() + str(a.dtype).encode() + str(a.shape).encode() + a.tobytes())
    h.update(json.dumps({k: d[k] for k in ("splits", "extra_meta", "provenance", "session_id")}, sort_keys=True).encode())
    return h.hexdigest()


def test_the_default_mix_is_the_data_and_cache_key_of_before_classes():
    explicit = replace(TINY, stimuli=["pink_noise"])
    assert full_digest(simulate_session(TINY, 0)) == full_digest(simulate_session(explicit, 0)) == BEFORE_CLASSES
    assert cache_key(TINY) == cache_key(explicit) == CACHE_KEYS_BEFORE["tiny"]
    assert cache_key(SimulationParams()) == CACHE_KEYS_BEFORE["default"]
    assert "stimuli" not in TINY.described() and cache_key(replace(TINY, stimuli=["gratings"])) != cache_key(TINY)


def classify(movie: np.ndarray) -> str:
    """A trial's class read off its frames ``(T, H, W)`` uint8."""
    m = movie.astype(np.float64) - 128
    if np.mean(np.all(m == 0, axis=(1, 2))) > 0.3:
        return "flashed_images"  # grey between the flashes
    taper = np.hanning(m.shape[1])[:, None] * np.hanning(m.shape[2])[None]
    power = (np.abs(np.fft.fft2(m * taper)) ** 2).reshape(len(m), -1)
    power[:, 0] = 0
    power = power[power.sum(1) > 0]  # frames that are not all grey
    # a grating's power lies at one frequency and its mirror (18 bins: each with its taper's spread)
    if np.median(np.sort(power, 1)[:, -18:].sum(1) / power.sum(1)) > 0.9:
        return "gratings"
    return "gabor_noise" if np.mean(np.abs(m) <= 2) > 0.3 else "pink_noise"  # sparse: mostly grey


def test_each_trials_label_is_the_class_of_its_content():
    d = simulate_session(MIX, 0)
    labels = d["extra_meta"]["trial_class"]
    for trials in d["splits"].values():  # an equal share of each split
        assert sorted(labels[str(t)] for t in trials) == sorted(STIMULUS_CLASSES)
    for t, label in labels.items():
        movie = d["stim"][d["trial"] == int(t)]
        assert classify(movie) == label, t
        assert abs(movie.mean() - 128) < 6 and 30 < movie.std() < 45  # pink noise's contrast


def test_a_mix_keeps_the_defaults_neurons_eye_and_pink_noise_trials():
    mixed, default = simulate_session(MIX, 0), simulate_session(replace(MIX, stimuli=["pink_noise"]), 0)
    assert mixed["extra_meta"]["neurons"] == default["extra_meta"]["neurons"]
    np.testing.assert_array_equal(mixed["behavior"], default["behavior"])
    pink = np.isin(mixed["trial"], [int(t) for t, c in mixed["extra_meta"]["trial_class"].items() if c == "pink_noise"])
    np.testing.assert_array_equal(mixed["stim"][pink], default["stim"][pink])
    assert not np.array_equal(mixed["stim"][~pink], default["stim"][~pink])


def test_stimuli_names_known_classes():
    with pytest.raises(ValueError, match=r"stimuli: unknown classes \['noise'\]"):
        SimulationParams(stimuli=["noise"])
    with pytest.raises(ValueError, match="stimuli: "):
        SimulationParams(stimuli=[])
    cfg = compose_config(["data.simulation.stimuli=[gratings,pink_noise,pink_noise]"])
    assert SimulationParams(**OmegaConf.to_container(cfg.data.simulation, resolve=True)).stimuli == \
        ["gratings", "pink_noise", "pink_noise"]


def test_train_classes_keeps_train_and_val_windows_to_those_classes(tmp_path):
    sim = ["data.simulation.num_sessions=1", "data.simulation.trials_train=8", "data.simulation.trials_val=4",
           "data.simulation.trials_test=4", "data.simulation.trial_frames=40", "data.simulation.height=12",
           "data.simulation.width=16", "data.window=20", "data.burn_in=4", f"data.cache_dir={tmp_path}",
           "data.simulation.stimuli=[gratings,pink_noise]"]
    everything = build_datamodule(compose_config(sim))
    only = build_datamodule(compose_config([*sim, "data.train_classes=[gratings]"]))
    for dm in (everything, only):
        dm.setup()
    s = only.sessions[0]
    labels = {int(t): c for t, c in s.meta["trial_class"].items()}
    trial_of = lambda w: {int(s.trial[start]) for _, start, _ in w}
    for split in ("train", "val"):
        assert {labels[t] for t in trial_of(only.windows[split])} == {"gratings"}
        assert trial_of(only.windows[split]) == {t for t in trial_of(everything.windows[split]) if labels[t] == "gratings"}
    np.testing.assert_array_equal(only.windows["test"], everything.windows["test"])
    with pytest.raises(ValueError, match=r"train_classes: \['flashed_images'\] not shown"):
        build_datamodule(compose_config([*sim, "data.train_classes=[flashed_images]"])).setup()
