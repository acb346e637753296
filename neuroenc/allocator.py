"""Freed memory kept for reuse: glibc's malloc told not to hand large blocks back to the kernel.

A training step allocates and frees hundreds of MB of activations. By default glibc serves each
block above its mmap threshold with a fresh ``mmap`` and returns it with ``munmap`` when freed, so
every step faults all of its activations in again, page by page, and on the 2-core default the
page faults cost as much as the arithmetic. With mmap off (``M_MMAP_MAX`` 0) and no trimming of
the heap (``M_TRIM_THRESHOLD``), freed blocks stay in the process and the next step reuses them:
~1.4x faster default step (docs/speed.md), for a resident size that stays at the peak instead
of falling between steps.

Imported by ``neuroenc/__init__.py``: every process that imports neuroenc gets it. Left alone on
anything but Linux with glibc, where the user set glibc's own ``MALLOC_*`` or ``GLIBC_TUNABLES``
variables, and with ``NEUROENC_DEFAULT_MALLOC=1`` in the environment.
"""

import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # glibc's malloc.h
OPT_OUT = "NEUROENC_DEFAULT_MALLOC"
USER_SETTINGS = ("MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Set glibc's malloc up as the module docstring says; True when it was."""
    if not sys.platform.startswith("linux") or os.environ.get(OPT_OUT, "0") not in ("", "0") \
            or any(k in os.environ for k in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))


KEPT = keep_freed_memory()
