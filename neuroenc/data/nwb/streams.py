"""Responses and behaviour on the bins: spikes counted per bin, traces read at bin centres.

A trace (a ``TimeSeries``: behaviour, a ``RoiResponseSeries``) *covers* a bin when the bin's
centre lies between two finite samples at most ``2 * max(median sample interval, bin period)``
apart (or on a finite sample); the value there is the linear interpolation between them. A bin a
trace does not cover (before its first sample, after its last, in a gap of missing or NaN
samples) is never filled from the edge: it is marked invalid in ``dfs.npy`` (for behaviour, for
every neuron of that bin; the behaviour value there is the column's mean over covered bins, which
the loader's standardisation maps to 0), or, with ``--uncovered refuse``, the import is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroenc.data.nwb.options import NWBImportError


@dataclass
class Sampled:
    values: np.ndarray  # (bins, columns) float64, NaN where not covered
    covered: np.ndarray  # (bins, columns) bool


def series_times(series, n: int, path: str, source) -> np.ndarray:
    t = np.asarray(series.get_timestamps(), np.float64)
    if len(t) != n:
        raise NWBImportError(f"{source}: {path!r} has {n} samples but {len(t)} timestamps")
    bad = np.flatnonzero(~np.isfinite(t))
    if len(bad):
        raise NWBImportError(f"{source}: {path!r}: {len(bad)} non-finite timestamps (first at sample {bad[0]})")
    if (np.diff(t) < 0).any():
        raise NWBImportError(f"{source}: {path!r}: timestamps go back in time at sample "
                             f"{int(np.flatnonzero(np.diff(t) < 0)[0]) + 1}")
    return t


def sample(series, centres: np.ndarray, period: float, source, path: str) -> Sampled:
    """A time series (``conversion`` and ``offset`` applied) at the bin centres, with coverage."""
    data = np.asarray(series.data[:], np.float64)
    data = data.reshape(len(data), -1) * float(getattr(series, "conversion", 1.0) or 1.0) \
        + float(getattr(series, "offset", 0.0) or 0.0)
    t = series_times(series, len(data), path, source)
    values = np.full((len(centres), data.shape[1]), np.nan)
    covered = np.zeros((len(centres), data.shape[1]), bool)
    for j in range(data.shape[1]):
        ok = np.isfinite(data[:, j])
        tj, dj = t[ok], data[ok, j]
        if len(tj) == 0:
            continue
        step = float(np.median(np.diff(tj))) if len(tj) > 1 else period
        max_gap = 2 * max(step, period)
        right = np.clip(np.searchsorted(tj, centres, side="left"), 0, len(tj) - 1)
        left = np.clip(np.searchsorted(tj, centres, side="right") - 1, 0, len(tj) - 1)
        inside = (centres >= tj[0]) & (centres <= tj[-1])
        on_sample = tj[right] == centres
        covered[:, j] = inside & (on_sample | (tj[right] - tj[left] <= max_gap))
        values[covered[:, j], j] = np.interp(centres[covered[:, j]], tj, dj)
    return Sampled(values, covered)


def bin_units(units, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts ``(bins, units)`` in ``[starts, stops)`` and their validity (inside the
    unit's ``obs_intervals`` where the table has them)."""
    counts = np.zeros((len(starts), len(rows)), np.float32)
    valid = np.ones((len(starts), len(rows)), bool)
    has_obs = "obs_intervals" in units.colnames
    for j, r in enumerate(rows):
        spikes = np.sort(np.asarray(units["spike_times"][int(r)], np.float64))
        counts[:, j] = np.searchsorted(spikes, stops, "left") - np.searchsorted(spikes, starts, "left")
        if has_obs:
            obs = np.asarray(units["obs_intervals"][int(r)], np.float64).reshape(-1, 2)
            valid[:, j] = ((starts[:, None] >= obs[None, :, 0]) & (stops[:, None] <= obs[None, :, 1])).any(1)
    return counts, valid


def spike_range(units, rows: np.ndarray) -> tuple[float, float, int]:
    """First and last spike time over the chosen units, and the number of spikes."""
    lo, hi, n = np.inf, -np.inf, 0
    for r in rows:
        s = np.asarray(units["spike_times"][int(r)], np.float64)
        if len(s):
            lo, hi, n = min(lo, float(s.min())), max(hi, float(s.max())), n + len(s)
    return lo, hi, n


def check_clock(spans: list[tuple[float, float]], spikes: tuple[float, float, int], counted: float, source) -> None:
    """Refuse spike times that are on another clock than the stimulus: no spike in any imported
    bin, or a spike-time range that leaves most of the imported trials' time uncovered."""
    lo, hi, n = spikes
    t0, t1 = min(a for a, _ in spans), max(b for _, b in spans)
    total = sum(b - a for a, b in spans)
    overlap = sum(max(0.0, min(b, hi) - max(a, lo)) for a, b in spans) if n else 0.0
    where = (f"the units' {n} spike times run from {lo:.3f} s to {hi:.3f} s" if n else "the units have no spike times") \
        + f", the imported trials from {t0:.3f} s to {t1:.3f} s"
    if counted == 0:
        raise NWBImportError(f"{source}: responses: no spike falls in any imported bin: {where}. Are the spike times "
                             "on another clock than the stimulus (an offset of the recording's start)? Align them "
                             "before importing")
    if overlap < 0.5 * total:
        raise NWBImportError(f"{source}: responses: the spike times cover {100 * overlap / total:.0f}% of the imported "
                             f"trials' time: {where}. Are the spike times on another clock than the stimulus? "
                             "Align them before importing")
