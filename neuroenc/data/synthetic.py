"""A simulated V1 with ground truth, written in the session format.

Each session: 1/f spatiotemporal noise movies (one per trial; or a mix of stimulus classes,
``data.simulation.stimuli``, :mod:`neuroenc.data.stimuli`, each trial's class in
``meta.json["trial_class"]``) seen through simulated eye movements; behaviour per frame (eye
x/y, running speed, pupil size); its own neurons, simple (linear) and complex (energy) cells
with Gabor receptive fields at random positions and sizes (down to ~1 px), biphasic temporal
kernels, a gain modulated by running and pupil, Poisson spikes. The true expected counts are
stored as ``rates.npy`` and the receptive-field parameters in ``meta.json["neurons"]``, so the
oracle bits per spike and RF recovery can be scored. Trials are split into train/val/test.

Time is physical: kernel durations in milliseconds, time constants in seconds, the movie's
temporal bandwidth and firing rates in Hz, so ``frame_rate`` changes the sampling and not the
biology. Sizes that describe the recording's layout (``trial_frames``, like ``data.window``)
stay in frames. Every conversion to frames is exact rational arithmetic rounded once
(:meth:`SimulationParams.frames`), which keeps the 30 Hz default's random draws and arithmetic,
and so its data, bit for bit what they were when these quantities were written in frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np

from neuroenc import atomic
from neuroenc.config.records import DEFAULT_STIMULI, SimulationParams
from neuroenc.data.sessions import SPLITS, write_session
from neuroenc.data.stimuli import MAKERS, class_plan, pink_noise_movie

BEHAVIOR_NAMES = ["eye_x", "eye_y", "running", "pupil"]
VERSION = 5  # part of the cache key: bump whenever the simulation itself changes

MOVIE_CUTOFF_HZ = 6.0  # the movies' temporal low-pass (1 / (1 + (f / 6 Hz)^2) in amplitude)
RUNNING_TAU_S = 3.0  # time constants of the running and pupil processes
PUPIL_TAU_S = 2.0
MICROSACCADE_CORRECTION = 0.75  # each microsaccade undoes this fraction of the eye's displacement from fixation


def cache_key(p: SimulationParams) -> str:
    """The simulated data's cache name: its parameters and the simulator's :data:`VERSION`."""
    blob = json.dumps({**p.described(), "version": VERSION}, sort_keys=True).encode()
    return hashlib.sha1(blob).hexdigest()[:10]


def smooth_walk(rng, n: int, tau: float, scale: float) -> np.ndarray:
    """An Ornstein-Uhlenbeck-like process with time constant ``tau`` frames and std ~``scale``."""
    a = np.exp(-1.0 / tau)
    noise = rng.standard_normal(n) * scale * np.sqrt(1 - a * a)
    x = np.empty(n)
    x[0] = rng.standard_normal() * scale
    for i in range(1, n):
        x[i] = a * x[i - 1] + noise[i]
    return x


def biphasic_kernel(rng, p: SimulationParams) -> np.ndarray:
    """``(p.kernel_taps,)`` difference of two gamma-like bumps, index 0 = zero lag, unit norm.

    The bumps' peaks are drawn in milliseconds (as fractions of ``p.kernel_ms``) and converted to
    frames, so the kernel is the same function of time at any frame rate.
    """
    tau = np.arange(p.kernel_taps, dtype=np.float64)
    length = Fraction(p.kernel_ms)
    p1 = rng.uniform(p.frames(length / 8), p.frames(length / 4))
    p2 = p1 + rng.uniform(p.frames(length / 6), p.frames(length / 3))
    g1 = (tau / p1) ** 2 * np.exp(-2 * (tau / p1 - 1))
    g2 = (tau / p2) ** 2 * np.exp(-2 * (tau / p2 - 1))
    k = g1 - rng.uniform(0.4, 0.8) * g2
    return k / np.linalg.norm(k)


def microsaccade_offsets(rng, drift: np.ndarray, per_frame: float, amplitude: float) -> np.ndarray:
    """``(n, 2)`` the eye's displacement by microsaccades, in pixels, for a ``(n, 2)`` drift.

    Piecewise constant: at each frame a jump with probability ``per_frame``, of ``amplitude``
    (+-50%) in a random direction minus ``MICROSACCADE_CORRECTION`` times the eye's displacement
    from fixation, as primates' microsaccades counter the drift and keep the eye near the target.
    """
    n = len(drift)
    at = np.flatnonzero(rng.random(n) < per_frame)
    angle = rng.uniform(0, 2 * np.pi, len(at))
    size = amplitude * rng.uniform(0.5, 1.5, len(at))
    after = np.zeros((len(at) + 1, 2))  # the displacement after each jump; row 0: before the first
    for j, t in enumerate(at):
        position = drift[t] + after[j]
        after[j + 1] = after[j] + size[j] * np.array([np.cos(angle[j]), np.sin(angle[j])]) \
            - MICROSACCADE_CORRECTION * position
    return after[np.searchsorted(at, np.arange(n), side="right")]


def eye_positions(rng, saccade_rng, n: int, p: SimulationParams) -> np.ndarray:
    """``(n, 2)`` eye position (x, y) in whole pixels within +-``p.max_eye_shift``: a slow drift
    drawn from ``rng``, plus microsaccades drawn from ``saccade_rng`` when ``p`` has them (a
    generator of their own, so data without them keeps its random stream)."""
    eye = np.stack([smooth_walk(rng, n, p.eye_tau_s * p.frame_rate, p.eye_drift_px) for _ in range(2)], 1)
    if p.microsaccade_rate_hz > 0:
        eye = eye + microsaccade_offsets(saccade_rng, eye, p.microsaccade_rate_hz / p.frame_rate, p.microsaccade_px)
    return np.clip(np.round(eye), -p.max_eye_shift, p.max_eye_shift)


def gabor(h: int, w: int, x0, y0, sigma, theta, wavelength, phase) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    xr = (xx - x0) * np.cos(theta) + (yy - y0) * np.sin(theta)
    r2 = (xx - x0) ** 2 + (yy - y0) ** 2
    g = np.exp(-r2 / (2 * sigma**2)) * np.cos(2 * np.pi * xr / wavelength + phase)
    return g - g.mean()


def repeat_plan(p: SimulationParams, index: int) -> tuple[np.ndarray, dict[str, list[int]]]:
    """``(movie shown in each trial, splits)`` when val and test movies are shown ``p.repeats``
    times: training movies once, the presentations interleaved in a random order. Drawn from a
    generator of its own, so the default data (no repeats) keeps its random stream."""
    rng = np.random.default_rng([p.seed, index, 1])
    order = rng.permutation(p.trials_train + p.trials_val + p.trials_test)
    split_of = {int(m): "train" for m in order[: p.trials_train]}
    split_of.update({int(m): "val" for m in order[p.trials_train : p.trials_train + p.trials_val]})
    split_of.update({int(m): "test" for m in order[p.trials_train + p.trials_val :]})
    shown = np.array([m for m in sorted(split_of) for _ in range(1 if split_of[m] == "train" else p.repeats)])
    movie_of_trial = shown[rng.permutation(len(shown))]
    splits = {s: [t for t, m in enumerate(movie_of_trial) if split_of[int(m)] == s] for s in SPLITS}
    return movie_of_trial, splits


def random_splits(rng, n_trials: int, p: SimulationParams) -> dict[str, list[int]]:
    """``p.trials_train``, ``p.trials_val`` and the rest of ``n_trials`` trials (shown once each)
    for train, val and test, in a random order drawn from ``rng``."""
    order = rng.permutation(n_trials)
    return {
        "train": sorted(order[: p.trials_train].tolist()),
        "val": sorted(order[p.trials_train : p.trials_train + p.trials_val].tolist()),
        "test": sorted(order[p.trials_train + p.trials_val :].tolist()),
    }


def session_id(index: int) -> str:
    """The id of the simulator's ``index``-th session."""
    return f"sim{index:02d}"


def simulate_session(p: SimulationParams, index: int) -> dict:
    rng = np.random.default_rng([p.seed, index])
    n_movies = p.trials_train + p.trials_val + p.trials_test
    H, W = p.height, p.width
    n = int(rng.integers(p.neurons_min, p.neurons_max + 1))

    cutoff = float(Fraction(MOVIE_CUTOFF_HZ) / Fraction(p.frame_rate))  # cycles per frame, exact as in frames()
    movies = [pink_noise_movie(rng, p.trial_frames, H, W, cutoff) for _ in range(n_movies)]
    movie_of_trial, splits = (np.arange(n_movies), None) if p.repeats == 1 else repeat_plan(p, index)
    n_trials = len(movie_of_trial)
    movie_class = None
    if p.stimuli != DEFAULT_STIMULI:
        # every pink-noise movie is still drawn from rng, so a mix keeps the default's neurons and
        # eye movements; the other classes replace theirs, drawn from a generator of their own,
        # which also splits the trials, so that every split shows each class its share
        class_rng = np.random.default_rng([p.seed, index, 3])
        splits = splits or random_splits(class_rng, n_trials, p)
        movie_class = class_plan(p.stimuli, [sorted({int(movie_of_trial[t]) for t in splits[s]}) for s in SPLITS],
                                 n_movies, class_rng)
        movies = [m if c == "pink_noise" else MAKERS[c](class_rng, p) for m, c in zip(movies, movie_class)]
    T = n_trials * p.trial_frames
    stim = np.concatenate([movies[m] for m in movie_of_trial])
    trial = np.repeat(np.arange(n_trials), p.trial_frames)

    eye = eye_positions(rng, np.random.default_rng([p.seed, index, 2]), T, p)
    running = np.maximum(smooth_walk(rng, T, RUNNING_TAU_S * p.frame_rate, 1.0) + 0.3, 0.0) * 10.0  # cm/s, bouts and rests
    pupil = 0.5 * np.tanh(smooth_walk(rng, T, PUPIL_TAU_S * p.frame_rate, 1.0) + 0.05 * running) + 1.0
    behavior = np.stack([eye[:, 0], eye[:, 1], running, pupil], 1).astype(np.float32)

    # the retina sees the screen shifted by the eye position (grey beyond the screen's edge)
    m = p.max_eye_shift
    padded = np.pad(stim.astype(np.float32) - 128.0, ((0, 0), (m, m), (m, m)))
    retina = np.empty((T, H, W), np.float32)
    for dy in range(-m, m + 1):
        for dx in range(-m, m + 1):
            sel = (eye[:, 1] == dy) & (eye[:, 0] == dx)
            if sel.any():
                retina[sel] = padded[sel, m + dy : m + dy + H, m + dx : m + dx + W]
    retina /= 40.0

    neurons = []
    filters_even, filters_odd = [], []
    for _ in range(n):
        sigma = float(np.exp(rng.uniform(np.log(p.rf_sigma_min_px), np.log(min(p.rf_sigma_max_px, min(H, W) / 6)))))
        mx, my = min(2 + sigma, W / 2 - 1), min(2 + sigma, H / 2 - 1)  # keep RFs off the edges
        x0 = float(rng.uniform(mx, W - 1 - mx))
        y0 = float(rng.uniform(my, H - 1 - my))
        theta = float(rng.uniform(0, np.pi))
        wavelength = float(max(p.min_wavelength_px, 3.0 * sigma * rng.uniform(0.8, 1.2)))
        phase = float(rng.uniform(0, 2 * np.pi))
        kind = "complex" if rng.random() < p.complex_fraction else "simple"
        filters_even.append(gabor(H, W, x0, y0, sigma, theta, wavelength, phase))
        filters_odd.append(gabor(H, W, x0, y0, sigma, theta, wavelength, phase + np.pi / 2))
        neurons.append(dict(x=x0, y=y0, sigma=sigma, rf_size=sigma, theta=theta, wavelength=wavelength,
                            phase=phase, type=kind))
    fe = np.stack(filters_even, -1).reshape(H * W, n)
    fo = np.stack(filters_odd, -1).reshape(H * W, n)
    flat = retina.reshape(T, H * W)
    se = flat @ (fe / np.linalg.norm(fe, axis=0))
    so = flat @ (fo / np.linalg.norm(fo, axis=0))

    rates = np.zeros((T, n), np.float32)
    run_z = (running - running.mean()) / running.std()
    pup_z = (pupil - pupil.mean()) / pupil.std()
    rate_min, rate_max = (float(Fraction(r) / Fraction(p.frame_rate)) for r in (p.rate_min_hz, p.rate_max_hz))
    for i, nd in enumerate(neurons):
        k = biphasic_kernel(rng, p)
        de = np.zeros(T)
        do = np.zeros(T)
        for a, b in zip(range(0, T, p.trial_frames), range(p.trial_frames, T + 1, p.trial_frames)):
            # causal: drive(t) = sum_tau k[tau] * s(t - tau), restarting each trial
            de[a:b] = np.convolve(se[a:b, i], k)[: b - a]
            do[a:b] = np.convolve(so[a:b, i], k)[: b - a]
        drive = np.sqrt(de**2 + do**2) if nd["type"] == "complex" else de
        z = (drive - drive.mean()) / (drive.std() + 1e-9)
        beta_run, beta_pupil = rng.normal(0.25, 0.15), rng.normal(0.0, 0.15)
        gain = np.exp(beta_run * run_z + beta_pupil * pup_z)
        r = np.log1p(np.exp(2.0 * z - 1.0)) * gain
        target = float(np.exp(rng.uniform(np.log(rate_min), np.log(rate_max))))  # mean spikes per frame
        r *= target / r.mean()
        rates[:, i] = r
        nd.update(beta_running=float(beta_run), beta_pupil=float(beta_pupil), mean_rate=target,
                  temporal_kernel=k.round(5).tolist())
    robs = rng.poisson(rates).astype(np.float32)
    dfs = (rng.random((T, n)) >= p.invalid_fraction).astype(np.uint8)

    extra_meta: dict = {"neurons": neurons}
    if splits is None:
        splits = random_splits(rng, n_trials, p)
    if p.repeats > 1:
        extra_meta["trial_stimulus"] = {str(t): f"movie{m:03d}" for t, m in enumerate(movie_of_trial)}
    if movie_class is not None:
        extra_meta["trial_class"] = {str(t): movie_class[m] for t, m in enumerate(movie_of_trial)}
    return dict(session_id=session_id(index), stim=stim, robs=robs, behavior=behavior, trial=trial,
                dfs=dfs, rates=rates, splits=splits, behavior_names=BEHAVIOR_NAMES,
                frame_rate=p.frame_rate, provenance={"source": "neuroenc.data.synthetic", "simulation": p.described()},
                extra_meta=extra_meta)


def simulate(root: str | os.PathLike, p: SimulationParams) -> list[Path]:
    """Write ``p.num_sessions`` sessions under ``root`` (which must not exist yet)."""
    root = Path(root)
    return [write_session(root / session_id(i), **simulate_session(p, i)) for i in range(p.num_sessions)]


def ensure_simulated(cache_dir: str | os.PathLike, p: SimulationParams) -> Path:
    """The dataset for ``p`` under ``cache_dir``, generated on first use.

    Generation writes to a temporary directory that is renamed into place, so concurrent sweep
    jobs either see a complete dataset or make their own and lose the rename race harmlessly.
    """
    cache_dir = Path(cache_dir).expanduser().resolve()
    final = cache_dir / f"synthetic-{cache_key(p)}"
    if (final / "COMPLETE").exists():
        return final
    tmp = atomic.temp_dir_beside(final)
    try:
        simulate(tmp / "sessions", p)
        for d in sorted((tmp / "sessions").iterdir()):
            os.replace(d, tmp / d.name)
        (tmp / "sessions").rmdir()
        (tmp / "COMPLETE").write_text(json.dumps(p.described()))
        atomic.publish_dir(tmp, final)  # loses harmlessly to a job that published it first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
