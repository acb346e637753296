"""Drifting-grating tuning of each neuron in the model: orientation, spatial and temporal
frequency, orientation selectivity and the modulation ratio F1/F0.

A grating ``sqrt(2) cos(2 pi sf (x cos(theta) + y sin(theta)) - 2 pi tf t)`` (x, y in pixels,
t in seconds) has standard deviation 1 in model units, the training stimulus's contrast, and
drifts along ``theta``, its wave vector's direction: the convention of the simulator's ``theta``.
Every temporal frequency is snapped to a whole number of frames per cycle, so the response is
read over whole cycles, after the model's training burn-in (its steady state).

Two stages keep the cost down: orientation x spatial frequency at one temporal frequency (the
tuning of a space-time separable cell does not depend on it), then a temporal-frequency sweep at
each neuron's preferred orientation and spatial frequency (each distinct pair run once).

- Preferred orientation: the vector average ``angle(sum r e^{2 i theta}) / 2``, with ``r`` the
  response above the blank (grey screen) response, clipped at 0 and summed over the spatial
  frequencies; ``osi`` is ``|sum r e^{2 i theta}| / sum r`` of the same ``r`` (so blank-subtracted).
- Preferred spatial and temporal frequencies: the peak of a parabola through the grid's best
  value and its two neighbours on a log axis (the grid value at the grid's ends).
- ``f1_f0``: at the preferred grating, the response's amplitude at the grating's frequency over
  its mean above the blank response: above 1 simple-like, below 1 complex-like.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, also on machines without a display
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from neuroenc.analysis.insilico.probe import Probe, Result, finite_median


def snap_frequencies(tf_hz, frame_rate: float) -> tuple[np.ndarray, np.ndarray]:
    """``(tf, period)``: each temporal frequency (Hz, above 0 and at most ``frame_rate / 2``)
    moved to the nearest one with a whole ``period`` of frames per cycle (at least 2)."""
    tf_hz = np.atleast_1d(np.asarray(tf_hz, np.float64))
    if np.any(tf_hz <= 0) or np.any(tf_hz > frame_rate / 2):
        raise ValueError(f"temporal frequencies: must be in (0, frame_rate / 2 = {frame_rate / 2:g}] Hz, got "
                         f"{tf_hz.tolist()}")
    period = np.maximum(np.round(frame_rate / tf_hz), 2).astype(np.int64)
    return frame_rate / period, period


def grating_movie(theta: np.ndarray, sf: np.ndarray, tf: np.ndarray, frames: int, frame_shape: tuple[int, int],
                  frame_rate: float) -> torch.Tensor:
    """``(G, frames, H, W)`` drifting gratings of standard deviation 1, one per ``theta``
    (radians), ``sf`` (cycles per pixel), ``tf`` (Hz), each of length G; phase 0 at pixel (0, 0)
    and frame 0."""
    h, w = frame_shape
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    th, f, v = (torch.as_tensor(np.asarray(a, np.float64))[:, None, None, None] for a in (theta, sf, tf))
    t = torch.arange(frames, dtype=torch.float64)[None, :, None, None] / frame_rate
    phase = 2 * math.pi * (f * (xx * torch.cos(th) + yy * torch.sin(th)) - v * t)
    return (math.sqrt(2) * torch.cos(phase)).float()


@torch.no_grad()
def steady_responses(probe: Probe, theta, sf, tf_hz: float, period: int, burn_in: int, min_frames: int,
                     batch_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """``(mean, f1)``, each ``(G, N)``: the rate's mean and its amplitude at the grating's
    frequency over the whole cycles (at least ``min_frames`` frames) after ``burn_in`` frames,
    for G gratings of one temporal frequency ``tf_hz`` (``period`` frames per cycle)."""
    cycles = max(1, math.ceil(min_frames / period))
    steady = cycles * period
    frames = burn_in + steady
    theta, sf = np.atleast_1d(theta), np.atleast_1d(sf)
    neurons = torch.as_tensor(probe.neurons)
    # the cycle's phase of each analysed frame: F1 = 2 |mean(r e^{-i phase})|
    phasor = torch.exp(-2j * math.pi * torch.arange(steady, dtype=torch.float64) / period)
    means, f1s = [], []
    for chunk in range(0, len(theta), batch_size):
        sel = slice(chunk, chunk + batch_size)
        stim = grating_movie(theta[sel], sf[sel], np.full(len(theta[sel]), tf_hz), frames, probe.frame_shape,
                             probe.frame_rate)[:, None].to(probe.device)
        rates = probe.model(stim, probe.behavior(stim.shape[0], frames), probe.session_id)
        r = rates[:, burn_in:, neurons.to(rates.device)].double().cpu()  # (g, steady, N)
        means.append(r.mean(1))
        f1s.append(2 * (r * phasor[None, :, None]).mean(1).abs())
    return torch.cat(means).numpy(), torch.cat(f1s).numpy()


@torch.no_grad()
def blank_response(probe: Probe, frames: int) -> np.ndarray:
    """``(N,)`` the rate to a grey screen (0 in model units) after ``frames`` frames of it."""
    return probe.rates(torch.zeros(1, frames, *probe.frame_shape))[0].double().cpu().numpy()


def parabolic_peak(values: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """``(N,)``: for ``values (K, N)`` sampled at ``axis (K,)`` (evenly spaced), the vertex of the
    parabola through each column's maximum and its two neighbours, kept within half a step of
    the maximum; the maximum's own position at either end or where the three do not bend down."""
    k, n = values.shape
    best = values.argmax(0)
    out = axis[best].astype(np.float64)
    if k < 3:
        return out
    inner = (best > 0) & (best < k - 1)
    cols = np.flatnonzero(inner)
    left, mid, right = (values[best[cols] + d, cols] for d in (-1, 0, 1))
    curve = left - 2 * mid + right
    ok = curve < 0
    shift = np.where(ok, 0.5 * (left - right) / np.where(ok, curve, -1.0), 0.0)
    step = axis[1] - axis[0]
    out[cols] += np.clip(shift, -0.5, 0.5) * step
    return out


def orientation_difference_deg(a, b) -> np.ndarray:
    """Smallest difference between orientations ``a`` and ``b`` (degrees, modulo 180), in [0, 90]."""
    d = np.mod(np.asarray(a, np.float64) - np.asarray(b, np.float64), 180.0)
    return np.minimum(d, 180.0 - d)


def true_tf_hz(kernel, frame_rate: float) -> float:
    """The frequency (Hz) at which a causal temporal ``kernel`` (index 0 = zero lag) has its
    largest gain, from its zero-padded Fourier transform."""
    k = np.asarray(kernel, np.float64)
    n = max(1024, len(k))
    return float(np.fft.rfftfreq(n, 1.0 / frame_rate)[np.abs(np.fft.rfft(k, n)).argmax()])


def truth_columns(columns: dict[str, np.ndarray], truth: list[dict], frame_rate: float) -> dict[str, np.ndarray]:
    """The tuning against the simulator's cells: ``true_theta_deg``, ``orientation_error_deg``
    (modulo 180), ``true_sf_cpp`` (1 / wavelength), ``sf_ratio`` (preferred / true) and
    ``log2_sf_ratio``, ``true_tf_hz`` (peak of the temporal kernel's gain), ``true_type``,
    ``type_predicted`` ("simple" where F1/F0 > 1, else "complex") and ``type_correct``."""
    theta = np.degrees([float(t["theta"]) for t in truth]) % 180.0
    sf = 1.0 / np.array([float(t["wavelength"]) for t in truth])
    ratio = columns["preferred_sf_cpp"] / sf
    kind = np.array([str(t["type"]) for t in truth])
    predicted = np.where(columns["f1_f0"] > 1.0, "simple", "complex")
    out = {"true_theta_deg": theta,
           "orientation_error_deg": orientation_difference_deg(columns["preferred_orientation_deg"], theta),
           "true_sf_cpp": sf, "sf_ratio": ratio, "log2_sf_ratio": np.log2(ratio)}
    if all("temporal_kernel" in t for t in truth):
        out["true_tf_hz"] = np.array([true_tf_hz(t["temporal_kernel"], frame_rate) for t in truth])
    out.update(true_type=kind, type_predicted=predicted, type_correct=predicted == kind)
    return out


@dataclass
class Tuning:
    """The measured responses behind the columns: ``orientation_sf`` ``(n_ori, n_sf, N)`` mean
    rates at ``stage_tf_hz``; ``tf_mean`` and ``tf_f1`` ``(n_tf, N)`` at each neuron's preferred
    grid orientation and spatial frequency; ``blank`` ``(N,)``."""

    orientations_deg: np.ndarray
    sfs: np.ndarray
    stage_tf_hz: float
    tfs: np.ndarray
    orientation_sf: np.ndarray
    tf_mean: np.ndarray
    tf_f1: np.ndarray
    blank: np.ndarray


@dataclass
class GratingResult(Result):
    """A :class:`Result` that also keeps the measured :class:`Tuning` (for other figures)."""

    tuning: Tuning | None = field(default=None, repr=False)


def measure(probe: Probe, orientations: int, sfs: np.ndarray, stage_tf: float, tfs: np.ndarray, burn_in: int,
            min_frames: int, batch_size: int) -> Tuning:
    """Run both stages (see the module's docstring) on ``probe``."""
    theta = np.arange(orientations) * math.pi / orientations
    stage_tf_hz, stage_period = snap_frequencies(stage_tf, probe.frame_rate)
    tf_hz, periods = snap_frequencies(tfs, probe.frame_rate)
    tf_hz, keep = np.unique(tf_hz, return_index=True)
    periods = periods[keep]
    grid_theta, grid_sf = (a.ravel() for a in np.meshgrid(theta, sfs, indexing="ij"))
    mean, f1 = steady_responses(probe, grid_theta, grid_sf, float(stage_tf_hz[0]), int(stage_period[0]), burn_in,
                                min_frames, batch_size)
    n = mean.shape[1]
    cols = np.arange(n)
    by_grid = mean.reshape(orientations, len(sfs), n)
    best = mean.argmax(0)  # flat (orientation, sf) index per neuron
    pairs, which = np.unique(best, return_inverse=True)
    tf_mean = np.empty((len(tf_hz), n))
    tf_f1 = np.empty((len(tf_hz), n))
    for i, (f, p) in enumerate(zip(tf_hz, periods)):
        if p == stage_period[0]:  # the first stage ran it already
            tf_mean[i], tf_f1[i] = mean[best, cols], f1[best, cols]
            continue
        m, f1_tf = steady_responses(probe, grid_theta[pairs], grid_sf[pairs], float(f), int(p), burn_in, min_frames,
                                    batch_size)
        tf_mean[i], tf_f1[i] = m[which, cols], f1_tf[which, cols]
    blank = blank_response(probe, burn_in + int(periods.max()))
    return Tuning(np.degrees(theta), np.asarray(sfs, np.float64), float(stage_tf_hz[0]), tf_hz, by_grid, tf_mean,
                  tf_f1, blank)


def tuning_columns(t: Tuning) -> dict[str, np.ndarray]:
    """Per-neuron columns from measured :class:`Tuning` (see the module's docstring)."""
    n = t.blank.shape[0]
    cols = np.arange(n)
    i_ori, i_sf = np.unravel_index(t.orientation_sf.reshape(-1, n).argmax(0), t.orientation_sf.shape[:2])
    # orientation: vector average of the response above blank summed over spatial frequencies,
    # which uses every grating (more robust for broadly tuned neurons than one frequency's row)
    drive = np.clip(t.orientation_sf - t.blank, 0, None).sum(1)  # (n_ori, N)
    angle = np.exp(2j * np.radians(t.orientations_deg))[:, None]
    vector = (drive * angle).sum(0)
    total = drive.sum(0)
    pref_ori = np.degrees(np.angle(vector)) / 2 % 180.0
    osi = np.divide(np.abs(vector), total, out=np.zeros(n), where=total > 0)
    # spatial frequency: parabola on log2 sf at the preferred grid orientation
    pref_sf = 2 ** parabolic_peak(t.orientation_sf[i_ori, :, cols].T, np.log2(t.sfs))
    pref_tf = 2 ** parabolic_peak(t.tf_mean, np.log2(t.tfs)) if len(t.tfs) > 1 else np.full(n, t.tfs[0])
    i_tf = t.tf_mean.argmax(0)
    f0 = t.tf_mean[i_tf, cols] - t.blank
    f1 = t.tf_f1[i_tf, cols]
    # a response that is all modulation and no mean is as simple-like as a response can be
    f1_f0 = np.divide(f1, f0, out=np.full(n, np.inf), where=f0 > 0)
    return {"preferred_orientation_deg": pref_ori, "osi": osi, "preferred_sf_cpp": pref_sf,
            "preferred_tf_hz": pref_tf, "f0_rate": f0, "f1_rate": f1, "f1_f0": f1_f0,
            "blank_rate": t.blank.copy(), "peak_rate": t.tf_mean[i_tf, cols]}


def run(probe: Probe, orientations: int = 12, sfs: int = 8, stage_tf_hz: float = 2.5,
        tfs_hz: tuple[float, ...] = (1.25, 2.5, 5.0), min_frames: int = 6, burn_in: int | None = None,
        batch_size: int = 32) -> GratingResult:
    """Grating tuning of ``probe``'s neurons: ``orientations`` over 180 degrees, ``sfs``
    log-spaced spatial frequencies from 2 cycles per frame (its longer side) to 0.5 cycles per
    pixel, the first stage at ``stage_tf_hz`` and the sweep at ``tfs_hz`` (each snapped to whole
    frames per cycle; those above ``frame_rate / 2`` dropped); responses over whole cycles, at
    least ``min_frames`` frames, after ``burn_in`` frames (default: the model's training burn-in).
    Columns: those of :func:`tuning_columns`, with truth also those of :func:`truth_columns`."""
    if orientations < 2:
        raise ValueError(f"orientations: must be at least 2, got {orientations}")
    if sfs < 1:
        raise ValueError(f"sfs: must be at least 1, got {sfs}")
    nyquist = probe.frame_rate / 2
    tfs = np.array([f for f in tfs_hz if 0 < f <= nyquist], np.float64)
    if not tfs.size:
        raise ValueError(f"tfs_hz: none of {list(tfs_hz)} is in (0, frame_rate / 2 = {nyquist:g}] Hz")
    burn = int(probe.model.config.data.burn_in) if burn_in is None else int(burn_in)
    if burn < 0:
        raise ValueError(f"burn_in: must not be negative, got {burn}")
    sf_grid = np.geomspace(2.0 / max(probe.frame_shape), 0.5, sfs) if sfs > 1 else np.array([0.5 / max(probe.frame_shape)])
    tuning = measure(probe, orientations, sf_grid, stage_tf_hz, tfs, burn, min_frames, batch_size)
    columns = tuning_columns(tuning)
    summary: dict = {"n_neurons": len(tuning.blank), "median_osi": finite_median(columns["osi"]),
                     "median_f1_f0": finite_median(columns["f1_f0"]),
                     "n_simple_like": int((columns["f1_f0"] > 1).sum()),
                     "median_preferred_sf_cpp": finite_median(columns["preferred_sf_cpp"]),
                     "median_preferred_tf_hz": finite_median(columns["preferred_tf_hz"])}
    if probe.truth is not None:
        columns.update(truth_columns(columns, probe.truth, probe.frame_rate))
        summary.update(median_orientation_error_deg=finite_median(columns["orientation_error_deg"]),
                       median_abs_log2_sf_ratio=finite_median(np.abs(columns["log2_sf_ratio"])),
                       type_accuracy=float(np.mean(columns["type_correct"])),
                       n_true_simple=int((columns["true_type"] == "simple").sum()),
                       n_true_complex=int((columns["true_type"] == "complex").sum()))
        if "true_tf_hz" in columns:
            band = columns["true_tf_hz"] > 0  # a low-pass kernel has no preferred frequency to compare
            summary["median_abs_log2_tf_ratio"] = finite_median(np.abs(np.log2(columns["preferred_tf_hz"][band]
                                                                           / columns["true_tf_hz"][band])))
    return GratingResult(columns, summary, lambda path: plot_tuning(tuning, columns, path), tuning)


def plot_tuning(t: Tuning, columns: dict[str, np.ndarray], path: Path, examples: int = 4) -> None:
    """Orientation and spatial-frequency tuning curves of ``examples`` neurons (the most
    selective), and with truth the recovered against the true orientation and spatial frequency
    and the F1/F0 histogram by true type."""
    n = len(t.blank)
    truth = "true_theta_deg" in columns
    fig, axes = plt.subplots(2, 3 if truth else 2, figsize=(14 if truth else 9.5, 7.5), squeeze=False)
    order = np.argsort(-columns["osi"])[:examples]
    i_ori, i_sf = np.unravel_index(t.orientation_sf.reshape(-1, n).argmax(0), t.orientation_sf.shape[:2])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ax_o, ax_s = axes[0, 0], axes[1, 0]
    for c, i in zip(colors, order):
        ax_o.plot(t.orientations_deg, t.orientation_sf[:, i_sf[i], i], "o-", color=c, ms=3, label=f"neuron {i}")
        ax_o.axvline(columns["preferred_orientation_deg"][i], color=c, lw=0.8)
        if truth:
            ax_o.axvline(columns["true_theta_deg"][i], color=c, lw=0.8, ls=":")
        ax_s.semilogx(t.sfs, t.orientation_sf[i_ori[i], :, i], "o-", color=c, ms=3)
        ax_s.axvline(columns["preferred_sf_cpp"][i], color=c, lw=0.8)
        if truth:
            ax_s.axvline(columns["true_sf_cpp"][i], color=c, lw=0.8, ls=":")
    ax_o.axhline(float(np.median(t.blank)), color="k", lw=0.6, ls="--")
    ax_o.set(xlabel="orientation (deg)", ylabel="rate (spikes/frame)",
             title=f"orientation tuning at {t.stage_tf_hz:.3g} Hz (solid: preferred, dotted: true)")
    ax_o.legend(fontsize=8)
    ax_s.set(xlabel="spatial frequency (cycles/px)", ylabel="rate (spikes/frame)", title="spatial-frequency tuning")
    ax_t = axes[0, 1]
    for c, i in zip(colors, order):
        ax_t.semilogx(t.tfs, t.tf_mean[:, i], "o-", color=c, ms=3)
    ax_t.set(xlabel="temporal frequency (Hz)", ylabel="rate (spikes/frame)", title="temporal-frequency tuning")
    ax_h = axes[1, 1]
    ratio = np.clip(columns["f1_f0"], 0, 3)  # inf (no mean above blank) shown at the right edge
    bins = np.linspace(0, 3, 31).tolist()
    if truth:
        for kind in ("simple", "complex"):
            sel = columns["true_type"] == kind
            ax_h.hist(ratio[sel], bins=bins, alpha=0.6, label=f"true {kind} (n={int(sel.sum())})")
        ax_h.set_title(f"F1/F0 at the preferred grating: {100 * float(np.mean(columns['type_correct'])):.0f}% typed right")
        ax_h.legend(fontsize=8)
    else:
        ax_h.hist(ratio, bins=bins)
        ax_h.set_title("F1/F0 at the preferred grating")
    ax_h.axvline(1, color="k", lw=0.8)
    ax_h.set(xlabel="F1/F0 (clipped at 3)", ylabel="neurons")
    if truth:
        ax = axes[0, 2]
        ax.scatter(columns["true_theta_deg"], columns["preferred_orientation_deg"], s=10, c=columns["osi"],
                   cmap="viridis", vmin=0, vmax=1)
        ax.plot([0, 180], [0, 180], "k", lw=0.8)
        ax.set(xlabel="true orientation (deg)", ylabel="preferred orientation (deg)", xlim=(0, 180), ylim=(0, 180),
               title=f"median error {np.median(columns['orientation_error_deg']):.1f} deg (colour: OSI)")
        ax = axes[1, 2]
        ax.loglog(columns["true_sf_cpp"], columns["preferred_sf_cpp"], "o", ms=3)
        lim = [min(t.sfs[0], columns["true_sf_cpp"].min()), 0.5]
        ax.plot(lim, lim, "k", lw=0.8)
        ax.set(xlabel="true SF, 1/wavelength (cycles/px)", ylabel="preferred SF (cycles/px)",
               title=f"median |log2 SF ratio| {np.median(np.abs(columns['log2_sf_ratio'])):.2f}")
    plain_log_ticks(ax_s, t.sfs[::2])
    plain_log_ticks(ax_t, t.tfs)
    if truth:
        plain_log_ticks(axes[1, 2], [0.03, 0.06, 0.125, 0.25, 0.5], both=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plain_log_ticks(ax, ticks, both: bool = False) -> None:
    """Ticks at ``ticks`` with decimal labels on ``ax``'s log x axis (and y with ``both``), none
    on the minor ticks (their labels overlap)."""
    for axis in (ax.xaxis, ax.yaxis) if both else (ax.xaxis,):
        axis.set_ticks(list(ticks))
        axis.set_major_formatter(FormatStrFormatter("%.2g"))
        axis.set_minor_formatter(NullFormatter())
