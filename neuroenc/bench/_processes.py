"""Child processes with a deadline: a benchmark part that runs over its time is stopped, not waited for.

Each child starts its own session, so that stopping it also stops what it started (DDP ranks,
torch.compile's worker pool). Output goes to files, never to pipes, so that children running
side by side cannot block on a full pipe.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# lines a failed child prints after its error
NOT_THE_ERROR = ("Set the environment variable HYDRA_FULL_ERROR",)


@dataclass
class Job:
    name: str
    cmd: list[str]
    log: Path  # the child's stderr, and its stdout unless ``stdout`` is given
    stdout: Path | None = None  # keep stdout apart (a child that prints JSON)


@dataclass
class Outcome:
    name: str
    returncode: int | None  # None: stopped at the deadline
    seconds: float
    stdout: str  # what the child printed to ``Job.stdout`` (empty without one)

    @property
    def timed_out(self) -> bool:
        return self.returncode is None

    def error_line(self, log: Path) -> str:
        """Why it failed, in one line: the deadline, or the last non-empty line of its log."""
        if self.timed_out:
            return f"stopped after {self.seconds:.0f} s: its time budget was spent"
        lines = [line.strip() for line in _read(log).splitlines()
                 if line.strip() and not line.startswith(NOT_THE_ERROR)]
        return f"exit status {self.returncode}: {lines[-1] if lines else '(no output)'}"


def _read(path: Path | None) -> str:
    try:
        return Path(path).read_text(errors="replace") if path else ""
    except OSError:
        return ""


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the child and what it started, nothing else
    except ProcessLookupError:
        pass
    proc.wait()


def run_jobs(jobs: list[Job], deadline: float, tick: Callable[[], None] = lambda: None,
             env: dict | None = None) -> list[Outcome]:
    """Run ``jobs`` side by side until each ends or ``deadline`` (``time.monotonic()``) passes;
    ``tick`` is called a few times a second (to update a progress bar)."""
    started = time.monotonic()
    procs = []
    try:
        for job in jobs:
            job.log.parent.mkdir(parents=True, exist_ok=True)
            with open(job.log, "w") as log, open(job.stdout or os.devnull, "w") as out:
                procs.append(subprocess.Popen(job.cmd, stdout=out if job.stdout else log, stderr=log,
                                              stdin=subprocess.DEVNULL, start_new_session=True, env=env))
        ended: dict[int, float] = {}
        while len(ended) < len(procs) and time.monotonic() < deadline:
            for i, p in enumerate(procs):
                if i not in ended and p.poll() is not None:
                    ended[i] = time.monotonic()
            tick()
            time.sleep(0.2)
        for i, p in enumerate(procs):  # those that ended since the last look are not stopped
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic()
    finally:
        for p in procs:
            if p.poll() is None:
                _stop(p)
    now = time.monotonic()
    return [Outcome(job.name, p.returncode if i in ended else None, ended.get(i, now) - started, _read(job.stdout))
            for i, (job, p) in enumerate(zip(jobs, procs))]
