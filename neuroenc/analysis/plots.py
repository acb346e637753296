"""The PNG figures of ``python -m neuroenc.evaluate``; each takes the per-neuron columns it writes
to ``neurons.csv`` (a dict of equal-length lists) and a path."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, also on machines without a display
import matplotlib.pyplot as plt
import numpy as np


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bps_histogram(columns: dict, splits, path: Path) -> None:
    """Per-neuron bits per spike of each split (silent neurons, NaN, left out)."""
    fig, ax = plt.subplots(figsize=(6, 4))
    values = {s: np.asarray(columns[f"{s}_bps"], float) for s in splits}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] or [np.zeros(1)])
    bins = np.linspace(finite.min(), finite.max(), 30).tolist() if finite.size and finite.min() < finite.max() else 10
    for split, v in values.items():
        v = v[np.isfinite(v)]
        ax.hist(v, bins=bins, alpha=0.5, label=f"{split}: median {np.median(v):.3f} (n={v.size})" if v.size else split)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_xlabel("bits per spike (per neuron)")
    ax.set_ylabel("neurons")
    ax.legend()
    _save(fig, path)


def _grid(n: int) -> tuple[int, int]:
    cols = min(n, 3)
    return math.ceil(n / cols), cols


def rf_positions(columns: dict, session_ids: list[str], frames: list[np.ndarray], path: Path) -> None:
    """Each session's readout positions over one of its stimulus frames, coloured by val bps."""
    rows, cols = _grid(len(session_ids))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols + 1, 3.2 * rows + 0.4), squeeze=False,
                             layout="constrained")
    session = np.asarray(columns["session"])
    color = np.asarray(columns.get("val_bps", [0.0] * len(session)), float)
    finite = color[np.isfinite(color)]
    vmin, vmax = (np.percentile(finite, [5, 95]) if finite.size else (0, 1))
    for ax, s, frame in zip(axes.flat, session_ids, frames):
        sel = session == s
        ax.imshow(frame, cmap="gray")
        sc = ax.scatter(np.asarray(columns["rf_x_px"])[sel], np.asarray(columns["rf_y_px"])[sel], c=color[sel],
                        cmap="viridis", vmin=vmin, vmax=vmax, s=18, edgecolors="w", linewidths=0.4)
        ax.set_title(f"{s}: {int(sel.sum())} neurons")
        ax.set_xlim(-0.5, frame.shape[1] - 0.5)
        ax.set_ylim(frame.shape[0] - 0.5, -0.5)
    for ax in list(axes.flat)[len(session_ids):]:
        ax.axis("off")
    fig.colorbar(sc, ax=axes.ravel().tolist(), label="val bits per spike" if "val_bps" in columns else "", shrink=0.8)
    fig.suptitle("readout positions (pixels)")
    fig.savefig(path, dpi=120)  # constrained layout: no tight_layout
    plt.close(fig)


def temporal_filters(frontend, frame_rate: float, path: Path) -> None:
    """The frontend's effective temporal filters against lag (0 = the current frame), and their
    gain against frequency up to Nyquist, where anti-aliasing should bring it to zero."""
    kernels = getattr(frontend, "kernels", None)
    if kernels is None:
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.text(0.5, 0.5, f"{type(frontend).__name__}: no learned temporal filters", ha="center", va="center")
        ax.axis("off")
        ax.set_title("learned frontend temporal filters")
        _save(fig, path)
        return
    fig, (ax, ax_f) = plt.subplots(1, 2, figsize=(11, 4))
    k = kernels().detach().cpu().double().numpy()  # (channels, taps), index 0 = oldest tap
    lag_ms = (k.shape[1] - 1 - np.arange(k.shape[1])) / frame_rate * 1000
    for i, row in enumerate(k):
        ax.plot(lag_ms, row, marker=".", label=f"filter {i}")
    ax.axhline(0, color="k", lw=0.6)
    ax.invert_xaxis()  # the past on the left, now on the right
    ax.set_xlabel("lag (ms before the predicted frame)")
    ax.set_ylabel("weight")
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("learned frontend temporal filters")
    freq, gain = frontend.frequency_response()
    gain = gain.numpy() / np.maximum(gain.numpy().max(axis=1, keepdims=True), 1e-300)
    for i, row in enumerate(gain):
        ax_f.plot(freq.numpy() * frame_rate, row, label=f"filter {i}")
    ax_f.axvline(frame_rate / 2, color="k", ls="--", lw=0.8)
    ax_f.set_xlabel("frequency (Hz; dashed: Nyquist)")
    ax_f.set_ylabel("gain / the filter's peak gain")
    aa = f" (anti-aliased, {frontend.aa_window} window)" if getattr(frontend, "anti_aliasing", False) else ""
    ax_f.set_title(f"frequency response{aa}\nat Nyquist at most {frontend.nyquist_gain():.2g} of the peak", fontsize=10)
    _save(fig, path)


def rf_recovery(columns: dict, frame_shape: tuple[int, int], path: Path) -> None:
    """Simulated data: recovered (readout) vs true receptive-field centres, per axis and as arrows."""
    rx, ry = np.asarray(columns["rf_x_px"]), np.asarray(columns["rf_y_px"])
    tx, ty = np.asarray(columns["true_x_px"]), np.asarray(columns["true_y_px"])
    h, w = frame_shape
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, true, rec, size, name in ((axes[0], tx, rx, w, "x"), (axes[1], ty, ry, h, "y")):
        ax.scatter(true, rec, s=10)
        ax.plot([0, size - 1], [0, size - 1], "k--", lw=0.8)
        r = np.corrcoef(true, rec)[0, 1] if len(true) > 1 and rec.std() > 0 else float("nan")
        ax.set_title(f"{name}: r = {r:.2f}")
        ax.set_xlabel(f"true {name} (px)")
        ax.set_ylabel(f"recovered {name} (px)")
    ax = axes[2]
    ax.quiver(tx, ty, rx - tx, ry - ty, angles="xy", scale_units="xy", scale=1, width=0.003)
    ax.scatter(tx, ty, s=8, c="tab:red", label="true")
    ax.set_xlim(-0.5, w - 0.5)
    ax.set_ylim(h - 0.5, -0.5)
    ax.set_aspect("equal")
    err = np.hypot(rx - tx, ry - ty)
    ax.set_title(f"true -> recovered, median error {np.median(err):.2f} px")
    ax.legend(fontsize=7)
    _save(fig, path)


def shifter(response: dict, summary: dict, path: Path, max_points: int = 3000) -> None:
    """The trained shifter: readout shift against gaze per axis, each session's frames (up to
    ``max_points`` of them, evenly spaced); the diagonal, where the gaze is in pixels, is the
    shift that follows the gaze exactly (the simulator's truth)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    unit = "px" if summary["gaze_in_px"] else "data units"
    for a, (ax, name) in enumerate(zip(axes, "xy")):
        lo, hi = math.inf, -math.inf
        for sid, r in response.items():
            keep = np.linspace(0, len(r["gaze"]) - 1, min(max_points, len(r["gaze"]))).astype(int)
            ax.scatter(r["gaze"][keep, a], r["shift"][keep, a], s=4, alpha=0.3, label=sid)
            lo, hi = min(lo, r["gaze"][:, a].min()), max(hi, r["gaze"][:, a].max())
        if summary["gaze_in_px"] and lo < hi:
            ax.plot([lo, hi], [lo, hi], "k--", lw=0.8, label="shift = gaze")
        ax.set_xlabel(f"gaze {name} ({unit})")
        ax.set_ylabel(f"readout shift {name} (px)")
        per = "px of gaze" if summary["gaze_in_px"] else "unit"
        ax.set_title(f"{name}: slope {summary[f'slope_{name}']:.2f} px per {per}", fontsize=10)
        ax.legend(fontsize=7, markerscale=3)
    if summary["rms_error_px"] is not None:
        fig.suptitle(f"shifter: readouts {summary['rms_error_px']:.2f} px (rms) from where the gaze puts them", fontsize=10)
    _save(fig, path)
