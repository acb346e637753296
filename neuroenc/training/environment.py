"""What a run ran on: package versions, git commit, Python, platform, devices, command line.

Written to ``<run dir>/environment.json`` when a run starts (a resumed run adds an entry under
``resumed``) and stored in every checkpoint, so a number in a paper can be traced to the code
and libraries that produced it.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import torch

from neuroenc import atomic

PACKAGES = ("neuroenc", "torch", "torchvision", "lightning", "torchmetrics", "hydra-core", "omegaconf", "numpy",
            "timm", "einops", "wandb", "matplotlib")
REPO = Path(__file__).resolve().parents[2]


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict:
    """Commit of the neuroenc checkout and whether it had uncommitted changes (None outside git)."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None, "changed_files": None}
    changed = [line[3:] for line in (_git("status", "--porcelain", "--untracked-files=no") or "").splitlines()]
    return {"commit": commit, "dirty": bool(changed), "changed_files": changed}


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def collect() -> dict:
    cuda = torch.cuda.is_available()
    return {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": [sys.executable, *sys.argv],
        "cwd": os.getcwd(),
        "host": socket.gethostname(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_state(),
        "cuda": torch.version.cuda if cuda else None,
        "devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else ["cpu"],
        "torch_threads": torch.get_num_threads(),
    }


def record(run_dir: Path, env: dict, resumed: bool) -> Path:
    """Write ``env`` to ``run_dir/environment.json``; a resumed run appends it to ``resumed``."""
    path = Path(run_dir) / "environment.json"
    if resumed and path.exists():
        content = json.loads(path.read_text())
        content.setdefault("resumed", []).append(env)
    else:
        content = {**env, "resumed": []}
    return atomic.write_json(path, content)
