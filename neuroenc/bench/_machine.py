"""The machine and code a benchmark ran on, and how two of them differ.

A time is only comparable with one taken on the same hardware with the same thread count, so
every benchmark JSON carries :func:`describe` and ``--against`` warns with :func:`differences`.
"""

from __future__ import annotations

import os
import platform

import torch

from neuroenc.training.environment import git_state

# what decides a time; host, date and package versions are recorded but are not the machine
HARDWARE = ("cpu_model", "cpu_count", "torch_threads", "gpus")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe() -> dict:
    """CPU model and count (those this process may use), torch threads, GPUs, versions, git commit."""
    cuda = torch.cuda.is_available()
    git = git_state()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": platform.node(),
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
    }


def differences(a: dict, b: dict) -> list[str]:
    """``'key: A vs B'`` for each hardware key on which two :func:`describe` results differ."""
    return [f"{k}: {a.get(k)} vs {b.get(k)}" for k in HARDWARE if a.get(k) != b.get(k)]
