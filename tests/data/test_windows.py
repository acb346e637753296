"""Windows tile each trial once, never cross a trial or split; batches hold one session each."""

import numpy as np
import pytest

from neuroenc.data.windows import SessionBatchSampler, build_windows, tile_segment


@pytest.mark.parametrize("length", [40, 41, 63, 64, 100, 333])
def test_every_frame_after_burn_in_is_scored_exactly_once(length):
    window, burn_in = 40, 16
    scored = np.zeros(length, int)
    for start, score_from in tile_segment(0, length, window, burn_in):
        assert 0 <= start and start + window <= length and score_from >= burn_in
        scored[start + score_from : start + window] += 1
    assert (scored[burn_in:] == 1).all() and (scored[:burn_in] == 0).all()


def test_windows_never_cross_segments():
    segs = [[(0, 100), (150, 260)], [(10, 50)]]
    w = build_windows(segs, 40, 10)
    for si, start, _ in w:
        assert any(a <= start and start + 40 <= b for a, b in segs[si])
    assert set(w[:, 0]) == {0, 1}


def test_batches_hold_one_session_and_visit_sessions_in_proportion():
    sess = np.repeat([0, 1, 2], [300, 100, 20])
    batches = list(SessionBatchSampler(sess, 10, shuffle=True, seed=0))
    assert all(len(set(sess[b])) == 1 for b in batches)
    counts = np.bincount([sess[b[0]] for b in batches])
    assert list(counts) == [30, 10, 2]
    assert sorted(i for b in batches for i in b) == list(range(len(sess)))


def test_shuffle_changes_every_epoch_and_is_seeded():
    sess = np.repeat([0, 1], [50, 50])
    s = SessionBatchSampler(sess, 5, shuffle=True, seed=3)
    e0 = list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e0 != e1
    s2 = SessionBatchSampler(sess, 5, shuffle=True, seed=3)
    s2.set_epoch(1)
    assert list(s2) == e1


@pytest.mark.parametrize("shuffle", [True, False])
def test_ranks_get_disjoint_shards(shuffle):
    sess = np.repeat([0, 1, 2], [33, 17, 9])
    shards = [list(SessionBatchSampler(sess, 4, shuffle=shuffle, seed=0, rank=r, world_size=2,
                                       even_shards=shuffle)) for r in range(2)]
    idx = [sorted(i for b in sh for i in b) for sh in shards]
    assert not set(idx[0]) & set(idx[1])
    if shuffle:
        assert len(shards[0]) == len(shards[1])
    else:  # validation: together the ranks cover every window once
        assert sorted(idx[0] + idx[1]) == list(range(len(sess)))


def test_ranks_of_a_training_step_get_batches_of_the_same_session():
    sess = np.repeat([0, 1, 2], [33, 17, 9])
    shards = [list(SessionBatchSampler(sess, 4, shuffle=True, seed=0, rank=r, world_size=2, even_shards=True))
              for r in range(2)]
    assert len(shards[0]) == len(shards[1]) > 0
    for b0, b1 in zip(*shards):
        assert sess[b0[0]] == sess[b1[0]]
