"""``python -m neuroenc.report SWEEP_DIR [--compare A B]``: one page that answers a sweep.

Reads what training wrote in each job directory (``.hydra/overrides.yaml``, ``metrics.json``,
``per_neuron.csv``), never console text, and writes into SWEEP_DIR (or ``--out``):

- ``report.csv`` and ``report.md``: a row per config (the job's overrides without the seed):
  seeds, best val_bps_overall mean and spread over seeds, per-session bps, fraction of the
  oracle, parameters, time per training step, status;
- ``val_bps.png``: best val_bps_overall per config with the seed spread;
- ``curves.png``: val_bps_overall over epochs for every job;
- ``bps_by_rf_size.png`` and a table in report.md: per-neuron bps by receptive-field size,
  where the data knows it (simulated data);
- with ``--compare A B``: ``compare.png``, a per-neuron scatter of configs A and B (labels as
  in the report, or a unique part of one);
- where the val split shows videos more than once (``meta.json`` ``trial_stimulus``, e.g.
  ``data.simulation.repeats=10``): the neuron means of correlation to average, FEV and oracle
  correlation per config (:func:`neuroenc.metrics.repeat_scores` on the best checkpoint's
  predictions), the per-neuron values cached in each job's ``repeat_scores.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import yaml  # noqa: E402

RF_BINS = [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, math.inf)]


@dataclass
class Job:
    path: Path
    overrides: list[str]
    metrics: dict | None
    per_neuron: list[dict]
    shared: frozenset = frozenset()  # overrides every job of the sweep has: left out of labels
    data: str = ""  # what identifies the job's neurons (see data_key)
    repeats: dict | None = None  # neuron means of the val repeat scores (see repeat_scores_of)

    @property
    def seed(self) -> str:
        return next((o.split("=", 1)[1] for o in self.overrides if o.startswith("seed=")), "0")

    @property
    def config(self) -> str:
        return " ".join(o for o in self.overrides if not o.startswith("seed=") and o not in self.shared) or "(defaults)"

    @property
    def status(self) -> str:
        return (self.metrics or {}).get("status", "failed")


@dataclass
class ConfigRow:
    config: str
    jobs: list[Job] = field(default_factory=list)

    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.status == "finished" and j.metrics.get("best_val_bps_overall") is not None]

    def values(self, key: str) -> list[float]:
        return [j.metrics[key] for j in self.finished() if j.metrics.get(key) is not None]

    def repeat_mean(self, key: str) -> float:
        v = [j.repeats[key] for j in self.finished() if j.repeats and j.repeats.get(key) is not None]
        return statistics.fmean(v) if v else float("nan")

    def mean(self, key: str) -> float:
        v = self.values(key)
        return statistics.fmean(v) if v else float("nan")

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
        return {(j.data, r["session"], int(r["neuron"])): float(r["rf_size"]) for j in self.jobs
                for r in j.per_neuron}


# how windows are cut and batched: the same neurons whatever these are
WINDOW_KEYS = {"window", "burn_in", "batch_size", "num_workers", "seed", "cache_dir"}


def data_key(job_dir: Path) -> str:
    """The job's data config without :data:`WINDOW_KEYS`: jobs with equal keys score the same neurons."""
    f = job_dir / "config_resolved.yaml"
    data = (yaml.safe_load(f.read_text()) or {}).get("data", {}) if f.exists() else {}
    return json.dumps({k: v for k, v in data.items() if k not in WINDOW_KEYS}, sort_keys=True, default=str)


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
        jobs.append(Job(d, [str(o) for o in overrides], json.loads(m.read_text()) if m.exists() else None,
                        list(csv.DictReader(pn.open())) if pn.exists() else [], data=data_key(d)))
    if not jobs:
        raise SystemExit(f"{sweep}: no job directories (none holds .hydra/overrides.yaml)")
    shared = frozenset.intersection(*(frozenset(j.overrides) for j in jobs)) if len(jobs) > 1 else frozenset()
    for j in jobs:
        j.shared = shared
    return jobs


def group(jobs: list[Job]) -> list[ConfigRow]:
    rows: dict[str, ConfigRow] = {}
    for j in jobs:
        rows.setdefault(j.config, ConfigRow(j.config)).jobs.append(j)
    return list(rows.values())


def fmt(v: float, digits: int = 4) -> str:
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
            "oracle_fraction": r.mean("val_oracle_fraction"),
            "parameters": params[0]["total"] if params else None,
            "step_time_s": r.mean("mean_train_step_s"),
            "status": r.status(),
            **{f"bps/{s}": v for s, v in r.sessions().items()},
            **({k: r.repeat_mean(f"{k.removeprefix('val_')}_neuron_mean") for k in REPEAT_COLUMNS}
               if any(j.repeats for j in r.jobs) else {}),
        })
    return out


REPEAT_COLUMNS = ("val_corr_to_average", "val_fev", "val_oracle_corr")


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
    from neuroenc.build import build_datamodule
    from neuroenc.evaluate import score_repeats
    from neuroenc.loading import load

    model = load(ckpt)
    dm = build_datamodule(model.config)
    dm.prepare_data()
    dm.setup()
    columns, pooled = score_repeats(model, dm.sessions, "val")
    atomic.write_json(cache, {"checkpoint": str(ckpt), "val": pooled, "per_neuron": columns})
    return pooled


def rf_breakdown(rows: list[ConfigRow]) -> list[dict]:
    out = []
    for r in rows:
        sizes = r.rf_sizes()
        bps = r.neuron_bps()
        if not bps or all(v != v for v in sizes.values()):
            continue
        row = {"config": r.config}
        for lo, hi in RF_BINS:
            vals = [statistics.fmean(v) for k, v in bps.items() if lo <= sizes.get(k, float("nan")) < hi]
            vals = [v for v in vals if v == v]
            row[f"rf {lo:g}-{hi:g}px"] = (statistics.fmean(vals), len(vals)) if vals else (float("nan"), 0)
        out.append(row)
    return out


def write_markdown(path: Path, sweep: Path, table: list[dict], rf: list[dict]) -> None:
    sessions = sorted({k for row in table for k in row if k.startswith("bps/")})
    repeats = [k for k in REPEAT_COLUMNS if any(k in row for row in table)]
    lines = [f"# Sweep report: {sweep}", "",
             "Best validation bits per spike per config (mean ± std over seeds)"
             + ("; on the val split's repeated videos, neuron means of correlation to average, FEV and oracle "
                "correlation (mean over seeds)" if repeats else "") + ".", "",
             "| config | seeds | val_bps_overall | oracle fraction | " + " | ".join(sessions + repeats) +
             (" | " if sessions or repeats else "") + "params | s/step | status |",
             "|---|---|---|---|" + "---|" * (len(sessions) + len(repeats)) + "---|---|---|"]
    for row in sorted(table, key=lambda r: -r["val_bps_mean"] if r["val_bps_mean"] == r["val_bps_mean"] else 1e9):
        cells = [f"`{row['config']}`", row["seeds"], f"{fmt(row['val_bps_mean'])} ± {fmt(row['val_bps_std'])}",
                 fmt(row["oracle_fraction"], 3), *[fmt(row.get(s)) for s in sessions + repeats],
                 f"{row['parameters']:,}" if row["parameters"] else "n/a", fmt(row["step_time_s"], 3), row["status"]]
        lines.append("| " + " | ".join(cells) + " |")
    if rf:
        bins = [k for k in rf[0] if k.startswith("rf ")]
        lines += ["", "## Per-neuron bps by receptive-field size", "",
                  "Mean per-neuron val bps (over seeds sharing the data, then neurons); n = neurons in the bin.", "",
                  "| config | " + " | ".join(bins) + " |", "|---|" + "---|" * len(bins)]
        for row in rf:
            lines.append(f"| `{row['config']}` | " + " | ".join(f"{fmt(row[b][0])} (n={row[b][1]})" for b in bins) + " |")
    lines += ["", "![val_bps](val_bps.png)", "", "![curves](curves.png)"]
    if rf:
        lines += ["", "![bps by rf size](bps_by_rf_size.png)"]
    path.write_text("\n".join(lines) + "\n")


def wrap(label: str, width: int = 38) -> str:
    return "\n".join(textwrap.wrap(label, width)) or label


def plot_bars(path: Path, table: list[dict]) -> None:
    order = sorted(table, key=lambda r: r["val_bps_mean"] if r["val_bps_mean"] == r["val_bps_mean"] else -1e9)
    fig, ax = plt.subplots(figsize=(7, 1.0 + 0.6 * len(order)))
    ax.barh(range(len(order)), [r["val_bps_mean"] for r in order], xerr=[r["val_bps_std"] for r in order],
            capsize=4, color="tab:blue")
    ax.set_yticks(range(len(order)), [wrap(r["config"]) for r in order], fontsize=7)
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


def plot_rf(path: Path, rf: list[dict]) -> None:
    bins = [k for k in rf[0] if k.startswith("rf ")]
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(rf)
    for i, row in enumerate(rf):
        ax.bar([b + i * width for b in range(len(bins))], [row[b][0] for b in bins], width, label=row["config"])
    ax.set_xticks([b + 0.4 - width / 2 for b in range(len(bins))], bins)
    ax.set_ylabel("mean per-neuron val bits/spike")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def find_row(rows: list[ConfigRow], label: str) -> ConfigRow:
    exact = [r for r in rows if r.config == label]
    hits = exact or [r for r in rows if label in r.config]
    if len(hits) != 1:
        raise SystemExit(f"--compare {label!r} matches {len(hits)} configs: {[r.config for r in rows]}")
    return hits[0]


def plot_compare(path: Path, a: ConfigRow, b: ConfigRow) -> None:
    ba, bb = a.neuron_bps(), b.neuron_bps()
    keys = sorted(set(ba) & set(bb))
    if not keys:
        raise SystemExit("--compare: the two configs share no neurons with per-neuron scores")
    sizes = a.rf_sizes()
    x = [statistics.fmean(ba[k]) for k in keys]
    y = [statistics.fmean(bb[k]) for k in keys]
    c = [sizes.get(k, float("nan")) for k in keys]
    fig, ax = plt.subplots(figsize=(5, 5))
    sc = ax.scatter(x, y, c=c, cmap="viridis", s=12)
    if any(v == v for v in c):
        fig.colorbar(sc, label="RF size (px)")
    lo, hi = min(x + y), max(x + y)
    ax.plot([lo, hi], [lo, hi], "k--", lw=1)
    ax.set_xlabel(wrap(f"{a.config} (val bps)", 60), fontsize=7)
    ax.set_ylabel(wrap(f"{b.config} (val bps)", 60), fontsize=7)
    ax.set_title(f"per-neuron val bits/spike; {sum(v > u for u, v in zip(x, y))}/{len(keys)} above the diagonal",
                 fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(sweep: Path, out: Path | None = None, compare: tuple[str, str] | None = None) -> list[dict]:
    sweep = Path(sweep)
    out = Path(out) if out else sweep
    out.mkdir(parents=True, exist_ok=True)
    jobs = load_jobs(sweep)
    for j in jobs:
        j.repeats = repeat_scores_of(j)
    rows = group(jobs)
    table = table_rows(rows)
    rf = rf_breakdown(rows)
    columns = list(dict.fromkeys(k for row in table for k in row))
    with open(out / "report.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(table)
    write_markdown(out / "report.md", sweep, table, rf)
    plot_bars(out / "val_bps.png", table)
    plot_curves(out / "curves.png", rows)
    if rf:
        plot_rf(out / "bps_by_rf_size.png", rf)
    if compare:
        plot_compare(out / "compare.png", find_row(rows, compare[0]), find_row(rows, compare[1]))
    return table


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m neuroenc.report", description=__doc__.split("\n\n")[0])
    p.add_argument("sweep", type=Path, help="a sweep directory, e.g. multirun/2026-11-29/12-00-00")
    p.add_argument("--out", type=Path, default=None, help="where to write (default: the sweep directory)")
    p.add_argument("--compare", nargs=2, metavar=("A", "B"), help="per-neuron scatter of two configs")
    args = p.parse_args(argv)
    write_report(args.sweep, args.out, tuple(args.compare) if args.compare else None)
    print((args.out or args.sweep) / "report.md")


if __name__ == "__main__":
    main()
