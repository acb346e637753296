"""Saccade-triggered responses: the recorded and the predicted response around eye movements.

:func:`detect` finds saccade (and microsaccade) onsets in a gaze trace by a velocity threshold;
:func:`run` averages each neuron's recorded counts and the model's rates (``model.predict`` on the
session's raw val and test trials) from ``PRE_S`` before to ``POST_S`` after every onset, and
scores per neuron how well the predicted saccade-triggered average follows the recorded one.

The threshold is in pixels per second, speed measured frame to frame. Its default,
:data:`THRESHOLD_PX_S` = 200 px/s, is set for the simulator, which rounds the gaze to whole pixels:
its slow drift then moves the eye in 1-pixel steps (diagonally 1.41 px), which at 120 Hz are
120-170 px/s, while the primate preset's microsaccades jump 2 px or more within a frame
(240 px/s and up). At 30 Hz (the mouse default, with drift only) the 1-pixel steps are 30-42 px/s,
far below it: the defaults find no saccade there, as there is none; a jump needs 6.7 px within
one frame to count. Recordings with faster eye trackers or other pixel sizes want their own
``threshold_px_s``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, also on machines without a display
import matplotlib.pyplot as plt
import numpy as np

from neuroenc.analysis.insilico.probe import Probe, Result, Skipped
from neuroenc.data.receptive_fields import EYE_COLUMNS

THRESHOLD_PX_S = 200.0
# a saccade lasts tens of milliseconds: suprathreshold frames within this of an onset belong to it
MIN_INTERVAL_S = 0.03
PRE_S, POST_S = 0.25, 0.5  # the averaging window around each onset
MIN_SACCADES = 5
SPLITS = ("val", "test")


def detect(eye_xy: np.ndarray, frame_rate: float, threshold_px_s: float = THRESHOLD_PX_S,
           min_interval_s: float = MIN_INTERVAL_S) -> np.ndarray:
    """Onset frames (int64, ascending) of the saccades in one trial's gaze ``eye_xy (T, 2)`` in pixels.

    A frame is fast where the eye moved faster than ``threshold_px_s`` from the frame before; a
    run of consecutive fast frames is one saccade, whose onset is the run's first frame (the first
    at the new position). An onset within ``min_interval_s`` of the one before is part of that
    saccade (a slower frame in its middle). Steps to or from a NaN position are never fast. Give
    each trial on its own: the gaze's step between two trials is not a saccade.
    """
    eye = np.asarray(eye_xy, np.float64)
    if eye.ndim != 2 or eye.shape[1] != 2:
        raise ValueError(f"eye_xy: expected (T, 2) positions in pixels, got shape {eye.shape}")
    if not frame_rate > 0:
        raise ValueError(f"frame_rate: must be positive, got {frame_rate}")
    if not threshold_px_s > 0:
        raise ValueError(f"threshold_px_s: must be positive, got {threshold_px_s}")
    speed = np.hypot(*np.diff(eye, axis=0).T) * frame_rate  # (T - 1,) px/s
    fast = np.concatenate([[False], np.nan_to_num(speed, nan=0.0) > threshold_px_s])
    starts = np.flatnonzero(fast & ~np.concatenate([[False], fast[:-1]]))
    onsets: list[int] = []
    gap = min_interval_s * frame_rate
    for t in starts:
        if not onsets or t - onsets[-1] > gap:
            onsets.append(int(t))
    return np.asarray(onsets, np.int64)


def run(probe: Probe, threshold_px_s: float = THRESHOLD_PX_S, min_interval_s: float = MIN_INTERVAL_S,
        pre_s: float = PRE_S, post_s: float = POST_S, min_saccades: int = MIN_SACCADES) -> Result:
    """Observed and predicted saccade-triggered averages on the val and test trials.

    Gaze in pixels is the eye columns times the config's ``data.eye_px_per_unit``; where that is
    unknown (None) the columns are taken as pixels and the summary says ``gaze_in_px: false``.
    An onset counts when its whole window (``pre_s`` before to ``post_s`` after) lies inside its
    trial and after the model's burn-in. Each neuron's average leaves out its invalid bins
    (``dfs``, NaN), in the recorded and the predicted average alike.

    Summary: ``saccades`` (averaged), ``detected`` (all onsets in the trials) and
    ``detected_per_s``, ``median_sta_corr``, ``population_psth_corr`` and ``population_psth``
    (lags and the population means of the averages, spikes/s).
    Columns: ``sta_corr`` (Pearson correlation over lags of the recorded and predicted averages),
    ``sta_range_observed_hz`` and ``sta_range_predicted_hz`` (their peak minus trough, spikes/s)
    and, on simulated data (true rates), ``sta_corr_truth`` (predicted vs the true rates' average).
    """
    session = probe.session
    names = [] if session is None else session.behavior_names
    if session is None or not all(c in names for c in EYE_COLUMNS):
        raise Skipped("no eye_x/eye_y columns: no saccade analysis")
    px_per_unit = probe.model.config.data.get("eye_px_per_unit")
    cols = [names.index(c) for c in EYE_COLUMNS]
    rate = probe.frame_rate
    pre, post = round(pre_s * rate), round(post_s * rate)
    burn_in = int(probe.model.config.data.burn_in)

    onsets: list[int] = []  # absolute frames
    trials: list[tuple[int, int]] = []  # (start, stop) of the trials that have one
    detected = 0
    for split in SPLITS:
        for a, b in session.segments(split):
            gaze = np.asarray(session.behavior[a:b][:, cols], np.float64) * (px_per_unit or 1.0)
            onset = detect(gaze, rate, threshold_px_s, min_interval_s)
            detected += len(onset)
            found = [a + int(t) for t in onset if t - pre >= burn_in and t + post < b - a]
            if found:
                onsets += found
                trials.append((a, b))
    if len(onsets) < min_saccades:
        raise Skipped(f"{len(onsets)} saccades in the val/test trials (fewer than {min_saccades}; threshold "
                      f"{threshold_px_s:g} px/s): no saccade analysis")

    neurons = np.asarray(probe.neurons)
    lags = np.arange(-pre, post + 1)
    observed, predicted, truth = (np.zeros((len(lags), len(neurons))) for _ in range(3))
    counts = np.zeros((len(lags), len(neurons)))
    for a, b in trials:
        rates = probe.recorded_rates(a, b)[:, neurons]
        ok = session.valid(a, b)[:, neurons] & np.isfinite(rates)
        robs = np.where(ok, np.asarray(session.robs[a:b], np.float64)[:, neurons], 0.0)
        rates = np.where(ok, rates, 0.0)
        true = None if session.rates is None else np.where(ok, np.asarray(session.rates[a:b])[:, neurons], 0.0)
        for t in (t - a for t in onsets if a <= t < b):
            at = t + lags
            counts += ok[at]
            observed += robs[at]
            predicted += rates[at]
            if true is not None:
                truth += true[at]
    with np.errstate(invalid="ignore", divide="ignore"):
        observed, predicted, truth = (x / counts * rate for x in (observed, predicted, truth))  # spikes/s

    columns = {"sta_corr": _corr_columns(observed, predicted),
               "sta_range_observed_hz": np.ptp(observed, 0), "sta_range_predicted_hz": np.ptp(predicted, 0)}
    if session.rates is not None:
        columns["sta_corr_truth"] = _corr_columns(truth, predicted)
    lag_s = lags / rate
    pop = {"observed_hz": np.nanmean(observed, 1), "predicted_hz": np.nanmean(predicted, 1)}
    if session.rates is not None:
        pop["truth_hz"] = np.nanmean(truth, 1)
    seconds = sum(b - a for split in SPLITS for a, b in session.segments(split)) / rate
    summary = {
        "saccades": len(onsets), "detected": detected, "detected_per_s": detected / seconds,
        "trials_with_saccades": len(trials), "threshold_px_s": threshold_px_s, "min_interval_s": min_interval_s,
        "gaze_in_px": bool(px_per_unit), "median_sta_corr": _nanmedian(columns["sta_corr"]),
        "population_psth_corr": float(np.corrcoef(pop["observed_hz"], pop["predicted_hz"])[0, 1]),
        "population_psth": {"lag_s": lag_s.round(4).tolist(), **{k: v.round(4).tolist() for k, v in pop.items()}},
    }
    if "sta_corr_truth" in columns:
        summary["median_sta_corr_truth"] = _nanmedian(columns["sta_corr_truth"])

    def plot(path: Path) -> None:
        _figure(path, lag_s, pop, columns["sta_corr"], summary)

    return Result(columns=columns, summary=summary, plot=plot)


def _corr_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x (L, N)`` with the same column of ``y``; NaN where
    one is flat or undefined."""
    x = x - x.mean(0)
    y = y - y.mean(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x * y).sum(0) / np.sqrt((x * x).sum(0) * (y * y).sum(0))


def _nanmedian(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def _figure(path: Path, lag_s, pop: dict, corr, summary) -> None:
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(lag_s, pop["observed_hz"], color="k", label="recorded")
    left.plot(lag_s, pop["predicted_hz"], color="C1", label="model")
    if "truth_hz" in pop:
        left.plot(lag_s, pop["truth_hz"], color="C2", label="true rates (simulated)")
    left.axvline(0, color="grey", lw=0.8, ls="--")
    left.set_xlabel("time from saccade onset (s)")
    left.set_ylabel("population mean rate (spikes/s)")
    left.set_title(f"{summary['saccades']} saccades; PSTH r = {summary['population_psth_corr']:.2f}")
    left.legend()
    finite = corr[np.isfinite(corr)]
    right.hist(finite, bins=np.linspace(-1, 1, 21).tolist())
    if finite.size:
        right.axvline(np.median(finite), color="k", lw=0.8, label=f"median {np.median(finite):.2f}")
        right.legend()
    right.set_xlabel("r (recorded vs model saccade-triggered average)")
    right.set_ylabel("neurons")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
