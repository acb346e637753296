"""The session format: memory-mapped opening, atomic writing, and a clear error per bad input."""

import json
import shutil

import numpy as np
import pytest

from neuroenc.data.sessions import SessionFormatError, open_session, write_session


def make_session(path, t=120, n=5, **over):
    rng = np.random.default_rng(0)
    arrays = dict(
        session_id="mouse1", stim=rng.integers(0, 255, (t, 6, 8), dtype=np.uint8),
        robs=rng.poisson(0.3, (t, n)).astype(np.float32), behavior=rng.normal(size=(t, 2)).astype(np.float32),
        behavior_names=["run", "pupil"], trial=np.repeat(np.arange(4), t // 4),
        splits={"train": [0, 1], "val": [2], "test": [3]}, frame_rate=30.0)
    arrays.update(over)
    return write_session(path, **arrays)


def test_opened_arrays_are_memory_mapped(tmp_path):
    s = open_session(make_session(tmp_path / "s"))
    assert isinstance(s.stim, np.memmap) and isinstance(s.robs, np.memmap)
    assert (s.n_frames, s.n_neurons, s.frame_shape) == (120, 5, (6, 8))
    assert s.segments("val") == [(60, 90)]


def test_write_refuses_to_overwrite_and_leaves_no_partial_session(tmp_path):
    make_session(tmp_path / "s")
    with pytest.raises(FileExistsError):
        make_session(tmp_path / "s")
    with pytest.raises(Exception):  # noqa: B017 (any failure; the point is what it leaves)
        make_session(tmp_path / "bad", robs=object())  # fails mid-write
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_nan_responses_are_masked_with_a_warning(tmp_path):
    robs = np.ones((120, 5), np.float32)
    robs[3, 1] = np.nan
    with pytest.warns(UserWarning, match="1 NaN"):
        s = open_session(make_session(tmp_path / "s", robs=robs))
    assert not s.valid(0, 10)[3, 1] and s.valid(0, 10)[3, 0]


def corrupt(path, name, value):
    np.save(path / f"{name}.npy", value)


@pytest.mark.parametrize("case,edit,message", [
    ("missing array", lambda p: (p / "behavior.npy").unlink(), "behavior.npy: missing array"),
    ("length mismatch", lambda p: corrupt(p, "robs", np.zeros((100, 5), np.float32)),
     "robs.npy: length 100 does not match stim.npy length 120"),
    ("nan stimulus", lambda p: corrupt(p, "stim", np.full((120, 6, 8), np.nan, np.float16)), "stim.npy: contains NaN"),
    ("inf behaviour", lambda p: corrupt(p, "behavior", np.full((120, 2), np.inf, np.float32)),
     "behavior.npy: contains NaN or inf"),
    ("negative counts", lambda p: corrupt(p, "robs", -np.ones((120, 5), np.float32)), "robs.npy: 600 negative"),
    ("dfs shape", lambda p: corrupt(p, "dfs", np.ones((120, 4), np.uint8)),
     "dfs.npy: shape (120, 4) does not equal robs.npy shape (120, 5)"),
    ("no training trials", lambda p: (p / "meta.json").write_text(json.dumps(
        {**json.loads((p / "meta.json").read_text()), "splits": {"train": [], "val": [2]}})), "no training trials"),
])
def test_bad_session_fails_naming_session_file_and_problem(tmp_path, case, edit, message):
    p = make_session(tmp_path / "mouse1")
    edit(p)
    with pytest.raises(SessionFormatError) as e:
        open_session(p)
    assert "session 'mouse1'" in str(e.value) and message in str(e.value), str(e.value)


def test_stats_come_from_the_training_split_and_are_stored(tmp_path):
    stim = np.zeros((120, 6, 8), np.uint8)
    stim[:60] = 10  # trials 0, 1: train
    stim[60:] = 200
    s = open_session(make_session(tmp_path / "s", stim=stim))
    assert s.stats()["stim_mean"] == pytest.approx(10.0)
    assert (tmp_path / "s" / "stats.json").exists()
    shutil.rmtree(tmp_path / "s")
