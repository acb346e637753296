"""Windows into sessions and the sampler that batches them one session at a time.

A window is ``window`` consecutive frames of one trial. Its first ``burn_in`` frames only give
history; the frames after it are scored. Windows tile each trial so that every frame after the
trial's first ``burn_in`` frames is scored exactly once per epoch: consecutive windows overlap
by ``burn_in`` frames, and the last one is aligned to the trial's end with its already scored
frames masked out through ``score_from``.
"""

from __future__ import annotations

from typing import TypedDict, cast

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from neuroenc.data.sessions import valid_bins


def window_problem(window: int, burn_in: int) -> str | None:
    """Why ``burn_in`` frames of history cannot precede a scored frame in windows of ``window``
    frames (None when they can): the one statement of the rule ``0 <= burn_in < window``."""
    if not 0 <= burn_in < window:
        return f"{burn_in} leaves no scored frame in a window of window={window}"
    return None


class _BatchKeys(TypedDict):
    stim: torch.Tensor  # (B, 1, T, H, W) float32, normalised
    behavior: torch.Tensor  # (B, T, n_behavior) float32, normalised
    robs: torch.Tensor  # (B, T, N) float32, NaN -> 0
    mask: torch.Tensor  # (B, T, N) bool: valid bins at or after the window's score_from
    session: torch.Tensor  # (B,) int64, the index of the batch's one session in the datamodule's sessions


class Batch(_BatchKeys, total=False):
    """A batch of windows of one session, as :func:`collate_windows` makes it (the keys of
    :class:`WindowDataset`'s items, stacked)."""

    rates: torch.Tensor  # (B, T, N) float32, the true rates of a session that has them (simulated)


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
    a distinct shard of the batches (``rank::world_size``). With ``even_shards`` (training) every
    rank gets the same number of batches, and the batches of one step all come from one session
    (a session's last batches that do not fill a step are left out of that epoch).

    Lightning calls ``set_epoch`` on a DataLoader's ``sampler`` and on ``batch_sampler.sampler``,
    never on the batch sampler itself; ``sampler`` is therefore this object, so the reshuffle
    happens every epoch.

    ``resume_at(n)`` makes the next pass start at the ``n``-th batch of its epoch (a run resumed
    mid-epoch, see :class:`ResumableLoader`); ``len`` stays the whole epoch's, as Lightning counts
    the skipped batches as done.
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
        self.sampler = self
        self.skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def resume_at(self, batch: int) -> None:
        self.skip = int(batch)

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        # with even_shards, blocks of world_size batches of one session: the ranks of a DDP step
        # then train the same session's readout, and the averaged gradients belong together
        block = self.world_size if self.even_shards else 1
        blocks = []
        for s in np.unique(self.session_of_window):
            idx = np.flatnonzero(self.session_of_window == s)
            if self.shuffle:
                idx = rng.permutation(idx)
            batches = [idx[i : i + self.batch_size].tolist() for i in range(0, len(idx), self.batch_size)]
            blocks += [batches[i : i + block] for i in range(0, len(batches) - block + 1, block)]
        if self.shuffle:
            blocks = [blocks[i] for i in rng.permutation(len(blocks))]
        return [b for blk in blocks for b in blk]

    def __iter__(self):
        skip, self.skip = self.skip, 0
        yield from self._all_batches()[self.rank :: self.world_size][skip:]

    def __len__(self) -> int:
        return len(self._all_batches()[self.rank :: self.world_size])


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over a :class:`SessionBatchSampler` that a run can resume mid-epoch.

    ``state_dict(epoch_length)`` is the position of the next batch to train, ``{"epoch",
    "batches_served"}``; it goes into every checkpoint (through the datamodule, see
    ``SessionDataModule.state_dict``). Given back to ``load_state_dict`` before iterating, it makes
    a resumed run go on with that batch, in its epoch's order. Batches are counted as they are
    handed out, so those that workers fetched ahead are not counted as seen.

    An epoch whose batches were all handed out is recorded as the next epoch at batch 0, not as
    "epoch e, all served": Lightning may take the first iterator it makes after a restore for the
    *next* epoch (it sets the sampler's epoch only after that iterator exists), and a leftover
    "skip every batch" would then empty that epoch. "All" is ``epoch_length``, the batches the
    Trainer takes of an epoch: with ``limit_train_batches`` that is fewer than the sampler has, and
    the epoch ends with the sampler's pass unfinished (issue 26: counted against the sampler's
    length, the next epoch started that many batches into its order). Where a restore continues
    is decided in :mod:`neuroenc.training.checkpointing` (the resume rule); this is the loader's
    half of it.
    """

    batch_sampler: SessionBatchSampler

    def __init__(self, dataset, batch_sampler: SessionBatchSampler, **kwargs):
        super().__init__(dataset, batch_sampler=batch_sampler, **kwargs)
        self.batches_served = 0

    def __iter__(self):
        self.batches_served = self.batch_sampler.skip
        for batch in super().__iter__():
            self.batches_served += 1
            yield batch

    def state_dict(self, epoch_length: int | None = None) -> dict:
        """``epoch_length``: the batches an epoch takes (``Trainer.num_training_batches``); None: all."""
        epoch, served = self.batch_sampler.epoch, self.batches_served
        end = len(self.batch_sampler) if epoch_length is None else min(len(self.batch_sampler), epoch_length)
        if served >= end:
            epoch, served = epoch + 1, 0
        return {"epoch": epoch, "batches_served": served}

    def load_state_dict(self, state: dict) -> None:
        self.batch_sampler.set_epoch(state["epoch"])
        self.batch_sampler.resume_at(state["batches_served"])


def normalization_constants(stats) -> tuple:
    """``(stim_mean, 1 / stim_std, behavior_mean, 1 / behavior_std)`` as float32 from a session's
    training statistics (``Session.stats()`` or those a checkpoint stores): inputs are standardised
    as ``(x - mean) * inverse`` in float32 wherever a model sees them (training windows, raw-input
    prediction, the shifter check), so they all get the same values."""
    return (np.float32(stats["stim_mean"]), np.float32(1.0 / stats["stim_std"]),
            np.asarray(stats["behavior_mean"], np.float32),
            np.asarray(1.0 / np.asarray(stats["behavior_std"]), np.float32))


class WindowDataset(torch.utils.data.Dataset):
    """Windows of opened sessions, normalised with each session's training statistics.

    Item: ``stim (1, T, H, W)`` float32, ``behavior (T, B)``, ``robs (T, N)`` (NaN -> 0),
    ``mask (T, N)`` (valid bins at or after ``score_from``), ``rates (T, N)`` when the session
    has ground truth, and ``session`` (index into ``sessions``).

    Windows are read with :class:`~neuroenc.data.sessions.RowReader` (``pread``); the dataset holds
    readers and statistics, not the sessions, so it pickles small into DataLoader workers.
    """

    def __init__(self, sessions, windows: np.ndarray, window: int):
        self.windows = windows
        self.window = window
        self.readers = [{n: s.reader(n) for n in ("stim", "behavior", "robs", "dfs", "rates")
                         if getattr(s, n) is not None} for s in sessions]
        self.norm = [normalization_constants(s.stats()) for s in sessions]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A batch's items (the DataLoader asks for them together): all of its reads are handed
        to the kernel first, so a batch from a cold disk costs one wait, not one per window."""
        for i in indices:
            si, start, _ = (int(v) for v in self.windows[i])
            for reader in self.readers[si].values():
                reader.prefetch(start, start + self.window)
        return [self[i] for i in indices]

    def __getitem__(self, i: int) -> dict:
        si, start, score_from = (int(v) for v in self.windows[i])
        r = self.readers[si]
        stop = start + self.window
        sm, s_inv, bm, b_inv = self.norm[si]
        stim = r["stim"].read(start, stop).astype(np.float32)
        stim -= sm
        stim *= s_inv
        beh = (r["behavior"].read(start, stop).astype(np.float32) - bm) * b_inv
        robs = r["robs"].read(start, stop).astype(np.float32, copy=False)
        mask = valid_bins(robs, r["dfs"].read(start, stop) if "dfs" in r else None)
        robs[~np.isfinite(robs)] = 0.0  # NaN responses never reach the loss: zeroed, and masked
        mask[:score_from] = False
        item = {
            "session": si,
            "stim": torch.from_numpy(stim[None]),
            "behavior": torch.from_numpy(beh),
            "robs": torch.from_numpy(robs),
            "mask": torch.from_numpy(mask),
        }
        if "rates" in r:
            item["rates"] = torch.from_numpy(r["rates"].read(start, stop).astype(np.float32, copy=False))
        return item


def collate_windows(items: list[dict]) -> Batch:
    """Stack items into a batch with numpy. The default collate's ``torch.stack`` runs intra-op
    threads; on a CPU shared with other work it took 120 ms for a batch of eight 64x36x64 windows
    where ``np.stack`` took 2 ms."""
    batch = {k: torch.from_numpy(np.stack([it[k].numpy() for it in items])) for k in items[0] if k != "session"}
    batch["session"] = torch.tensor([it["session"] for it in items])
    return cast(Batch, batch)
