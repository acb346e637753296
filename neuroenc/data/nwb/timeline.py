"""When each bin is and what was on screen in it: the one sampling rule of the NWB importer.

Every session frame is a bin ``[t, t + 1/R)`` of ``--frame-rate`` R, laid from its trial's start.
Every stream is read at the **bin centre** ``t + 1/(2R)``: the stimulus frame is the one on screen
there (the last onset at or before it), behaviour and traces are interpolated there; spikes are
counted over the whole bin. Sampling at the centre makes the rule robust to flip jitter and to a
display latency shorter than half a bin, where sampling at the bin start would take the previous
frame whenever a flip lands a hair after the bin starts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroenc.data.nwb.options import NWBImportError

BLANK = -1  # an entry or a bin showing the blank (mean-luminance) frame
ONSET_TOLERANCE = 1e-6  # s: an onset this close before a sampling time counts as at it (float rounding of t0 + k/R)
RATE_TOLERANCE = 0.02  # a source rate within 2% of a multiple of the bin rate counts as that multiple


@dataclass
class Timeline:
    """What was on screen when: entry ``i`` shows source frame ``index[i]`` (``BLANK``: the blank
    frame) from ``onset[i]`` until ``offset[i]``; a time no entry covers shows the blank."""

    onset: np.ndarray
    offset: np.ndarray
    index: np.ndarray
    what: str  # names the stimulus in messages

    @classmethod
    def continuous(cls, onsets: np.ndarray, index: np.ndarray, what: str, source) -> Timeline:
        """Entries that stay on screen until the next onset (an ImageSeries, an IndexSeries); the
        last for the median frame duration."""
        onsets = np.asarray(onsets, np.float64)
        bad = np.flatnonzero(~np.isfinite(onsets))
        if len(bad):
            raise NWBImportError(f"{source}: stimulus: {what} has {len(bad)} non-finite timestamps (first at frame "
                                 f"{bad[0]}); a frame without a time cannot be placed")
        if len(onsets) == 0:
            raise NWBImportError(f"{source}: stimulus: {what} has no frames")
        if (np.diff(onsets) < 0).any():
            k = int(np.flatnonzero(np.diff(onsets) < 0)[0])
            raise NWBImportError(f"{source}: stimulus: {what}: timestamps go back in time at frame {k + 1} "
                                 f"({onsets[k]:.6f} s then {onsets[k + 1]:.6f} s)")
        step = float(np.median(np.diff(onsets))) if len(onsets) > 1 else np.nan
        offset = np.append(onsets[1:], onsets[-1] + (step if np.isfinite(step) else 0.0))
        return cls(onsets, offset, np.asarray(index, np.int64), what)

    @property
    def start(self) -> float:
        return float(self.onset[0])

    @property
    def stop(self) -> float:
        return float(self.offset[-1])

    def source_rate(self) -> float:
        """Frames per second of the source: one over the median time between onsets."""
        d = np.diff(self.onset)
        d = d[d > 0]
        return float(1.0 / np.median(d)) if len(d) else float("nan")

    def entries_at(self, times: np.ndarray) -> np.ndarray:
        """The entry on screen at each time, -1 where none is. A frame whose onset is the time
        itself is on screen then, even where the two were computed with different rounding (a
        60 Hz movie's odd onsets fall exactly on 30 Hz bin centres)."""
        times = np.asarray(times, np.float64) + ONSET_TOLERANCE
        i = np.searchsorted(self.onset, times, side="right") - 1
        on = (i >= 0) & (times < self.offset[np.maximum(i, 0)])
        return np.where(on, i, -1)

    def frames_at(self, times: np.ndarray) -> np.ndarray:
        """The source frame on screen at each time (``BLANK`` where nothing or a blank is)."""
        e = self.entries_at(times)
        return np.where(e >= 0, self.index[np.maximum(e, 0)], BLANK)

    def weights(self, starts: np.ndarray, stops: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per bin, the source frames on screen during it and the fraction of the bin each was
        (a time no entry covers counts for the blank): the ``--resample mean`` rule."""
        out = []
        first = np.maximum(np.searchsorted(self.onset, starts, side="right") - 1, 0)
        last = np.searchsorted(self.onset, stops, side="left")
        for a, b, i, j in zip(starts, stops, first, last):
            lo = np.maximum(self.onset[i:j], a)
            hi = np.minimum(self.offset[i:j], b)
            w = np.maximum(hi - lo, 0.0)
            frames, weights = list(self.index[i:j]), list(w)
            gap = (b - a) - w.sum()
            if gap > 1e-9 * (b - a):
                frames.append(BLANK)
                weights.append(gap)
            index, fraction = np.asarray(frames, np.int64), np.asarray(weights) / (b - a)
            keep = fraction > 0
            out.append((index[keep], fraction[keep]))
        return out


@dataclass
class Resampling:
    """How the source's rate meets the bin rate: the rule, in words for the report and warning."""

    rule: str  # "none", "nearest" or "mean"
    source_rate: float
    ratio: float  # source frames per bin
    note: str


def resampling(timeline: Timeline, frame_rate: float, asked: str | None, source) -> Resampling:
    """The rule for a source at ``timeline.source_rate()`` read at ``frame_rate``: the frame on
    screen at the bin centre when the rates agree or the source is an integer multiple of the bin
    rate (or a whole divisor of it); a non-integer ratio is refused unless ``--resample`` says how
    (``nearest``: the frame at the centre all the same, ``mean``: the frames on screen during the
    bin averaged by their time on screen)."""
    rate = timeline.source_rate()
    if not np.isfinite(rate):
        return Resampling(asked or "nearest", rate, float("nan"), "a single source frame")
    ratio = rate / frame_rate
    near = lambda r: abs(r - round(r)) <= RATE_TOLERANCE * max(r, 1.0) and round(r) >= 1
    if abs(ratio - 1) <= RATE_TOLERANCE:
        return Resampling(asked or "nearest", rate, ratio, "source at the bin rate")
    if near(ratio) or near(1 / ratio):
        rule = asked or "nearest"
        if ratio > 1:
            note = (f"source at {rate:.4g} Hz, {round(ratio)} frames a bin: " +
                    ("the frame on screen at each bin's centre is kept, the others dropped (--resample mean "
                     "averages them)" if rule == "nearest" else "the frames of each bin averaged by time on screen"))
        else:
            note = f"source at {rate:.4g} Hz: each frame held for {round(1 / ratio)} bins"
        return Resampling(rule, rate, ratio, note)
    if asked is None:
        raise NWBImportError(f"{source}: stimulus: {timeline.what} runs at {rate:.4g} Hz, {ratio:.4g} frames per "
                             f"{frame_rate:g} Hz bin, not a whole number: say how to resample it with --resample "
                             "nearest (the frame on screen at each bin's centre) or --resample mean (the frames on "
                             "screen during each bin, averaged by their time on screen), or pick a --frame-rate that "
                             "divides or is divided by the source's")
    return Resampling(asked, rate, ratio, f"source at {rate:.4g} Hz, {ratio:.4g} frames a bin, resampled by "
                                          f"--resample {asked}")
