"""neuroenc: encoding models of visual cortex (frontend -> convnet -> modulator -> readout)."""

from neuroenc import allocator  # noqa: F401  (keeps freed memory for reuse: see the module)

__version__ = "0.1.0"


def __getattr__(name: str):
    # neuroenc.load(path) without importing torch and Lightning on `import neuroenc`
    if name in ("load", "TrainedEncoder"):
        from neuroenc import trained

        return getattr(trained, name)
    raise AttributeError(f"module 'neuroenc' has no attribute {name!r}")
