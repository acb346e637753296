"""``python -m neuroenc.data import FORMAT SRC... DST [--overwrite] [options]``: convert recordings into sessions;
``python -m neuroenc.data check DST``: print the import report of every session under DST.

Formats: ``sensorium2023`` (the NeurIPS Sensorium 2023 per-mouse folders, one SRC) and ``nwb``
(NWB files, one session per file or per file and recording plane; see ``neuroenc.data.nwb`` and
docs/data-format.md). Every import prints and writes an ``import_report.json`` beside each session.
Train on the result with ``python -m neuroenc data=sessions data.root=DST``.
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
import warnings
from pathlib import Path

from rich.console import Console
from rich.table import Table

from neuroenc.data import import_report, nwb, sensorium
from neuroenc.data.nwb import options as nwb_options
from neuroenc.data.sessions import SPLITS


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
    g.add_argument("--fit", choices=nwb_options.FITS,
                   help="keep the aspect ratio when it differs from --frame-shape's: crop the centre or pad with the "
                        "mean luminance (default: refuse)")
    g.add_argument("--frame-axes", choices=nwb_options.FRAME_AXES, default="rows,cols",
                   help="how the stimulus's frames are stored: (frame, rows, cols) (default) or (frame, x, y)")
    g.add_argument("--resample", choices=nwb_options.RESAMPLE_RULES,
                   help="a stimulus whose rate is not a multiple or divisor of --frame-rate: the frame on screen at "
                        "each bin's centre (nearest) or the frames of the bin averaged by time on screen (mean)")
    g.add_argument("--image-order", choices=nwb_options.IMAGE_ORDERS, default="stored",
                   help="Images without order_of_images: refuse (stored) or take the names in numeric-aware order "
                        "(natural: NaturalScene2 before NaturalScene10)")
    g.add_argument("--stimulus-file", type=Path, metavar="MOVIE.npy",
                   help="the stimulus movie (frames, rows, cols) outside the NWB file, with --presentations")
    g.add_argument("--presentations", metavar="TABLE",
                   help="with --stimulus-file: the table whose rows show frame --frame-column from start to stop time")
    g.add_argument("--frame-column", default="frame", help="the presentations' column of movie frame numbers")
    g.add_argument("--uncovered", choices=nwb_options.UNCOVERED, default="mask",
                   help="bins that behaviour or traces do not cover: mark them invalid (mask, default) or refuse")
    g.add_argument("--allow-no-val", action="store_true",
                   help="import sessions without validation trials (refused by default: training needs them)")
    chk = sub.add_parser("check", help="print the import report of every session under DST")
    chk.add_argument("root", metavar="DST", help="a session directory or a directory of sessions")
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
                          stimulus_id_column=args.stimulus_id_column, crop=args.crop, fit=args.fit,
                          frame_axes=args.frame_axes, resample=args.resample, image_order=args.image_order,
                          stimulus_file=args.stimulus_file, presentations=args.presentations,
                          frame_column=args.frame_column, uncovered=args.uncovered,
                          allow_no_val=args.allow_no_val)
    return nwb.convert(src, dst, options, overwrite=args.overwrite)


COLUMNS = {  # summary key -> column title; a column shows when some summary has its key
    "neurons": "neurons", "frames": "frames", "trials": "train/val/test trials", "repeated_videos": "repeated videos",
    "padding_frames_dropped": "padding dropped", "responses_nan_masked": "NaN masked", "responses_clipped": "clipped < 0",
    "behavior_nan_filled": "behaviour filled", "behavior": "behaviour",
}


def _bug_report(args, error: BaseException) -> Path:
    """Save the traceback of an unexpected exception beside DST (or here) and return its path."""
    dst = Path(args.paths[-1] if getattr(args, "paths", None) else args.root).expanduser()
    where = dst.parent if dst.parent.is_dir() else Path.cwd()
    f = where / f"{dst.name}.import-bug-{time.strftime('%Y%m%d-%H%M%S')}.txt"
    f.write_text(f"python -m neuroenc.data {' '.join(sys.argv[1:])}\n\n"
                 + "".join(traceback.format_exception(type(error), error, error.__traceback__)))
    return f


def _check(args, console: Console) -> int:
    try:
        reports = import_report.check(Path(args.root))
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]check failed:[/red] {e}", highlight=False, soft_wrap=True)
        return 2
    for r in reports:
        print(import_report.render(r))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(stderr=True)
    if args.command == "check":
        return _check(args, console)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summaries = run_import(args)
    except (FileExistsError, ValueError) as e:  # bad input: the message names the file and the problem
        console.print(f"[red]import failed:[/red] {e}", highlight=False, soft_wrap=True)
        return 2
    except Exception as e:  # anything else is ours to fix: keep the traceback for the report
        f = _bug_report(args, e)
        console.print(f"[red]importer bug:[/red] {type(e).__name__}: {e}. Nothing was written. The traceback is in "
                      f"{f}; please report it with that file.", highlight=False, soft_wrap=True)
        return 3
    reports = import_report.check(Path(args.paths[-1]))
    reported = {str(w) for r in reports for w in r.get("warnings", [])}
    for w in caught:
        if str(w.message) not in reported:  # the reports below print their own
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
                v = "/".join(str(v.get(x, 0)) for x in SPLITS)
            elif k == "behavior":
                v = " ".join(v)
            cells.append(str(v))
        table.add_row(s["session_id"], *cells)
    out = Console()
    (out if out.is_terminal else Console(width=160)).print(table)  # a pipe or a log: keep names whole
    for r in reports:
        print(import_report.render(r))
    print(f"the reports are in each session's {import_report.REPORT_FILE}; print them again with: "
          f"python -m neuroenc.data check {dst}")
    print(f"train on it: python -m neuroenc data=sessions data.root={dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
