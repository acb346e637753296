"""The on-disk session format: one directory per recording session.

    <session>/stim.npy       (T, H, W) uint8 or float16   the movie shown, index 0 = oldest frame
    <session>/robs.npy       (T, N) float32              spike counts (or non-negative responses)
    <session>/dfs.npy        (T, N) uint8, optional       1 where a bin is valid (default: all valid)
    <session>/behavior.npy   (T, B) float32              named columns, see meta.json
    <session>/trial.npy      (T,) int64                  trial id of each frame; windows never cross trials
    <session>/rates.npy      (T, N) float32, optional     true expected counts (simulated data only)
    <session>/meta.json      session_id, frame_rate, neuron_ids, behavior_names, splits
                             ({"train": [trial ids], "val": [...], "test": [...]}), provenance, ...

Arrays open with ``numpy.load(mmap_mode="r")``: opening costs almost no memory and windows are
views. Writing goes to a temporary directory that is renamed into place, so a session on disk
is always complete.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "neuroenc-session/1"
SPLITS = ("train", "val", "test")
REQUIRED = ("stim", "robs", "behavior", "trial")


class SessionFormatError(ValueError):
    """A session directory that does not follow the format; the message names session, file, problem."""


def _fail(path: Path, name: str, problem: str):
    raise SessionFormatError(f"session {path.name!r}: {name}: {problem} (in {path})")


@dataclass
class Session:
    """An opened (memory-mapped) session; see the module docstring for the arrays."""

    path: Path
    meta: dict
    stim: np.ndarray
    robs: np.ndarray
    behavior: np.ndarray
    trial: np.ndarray
    dfs: np.ndarray | None = None
    rates: np.ndarray | None = None
    _stats: dict | None = field(default=None, repr=False)

    @property
    def id(self) -> str:
        return self.meta["session_id"]

    @property
    def n_frames(self) -> int:
        return self.stim.shape[0]

    @property
    def n_neurons(self) -> int:
        return self.robs.shape[1]

    @property
    def frame_shape(self) -> tuple[int, int]:
        return tuple(self.stim.shape[1:3])

    @property
    def behavior_names(self) -> list[str]:
        return list(self.meta["behavior_names"])

    def segments(self, split: str) -> list[tuple[int, int]]:
        """Contiguous ``[start, stop)`` frame ranges of the trials assigned to ``split``."""
        trials = set(self.meta["splits"].get(split, []))
        if not trials:
            return []
        t = np.asarray(self.trial)
        change = np.flatnonzero(np.diff(t)) + 1
        starts = np.concatenate([[0], change])
        stops = np.concatenate([change, [len(t)]])
        return [(int(a), int(b)) for a, b in zip(starts, stops) if int(t[a]) in trials]

    def split_frames(self, split: str) -> np.ndarray:
        idx = [np.arange(a, b) for a, b in self.segments(split)]
        return np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)

    def valid(self, start: int, stop: int) -> np.ndarray:
        """Valid-bin mask for frames [start, stop): ``dfs`` and finite responses."""
        r = np.asarray(self.robs[start:stop])
        ok = np.isfinite(r)
        if self.dfs is not None:
            ok &= np.asarray(self.dfs[start:stop]) > 0
        return ok

    def stats(self) -> dict:
        """Training-split statistics for normalisation, computed once and stored in stats.json."""
        if self._stats is None:
            cache = self.path / "stats.json"
            if cache.exists():
                self._stats = json.loads(cache.read_text())
            else:
                self._stats = self._compute_stats()
                try:
                    _atomic_write_text(cache, json.dumps(self._stats))
                except OSError:
                    pass  # read-only data: keep the statistics in memory
        return self._stats

    def _compute_stats(self) -> dict:
        s1 = s2 = n = 0.0
        beh_sum = np.zeros(self.behavior.shape[1])
        beh_sq = np.zeros(self.behavior.shape[1])
        rate_sum = np.zeros(self.n_neurons)
        rate_n = np.zeros(self.n_neurons)
        for a, b in self.segments("train"):
            for c in range(a, b, 4096):  # chunks keep memory flat on long sessions
                d = min(b, c + 4096)
                x = np.asarray(self.stim[c:d], dtype=np.float64)
                s1 += x.sum()
                s2 += (x * x).sum()
                n += x.size
                bh = np.asarray(self.behavior[c:d], dtype=np.float64)
                beh_sum += bh.sum(0)
                beh_sq += (bh * bh).sum(0)
                ok = self.valid(c, d)
                r = np.where(ok, np.asarray(self.robs[c:d], dtype=np.float64), 0.0)
                rate_sum += r.sum(0)
                rate_n += ok.sum(0)
        nf = max(n / max(self.stim.shape[1] * self.stim.shape[2], 1), 1)
        mean = s1 / max(n, 1)
        std = float(np.sqrt(max(s2 / max(n, 1) - mean**2, 0.0)))
        bmean = beh_sum / nf
        bstd = np.sqrt(np.maximum(beh_sq / nf - bmean**2, 0.0))
        return {
            "stim_mean": float(mean),
            "stim_std": std if std > 0 else 1.0,
            "behavior_mean": bmean.tolist(),
            "behavior_std": np.where(bstd > 0, bstd, 1.0).tolist(),
            "mean_rate": (rate_sum / np.maximum(rate_n, 1)).tolist(),
        }


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def open_session(path: str | os.PathLike) -> Session:
    """Open a session memory-mapped and validate it; raises :class:`SessionFormatError`."""
    path = Path(path)
    if not path.is_dir():
        raise SessionFormatError(f"session {path.name!r}: not a directory: {path}")
    meta_file = path / "meta.json"
    if not meta_file.exists():
        _fail(path, "meta.json", "missing")
    try:
        meta = json.loads(meta_file.read_text())
    except json.JSONDecodeError as e:
        _fail(path, "meta.json", f"not valid JSON ({e})")
    for key in ("session_id", "behavior_names", "splits"):
        if key not in meta:
            _fail(path, "meta.json", f"missing key {key!r}")
    arrays = {}
    for name in (*REQUIRED, "dfs", "rates"):
        f = path / f"{name}.npy"
        if not f.exists():
            if name in REQUIRED:
                _fail(path, f.name, "missing array")
            continue
        try:
            arrays[name] = np.load(f, mmap_mode="r")
        except ValueError as e:
            _fail(path, f.name, f"cannot be read as .npy ({e})")
    s = Session(path=path, meta=meta, **arrays)
    validate(s)
    return s


def validate(s: Session) -> None:
    p = s.path
    if s.stim.ndim != 3:
        _fail(p, "stim.npy", f"expected (T, H, W), got shape {s.stim.shape}")
    if s.stim.dtype not in (np.uint8, np.float16, np.float32):
        _fail(p, "stim.npy", f"dtype {s.stim.dtype} not one of uint8, float16, float32")
    T = s.stim.shape[0]
    expect = {"robs": 2, "behavior": 2, "trial": 1, "dfs": 2, "rates": 2}
    for name, nd in expect.items():
        a = getattr(s, name)
        if a is None:
            continue
        if a.ndim != nd:
            _fail(p, f"{name}.npy", f"expected {nd} dimensions, got shape {a.shape}")
        if a.shape[0] != T:
            _fail(p, f"{name}.npy", f"length {a.shape[0]} does not match stim.npy length {T}")
    for name in ("dfs", "rates"):
        a = getattr(s, name)
        if a is not None and a.shape != s.robs.shape:
            _fail(p, f"{name}.npy", f"shape {a.shape} does not equal robs.npy shape {s.robs.shape}")
    if s.behavior.shape[1] != len(s.meta["behavior_names"]):
        _fail(p, "behavior.npy", f"{s.behavior.shape[1]} columns but meta.json names {len(s.meta['behavior_names'])}")
    if s.stim.dtype != np.uint8 and not np.isfinite(s.stim).all():
        _fail(p, "stim.npy", "contains NaN or inf")
    if not np.isfinite(s.behavior).all():
        _fail(p, "behavior.npy", "contains NaN or inf")
    robs = np.asarray(s.robs)
    nan = np.isnan(robs)
    if (robs[~nan] < 0).any():
        _fail(p, "robs.npy", f"{int((robs[~nan] < 0).sum())} negative responses")
    if nan.any():
        warnings.warn(f"session {p.name!r}: robs.npy has {int(nan.sum())} NaN bins; they are masked out of loss and metrics")
    unknown = set(s.meta["splits"]) - set(SPLITS)
    if unknown:
        _fail(p, "meta.json", f"unknown splits {sorted(unknown)}; expected {list(SPLITS)}")
    if not s.segments("train"):
        _fail(p, "meta.json", "no training trials (splits.train is empty or names no trial in trial.npy)")


def write_session(
    path: str | os.PathLike,
    *,
    session_id: str,
    stim: np.ndarray,
    robs: np.ndarray,
    behavior: np.ndarray,
    behavior_names: list[str],
    trial: np.ndarray,
    splits: dict[str, list[int]],
    frame_rate: float,
    neuron_ids: list | None = None,
    dfs: np.ndarray | None = None,
    rates: np.ndarray | None = None,
    extra_meta: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete session atomically (temporary directory, then rename)."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"session {path.name!r}: destination exists: {path} (pass overwrite=True)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        np.save(tmp / "stim.npy", stim)
        np.save(tmp / "robs.npy", np.asarray(robs, dtype=np.float32))
        np.save(tmp / "behavior.npy", np.asarray(behavior, dtype=np.float32))
        np.save(tmp / "trial.npy", np.asarray(trial, dtype=np.int64))
        if dfs is not None:
            np.save(tmp / "dfs.npy", np.asarray(dfs, dtype=np.uint8))
        if rates is not None:
            np.save(tmp / "rates.npy", np.asarray(rates, dtype=np.float32))
        meta = {
            "format": FORMAT,
            "session_id": session_id,
            "frame_rate": float(frame_rate),
            "neuron_ids": list(neuron_ids) if neuron_ids is not None else list(range(robs.shape[1])),
            "behavior_names": list(behavior_names),
            "splits": {k: [int(t) for t in v] for k, v in splits.items()},
            **(extra_meta or {}),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def open_sessions(root: str | os.PathLike) -> list[Session]:
    """Open every session directory (one holding meta.json) under ``root``, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise SessionFormatError(f"data root {str(root)!r} does not exist or is not a directory")
    dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise SessionFormatError(f"data root {str(root)!r} holds no session directories")
    return [open_session(d) for d in dirs]
