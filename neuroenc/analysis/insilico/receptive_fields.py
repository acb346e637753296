"""Each neuron's spatio-temporal receptive field in the model, from input gradients.

Shared white-noise windows (standard deviation 1 in model units: the training stimulus's
contrast) run forward once; each neuron's rate at the last frame is then differentiated with
respect to every frame of the window, by backward passes on the shared graph (on a CPU cheaper
than repeating the forward pass per neuron or vmapping the backward), one per group of neurons
whose inputs do not overlap (see :func:`gradient_maps`).

Two maps per neuron, ``(lags, H, W)`` with lag 0 the last frame (the current one):

- the linear RF, the mean gradient over noise samples: a simple cell's filter (for Gaussian
  noise it equals the spike-triggered average, by Stein's lemma); a complex cell's averages out;
- the energy RF, the mean squared gradient: a simple cell's filter squared, and for a complex
  cell the sum of its quadrature pair's squares, so it locates both kinds.

Centre and size come from a 2-D Gaussian fitted to the neuron's *local* energy at its peak lag:
each sample's gradient map plus the squares of its Riesz transform (the 2-D analogue of the
Hilbert transform), averaged over samples. For a Gabor ``exp(-r^2 / 2 sigma^2) cos(k.x + phase)``
that is its squared envelope ``exp(-r^2 / sigma^2)`` whatever the phase, without the ripple of the
plain squared gradient, so a single sample already gives it. The squared envelope's standard
deviation is ``sigma / sqrt(2)``; ``rf_size_px`` is the fitted standard deviation times
``sqrt(2)``, directly comparable with the simulator's ``sigma`` (``rf_size``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, also on machines without a display
import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Circle
from matplotlib.ticker import FormatStrFormatter, NullFormatter
from scipy.optimize import least_squares

from neuroenc.analysis.insilico.probe import Probe, Result, finite_median
from neuroenc.training.health import readout_centers_px


@dataclass
class ReceptiveFields:
    """Gradient maps of the analysed neurons, ``(N, lags, H, W)``, lag 0 = the last frame:
    ``linear`` (mean gradient), ``energy`` (mean squared gradient); ``local_energy`` ``(N, H, W)``
    the phase-invariant energy at each neuron's ``peak_lag`` ``(N,)`` (frames)."""

    linear: np.ndarray
    energy: np.ndarray
    local_energy: np.ndarray
    peak_lag: np.ndarray


@dataclass
class ReceptiveFieldResult(Result):
    """A :class:`Result` that also keeps the gradient maps (for figures of other analyses)."""

    maps: ReceptiveFields | None = field(default=None, repr=False)


def riesz_energy(maps: torch.Tensor) -> torch.Tensor:
    """``(..., H, W)`` -> ``(..., H, W)``: each map squared plus the squares of its two Riesz
    transforms (zero-padded to twice the size so the frame's edges do not wrap around)."""
    h, w = maps.shape[-2:]
    spec = torch.fft.rfft2(maps, s=(2 * h, 2 * w))
    fy = torch.fft.fftfreq(2 * h, dtype=maps.dtype)[:, None]
    fx = torch.fft.rfftfreq(2 * w, dtype=maps.dtype)[None, :]
    norm = torch.sqrt(fx**2 + fy**2)
    norm[0, 0] = 1.0  # the mean has no direction: its Riesz transform is 0 (fx = fy = 0 there)
    rx = torch.fft.irfft2(spec * (-1j * fx / norm), s=(2 * h, 2 * w))[..., :h, :w]
    ry = torch.fft.irfft2(spec * (-1j * fy / norm), s=(2 * h, 2 * w))[..., :h, :w]
    return maps**2 + rx**2 + ry**2


def readout_centres(probe: Probe) -> np.ndarray | None:
    """``(N, 2)`` (x, y) pixels where the analysed neurons read (at fixation), or None for a
    readout without positions."""
    centres = readout_centers_px(probe.model.encoder, probe.session_id, probe.model.info.behavior_dim)
    return None if centres is None else centres.numpy()[probe.neurons]


def support_boxes(centres: np.ndarray, reach: np.ndarray, frame_shape: tuple[int, int]) -> np.ndarray:
    """``(N, 4)`` pixel boxes ``x0, x1, y0, y1`` (end-exclusive, clipped to the frame) of each
    neuron's input: ``reach`` ``(4,)`` = (left, right, up, down) pixels from its readout centre."""
    h, w = frame_shape
    x0 = np.clip(np.floor(centres[:, 0] - reach[0]), 0, w)
    x1 = np.clip(np.ceil(centres[:, 0] + reach[1]) + 1, 0, w)
    y0 = np.clip(np.floor(centres[:, 1] - reach[2]), 0, h)
    y1 = np.clip(np.ceil(centres[:, 1] + reach[3]) + 1, 0, h)
    return np.stack([x0, x1, y0, y1], 1).astype(np.int64)


def disjoint_groups(boxes: np.ndarray) -> list[list[int]]:
    """Neurons in groups whose boxes ``(N, 4)`` do not overlap: greedy from left to right, which
    for boxes side by side (the frame's longer axis) needs the fewest groups."""
    groups: list[list[int]] = []
    for i in np.argsort(boxes[:, 0], kind="stable").tolist():
        x0, x1, y0, y1 = boxes[i]
        for group in groups:
            b = boxes[group]
            if np.all((b[:, 1] <= x0) | (x1 <= b[:, 0]) | (b[:, 3] <= y0) | (y1 <= b[:, 2])):
                group.append(i)
                break
        else:
            groups.append([i])
    return groups


def gradient_maps(probe: Probe, samples: int = 2, frames: int = 16) -> ReceptiveFields:
    """The analysed neurons' gradient maps from ``samples`` white-noise windows of ``frames``
    frames (the model's temporal reach; more frames cost time and add only later lags).

    A convnet's output at a pixel depends on a bounded patch of the input, so neurons whose
    patches do not overlap share one backward pass: the gradient of their summed rates, cut to
    each one's patch, is each one's gradient exactly. The patch is measured on the neuron read
    nearest the frame's centre (where the gradient is nonzero) and widened by one feature cell
    (a readout between cells reads its neighbours too); a model whose patch is the whole frame
    gets one pass per neuron.
    """
    if samples < 1:
        raise ValueError(f"samples: must be at least 1, got {samples}")
    if frames < 1:
        raise ValueError(f"frames: must be at least 1, got {frames}")
    h, w = probe.frame_shape
    generator = torch.Generator().manual_seed(probe.seed)
    noise = torch.randn(samples, 1, frames, h, w, generator=generator).to(probe.device).requires_grad_()
    rates = probe.last_frame(noise)  # (samples, N)
    n = rates.shape[1]
    linear = np.empty((n, frames, h, w), np.float32)
    energy = np.empty((n, frames, h, w), np.float32)
    local = np.empty((n, h, w), np.float32)
    peak = np.empty(n, np.int64)
    pending = list(range(n))

    def keep(i: int, grad: torch.Tensor) -> None:
        grad = grad[:, 0].flip(1).double().cpu()  # (samples, lags, H, W), lag 0 = the last frame
        sq = (grad**2).mean(0)
        peak[i] = int(sq.sum((1, 2)).argmax())
        linear[i], energy[i] = grad.mean(0).numpy(), sq.numpy()
        local[i] = riesz_energy(grad[:, peak[i]]).mean(0).numpy()

    def backward(group: list[int]) -> torch.Tensor:
        pending[:] = [i for i in pending if i not in group]
        (grad,) = torch.autograd.grad(rates[:, group].sum(), noise, retain_graph=bool(pending))
        return grad

    centres = readout_centres(probe)
    groups = [[i] for i in range(n)]
    if centres is not None and n > 1:
        first = int(np.argmin(np.hypot(centres[:, 0] - (w - 1) / 2, centres[:, 1] - (h - 1) / 2)))
        grad = backward([first])
        keep(first, grad)
        ys, xs = np.nonzero((grad != 0).any(0).any(0).any(0).cpu().numpy())
        if xs.size:
            cx, cy = centres[first]
            step = max(getattr(probe.model.encoder.grid, "step", (1.0, 1.0)))
            reach = np.array([cx - xs.min(), xs.max() - cx, cy - ys.min(), ys.max() - cy]) + step
            rest = np.array([i for i in range(n) if i != first])
            groups = [rest[g].tolist() for g in disjoint_groups(support_boxes(centres[rest], reach, (h, w)))]
            boxes = support_boxes(centres, reach, (h, w))
        else:  # a neuron the noise does not reach: nothing to learn about patches from it
            groups = [[i] for i in range(n) if i != first]
    for group in groups:
        grad = backward(group)
        if len(group) == 1:
            keep(group[0], grad)
            continue
        for i in group:
            x0, x1, y0, y1 = boxes[i]
            own = torch.zeros_like(grad)
            own[..., y0:y1, x0:x1] = grad[..., y0:y1, x0:x1]
            keep(i, own)
    return ReceptiveFields(linear, energy, local, peak)


def fit_gaussian(image: np.ndarray) -> tuple[float, float, float]:
    """``(x, y, sd)`` in pixels of an isotropic 2-D Gaussian plus a constant fitted to ``image``
    ``(H, W)`` by least squares (pixel centres at integers)."""
    h, w = image.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    img = image.astype(np.float64)
    scale = float(np.abs(img).max()) or 1.0
    img = img / scale
    base = float(np.median(img))
    weight = np.clip(img - base, 0, None)
    weight = np.where(weight >= 0.5 * weight.max(), weight, 0.0) if weight.max() > 0 else np.ones_like(img)
    x0, y0 = (float((weight * c).sum() / weight.sum()) for c in (xx, yy))
    sd0 = max(math.sqrt(float((weight > 0).sum()) / math.pi) / 1.18, 0.5)  # half-max radius -> sd

    def residual(p):
        amp, x, y, log_sd, b = p
        return (amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * math.exp(2 * log_sd))) + b - img).ravel()

    fit = least_squares(residual, [img.max() - base, x0, y0, math.log(sd0), base],
                        bounds=([0, -0.5, -0.5, math.log(0.2), -np.inf], [np.inf, w - 0.5, h - 0.5,
                                                                         math.log(max(h, w)), np.inf]))
    _, x, y, log_sd, _ = fit.x
    return float(x), float(y), float(math.exp(log_sd))


def truth_columns(columns: dict[str, np.ndarray], truth: list[dict]) -> dict[str, np.ndarray]:
    """The fitted centre and size against the simulator's: ``true_rf_x_px``, ``true_rf_y_px``,
    ``true_rf_sigma_px``, ``rf_center_error_px`` (distance) and ``rf_size_ratio`` (model / true)."""
    tx, ty, ts = (np.array([float(t[k]) for t in truth]) for k in ("x", "y", "sigma"))
    return {"true_rf_x_px": tx, "true_rf_y_px": ty, "true_rf_sigma_px": ts,
            "rf_center_error_px": np.hypot(columns["rf_x_px"] - tx, columns["rf_y_px"] - ty),
            "rf_size_ratio": columns["rf_size_px"] / ts}


def run(probe: Probe, samples: int = 2, frames: int = 16) -> ReceptiveFieldResult:
    """Receptive fields of ``probe``'s neurons: columns ``rf_x_px``, ``rf_y_px``, ``rf_size_px``
    (comparable with the Gabor's sigma, see the module's docstring), ``rf_peak_lag_frames``,
    ``rf_latency_ms``; with truth also those of :func:`truth_columns`."""
    maps = gradient_maps(probe, samples, frames)
    fits = np.array([fit_gaussian(img) for img in maps.local_energy]).reshape(-1, 3)
    n = len(maps.peak_lag)
    columns = {
        "rf_x_px": fits[:, 0], "rf_y_px": fits[:, 1], "rf_size_px": fits[:, 2] * math.sqrt(2),
        "rf_peak_lag_frames": maps.peak_lag.astype(np.int64),
        "rf_latency_ms": maps.peak_lag * 1000.0 / probe.frame_rate,
    }
    summary: dict = {"n_neurons": n, "median_rf_size_px": finite_median(columns["rf_size_px"]),
                     "median_rf_latency_ms": finite_median(columns["rf_latency_ms"])}
    if probe.truth is not None:
        columns.update(truth_columns(columns, probe.truth))
        summary.update(median_rf_center_error_px=finite_median(columns["rf_center_error_px"]),
                       median_rf_size_ratio=finite_median(columns["rf_size_ratio"]))

    return ReceptiveFieldResult(columns, summary, lambda path: plot_receptive_fields(maps, columns, path), maps)


def plot_receptive_fields(maps: ReceptiveFields, columns: dict[str, np.ndarray], path: Path, examples: int = 6,
                          zoom: int = 8) -> None:
    """For ``examples`` neurons (spread over the fitted sizes) the linear and the local-energy RF
    at the peak lag, ``zoom`` pixels either side of the fitted centre, with the fitted centre (+)
    and with truth the true one (x) and sigma (circle); with truth also the fitted against the
    true centre and size."""
    n = len(maps.peak_lag)
    truth = "true_rf_x_px" in columns
    pick = np.argsort(columns["rf_size_px"])[np.linspace(0, n - 1, min(examples, n)).round().astype(int)]
    cols = len(pick) + (1 if truth else 0)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols + 0.5, 4.6), squeeze=False)
    h, w = maps.local_energy.shape[1:]
    for j, i in enumerate(pick):
        lin = maps.linear[i, maps.peak_lag[i]]
        bound = float(np.abs(lin).max()) or 1.0
        # a window of zoom pixels around the fit, so that small fields are visible
        cx, cy = (int(np.clip(round(columns[k][i]), 0, n_px - 1)) for k, n_px in (("rf_x_px", w), ("rf_y_px", h)))
        x0, y0 = max(cx - zoom, 0), max(cy - zoom, 0)
        extent = (x0 - 0.5, min(cx + zoom, w - 1) + 0.5, min(cy + zoom, h - 1) + 0.5, y0 - 0.5)
        crop = np.s_[y0 : cy + zoom + 1, x0 : cx + zoom + 1]
        shown: list[tuple[np.ndarray, dict[str, Any]]] = [
            (lin, {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}), (maps.local_energy[i], {"cmap": "magma"})]
        for row, (img, kw) in enumerate(shown):
            ax = axes[row, j]
            ax.imshow(img[crop], extent=extent, **kw)
            ax.plot(columns["rf_x_px"][i], columns["rf_y_px"][i], "+", color="lime", ms=9, mew=1.5)
            if truth:
                ax.plot(columns["true_rf_x_px"][i], columns["true_rf_y_px"][i], "x", color="cyan", ms=7, mew=1.5)
                ax.add_patch(Circle((columns["true_rf_x_px"][i], columns["true_rf_y_px"][i]),
                                    columns["true_rf_sigma_px"][i], fill=False, color="cyan", lw=0.8))
            ax.set_xlim(extent[:2])
            ax.set_ylim(extent[2:])
            ax.tick_params(labelsize=7)
        axes[0, j].set_title(f"neuron {i}, {columns['rf_latency_ms'][i]:.0f} ms", fontsize=9)
    axes[0, 0].set_ylabel("linear RF (mean gradient)", fontsize=8)
    axes[1, 0].set_ylabel("local energy, fit (+) true (x)", fontsize=8)
    if truth:
        ax = axes[0, -1]
        err = columns["rf_center_error_px"]
        ax.hist(err, bins=20)
        ax.set(xlabel="centre error (px)", ylabel="neurons", title=f"median {np.median(err):.2f} px")
        ax = axes[1, -1]
        ax.loglog(columns["true_rf_sigma_px"], columns["rf_size_px"], "o", ms=3)
        lim = [0.8 * min(columns["true_rf_sigma_px"].min(), columns["rf_size_px"].min()),
               1.2 * max(columns["true_rf_sigma_px"].max(), columns["rf_size_px"].max())]
        ax.plot(lim, lim, "k", lw=0.8)
        ax.set(xlabel="true sigma (px)", ylabel="fitted size (px)",
               title=f"median ratio {np.median(columns['rf_size_ratio']):.2f}")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_ticks([0.5, 1, 2, 4])
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
