"""``python -m neuroenc.insilico checkpoint=<run dir or .ckpt> [analyses=[...]] [sessions=[...]] [neurons=[...]]``

Runs the in-silico analyses on every selected session's readout and writes, into
``<run dir>/evaluation/<checkpoint name>/insilico/`` (or ``out_dir``):

    neurons.csv        one row per analysed neuron: session, neuron, then each analysis's columns
    summary.json       per analysis: the seconds it took, its summary per session, the medians of
                       its columns over all neurons (``type_correct``: the fraction), or why it was
                       skipped; ``truth``: the recovery figures against the simulator's truth
    <analysis>_<session>.png   one figure per analysis and session

An analysis that cannot run on a session (no eye columns, no stimulus labels) is skipped with a
one-line reason and the others still run. Sessions without ground truth (meta.json ``neurons``)
get every analysis but the comparison with truth.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from neuroenc import atomic
from neuroenc.analysis.evaluate import best_checkpoint, default_out_dir
from neuroenc.analysis.insilico import gratings, mei, receptive_fields, saccades, stimulus_classes
from neuroenc.analysis.insilico.probe import Probe, Result, Skipped, finite_median
from neuroenc.trained import TrainedEncoder, load

ANALYSES: dict[str, Callable[[Probe], Result]] = {
    "receptive_fields": receptive_fields.run,
    "gratings": gratings.run,
    "mei": mei.run,
    "saccades": saccades.run,
    "stimulus_classes": stimulus_classes.run,
}

# the recovery figures the issue targets, each (summary name, column, how it is reduced, which neurons)
TRUTH_FIGURES = (
    ("rf_center_error_px_median", "rf_center_error_px", "median", None),
    ("rf_size_ratio_median", "rf_size_ratio", "median", None),
    ("orientation_error_deg_median", "orientation_error_deg", "median", None),
    ("abs_log2_sf_ratio_median", "log2_sf_ratio", "median_abs", None),
    ("simple_complex_accuracy", "type_correct", "mean", None),
    ("mei_gabor_corr_median_simple", "mei_gabor_corr", "median", "simple"),
)


class InsilicoError(ValueError):
    """A bad argument of the command; the message names it."""


@dataclass
class Collected:
    """Every session's results of one analysis."""

    columns: list[dict[str, np.ndarray]] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)  # the neurons.csv rows each result fills
    summaries: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0


def resolve_checkpoint(path: str) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        return best_checkpoint(p)
    if not p.is_file():
        raise InsilicoError(f"checkpoint: {str(p)!r} is neither a .ckpt file nor a run directory")
    return p


def check_analyses(names) -> list[str]:
    names = list(names)
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise InsilicoError(f"analyses: {unknown} unknown; choose from {list(ANALYSES)}")
    if not names:
        raise InsilicoError("analyses: empty; choose from " + str(list(ANALYSES)))
    return names


def select_neurons(neurons, session_id: str, n: int) -> np.ndarray:
    """All ``n`` neurons, or the listed indices, each checked against the session's readout."""
    if neurons is None:
        return np.arange(n)
    picked = np.asarray(list(neurons))
    if picked.dtype.kind not in "iu" or picked.ndim != 1:
        raise InsilicoError(f"neurons: {list(neurons)!r} must be a list of neuron indices (integers)")
    bad = [int(i) for i in picked if not 0 <= i < n]
    if bad:
        raise InsilicoError(f"neurons: index {bad[0]} is out of range for session {session_id!r} ({n} neurons: 0-{n - 1})")
    return picked


def truth_of(session, neurons: np.ndarray) -> list[dict] | None:
    recorded = session.meta.get("neurons")
    if not recorded or len(recorded) != session.n_neurons:
        return None
    return [recorded[int(i)] for i in neurons]


def truth_columns(truth: list[dict]) -> dict[str, np.ndarray]:
    """The simulator's parameters of each analysed cell (meta.json ``neurons``)."""
    return {"true_rf_x_px": np.array([t["x"] for t in truth]), "true_rf_y_px": np.array([t["y"] for t in truth]),
            "true_rf_sigma_px": np.array([t["sigma"] for t in truth]),
            "true_theta_deg": np.array([math.degrees(t["theta"]) % 180 for t in truth]),
            "true_wavelength_px": np.array([t["wavelength"] for t in truth]),
            "true_type": np.array([t["type"] for t in truth], dtype=object)}


def reduce(values: np.ndarray, how: str) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    return finite_median(np.abs(v) if how == "median_abs" else v)


def run_insilico(checkpoint: str, analyses=tuple(ANALYSES), sessions=None, neurons=None, out_dir=None,
                 device: str = "cpu", data_root: str | None = None, seed: int = 0) -> dict:
    names = check_analyses(analyses)
    ckpt = resolve_checkpoint(checkpoint)
    model: TrainedEncoder = load(ckpt, map_location=device).eval()
    dm = model.open_data(data_root=data_root)
    by_id = {s.id: s for s in dm.sessions}
    chosen = list(by_id) if sessions is None else list(sessions)
    missing = [s for s in chosen if s not in by_id]
    if missing:
        raise InsilicoError(f"sessions: {missing} not in this model's data ({list(by_id)})")
    picks = {sid: select_neurons(neurons, sid, by_id[sid].n_neurons) for sid in chosen}
    out = Path(out_dir) if out_dir else default_out_dir(ckpt) / "insilico"
    out.mkdir(parents=True, exist_ok=True)

    index = [(sid, int(i)) for sid in chosen for i in picks[sid]]
    collected = {name: Collected() for name in names}
    truth = Collected()  # the true cells' parameters, beside what the analyses recovered
    console = Console()
    torch.manual_seed(seed)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("in-silico analyses", total=len(chosen) * len(names))
        start_row = 0
        for sid in chosen:
            session = by_id[sid]
            h, w = model.info.frame_shape
            probe = Probe(model, sid, picks[sid], session.frame_rate, (int(h), int(w)),
                          int(model.config.data.window), torch.device(device), truth_of(session, picks[sid]),
                          session, seed)
            rows = np.arange(start_row, start_row + len(picks[sid]))
            start_row += len(picks[sid])
            if probe.truth is not None:
                truth.columns.append(truth_columns(probe.truth))
                truth.rows.append(rows)
            for name in names:
                progress.update(task, description=f"{name} on {sid}")
                c = collected[name]
                t0 = time.perf_counter()
                try:
                    result = ANALYSES[name](probe)
                except Skipped as why:
                    c.skipped[sid] = str(why)
                else:
                    c.columns.append(result.columns)
                    c.rows.append(rows)
                    c.summaries[sid] = result.summary
                    if result.plot is not None:
                        result.plot(out / f"{name}_{sid}.png")
                c.seconds += time.perf_counter() - t0
                progress.advance(task)

    table = columns_table(index, {"truth": truth, **collected})
    write_csv(out / "neurons.csv", table)
    summary = {"checkpoint": str(ckpt.resolve()), "epoch": model.checkpoint.epoch,
               "global_step": model.checkpoint.global_step, "sessions": chosen, "neurons": len(index),
               "analyses": {name: analysis_summary(c, table) for name, c in collected.items()},
               "truth": truth_summary(table), "out_dir": str(out)}
    atomic.write_text(out / "summary.json", json.dumps(summary, indent=1, default=float))
    report(summary, console)
    return summary


def columns_table(index: list[tuple[str, int]], collected: dict[str, Collected]) -> dict[str, np.ndarray]:
    """One column per analysis column over every analysed neuron (NaN where a session skipped it)."""
    table: dict[str, np.ndarray] = {"session": np.array([s for s, _ in index], dtype=object),
                                    "neuron": np.array([i for _, i in index])}
    for c in collected.values():
        for columns, rows in zip(c.columns, c.rows):
            for key, values in columns.items():
                values = np.asarray(values)
                if key not in table:
                    table[key] = np.full(len(index), np.nan, dtype=object if values.dtype.kind in "OUSb" else float)
                table[key][rows] = values
    return table


def write_csv(path: Path, table: dict[str, np.ndarray]) -> None:
    with atomic.open_for_write(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(list(table))
        writer.writerows(zip(*table.values()))


def analysis_summary(c: Collected, table: dict[str, np.ndarray]) -> dict:
    keys = {k for columns in c.columns for k in columns}
    medians: dict[str, float | None] = {}
    for k in sorted(keys):
        values = table[k]
        if values.dtype == object:
            flags = [float(v) for v in values if isinstance(v, (bool, np.bool_))]
            if flags:  # a yes/no column (type_correct): the fraction of yes
                medians[k] = float(np.mean(flags))
            continue
        medians[k] = reduce(values, "median")
    return {"seconds": round(c.seconds, 2), "sessions": c.summaries, "medians": medians, "skipped": c.skipped}


def truth_summary(table: dict[str, np.ndarray]) -> dict:
    simple = np.array([t == "simple" for t in table.get("true_type", [])]) if "true_type" in table else None
    figures: dict[str, Any] = {}
    for name, column, how, cells in TRUTH_FIGURES:
        if column not in table:
            continue
        values = table[column]
        if cells == "simple":
            if simple is None:
                continue
            values = values[simple]
        if how == "mean":
            flags = [float(v) for v in values if isinstance(v, (bool, np.bool_, int, float)) and not
                     (isinstance(v, float) and math.isnan(v))]
            figures[name] = float(np.mean(flags)) if flags else None
        else:
            figures[name] = reduce(values.astype(float), how)
    return figures


def report(summary: dict, console: Console) -> None:
    table = Table(title=f"in-silico analyses of {Path(summary['checkpoint']).name} ({summary['neurons']} neurons)")
    for col in ("analysis", "seconds", "ran on", "skipped"):
        table.add_column(col)
    for name, a in summary["analyses"].items():
        reasons: dict[str, list[str]] = {}
        for sid, why in a["skipped"].items():
            reasons.setdefault(why, []).append(sid)
        skipped = "; ".join(why if len(sids) == len(summary["sessions"]) else f"{', '.join(sids)}: {why}"
                            for why, sids in reasons.items())
        table.add_row(name, f"{a['seconds']:.1f}", ", ".join(a["sessions"]) or "-", skipped or "-")
    console.print(table)
    if summary["truth"]:
        truth = Table(title="against the simulator's truth (all analysed neurons)")
        truth.add_column("figure")
        truth.add_column("value", justify="right")
        for k, v in summary["truth"].items():
            truth.add_row(k, "n/a" if v is None else f"{v:.3f}")
        console.print(truth)
    console.print(f"written to {summary['out_dir']}")
