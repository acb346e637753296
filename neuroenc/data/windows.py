"""Windows into sessions and the sampler that batches them one session at a time.

A window is ``window`` consecutive frames of one trial. Its first ``burn_in`` frames only give
history; the frames after it are scored. Windows tile each trial so that every frame after the
trial's first ``burn_in`` frames is scored exactly once per epoch: consecutive windows overlap
by ``burn_in`` frames, and the last one is aligned to the trial's end with its already scored
frames masked out through ``score_from``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler


def tile_segment(start: int, stop: int, window: int, burn_in: int) -> list[tuple[int, int]]:
    """``(window_start, score_from)`` pairs covering frames ``[start + burn_in, stop)`` once each.

    ``score_from`` is the index within the window of the first scored frame (>= burn_in).
    A segment shorter than ``window`` yields nothing.
    """
    if stop - start < window:
        return []
    step = window - burn_in
    out = []
    s = start
    while s + window <= stop:
        out.append((s, burn_in))
        s += step
    covered = out[-1][0] + window  # first frame not yet scored
    if covered < stop:
        last = stop - window
        out.append((last, covered - last))
    return out


def build_windows(segments_per_session: list[list[tuple[int, int]]], window: int, burn_in: int) -> np.ndarray:
    """Rows of ``(session_index, window_start, score_from)`` for every session's segments."""
    rows = [
        (si, s, f)
        for si, segments in enumerate(segments_per_session)
        for a, b in segments
        for s, f in tile_segment(a, b, window, burn_in)
    ]
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


class SessionBatchSampler(Sampler[list[int]]):
    """Batches of window indices that all come from one session.

    Shuffling permutes windows within each session and then the order of all batches, so
    sessions are visited in proportion to their number of windows. The permutation depends on
    ``seed`` and the epoch (``set_epoch``), identically on every rank; under DDP each rank takes
    a distinct shard of the batches (``rank::world_size``). With ``even_shards`` every rank gets
    the same number of batches (needed for training steps to stay in lockstep).
    """

    def __init__(self, session_of_window: np.ndarray, batch_size: int, *, shuffle: bool, seed: int = 0,
                 rank: int = 0, world_size: int = 1, even_shards: bool = False):
        self.session_of_window = np.asarray(session_of_window)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = rank
        self.world_size = world_size
        self.even_shards = even_shards
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for s in np.unique(self.session_of_window):
            idx = np.flatnonzero(self.session_of_window == s)
            if self.shuffle:
                idx = rng.permutation(idx)
            batches += [idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.even_shards:
            batches = batches[: len(batches) // self.world_size * self.world_size]
        return batches

    def __iter__(self):
        yield from self._all_batches()[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self._all_batches()[self.rank :: self.world_size])


class WindowDataset(torch.utils.data.Dataset):
    """Windows of opened sessions, normalised with each session's training statistics.

    Item: ``stim (1, T, H, W)`` float32, ``behavior (T, B)``, ``robs (T, N)`` (NaN -> 0),
    ``mask (T, N)`` (valid bins at or after ``score_from``), ``rates (T, N)`` when the session
    has ground truth, and ``session`` (index into ``sessions``).
    """

    def __init__(self, sessions, windows: np.ndarray, window: int):
        self.sessions = sessions
        self.windows = windows
        self.window = window
        self.norm = []
        for s in sessions:
            st = s.stats()
            self.norm.append((np.float32(st["stim_mean"]), np.float32(st["stim_std"]),
                              np.asarray(st["behavior_mean"], np.float32), np.asarray(st["behavior_std"], np.float32)))

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        si, start, score_from = (int(v) for v in self.windows[i])
        s = self.sessions[si]
        stop = start + self.window
        sm, ss, bm, bs = self.norm[si]
        stim = (np.asarray(s.stim[start:stop], dtype=np.float32) - sm) / ss
        beh = (np.asarray(s.behavior[start:stop], dtype=np.float32) - bm) / bs
        robs = np.asarray(s.robs[start:stop], dtype=np.float32)
        mask = s.valid(start, stop)
        mask[:score_from] = False
        item = {
            "session": si,
            "stim": torch.from_numpy(stim[None]),
            "behavior": torch.from_numpy(beh),
            "robs": torch.from_numpy(np.where(np.isfinite(robs), robs, 0.0).astype(np.float32)),
            "mask": torch.from_numpy(mask),
        }
        if s.rates is not None:
            item["rates"] = torch.from_numpy(np.asarray(s.rates[start:stop], dtype=np.float32))
        return item
