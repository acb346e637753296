"""The Sensorium importer keeps which trials repeat which video (the oracle tier), found by their
identical frames, so the repeat scores work on imported data."""

import shutil

import numpy as np
import pytest
from test_sensorium import fabricate_sensorium

from neuroenc.data.repeats import repeat_groups, session_repeat_scores
from neuroenc.data.sensorium import convert
from neuroenc.data.sessions import open_sessions


def test_oracle_trials_with_one_video_are_recorded_as_repeats(tmp_path):
    src = fabricate_sensorium(tmp_path / "sensorium", n_mice=1)
    mouse = next(src.iterdir())
    videos = mouse / "data" / "videos"
    shutil.copy(videos / "1.npy", videos / "10.npy")  # the two oracle trials show one video
    lengths = np.load(mouse / "lengths.npy")
    for sub in ("responses", "behavior", "pupil_center"):  # trial 10 then has trial 1's length
        a = np.load(mouse / "data" / sub / "10.npy")
        a[:, lengths[10]:lengths[1]] = 0.5
        a[:, lengths[1]:] = np.nan
        np.save(mouse / "data" / sub / "10.npy", a)
    with pytest.warns(UserWarning):
        summary = convert(src, tmp_path / "sessions", show_progress=False)
    assert summary[0]["repeated_videos"] == 1
    s = open_sessions(tmp_path / "sessions")[0]
    stimulus = s.meta["trial_stimulus"]
    assert set(stimulus) == {"1", "10"} and stimulus["1"] == stimulus["10"]
    [(video, runs)] = repeat_groups(s, "val")
    assert len(runs) == 2 and video == stimulus["1"]
    scores = session_repeat_scores(s, "val")["scores"]
    assert scores["oracle_corr"].shape == (s.n_neurons,)
