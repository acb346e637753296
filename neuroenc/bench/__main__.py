"""``python -m neuroenc.bench <name> [args]``: run the benchmark ``neuroenc.bench.<name>``.

Every module of this package with a ``main(argv) -> int`` is a benchmark; this file only
dispatches, so adding one needs no change here.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys

import neuroenc.bench


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(neuroenc.bench.__path__) if not m.name.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    names = available()
    if not argv or argv[0] not in names:
        print(f"usage: python -m neuroenc.bench {{{','.join(names)}}} [args]  (--help after the name for its args)",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return importlib.import_module(f"neuroenc.bench.{argv[0]}").main(argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
