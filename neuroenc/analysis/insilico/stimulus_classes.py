"""Scores per stimulus class: how well the model predicts each kind of stimulus it is shown.

Where a session records each trial's stimulus class (meta.json ``trial_class``: the simulator with
``data.simulation.stimuli``), the model's rates on the raw val and test trials (``model.predict``,
the rates validation scores) are scored per class with :mod:`neuroenc.metrics`' bits per spike and
correlation over the valid bins (``dfs``, after each trial's burn-in). On simulated data the true
rates are scored the same way: the ceiling each class allows.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, also on machines without a display
import matplotlib.pyplot as plt
import numpy as np
import torch

from neuroenc.analysis.insilico.probe import Probe, Result, Skipped
from neuroenc.data.sessions import trial_labels
from neuroenc.metrics import BitsPerSpike, Correlation

SPLITS = ("val", "test")


def run(probe: Probe, splits: tuple[str, ...] = SPLITS) -> Result:
    """Per-class scores of the trials of ``splits``.

    Columns: ``bps_<class>`` and ``corr_<class>`` per neuron (NaN where it never spiked or does
    not vary on that class's trials). Summary per class: ``trials``, ``spikes``, ``bps_pooled``
    (summed log-likelihood gains over summed spikes), ``bps_median``, ``corr_median`` and, with
    true rates, ``bps_pooled_truth``.
    """
    session = probe.session
    labels = {} if session is None else trial_labels(session, "trial_class")
    if not labels:
        raise Skipped("no per-trial stimulus labels in meta.json: no per-class scores")
    sid, neurons = probe.session_id, np.asarray(probe.neurons)
    sizes = {sid: len(neurons)}
    scores: dict[str, tuple] = {}  # class -> (BitsPerSpike, Correlation, BitsPerSpike of the truth or None, trials)
    starts, stops, ids = session.trial_runs()
    wanted = {int(t) for split in splits for t in session.meta["splits"].get(split, [])}
    for a, b, t in zip(starts, stops, ids):
        if int(t) not in wanted or int(t) not in labels:
            continue
        label = labels[int(t)]
        if label not in scores:
            scores[label] = (BitsPerSpike(sizes), Correlation(sizes),
                             None if session.rates is None else BitsPerSpike(sizes), [])
        bps, corr, truth, trials = scores[label]
        rates = probe.recorded_rates(int(a), int(b))[:, neurons]
        mask = session.valid(a, b)[:, neurons] & np.isfinite(rates)
        as_batch = lambda x: torch.from_numpy(np.ascontiguousarray(x, np.float32))[None]
        counts, mask_t, rates_t = as_batch(session.robs[a:b][:, neurons]), torch.from_numpy(mask)[None], as_batch(rates)
        bps.update(sid, rates_t, counts, mask_t)
        corr.update(sid, rates_t, counts, mask_t)
        if truth is not None:
            truth.update(sid, as_batch(session.rates[a:b][:, neurons]), counts, mask_t)
        trials.append(int(t))
    if not scores:
        raise Skipped(f"no labelled trial in the {'/'.join(splits)} splits: no per-class scores")

    columns: dict[str, np.ndarray] = {}
    summary: dict = {"splits": list(splits), "classes": {}}
    for label in sorted(scores):
        bps, corr, truth, trials = scores[label]
        result = bps.result()
        per_neuron, r = result.per_neuron[sid], corr.compute().numpy()
        columns[f"bps_{label}"], columns[f"corr_{label}"] = per_neuron, r
        summary["classes"][label] = {
            "trials": len(trials), "spikes": float(result.spikes[sid].sum()), "bps_pooled": _finite(result.overall),
            "bps_median": _median(per_neuron), "corr_median": _median(r),
            **({"bps_pooled_truth": _finite(truth.result().overall)} if truth is not None else {}),
        }

    def plot(path: Path) -> None:
        _figure(path, columns, summary)

    return Result(columns=columns, summary=summary, plot=plot)


def _finite(x: float) -> float | None:
    return float(x) if np.isfinite(x) else None


def _median(v: np.ndarray) -> float | None:
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


def _figure(path: Path, columns: dict, summary: dict) -> None:
    """Per-neuron bits per spike and correlation of each class, as box plots, pooled bps marked."""
    classes = list(summary["classes"])
    fig, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(classes), 4))
    for ax, score, name in ((axes[0], "bps", "bits per spike"), (axes[1], "corr", "correlation")):
        values = [columns[f"{score}_{c}"][np.isfinite(columns[f"{score}_{c}"])] for c in classes]
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(classes) + 1), [f"{c}\n({summary['classes'][c]['trials']} trials)" for c in classes],
                      fontsize=8)
        ax.set_ylabel(f"{name} per neuron")
        ax.axhline(0, color="grey", lw=0.8)
    for i, c in enumerate(classes):
        pooled, truth = summary["classes"][c]["bps_pooled"], summary["classes"][c].get("bps_pooled_truth")
        if pooled is not None:
            axes[0].plot(i + 1, pooled, "o", color="C1", label="pooled (model)" if i == 0 else None)
        if truth is not None:
            axes[0].plot(i + 1, truth, "*", color="C2", ms=10, label="pooled (true rates)" if i == 0 else None)
    if any(line.get_label() and not line.get_label().startswith("_") for line in axes[0].lines):
        axes[0].legend(fontsize=8)
    axes[0].set_title("bits per spike by stimulus class")
    axes[1].set_title("correlation by stimulus class")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
