"""Transparent huge pages for torch's large CPU allocations, on unless the user set it.

A training step allocates hundreds of MB of fresh activations, and faulting them in 4 KiB pages
took more of the default step's time than the arithmetic on them; with torch's
``THP_MEM_ALLOC_ENABLE`` its large allocations are 2 MiB-aligned and madvised to huge pages
(docs/speed.md has the measurement). torch reads the variable once, at its first large
allocation, so this module is imported by ``neuroenc/__init__.py``, before anything imports
torch. ``THP_MEM_ALLOC_ENABLE=0`` in the environment turns it off.
"""

import os

VARIABLE = "THP_MEM_ALLOC_ENABLE"
# the user's environment did not choose: a child that benchmarks an older commit should not inherit it
SET_HERE = VARIABLE not in os.environ
os.environ.setdefault(VARIABLE, "1")
