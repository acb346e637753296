"""The simulator's stimulus classes: one ``(t, h, w)`` uint8 movie per trial, drawn per class.

Every class has pink noise's contrast: mean 128 and standard deviation 40 over the movie before
clipping to 0..255 (:func:`to_uint8`), so no class drives the cells harder by contrast alone.

- ``pink_noise``: 1/f^2 spatial noise low-passed in time (:func:`pink_noise_movie`), the default;
- ``gabor_noise``: sparse Gabor noise: Gabor patches at random places, orientations, wavelengths
  (up to half the frame's shorter side) and phases, each shown for :data:`GABOR_LIFE_S`, about
  :data:`GABOR_DENSITY` of them at a time;
- ``gratings``: full-field drifting sine gratings, a new orientation, wavelength and speed every
  :data:`GRATING_S`;
- ``flashed_images``: static 1/f^2 images flashed for :data:`FLASH_S`, grey for :data:`GREY_S`
  between them.

Times are in seconds and converted at the frame rate (rounded, at least one frame), wavelengths
in pixels from ``min_wavelength_px`` (the simulated cells' finest) up to the frame's shorter side.
"""

from __future__ import annotations

import numpy as np

from neuroenc.config.records import SimulationParams

GABOR_LIFE_S = 0.1
GABOR_DENSITY = 5.0  # patches on screen at a time, on average
GRATING_S = 1.0
GRATING_HZ = (1.0, 4.0)  # drift temporal frequency, uniform
FLASH_S, GREY_S = 0.25, 0.25


def to_uint8(movie: np.ndarray) -> np.ndarray:
    """``movie`` standardised to mean 128 and std 40, clipped to uint8 (a flat movie: grey)."""
    std = movie.std()
    z = (movie - movie.mean()) / std if std > 0 else np.zeros_like(movie)
    return np.clip(128 + 40 * z, 0, 255).astype(np.uint8)


def pink_noise_movie(rng: np.random.Generator, t: int, h: int, w: int, cutoff: float, alpha: float = 2.0) -> np.ndarray:
    """``(t, h, w)`` uint8 noise with a 1/f^alpha power spectrum in space and a low-pass in time
    with corner ``cutoff`` in cycles per frame."""
    ft = np.fft.fftfreq(t)[:, None, None]
    fy = np.fft.fftfreq(h)[None, :, None]
    fx = np.fft.rfftfreq(w)[None, None, :]
    fs = np.sqrt(fx**2 + fy**2)
    amp = 1.0 / np.maximum(fs, 1.0 / max(h, w)) ** (alpha / 2) / (1.0 + (np.abs(ft) / cutoff) ** 2)
    spec = amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape))
    movie = np.fft.irfftn(spec, s=(t, h, w))
    movie = (movie - movie.mean()) / movie.std()
    return np.clip(128 + 40 * movie, 0, 255).astype(np.uint8)


def _frames(p: SimulationParams, seconds: float) -> int:
    return max(1, round(seconds * p.frame_rate))


def _wavelengths(rng: np.random.Generator, p: SimulationParams, n: int, fraction: float = 1.0) -> np.ndarray:
    """``n`` wavelengths in pixels, log-uniform from ``p.min_wavelength_px`` to ``fraction`` of the
    frame's shorter side."""
    top = max(p.min_wavelength_px, fraction * min(p.height, p.width))
    return np.exp(rng.uniform(np.log(p.min_wavelength_px), np.log(top), n))


def gabor_noise_movie(rng: np.random.Generator, p: SimulationParams) -> np.ndarray:
    """``(p.trial_frames, H, W)`` uint8 sparse Gabor noise; an envelope's std is a third of its
    wavelength, as the simulated cells' receptive fields are."""
    t, h, w = p.trial_frames, p.height, p.width
    life = _frames(p, GABOR_LIFE_S)
    n = rng.poisson(GABOR_DENSITY * (t + life - 1) / life)  # onsets from before the first frame, so it starts full
    onset = rng.integers(-(life - 1), t, n)
    x, y = rng.uniform(0, w, n), rng.uniform(0, h, n)
    theta, phase = rng.uniform(0, np.pi, n), rng.uniform(0, 2 * np.pi, n)
    wavelength = _wavelengths(rng, p, n, fraction=0.5)  # local patches, not full-field
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    movie = np.zeros((t, h, w))
    for i in range(n):
        dx, dy = xx - x[i], yy - y[i]
        along = dx * np.cos(theta[i]) + dy * np.sin(theta[i])
        envelope = np.exp(-(dx**2 + dy**2) / (2 * (wavelength[i] / 3) ** 2))
        movie[max(onset[i], 0) : onset[i] + life] += envelope * np.cos(2 * np.pi * along / wavelength[i] + phase[i])
    return to_uint8(movie)


def gratings_movie(rng: np.random.Generator, p: SimulationParams) -> np.ndarray:
    """``(p.trial_frames, H, W)`` uint8 drifting sine gratings, a new one every :data:`GRATING_S`."""
    t, h, w = p.trial_frames, p.height, p.width
    every = _frames(p, GRATING_S)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    movie = np.empty((t, h, w))
    for start in range(0, t, every):
        theta, phase = rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
        wavelength = _wavelengths(rng, p, 1)[0]
        cycles_per_frame = rng.uniform(*GRATING_HZ) / p.frame_rate
        along = xx * np.cos(theta) + yy * np.sin(theta)
        for k in range(start, min(start + every, t)):
            movie[k] = np.sin(2 * np.pi * (along / wavelength - cycles_per_frame * (k - start)) + phase)
    return to_uint8(movie)


def flashed_images_movie(rng: np.random.Generator, p: SimulationParams) -> np.ndarray:
    """``(p.trial_frames, H, W)`` uint8: 1/f^2 images for :data:`FLASH_S`, then grey for
    :data:`GREY_S`, from the trial's first frame."""
    t, h, w = p.trial_frames, p.height, p.width
    on, off = _frames(p, FLASH_S), _frames(p, GREY_S)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    amp = 1.0 / np.maximum(np.sqrt(fx**2 + fy**2), 1.0 / max(h, w))  # 1/f amplitude: 1/f^2 power, as pink noise
    movie = np.zeros((t, h, w))
    for start in range(0, t, on + off):
        image = np.fft.irfft2(amp * (rng.standard_normal(amp.shape) + 1j * rng.standard_normal(amp.shape)), s=(h, w))
        movie[start : start + on] = (image - image.mean()) / image.std()
    return to_uint8(movie)


MAKERS = {"gabor_noise": gabor_noise_movie, "gratings": gratings_movie, "flashed_images": flashed_images_movie}


def class_plan(stimuli: list[str], groups: list[list[int]], n: int, rng: np.random.Generator) -> list[str]:
    """The class of each of ``n`` movies. Within each group of movie indices (a split's), each
    class gets a share as near its share of the names in ``stimuli`` as whole movies allow (largest
    remainders, ties drawn at random), in a random order; all drawn from ``rng``."""
    out = [""] * n
    for group in groups:
        names = [str(k) for k in rng.permutation(sorted(set(stimuli)))]  # who wins a tie
        share = np.array([stimuli.count(k) for k in names], np.float64) / len(stimuli) * len(group)
        count = np.floor(share).astype(int)
        count[np.argsort(count - share, kind="stable")[: len(group) - count.sum()]] += 1
        for movie, name in zip(group, rng.permutation(np.repeat(names, count))):
            out[movie] = str(name)
    return out
