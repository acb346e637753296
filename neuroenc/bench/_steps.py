"""``python -m neuroenc.bench._steps [overrides] --variants fp32,bf16,...``: time one configuration's
training step in several precisions, in this process, one JSON line per variant on stdout.

The child ``python -m neuroenc.bench gpu`` starts for each preset, so that a preset's peak
memory is its own and a crash or a time-out loses that preset's lines only. The variants run
one after another, each a fresh model (:func:`neuroenc.bench.model.measure`), the memory of the
one before released first; a variant that fails prints its error and the next one still runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys

import torch

from neuroenc.bench.model import measure
from neuroenc.training.build import parse_input_shape

VARIANTS = {
    "fp32": ["trainer.precision=32-true"],
    "bf16": ["trainer.precision=bf16-mixed"],
    "bf16+compile": ["trainer.precision=bf16-mixed", "compile=true"],
}


def variants(text: str) -> list[str]:
    names = [v for v in text.split(",") if v]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"variants are {', '.join(VARIANTS)} (comma-separated), not {text!r}")
    return names


def error_text(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}".strip()[:2000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m neuroenc.bench._steps")
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--variants", type=variants, required=True)
    parser.add_argument("--input", type=parse_input_shape, metavar="T,H,W")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_intermixed_args(sys.argv[1:] if argv is None else argv)
    for name in args.variants:
        overrides = [*args.overrides, *VARIANTS[name]]
        try:
            row = measure(overrides, args.input, args.batch, args.repeats, args.warmup, args.device, None)
        except Exception as e:  # an out-of-memory or a compile error is this variant's result, not the end
            row = {"overrides": overrides, "error": error_text(e)}
        print(json.dumps({"variant": name, **row}), flush=True)
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
