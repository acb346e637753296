"""``python -m neuroenc.data import FORMAT SRC DST [--overwrite]``: convert recordings into sessions.

Formats: ``sensorium2023`` (the NeurIPS Sensorium 2023 per-mouse folders). Train on the result
with ``python -m neuroenc data=sessions data.root=DST``.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

from rich.console import Console
from rich.table import Table

from neuroenc.data import sensorium

IMPORTERS = {"sensorium2023": sensorium.convert}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m neuroenc.data", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    imp = sub.add_parser("import", help="convert recordings into neuroenc sessions")
    imp.add_argument("format", choices=sorted(IMPORTERS), help="layout of SRC")
    imp.add_argument("src", help="the downloaded data (a folder of mouse folders, or one mouse folder)")
    imp.add_argument("dst", help="directory to create, one session directory per mouse inside it")
    imp.add_argument("--overwrite", action="store_true", help="replace DST if it exists (after the import succeeded)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            summaries = IMPORTERS[args.format](args.src, args.dst, overwrite=args.overwrite)
    except (FileExistsError, ValueError) as e:  # bad input: the message names the file and the problem
        console.print(f"[red]import failed:[/red] {e}", highlight=False, soft_wrap=True)
        return 2
    for w in caught:
        console.print(f"[yellow]warning:[/yellow] {w.message}", highlight=False, soft_wrap=True)
    elapsed = time.perf_counter() - t0
    table = Table(title=f"{args.format} -> {args.dst}  ({elapsed:.1f} s)")
    for col in ("session", "neurons", "frames", "train/val/test trials", "padding dropped", "NaN masked",
                "clipped < 0", "behaviour filled"):
        table.add_column(col, justify="left" if col == "session" else "right")
    for s in summaries:
        tr = s["trials"]
        table.add_row(s["session_id"], str(s["neurons"]), str(s["frames"]), f"{tr['train']}/{tr['val']}/{tr['test']}",
                      str(s["padding_frames_dropped"]), str(s["responses_nan_masked"]), str(s["responses_clipped"]),
                      str(s["behavior_nan_filled"]))
    out = Console()
    (out if out.is_terminal else Console(width=160)).print(table)  # a pipe or a log: keep names whole
    print(f"train on it: python -m neuroenc data=sessions data.root={args.dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
