"""Receptive-field centres estimated from a session's training data, to start readouts there.

A Gaussian readout learns where its neuron's receptive field is only from features that already
predict the neuron, and features predict it only where the readout reads: started away from its
cell, a readout has nothing to follow. This module finds each neuron's cell first, with
spike-triggered maps of the training split that take seconds with numpy:

- linear: the response-weighted average of the stimulus filtered in time with a biphasic kernel,
  squared (simple cells; the sign does not matter for the position);
- energy: the same with the stimulus band-passed (differences of Gaussians at three scales),
  filtered in time and squared first (complex cells, whose linear average is flat).

A map is only as sharp as its kernel matches the cell's timing: filtered with a kernel that peaks
where the cell's response has already turned, a fast cell's map cancels. So each neuron's peak
latency is estimated along with its map: the maps are made for a family of kernels of one shape
stretched in time (positive lobe peaking at 30 to 90 ms, :data:`LATENCY_SCALES`), and the
neuron's latency and kind (linear or energy) are the ones whose map stands furthest above the
same map for responses shifted in time by half the split (which no cell follows). Its centre is
that map's peak, refined to a fraction of a pixel. Sizes are in pixels and milliseconds, so the
estimate works at any frame rate. Only valid bins count (finite responses, 1 in ``dfs``).

Where the eye position is known in pixels of the frame (``gaze_px``), the maps are taken on the
stimulus as the retina saw it: each frame shifted by that frame's gaze. A cell's receptive field
is fixed on the retina, not on the screen, so fixational eye movements blur screen-coordinate
maps (README, "Readouts start on their cells").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft
from scipy.ndimage import gaussian_filter

from neuroenc.data.sessions import valid_bins

BANDS_PX = ((0.5, 1.5), (1.0, 3.0), (2.0, 5.0))  # inner and outer sigma of each difference of Gaussians
SMOOTH_PX = 1.0
# The kernel at scale 1: positive lobe peaking at 75 ms, negative at 190 ms, 300 ms long, as V1
# responds; the scales stretch it for faster and slower cells (peaks at 30, 52 and 90 ms). More
# scales are more chances for a weak cell's noise peak to beat its real one.
PEAK_MS, REBOUND_MS, KERNEL_MS = 75.0, 190.0, 300.0
LATENCY_SCALES = (0.4, 0.7, 1.2)


@dataclass
class ReceptiveFieldEstimate:
    """Per neuron: ``centers (N, 2)`` (x, y) pixels, ``latency_ms (N,)`` the positive-lobe peak of
    the kernel whose map was used, and ``linear (N,)`` True where the linear map was (False: energy)."""

    centers: np.ndarray
    latency_ms: np.ndarray
    linear: np.ndarray


def temporal_kernel(frame_rate: float, scale: float = 1.0) -> np.ndarray:
    """Weights of lags ``0 .. scale * KERNEL_MS`` (index = lag in frames) of a biphasic V1 impulse
    response whose positive lobe peaks at ``scale * PEAK_MS``."""
    lag_ms = np.arange(int(KERNEL_MS * scale * frame_rate / 1000) + 1) * 1000.0 / frame_rate
    bump = lambda centre, width: np.exp(-0.5 * ((lag_ms - centre * scale) / (width * scale)) ** 2)
    return bump(PEAK_MS, 35.0) - 0.45 * bump(REBOUND_MS, 45.0)


class CausalFilter:
    """Causal convolution over time of ``(T, P)`` signals with any kernel of up to ``max_taps``
    lags, never across trials: one FFT of each signal, then one inverse per kernel. Each trial is
    preceded by ``max_taps`` zeros, so no lag reaches into the previous trial (or wraps around)."""

    def __init__(self, trial: np.ndarray, max_taps: int):
        trial = np.asarray(trial)
        segment = np.cumsum(np.r_[True, trial[1:] != trial[:-1]])  # 1 for the first trial's frames
        self.rows = np.arange(len(trial)) + segment * max_taps
        self.n = scipy.fft.next_fast_len(int(self.rows[-1]) + 1, real=True)

    def spectrum(self, x: np.ndarray) -> np.ndarray:
        padded = np.zeros((self.n,) + x.shape[1:], x.dtype)
        padded[self.rows] = x
        return scipy.fft.rfft(padded, axis=0, workers=-1)

    def apply(self, spectrum: np.ndarray, kernel: np.ndarray) -> np.ndarray:
        k = scipy.fft.rfft(kernel.astype(np.float32), self.n)
        return scipy.fft.irfft(spectrum * k.reshape(-1, *[1] * (spectrum.ndim - 1)), self.n, axis=0,
                               workers=-1)[self.rows]


def _zmaps(maps: np.ndarray, shape: tuple[int, int], smooth_px: float = SMOOTH_PX) -> np.ndarray:
    """``(N, H*W)`` maps smoothed and z-scored over the frame (median-centred: robust to the peak)."""
    m = gaussian_filter(maps.reshape(-1, *shape), (0, smooth_px, smooth_px)).reshape(len(maps), -1)
    return (m - np.median(m, 1, keepdims=True)) / (m.std(1, keepdims=True) + 1e-12)


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


def _responses(robs: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """``robs (T, N)`` centred on each neuron's mean over its valid bins, 0 in invalid ones (which
    then add nothing to a map)."""
    robs = np.asarray(robs, np.float32)
    valid = np.isfinite(robs) if valid is None else np.asarray(valid, bool) & np.isfinite(robs)
    y = np.where(valid, robs, 0.0)
    mean = y.sum(0) / np.maximum(valid.sum(0), 1)
    return np.where(valid, y - mean, 0.0).astype(np.float32)


def _excess(z: np.ndarray, null: np.ndarray) -> np.ndarray:
    """How far each neuron's map peak stands above the null maps' peaks, in their spread."""
    return (z.max(1) - null.max(1).mean()) / (null.max(1).std() + 1e-12)


def estimate_receptive_fields(stim: np.ndarray, robs: np.ndarray, trial: np.ndarray, frame_rate: float,
                              gaze_px: np.ndarray | None = None,
                              valid: np.ndarray | None = None) -> ReceptiveFieldEstimate:
    """Centres, peak latencies and map kinds (see :class:`ReceptiveFieldEstimate`) from training
    frames: ``stim (T, H, W)``, responses ``robs (T, N)``, the ``trial (T,)`` of each frame, where
    known the eye position ``gaze_px (T, 2)`` in pixels (the maps are then retinal), and the valid
    bins ``valid (T, N)`` (default: where ``robs`` is finite)."""
    stim = np.asarray(stim, np.float32)
    if gaze_px is not None:
        stim = retinal_stimulus(stim, gaze_px)
    stim = (stim - stim.mean(dtype=np.float64)) / (stim.std(dtype=np.float64) + 1e-12)
    t, h, w = stim.shape
    y = _responses(robs, valid)
    n = y.shape[1]
    # the null's responses beside the real ones: one product per feature gives both maps
    both = np.concatenate([y, np.roll(y, t // 2, axis=0)], 1).T
    kernels = [temporal_kernel(frame_rate, s) for s in LATENCY_SCALES]
    causal = CausalFilter(trial, max(len(k) for k in kernels))
    # spatial band-pass commutes with filtering in time, so each band is made once, not per kernel
    bands = [gaussian_filter(stim, (0, inner, inner)) - gaussian_filter(stim, (0, outer, outer))
             for inner, outer in BANDS_PX]
    spectra = [causal.spectrum(x.reshape(t, -1)) for x in (stim, *bands)]
    del bands
    shape = (h, w)
    zmaps, excess = [], []  # per kernel: the (2, N, H*W) linear and energy maps, and their (2, N) excess
    for k in kernels:
        lin = both @ causal.apply(spectra[0], k)
        z_lin = _zmaps(lin**2, shape)
        # the energy is smoothed (inner sigma) on the map, not on every frame: the same, cheaper
        z_energy = np.max([_zmaps(both @ np.square(causal.apply(spec, k)), shape, float(np.hypot(SMOOTH_PX, inner)))
                           for spec, (inner, _) in zip(spectra[1:], BANDS_PX)], 0)
        zmaps.append(np.stack([z_lin[:n], z_energy[:n]]))
        excess.append([_excess(z_lin[:n], z_lin[n:]), _excess(z_energy[:n], z_energy[n:])])
    choice = np.asarray(excess).reshape(-1, n).argmax(0)  # over (kernel, kind) pairs
    kernel, kind = np.divmod(choice, 2)
    centers = np.array([_refine(zmaps[kernel[i]][kind[i], i], shape) for i in range(n)]).reshape(n, 2)
    return ReceptiveFieldEstimate(centers, PEAK_MS * np.asarray(LATENCY_SCALES)[kernel], kind == 0)


def estimate_centers(stim: np.ndarray, robs: np.ndarray, trial: np.ndarray, frame_rate: float,
                     gaze_px: np.ndarray | None = None, valid: np.ndarray | None = None) -> np.ndarray:
    """Receptive-field centres ``(N, 2)`` as (x, y) pixels: :func:`estimate_receptive_fields`."""
    return estimate_receptive_fields(stim, robs, trial, frame_rate, gaze_px, valid).centers


EYE_COLUMNS = ("eye_x", "eye_y")


def session_receptive_fields(session, eye_px_per_unit: float | None = None) -> ReceptiveFieldEstimate:
    """:func:`estimate_receptive_fields` on a :class:`~neuroenc.data.sessions.Session`'s training
    split, on its valid bins (``dfs``); with ``eye_px_per_unit``, on retinal coordinates from its
    ``eye_x``, ``eye_y`` behaviour columns times that factor."""
    frames = session.split_frames("train")
    gaze = None
    if eye_px_per_unit is not None:
        names = list(session.behavior_names)
        missing = [c for c in EYE_COLUMNS if c not in names]
        if missing:
            raise ValueError(f"eye_px_per_unit: session {session.id!r} has no behaviour column {missing[0]!r} to "
                             f"take the gaze from (meta.json behavior_names: {names}); set it to null")
        gaze = np.asarray(session.behavior[frames][:, [names.index(c) for c in EYE_COLUMNS]]) * eye_px_per_unit
    robs = np.asarray(session.robs[frames])
    valid = valid_bins(robs, None if session.dfs is None else np.asarray(session.dfs[frames]))
    return estimate_receptive_fields(session.stim[frames], robs, np.asarray(session.trial[frames]),
                                     session.frame_rate, gaze, valid)


def session_centers(session, eye_px_per_unit: float | None = None) -> np.ndarray:
    """The centres of :func:`session_receptive_fields`, ``(N, 2)`` (x, y) pixels."""
    return session_receptive_fields(session, eye_px_per_unit).centers
