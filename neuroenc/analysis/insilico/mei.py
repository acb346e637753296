"""Most exciting inputs (MEIs): for each neuron, the short movie of fixed contrast that drives its
predicted rate at the movie's last frame highest, found by gradient ascent from random starts.

The optimisation (Walker et al. 2019, as open-retina and VisionCore's ``eval/mei.py`` do it):

- **Contrast**: after every step the stimulus is scaled back to a fixed L2 norm,
  ``contrast * sqrt(T * h * w)`` over the ``h x w`` patch the neuron can see (see :func:`patches`),
  grey beyond it; ``contrast`` 1 is the training stimulus's RMS (1 per pixel and frame in model
  units) over the whole patch. The default is 0.1: an MEI puts all its energy where the neuron
  looks (a few pixels and frames of a 26 x 26 x 12 patch), so at ``contrast`` 1 its pixels reach
  ~17 training s.d. and the model is read far outside anything it was trained on; at 0.1 they stay
  within the training stimulus's range (|x| < 3.2 for 8-bit frames; measured max ~2.5-3.4). On the
  default model this matters: simple cells' MEIs correlate with their true Gabors at a median
  0.33 at ``contrast`` 1 and ~0.6 at 0.1 (clipping pixels to the range at ``contrast`` 1 did worse,
  0.07), and the starts agree (0.99 against 0.66).
- **Jitter**: each step the stimulus may be rolled by a random whole-pixel shift of up to
  ``jitter`` px (one shift for the batch) before the model sees it, so the optimum drives the
  neuron around its position rather than being a pixel-exact pattern. Off by default: this data's
  receptive fields are small (sigma down to 0.7 px, wavelengths down to 4 px, so 1 px is a quarter
  cycle), and 1 px of jitter lowered the simple cells' median correlation with the true Gabor
  from 0.60 to 0.46 (24 cells of the default model).
- **Smoothness**: the gradient is blurred by a Gaussian of ``blur`` px (space only) before the
  step, which damps the highest spatial frequencies, which the training stimulus (1/f^2 noise)
  barely contains and the model is free to extrapolate in. 0.5 px keeps 73% of the gradient at
  the simulator's shortest wavelength (4 px) per step; as each step's gradient is normalised this
  slows fine structure, it does not forbid it (measured: 0.60 with it, 0.56 without).
- **Steps**: normalised gradient ascent, the step's RMS per pixel falling from ``lr`` to
  ``lr / 10`` times the stimulus's (cosine), ``steps`` 8 by default (16 changed the median
  correlation by < 0.05 and cost twice as much); from ``starts`` white-noise starts of the same
  contrast, whose rates are the neuron's rate on white noise.

Cost: each step is a forward and backward pass of the model on ``T`` frames per neuron and start,
the input's gradient only. The window is the model's temporal reach (``frames``, default 12: the
default frontend's 12 taps hold 99.5% of the input gradient's energy), not the training window. A
static image times a temporal profile would not be cheaper: the model runs on all ``T`` frames
either way. What makes it affordable is the patch: a convnet with local receptive fields, read at
one point, sees only ~24 x 24 px of a 36 x 64 frame, and on that patch (with the readout moved to
the neuron's place in it) the rates are those of the full frame with grey outside, exactly
(checked at run time), at a quarter of the cost. All neurons x starts of a probe are one batch
(in eval mode the elements are independent); each element's objective is its own neuron's rate.
On the default model (215 neurons, 2 starts, 8 steps) that is ~95 CPU-s: 144 s of wall time on a
2-core machine shared with three other jobs, so ~50-60 s on two free cores.

With truth (simulated data), the spatial MEI (the best start's frame with the most energy) is
compared to the neuron's true even Gabor, see :func:`gabor_correlations`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import torch
import torch.nn.functional as F

from neuroenc.analysis.insilico.probe import Probe, Result, finite_median
from neuroenc.data.synthetic import gabor
from neuroenc.model.protocols import ConvNet

log = logging.getLogger(__name__)

FRAMES = 12  # the default model's temporal reach: its frontend's taps at 30 Hz
PHASES = 36  # phases tried for the best-phase Gabor correlation (10 degree steps)


@dataclass
class Patches:
    """Where each neuron's stimulus lives: ``origin (n, 2)`` its top-left pixel (y, x) on the frame
    and ``size (h, w)``, the same for all. ``target (n, 2)``: the neuron's readout position in the
    patch's grid coordinates (x, y), where the model is read on the patch alone; None when the patch
    is the whole frame and the model runs as trained."""

    origin: np.ndarray
    size: tuple[int, int]
    target: torch.Tensor | None


@dataclass
class Meis:
    """What :func:`optimise` found, per neuron (``n``) and start (``s``).

    ``stimuli (n, s, T, h, w)``: the MEIs on each neuron's patch (:class:`Patches`), index 0 the
    oldest frame; ``rates (n, s)`` at the last frame; ``noise_rates (n, s)`` the rates on the white
    noise each start began from; ``best (n,)`` the start with the highest rate; ``spatial (n, H, W)``
    the best start's frame with the most energy, on the full frame (grey beyond the patch);
    ``peak_lag (n,)`` that frame's lag in frames before the last; ``agreement (n,)`` the mean
    pairwise correlation of the starts' MEIs (NaN with one start)."""

    stimuli: np.ndarray
    patches: Patches
    rates: np.ndarray
    noise_rates: np.ndarray
    best: np.ndarray
    spatial: np.ndarray
    peak_lag: np.ndarray
    agreement: np.ndarray


# ------------------------------------------------------------------------------------ patches


def _whole_frame(probe: Probe) -> Patches:
    return Patches(np.zeros((len(probe.neurons), 2), int), tuple(probe.frame_shape), None)  # type: ignore[arg-type]


def _reach(encoder, behavior: torch.Tensor, frame_shape: tuple[int, int], frames: int, device) -> list[tuple[int, int]] | None:
    """The pixels that reach the centre cell of the model's feature map, relative to that cell's
    centre: ``[(lo_y, hi_y), (lo_x, hi_x)]``, from where the gradient is not exactly zero; None when
    they reach a frame edge (no evidence that the reach is local)."""
    grid = encoder.grid
    stim = torch.randn(1, 1, frames, *frame_shape, device=device, requires_grad=True)
    features = encoder.steps(stim, behavior)
    cell = (features.shape[-2] // 2, features.shape[-1] // 2)
    (grad,) = torch.autograd.grad(features[0, :, -1, cell[0], cell[1]].sum(), stim)
    support = grad[0, 0].abs().sum(0).cpu().numpy() != 0
    out = []
    for axis, size in enumerate(frame_shape):
        hit = np.flatnonzero(support.any(1 - axis))
        centre = grid.offset[axis] + cell[axis] * grid.step[axis]
        if hit.size == 0 or hit[0] == 0 or hit[-1] == size - 1:
            return None
        out.append((int(hit[0] - math.floor(centre)), int(hit[-1] - math.floor(centre))))
    return out


def _positions(readout) -> torch.Tensor:
    """``(N, 2)`` where a positional readout reads each neuron in eval mode, in grid units (x, y)."""
    return cast(torch.Tensor, readout.mean).clamp(-1, 1)


def patches(probe: Probe, frames: int = FRAMES) -> Patches:
    """The smallest patch each analysed neuron's rate depends on, for a stimulus of ``frames`` frames.

    Measured, not assumed: the pixels whose gradient reaches the feature map's centre cell give the
    convnet's reach; a neuron reads the two cells around its readout position (at fixation, with the
    shifter's displacement), so its patch spans both cells' reach, aligned to the feature map's
    stride so that the patch's cells are the frame's. The whole frame when the model has no
    positional readout or feature grid, strides time, reaches a frame edge from the centre, or
    moves each frame by its gaze (``gaze=per_frame``: a patch's edge would move with the gaze).
    """
    encoder = probe.model.encoder
    readout = encoder.readout(probe.session_id)
    grid = encoder.grid
    whole = _whole_frame(probe)
    if grid is None or not hasattr(readout, "mean") or encoder.temporal_stride != 1 or encoder.gaze is not None:
        return whole
    steps = [float(s) for s in grid.step]
    if any(s != round(s) for s in steps):
        return whole
    behavior = probe.behavior(1, frames)
    with torch.enable_grad():
        reach = _reach(encoder, behavior, probe.frame_shape, frames, probe.device)
    if reach is None:
        return whole
    size = []
    for (lo, hi), step, dim in zip(reach, steps, probe.frame_shape):
        need = hi - lo + 1 + 2 * int(step)  # both cells' reach, and room to align the origin
        need += (dim - need) % int(step)  # dim - size a multiple of the stride: any aligned origin fits
        size.append(min(need, dim))
    if size == list(probe.frame_shape):
        return whole
    patch_grid = cast(ConvNet, encoder.convnet).feature_grid((size[0], size[1]))
    if tuple(patch_grid.step) != tuple(grid.step) or tuple(patch_grid.offset) != tuple(grid.offset):
        return whole
    with torch.no_grad():
        neurons = torch.as_tensor(probe.neurons, device=probe.device)
        position = _positions(readout)[neurons]  # (n, 2) grid x, y
        shift = encoder.shift(behavior, frames, probe.session_id)
        if shift is not None:
            position = (position + shift[0, -1]).clamp(-1, 1)
        pixels = grid.to_pixels(position.double()).cpu().numpy()  # (n, 2) x, y
    origin = np.zeros((len(probe.neurons), 2), int)
    for axis in range(2):  # y, x
        step, dim, lo = int(steps[axis]), probe.frame_shape[axis], reach[axis][0]
        cell = grid.offset[axis] + np.floor((pixels[:, 1 - axis] - grid.offset[axis]) / step) * step
        start = np.floor((np.floor(cell) + lo) / step) * step
        origin[:, axis] = np.clip(start, 0, dim - size[axis]).astype(int)
    local = torch.as_tensor(pixels - origin[:, ::-1], dtype=torch.float64)
    target = patch_grid.to_grid(local).float().to(probe.device)
    return Patches(origin, (size[0], size[1]), target)


def embed(stim: torch.Tensor, origin: np.ndarray, frame_shape: tuple[int, int]) -> torch.Tensor:
    """``stim (B, ..., h, w)`` patches -> ``(B, ..., H, W)`` frames, grey (0) beyond each patch,
    patch b at ``origin[b]`` (y, x)."""
    h, w = stim.shape[-2:]
    out = stim.new_zeros(*stim.shape[:-2], *frame_shape)
    for b, (y, x) in enumerate(origin):
        out[b, ..., y : y + h, x : x + w] = stim[b]
    return out


class Objective:
    """Each batch element's neuron's rate at the last frame of its stimulus, differentiable:
    ``objective(stim (B, T, h, w), which (B,))`` -> ``(B,)``, ``which`` indexing ``probe.neurons``
    and the :class:`Patches` rows."""

    def __init__(self, probe: Probe, patches: Patches):
        self.probe, self.patches = probe, patches
        self.neurons = torch.as_tensor(probe.neurons, device=probe.device)

    def __call__(self, stim: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        probe, b, t = self.probe, stim.shape[0], stim.shape[1]
        neuron = self.neurons[which]
        behavior = probe.behavior(b, t)
        if self.patches.target is None:
            out = probe.model(stim[:, None], behavior, probe.session_id)[:, -1]
            return out[torch.arange(b, device=out.device), neuron]
        encoder = probe.model.encoder
        readout = encoder.readout(probe.session_id)
        features = encoder.steps(stim[:, None], behavior)[:, :, -1:]  # the last frame is all we read
        # moves every neuron of element b by the same amount: to its neuron's place in the patch
        shift = (self.patches.target[which] - _positions(readout)[neuron])[:, None]
        out = readout(features, shift)[:, -1]
        return out[torch.arange(b, device=out.device), neuron]

    @torch.no_grad()
    def check(self, stim: torch.Tensor, which: torch.Tensor) -> float:
        """The largest relative difference between the patch's rates and the full frame's (with
        grey beyond the patch) for ``stim (B, T, h, w)``: 0 up to rounding when the patch holds
        everything the neuron sees."""
        on_patch = self(stim, which)
        frames = embed(stim, self.patches.origin[which.cpu().numpy()], self.probe.frame_shape)
        full = self.probe.model(frames[:, None], self.probe.behavior(*frames.shape[:2]), self.probe.session_id)[:, -1]
        full = full[torch.arange(len(which), device=full.device), self.neurons[which]]
        return float(((on_patch - full).abs() / full.abs().clamp_min(1e-6)).max())


# ------------------------------------------------------------------------------ optimisation


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x (..., h, w)`` blurred in space by a Gaussian of ``sigma`` px (zero padding); unchanged
    for ``sigma`` 0."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-(taps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    shape = x.shape
    y = x.reshape(-1, 1, *shape[-2:])
    y = F.conv2d(y, kernel.view(1, 1, 1, -1), padding=(0, radius))
    y = F.conv2d(y, kernel.view(1, 1, -1, 1), padding=(radius, 0))
    return y.reshape(shape)


def _project(x: torch.Tensor, norm: float) -> torch.Tensor:
    """Each element of ``x (B, ...)`` scaled to L2 norm ``norm``."""
    return x * (norm / x.flatten(1).norm(dim=1).clamp_min(1e-12)).view(-1, *[1] * (x.ndim - 1))


def _ascend(objective: Objective, x: torch.Tensor, which: torch.Tensor, norm: float, steps: int, lr: float,
            jitter: int, blur: float, rng: torch.Generator) -> torch.Tensor:
    """``steps`` of normalised, jittered, blurred gradient ascent from ``x (B, T, h, w)``, projected
    onto the sphere of ``norm`` after each."""
    for step in range(steps):
        rate = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / max(steps, 1))))
        dy, dx = (torch.randint(-jitter, jitter + 1, (2,), generator=rng).tolist() if jitter > 0 else (0, 0))
        x = x.detach().requires_grad_(True)
        value = objective(torch.roll(x, (dy, dx), (-2, -1)), which)
        (grad,) = torch.autograd.grad(value.sum(), x)  # the input's gradient only: no weight gradients
        grad = gaussian_blur(grad, blur)
        rms = grad.flatten(1).pow(2).mean(1).sqrt().clamp_min(1e-12).view(-1, 1, 1, 1)
        x = _project(x.detach() + rate * grad / rms, norm)
    return x.detach()


def _correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of the rows of ``a (..., D)`` and ``b (..., D)``."""
    a = a - a.mean(-1, keepdims=True)
    b = b - b.mean(-1, keepdims=True)
    den = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(-1) / den, np.nan)


def optimise(probe: Probe, frames: int = FRAMES, steps: int = 8, starts: int = 2, lr: float = 1.0,
             jitter: int = 0, blur: float = 0.5, contrast: float = 0.1, batch_size: int = 256) -> Meis:
    """Every analysed neuron's MEI of ``frames`` frames from ``starts`` random starts, ``steps``
    steps each, ``batch_size`` neuron-starts per batch (see the module's docstring)."""
    if frames < 1 or frames > probe.window:
        raise ValueError(f"frames: must be within 1..probe.window ({probe.window}), got {frames}")
    if starts < 1 or steps < 0:
        raise ValueError(f"starts and steps: need starts >= 1 and steps >= 0, got {starts} and {steps}")
    n = len(probe.neurons)
    where = patches(probe, frames)
    objective = Objective(probe, where)
    h, w = where.size
    norm = contrast * math.sqrt(frames * h * w)  # RMS ``contrast`` per pixel and frame over the patch
    rng = torch.Generator().manual_seed(probe.seed)
    which = torch.arange(n).repeat_interleave(starts)  # element e: neuron e // starts, start e % starts
    x0 = _project(torch.randn(n * starts, frames, h, w, generator=rng), norm).to(probe.device)
    which = which.to(probe.device)
    if where.target is not None:
        error = objective.check(x0[:4], which[:4])
        if error > 1e-4:
            log.warning("mei: the patch's rates differ from the full frame's by %.2g; using the full frame", error)
            where = _whole_frame(probe)
            objective = Objective(probe, where)
            h, w = where.size
            norm = contrast * math.sqrt(frames * h * w)
            x0 = _project(torch.randn(n * starts, frames, h, w, generator=rng), norm).to(probe.device)
    stimuli, rates, noise = [], [], []
    for chunk in range(0, n * starts, batch_size):
        sel = slice(chunk, chunk + batch_size)
        with torch.no_grad():
            noise.append(objective(x0[sel], which[sel]))
        x = _ascend(objective, x0[sel], which[sel], norm, steps, lr, jitter, blur, rng)
        with torch.no_grad():
            rates.append(objective(x, which[sel]))
        stimuli.append(x)
    stim = torch.cat(stimuli).cpu().view(n, starts, frames, h, w).numpy()
    rate = torch.cat(rates).cpu().view(n, starts).numpy()
    noise_rate = torch.cat(noise).cpu().view(n, starts).numpy()
    best = rate.argmax(1)
    chosen = stim[np.arange(n), best]  # (n, T, h, w)
    peak = (chosen**2).sum((-1, -2)).argmax(1)
    spatial = embed(torch.as_tensor(chosen[np.arange(n), peak]), where.origin, probe.frame_shape).numpy()
    flat = stim.reshape(n, starts, -1)
    pairs = [(i, j) for i in range(starts) for j in range(i + 1, starts)]
    agreement = (np.mean([_correlation(flat[:, i], flat[:, j]) for i, j in pairs], 0) if pairs
                 else np.full(n, np.nan))
    return Meis(stim, where, rate, noise_rate, best, spatial, frames - 1 - peak, agreement)


# ------------------------------------------------------------------------------------- truth


def gabor_correlations(spatial: np.ndarray, truth: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """``(signed, best_phase)``: per neuron, the correlation of ``spatial (n, H, W)`` with its true
    even Gabor (meta.json's x, y, sigma, theta, wavelength, phase), and the largest over the
    Gabor's phase (:data:`PHASES` phases; any sign)."""
    n, h, w = spatial.shape
    signed, best = np.full(n, np.nan), np.full(n, np.nan)
    phases = np.linspace(0, 2 * np.pi, PHASES, endpoint=False)
    for i, t in enumerate(truth):
        bank = np.stack([gabor(h, w, t["x"], t["y"], t["sigma"], t["theta"], t["wavelength"], t["phase"] + p)
                         for p in phases]).reshape(PHASES, -1)
        corr = _correlation(spatial[i].reshape(1, -1), bank)
        signed[i], best[i] = corr[0], np.nanmax(corr) if np.isfinite(corr).any() else np.nan
    return signed, best


def run(probe: Probe, frames: int = FRAMES, steps: int = 8, starts: int = 2, lr: float = 1.0, jitter: int = 0,
        blur: float = 0.5, contrast: float = 0.1, batch_size: int = 256) -> Result:
    """MEIs of the probe's neurons (:func:`optimise`) and, with truth, their match to the true Gabors.

    Columns: ``mei_rate`` (spikes per frame at the last frame), ``mei_activation_ratio`` (that over
    the mean rate on white noise of the same contrast), ``mei_start_agreement``, ``mei_peak_lag_frames``
    (the spatial MEI's frame, frames before the last); with truth ``mei_gabor_corr`` (signed) and
    ``mei_gabor_corr_best_phase``. The summary's Gabor medians are over simple cells (a complex
    cell's MEI may take any phase; its best-phase median is reported apart). The headline,
    ``mei_gabor_corr_median``, is the signed one: a simple cell's MEI should show its filter's
    spatial phase and sign, and the sign flips only when the MEI's frame falls in the temporal
    kernel's opposite lobe, which the 12-frame window rarely chooses (default model: 6 of 127
    simple cells negative, most MEI frames at lag 2); the best-phase median beside it bounds what
    a phase error costs.
    """
    meis = optimise(probe, frames, steps, starts, lr, jitter, blur, contrast, batch_size)
    noise = meis.noise_rates.mean(1)
    rate = meis.rates[np.arange(len(meis.best)), meis.best]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(noise > 0, rate / noise, np.nan)
    columns = {"mei_rate": rate, "mei_activation_ratio": ratio, "mei_start_agreement": meis.agreement,
               "mei_peak_lag_frames": meis.peak_lag.astype(float)}
    summary = {"mei_neurons": len(rate), "mei_frames": frames, "mei_steps": steps, "mei_starts": starts,
               "mei_contrast": contrast,
               "mei_patch_px": list(meis.patches.size),
               "mei_activation_ratio_median": finite_median(ratio), "mei_start_agreement_median": finite_median(meis.agreement)}
    simple = None
    if probe.truth is not None:
        signed, best = gabor_correlations(meis.spatial, probe.truth)
        simple = np.array([t.get("type") == "simple" for t in probe.truth])
        columns.update(mei_gabor_corr=signed, mei_gabor_corr_best_phase=best)
        summary.update(mei_simple_cells=int(simple.sum()),
                       mei_gabor_corr_median=finite_median(signed[simple]),
                       mei_gabor_corr_abs_median=finite_median(np.abs(signed[simple])),
                       mei_gabor_corr_best_phase_median=finite_median(best[simple]),
                       mei_start_agreement_simple_median=finite_median(meis.agreement[simple]),
                       mei_gabor_corr_best_phase_complex_median=finite_median(best[~simple]))

    return Result(columns, summary, lambda path: figure(meis, columns, probe.truth, path))


# ------------------------------------------------------------------------------------ figure


def _examples(columns: dict, truth: list[dict] | None, count: int) -> np.ndarray:
    """Up to ``count`` neurons to show: with truth, simple cells from the best to the worst match
    to their Gabor, evenly spaced; else the highest activation ratios."""
    if truth is not None:
        simple = np.flatnonzero([t.get("type") == "simple" for t in truth])
        corr = columns["mei_gabor_corr_best_phase"][simple]
        ordered = simple[np.argsort(-np.nan_to_num(corr, nan=-2))]
    else:
        ordered = np.argsort(-np.nan_to_num(columns["mei_activation_ratio"], nan=-np.inf))
    if len(ordered) <= count:
        return ordered
    return ordered[np.linspace(0, len(ordered) - 1, count).round().astype(int)]


def figure(meis: Meis, columns: dict, truth: list[dict] | None, path: Path, count: int = 6) -> None:
    """Example spatial MEIs (cropped to their patch) above their true Gabors at the same crop, and
    a histogram of the simple cells' MEI-to-Gabor correlation (without truth: of the start
    agreement)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, also on machines without a display
    import matplotlib.pyplot as plt

    shown = _examples(columns, truth, count)
    rows = 2 if truth is not None else 1
    fig = plt.figure(figsize=(2.0 * max(len(shown), 1) + 4.5, 2.1 * rows + 0.5))
    spec = fig.add_gridspec(rows, max(len(shown), 1) + 2)
    h, w = meis.patches.size
    frame_h, frame_w = meis.spatial.shape[1:]
    for col, i in enumerate(shown):
        y, x = meis.patches.origin[i]
        crop = (slice(y, y + h), slice(x, x + w))
        ax = fig.add_subplot(spec[0, col])
        image = meis.spatial[i][crop]
        lim = float(np.abs(image).max()) or 1.0
        ax.imshow(image, cmap="RdBu_r", vmin=-lim, vmax=lim)
        label = f"#{i}: x{columns['mei_activation_ratio'][i]:.1f}, lag {int(meis.peak_lag[i])}"
        ax.set_title(label, fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        if truth is not None:
            t = truth[i]
            true = gabor(frame_h, frame_w, t["x"], t["y"], t["sigma"], t["theta"], t["wavelength"], t["phase"])[crop]
            ax_t = fig.add_subplot(spec[1, col])
            ax_t.imshow(true, cmap="RdBu_r", vmin=-np.abs(true).max(), vmax=np.abs(true).max())
            ax_t.set_title(f"true; r {columns['mei_gabor_corr'][i]:+.2f}, best {columns['mei_gabor_corr_best_phase'][i]:.2f}",
                           fontsize=8)
            ax_t.set_xticks([])
            ax_t.set_yticks([])
    if len(shown):
        fig.axes[0].set_ylabel("MEI (peak frame)", fontsize=8)
        if truth is not None:
            fig.axes[1].set_ylabel("true even Gabor", fontsize=8)
    ax = fig.add_subplot(spec[:, -2:])
    if truth is not None:
        simple = np.array([t.get("type") == "simple" for t in truth])
        for name, label in (("mei_gabor_corr", "signed"), ("mei_gabor_corr_best_phase", "best phase")):
            v = columns[name][simple]
            v = v[np.isfinite(v)]
            if v.size:
                ax.hist(v, bins=np.linspace(-1, 1, 41).tolist(), alpha=0.5,
                        label=f"{label}: median {np.median(v):.2f}")
        ax.set_xlabel("MEI vs true Gabor correlation")
        ax.set_title(f"simple cells (n={int(simple.sum())})", fontsize=10)
    else:
        v = columns["mei_start_agreement"][np.isfinite(columns["mei_start_agreement"])]
        if v.size:
            ax.hist(v, bins=np.linspace(-1, 1, 41).tolist(), label=f"median {np.median(v):.2f}")
        ax.set_xlabel("agreement of the starts (mean pairwise correlation)")
    ax.set_ylabel("neurons")
    ax.legend(fontsize=7)
    fig.suptitle("most exciting inputs (RdBu: each panel its own symmetric scale)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
