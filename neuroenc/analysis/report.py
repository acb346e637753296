"""``python -m neuroenc.report SWEEP_DIR [--compare A B]``: one page that answers a sweep.

Reads what training wrote in each job directory (``.hydra/overrides.yaml``, ``metrics.json``,
``per_neuron.csv``), never console text, and writes into SWEEP_DIR (or ``--out``):

- ``report.csv`` and ``report.md``: a row per config (the job's overrides without the seed):
  seeds, best val_bps_overall mean and spread over seeds, per-session bps, fraction of the
  oracle, parameters, time per training step, status;
- ``val_bps.png``: best val_bps_overall per config with the seed spread;
- ``curves.png``: val_bps_overall over epochs for every job;
- ``bps_by_rf_size.png`` and a table in report.md: per-neuron bps by receptive-field size in
  terciles of the sweep's neurons, where the data knows it (simulated data);
- ``bps_by_rf_spacing.csv``, ``bps_by_rf_spacing.png`` and a table in report.md: per-neuron bps by
  receptive-field size over the map spacing of each job's own model (the geometric mean of the y
  and x pixels between the readout map's cells: metrics.json's ``map_spacing_px``, or for a job
  recorded before it, the convnet of its ``config_resolved.yaml`` on the simulated frame) in fixed
  bins of map cells (:data:`SPACING_EDGES`), with each config's map spacing and map shape, also
  columns of ``report.csv``; jobs whose spacing is unknown are named, not binned;
- ``val_bps_neuron_mean_clamped (VisionCore's definition)``: the mean over seeds of metrics.json's
  ``best_val_bps_neuron_mean_clamped`` (per-session mean over neurons of max(bps, 0), then mean
  over sessions: how the reference analysis scores), blank where a job does not record it;
- ``uses_stimulus``: "no" for a config with a job whose health figures say it ignores the stimulus
  (:func:`neuroenc.training.health.stimulus_warning`: trained score below twice the stimulus-shuffled one).
  Such configs are listed after the ranked ones, unranked, and compared with nothing;
- with ``--compare A B`` (as often as wanted; labels as in the report, or a unique part of one):
  the paired difference B - A of val bits per spike with a 95% interval, in report.md and
  ``compare.csv``, at two levels (:mod:`neuroenc.analysis.intervals`). *seeds*: ``best_val_bps_overall``
  of A's and B's jobs paired by data (:func:`data_key`, which holds ``data.simulation.seed``) and
  ``seed``, a paired t interval over the pairs: it includes training noise, so it is the one that
  speaks for the configs. *neurons*: each neuron's bps (``per_neuron.csv``) paired by data,
  session and neuron, averaged over the paired seeds, the mean over neurons with a percentile
  bootstrap that resamples neurons within each dataset (fixed RNG seed): it holds the trained
  models fixed. An interval covering 0 reads "no detectable difference", else "B better (worse)
  than A by X [lo, hi]"; a comparison with a config that ignores the stimulus reads "not
  compared". ``compare.png`` has a per-neuron scatter for each pair;
- where the val split shows videos more than once (``meta.json`` ``trial_stimulus``, e.g.
  ``data.simulation.repeats=10``): the neuron means of correlation to average, FEV and oracle
  correlation per config (:func:`neuroenc.metrics.repeat_scores` on the best checkpoint's
  predictions), the per-neuron values cached in each job's ``repeat_scores.json``.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import math
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import yaml
from hydra.utils import instantiate

from neuroenc import atomic
from neuroenc.analysis.intervals import (
    BOOTSTRAP_RESAMPLES,
    paired_t_interval,
    stratified_bootstrap_interval,
    verdict,
)
from neuroenc.training.health import USES_STIMULUS_RATIO, stimulus_warning

RF_BIN_COUNT = 3


def rf_bins(sizes: list[float]) -> list[tuple[float, float]]:
    """Edges that split the pooled receptive-field sizes into equally filled bins (terciles).

    Fixed pixel edges suited one species only: the primate preset's RFs (0.5-2 px) filled two of
    four mouse-sized bins. Edges are rounded to 0.01 px so the table reads; ties merge bins."""
    sizes = [s for s in sizes if s == s]
    if not sizes:
        return []
    inner = np.quantile(sizes, [i / RF_BIN_COUNT for i in range(1, RF_BIN_COUNT)])
    edges = [0.0, *sorted({round(float(q), 2) for q in inner}), math.inf]
    return list(zip(edges[:-1], edges[1:]))


# RF sigma in cells of the map a model reads: fixed edges, so that models whose maps differ in
# spacing are compared on one axis (terciles of the pixel sizes would be the same for all of them)
SPACING_EDGES = (0.25, 0.5, 1.0)
SPACING_BINS = list(zip((0.0, *SPACING_EDGES), (*SPACING_EDGES, math.inf)))


def spacing_label(lo: float, hi: float) -> str:
    return f"< {hi:g}" if lo == 0 else f">= {lo:g}" if hi == math.inf else f"{lo:g}-{hi:g}"


SPACING_LABELS = [spacing_label(lo, hi) for lo, hi in SPACING_BINS]


def which_bin(value: float, bins: list[tuple[float, float]]) -> int | None:
    """Index of the bin ``[lo, hi)`` that holds ``value``; None for NaN or a value outside them all."""
    return next((i for i, (lo, hi) in enumerate(bins) if lo <= value < hi), None)


@dataclass(frozen=True)
class ReadoutMap:
    """The feature map a job's readouts read: pixels between its cells (y, x) and its cells (H', W')."""

    spacing_px: tuple[float, float]
    shape: tuple[int, int]

    @property
    def spacing(self) -> float:
        """One spacing for both axes: the geometric mean, the side of a square cell of the same area."""
        return math.sqrt(self.spacing_px[0] * self.spacing_px[1])

    def spacing_text(self) -> str:
        return "x".join(f"{s:g}" for s in self.spacing_px)

    def shape_text(self) -> str:
        return "x".join(str(n) for n in self.shape)


@dataclass
class Job:
    path: Path
    overrides: list[str]
    metrics: dict  # metrics.json; {} where the job wrote none
    per_neuron: list[dict]
    shared: frozenset = frozenset()  # overrides every job of the sweep has: left out of labels
    data: str = ""  # what identifies the job's neurons (see data_key)
    repeats: dict | None = None  # neuron means of the val repeat scores (see repeat_scores_of)
    map: ReadoutMap | None = None  # None where neither metrics.json nor the config says (see readout_map)

    @property
    def seed(self) -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if o.startswith("seed=")), "0")

    @property
    def config(self) -> str:
        return " ".join(o for o in self.overrides if not o.startswith("seed=") and o not in self.shared) or "(defaults)"

    @property
    def status(self) -> str:
        return (self.metrics or {}).get("status", "failed")

    def rf_sizes(self) -> dict[tuple, float]:
        """(data, session, neuron) -> true RF size in pixels; NaN where the data does not know it."""
        return {(self.data, r["session"], int(r["neuron"])): float(r["rf_size"]) for r in self.per_neuron}


@dataclass
class ConfigRow:
    config: str
    jobs: list[Job] = field(default_factory=list)

    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "finished" and j.metrics.get("best_val_bps_overall") is not None]

    def values(self, key: str) -> list:
        return [j.metrics[key] for j in self.finished() if j.metrics.get(key) is not None]

    def repeat_mean(self, key: str) -> float:
        v = [j.repeats[key] for j in self.finished() if j.repeats and j.repeats.get(key) is not None]
        return statistics.fmean(v) if v else float("nan")

    def mean(self, key: str) -> float:
        v = self.values(key)
        return statistics.fmean(v) if v else float("nan")

    def mean_if_recorded(self, key: str) -> float | None:
        """Mean over the seeds that record ``key`` (finite), None where none does."""
        v = [x for x in self.values(key) if x == x]
        return statistics.fmean(v) if v else None

    def ignoring_stimulus(self) -> list[Job]:
        """Finished jobs whose health figures say they ignore the stimulus."""
        return [j for j in self.finished() if stimulus_warning(j.metrics)]

    def uses_stimulus(self) -> str:
        if self.ignoring_stimulus():
            return "no"
        measured = any(j.metrics.get("val_bps_stimulus_shuffled") is not None for j in self.finished())
        return "yes" if measured else "not measured"

    def spread(self, key: str) -> float:
        v = self.values(key)
        return statistics.stdev(v) if len(v) > 1 else 0.0 if v else float("nan")

    def sessions(self) -> dict[str, float]:
        per: dict[str, list[float]] = {}
        for j in self.finished():
            for s, v in (j.metrics.get("val_bps_per_session") or {}).items():
                per.setdefault(s, []).append(v)
        return {s: statistics.fmean(v) for s, v in sorted(per.items())}

    def status(self) -> str:
        counts: dict[str, int] = {}
        for j in self.jobs:
            counts[j.status] = counts.get(j.status, 0) + 1
        return ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))

    def neuron_bps(self) -> dict[tuple, list[float]]:
        """(data, session, neuron) -> bps over the seeds that share that data.

        On simulated data the seed also draws the neurons, so neuron 3 of seed 0 and of seed 1 are
        different cells: they are kept apart, and a config's seeds then add neurons, not repeats.
        """
        out: dict[tuple, list[float]] = {}
        for j in self.finished():
            for r in j.per_neuron:
                out.setdefault((j.data, r["session"], int(r["neuron"])), []).append(float(r["bps"]))
        return out

    def rf_sizes(self) -> dict[tuple, float]:
        return {k: v for j in self.jobs for k, v in j.rf_sizes().items()}

    def spacing_ratios(self) -> dict[tuple, float]:
        """(data, session, neuron) -> RF size in cells of the map its job's model reads, for the
        jobs whose map is known (jobs sharing data have the same model: one config)."""
        return {k: v / j.map.spacing for j in self.jobs if j.map for k, v in j.rf_sizes().items()}

    def map_text(self, attr: str) -> str | None:
        """The jobs' ``ReadoutMap.<attr>()`` (each value once), None where no job's map is known."""
        texts = dict.fromkeys(getattr(j.map, attr)() for j in self.jobs if j.map)
        return " / ".join(texts) or None


# how windows are cut and batched: the same neurons whatever these are
WINDOW_KEYS = {"window", "burn_in", "batch_size", "num_workers", "seed", "cache_dir"}


def _resolved(job_dir: Path) -> dict:
    """The job's resolved config (``config_resolved.yaml``), empty where it has none."""
    f = job_dir / "config_resolved.yaml"
    return (yaml.safe_load(f.read_text()) or {}) if f.exists() else {}


def data_key(job_dir: Path) -> str:
    """The job's data config without :data:`WINDOW_KEYS`: jobs with equal keys score the same neurons."""
    data = _resolved(job_dir).get("data", {})
    return json.dumps({k: v for k, v in data.items() if k not in WINDOW_KEYS}, sort_keys=True, default=str)


def recorded_map(metrics: dict) -> ReadoutMap | None:
    """The map metrics.json records (runs since it records ``map_spacing_px``), None before."""
    spacing, shape = metrics.get("map_spacing_px"), metrics.get("map_shape")
    if not spacing or not shape:
        return None
    return ReadoutMap((float(spacing[0]), float(spacing[1])), (int(shape[0]), int(shape[1])))


@functools.lru_cache(maxsize=None)
def _configured_map(convnet: str, frame_shape: tuple[int, int]) -> ReadoutMap | None:
    # the geometry depends on strides, kernels and padding only: any channel count builds it
    try:
        grid = instantiate(json.loads(convnet), _convert_="all", in_channels=1).feature_grid(frame_shape)
    except Exception:  # a config older than the convnet's arguments: unknown, not guessed
        return None
    return ReadoutMap((float(grid.step[0]), float(grid.step[1])), (int(grid.shape[0]), int(grid.shape[1])))


def configured_map(config: dict) -> ReadoutMap | None:
    """The map of a resolved config's convnet on its simulated frame, as the encoder computes it
    (``convnet.feature_grid(frame_shape)``); None where the config holds no frame shape (data on
    disk: the sessions' files hold it) or its convnet cannot be built."""
    height, width = _lookup(config, "data.simulation.height"), _lookup(config, "data.simulation.width")
    if "convnet" not in config or not isinstance(height, int) or not isinstance(width, int):
        return None
    return _configured_map(json.dumps(config["convnet"], sort_keys=True), (height, width))


def readout_map(job_dir: Path, metrics: dict) -> ReadoutMap | None:
    return recorded_map(metrics) or configured_map(_resolved(job_dir))


def _job_number(overrides_file: Path) -> tuple:
    """Sort key: Hydra's job number (the directory's leading digits), so job 10 follows job 9."""
    name = overrides_file.parent.parent.name
    head = name.split("_", 1)[0]
    return (int(head) if head.isdigit() else math.inf, str(overrides_file))


def load_jobs(sweep: Path) -> list[Job]:
    jobs = []
    for overrides_file in sorted(sweep.rglob(".hydra/overrides.yaml"), key=_job_number):
        d = overrides_file.parent.parent
        overrides = yaml.safe_load(overrides_file.read_text()) or []
        m = d / "metrics.json"
        pn = d / "per_neuron.csv"
        metrics = json.loads(m.read_text()) if m.exists() else {}
        jobs.append(Job(d, [str(o) for o in overrides], metrics, list(csv.DictReader(pn.open())) if pn.exists() else [],
                        data=data_key(d), map=readout_map(d, metrics)))
    if not jobs:
        raise SystemExit(f"{sweep}: no job directories (none holds .hydra/overrides.yaml)")
    shared = shared_overrides(jobs)
    for j in jobs:
        j.shared = shared
    return jobs


_MISSING = object()


def _lookup(config: dict, dotted: str):
    """The value at ``a.b.c`` of a plain config, ``_MISSING`` where there is none."""
    node = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return node


def shared_overrides(jobs: list[Job]) -> frozenset:
    """Overrides that tell no job apart, left out of labels: those every job has, and a
    ``key=value`` that restates what the jobs without any override of that key ran with (their
    resolved configs all hold that value): ``data.simulation.seed=0`` written for seeds 1 and 2
    and left implicit for seed 0, whose default it is, when the sweeps share a directory."""
    if len(jobs) < 2:
        return frozenset()
    every = frozenset.intersection(*(frozenset(j.overrides) for j in jobs))
    keys = lambda j: {o.partition("=")[0] for o in j.overrides}
    configs = {j.path: _resolved(j.path) for j in jobs}
    restated = set()
    for o in frozenset.union(*(frozenset(j.overrides) for j in jobs)) - every:
        key, sep, text = o.partition("=")
        if not sep or key.startswith(("+", "~")) or key == "seed":
            continue
        without = [j for j in jobs if key not in keys(j)]
        value = yaml.safe_load(text)
        if without and all(_lookup(configs[j.path], key) == value for j in without):
            restated.add(o)
    return every | restated


def group(jobs: list[Job]) -> list[ConfigRow]:
    rows: dict[str, ConfigRow] = {}
    for j in jobs:
        rows.setdefault(j.config, ConfigRow(j.config)).jobs.append(j)
    return list(rows.values())


def fmt(v: float | None, digits: int = 4) -> str:
    return "n/a" if v is None or v != v else f"{v:.{digits}f}"


def table_rows(rows: list[ConfigRow]) -> list[dict]:
    out = []
    for r in rows:
        params = r.values("parameters")
        out.append({
            "config": r.config,
            "seeds": " ".join(sorted(j.seed for j in r.jobs)),
            "val_bps_mean": r.mean("best_val_bps_overall"),
            "val_bps_std": r.spread("best_val_bps_overall"),
            VISIONCORE_METRIC: r.mean_if_recorded("best_val_bps_neuron_mean_clamped"),
            "oracle_fraction": r.mean("val_oracle_fraction"),
            "parameters": params[0]["total"] if params else None,
            "step_time_s": r.mean("mean_train_step_s"),
            "status": r.status(),
            "uses_stimulus": r.uses_stimulus(),
            # the health figures behind uses_stimulus, to read before any comparison
            "stimulus_shuffled_bps": r.mean_if_recorded("val_bps_stimulus_shuffled"),
            "rf_error_px": r.mean_if_recorded("rf_distance_px_median"),
            # where the readouts started: what the end is compared with, to see what training moved
            "rf_start_px": r.mean_if_recorded("init_rf_distance_px_median"),
            "map_spacing_px": r.map_text("spacing_text"),
            "map_shape": r.map_text("shape_text"),
            **{f"bps/{s}": v for s, v in r.sessions().items()},
            **({k: r.repeat_mean(f"{k.removeprefix('val_')}_neuron_mean") for k in REPEAT_COLUMNS}
               if any(j.repeats for j in r.jobs) else {}),
        })
    return out


REPEAT_COLUMNS = ("val_corr_to_average", "val_fev", "val_oracle_corr")
VISIONCORE_METRIC = "val_bps_neuron_mean_clamped (VisionCore's definition)"


def ranked(table: list[dict]) -> list[dict]:
    """Rows by mean val bps, best first; rows that ignore the stimulus after them (not ranked: their
    scores say nothing about the stimulus), then rows without a score."""
    def key(row):
        score = row["val_bps_mean"]
        return row["uses_stimulus"] == "no", -score if score == score else math.inf
    return sorted(table, key=key)


def repeat_scores_of(job: Job) -> dict | None:
    """Neuron means of the val split's repeat scores for the job's best checkpoint, or None when
    it has none or the split repeats no video. Computed once per checkpoint and kept, with the
    per-neuron values, in ``<job>/repeat_scores.json``."""
    ckpt = (job.metrics or {}).get("best_checkpoint")
    if job.status != "finished" or not ckpt or not Path(ckpt).is_file():
        return None
    cache = job.path / "repeat_scores.json"
    if cache.exists():
        stored = json.loads(cache.read_text())
        if stored.get("checkpoint") == str(ckpt):
            return stored["val"]
    from neuroenc import atomic
    from neuroenc.analysis.evaluate import score_repeats
    from neuroenc.trained import load

    model = load(ckpt)
    columns, pooled = score_repeats(model, model.open_data().sessions, "val")
    atomic.write_json(cache, {"checkpoint": str(ckpt), "val": pooled, "per_neuron": columns})
    return pooled


def binned_means(bps: dict[tuple, list[float]], values: dict[tuple, float],
                 bins: list[tuple[float, float]]) -> list[tuple[float, int]]:
    """Per bin of ``values`` (an RF size per neuron), the mean over neurons of each neuron's bps
    averaged over its seeds, and the number of neurons; (NaN, 0) for an empty bin."""
    per: list[list[float]] = [[] for _ in bins]
    for k, seeds in bps.items():
        i = which_bin(values.get(k, math.nan), bins)
        bps_k = statistics.fmean(seeds)
        if i is not None and bps_k == bps_k:
            per[i].append(bps_k)
    return [(statistics.fmean(p), len(p)) if p else (math.nan, 0) for p in per]


def _binnable(bps: dict, values: dict[tuple, float]) -> bool:
    return bool(bps) and any(v == v for v in values.values())


def rf_breakdown(rows: list[ConfigRow]) -> list[dict]:
    """A row per config with RF sizes: ``bins`` maps each tercile's label to (mean bps, neurons)."""
    # one set of edges for every config, from each simulated neuron counted once
    pooled = {k: v for r in rows for k, v in r.rf_sizes().items()}
    bins = rf_bins(list(pooled.values()))
    labels = [f"rf {lo:g}-{hi:g}px" for lo, hi in bins]
    return [{"config": r.config, "bins": dict(zip(labels, binned_means(r.neuron_bps(), r.rf_sizes(), bins)))}
            for r in rows if _binnable(r.neuron_bps(), r.rf_sizes())]


def rf_spacing_breakdown(rows: list[ConfigRow]) -> list[dict]:
    """A row per config whose jobs' maps are known: its map spacing and shape, and ``bins`` mapping
    each :data:`SPACING_LABELS` bin of RF size / map spacing to (mean bps, neurons)."""
    return [{"config": r.config, "map_spacing_px": r.map_text("spacing_text"), "map_shape": r.map_text("shape_text"),
             "bins": dict(zip(SPACING_LABELS, binned_means(r.neuron_bps(), r.spacing_ratios(), SPACING_BINS)))}
            for r in rows if _binnable(r.neuron_bps(), r.spacing_ratios())]


def unmapped_jobs(rows: list[ConfigRow]) -> list[Job]:
    """Finished jobs with RF sizes but no known map: left out of the spacing table, and named."""
    return [j for r in rows for j in r.finished() if j.map is None and any(v == v for v in j.rf_sizes().values())]


def binned_csv_rows(breakdown: list[dict]) -> list[dict]:
    """A breakdown's rows flat: its bins as ``<bin> bps`` and ``<bin> n`` columns."""
    return [{**{k: v for k, v in row.items() if k != "bins"},
             **{f"{b} {name}": x for b, cell in row["bins"].items() for name, x in zip(("bps", "n"), cell)}}
            for row in breakdown]


def rf_error_cell(row: dict) -> str:
    """The readouts' median distance from their cells: 'start -> end', or the end alone where the
    start is not recorded (runs from before it was)."""
    end = fmt(row["rf_error_px"], 2)
    return end if row["rf_start_px"] is None or row["rf_error_px"] is None else f"{fmt(row['rf_start_px'], 2)} -> {end}"


def write_markdown(path: Path, sweep: Path, table: list[dict], rf: list[dict], spacing: list[dict],
                   rows: list[ConfigRow], comparisons: list[dict]) -> None:
    sessions = sorted({k for row in table for k in row if k.startswith("bps/")})
    repeats = [k for k in REPEAT_COLUMNS if any(k in row for row in table)]
    lines = [f"# Sweep report: {sweep}", "",
             "Best validation bits per spike per config (mean ± std over seeds), best first"
             + ("; on the val split's repeated videos, neuron means of correlation to average, FEV and oracle "
                "correlation (mean over seeds)" if repeats else "") + ". "
             f"*{VISIONCORE_METRIC}* is VisionCore's score (per session the mean over neurons of max(bps, 0), then the "
             "mean over sessions; mean over seeds), blank where a run does not record it. "
             "*uses stimulus* comes from the health figures: *no* when a seed's trained score is below "
             f"{USES_STIMULUS_RATIO:g}x its stimulus-shuffled score; such configs are listed last and not ranked. "
             "*shuffled* is that score (the trained model on shuffled stimuli, mean over seeds) and *RF error* "
             "the median distance of the readouts from the true receptive fields in pixels (simulated data): at the "
             "data-driven start, then after training, where both are recorded.", "",
             f"| config | seeds | val_bps_overall | {VISIONCORE_METRIC} | oracle fraction | "
             + " | ".join(sessions + repeats) + (" | " if sessions or repeats else "")
             + "params | s/step | status | uses stimulus | shuffled | RF error (px) |",
             "|---|---|---|---|---|" + "---|" * (len(sessions) + len(repeats)) + "---|---|---|---|---|---|"]
    for row in ranked(table):
        visioncore_metric = "" if row[VISIONCORE_METRIC] is None else fmt(row[VISIONCORE_METRIC])
        uses = "**no: not ranked**" if row["uses_stimulus"] == "no" else row["uses_stimulus"]
        cells = [f"`{row['config']}`", row["seeds"], f"{fmt(row['val_bps_mean'])} ± {fmt(row['val_bps_std'])}",
                 visioncore_metric, fmt(row["oracle_fraction"], 3), *[fmt(row.get(s)) for s in sessions + repeats],
                 f"{row['parameters']:,}" if row["parameters"] else "n/a", fmt(row["step_time_s"], 3), row["status"],
                 uses, fmt(row["stimulus_shuffled_bps"]), rf_error_cell(row)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += stimulus_warnings(rows)
    if comparisons:
        lines += comparison_section(comparisons)
    if rf:
        lines += ["", "## Per-neuron bps by receptive-field size", "",
                  "Mean per-neuron val bps (over seeds sharing the data, then neurons); n = neurons in the bin.", "",
                  *binned_table(rf)]
        lines += spacing_section(spacing, unmapped_jobs(rows))
    lines += ["", "![val_bps](val_bps.png)", "", "![curves](curves.png)"]
    if comparisons:
        lines += ["", "![per-neuron comparisons](compare.png)"]
    if rf:
        lines += ["", "![bps by rf size](bps_by_rf_size.png)"]
    if spacing:
        lines += ["", "![bps by rf size relative to map spacing](bps_by_rf_spacing.png)"]
    atomic.write_text(path, "\n".join(lines) + "\n")


def binned_table(breakdown: list[dict], columns: tuple[str, ...] = ()) -> list[str]:
    """A markdown table of a breakdown: config, ``columns`` of its rows, then a column per bin."""
    bins = list(breakdown[0]["bins"])
    lines = ["| config | " + " | ".join([*columns, *bins]) + " |", "|---|" + "---|" * (len(columns) + len(bins))]
    for row in breakdown:
        cells = [str(row[c]) for c in columns] + [f"{fmt(m)} (n={n})" for m, n in row["bins"].values()]
        lines.append(f"| `{row['config']}` | " + " | ".join(cells) + " |")
    return lines


def spacing_section(spacing: list[dict], unmapped: list[Job]) -> list[str]:
    lines = ["", "## bps by RF size relative to map spacing", "",
             "Whether a model can represent a cell depends on the cell's RF size in cells of the map its readout "
             "reads, so each neuron's RF size (the simulated Gabor's sigma, px) is divided by the map spacing of its "
             "own job's model (px between map cells, the geometric mean of the y and x spacing) and binned at fixed "
             "edges, the same for every config. Mean per-neuron val bps (over seeds sharing the data, then "
             "neurons); n = neurons in the bin, which differ between models as their spacing does. "
             "*map_spacing_px*: y x x pixels between cells; *map_shape*: H' x W' cells.", ""]
    if spacing:
        lines += binned_table(spacing, ("map_spacing_px", "map_shape"))
    if unmapped:
        named = ", ".join(f"`{j.config}` seed {j.seed} ({j.path.name})" for j in unmapped)
        lines += ["", f"Left out (no `map_spacing_px` in metrics.json, and no frame shape and convnet in "
                      f"config_resolved.yaml to compute it from): {named}."]
    return lines


def stimulus_warnings(rows: list[ConfigRow]) -> list[str]:
    """report.md lines quoting the health warning of every job that ignores the stimulus."""
    lines = [f"- `{r.config}`, seed {j.seed}: {stimulus_warning(j.metrics)}"
             for r in rows for j in r.ignoring_stimulus()]
    return ["", "Not ranked, compared with nothing:", "", *lines] if lines else []


def comparison_section(comparisons: list[dict]) -> list[str]:
    lines = ["", "## Comparisons", "",
             "B - A of val bits per spike with 95% intervals. *seeds*: `best_val_bps_overall` of jobs paired by "
             "data and seed, paired t interval over the pairs; it includes training noise, so it is the row that "
             "speaks for the configs. *neurons*: per-neuron bps paired by data, session and neuron (averaged over "
             f"the paired seeds), mean over neurons with a percentile bootstrap ({BOOTSTRAP_RESAMPLES:,} resamples "
             "of neurons within each dataset, fixed seed); it holds the trained models fixed, so it says whether "
             "the difference holds across neurons, not whether retraining would repeat it. An interval that covers "
             "0 is no detectable difference.", "",
             "| A | B | level | n pairs | mean difference | 95% interval | verdict |", "|---|---|---|---|---|---|---|"]
    for c in comparisons:
        shown = not c["verdict"].startswith(NOT_COMPARED)
        mean = fmt(c["mean_difference"]) if shown else ""
        interval = f"[{fmt(c['ci_low'])}, {fmt(c['ci_high'])}]" if shown and c["ci_low"] == c["ci_low"] else ""
        lines.append(f"| `{c['a']}` | `{c['b']}` | {c['level']} | {c['n_pairs']} | {mean} | {interval} "
                     f"| {c['verdict']} |")
    return lines


def wrap(label: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def plot_bars(path: Path, table: list[dict]) -> None:
    order = ranked(table)[::-1]  # barh draws the first bar at the bottom: the best on top
    ignores = [r["uses_stimulus"] == "no" for r in order]
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.6 * len(order)))
    ax.barh(range(len(order)), [r["val_bps_mean"] for r in order], xerr=[r["val_bps_std"] for r in order],
            capsize=4, color=["tab:gray" if i else "tab:blue" for i in ignores])
    ax.set_yticks(range(len(order)), [wrap(r["config"] + (" (ignores the stimulus: not ranked)" if i else ""))
                                      for r, i in zip(order, ignores)], fontsize=7)
    ax.set_xlabel("best val bits/spike (mean over seeds; bar: std)")
    ax.set_title("val_bps_overall by config", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(path: Path, rows: list[ConfigRow]) -> None:
    fig, ax = plt.subplots(figsize=(6, 4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(rows):
        for k, j in enumerate(r.jobs):
            hist = (j.metrics or {}).get("history") or []
            if hist:
                ax.plot([h["epoch"] for h in hist], [h["val_bps_overall"] for h in hist], color=colors[i % len(colors)],
                        alpha=0.8, label=wrap(r.config, 50) if k == 0 else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel("val bits/spike")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_binned(path: Path, breakdown: list[dict], title: str, xlabel: str, legend=lambda row: row["config"]) -> None:
    """A bar group per bin, a bar per config, each bar labelled with its number of neurons."""
    bins = list(breakdown[0]["bins"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.8 / len(breakdown)
    for i, row in enumerate(breakdown):
        cells = list(row["bins"].values())
        bars = ax.bar([b + i * width for b in range(len(bins))], [m for m, _ in cells], width, label=wrap(legend(row), 90))
        # the bins hold different neurons per model: a bar of 3 neurons is not a bar of 300
        ax.bar_label(bars, [f"n={n}" if n else "" for _, n in cells], fontsize=6)
    ax.set_xticks([b + 0.4 - width / 2 for b in range(len(bins))], bins)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean per-neuron val bits/spike")
    ax.axhline(0, color="k", lw=0.5)
    # below the axes: inside, it hid the n of the tallest bars
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def find_row(rows: list[ConfigRow], label: str) -> ConfigRow:
    exact = [r for r in rows if r.config == label]
    hits = exact or [r for r in rows if label in r.config]
    if len(hits) != 1:
        raise SystemExit(f"--compare {label!r} matches {len(hits)} configs: {[r.config for r in rows]}")
    return hits[0]


def compared_rows(rows: list[ConfigRow], a: str, b: str) -> tuple[ConfigRow, ConfigRow]:
    ra, rb = find_row(rows, a), find_row(rows, b)
    if ra is rb:
        raise SystemExit(f"--compare {a!r} {b!r}: both name the config {ra.config!r}")
    return ra, rb


def seed_pairs(a: ConfigRow, b: ConfigRow) -> list[tuple[Job, Job]]:
    """Finished jobs of A and of B on the same data with the same seed."""
    of_b = {(j.data, j.seed): j for j in b.finished()}
    return [(j, of_b[(j.data, j.seed)]) for j in a.finished() if (j.data, j.seed) in of_b]


def neuron_differences(pairs: list[tuple[Job, Job]]) -> dict[str, list[float]]:
    """Per dataset, each neuron's B - A val bps, averaged over the seed pairs that score it. A neuron
    is one sampling unit whatever the number of seeds on its data, so the bootstrap resamples it once."""
    per: dict[tuple, list[float]] = {}
    for ja, jb in pairs:
        bps_b = {(r["session"], int(r["neuron"])): float(r["bps"]) for r in jb.per_neuron}
        for r in ja.per_neuron:
            key = (r["session"], int(r["neuron"]))
            d = bps_b.get(key, math.nan) - float(r["bps"])
            if d == d:  # a neuron silent on the val split has no bps
                per.setdefault((ja.data, *key), []).append(d)
    groups: dict[str, list[float]] = {}
    for (data, *_), ds in per.items():
        groups.setdefault(data, []).append(statistics.fmean(ds))
    return groups


NOT_COMPARED = "not compared"


def refusal(a: ConfigRow, b: ConfigRow) -> str | None:
    ignoring = [name for name, r in (("A", a), ("B", b)) if r.ignoring_stimulus()]
    if not ignoring:
        return None
    return (f"{NOT_COMPARED}: {' and '.join(ignoring)} {'ignores' if len(ignoring) == 1 else 'ignore'} the stimulus "
            f"(trained score below {USES_STIMULUS_RATIO:g}x the stimulus-shuffled one)")


def compare_configs(a: ConfigRow, b: ConfigRow) -> list[dict]:
    """compare.csv's rows for B - A: one for seeds, one for neurons."""
    pairs = seed_pairs(a, b)
    by_seed = [jb.metrics["best_val_bps_overall"] - ja.metrics["best_val_bps_overall"] for ja, jb in pairs]
    by_neuron = neuron_differences(pairs)
    refused = refusal(a, b)
    out = []
    for level, values, interval in (
            ("seeds", by_seed, paired_t_interval(by_seed)),
            ("neurons", [d for g in by_neuron.values() for d in g], stratified_bootstrap_interval(by_neuron.values()))):
        out.append({"a": a.config, "b": b.config, "level": level, "n_pairs": len(values),
                    "mean_difference": statistics.fmean(values) if values else math.nan,
                    "ci_low": interval.low if interval else math.nan,
                    "ci_high": interval.high if interval else math.nan,
                    "verdict": refused or (verdict(interval) if values else "nothing to pair")})
    return out


def plot_compare(path: Path, pairs: list[tuple[ConfigRow, ConfigRow]]) -> None:
    """A per-neuron scatter of B against A for each pair, neurons averaged over seeds sharing their data."""
    fig, axes = plt.subplots(1, len(pairs), figsize=(5 * len(pairs), 5), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs):
        ba, bb = a.neuron_bps(), b.neuron_bps()
        keys = sorted(set(ba) & set(bb))
        if not keys:
            ax.text(0.5, 0.5, "no neurons scored by both", ha="center", transform=ax.transAxes)
            continue
        sizes = a.rf_sizes()
        x = [statistics.fmean(ba[k]) for k in keys]
        y = [statistics.fmean(bb[k]) for k in keys]
        c = [sizes.get(k, float("nan")) for k in keys]
        sc = ax.scatter(x, y, c=c, cmap="viridis", s=12)
        if any(v == v for v in c):
            fig.colorbar(sc, ax=ax, label="RF size (px)")
        lo, hi = min(x + y), max(x + y)
        ax.plot([lo, hi], [lo, hi], "k--", lw=1)
        ax.set_xlabel(wrap(f"A: {a.config} (val bps)", 60), fontsize=7)
        ax.set_ylabel(wrap(f"B: {b.config} (val bps)", 60), fontsize=7)
        ax.set_title(f"per-neuron val bits/spike; {sum(v > u for u, v in zip(x, y))}/{len(keys)} above the diagonal",
                     fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_csv(path: Path, rows: list[dict]) -> None:
    """A row per dict; the columns of every row, in the order they first appear."""
    with atomic.open_for_write(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        w.writeheader()
        w.writerows(rows)


def write_report(sweep: Path, out: Path | None = None,
                 compare: list[tuple[str, str]] | tuple[str, str] | None = None) -> list[dict]:
    """Writes the report; ``compare`` is a list of (A, B) labels, or a single pair."""
    if compare and isinstance(compare[0], str):
        compare = [compare]
    sweep = Path(sweep)
    out = Path(out) if out else sweep
    out.mkdir(parents=True, exist_ok=True)
    jobs = load_jobs(sweep)
    for j in jobs:
        j.repeats = repeat_scores_of(j)
    rows = group(jobs)
    table = table_rows(rows)
    rf = rf_breakdown(rows)
    spacing = rf_spacing_breakdown(rows)
    write_csv(out / "report.csv", table)
    pairs = [compared_rows(rows, a, b) for a, b in compare or []]
    comparisons = [c for a, b in pairs for c in compare_configs(a, b)]
    if comparisons:
        write_csv(out / "compare.csv", comparisons)
        plot_compare(out / "compare.png", pairs)
    write_markdown(out / "report.md", sweep, table, rf, spacing, rows, comparisons)
    plot_bars(out / "val_bps.png", table)
    plot_curves(out / "curves.png", rows)
    if rf:
        plot_binned(out / "bps_by_rf_size.png", rf, "per-neuron bps by receptive-field size",
                    "receptive-field size (terciles of the sweep's neurons)")
    if spacing:
        write_csv(out / "bps_by_rf_spacing.csv", binned_csv_rows(spacing))
        plot_binned(out / "bps_by_rf_spacing.png", spacing, "per-neuron bps by RF size relative to the model's map spacing",
                    "RF sigma / map spacing (map cells; spacing: geometric mean of y and x)",
                    legend=lambda row: f"{row['config']} (map {row['map_shape']}, {row['map_spacing_px']} px)")
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m neuroenc.report", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", type=Path, help="a sweep directory, e.g. multirun/2026-11-29/12-00-00")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the sweep directory)")
    p.add_argument("--compare", nargs=2, action="append", metavar=("A", "B"),
                   help="B - A with 95%% intervals over seeds and over neurons, and a per-neuron scatter; "
                        "give it once per pair")
    args = p.parse_args(argv)
    write_report(args.sweep, args.out, [tuple(c) for c in args.compare or []])
    print((args.out or args.sweep) / "report.md")


if __name__ == "__main__":
    main()
