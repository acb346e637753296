"""``python -m neuroenc.bench model [overrides] [--input T,H,W] [--batch B] [--repeats N] [--profile K] [--against REV] [--json]``

Times one training step of the model a run with the same overrides would build: forward,
Poisson loss on the scored frames (those after ``data.burn_in``), backward and the AdamW
update, on random windows of ``T`` frames of ``H x W`` (default: ``data.window`` and the data's
frame size). Reports the median of ``--repeats`` steps after ``--warmup`` (forward, backward
and optimizer apart), windows/s and scored frames/s, peak memory, FLOPs per step (counted by
Lightning's ``measure_flops`` on a meta-device copy, forward and backward) and achieved
FLOP/s, with MFU where the device's peak is known (``--peak-tflops``, or the table below for
NVIDIA GPUs). The overrides set what is measured: ``trainer.precision=bf16-mixed``,
``compile=true``, ``channels_last=true``, ``experiment=...``. ``--all-presets`` measures every
``conf/experiment`` preset, each in its own process (so peak memory is the preset's own).
``--profile K`` then runs ``--repeats`` more steps under ``torch.profiler`` and prints the ``K``
operations with the most self time per step (the profiler adds tens of microseconds to every
operation, so many small ones rank higher than they cost unprofiled). ``--against REV`` times the
same step on another commit (``git archive``) in child processes that alternate with ones on
this working tree, ``--rounds`` of each, and reports both and the speed-up of the pooled medians:
a machine that slows down in the middle slows both alike.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hydra.errors import ConfigCompositionException
from lightning.fabric.utilities.throughput import measure_flops
from omegaconf.errors import OmegaConfBaseException
from torch.nn.attention import SDPBackend, sdpa_kernel

from neuroenc import atomic
from neuroenc.config.compose import compose_config, presets
from neuroenc.config.validate import ConfigError
from neuroenc.data.windows import window_problem
from neuroenc.training.build import apply_speed_options, build_encoder_without_data, parse_input_shape
from neuroenc.training.module import poisson_loss

# dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name().
# Not Lightning's get_available_flops: it finds no GPU named plain 'NVIDIA H200', quotes sparse peaks for H200/H100 NVL
GPU_PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0,
                        "RTX 4090": 165.0, "V100": 125.0}
PRECISIONS = {"32": None, "32-true": None, "bf16-mixed": torch.bfloat16}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mib(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda max_memory_allocated"
    # Linux reports ru_maxrss in KiB: the whole process, model and inputs included
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "process peak RSS"


def count_step_flops(encoder: torch.nn.Module, stim, beh, counts, mask, session: str, device: torch.device,
                     dtype) -> int:
    """FLOPs of one forward + loss + backward, counted by Lightning's ``measure_flops`` (torch's
    ``FlopCounterMode``) on a copy of the eager encoder on the meta device (shapes only: no time,
    no memory). Attention runs through the math kernel there so that its matrix products are counted."""
    meta = copy.deepcopy(encoder).to("meta")
    stim, beh, counts, mask = (x.to("meta") for x in (stim, beh, counts, mask))
    autocast = torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()

    def forward() -> torch.Tensor:
        with autocast:
            return meta(stim, beh, session).float()

    with sdpa_kernel([SDPBackend.MATH]):
        return measure_flops(meta, forward, lambda rates: poisson_loss(rates, counts, mask.expand_as(counts)))


def profile_steps(step, steps: int, device: torch.device, top: int) -> list[dict]:
    """The ``top`` operations by self time per step over ``steps`` profiled steps."""
    from torch.profiler import ProfilerActivity, profile

    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU, *([ProfilerActivity.CUDA] if cuda else [])]) as prof:
        for _ in range(steps):
            step()
    events = prof.key_averages()
    self_us = (lambda e: e.self_device_time_total) if cuda else (lambda e: e.self_cpu_time_total)
    total = sum(self_us(e) for e in events) or 1.0
    ranked = sorted(events, key=self_us, reverse=True)[:top]
    return [{"op": e.key, "self_s_per_step": self_us(e) / 1e6 / steps, "share": self_us(e) / total,
             "calls_per_step": e.count / steps} for e in ranked]


def measure(overrides: list[str], input_shape: tuple[int, int, int] | None, batch: int, repeats: int,
            warmup: int, device: str, peak_tflops: float | None, profile_top: int = 0) -> dict:
    """One preset/configuration: the numbers the module docstring lists, as a dict."""
    cfg = compose_config(overrides)
    precision = str(cfg.trainer.precision)
    if precision not in PRECISIONS:
        raise ConfigError("trainer.precision", f"the benchmark runs {sorted(PRECISIONS)}, not {precision!r}")
    encoder, info, t, _ = build_encoder_without_data(cfg, input_shape)
    burn_in = int(cfg.data.burn_in)
    problem = window_problem(t, burn_in)
    if problem:
        raise ConfigError("data.burn_in", problem)
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                       "cpu" if device == "auto" else device)
    encoder.to(dev).train()
    h, w = info.frame_shape
    session = info.session_ids[0]
    g = torch.Generator().manual_seed(0)
    stim = torch.randn(batch, info.in_channels, t, h, w, generator=g).to(dev)
    beh = torch.randn(batch, t, info.behavior_dim, generator=g).to(dev)
    counts = torch.poisson(torch.full((batch, t, info.n_neurons[session]), 0.2), generator=g).to(dev)
    mask = torch.zeros(batch, t, 1, dtype=torch.bool, device=dev)
    mask[:, burn_in:] = True
    dtype = PRECISIONS[precision]
    opt = torch.optim.AdamW(encoder.parameters(), lr=1e-4)

    def step(times: list | None = None) -> None:
        opt.zero_grad(set_to_none=True)
        _sync(dev)
        t0 = time.perf_counter()
        autocast = torch.autocast(dev.type, dtype=dtype) if dtype else contextlib.nullcontext()
        with autocast:
            loss = poisson_loss(encoder(stim, beh, session).float(), counts, mask.expand_as(counts))
        _sync(dev)
        t1 = time.perf_counter()
        loss.backward()
        _sync(dev)
        t2 = time.perf_counter()
        opt.step()
        _sync(dev)
        if times is not None:
            times.append((t1 - t0, t2 - t1, time.perf_counter() - t2))

    flops = count_step_flops(encoder, stim, beh, counts, mask, session, dev, dtype)
    apply_speed_options(encoder, cfg)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    t_compile = time.perf_counter()
    for _ in range(max(warmup, 1 if cfg.compile else 0)):
        step()
    warmup_s = time.perf_counter() - t_compile
    times: list[tuple[float, float, float]] = []
    for _ in range(repeats):
        step(times)
    totals = [sum(x) for x in times]
    step_s = statistics.median(totals)
    peak_mib, peak_what = _peak_memory_mib(dev)
    if peak_tflops is None and dev.type == "cuda" and dtype is not None:
        name = torch.cuda.get_device_name(dev)
        peak_tflops = next((v for k, v in GPU_PEAK_BF16_TFLOPS.items() if k in name), None)
    achieved = flops / step_s
    scored = batch * (t - burn_in)
    profiled = {"profile": profile_steps(step, repeats, dev, profile_top)} if profile_top else {}
    return {**profiled,
        "overrides": overrides,
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "precision": precision, "compile": bool(cfg.compile), "channels_last": bool(cfg.channels_last),
        "input": {"frames": t, "height": h, "width": w, "burn_in": burn_in}, "batch": batch,
        "parameters": sum(p.numel() for p in encoder.parameters()),
        "repeats": repeats, "warmup_s": warmup_s,
        "step_s": step_s, "step_s_all": totals,
        "forward_s": statistics.median(x[0] for x in times), "backward_s": statistics.median(x[1] for x in times),
        "optimizer_s": statistics.median(x[2] for x in times),
        "windows_per_s": batch / step_s, "scored_frames_per_window": t - burn_in, "scored_frames_per_s": scored / step_s,
        "peak_memory_mib": peak_mib, "peak_memory_is": peak_what,
        "flops_per_step": flops, "achieved_tflops": achieved / 1e12,
        "peak_tflops": peak_tflops, "mfu": achieved / (peak_tflops * 1e12) if peak_tflops else None,
    }


def _all_presets(args: argparse.Namespace, argv: list[str]) -> list[dict]:
    """Each preset in a child process (``--json``), the shared arguments passed on unchanged."""
    from rich.progress import track

    # the children get the shared arguments; the parent alone writes the combined --save file
    argv = [a for i, a in enumerate(argv) if not a.startswith("--save") and (i == 0 or argv[i - 1] != "--save")]
    rows = []
    for preset in track(presets(), description="presets", console=_console(), transient=True):
        cmd = [sys.executable, "-m", "neuroenc.bench", "model", f"experiment={preset}", *argv, "--json"]
        cmd.remove("--all-presets")
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            rows.append({"overrides": [f"experiment={preset}", *args.overrides], "error": r.stderr.strip()[-2000:]})
        else:
            rows.append(json.loads(r.stdout))
    return rows


def _console():
    from rich.console import Console

    return Console(stderr=True, width=None if sys.stderr.isatty() else 160)


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 200)
    first = next((r for r in rows if "error" not in r), None)
    title = "python -m neuroenc.bench model"
    if first:
        i = first["input"]
        title += (f": batch {first['batch']} x {i['frames']}x{i['height']}x{i['width']} (burn-in {i['burn_in']}), "
                  f"{first['device']}, median of {first['repeats']} steps")
    table = Table(title=title, title_justify="left",
                  caption="step = forward + backward + AdamW; FLOPs counted on one eager step (forward and backward)",
                  caption_justify="left")
    for col in ("config", "precision", "compile", "params", "step s", "fwd s", "bwd s", "windows/s",
                "scored frames/s", "peak MiB", "TFLOP/step", "TFLOP/s", "MFU"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for r in rows:
        name = r.get("label") or " ".join(r["overrides"]) or "(defaults)"
        if "error" in r:
            table.add_row(name, "", "", "", f"error: {r['error'].splitlines()[-1]}")
            continue
        table.add_row(name, r["precision"], "on" if r["compile"] else "off", f"{r['parameters'] / 1e6:.2f} M",
                      f"{r['step_s']:.3f}", f"{r['forward_s']:.3f}", f"{r['backward_s']:.3f}",
                      f"{r['windows_per_s']:.3g}", f"{r['scored_frames_per_s']:.4g}", f"{r['peak_memory_mib']:.0f}",
                      f"{r['flops_per_step'] / 1e12:.3f}", f"{r['achieved_tflops']:.3f}",
                      "" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%")
    console.print(table)
    for r in rows:
        if r.get("profile"):
            print_profile(r, console)


def print_profile(row: dict, console) -> None:
    from rich.table import Table

    table = Table(title=f"top {len(row['profile'])} operations by self time, {row.get('label') or 'this configuration'} "
                        f"({row['repeats']} profiled steps)", title_justify="left",
                  caption="the profiler adds tens of microseconds to every operation: many small ones rank higher "
                          "than they cost unprofiled", caption_justify="left")
    for col in ("operation", "self ms/step", "share", "calls/step"):
        table.add_column(col, justify="left" if col == "operation" else "right")
    for p in row["profile"]:
        table.add_row(p["op"], f"{1e3 * p['self_s_per_step']:.1f}", f"{p['share']:.1%}", f"{p['calls_per_step']:g}")
    console.print(table)


def side_by_side(args: argparse.Namespace) -> tuple[list[dict], dict]:
    """``--against``: the step on this working tree and on ``args.against``, alternating child
    processes (ABBA order round by round); each side's steps pooled."""
    from rich.progress import track

    from neuroenc.bench import _revision

    shared = [*args.overrides, "--batch", str(args.batch), "--repeats", str(args.repeats), "--warmup",
              str(args.warmup), "--device", args.device, "--json"]
    if args.input:
        shared += ["--input", ",".join(map(str, args.input))]
    runs: dict[str, list[dict]] = {"this": [], "against": []}
    with tempfile.TemporaryDirectory(prefix="neuroenc-against-") as tmp:
        commit = _revision.export(args.against, Path(tmp))
        trees = {"this": _revision.WORKING_TREE, "against": Path(tmp)}
        envs = {k: _revision.environment(v) for k, v in trees.items()}
        order = [("this", "against") if r % 2 == 0 else ("against", "this") for r in range(args.rounds)]
        for side in track([s for pair in order for s in pair], description="alternating runs",
                          console=_console(), transient=True):
            r = subprocess.run([sys.executable, "-m", "neuroenc.bench", "model", *shared], env=envs[side],
                               cwd=trees[side], capture_output=True, text=True)
            if r.returncode:
                raise RuntimeError(f"the run on {'this tree' if side == 'this' else args.against} failed:\n"
                                   f"{r.stderr.strip()[-2000:]}")
            runs[side].append(json.loads(r.stdout))
    labels = {"this": f"this tree ({_revision.describe_working_tree()})", "against": f"{args.against} ({commit})"}
    rows = []
    for side in ("this", "against"):
        row = dict(runs[side][0])
        steps = [x for run in runs[side] for x in run["step_s_all"]]
        row.update(label=labels[side], step_s=statistics.median(steps), step_s_all=steps,
                   round_medians=[run["step_s"] for run in runs[side]],
                   forward_s=statistics.median(run["forward_s"] for run in runs[side]),
                   backward_s=statistics.median(run["backward_s"] for run in runs[side]),
                   repeats=len(steps))
        row["windows_per_s"] = row["batch"] / row["step_s"]
        row["scored_frames_per_s"] = row["windows_per_s"] * row["scored_frames_per_window"]
        row["achieved_tflops"] = row["flops_per_step"] / row["step_s"] / 1e12
        rows.append(row)
    summary = {"speedup": rows[1]["step_s"] / rows[0]["step_s"],
               "round_speedups": [a / b for a, b in zip(rows[1]["round_medians"], rows[0]["round_medians"])],
               "rounds": args.rounds, "against": args.against, "against_commit": commit,
               "this": labels["this"]}
    return rows, summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m neuroenc.bench model", description=__doc__.split("\n\n")[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="the same overrides as python -m neuroenc")
    parser.add_argument("--input", type=parse_input_shape, metavar="T,H,W",
                        help="window frames and frame size (default: data.window and the data's frame size)")
    parser.add_argument("--batch", type=int, default=2, help="windows per step (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="timed steps; the median is reported (default 3)")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed steps first (default 1; with compile=true at least 1: the compilation)")
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s at this precision, for MFU")
    parser.add_argument("--all-presets", action="store_true", help="every conf/experiment preset, one process each")
    parser.add_argument("--profile", type=int, default=0, metavar="K",
                        help="also profile --repeats steps and list the K operations with the most self time")
    parser.add_argument("--against", metavar="REV",
                        help="a git revision (commit, tag, branch) to time side by side with this working tree")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --against: child processes per side, alternating (default 3)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the JSON to FILE")
    args = parser.parse_intermixed_args(argv)
    if args.batch < 1 or args.repeats < 1 or args.warmup < 0 or args.rounds < 1 or args.profile < 0:
        parser.error("--batch, --repeats and --rounds must be >= 1, --warmup and --profile >= 0")
    if args.against and (args.all_presets or args.profile):
        parser.error("--against compares one configuration, without --all-presets or --profile")
    footer = None
    result: dict | list
    if args.against:
        try:
            rows, summary = side_by_side(args)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        result = {**summary, "runs": rows}
        footer = (f"speed-up of this tree over {args.against}: {summary['speedup']:.2f}x (median step, "
                  f"{rows[0]['repeats']} steps a side in {args.rounds} alternating rounds; per round: "
                  + ", ".join(f"{x:.2f}x" for x in summary["round_speedups"]) + ")")
    elif args.all_presets:
        if any(o.startswith(("experiment=", "+experiment=")) for o in args.overrides):
            parser.error("--all-presets sets experiment= itself")
        rows = _all_presets(args, argv)
        result = rows
    else:
        try:
            rows = [measure(args.overrides, args.input, args.batch, args.repeats, args.warmup, args.device,
                            args.peak_tflops, args.profile)]
        except (ConfigError, ConfigCompositionException, OmegaConfBaseException) as e:
            cause = e.__cause__ if isinstance(e, ConfigCompositionException) and e.__cause__ else e
            print(f"error: {e}" + (f"\n{cause}" if cause is not e else ""), file=sys.stderr)
            return 2
        result = rows[0]
    text = json.dumps(result, indent=1)
    if args.save:
        atomic.write_text(args.save, text + "\n")
    if args.json:
        print(text)
    else:
        print_table(rows)
        if footer:
            print(footer)
    return 1 if any("error" in r for r in rows) else 0

if __name__ == "__main__":
    sys.exit(main())
