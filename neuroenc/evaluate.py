"""``python -m neuroenc.evaluate``: a checkpoint on val and test (scores, receptive fields, plots).

The command's name is kept for users; the code is :mod:`neuroenc.analysis.evaluate`.
"""

from neuroenc.analysis.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
