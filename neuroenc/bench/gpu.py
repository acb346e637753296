"""``python -m neuroenc.bench gpu [overrides] [--out DIR]``: everything to measure on a lent GPU, in one command.

Four parts, each with a time budget (``BUDGETS_S``; 450 s in all, so the whole ends within 8
minutes of an NVIDIA H200 with its start and the report), run in this order; time a part leaves
unused goes to the parts after it, and a part that fails or runs out of time is recorded as such
while the others still run:

- training: a ``trainer.max_steps`` run (default 300) of the default model and of
  ``experiment=vivit_p1``, each in bf16-mixed and in fp32 (same seed and steps, validated once,
  at the end), the four side by side; the bf16 - fp32 difference of val bits/spike against
  ``TOLERANCE_BPS`` (neuroenc/bench/_gpu_parts.py, which says why 0.02 bits/spike).
- ddp: a short ``trainer.strategy=ddp`` run on every visible GPU (skipped with one GPU).
- steps: every ``conf/experiment`` preset's training step at 300 x 36 x 64, batch 32, in fp32
  and bf16-mixed (:func:`neuroenc.bench.model.measure`; one process per preset, so peak memory
  is the preset's own).
- compile: the same in bf16-mixed with ``compile=true`` (last: compilation takes the longest).

It writes ``gpu.json`` (everything) and ``gpu.md`` (the tables for docs/speed.md) into ``--out``
(default ``outputs/bench-gpu/<date>_<time>``) and each child's log under ``logs/``. The options
shrink every size, so that the test suite runs the whole command on a CPU.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from neuroenc import atomic
from neuroenc.bench import _gpu_parts as parts
from neuroenc.bench._gpu_parts import TOLERANCE_BPS
from neuroenc.bench._gpu_report import markdown
from neuroenc.bench._machine import describe
from neuroenc.bench._steps import variants
from neuroenc.config.compose import presets
from neuroenc.training.build import parse_input_shape

# seconds per part, in the order they run. An H200 estimate, not a measurement (none was lent
# yet): training is 4 runs side by side of ~300 small steps plus the data generation (~15 s on
# a 2-core CPU); ddp one short run; steps 7 presets x (process start, 2 FLOP counts, 2 x 4 steps);
# compile takes what is left, 150 s and more (each preset's compilation ~20-60 s).
BUDGETS_S = {"training": 120, "ddp": 40, "steps": 140, "compile": 150}


def budgets(text: str) -> dict[str, float]:
    """``training=200,compile=300``: budgets to change, in seconds."""
    out = {}
    for item in (t for t in text.split(",") if t):
        part, _, seconds = item.partition("=")
        if part not in BUDGETS_S:
            raise argparse.ArgumentTypeError(f"--budget: parts are {', '.join(BUDGETS_S)}, not {part!r}")
        try:
            out[part] = float(seconds)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--budget: {part}={seconds!r} is not a number of seconds") from None
    return out


def names(text: str) -> list[str]:
    return [n for n in text.split(",") if n]


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m neuroenc.bench gpu", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="overrides for every part (step timing and runs alike)")
    parser.add_argument("--out", type=Path, help="output directory (default outputs/bench-gpu/<date>_<time>)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cuda or cpu (default auto)")
    parser.add_argument("--presets", type=names, help="comma-separated conf/experiment presets (default all)")
    parser.add_argument("--variants", type=variants, default=["fp32", "bf16", "bf16+compile"],
                        help="step variants: fp32,bf16,bf16+compile (default all three)")
    parser.add_argument("--input", type=parse_input_shape, default=(300, 36, 64), metavar="T,H,W",
                        help="step timing windows (default 300,36,64)")
    parser.add_argument("--batch", type=int, default=32, help="step timing batch (default 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps per variant (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (default 1)")
    parser.add_argument("--models", type=names, default=["default", "vivit_p1"],
                        help="models of the training part: 'default' or a preset (default default,vivit_p1)")
    parser.add_argument("--steps", type=int, default=300, help="training steps of each run (default 300)")
    parser.add_argument("--ddp-devices", type=int,
                        help="ranks of the ddp run (default: the visible GPUs; with --device cpu, CPU processes)")
    parser.add_argument("--ddp-steps", type=int, default=50, help="training steps of the ddp run (default 50)")
    parser.add_argument("--budget", type=budgets, default={}, metavar="PART=S,...",
                        help=f"change part budgets in seconds (defaults {BUDGETS_S})")
    args = parser.parse_intermixed_args(argv)
    if min(args.batch, args.repeats, args.steps, args.ddp_steps) < 1 or args.warmup < 0:
        parser.error("--batch, --repeats, --steps and --ddp-steps must be >= 1, --warmup >= 0")
    unknown = sorted(set(args.presets or []) - set(presets()))
    if unknown:
        parser.error(f"--presets: no conf/experiment preset {unknown}; there are {presets()}")
    unknown = sorted(set(args.models) - {"default", *presets()})
    if unknown:
        parser.error(f"--models: {unknown} is neither 'default' nor a preset")
    if args.device not in ("auto", "cpu", "cuda"):
        parser.error(f"--device: auto, cpu or cuda, not {args.device!r}")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    args.presets = args.presets or presets()
    return args


def main(argv: list[str] | None = None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    out = args.out or Path("outputs", "bench-gpu", time.strftime("%Y-%m-%d_%H-%M-%S"))
    out.mkdir(parents=True, exist_ok=True)
    budget = {**BUDGETS_S, **args.budget}
    result: dict = {
        "benchmark": "gpu", "command": ["python", "-m", "neuroenc.bench", "gpu", *argv],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "machine": describe(), "device": args.device,
        "options": {"overrides": args.overrides, "presets": args.presets, "variants": args.variants,
                    "input": list(args.input), "batch": args.batch, "repeats": args.repeats, "warmup": args.warmup,
                    "models": args.models, "steps": args.steps, "ddp_steps": args.ddp_steps},
        "budgets_s": budget, "tolerance_bps": TOLERANCE_BPS, "parts": {},
    }
    console = Console(stderr=True)
    t0 = time.monotonic()
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[used]}"),
                  TimeElapsedColumn(), console=console) as progress:
        for i, (part, run_part) in enumerate(parts.PARTS.items()):
            deadline = t0 + sum(list(budget.values())[: i + 1])  # what earlier parts left over is this one's too
            start = time.monotonic()
            task = progress.add_task(part, total=max(deadline - start, 1), used="")

            def note(what: str, task=task, start=start, deadline=deadline) -> None:
                used = time.monotonic() - start
                progress.update(task, completed=used, description=what,
                                used=f"{used:.0f} of {deadline - start:.0f} s")

            try:
                record = run_part(args, out, deadline, note, result["parts"])
            except Exception as e:  # one part's failure is its result; the next part still runs
                record = {"status": "failed", "error": f"{type(e).__name__}: {e}"}
            record.update(budget_s=round(deadline - start, 1), used_s=round(time.monotonic() - start, 1))
            result["parts"][part] = record
            progress.update(task, completed=deadline - start, description=f"{part}: {record['status']}")
            atomic.write_text(out / "gpu.json", json.dumps(result, indent=1) + "\n")  # a kill keeps the parts done
    result["total_s"] = round(time.monotonic() - t0, 1)
    atomic.write_text(out / "gpu.json", json.dumps(result, indent=1) + "\n")
    atomic.write_text(out / "gpu.md", markdown(result))
    for part, record in result["parts"].items():
        print(f"{part:9} {record['status']:8} {record['used_s']:6.0f} s  {record.get('summary', record.get('error', ''))}")
    print(f"wrote {out / 'gpu.md'} (tables for docs/speed.md) and {out / 'gpu.json'} in {result['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
