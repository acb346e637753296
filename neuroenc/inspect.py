"""``python -m neuroenc.inspect``: a model's shapes, receptive fields, FLOPs and step time, before training.

The command's name is kept for users; the code is :mod:`neuroenc.analysis.inspector`.
"""

from neuroenc.analysis.inspector import main

if __name__ == "__main__":
    raise SystemExit(main())
