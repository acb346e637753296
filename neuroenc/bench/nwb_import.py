"""``python -m neuroenc.bench nwb_import [--seconds S --source-shape R,C --frame-shape H,W --json]``: time and
peak memory of importing one long NWB movie.

Writes an NWB file holding one trial of an ``ImageSeries`` movie (uint8, ``--source-shape``,
30 Hz, ``--seconds`` long, written a chunk at a time so that writing it needs little memory) and
50 units, then runs ``python -m neuroenc.data import nwb`` on it in a child process and reports
the import's wall time and the child's peak resident memory (``ru_maxrss``), the figure that
says whether a long movie fits in memory. The default is the size of the Allen Brain
Observatory's natural movies, 304x608, cropped to the 36x64 frame (``--fit crop``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

MIB = 1 << 20


def write_movie_nwb(path: Path, seconds: float, shape: tuple[int, int], rate: float = 30.0, units: int = 50,
                    seed: int = 0) -> Path:
    """One trial of a random uint8 movie and Poisson spike trains, the movie written in chunks."""
    from hdmf.data_utils import DataChunkIterator
    from pynwb import NWBHDF5IO, NWBFile
    from pynwb.image import ImageSeries

    n = int(round(seconds * rate))
    rng = np.random.default_rng(seed)

    def frames():
        for _ in range(n):
            yield rng.integers(0, 256, shape, dtype=np.uint8)

    nwb = NWBFile(session_description="neuroenc.bench nwb_import", identifier=path.stem,
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    data = DataChunkIterator(data=frames(), maxshape=(n, *shape), dtype=np.dtype(np.uint8), buffer_size=64)
    nwb.add_stimulus(ImageSeries(name="movie", data=data, unit="n.a.", rate=rate, starting_time=0.0))
    nwb.add_trial(start_time=0.0, stop_time=n / rate)
    for j in range(units):
        nwb.add_unit(spike_times=np.sort(rng.uniform(0, n / rate, rng.poisson(5 * n / rate))), id=j)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


def _pair(text: str) -> tuple[int, int]:
    a, b = text.split(",")
    return int(a), int(b)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neuroenc.bench nwb_import", description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=60.0)
    p.add_argument("--source-shape", type=_pair, default=(304, 608), metavar="ROWS,COLS")
    p.add_argument("--frame-shape", type=_pair, default=(36, 64), metavar="H,W")
    p.add_argument("--dir", type=Path, help="where to write the file and sessions (default: a temporary directory)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        src = write_movie_nwb(tmp / "movie.nwb", args.seconds, args.source_shape)
        written = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "neuroenc.data", "import", "nwb", str(src), str(tmp / "sessions"),
               "--frame-shape", ",".join(map(str, args.frame_shape)), "--frame-rate", "30", "--fit", "crop",
               "--split-fractions", "1,0,0", "--allow-no-val"]
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert child.stdout is not None  # stdout=PIPE
        out = child.stdout.read()
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - t0
        result = {"seconds_of_movie": args.seconds, "source_shape": list(args.source_shape),
                  "frame_shape": list(args.frame_shape), "source_mb": round(src.stat().st_size / MIB, 1),
                  "write_fixture_s": round(written, 1), "import_s": round(seconds, 1),
                  "import_peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "exit_status": os.waitstatus_to_exitcode(status),
                  "command": " ".join(cmd[1:])}
    if result["exit_status"] != 0:
        print(out, file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        for k, v in result.items():
            print(f"{k:>22}: {v}")
    return 0 if result["exit_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
