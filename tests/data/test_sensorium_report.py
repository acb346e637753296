"""Every Sensorium import writes ``import_report.json`` beside each session: what was found in the
source and what the importer did, checked against counts recomputed from the fabricated folder."""

from collections import Counter

import numpy as np
import pytest
from test_sensorium import ALLOC, TIERS, fabricate_sensorium

from neuroenc.data import import_report
from neuroenc.data.sensorium import convert
from neuroenc.data.sessions import open_sessions


def source_counts(folder, kept):
    """What the import must report for ``folder``'s ``kept`` trials, from the source files alone."""
    lengths = np.load(folder / "lengths.npy")
    resp = [np.load(folder / f"data/responses/{t}.npy")[:, :lengths[t]] for t in kept]
    beh = [np.load(folder / f"data/{sub}/{t}.npy")[:, :lengths[t]] for t in kept for sub in ("behavior", "pupil_center")]
    return {"padding_frames_dropped": int(sum(ALLOC - lengths[t] for t in kept)),
            "responses_nan_masked": int(sum(np.isnan(r).sum() for r in resp)),
            "responses_clipped": int(sum((r < 0).sum() for r in resp)),
            "behavior_nan_filled": int(sum(np.isnan(b).sum() for b in beh))}


def test_each_session_has_a_report_of_what_was_read_and_done_with_every_warning(tmp_path):
    src = fabricate_sensorium(tmp_path / "sensorium")
    first, second = sorted(src.iterdir())
    (second / "data/responses/4.npy").unlink()  # a live_test_main trial without responses
    beh = np.load(second / "data/pupil_center/2.npy")
    beh[0, 3:5] = np.nan  # two pupil x values of a train trial: interpolated
    np.save(second / "data/pupil_center/2.npy", beh)
    dst = tmp_path / "sessions"
    with pytest.warns(UserWarning) as caught:
        convert(src, dst, show_progress=False)
    issued = [str(w.message) for w in caught]
    sessions = open_sessions(dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sensorium", "sessions"]  # no temporary leftovers
    for s, folder, absent in zip(sessions, (first, second), ({}, {"live_test_main": [4]})):
        report = import_report.read(s.path)
        assert report is not None, f"no {import_report.REPORT_FILE} in {s.path}"
        kept = [t for t, tier in enumerate(TIERS) if tier != "none" and t not in absent.get(tier, [])]
        assert report["importer"] == "sensorium2023" and report["source"] == str(folder.resolve())
        assert report["read"] == {
            "mouse_folder": str(folder.resolve()),
            "trials_per_tier": dict(Counter(TIERS)),
            "trials_left_out_tier_none": [3],
            "trials_left_out_responses_absent": absent,
            "neurons": len(np.load(folder / "meta/neurons/unit_ids.npy")),
            "repeated_videos": 0,
        }
        assert report["done"] == {**source_counts(folder, kept), "columns_renamed": {"pupil_x": "eye_x", "pupil_y": "eye_y"}}
        assert report["session"] == import_report.session_figures(s)  # built on the session as it was renamed into place
        assert report["session"]["behavior"] == ["pupil_dilation", "running_speed", "eye_x", "eye_y"]
        mine = [w for w in issued if w.startswith(f"mouse {folder.name!r}: ")]
        assert report["warnings"] == mine and mine
        text = import_report.render(report)
        assert f"warnings: {len(mine)}" in text and all(w in text for w in mine)
    assert report["done"]["behavior_nan_filled"] == 2
    assert any("trials left out because their response file (data/responses/<trial>.npy) is absent: 1 (1 of tier "
               "'live_test_main')" in w for w in report["warnings"])
