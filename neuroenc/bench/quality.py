"""``python -m neuroenc.bench quality [overrides] --minutes M [--save FILE] [--against REF]``

Time to quality: train a real run (``python -m neuroenc <overrides>``, in a child process) for
``M`` minutes of wall clock and report its best val bits/spike, that as a fraction of the
simulator's oracle, steps, seconds per step, the stimulus-shuffled score and the readouts'
distance to the true receptive fields, with the machine and commit it ran on. ``--save FILE``
keeps that as JSON; ``--against REF`` (a JSON saved so before) prints both side by side with
their differences, and warns when the two machines differ.

What the budget counts: ``trainer.max_time`` (Lightning's Timer) starts when training starts and
stops training at the end of the first step after ``M`` minutes. Before the clock starts: the
data generation (done here, before the run, and reported apart as ``data_prepare_s``), the
process start, building the model and validating it untrained. Inside the budget: training
steps, torch.compile's first step, the validations at epoch ends and checkpoint writes, as in
any run. After it: the validation Lightning runs when the Timer stops training (so the last
steps are scored) and the health scores. The run keeps its own schedule (``trainer.max_epochs``,
the cosine learning rate over it); one that ends its schedule before the clock is reported as
``stopped_by: schedule``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException

from neuroenc import atomic
from neuroenc.bench._machine import describe, differences
from neuroenc.bench._training import oracle_fraction, prepare_data, read_metrics, train_command
from neuroenc.config.validate import ConfigError
from neuroenc.training.resume import override_key

# (label, JSON key, format) of the report, in order
ROWS = [
    ("best val bits/spike", "best_val_bps_overall", "{:.4f}"),
    ("oracle (ground truth) bits/spike", "val_bps_oracle", "{:.4f}"),
    ("fraction of the oracle", "oracle_fraction", "{:.1%}"),
    ("steps", "steps", "{:d}"),
    ("steps the schedule asks for", "planned_steps", "{:d}"),
    ("stopped by", "stopped_by", "{}"),
    ("s/step (training step alone)", "mean_train_step_s", "{:.4f}"),
    ("s/step (budget / steps)", "budget_s_per_step", "{:.4f}"),
    ("stimulus-shuffled bits/spike", "val_bps_stimulus_shuffled", "{:.4f}"),
    ("readout to true RF, median px", "rf_distance_px_median", "{:.2f}"),
    ("budget s", "budget_s", "{:d}"),
    ("data generation s (before the clock)", "data_prepare_s", "{:.1f}"),
    ("run process s (all of it)", "process_s", "{:.1f}"),
]


def max_time(seconds: int) -> str:
    """Lightning's ``DD:HH:MM:SS`` (whole seconds: the only form trainer.max_time takes from a string)."""
    minutes, s = divmod(seconds, 60)
    hours, m = divmod(minutes, 60)
    days, h = divmod(hours, 24)
    return f"{days:02d}:{h:02d}:{m:02d}:{s:02d}"


def _stdout_for_child():
    """The child's stdout goes to our stderr: its progress stays visible, our stdout holds the report."""
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return None


def run(overrides: list[str], minutes: float, run_dir: Path) -> dict:
    budget_s = max(1, round(minutes * 60))
    data_s, planned = prepare_data(overrides)
    cmd = train_command([*overrides, f"trainer.max_time={max_time(budget_s)}"], run_dir)
    (Path(run_dir) / "metrics.json").unlink(missing_ok=True)  # a reused --run-dir: only this run's may be read
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=_stdout_for_child(), stdin=subprocess.DEVNULL)
    process_s = time.perf_counter() - t0
    metrics = read_metrics(run_dir) or {}
    steps = metrics.get("steps")
    out = {
        "benchmark": "quality", "overrides": overrides, "minutes": minutes, "budget_s": budget_s,
        "max_time": max_time(budget_s), "run_dir": str(run_dir), "exit_status": proc.returncode,
        "status": metrics.get("status", "no metrics.json"),
        "best_val_bps_overall": metrics.get("best_val_bps_overall"), "val_bps_oracle": metrics.get("val_bps_oracle"),
        "oracle_fraction": oracle_fraction(metrics) if metrics else None,
        "steps": steps, "planned_steps": planned,
        "stopped_by": None if steps is None else "clock" if planned is None or steps < planned else "schedule",
        "mean_train_step_s": metrics.get("mean_train_step_s"),
        "budget_s_per_step": budget_s / steps if steps else None,
        "val_bps_stimulus_shuffled": metrics.get("val_bps_stimulus_shuffled"),
        "rf_distance_px_median": metrics.get("rf_distance_px_median"),
        "epochs": metrics.get("epochs"), "wall_time_s": metrics.get("wall_time_s"),
        "data_prepare_s": data_s, "process_s": process_s,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": describe(),
    }
    if proc.returncode or not metrics:
        out["error"] = metrics.get("error") or f"python -m neuroenc exited with status {proc.returncode}"
    return out


def _fmt(fmt: str, value) -> str:
    if value is None:
        return "n/a"
    try:
        return fmt.format(value)
    except (ValueError, TypeError):
        return str(value)


def _difference(key: str, fmt: str, a, b) -> str:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (a, b)):
        return "" if a == b else "differs"
    diff = _fmt(fmt.replace("{:", "{:+"), a - b)
    return diff + (f" ({(a - b) / abs(b):+.1%})" if b and key not in ("oracle_fraction",) else "")


def _commit(r: dict) -> str:
    m = r.get("machine", {})
    return (m.get("git_commit") or "?")[:10] + (" (uncommitted changes)" if m.get("git_dirty") else "")


def print_report(result: dict, ref: dict | None = None, ref_name: str = "") -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    table = Table(title=f"python -m neuroenc.bench quality: {result['minutes']:g} min", title_justify="left")
    table.add_column("")
    table.add_column("this run", justify="right")
    if ref is not None:
        table.add_column(f"against {ref_name}", justify="right")
        table.add_column("difference", justify="right")
    for label, key, fmt in ROWS:
        cells = [_fmt(fmt, result.get(key))]
        if ref is not None:
            cells += [_fmt(fmt, ref.get(key)), _difference(key, fmt, result.get(key), ref.get(key))]
        table.add_row(label, *cells)
    console.print(table)
    console.print(f"this run: {' '.join(result['overrides']) or '(defaults)'} at {_commit(result)}")
    if ref is not None:
        console.print(f"against:  {' '.join(ref.get('overrides', [])) or '(defaults)'} at {_commit(ref)}")
    m = result["machine"]
    console.print(f"machine: {m['cpu_model']}, {m['cpu_count']} CPUs, {m['torch_threads']} torch threads, "
                  f"GPUs: {', '.join(m['gpus']) or 'none'}, torch {m['torch']}; run in {result['run_dir']}")
    if ref is not None:
        diffs = differences(m, ref.get("machine", {}))
        if diffs:
            console.print(f"[bold red]warning:[/] the two ran on different machines ({'; '.join(diffs)}): "
                          "their times and what fits in the budget are not comparable")
        if ref.get("budget_s") != result["budget_s"]:
            console.print(f"[bold red]warning:[/] different budgets: {result['budget_s']} s against {ref.get('budget_s')} s")
    if result.get("error"):
        console.print(f"[bold red]error:[/] {result['error']}")


def load_reference(path: Path) -> dict:
    try:
        ref = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError("--against", f"cannot read {str(path)!r} as JSON: {e}") from e
    if not isinstance(ref, dict) or ref.get("benchmark") != "quality":
        raise ConfigError("--against", f"{str(path)!r} is not a JSON saved by `python -m neuroenc.bench quality --save`")
    return ref


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m neuroenc.bench quality", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="the same overrides as python -m neuroenc")
    parser.add_argument("--minutes", type=float, required=True, help="the wall-clock training budget")
    parser.add_argument("--run-dir", type=Path, help="where the run goes (default outputs/bench-quality/<date>_<time>)")
    parser.add_argument("--save", type=Path, metavar="FILE", help="write the result as JSON to FILE")
    parser.add_argument("--against", type=Path, metavar="REF", help="a JSON saved by --save before: compare with it")
    args = parser.parse_intermixed_args(argv)
    if not args.minutes > 0:
        parser.error(f"--minutes must be > 0, not {args.minutes}")
    if any(override_key(o) in ("trainer.max_time", "hydra.run.dir") for o in args.overrides):
        parser.error("--minutes sets trainer.max_time and --run-dir hydra.run.dir: give those instead")
    run_dir = args.run_dir or Path("outputs", "bench-quality", time.strftime("%Y-%m-%d_%H-%M-%S"))
    try:
        ref = load_reference(args.against) if args.against else None
        result = run(args.overrides, args.minutes, run_dir)
    except (ConfigError, ConfigCompositionException, OmegaConfBaseException) as e:
        cause = e.__cause__ if isinstance(e, ConfigCompositionException) and e.__cause__ else e
        print(f"error: {e}" + (f"\n{cause}" if cause is not e else ""), file=sys.stderr)
        return 2
    if args.save:
        atomic.write_text(args.save, json.dumps(result, indent=1) + "\n")
    print_report(result, ref, str(args.against))
    return 1 if result.get("error") else 0


if __name__ == "__main__":
    sys.exit(main())
