"""Writing files and directories so that a reader sees the old content or the new, never a torn one.

Every file a run or an import produces goes through here: checkpoints, ``metrics.json``,
``per_neuron.csv``, ``environment.json``, session directories and the simulator's cache.

A file is written to a temporary name beside its target (same directory, so same file system),
flushed, fsynced where its content matters, and renamed over the target: ``os.replace`` is
atomic on POSIX and Windows. The directory is fsynced after the rename so that the rename
itself survives a power cut. A process killed mid-write leaves at most a hidden
``.<name>.tmp-<pid>-<random>`` file, which the next write of that name removes once its pid is
no longer running.

A directory (a session, a simulated dataset) is built under a hidden temporary name and renamed
into place the same way (:func:`temp_dir_beside`, :func:`replace_dir`, :func:`publish_dir`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def fsync_dir(directory: Path) -> None:
    """Make renames into ``directory`` durable; a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process, or no way to tell: leave its file alone
    return True


def _clear_dead_temporaries(path: Path) -> None:
    """Remove ``.<name>.tmp-<pid>-*`` files of ``path`` left by processes that are gone (killed mid-write)."""
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        pid = stale.name[len(f".{path.name}.tmp-"):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_running(int(pid)):
            stale.unlink(missing_ok=True)


@contextmanager
def open_for_write(path, mode: str = "w", durable: bool = True, **open_kwargs) -> Iterator[IO]:
    """``with open_for_write(path) as f: f.write(...)``: ``path`` gets the content only if the block
    completes; an exception leaves ``path`` as it was and removes the temporary file.

    ``mode`` is ``"w"`` or ``"wb"`` (text mode takes ``encoding``, ``newline``); ``durable``
    fsyncs the file and its directory (skip it only for caches that can be recomputed).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_for_write: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_dead_temporaries(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    # os.open with 0o666, not mkstemp (0o600): the file gets the permissions a plain open() gives
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, mode, encoding="utf-8" if mode == "w" else None, **open_kwargs) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_bytes(path, data: bytes, durable: bool = True) -> Path:
    with open_for_write(path, "wb", durable) as f:
        f.write(data)
    return Path(path)


def write_text(path, text: str, durable: bool = True) -> Path:
    with open_for_write(path, "w", durable) as f:
        f.write(text)
    return Path(path)


def write_json(path, content, durable: bool = True, indent: int | None = 1) -> Path:
    return write_text(path, json.dumps(content, indent=indent) + "\n", durable)


def fsync_tree(directory: Path) -> None:
    """fsync every file under ``directory`` and the directories themselves, before it is renamed into place."""
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(root))


# ------------------------------------------------------------------------------------- directories


def _umask() -> int:
    try:  # read, not set-and-restore: another thread could create a file in between
        with open("/proc/self/status") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration):
        mask = os.umask(0)
        os.umask(mask)
        return mask


def temp_dir_beside(dest: Path, label: str = "tmp") -> Path:
    """A hidden directory beside ``dest`` with the permissions a plain ``mkdir`` would give it
    (``mkdtemp`` makes it private, and it keeps its mode when renamed into place)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.{label}-"))
    tmp.chmod(0o777 & ~_umask())
    return tmp


def replace_dir(tmp: Path, dest: Path, durable: bool = True) -> None:
    """Move the complete directory ``tmp`` to ``dest``; an existing ``dest`` is moved aside first
    and deleted only after the rename, so ``dest`` is at every moment either old or new, never half."""
    if durable:
        fsync_tree(tmp)
    old = None
    if dest.exists():
        old = temp_dir_beside(dest, "old")
        os.replace(dest, old / dest.name)
    os.replace(tmp, dest)
    if durable:
        fsync_dir(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def publish_dir(tmp: Path, dest: Path, durable: bool = True) -> bool:
    """Rename the complete directory ``tmp`` to ``dest`` unless another process published ``dest``
    first (concurrent jobs building the same cache); then ``tmp`` is deleted. True if ours won."""
    if durable:
        fsync_tree(tmp)
    try:
        os.replace(tmp, dest)
    except OSError:
        if not dest.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    if durable:
        fsync_dir(dest.parent)
    return True
