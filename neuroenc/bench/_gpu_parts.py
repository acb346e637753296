"""The parts of ``python -m neuroenc.bench gpu`` (see there): each ``part(args, out, deadline, note, done)``
returns its record (``status``: done, partial, failed or skipped; ``summary``: one line) and stops
its children at ``deadline`` (``time.monotonic()``); ``note`` shows progress, ``done`` holds the
records of the parts before it."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch

from neuroenc.bench._processes import Job, Outcome, run_jobs
from neuroenc.bench._training import oracle_fraction, prepare_data, read_metrics, train_command

PRECISIONS = {"bf16": "bf16-mixed", "fp32": "32-true"}
# a child of the step parts gets an equal share of the time left, but at least this (seconds):
# fewer presets measured in full beat every preset stopped half-way
MIN_CHILD_S = {"steps": 45.0, "compile": 90.0}
# bf16-mixed keeps fp32 weights, optimizer state and loss (autocast runs the convolutions and matrix
# products in bf16), so after the same 300 steps its val score should differ from fp32's about as
# much as runs do whose kernels round differently (another cuDNN algorithm, another GPU): a
# trajectory that drifted, not a different model. 0.02 bits/spike is 3-4% of the default's
# 0.5-0.6 after a full run; a precision defect (an overflow, a loss summed in bf16) shows as a
# non-finite loss or a score off by far more. Not yet set against a measured fp32-to-fp32 spread
# on a GPU: none was lent when it was chosen
TOLERANCE_BPS = 0.02
METRICS = ("best_val_bps_overall", "val_bps_oracle", "steps", "mean_train_step_s", "val_bps_stimulus_shuffled",
           "rf_distance_px_median", "wall_time_s")


def run_overrides(args, model: str, precision: str, steps: int, devices: int = 1, strategy: str = "auto") -> list[str]:
    """A run of ``steps`` steps validated once, at its end, on ``devices`` of ``args.device``."""
    return [*([] if model == "default" else [f"experiment={model}"]), "seed=0", "eval_init=false",
            "trainer.enable_progress_bar=false", *args.overrides,
            f"trainer.precision={precision}", f"trainer.max_steps={steps}", "trainer.max_epochs=-1",
            f"trainer.val_check_interval={steps}", "trainer.check_val_every_n_epoch=null",
            f"trainer.accelerator={'gpu' if args.device == 'cuda' else 'cpu'}", f"trainer.devices={devices}",
            f"trainer.strategy={strategy}"]


def fresh(run_dir: Path) -> Path:
    """``run_dir`` without a metrics.json from an earlier use of the same ``--out``, which a run
    stopped before writing its own would leave to be read as this one's."""
    (Path(run_dir) / "metrics.json").unlink(missing_ok=True)
    return run_dir


def run_record(name: str, run_dir: Path, outcome: Outcome, log: Path) -> dict:
    metrics = read_metrics(run_dir) or {}
    record = {"name": name, "run_dir": str(run_dir), "log": str(log), "exit_status": outcome.returncode,
              "seconds": round(outcome.seconds, 1), "status": metrics.get("status", "no metrics.json"),
              **{k: metrics.get(k) for k in METRICS}, "oracle_fraction": oracle_fraction(metrics) if metrics else None}
    if outcome.returncode != 0 or not metrics:
        record["error"] = metrics.get("error") or outcome.error_line(log)
    return record


def training(args, out: Path, deadline: float, note: Callable[[str], None], done: dict) -> dict:
    data_s = {}
    for model in args.models:  # once, here: four runs generating the same data at once would race for the cache
        note(f"training: data for {model}")
        data_s[model] = round(prepare_data(run_overrides(args, model, "32-true", args.steps))[0], 1)
    jobs, dirs = [], {}
    for model in args.models:
        for p, precision in PRECISIONS.items():
            name = f"{model}-{p}"
            dirs[name] = fresh(out / "runs" / name)
            jobs.append(Job(name, train_command(run_overrides(args, model, precision, args.steps), dirs[name]),
                            out / "logs" / f"train-{name}.log"))
    note(f"training: {len(jobs)} runs of {args.steps} steps side by side")
    outcomes = run_jobs(jobs, deadline, tick=lambda: note(f"training: {len(jobs)} runs of {args.steps} steps"))
    runs = {o.name: run_record(o.name, dirs[o.name], o, job.log) for o, job in zip(outcomes, jobs)}
    comparisons = []
    for model in args.models:
        bf16, fp32 = (runs[f"{model}-{p}"].get("best_val_bps_overall") for p in PRECISIONS)
        diff = None if bf16 is None or fp32 is None else bf16 - fp32
        comparisons.append({"model": model, "fp32_val_bps": fp32, "bf16_val_bps": bf16, "bf16_minus_fp32": diff,
                            "tolerance_bps": TOLERANCE_BPS,
                            "result": "n/a" if diff is None else "pass" if abs(diff) <= TOLERANCE_BPS else "fail"})
    failed = [r["name"] for r in runs.values() if "error" in r]
    return {"status": "failed" if len(failed) == len(runs) else "partial" if failed else "done",
            "summary": "; ".join(f"{c['model']}: bf16 - fp32 " + ("n/a" if c["bf16_minus_fp32"] is None else
                                 f"{c['bf16_minus_fp32']:+.4f} bits/spike, {c['result']}") for c in comparisons),
            "data_prepare_s": data_s, "runs": list(runs.values()), "comparisons": comparisons}


def ddp(args, out: Path, deadline: float, note: Callable[[str], None], done: dict) -> dict:
    gpus = torch.cuda.device_count() if args.device == "cuda" else 0
    devices = args.ddp_devices if args.ddp_devices is not None else gpus
    if devices < 2:
        why = (f"{gpus} GPU visible" if args.device == "cuda" else "--device cpu") + \
              ": DDP needs 2 or more devices (--ddp-devices N runs N ranks)"
        return {"status": "skipped", "summary": why}
    model = args.models[0]
    note(f"ddp: data for {model}")
    overrides = run_overrides(args, model, "32-true", args.ddp_steps, devices=devices, strategy="ddp")
    prepare_data(overrides)
    run_dir, log = fresh(out / "runs" / f"ddp-{devices}"), out / "logs" / f"train-ddp-{devices}.log"
    note(f"ddp: {devices} ranks, {args.ddp_steps} steps")
    (outcome,) = run_jobs([Job("ddp", train_command(overrides, run_dir), log)], deadline,
                          tick=lambda: note(f"ddp: {devices} ranks, {args.ddp_steps} steps"))
    record = {"devices": devices, "model": model, **run_record(f"ddp-{devices}", run_dir, outcome, log)}
    record["status"] = "failed" if "error" in record else "done"
    record["summary"] = record.get("error") or (f"{devices} ranks, {record['steps']} steps, val "
                                                f"{record['best_val_bps_overall']:.4f} bits/spike")
    return record


def _step_rows(args, out: Path, deadline: float, note, part: str, wanted: list[str], skip: dict[str, str]) -> list[dict]:
    """Each preset's ``wanted`` variants, one child per preset; ``skip``: preset -> why it is not run."""
    rows = []
    todo = [p for p in args.presets if p not in skip]
    for k, preset in enumerate(args.presets):
        if preset in skip:
            rows += [{"preset": preset, "variant": v, "error": skip[preset]} for v in wanted]
            continue
        left = deadline - time.monotonic()
        if left < 1:
            rows += [{"preset": preset, "variant": v, "error": f"not run: the {part} budget was spent"} for v in wanted]
            continue
        share = left / (len(todo) - todo.index(preset))
        timeout = min(left, max(share, MIN_CHILD_S[part]))
        cmd = [sys.executable, "-m", "neuroenc.bench._steps", f"experiment={preset}", *args.overrides,
               "--variants", ",".join(wanted), "--input", ",".join(map(str, args.input)), "--batch", str(args.batch),
               "--repeats", str(args.repeats), "--warmup", str(args.warmup), "--device", args.device]
        job = Job(preset, cmd, out / "logs" / f"{part}-{preset}.log", stdout=out / "logs" / f"{part}-{preset}.jsonl")
        what = f"{part}: {preset} ({k + 1}/{len(args.presets)}), {', '.join(wanted)}"
        note(what)
        (outcome,) = run_jobs([job], time.monotonic() + timeout, tick=partial(note, what))
        got = {}
        for line in outcome.stdout.splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line some library printed
            got[row.get("variant")] = row
        for v in wanted:
            rows.append({"preset": preset, **got[v]} if v in got else
                        {"preset": preset, "variant": v, "error": outcome.error_line(job.log)})
    return rows


def _rows_record(rows: list[dict]) -> dict:
    failed = sum("error" in r for r in rows)
    return {"status": "failed" if failed == len(rows) else "partial" if failed else "done",
            "summary": f"{len(rows) - failed} of {len(rows)} measured", "rows": rows}


def steps(args, out: Path, deadline: float, note: Callable[[str], None], done: dict) -> dict:
    wanted = [v for v in args.variants if v != "bf16+compile"]
    if not wanted:
        return {"status": "skipped", "summary": "--variants has no eager variant", "rows": []}
    return _rows_record(_step_rows(args, out, deadline, note, "steps", wanted, {}))


def compiled(args, out: Path, deadline: float, note: Callable[[str], None], done: dict) -> dict:
    if "bf16+compile" not in args.variants:
        return {"status": "skipped", "summary": "--variants has no bf16+compile", "rows": []}
    # a preset whose bf16 step failed (out of memory, say) would fail compiled too: its time goes to the others
    # (one that ran out of time there is tried)
    skip = {r["preset"]: f"not run: its bf16 step failed ({r['error'].splitlines()[0][:200]})"
            for r in done.get("steps", {}).get("rows", []) if r.get("variant") == "bf16" and "error" in r
            and not r["error"].startswith(("not run", "stopped after"))}
    return _rows_record(_step_rows(args, out, deadline, note, "compile", ["bf16+compile"], skip))


PARTS: dict[str, Callable[..., dict]] = {"training": training, "ddp": ddp, "steps": steps, "compile": compiled}
