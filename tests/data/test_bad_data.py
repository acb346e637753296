"""Bad data, tried systematically: damaged session directories and damaged Sensorium 2023 folders
are each rejected before training with a message naming the file and the problem, and nothing is
written to the destination (the run directory; the import's DST)."""

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import MICRO_MODEL, compose_config
from test_sensorium import ALLOC, TIERS, fabricate_sensorium

from neuroenc.data.sensorium import SensoriumFormatError, convert
from neuroenc.data.sessions import SessionFormatError, write_session

T, N = 120, 5


def session(path, session_id, **over):
    rng = np.random.default_rng(0)
    arrays = dict(session_id=session_id, stim=rng.integers(0, 255, (T, 12, 16), dtype=np.uint8),
                  robs=rng.poisson(0.3, (T, N)).astype(np.float32), behavior=rng.normal(size=(T, 2)).astype(np.float32),
                  behavior_names=["run", "pupil"], trial=np.repeat(np.arange(4), T // 4),
                  splits={"train": [0, 1], "val": [2], "test": [3]}, frame_rate=30.0)
    return write_session(path, **{**arrays, **over})


def edit_meta(path, **changes):
    meta = json.loads((path / "meta.json").read_text())
    meta.update(changes)
    (path / "meta.json").write_text(json.dumps(meta))


def drop_meta_key(path, key):
    meta = json.loads((path / "meta.json").read_text())
    del meta[key]
    (path / "meta.json").write_text(json.dumps(meta))


def truncate(f):
    data = f.read_bytes()
    f.write_bytes(data[: len(data) // 2])


def all_nan_neuron(path):
    robs = np.load(path / "robs.npy")
    robs[:, 2] = np.nan
    np.save(path / "robs.npy", robs)


def symlink_loop(f):
    f.unlink()
    os.symlink(f.name, f)  # points at itself


# (case, damage to session directory "b", what the message must say after "session 'b': ")
SESSION_CASES = [
    ("truncated npy", lambda p: truncate(p / "robs.npy"), "robs.npy: truncated"),
    ("wrong dtype", lambda p: np.save(p / "trial.npy", np.repeat(np.arange(4.0), T // 4)),
     "trial.npy: dtype float64 is not an integer"),
    ("wrong stimulus dtype", lambda p: np.save(p / "stim.npy", np.zeros((T, 12, 16), np.int16)),
     "stim.npy: dtype int16 not one of uint8, float16, float32"),
    ("wrong shape", lambda p: np.save(p / "behavior.npy", np.zeros(T, np.float32)),
     "behavior.npy: expected 2 dimensions, got shape (120,)"),
    ("arrays of different lengths", lambda p: np.save(p / "robs.npy", np.zeros((100, N), np.float32)),
     "robs.npy: length 100 does not match stim.npy length 120"),
    ("missing meta.json key", lambda p: drop_meta_key(p, "frame_rate"), "meta.json: missing key 'frame_rate'"),
    ("non-UTF-8 meta.json", lambda p: (p / "meta.json").write_bytes(b'{"session_id": "b\xff"}'),
     "meta.json: not UTF-8 text"),
    ("non-JSON meta.json", lambda p: (p / "meta.json").write_text("session_id: b\n"), "meta.json: not valid JSON"),
    ("meta.json not an object", lambda p: (p / "meta.json").write_text("[1, 2]"),
     "meta.json: expected a JSON object"),
    ("duplicate session ids", lambda p: edit_meta(p, session_id="a"),
     "meta.json: session id 'a' is also the id of session directory 'a'"),
    ("trial ids in two splits", lambda p: edit_meta(p, splits={"train": [0, 1], "val": [1, 2]}),
     "meta.json: trial 1 is in both splits 'train' and 'val'"),
    ("an empty split", lambda p: edit_meta(p, splits={"train": [0, 1], "val": [], "test": [3]}),
     "meta.json: split 'val' names no trial of trial.npy"),
    ("all-NaN neuron", all_nan_neuron, "robs.npy: neuron 2 (id 2) has no valid bin in the training split"),
    ("symlink loop", lambda p: symlink_loop(p / "robs.npy"), "robs.npy: a symbolic link loop"),
]


@pytest.mark.parametrize("case,damage,message", SESSION_CASES, ids=[c[0] for c in SESSION_CASES])
def test_a_damaged_session_is_rejected_before_training_naming_file_and_problem(tmp_path, case, damage, message):
    from neuroenc.training.run import train

    root = tmp_path / "sessions"
    session(root / "a", "a")
    damage(session(root / "b", "b"))
    cfg = compose_config(["data=sessions", f"data.root={root}", "data.window=20", "data.burn_in=6", "data.batch_size=4",
                          *MICRO_MODEL, "trainer.max_epochs=1", "trainer.enable_progress_bar=false"])
    run_dir = tmp_path / "run"
    with pytest.raises(SessionFormatError) as e:
        train(cfg, run_dir)
    print(f"{case}: {e.value}")
    assert f"session 'b': {message}" in str(e.value), str(e.value)
    assert str(root / "b") in str(e.value)  # where to look
    assert not run_dir.exists() or not any(run_dir.iterdir())  # nothing written: no run started


def sensorium_mouse(src):
    return sorted(p for p in src.iterdir() if p.is_dir())[1]


def nan_neuron_everywhere(f):
    for trial in (f / "data/responses").glob("*.npy"):
        r = np.load(trial)
        r[3] = np.nan
        np.save(trial, r)


def same_mouse_twice(f):
    os.symlink(f, f.parent / "zz-copy-of-the-same-mouse")


PICKLE_RAN = Path(tempfile.gettempdir()) / f"neuroenc-test-bad-data-pickle-ran-{os.getpid()}"


class RunsAShellCommand:
    def __reduce__(self):
        return os.system, (f"touch {PICKLE_RAN}",)


def duplicate_trial_file(f):
    for sub in ("videos", "responses", "behavior", "pupil_center"):
        os.link(f / "data" / sub / "5.npy", f / "data" / sub / "05.npy")


# (case, damage to the second mouse folder, what the message must say after "mouse '<folder>': ")
IMPORT_CASES = [
    ("truncated npy", lambda f: truncate(f / "data/responses/4.npy"), "data/responses/4.npy: truncated"),
    ("wrong dtype", lambda f: np.save(f / "data/videos/2.npy", np.zeros((36, 64, ALLOC), np.complex64)),
     "data/videos/2.npy: dtype complex64 is not real numbers"),
    ("wrong shape", lambda f: np.save(f / "data/responses/4.npy", np.zeros((3, ALLOC), np.float32)),
     "data/responses/4.npy: expected (6, T), got shape (3, 40)"),
    ("arrays of different lengths", lambda f: np.save(f / "data/behavior/2.npy", np.zeros((2, 20), np.float32)),
     "data/behavior/2.npy: 20 frames, fewer than the video's"),
    ("missing metadata", lambda f: (f / "meta/neurons/unit_ids.npy").unlink(), "meta/neurons/unit_ids.npy: missing"),
    ("unreadable metadata", lambda f: (f / "meta/trials/tiers.npy").write_bytes(b"\xff\xfe not numpy"),
     "meta/trials/tiers.npy: cannot be read as .npy"),
    ("pickled code in metadata", lambda f: np.save(f / "meta/trials/tiers.npy", np.array([RunsAShellCommand()]),
                                                   allow_pickle=True),
     "meta/trials/tiers.npy: cannot be read as .npy (it holds a pickled posix.system, not an array of strings"),
    ("duplicate session ids", same_mouse_twice, "the source lists this folder twice"),
    ("trial ids in two files", duplicate_trial_file, "data/videos/05.npy: trial 5 has two files"),
    ("an empty split", lambda f: np.save(f / "meta/trials/tiers.npy", np.array([t if t != "oracle" else "none"
                                                                               for t in TIERS])),
     "meta/trials/tiers.npy: no trial has tier 'oracle' (the val split)"),
    ("all-NaN neuron", nan_neuron_everywhere,
     "data/responses: neuron 3 (unit id 103) is NaN in every training trial"),
    ("symlink loop", lambda f: symlink_loop(f / "data/videos/2.npy"), "data/videos/2.npy: a symbolic link loop"),
]


@pytest.mark.parametrize("case,damage,message", IMPORT_CASES, ids=[c[0] for c in IMPORT_CASES])
def test_a_damaged_sensorium_folder_is_rejected_naming_file_and_problem_and_nothing_is_written(tmp_path, case, damage,
                                                                                               message):
    src = fabricate_sensorium(tmp_path / "sensorium")
    mouse = sensorium_mouse(src)
    damage(mouse)
    with pytest.raises(SensoriumFormatError) as e:
        convert(src, tmp_path / "sessions", show_progress=False)
    print(f"{case}: {e.value}")
    assert f"mouse {mouse.name!r}: {message}" in str(e.value), str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sensorium"]  # no destination, no temporary directory
    assert not PICKLE_RAN.exists()
