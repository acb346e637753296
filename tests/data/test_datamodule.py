"""The loader: windows stay inside one trial of one split, shards cover validation exactly once,
training is reshuffled every epoch, bad responses never reach the loss, sessions stay on disk."""

import json

import numpy as np
import pytest
from lightning.fabric.utilities.data import _set_sampler_epoch

from neuroenc.data import sessions as sessions_mod
from neuroenc.data.datamodule import SessionDataModule
from neuroenc.data.sessions import SessionFormatError, SessionWriter, open_session, write_session

# trials of uneven length, splits interleaved so that neighbouring trials belong to other splits
LENGTHS = [50, 31, 64, 12, 45, 80, 30, 33, 47]
SPLITS = {"train": [0, 2, 5, 8], "val": [1, 4, 6], "test": [3, 7]}


def make_session(path, session_id="m1", n=4, lengths=LENGTHS, splits=SPLITS, seed=0, **over):
    rng = np.random.default_rng(seed)
    t = sum(lengths)
    arrays = dict(session_id=session_id, stim=rng.integers(0, 255, (t, 6, 8), dtype=np.uint8),
                  robs=rng.poisson(0.5, (t, n)).astype(np.float32), behavior=rng.normal(size=(t, 2)).astype(np.float32),
                  behavior_names=["run", "pupil"], trial=np.repeat(np.arange(len(lengths)), lengths),
                  splits=splits, frame_rate=30.0)
    arrays.update(over)
    return write_session(path, **arrays)


def datamodule(root, world=(0, 1), **kw):
    class Shard(SessionDataModule):
        def shard(self):  # what a DDP Trainer would report for this process
            return world

    kw = {"window": 20, "burn_in": 6, "batch_size": 3, "num_workers": 0, "seed": 0, "frame_rate": None, "eye_px_per_unit": None,
          "allow_no_validation": False,
          **kw}
    return Shard(str(root), **kw)


@pytest.fixture
def root(tmp_path):
    make_session(tmp_path / "sessions" / "m1")
    make_session(tmp_path / "sessions" / "m2", session_id="m2", n=3, seed=1, lengths=[40, 40, 90, 25],
                 splits={"train": [0, 2], "val": [1, 3]})
    return tmp_path / "sessions"


def test_no_window_crosses_a_trial_or_a_split(root):
    dm = datamodule(root)
    dm.setup()
    for split in ("train", "val", "test"):
        for si, start, score_from in dm.windows[split]:
            s = dm.sessions[si]
            trials = np.unique(s.trial[start:start + dm.window])
            assert len(trials) == 1 and int(trials[0]) in s.meta["splits"][split]
            assert dm.burn_in <= score_from < dm.window


def scored_frames(dm, batches, split="val"):
    w = dm.windows[split]
    return [(int(w[i, 0]), f) for b in batches for i in b for f in range(w[i, 1] + w[i, 2], w[i, 1] + dm.window)]


def test_two_ddp_ranks_score_every_val_frame_once_between_them(root):
    ranks = [datamodule(root, world=(r, 2)) for r in range(2)]
    loaders = [dm.val_dataloader() for dm in ranks]
    frames = [scored_frames(dm, list(dl.batch_sampler)) for dm, dl in zip(ranks, loaders)]
    assert frames[0] and frames[1] and not set(frames[0]) & set(frames[1])
    dm = ranks[0]
    expected = [(si, f) for si, s in enumerate(dm.sessions) for a, b in s.segments("val") if b - a >= dm.window
                for f in range(a + dm.burn_in, b)]
    assert sorted(frames[0] + frames[1]) == sorted(expected)  # no gap, no frame twice
    for dm, dl in zip(ranks, loaders):  # the loader delivers what its sampler says, one session per batch
        batches = list(dl)
        assert len(batches) == len(dl.batch_sampler)
        assert all(len(set(b["session"].tolist())) == 1 for b in batches)
        assert sum(int(b["mask"].any(-1).sum()) for b in batches) == len(scored_frames(dm, dl.batch_sampler))


def test_training_order_changes_every_epoch_when_lightning_sets_it(root):
    dl = datamodule(root, batch_size=2).train_dataloader()
    _set_sampler_epoch(dl, 0)  # what Lightning's fit loop calls at the start of each epoch
    e0 = list(dl.batch_sampler)
    _set_sampler_epoch(dl, 1)
    e1 = list(dl.batch_sampler)
    assert e0 != e1 and sorted(sum(e0, [])) == sorted(sum(e1, []))


def test_ddp_training_shards_are_disjoint_and_equally_long(root):
    loaders = [datamodule(root, world=(r, 2), batch_size=2).train_dataloader() for r in range(2)]
    shards = [sum(list(dl.batch_sampler), []) for dl in loaders]
    assert not set(shards[0]) & set(shards[1])
    assert len(loaders[0].batch_sampler) == len(loaders[1].batch_sampler)


def test_nan_responses_are_masked_and_zeroed_never_passed_to_the_loss(tmp_path):
    robs = np.ones((sum(LENGTHS), 4), np.float32)
    robs[10:14, 2] = np.nan
    with pytest.warns(UserWarning, match="4 NaN bins"):
        make_session(tmp_path / "s" / "m1", robs=robs)
        dm = datamodule(tmp_path / "s")
        batches = list(dm.train_dataloader())
    for b in batches:
        assert np.isfinite(b["robs"].numpy()).all()
        assert not b["mask"][b["robs"] != 1].any()  # every NaN bin (now 0) is masked out
    assert any((b["robs"][..., 2] == 0).any() for b in batches)  # the NaN frames were delivered, masked


def test_stimulus_and_behaviour_are_standardised_with_training_statistics(root):
    dm = datamodule(root)
    batches = list(dm.train_dataloader())
    stim = np.concatenate([b["stim"].numpy().ravel() for b in batches])
    beh = np.concatenate([b["behavior"].numpy().reshape(-1, 2) for b in batches])
    assert abs(stim.mean()) < 0.05 and abs(stim.std() - 1) < 0.05
    assert np.abs(beh.mean(0)).max() < 0.1 and np.abs(beh.std(0) - 1).max() < 0.1


def test_statistics_are_computed_once_and_again_only_when_a_file_changes(root, monkeypatch):
    calls = []
    scan = sessions_mod._scan
    monkeypatch.setattr(sessions_mod, "_scan", lambda s: calls.append(s.id) or scan(s))
    first = open_session(root / "m1").stats()
    assert calls == ["m1"] and json.loads((root / "m1" / "stats.json").read_text())["stats"] == first
    assert open_session(root / "m1").stats() == first and calls == ["m1"]  # stored beside the data, reused
    meta = json.loads((root / "m1" / "meta.json").read_text())
    meta["splits"] = {"train": [0, 2], "val": [1, 4, 6, 5, 8], "test": [3, 7]}
    (root / "m1" / "meta.json").write_text(json.dumps(meta, indent=2))  # other training trials
    assert open_session(root / "m1").stats() != first and calls == ["m1", "m1"]


def test_a_session_without_training_windows_is_named(root):
    make_session(root / "m3", session_id="m3", lengths=[15, 60], splits={"train": [0], "val": [1]})
    with pytest.raises(SessionFormatError, match=r"session 'm3': meta.json: no training windows: .* 15 frames, "
                                                 r"fewer than data.window=20"):
        datamodule(root).setup()


def test_sessions_with_other_behaviour_columns_are_refused(root):
    make_session(root / "m3", session_id="m3", behavior_names=["pupil", "run"])
    with pytest.raises(SessionFormatError, match=r"sessions differ in behaviour columns .*\('run', 'pupil'\) "
                                                 r"\(session 'm1'\); \('pupil', 'run'\) \(session 'm3'\)"):
        datamodule(root).setup()


@pytest.mark.parametrize("case,edit,message", [
    ("trial in two splits", lambda m: {**m, "splits": {"train": [0, 2], "val": [2]}},
     "meta.json: trial 2 is in both splits 'train' and 'val'"),
    ("neuron ids", lambda m: {**m, "neuron_ids": [1, 2]}, "neuron_ids has 2 entries but robs.npy has 4 neurons"),
    ("coordinates", lambda m: {**m, "neuron_coordinates": [[0, 0, 0]]}, "neuron_coordinates has shape (1, 3)"),
    ("frame rate", lambda m: {k: v for k, v in m.items() if k != "frame_rate"}, "meta.json: missing key 'frame_rate'"),
])
def test_bad_meta_fails_naming_session_and_problem(tmp_path, case, edit, message):
    p = make_session(tmp_path / "m1")
    (p / "meta.json").write_text(json.dumps(edit(json.loads((p / "meta.json").read_text()))))
    with pytest.raises(SessionFormatError, match="session 'm1'") as e:
        open_session(p)
    assert message in str(e.value)


def test_fortran_ordered_arrays_are_refused(tmp_path):
    p = make_session(tmp_path / "m1")
    np.save(p / "robs.npy", np.asfortranarray(np.load(p / "robs.npy")))
    with pytest.raises(SessionFormatError, match="robs.npy: stored in Fortran order"):
        open_session(p)


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_a_million_frame_session_opens_without_loading_it(tmp_path):
    t, n = 1_000_000, 16
    with SessionWriter(tmp_path / "long", n_frames=t, n_neurons=n, frame_shape=(16, 16),
                       behavior_names=["run"]) as w:
        for a in range(0, t, 100_000):  # 256 MB of movie, written a block at a time
            w.append(stim=np.full((100_000, 16, 16), a // 10_000, np.uint8), robs=np.ones((100_000, n), np.float32),
                     behavior=np.zeros((100_000, 1), np.float32), trial=np.arange(a, a + 100_000) // 1000)
        w.finish(session_id="long", frame_rate=30.0, splits={"train": list(range(800)), "val": [900]})
    before = rss_mib()
    s = open_session(tmp_path / "long")  # first open: checks every frame and computes the statistics
    grown = rss_mib() - before
    assert isinstance(s.stim, np.memmap) and s.n_frames == t
    assert grown < 64, f"opening grew the resident set by {grown:.0f} MiB"
    assert s.stats()["stim_mean"] == pytest.approx(35.0)  # training frames: blocks 0..7 hold 0, 10, .., 70
