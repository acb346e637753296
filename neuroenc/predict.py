"""``python -m neuroenc.predict``: a checkpoint's rates for a split, written to disk.

The command's name is kept for users; the code is :mod:`neuroenc.analysis.predict`.
"""

from neuroenc.analysis.predict import main

if __name__ == "__main__":
    raise SystemExit(main())
