"""Trials that show the same video: where they are recorded, found, and scored.

A session's ``meta.json`` may hold ``trial_stimulus``: ``{"<trial id>": "<stimulus id>", ...}``,
the video each trial showed. Trials of one split with one stimulus id are repeats of that video
(the simulator with ``data.simulation.repeats``, Sensorium's oracle tier, an NWB presentation
table). An importer whose source does not say which video a trial showed can find out with
:class:`StimulusHasher`: trials with identical frames get one id.

:func:`session_repeat_scores` turns a split's repeats into the per-neuron figures of
:func:`neuroenc.metrics.repeat_scores` for a model's predictions (and, on simulated data, for the
true rates).
"""

from __future__ import annotations

import hashlib

import numpy as np

from neuroenc.data.sessions import trial_labels
from neuroenc.metrics import repeat_scores


def trial_stimulus(session) -> dict[int, str]:
    """``meta.json`` ``trial_stimulus`` as ``{trial id: stimulus id}`` (empty when absent)."""
    return trial_labels(session, "trial_stimulus")


def repeat_groups(session, split: str) -> list[tuple[str, list[tuple[int, int]]]]:
    """``[(stimulus id, [(start, stop) of each presentation])]`` for the videos ``split`` shows
    more than once, in stimulus id order. Presentations of one video are cut to the shortest (a
    recording may drop a frame at a trial's end)."""
    stimulus = trial_stimulus(session)
    if not stimulus:
        return []
    trials = set(session.meta["splits"].get(split, []))
    starts, stops, ids = session.trial_runs()
    shown: dict[str, list[tuple[int, int]]] = {}
    for a, b, t in zip(starts, stops, ids):
        if int(t) in trials and int(t) in stimulus:
            shown.setdefault(stimulus[int(t)], []).append((int(a), int(b)))
    groups = []
    for sid in sorted(shown):
        runs = shown[sid]
        if len(runs) > 1:
            n = min(b - a for a, b in runs)
            groups.append((sid, [(a, a + n) for a, _ in runs]))
    return groups


def stack_repeats(session, runs: list[tuple[int, int]], array: str = "robs") -> np.ndarray:
    """``(repeats, frames, N)`` float64 of ``array`` over the presentations ``runs``, NaN where a
    bin is not valid (NaN, or 0 in ``dfs``)."""
    out = []
    for a, b in runs:
        values = np.asarray(getattr(session, array)[a:b], np.float64)
        out.append(np.where(session.valid(a, b), values, np.nan))
    return np.stack(out)


def session_repeat_scores(session, split: str, predict=None) -> dict | None:
    """Per-neuron repeat scores of ``split``, or None when it repeats no video.

    ``predict(stim (T, H, W), behavior (T, B)) -> (T, N)`` gives the model's rates of one
    presentation (``model.predict`` of the session, NaN in burn-in). Returns ``{"videos",
    "trials", "scores": {name: (N,)}}`` with the data-only scores and, given ``predict``,
    ``corr_to_average`` and ``fev``; with true rates (simulated data) also ``true_rates``: the
    same scores with the repeat-averaged true rates as the prediction (a ceiling near FEV 1).
    """
    groups = repeat_groups(session, split)
    if not groups:
        return None
    responses = [stack_repeats(session, runs) for _, runs in groups]
    out: dict = {"videos": len(groups), "trials": sum(len(runs) for _, runs in groups)}
    if predict is None:
        out["scores"] = repeat_scores(responses)
    else:
        predictions = [np.stack([predict(np.asarray(session.stim[a:b]), np.asarray(session.behavior[a:b]))
                                 for a, b in runs]).astype(np.float64) for _, runs in groups]
        out["scores"] = repeat_scores(responses, predictions)
    if session.rates is not None:
        truth = []
        for _, runs in groups:
            rates = np.stack([np.asarray(session.rates[a:b], np.float64) for a, b in runs])
            truth.append(np.broadcast_to(rates.mean(0, keepdims=True), rates.shape))
        out["true_rates"] = repeat_scores(responses, truth)
    return out


class StimulusHasher:
    """Gives trials with identical frames one stimulus id: ``add(trial, frames)`` per trial (in
    pieces if need be, in order), then :meth:`trial_stimulus` for the trials whose video some
    other trial showed too. Identical means byte for byte after the importer's conversion."""

    def __init__(self):
        self._hashes: dict[int, hashlib._Hash] = {}

    def add(self, trial: int, frames: np.ndarray) -> None:
        frames = np.ascontiguousarray(frames)
        h = self._hashes.setdefault(int(trial), hashlib.sha1(f"{frames.dtype}{frames.shape[1:]}".encode()))
        h.update(frames.data)

    def trial_stimulus(self) -> dict[str, str]:
        digests = {t: h.hexdigest()[:12] for t, h in self._hashes.items()}
        counts: dict[str, int] = {}
        for d in digests.values():
            counts[d] = counts.get(d, 0) + 1
        return {str(t): f"video-{d}" for t, d in sorted(digests.items()) if counts[d] > 1}
