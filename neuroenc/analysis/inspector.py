"""``python -m neuroenc.inspect [overrides] [--input T,H,W] [--json] [--time N] [--batch B]``

Builds the encoder a run with the same overrides would build, without data or training, and
reports per stage what it really does to a window: output shape, token grid, temporal stride,
latency, receptive field in frames and pixels (measured, from the gradient of one output unit
with respect to the stimulus), parameters and forward FLOPs (torch's ``FlopCounterMode``), plus
the readout's spatial grid. With ``--time N``: the median of N forward+backward passes at batch
``--batch``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import cast

import torch
from hydra.errors import ConfigCompositionException
from omegaconf.errors import OmegaConfBaseException
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from neuroenc.config.compose import compose_config
from neuroenc.config.validate import ConfigError
from neuroenc.data.datamodule import DatasetInfo
from neuroenc.metrics import poisson_loss
from neuroenc.model.convnet.transformer import TransformerBlock
from neuroenc.model.convnet.vivit import TubeletTokenizer
from neuroenc.model.encoder import Encoder
from neuroenc.model.protocols import ConvNet
from neuroenc.training.build import build_encoder_without_data, parse_input_shape


def named_stages(encoder: Encoder) -> list[tuple[str, str, nn.Module]]:
    """``(component, stage, module)`` in data order; each module outputs ``(B, C, T, H, W)``."""
    convnet = encoder.convnet
    named = getattr(convnet, "named_stages", None)
    if named is not None:
        inner = named()
    else:
        inner = [(f"stage {i}", m) for i, m in enumerate(getattr(convnet, "stages", []))]
    frames = [] if encoder.to_frames is None else [("encoder", "steps to frames", encoder.to_frames)]
    return [("frontend", "frontend", encoder.frontend), *(("convnet", n, m) for n, m in inner),
            ("convnet", "output", convnet), ("modulator", "output", encoder.modulator), *frames]


def _is_transformer(module: nn.Module) -> bool:
    return any(isinstance(m, (TransformerBlock, TubeletTokenizer)) for m in module.modules())


def _extent(mask: torch.Tensor) -> tuple[int, int]:
    """First and last index where ``mask`` holds; every caller's mask has one (a unit sees some input)."""
    idx = mask.nonzero().flatten()
    return int(idx[0]), int(idx[-1])


def _capture(modules: list[nn.Module], run) -> list[torch.Tensor]:
    out: dict[int, torch.Tensor] = {}
    hooks = [m.register_forward_hook(lambda mod, args, y, i=i: out.__setitem__(i, y)) for i, m in enumerate(modules)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return [out[i] for i in range(len(modules))]


def _supports(encoder: Encoder, info: DatasetInfo, t: int, k: int) -> list[tuple[tuple, list[int], torch.Tensor]]:
    """Per stage: output shape, probed time steps, and where the probes' gradients are non-zero.

    ``k`` independent windows of ``t`` frames (a batch: no part mixes batch elements); window i
    probes frame ``t - 1 - i`` (the last token step for token-level outputs) at the centre
    position, through a random mix of channels (after a LayerNorm their plain sum is constant).
    Returns ``(shape, steps, support (k, T, H, W))`` for each of :func:`named_stages`.
    """
    h, w = info.frame_shape
    torch.manual_seed(0)
    x = torch.randn(k, info.in_channels, t, h, w, requires_grad=True)
    beh = torch.randn(k, t, info.behavior_dim)
    out = []
    with sdpa_kernel([SDPBackend.MATH]):  # exact zeros where attention is masked
        outputs = _capture([m for _, _, m in named_stages(encoder)], lambda: encoder.features(x, beh, info.session_ids[0]))
        for y in outputs:
            _, c, ts, hs, ws = y.shape
            steps = [t - 1 - i for i in range(k)] if ts == t else [ts - 1] * k
            mix = torch.randn(c, generator=torch.Generator().manual_seed(1))
            unit = cast(torch.Tensor, sum(y[i, :, f, hs // 2, ws // 2] @ mix for i, f in enumerate(steps)))
            (g,) = torch.autograd.grad(unit, x, retain_graph=True)
            out.append((tuple(y.shape[1:]), steps, g.abs().sum(1) > 0))
    return out


def probe(encoder: Encoder, info: DatasetInfo, t: int) -> list[dict]:
    """Shape, receptive field and latency of every stage, measured.

    Receptive field: where the gradient of one output unit (centre position, last time step)
    with respect to the stimulus is non-zero, in frames and pixels. Latency: frames between the
    newest frame an output has seen and the frame it is for. With a temporal stride s > 1 it
    depends on the frame's place in a tubelet, so it is measured at each of the last s frames, on
    a window shortened by whole strides (same tubelet phase, cheaper) when ``t`` is long.
    """
    stages = named_stages(encoder)
    k = encoder.temporal_stride
    main = _supports(encoder, info, t, 1)
    phase = main
    if k > 1:
        t_lat = t if t <= 64 + k else 64 + (t - 64) % k
        phase = _supports(encoder, info, t_lat, k)
    rows = []
    for (component, name, module), (shape, _steps, support), (_, lat_steps, lat_support) in zip(stages, main, phase):
        c, ts, hs, ws = shape
        framewise = ts == t
        first, last = _extent(support[0].flatten(1).any(1))
        r, cl = _extent(support[0].any(0).any(1)), _extent(support[0].any(0).any(0))
        latency = None
        if framewise:
            lat = [f - _extent(lat_support[i].flatten(1).any(1))[1] for i, f in enumerate(lat_steps)]
            latency = [min(lat), max(lat)]
        rows.append({
            "component": component, "stage": name, "shape": [c, ts, hs, ws],
            "token_grid": [ts, hs, ws] if _is_transformer(module) and module is not encoder.convnet else None,
            "temporal_stride": 1 if framewise else k,
            "latency_frames": latency,
            "rf_frames": last - first + 1, "rf_whole_window": first == 0,
            "rf_pixels": [r[1] - r[0] + 1, cl[1] - cl[0] + 1],
            "parameters": sum(p.numel() for p in module.parameters()),
        })
    return rows


def count_flops(encoder: Encoder, info: DatasetInfo, t: int) -> dict[str, int]:
    """Forward FLOPs of one window (batch 1) per module name, ``"total"`` for the whole encoder.

    Attention runs through SDPA's math kernel here so that its matrix products are counted
    (torch's counter has no formula for the fused CPU kernel); element-wise work is not counted.
    """
    # FlopCounterMode itself, not Lightning's measure_flops: that gives the total only, not per module
    h, w = info.frame_shape
    stim, beh = torch.zeros(1, info.in_channels, t, h, w), torch.zeros(1, t, info.behavior_dim)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), FlopCounterMode(display=False) as counter:
        encoder(stim, beh, info.session_ids[0])
    counts = {name.split(".", 1)[1] if "." in name else name: sum(ops.values())
              for name, ops in counter.get_flop_counts().items()}
    counts["total"] = counter.get_total_flops()
    return counts


def time_steps(encoder: Encoder, info: DatasetInfo, t: int, batch: int, n: int) -> dict:
    """Seconds per forward+backward (Poisson loss) of ``batch`` windows: median of ``n`` after a warm-up."""
    h, w = info.frame_shape
    torch.manual_seed(0)
    stim, beh = torch.randn(batch, info.in_channels, t, h, w), torch.randn(batch, t, info.behavior_dim)
    session = info.session_ids[0]
    target = torch.poisson(torch.full((batch, t, info.n_neurons[session]), 0.2))
    encoder.train()
    times = []
    for i in range(n + 1):
        encoder.zero_grad(set_to_none=True)
        t0 = time.perf_counter()
        loss = poisson_loss(encoder(stim, beh, session), target, torch.ones_like(target, dtype=torch.bool))
        loss.backward()
        if i:  # the first pass warms up allocators and kernels
            times.append(time.perf_counter() - t0)
    encoder.eval()
    return {"batch": batch, "repeats": n, "threads": torch.get_num_threads(),
            "median_s": statistics.median(times), "times_s": times}


def inspect(encoder: Encoder, info: DatasetInfo, t: int) -> dict:
    """The inspector's report on ``encoder`` for windows of ``t`` frames of ``info.frame_shape``."""
    stages = probe(encoder, info, t)
    flops = count_flops(encoder, info, t)
    names = {id(m): n for n, m in encoder.named_modules()}
    for row, (_, _, module) in zip(stages, named_stages(encoder)):
        row["flops"] = flops.get(names[id(module)], 0)
    readout = encoder.readout(info.session_ids[0])
    counts = encoder.parameter_counts()
    components: dict[str, dict[str, int]]  # the parts, then "readout" and "total"
    components = {part: {"parameters": counts[part], "flops": flops.get(part, 0)}
                  for part in ("gaze", "frontend", "convnet", "modulator", "to_frames", "shifter") if part in counts}
    # FLOPs: the one session a window goes through; parameters: every session's readout
    components["readout"] = {"parameters": counts["readout"], "flops": flops.get(names[id(readout)], 0)}
    components["total"] = {"parameters": counts["total"], "flops": flops["total"]}
    _, _, hs, ws = stages[-1]["shape"]
    grid = cast(ConvNet, encoder.convnet).feature_grid((info.frame_shape[0], info.frame_shape[1]))
    report = {
        "input": {"frames": t, "height": info.frame_shape[0], "width": info.frame_shape[1],
                  "channels": info.in_channels, "behavior_dim": info.behavior_dim},
        "stages": stages,
        "components": components,
        "readout": {"grid": [hs, ws], "positions": hs * ws, "sessions": len(info.session_ids),
                    # (y, x) pixels between map cells: what a receptive field's size is relative to
                    "spacing_px": list(grid.step),
                    "neurons": sum(info.n_neurons.values()),
                    "parameters_per_neuron": sum(p.numel() for p in readout.parameters()) // cast(int, readout.n_neurons)},
    }
    tokenizer = getattr(encoder.convnet, "tokenizer", None)
    if isinstance(tokenizer, TubeletTokenizer):
        report["notes"] = tokenizer_notes(encoder.frontend, tokenizer, info, t)
    return report


def tokenizer_notes(frontend: nn.Module, tokenizer: TubeletTokenizer, info: DatasetInfo, t: int) -> list[str]:
    """Frames that have no complete tubelet yet, and pixel rows/columns no tubelet covers (measured)."""
    waiting = min(int(tokenizer.step_ends(t)[0]), t)  # frames before the first tubelet's last frame
    notes = [f"frames 0-{waiting - 1} of each window precede the first complete tubelet and get the encoder's "
             "'no step yet' feature" if waiting else "every frame has a complete tubelet"]
    h, w = info.frame_shape
    x = torch.randn(1, info.in_channels, t, h, w, requires_grad=True)
    y = tokenizer(frontend(x))
    mix = torch.randn(y.shape[1], generator=torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad(torch.einsum("bcthw,c->", y, mix), x)
    seen = g.abs().sum((0, 1, 2)) > 0  # (H, W)
    for axis, name, size in ((1, "rows", h), (0, "columns", w)):
        unseen = (~seen.any(axis)).nonzero().flatten().tolist()
        if unseen:
            notes.append(f"no tubelet covers {name} {', '.join(map(str, unseen))} of {size}: the model never sees them")
    return notes


def _si(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:g}"


def print_report(report: dict, title: str, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    # piped into a file, rich would assume 80 columns and wrap the table
    console = console or Console(width=None if sys.stdout.isatty() else 150)
    i = report["input"]
    table = Table(title=f"{title}\ninput {i['frames']}x{i['height']}x{i['width']} (frames x pixels, "
                        f"from {i.get('source', '?')}), {i.get('data', '')}", title_justify="left",
                  caption="latency: frames between the newest frame a feature has seen and the frame it serves; "
                          "RF: measured from gradients, '(all)' = back to the window's first frame; "
                          "FLOPs: forward, batch 1 (matrix products and convolutions)", caption_justify="left")
    for col in ("component", "stage", "output CxTxHxW", "tokens T'xH'xW'", "t-stride", "latency",
                "RF frames", "RF pixels", "params", "FLOPs/window"):
        table.add_column(col, justify="left" if col in ("component", "stage") else "right")
    for r in report["stages"]:
        lat = r["latency_frames"]
        rf_t = f"{r['rf_frames']}" + (" (all)" if r["rf_whole_window"] else "")
        table.add_row(r["component"], r["stage"], "x".join(map(str, r["shape"])),
                      "x".join(map(str, r["token_grid"])) if r["token_grid"] else "",
                      str(r["temporal_stride"]),
                      "" if lat is None else (f"{lat[0]}" if lat[0] == lat[1] else f"{lat[0]}-{lat[1]}"),
                      rf_t, "x".join(map(str, r["rf_pixels"])), f"{r['parameters']:,}", _si(r["flops"]))
    console.print(table)
    parts = Table(title="per component", title_justify="left")
    for col in ("component", "params", "FLOPs/window"):
        parts.add_column(col, justify="left" if col == "component" else "right")
    for name, c in report["components"].items():
        parts.add_row(name, f"{c['parameters']:,}", _si(c["flops"]))
    console.print(parts)
    ro = report["readout"]
    spacing = f", one every {ro['spacing_px'][0]:g}x{ro['spacing_px'][1]:g} px"
    console.print(f"readout grid {ro['grid'][0]}x{ro['grid'][1]} ({ro['positions']} positions{spacing}); "
                  f"{ro['parameters_per_neuron']} parameters per neuron, {ro['neurons']} neurons in "
                  f"{ro['sessions']} sessions")
    for note in report.get("notes", []):
        console.print(note)
    if "timing" in report:
        tm = report["timing"]
        console.print(f"forward+backward, batch {tm['batch']}, {tm['threads']} threads: median "
                      f"{tm['median_s']:.3f} s of {tm['repeats']} ({', '.join(f'{s:.3f}' for s in tm['times_s'])})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuroenc.inspect", description=__doc__.split("\n\n")[1])
    parser.add_argument("overrides", nargs="*", help="the same overrides as python -m neuroenc")
    parser.add_argument("--input", type=parse_input_shape, metavar="T,H,W", help="window frames and frame size "
                        "(default: data.window and the data's frame size)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--time", type=int, default=0, metavar="N", help="also time N forward+backward passes")
    parser.add_argument("--batch", type=int, default=2, metavar="B", help="batch size for --time (default 2)")
    args = parser.parse_args(argv)
    if args.time < 0 or args.batch < 1:
        parser.error("--time must be >= 0 and --batch >= 1")
    try:
        encoder, info, t, source = build_encoder_without_data(compose_config(args.overrides), args.input)
    except (ConfigError, ConfigCompositionException, OmegaConfBaseException) as e:
        cause = e.__cause__ if isinstance(e, ConfigCompositionException) and e.__cause__ else e
        print(f"error: {e}" + (f"\n{cause}" if cause is not e else ""), file=sys.stderr)
        return 2
    report = inspect(encoder, info, t)
    report["input"].update(source="--input" if args.input else "data config", data=source)
    if args.time > 0:
        report["timing"] = time_steps(encoder, info, t, args.batch, args.time)
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report, "python -m neuroenc.inspect " + " ".join(args.overrides))
    return 0


if __name__ == "__main__":
    sys.exit(main())
