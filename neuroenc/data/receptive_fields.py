"""Receptive-field centres estimated from a session's training data, to start readouts there.

A Gaussian readout learns where its neuron's receptive field is only from features that already
predict the neuron, and features predict it only where the readout reads: started away from its
cell, a readout has nothing to follow. This module finds each neuron's cell first, with two
spike-triggered maps of the training split that take seconds with numpy:

- linear: the response-weighted average of the stimulus, filtered in time with a generic
  biphasic kernel (positive ~75 ms, negative ~190 ms after the frame, as V1 responds), squared
  (simple cells; the sign does not matter for the position);
- energy: the same with the stimulus band-passed (differences of Gaussians at three scales) and
  squared first (complex cells, whose linear average is flat).

Each map is smoothed (1 px), z-scored over the frame, and compared with the same maps for
responses shifted in time by half the split (which no cell follows); the neuron's map is the
kind whose peak stands furthest above that null, and its centre the peak refined to a fraction
of a pixel. Sizes are in pixels and milliseconds, so the estimate works at any frame rate.

Where the eye position is known in pixels of the frame (``gaze_px``), the maps are taken on the
stimulus as the retina saw it: each frame shifted by that frame's gaze. A cell's receptive field
is fixed on the retina, not on the screen, so fixational eye movements blur screen-coordinate
maps: on the primate preset (eye std ~1.3 px, receptive fields 0.5-2 px, gratings of 2.5 px and
up) they put 45 of 215 readouts more than 5 px from their cell, which training never moved back
(a third of the complex cells); on retinal coordinates 9, and the median error fell from 1.4 to 0.6 px.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

BANDS_PX = ((0.5, 1.5), (1.0, 3.0), (2.0, 5.0))  # inner and outer sigma of each difference of Gaussians
SMOOTH_PX = 1.0
KERNEL_MS = 300.0


def temporal_kernel(frame_rate: float) -> np.ndarray:
    """Weights of lags ``0 .. KERNEL_MS`` (index = lag in frames) of a generic V1 impulse response."""
    lag_ms = np.arange(int(KERNEL_MS * frame_rate / 1000) + 1) * 1000.0 / frame_rate
    bump = lambda centre, width: np.exp(-0.5 * ((lag_ms - centre) / width) ** 2)
    return bump(75.0, 35.0) - 0.45 * bump(190.0, 45.0)


def filter_in_time(stim: np.ndarray, trial: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """``stim (T, H, W)`` convolved causally with ``kernel`` over lags, never across trials."""
    out = np.zeros_like(stim)
    for lag, k in enumerate(kernel):
        if lag == 0:
            out += k * stim
            continue
        same = np.flatnonzero(trial[lag:] == trial[:-lag]) + lag
        out[same] += k * stim[same - lag]
    return out


def _zmaps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """``(N, H*W)`` maps smoothed and z-scored over the frame (median-centred: robust to the peak)."""
    m = gaussian_filter(maps.reshape(-1, *shape), (0, SMOOTH_PX, SMOOTH_PX)).reshape(len(maps), -1)
    return (m - np.median(m, 1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-12)


def _maps(features: list[np.ndarray], y: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """z-scored linear and energy maps ``(N, H*W)`` of responses ``y (T, N)``."""
    lin, *energy = features
    zl = _zmaps((y.T @ lin) ** 2, shape)
    ze = np.max([_zmaps(y.T @ e, shape) for e in energy], 0)
    return zl, ze


def _refine(zmap: np.ndarray, shape: tuple[int, int]) -> tuple[float, float]:
    """The peak of one ``(H*W,)`` map as (x, y) pixels, refined by the centroid of its 3x3 patch."""
    h, w = shape
    m = zmap.reshape(h, w)
    py, px = np.unravel_index(int(m.argmax()), shape)
    ys, xs = slice(max(py - 1, 0), min(py + 2, h)), slice(max(px - 1, 0), min(px + 2, w))
    patch = np.clip(m[ys, xs] - m[ys, xs].min(), 0, None)
    yy, xx = np.mgrid[ys, xs]
    total = patch.sum()
    if total <= 0:
        return float(px), float(py)
    return float((xx * patch).sum() / total), float((yy * patch).sum() / total)


def retinal_stimulus(stim: np.ndarray, gaze_px: np.ndarray) -> np.ndarray:
    """``stim (T, H, W)`` as the retina saw it: frame t shifted so that pixel (x, y) shows the
    screen at (x + dx, y + dy) for that frame's gaze ``(dx, dy)`` (``gaze_px (T, 2)``, rounded to
    whole pixels), as :mod:`neuroenc.model.shifter` assumes; the stimulus mean beyond the screen."""
    t, h, w = stim.shape
    shift = np.rint(np.asarray(gaze_px, np.float64)).astype(np.int64)
    out = np.full_like(stim, stim.mean())
    for dx, dy in np.unique(shift, axis=0):
        sel = np.flatnonzero((shift[:, 0] == dx) & (shift[:, 1] == dy))
        ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
        xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
        if ys.start < ys.stop and xs.start < xs.stop:
            out[sel, yd, xd] = stim[sel, ys, xs]
    return out


def estimate_centers(stim: np.ndarray, robs: np.ndarray, trial: np.ndarray, frame_rate: float,
                     gaze_px: np.ndarray | None = None) -> np.ndarray:
    """Receptive-field centres ``(N, 2)`` as (x, y) pixels from training frames: ``stim (T, H, W)``,
    responses ``robs (T, N)`` (NaN where invalid), the ``trial (T,)`` of each frame and, where
    known, the eye position ``gaze_px (T, 2)`` in pixels (the maps are then retinal)."""
    stim = np.asarray(stim, np.float32)
    if gaze_px is not None:
        stim = retinal_stimulus(stim, gaze_px)
    stim = (stim - stim.mean()) / (stim.std() + 1e-12)
    t, h, w = stim.shape
    st = filter_in_time(stim, np.asarray(trial), temporal_kernel(frame_rate))
    features = [st.reshape(t, -1)]
    for inner, outer in BANDS_PX:
        band = gaussian_filter(st, (0, inner, inner)) - gaussian_filter(st, (0, outer, outer))
        e = gaussian_filter(band * band, (0, inner, inner)).reshape(t, -1)
        features.append(e - e.mean(0))
    y = np.nan_to_num(np.asarray(robs, np.float32))
    y = y - y.mean(0)
    zl, ze = _maps(features, y, (h, w))
    null_l, null_e = _maps(features, np.roll(y, t // 2, axis=0), (h, w))  # responses that follow no stimulus
    excess = lambda z, null: (z.max(1) - null.max(1).mean()) / (null.max(1).std() + 1e-12)
    use_linear = excess(zl, null_l) >= excess(ze, null_e)
    return np.array([_refine(zl[i] if use_linear[i] else ze[i], (h, w)) for i in range(len(y.T))])


EYE_COLUMNS = ("eye_x", "eye_y")


def session_centers(session, eye_px_per_unit: float | None = None) -> np.ndarray:
    """:func:`estimate_centers` on a :class:`~neuroenc.data.sessions.Session`'s training split;
    with ``eye_px_per_unit``, on retinal coordinates from its ``eye_x``, ``eye_y`` behaviour
    columns times that factor."""
    frames = session.split_frames("train")
    gaze = None
    if eye_px_per_unit is not None:
        names = list(session.behavior_names)
        missing = [c for c in EYE_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"eye_px_per_unit: session {session.id!r} has no behaviour column {missing[0]!r} to "
                             f"take the gaze from (meta.json behavior_names: {names}); set it to null")
        gaze = np.asarray(session.behavior[frames][:, [names.index(c) for c in EYE_COLUMNS]]) * eye_px_per_unit
    return estimate_centers(session.stim[frames], session.robs[frames], np.asarray(session.trial[frames]),
                            session.frame_rate, gaze)
