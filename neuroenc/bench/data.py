"""``python -m neuroenc.bench data [key=value ...] [--sessions S --frames T ...] [--json]``: loader speed.

Generates a dataset in the session format, opens it through the datamodule that training uses
(``data=sessions`` composed with the given Hydra overrides, e.g. ``data.window=64
data.batch_size=8``), and times the training loader for each worker count: windows/s, MB/s of
batches delivered, MB/s read from the session files, the first batch's latency, and peak
resident memory. The dataset holds random arrays written by :func:`generate`, not the simulated
V1: the simulator's physics would dominate the time at these sizes, and the loader's cost does
not depend on what the numbers are. It is written under ``--dir`` (default: a new directory in
the system's temporary directory) and deleted afterwards unless ``--keep``. Each measurement
starts with the data evicted from the page cache (``--warm`` keeps it), as for a dataset larger
than memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from neuroenc.config.compose import compose_config
from neuroenc.config.validate import check
from neuroenc.data.sessions import SessionWriter
from neuroenc.data.synthetic import BEHAVIOR_NAMES
from neuroenc.data.windows import Batch

MIB = 1 << 20


def generate(root: Path, *, sessions: int, frames: int, neurons: int, trial_frames: int, height: int, width: int,
             seed: int = 0) -> list[Path]:
    """Random sessions: uint8 movies, small counts, normal behaviour; trials split 80/10/10."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(sessions):
        n_trials = -(-frames // trial_frames)
        order = rng.permutation(n_trials)
        n_val = n_test = max(1, n_trials // 10)
        splits = {"val": sorted(order[:n_val].tolist()), "test": sorted(order[n_val:n_val + n_test].tolist()),
                  "train": sorted(order[n_val + n_test:].tolist())}
        with SessionWriter(root / f"bench{i:03d}", n_frames=frames, n_neurons=neurons, frame_shape=(height, width),
                           behavior_names=BEHAVIOR_NAMES) as w:
            for t, a in enumerate(range(0, frames, trial_frames)):
                n = min(trial_frames, frames - a)
                stim = np.frombuffer(rng.bytes(n * height * width), np.uint8).reshape(n, height, width)
                robs = (np.frombuffer(rng.bytes(n * neurons), np.uint8) % 3).reshape(n, neurons)
                w.append(stim=stim, robs=robs, behavior=rng.standard_normal((n, len(BEHAVIOR_NAMES)), np.float32),
                         trial=np.full(n, t))
            paths.append(w.finish(session_id=f"bench{i:03d}", frame_rate=30.0, splits=splits,
                                  provenance={"source": "neuroenc.bench.data.generate (random arrays)"}))
    return paths


def evict(root: Path) -> None:
    """Drop the dataset's files from the page cache, so reads come from the disk again (written
    first: the kernel keeps dirty pages, and their writeback would compete with the reads)."""
    for f in root.rglob("*.npy"):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


class PeakMemory:
    """Samples, in a thread, the resident memory of this process (RSS) and of this process and
    its children, the workers, together (PSS: a page shared by n processes counts 1/n to each,
    so forked workers do not count the parent's libraries again)."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.rss_main = self.pss_total = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _field(path: str, name: str) -> float:
        try:
            with open(path) as f:
                return next(int(line.split()[1]) for line in f if line.startswith(name)) * 1024 / MIB
        except (OSError, StopIteration):  # a worker that just exited
            return 0.0

    @staticmethod
    def _children(pid: int) -> list[int]:
        kids = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                kids += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                pass
        return kids

    def sample(self) -> None:
        me = os.getpid()
        self.rss_main = max(self.rss_main, self._field(f"/proc/{me}/status", "VmRSS:"))
        pss = sum(self._field(f"/proc/{p}/smaps_rollup", "Pss:") for p in [me, *self._children(me)])
        self.pss_total = max(self.pss_total, pss)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def compose_data(overrides: list[str], root: Path):
    cfg = compose_config(["data=sessions", f"data.root={root}", *overrides])
    check(cfg)  # impossible values fail here, naming the key, as they do for training
    return cfg


def batch_bytes(batch: Batch) -> int:
    return sum(v.numel() * v.element_size() for v in batch.values() if isinstance(v, torch.Tensor))


def measure(cfg, workers: int, seconds: float, cold: bool) -> dict:
    """Time the training loader with ``workers`` workers for about ``seconds`` (whole epochs repeat)."""
    from neuroenc.training.build import build_datamodule

    cfg.data.num_workers = workers
    dm = build_datamodule(cfg)
    dm.setup()
    loader = dm.train_dataloader()
    s0 = dm.sessions[0]
    read_per_window = dm.window * (int(np.prod(s0.frame_shape)) * s0.stim.dtype.itemsize
                                   + s0.n_neurons * s0.robs.dtype.itemsize + s0.behavior.shape[1] * 4)
    if cold:
        evict(Path(dm.root))
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        it = iter(loader)
        next(it)
        first = time.perf_counter() - t0
        windows = nbytes = 0
        t1 = time.perf_counter()
        while time.perf_counter() - t1 < seconds:
            try:
                batch = next(it)
            except StopIteration:  # a small dataset: next epoch, same (persistent) workers
                it = iter(loader)
                continue
            windows += len(batch["stim"])
            nbytes += batch_bytes(batch)
        elapsed = time.perf_counter() - t1
        del it, loader  # shuts the workers down
    return {"workers": workers, "windows_per_s": windows / elapsed, "mb_per_s": nbytes / elapsed / 1e6,
            "read_mb_per_s": windows * read_per_window / elapsed / 1e6, "first_batch_s": first,
            "windows": windows, "seconds": elapsed, "peak_rss_main_mib": mem.rss_main,
            "peak_pss_total_mib": mem.pss_total}


def run(args) -> dict:
    root = Path(tempfile.mkdtemp(prefix="neuroenc-bench-", dir=args.dir))
    try:
        cfg = compose_data(args.overrides, root)
        t0 = time.perf_counter()
        generate(root, sessions=args.sessions, frames=args.frames, neurons=args.neurons,
                 trial_frames=args.trial_frames, height=args.height, width=args.width, seed=int(cfg.seed))
        gen_s = time.perf_counter() - t0
        from neuroenc.training.build import build_datamodule

        timings = {}
        for what in ("first", "cached"):  # first: content checks and statistics; then from stats.json
            t0 = time.perf_counter()
            build_datamodule(cfg).setup()
            timings[what] = time.perf_counter() - t0
        disk = sum(f.stat().st_size for f in root.rglob("*.npy"))
        results = [measure(cfg, w, args.seconds, cold=not args.warm) for w in args.workers]
        self_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    return {
        "dataset": {"sessions": args.sessions, "frames_per_session": args.frames, "neurons": args.neurons,
                    "trial_frames": args.trial_frames, "frame_shape": [args.height, args.width],
                    "disk_mib": disk / MIB, "root": str(root), "kept": args.keep},
        "data_config": {k: cfg.data[k] for k in ("window", "burn_in", "batch_size")},
        "generate_s": gen_s,
        "open_first_s": timings["first"],
        "open_cached_s": timings["cached"],
        "cold_cache": not args.warm,
        "loader": results,
        "peak_rss_main_mib": max(r["peak_rss_main_mib"] for r in results),
        "peak_pss_total_mib": max(r["peak_pss_total_mib"] for r in results),
        "ru_maxrss_main_mib": self_peak,
        "ru_maxrss_largest_worker_mib": child_peak,
    }


def report(r: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    d = r["dataset"]
    c = r["data_config"]
    h, w = d["frame_shape"]
    title = (f"{d['sessions']} sessions x {d['frames_per_session']} frames ({h}x{w}, "
             f"{d['neurons']} neurons; {d['disk_mib'] / 1024:.2f} GiB on disk); window {c['window']}, "
             f"batch {c['batch_size']}; {'cold' if r['cold_cache'] else 'warm'} page cache")
    table = Table(title=title)
    for col in ("workers", "windows/s", "MB/s delivered", "MB/s read", "first batch s", "peak MiB: RSS main / PSS all"):
        table.add_column(col, justify="right")
    for x in r["loader"]:
        table.add_row(str(x["workers"]), f"{x['windows_per_s']:.0f}", f"{x['mb_per_s']:.0f}",
                      f"{x['read_mb_per_s']:.1f}", f"{x['first_batch_s']:.2f}",
                      f"{x['peak_rss_main_mib']:.0f} / {x['peak_pss_total_mib']:.0f}")
    console = Console()
    console.print(table)
    console.print(f"generation {r['generate_s']:.1f} s; opening: first {r['open_first_s']:.1f} s (checks + training "
                  f"statistics), then {r['open_cached_s']:.2f} s (stats.json); peak memory: RSS of the main process "
                  f"{r['peak_rss_main_mib']:.0f} MiB, PSS of main + workers {r['peak_pss_total_mib']:.0f} MiB "
                  f"(ru_maxrss: main {r['ru_maxrss_main_mib']:.0f}, largest worker "
                  f"{r['ru_maxrss_largest_worker_mib']:.0f} MiB)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m neuroenc.bench data", description=__doc__.split("\n\n")[1])
    p.add_argument("overrides", nargs="*", help="Hydra overrides for the data config (data.window=64 ...); "
                                                "data.num_workers is set by --workers")
    p.add_argument("--sessions", type=int, default=4)
    p.add_argument("--frames", type=int, default=20_000, help="frames per session")
    p.add_argument("--neurons", type=int, default=100, help="neurons per session")
    p.add_argument("--trial-frames", type=int, default=300)
    p.add_argument("--height", type=int, default=36)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--workers", type=lambda v: [int(w) for w in v.split(",")], default=[0, 1, 2],
                   help="comma-separated worker counts to time (default 0,1,2)")
    p.add_argument("--seconds", type=float, default=5.0, help="timed per worker count, after the first batch")
    p.add_argument("--dir", default=None, help="where to generate the dataset (default: system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the generated dataset")
    p.add_argument("--warm", action="store_true", help="do not evict the data from the page cache before timing")
    p.add_argument("--json", action="store_true", help="print the results as JSON only")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    r = run(args)
    if args.json:
        print(json.dumps(r, indent=1))
    else:
        report(r)
    return 0
