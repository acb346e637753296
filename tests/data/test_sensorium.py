"""The Sensorium 2023 importer: a fabricated folder in the published layout converts, trains with
the default shifter on the pupil centre, and bad input or an existing destination stops the
import without leaving anything half-written."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_MODEL, compose_config, run_cli

from neuroenc.data.sensorium import SensoriumFormatError, convert
from neuroenc.data.sessions import open_sessions

# every tier, one trial of tier none; trial files hold ALLOC frames, NaN-padded after each trial's end
TIERS = ["train", "oracle", "train", "none", "live_test_main", "train", "live_test_bonus", "final_test_main",
         "train", "final_test_bonus", "oracle"]
ALLOC = 40
# TINY_MODEL with a strided convnet: Sensorium's 36x64 frames are larger than TINY_DATA's
SMALL_FRAMES_MODEL = [o if not o.startswith("convnet.stages") else
                      "convnet.stages=[{out_channels:8,kernel_size:[3,3,3],stride:4}]" for o in TINY_MODEL]


def fabricate_sensorium(root: Path, n_mice: int = 2, seed: int = 0) -> Path:
    """Mouse folders in the Sensorium 2023 layout; returns ``root``. Trial lengths vary, some are padded."""
    rng = np.random.default_rng(seed)
    for m in range(n_mice):
        folder = root / f"dynamic2{m}-1-{m}-Video-{m:032x}"
        n = 5 + m
        for sub in ("videos", "responses", "behavior", "pupil_center"):
            (folder / "data" / sub).mkdir(parents=True)
        (folder / "meta" / "trials").mkdir(parents=True)
        (folder / "meta" / "neurons").mkdir(parents=True)
        lengths = rng.integers(30, ALLOC + 1, len(TIERS))
        lengths[0] = ALLOC  # one trial without padding
        for t, length in enumerate(lengths):
            def padded(rows, values):
                a = np.full((*rows, ALLOC), np.nan, np.float32)
                a[..., :length] = values  # noqa: B023 (called in this iteration)
                return a

            np.save(folder / "data" / "videos" / f"{t}.npy", padded((36, 64), rng.integers(0, 256, (36, 64, length))))
            resp = padded((n,), rng.gamma(0.5, 1.0, (n, length)) - 0.1)  # deconvolved: a few small negatives
            if t == 0:
                resp[1, 5] = np.nan  # a NaN inside a trial: masked, not dropped
            np.save(folder / "data" / "responses" / f"{t}.npy", resp)
            np.save(folder / "data" / "behavior" / f"{t}.npy", padded((2,), rng.normal(size=(2, length))))
            np.save(folder / "data" / "pupil_center" / f"{t}.npy", padded((2,), rng.normal(size=(2, length))))
        np.save(folder / "meta" / "trials" / "tiers.npy", np.array(TIERS))
        np.save(folder / "meta" / "neurons" / "unit_ids.npy", np.arange(100, 100 + n))
        np.save(folder / "meta" / "neurons" / "cell_motor_coordinates.npy", rng.uniform(0, 500, (n, 3)))
        np.save(folder / "lengths.npy", lengths)  # for the tests; not part of the layout
    return root


@pytest.fixture
def src(tmp_path):
    return fabricate_sensorium(tmp_path / "sensorium")


def quiet_convert(src, dst, **kw):
    with pytest.warns(UserWarning, match="NaN response bins masked"):
        return convert(src, dst, show_progress=False, **kw)


def test_tiers_become_splits_padding_is_dropped_and_responses_are_clipped(src, tmp_path):
    quiet_convert(src, tmp_path / "sessions")
    sessions = open_sessions(tmp_path / "sessions")
    assert [s.id for s in sessions] == ["dynamic20-1-0", "dynamic21-1-1"]
    for s, folder in zip(sessions, sorted(src.iterdir())):
        lengths = np.load(folder / "lengths.npy")
        kept = [t for t, tier in enumerate(TIERS) if tier != "none"]
        assert s.meta["splits"] == {"train": [0, 2, 5, 8], "val": [1, 10], "test": [4, 6, 7, 9]}
        assert list(np.unique(s.trial)) == kept  # the tier-none trial is gone
        assert s.n_frames == sum(lengths[kept])  # NaN padding dropped, nothing else
        assert s.stim.dtype == np.uint8 and s.frame_shape == (36, 64)
        t2 = s.segments("train")[1]  # trial 2: frames are the source video, time first
        video = np.load(folder / "data" / "videos" / "2.npy")
        np.testing.assert_array_equal(s.stim[t2[0]:t2[1]], np.moveaxis(video[:, :, :lengths[2]], -1, 0))
        beh = np.concatenate([np.load(folder / "data" / sub / "2.npy") for sub in ("behavior", "pupil_center")])
        np.testing.assert_allclose(s.behavior[t2[0]:t2[1]], beh[:, :lengths[2]].T)
        # the pupil centre is the eye position, under the names the shifter reads
        assert s.behavior_names == ["pupil_dilation", "running_speed", "eye_x", "eye_y"]
        robs = np.asarray(s.robs)
        assert robs.dtype == np.float32 and np.isfinite(robs).all() and robs.min() == 0.0
        assert robs.max() > 1 and (robs != np.round(robs)).any()  # kept as floats, not counts
        assert s.dfs[5, 1] == 0 and np.asarray(s.dfs).sum() == s.dfs.size - 1  # the interior NaN is masked
        assert s.meta["neuron_ids"] == list(range(100, 100 + s.n_neurons))
        np.testing.assert_allclose(s.meta["neuron_coordinates"],
                                   np.load(folder / "meta" / "neurons" / "cell_motor_coordinates.npy"))
        prov = s.meta["provenance"]
        assert prov["source"] == "sensorium2023" and prov["trials_dropped_tier_none"] == [3]
        assert prov["trials_dropped_responses_absent"] == {}
        assert prov["behavior_columns"]["eye_x"] == "data/pupil_center/<trial>.npy row 0 (pupil_x)"
        assert prov["behavior_columns"]["eye_y"] == "data/pupil_center/<trial>.npy row 1 (pupil_y)"
        assert prov["padding_frames_dropped"] == sum(ALLOC - lengths[kept]) and prov["responses_clipped"] > 0
        assert s.frame_rate == 30.0 and (s.path / "stats.json").exists()


def test_converted_sessions_train_with_the_default_shifter_reading_the_pupil_centre(src, tmp_path):
    import torch

    from neuroenc.trained import load
    from neuroenc.training.run import train

    quiet_convert(src, tmp_path / "sessions")
    cfg = compose_config(["data=sessions", f"data.root={tmp_path / 'sessions'}", "data.window=16", "data.burn_in=4",
                          "data.batch_size=4", *SMALL_FRAMES_MODEL, "trainer.max_epochs=1", "trainer.limit_train_batches=2",
                          "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "eval_init=true"])
    assert cfg.shifter.required is False  # the default, shifter=auto: it is on only because the columns are there
    result = train(cfg, tmp_path / "run")  # scores the whole val split (oracle tier), then two steps
    assert result["steps"] == 2 and np.isfinite(result["init_val_bps_overall"])
    assert result["val_bps_oracle"] is None and result["parameters"]["shifter"] > 0
    model = load(tmp_path / "run" / "checkpoints" / "last.ckpt")
    assert model.shifter is not None and model.shifter.active
    names = model.info.behavior_names
    assert [names[i] for i in model.shifter.index.tolist()] == ["eye_x", "eye_y"] == names[2:]
    # trained: the last layer, zero at the start, has moved (a step trains one session's), and the
    # shift follows the eye columns only
    trained = [k for k, mlp in model.shifter.mlps.items() if mlp[-1].bias.abs().sum() > 0]
    assert trained
    behavior = torch.zeros(1, 1, len(names))
    shift = lambda column, value: model.shifter(behavior.index_fill(-1, torch.tensor([column]), value), trained[0])
    assert not torch.equal(shift(2, 1.0), shift(2, 0.0)) and not torch.equal(shift(3, 1.0), shift(3, 0.0))
    assert torch.equal(shift(0, 1.0), shift(0, 0.0)) and torch.equal(shift(1, 1.0), shift(1, 0.0))


def test_cli_imports_and_refuses_to_overwrite_unless_told(src, tmp_path):
    dst = tmp_path / "sessions"
    r = run_cli(["import", "sensorium2023", str(src), str(dst)], cwd=tmp_path, module="neuroenc.data")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "dynamic20-1-0" in r.stdout and f"data.root={dst}" in r.stdout
    stamp = (dst / "dynamic20-1-0" / "meta.json").stat().st_mtime_ns
    r = run_cli(["import", "sensorium2023", str(src), str(dst)], cwd=tmp_path, module="neuroenc.data")
    assert r.returncode == 2 and "destination exists" in r.stderr and "--overwrite" in r.stderr
    assert (dst / "dynamic20-1-0" / "meta.json").stat().st_mtime_ns == stamp  # untouched
    r = run_cli(["import", "sensorium2023", str(src), str(dst), "--overwrite"], cwd=tmp_path, module="neuroenc.data")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (dst / "dynamic20-1-0" / "meta.json").stat().st_mtime_ns != stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sensorium", "sessions"]  # no temporary leftovers


def mouse(src, m=1):
    return sorted(src.iterdir())[m]


@pytest.mark.parametrize("edit,message", [
    (lambda f: np.save(f / "data/responses/4.npy", np.zeros((3, ALLOC), np.float32)),
     "data/responses/4.npy: expected (6, T), got shape (3, 40)"),
    (lambda f: (f / "data/pupil_center/7.npy").unlink(),
     "data/pupil_center/7.npy: missing (trial 7 has tier 'final_test_main')"),
    (lambda f: (f / "data/videos/2.npy").unlink(), "data/videos/2.npy: missing (trial 2 has tier 'train'"),
    # only the test tiers may come without responses
    (lambda f: (f / "data/responses/2.npy").unlink(), "data/responses/2.npy: missing (trial 2 has tier 'train')"),
    (lambda f: (f / "data/responses/10.npy").unlink(), "data/responses/10.npy: missing (trial 10 has tier 'oracle')"),
    (lambda f: np.save(f / "data/behavior/2.npy", np.zeros((2, 20), np.float32)),
     "data/behavior/2.npy: 20 frames, fewer than the video's"),
    (lambda f: np.save(f / "data/pupil_center/2.npy", np.full((2, ALLOC), np.nan, np.float32)),
     "data/pupil_center/2.npy: pupil_x (row 0) is NaN on every frame of the trial"),
    (lambda f: np.save(f / "meta/trials/tiers.npy", np.array(TIERS[:-1] + ["holdout"])),
     "meta/trials/tiers.npy: unknown tiers ['holdout']"),
    (lambda f: np.save(f / "meta/neurons/cell_motor_coordinates.npy", np.zeros((6, 2))),
     "cell_motor_coordinates.npy: shape (6, 2), expected (N, 3)"),
    (lambda f: np.save(f / "data/videos/5.npy", np.full((36, 64, ALLOC), np.nan, np.float32)),
     "data/videos/5.npy: no finite frame"),
])
def test_bad_source_fails_naming_mouse_and_file_and_leaves_no_destination(src, tmp_path, edit, message):
    edit(mouse(src))
    with pytest.raises(SensoriumFormatError) as e:
        convert(src, tmp_path / "sessions", show_progress=False)
    assert mouse(src).name in str(e.value) and message in str(e.value), str(e.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sensorium"]  # nothing written, no temp dir


def test_failed_overwrite_keeps_the_old_destination(src, tmp_path):
    dst = tmp_path / "sessions"
    quiet_convert(src, dst)
    before = json.loads((dst / "dynamic21-1-1" / "meta.json").read_text())
    np.save(mouse(src) / "data/responses/9.npy", np.zeros((6, 3), np.float32))  # fails while writing mouse 2
    with pytest.raises(SensoriumFormatError, match="responses/9.npy"):
        quiet_convert(src, dst, overwrite=True)
    assert json.loads((dst / "dynamic21-1-1" / "meta.json").read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sensorium", "sessions"]


def test_refuses_a_destination_that_contains_the_source(src):
    with pytest.raises(SensoriumFormatError, match="would delete the source"):
        convert(src, src.parent, overwrite=True, show_progress=False)


def test_nan_behaviour_inside_a_trial_is_interpolated_and_counted(src, tmp_path):
    f = sorted(src.iterdir())[0] / "data/behavior/0.npy"
    beh = np.load(f)
    beh[1, 3] = np.nan  # running speed, frame 3 of trial 0 (train, unpadded)
    np.save(f, beh)
    with pytest.warns(UserWarning, match="1 NaN behaviour values filled by interpolation"):
        quiet_convert(src, tmp_path / "sessions")
    s = open_sessions(tmp_path / "sessions")[0]
    assert s.meta["provenance"]["behavior_nan_filled"] == 1
    assert s.behavior[3, 1] == pytest.approx((beh[1, 2] + beh[1, 4]) / 2)


def test_test_tier_trials_without_response_files_are_left_out_with_a_warning(src, tmp_path):
    first, second = sorted(src.iterdir())
    for t in (4, 7, 9):  # live_test_main, final_test_main, final_test_bonus: videos and behaviour stay
        (second / f"data/responses/{t}.npy").unlink()
    for t in (4, 6, 7, 9):  # every test trial: the mouse has no test split
        (first / f"data/responses/{t}.npy").unlink()
    with pytest.warns(UserWarning) as caught:
        convert(src, tmp_path / "sessions", show_progress=False)
    texts = [str(w.message) for w in caught]
    said = "test-tier trials left out because their response file (data/responses/<trial>.npy) is absent: "
    assert (f"mouse {second.name!r}: {said}3 (1 of tier 'live_test_main', 1 of tier 'final_test_main', "
            "1 of tier 'final_test_bonus')") in texts
    assert (f"mouse {first.name!r}: {said}4 (1 of tier 'live_test_main', 1 of tier 'live_test_bonus', "
            "1 of tier 'final_test_main', 1 of tier 'final_test_bonus')") in texts
    a, b = open_sessions(tmp_path / "sessions")
    assert a.meta["splits"] == {"train": [0, 2, 5, 8], "val": [1, 10]}
    assert b.meta["splits"] == {"train": [0, 2, 5, 8], "val": [1, 10], "test": [6]}
    for s, folder, kept in ((a, first, [0, 1, 2, 5, 8, 10]), (b, second, [0, 1, 2, 5, 6, 8, 10])):
        assert list(np.unique(s.trial)) == kept and s.n_frames == sum(np.load(folder / "lengths.npy")[kept])
    assert a.meta["provenance"]["trials_dropped_responses_absent"] == {
        "live_test_main": [4], "live_test_bonus": [6], "final_test_main": [7], "final_test_bonus": [9]}
    assert b.meta["provenance"]["trials_dropped_responses_absent"] == {
        "live_test_main": [4], "final_test_main": [7], "final_test_bonus": [9]}
