"""Benchmarks: ``python -m neuroenc.bench <name> ...``, one module ``neuroenc.bench.<name>`` each."""
