"""``python -m neuroenc.bench readout_start [overrides] [--kernel-ms MS ...]``

Where the readouts start, against the simulator's truth, for cells of several response timings:
for each kernel duration the data config (``data=synthetic_primate`` unless the overrides choose
another simulated one) is simulated with ``data.simulation.kernel_ms`` set to it, and each
session's receptive fields are estimated as training starts them
(:func:`neuroenc.data.receptive_fields.session_receptive_fields`, retinal where
``data.eye_px_per_unit`` is set). One row per duration: neurons, the median distance from the true
centres, the fractions further than 3 and 5 px, the median gap between the estimated peak latency
and the true kernel's positive peak, and the seconds the estimates took (data generation apart).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from neuroenc.config.compose import compose_config
from neuroenc.data.datamodule import SyntheticDataModule
from neuroenc.data.receptive_fields import session_receptive_fields
from neuroenc.training.build import build_datamodule

COLUMNS = ("kernel_ms", "neurons", "median_px", "over_3px", "over_5px", "latency_error_ms", "estimate_s")


def measure(overrides: list[str], kernel_ms: float) -> dict:
    """One row of the table: the start of every neuron of the data ``overrides`` compose, with
    kernels of ``kernel_ms``, from the datamodule training builds (the same sessions and gaze)."""
    cfg = compose_config(["data=synthetic_primate", *overrides, f"data.simulation.kernel_ms={kernel_ms}"])
    dm = build_datamodule(cfg)
    if not isinstance(dm, SyntheticDataModule):
        raise SystemExit("error: data: not simulated data (no data.simulation); the start is scored against the "
                         "simulator's true receptive fields: choose data=synthetic or data=synthetic_primate")
    dm.prepare_data()
    dm.setup()
    sessions = dm.sessions
    errors, latency_gaps, seconds = [], [], 0.0
    for s in sessions:
        t0 = time.perf_counter()
        start = session_receptive_fields(s, dm.eye_px_per_unit)
        seconds += time.perf_counter() - t0
        neurons = s.meta["neurons"]
        errors.append(np.hypot(*(start.centers - np.array([[n["x"], n["y"]] for n in neurons])).T))
        peak_ms = np.array([np.argmax(n["temporal_kernel"]) for n in neurons]) * 1000.0 / s.frame_rate
        latency_gaps.append(np.abs(start.latency_ms - peak_ms))
    e = np.concatenate(errors)
    return {"kernel_ms": kernel_ms, "neurons": len(e), "median_px": float(np.median(e)),
            "over_3px": float(np.mean(e > 3)), "over_5px": float(np.mean(e > 5)),
            "latency_error_ms": float(np.median(np.concatenate(latency_gaps))), "estimate_s": seconds}


def table(rows: list[dict]) -> str:
    fmt = {"kernel_ms": "{:.0f}", "neurons": "{}", "median_px": "{:.2f}", "over_3px": "{:.1%}", "over_5px": "{:.1%}",
           "latency_error_ms": "{:.1f}", "estimate_s": "{:.1f}"}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt[c].format(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuroenc.bench readout_start", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="config overrides (key=value), e.g. data=synthetic")
    parser.add_argument("--kernel-ms", type=float, nargs="+", default=[150.0, 200.0, 300.0],
                        help="kernel durations to simulate, ms (default: 150 200 300)")
    args = parser.parse_args(argv)
    rows = []
    for kernel_ms in args.kernel_ms:
        rows.append(measure(args.overrides, kernel_ms))
        print(table(rows[-1:]).splitlines()[-1] if len(rows) > 1 else table(rows), flush=True)
    return 0
