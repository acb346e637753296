"""Sweep job directories named by what the job varies, not by every override on the line.

``multirun/<date>/<time>/<num>_<name>``, where <name> joins the job's overrides that differ from
the command line's fixed ones: the swept values of ``a=1,2`` or ``range(...)``, or the values a
sweeper such as Optuna chose. Fixed overrides shared by every job are left out, so names stay
short and readable.
"""

from __future__ import annotations

import sys

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

MAX_LEN = 150


def job_name(task_overrides) -> str:
    parser = OverridesParser.create()
    key = lambda o: (o.key_or_group, repr(o.value()))  # true == True, [1, 2] == [1,2]
    cli = [a for a in sys.argv[1:] if not a.startswith("-")]
    try:
        fixed = {key(o) for o in parser.parse_overrides(cli) if not o.is_sweep_override()}
    except Exception:  # an unusual command line: name the job by all its overrides
        fixed = set()
    parts = [o.input_line for o in parser.parse_overrides([str(t) for t in task_overrides])
             if key(o) not in fixed and not o.key_or_group.startswith("hydra")]
    name = ",".join(parts).replace("/", "_") or "defaults"
    return name if len(name) <= MAX_LEN else name[:MAX_LEN] + "..."


def register_resolver() -> None:
    if not OmegaConf.has_resolver("job_name"):
        OmegaConf.register_new_resolver("job_name", job_name)
