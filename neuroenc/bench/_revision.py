"""Another commit of this repository, as a source tree a benchmark can run beside the working one.

``python -m neuroenc.bench model --against REV`` times the same step on the working tree and on
``REV`` in alternating child processes; this module makes ``REV``'s tree (``git archive``, so the
checkout's own files and worktrees are untouched) and the environment that makes a child import
``neuroenc`` from it rather than from the installed working tree.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from neuroenc.config.validate import ConfigError

WORKING_TREE = Path(__file__).resolve().parents[2]


def git(*args: str) -> str:
    r = subprocess.run(["git", "-C", str(WORKING_TREE), *args], capture_output=True, text=True)
    if r.returncode:
        raise ConfigError("--against", f"git {' '.join(args)} failed in {WORKING_TREE}: {r.stderr.strip()}")
    return r.stdout.strip()


def describe_working_tree() -> str:
    """The working tree's commit, short, with ``+changes`` when files differ from it."""
    commit = git("rev-parse", "--short", "HEAD")
    return commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")


def export(rev: str, into: Path) -> str:
    """Write ``rev``'s tree under ``into``; return its short commit. A ``rev`` git does not know
    is an error naming it."""
    commit = git("rev-parse", "--verify", "--quiet", "--short", f"{rev}^{{commit}}")
    archive = subprocess.run(["git", "-C", str(WORKING_TREE), "archive", "--format=tar", commit],
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    if not (into / "neuroenc" / "bench" / "model.py").is_file():
        raise ConfigError("--against", f"{rev} ({commit}) has no neuroenc/bench/model.py to run")
    return commit


def environment(tree: Path) -> dict[str, str]:
    """The environment of a child that imports ``neuroenc`` from ``tree`` when started with
    ``cwd=tree``: ``python -m`` puts the current directory first on the import path, ahead of
    ``PYTHONPATH`` (which names ``tree`` too, for anything the child starts elsewhere). Checked
    here, because importing the installed working tree instead would time it twice."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))}
    r = subprocess.run([sys.executable, "-c", "import neuroenc; print(neuroenc.__file__)"], env=env,
                       capture_output=True, text=True, cwd=tree)
    found = Path(r.stdout.strip()).resolve() if r.returncode == 0 else None
    if found is None or not found.is_relative_to(tree.resolve()):
        raise ConfigError("--against", f"a child process imports neuroenc from {found or r.stderr.strip()}, "
                          f"not from the exported tree {tree}")
    return env
