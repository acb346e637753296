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


def estimate_centers(stim: np.ndarray, robs: np.ndarray, trial: np.ndarray, frame_rate: float) -> np.ndarray:
    """Receptive-field centres ``(N, 2)`` as (x, y) pixels from training frames: ``stim (T, H, W)``,
    responses ``robs (T, N)`` (NaN where invalid) and the ``trial (T,)`` of each frame."""
    stim = np.asarray(stim, np.float32)
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


def session_centers(session) -> np.ndarray:
    """:func:`estimate_centers` on a :class:`~neuroenc.data.sessions.Session`'s training split."""
    frames = session.split_frames("train")
    return estimate_centers(session.stim[frames], session.robs[frames], np.asarray(session.trial[frames]),
                            session.frame_rate)
