"""``python -m neuroenc.data import FORMAT SRC... DST [--overwrite] [options]``: convert recordings into sessions.

Formats: ``sensorium2023`` (the NeurIPS Sensorium 2023 per-mouse folders, one SRC) and ``nwb``
(NWB files, one session per file or per file and imaging plane; see ``neuroenc.data.nwb`` and
docs/data-format.md). Train on the result with ``python -m neuroenc data=sessions data.root=DST``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from rich.console import Console
from rich.table import Table

from neuroenc.data import nwb, sensorium


def _pair(text: str, what: str, n: int, kind=int) -> tuple:
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != n:
        raise argparse.ArgumentTypeError(f"{what}: expected {n} comma-separated numbers, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m neuroenc.data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="convert recordings into neuroenc sessions")
    imp.add_argument("format", choices=["nwb", "sensorium2023"], help="layout of SRC")
    imp.add_argument("paths", nargs="+", metavar="SRC... DST",
                     help="the source(s) (sensorium2023: a folder of mouse folders or one mouse folder; nwb: .nwb "
                          "files), then the directory to create, one session directory per session inside it")
    imp.add_argument("--overwrite", action="store_true", help="replace DST if it exists (after the import succeeded)")
    g = imp.add_argument_group("nwb")
    g.add_argument("--frame-shape", type=lambda t: _pair(t, "--frame-shape", 2), metavar="H,W",
                   help="frame shape of the sessions (required for nwb)")
    g.add_argument("--frame-rate", type=float, metavar="R", help="frames per second of the sessions (required for nwb)")
    g.add_argument("--stimulus", help="ImageSeries, OpticalSeries or IndexSeries (default: the file's only one)")
    g.add_argument("--responses", default="units",
                   help="'units' (spike times) or a RoiResponseSeries / DfOverF / Fluorescence (default: units)")
    g.add_argument("--units-query", help="pandas query selecting units, e.g. \"quality == 'good'\"")
    g.add_argument("--behavior", nargs="*", default=[], metavar="PATH[:NAME]", help="TimeSeries to use as behaviour")
    g.add_argument("--eye", metavar="PATH", help="eye position (samples, 2) -> columns eye_x, eye_y (for the shifter)")
    g.add_argument("--trials", default="trials", help="the trial table (TimeIntervals), default: trials")
    g.add_argument("--split-column", help="trial-table column of train/val/test (else seeded fractions)")
    g.add_argument("--split-fractions", type=lambda t: _pair(t, "--split-fractions", 3, float), default=(0.8, 0.1, 0.1),
                   metavar="TRAIN,VAL,TEST")
    g.add_argument("--seed", type=int, default=0, help="seed of the split fractions")
    g.add_argument("--stimulus-id-column", help="trial-table column naming the video each trial showed (repeats); "
                                                "default: trials with identical frames")
    g.add_argument("--crop", type=lambda t: _pair(t, "--crop", 4), metavar="TOP,LEFT,HEIGHT,WIDTH",
                   help="crop the stimulus before resizing")
    return p


def run_import(args) -> list[dict]:
    *src, dst = args.paths
    if not src:
        raise ValueError("give the source(s) and then the destination: import FORMAT SRC... DST")
    if args.format == "sensorium2023":
        if len(src) != 1:
            raise ValueError(f"sensorium2023 takes one SRC (a folder of mouse folders), got {len(src)}")
        return sensorium.convert(src[0], dst, overwrite=args.overwrite)
    if args.frame_shape is None or args.frame_rate is None:
        raise ValueError("nwb: --frame-shape H,W and --frame-rate R are required (the frame grid of the sessions)")
    options = nwb.Options(frame_shape=args.frame_shape, frame_rate=args.frame_rate, stimulus=args.stimulus,
                          responses=args.responses, units_query=args.units_query, behavior=list(args.behavior),
                          eye=args.eye, trials=args.trials, split_column=args.split_column,
                          split_fractions=args.split_fractions, seed=args.seed,
                          stimulus_id_column=args.stimulus_id_column, crop=args.crop)
    return nwb.convert(src, dst, options, overwrite=args.overwrite)


COLUMNS = {  # summary key -> column title; a column shows when some summary has its key
    "neurons": "neurons", "frames": "frames", "trials": "train/val/test trials", "repeated_videos": "repeated videos",
    "padding_frames_dropped": "padding dropped", "responses_nan_masked": "NaN masked", "responses_clipped": "clipped < 0",
    "behavior_nan_filled": "behaviour filled", "behavior": "behaviour",
}


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summaries = run_import(args)
    except (FileExistsError, ValueError) as e:  # bad input: the message names the file and the problem
        console.print(f"[red]import failed:[/red] {e}", highlight=False, soft_wrap=True)
        return 2
    for w in caught:
        console.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)
    elapsed = time.perf_counter() - t0
    dst = args.paths[-1]
    table = Table(title=f"{args.format} -> {dst}  ({elapsed:.1f} s)")
    keys = [k for k in COLUMNS if any(k in s for s in summaries)]
    table.add_column("session", justify="left")
    for k in keys:
        table.add_column(COLUMNS[k], justify="right")
    for s in summaries:
        cells = []
        for k in keys:
            v = s.get(k, "")
            if k == "trials":
                v = "/".join(str(v.get(x, 0)) for x in ("train", "val", "test"))
            elif k == "behavior":
                v = " ".join(v)
            cells.append(str(v))
        table.add_row(s["session_id"], *cells)
    out = Console()
    (out if out.is_terminal else Console(width=160)).print(table)  # a pipe or a log: keep names whole
    print(f"train on it: python -m neuroenc data=sessions data.root={dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
