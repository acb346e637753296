"""The on-disk session format: one directory per recording session (docs/data-format.md).

    <session>/stim.npy       (T, H, W) uint8 or float16   the movie shown, index 0 = oldest frame
    <session>/robs.npy       (T, N) float32              spike counts (or non-negative responses)
    <session>/dfs.npy        (T, N) uint8, optional       1 where a bin is valid (default: all valid)
    <session>/behavior.npy   (T, B) float32              named columns, see meta.json; B may be 0
    <session>/trial.npy      (T,) int64                  trial id of each frame; windows never cross trials
    <session>/rates.npy      (T, N) float32, optional     true expected counts (simulated data only)
    <session>/meta.json      session_id, frame_rate, neuron_ids, behavior_names, splits
                             ({"train": [trial ids], "val": [...], "test": [...]}), optional
                             neuron_coordinates (N x 3) and provenance
    <session>/stats.json     written on first open: content checks and training-split statistics,
                             stamped with the size and mtime of every file they were computed from

Arrays open with ``numpy.load(mmap_mode="r")``: opening costs almost no memory and slices are
views. The loader reads windows with ``pread`` instead (:class:`RowReader`). Writing goes to a
temporary directory that is renamed into place, so a session on disk is always complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from neuroenc import atomic

FORMAT = "neuroenc-session/1"
SPLITS = ("train", "val", "test")
REQUIRED = ("stim", "robs", "behavior", "trial")
OPTIONAL = ("dfs", "rates")
META_KEYS = ("session_id", "frame_rate", "neuron_ids", "behavior_names", "splits")
STIM_DTYPES = (np.uint8, np.float16, np.float32)
SCAN_VERSION = 2  # bump when the content of stats.json changes, so old ones are recomputed
CHUNK_BYTES = 32 << 20  # float64 working set per array while scanning a session
LEVELS = np.arange(256, dtype=np.float64)


class SessionFormatError(ValueError):
    """A session directory that does not follow the format; the message names session, file, problem."""


def _fail(path: Path, name: str, problem: str):
    raise SessionFormatError(f"session {path.name!r}: {name}: {problem} (in {path})")


def link_problem(f: Path) -> str | None:
    """What is wrong with ``f`` if it is a symbolic link that leads nowhere (``exists()`` says
    only False for those, which would read as "missing")."""
    if not f.is_symlink():
        return None
    try:
        os.stat(f)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "a symbolic link loop (it leads back to itself)"
        return f"a broken symbolic link (to {os.readlink(f)!r})"
    return None


def read_npy_header(fh) -> tuple[tuple, bool, np.dtype]:
    """``(shape, fortran_order, dtype)`` of the ``.npy`` file open at its start; ``fh`` is left at the data."""
    version = np.lib.format.read_magic(fh)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    return read(fh)


def npy_problem(f: Path, error: Exception) -> str:
    """Why ``numpy.load`` failed on ``f``: a file shorter than its header's shape needs (a copy
    cut short) is said so; anything else gives numpy's reason."""
    try:
        with open(f, "rb") as fh:
            shape, _, dtype = read_npy_header(fh)
            need = fh.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        size = f.stat().st_size
        if size < need:
            return f"truncated: {size} bytes, but its header's shape {tuple(shape)} of {dtype} needs {need}"
    except (ValueError, OSError, EOFError):
        pass
    return f"cannot be read as .npy ({error})"


class RowReader:
    """Rows ``[start, stop)`` of a C-ordered ``.npy`` file, read with ``pread`` into a fresh array.

    The loader reads windows this way rather than by slicing the memmap: every mapped page a
    process reads stays in its resident set, so after an epoch over memory-mapped sessions each
    worker would appear to hold the whole dataset. ``pread`` copies only the rows asked for (the
    kernel's page cache still serves repeated reads), and a reader pickles as a path and an
    offset, so DataLoader workers never receive array data, whatever their start method.
    """

    def __init__(self, array: np.memmap):
        self.path = str(array.filename)
        self.offset = int(array.offset)
        self.dtype = array.dtype
        self.row_shape = tuple(array.shape[1:])
        self.n_rows = int(array.shape[0])
        self.row_bytes = int(array.dtype.itemsize * np.prod(self.row_shape, dtype=np.int64))
        self._fd: int | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_fd": None, "_pid": None}

    def _file(self) -> int:
        if self._pid != os.getpid():  # a forked worker opens its own descriptor
            self._fd = os.open(self.path, os.O_RDONLY)
            self._pid = os.getpid()
        assert self._fd is not None
        return self._fd

    def prefetch(self, start: int, stop: int) -> None:
        """Ask the kernel to start reading rows ``[start, stop)`` in the background."""
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(self._file(), self.offset + start * self.row_bytes, (stop - start) * self.row_bytes,
                             os.POSIX_FADV_WILLNEED)

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start, *self.row_shape), self.dtype)
        want = out.nbytes
        if want == 0:  # rows of no columns (a session without behaviour): nothing to read
            return out
        got = os.preadv(self._file(), [out.data.cast("B")], self.offset + start * self.row_bytes)
        if got != want:
            raise SessionFormatError(f"{self.path}: rows {start}:{stop} lie beyond the end of the file (truncated?)")
        return out

    def __del__(self):
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)


def valid_bins(robs: np.ndarray, dfs: np.ndarray | None) -> np.ndarray:
    """The valid-bin mask of responses ``robs (T, N)``: finite, and 1 in ``dfs`` where the
    session has one. Only valid bins are trained on and scored."""
    ok = np.isfinite(robs)
    if dfs is not None:
        ok &= dfs > 0
    return ok


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
    _checks: dict | None = field(default=None, repr=False)
    _runs: tuple | None = field(default=None, repr=False)
    _readers: dict = field(default_factory=dict, repr=False)

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
    def frame_rate(self) -> float:
        return float(self.meta["frame_rate"])

    @property
    def behavior_names(self) -> list[str]:
        return list(self.meta["behavior_names"])

    def reader(self, name: str) -> RowReader:
        if name not in self._readers:
            self._readers[name] = RowReader(getattr(self, name))
        return self._readers[name]

    def trial_runs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(starts, stops, trial ids)`` of the runs of equal trial id in ``trial.npy``."""
        if self._runs is None:
            t = self.reader("trial").read(0, self.n_frames)
            change = np.flatnonzero(np.diff(t)) + 1
            starts = np.concatenate([[0], change])
            stops = np.concatenate([change, [len(t)]])
            self._runs = (starts, stops, t[starts])
        return self._runs

    def segments(self, split: str, classes: Collection[str] | None = None) -> list[tuple[int, int]]:
        """Contiguous ``[start, stop)`` frame ranges of the trials assigned to ``split``; with
        ``classes``, only of those whose stimulus class (meta.json ``trial_class``) is one of them."""
        trials = set(self.meta["splits"].get(split, []))
        if classes is not None:
            labels = trial_labels(self, "trial_class")
            trials = {t for t in trials if labels.get(int(t)) in classes}
        if not trials:
            return []
        starts, stops, ids = self.trial_runs()
        return [(int(a), int(b)) for a, b, t in zip(starts, stops, ids) if int(t) in trials]

    def split_frames(self, split: str) -> np.ndarray:
        idx = [np.arange(a, b) for a, b in self.segments(split)]
        return np.concatenate(idx) if idx else np.zeros(0, dtype=np.int64)

    def valid(self, start: int, stop: int) -> np.ndarray:
        """:func:`valid_bins` of frames [start, stop)."""
        dfs = None if self.dfs is None else self.reader("dfs").read(start, stop)
        return valid_bins(self.reader("robs").read(start, stop), dfs)

    def stats(self) -> dict:
        """Training-split statistics for normalisation: computed on first open, stored in stats.json."""
        if self._stats is None:
            self._checks, self._stats = _load_or_scan(self)
        return self._stats


def trial_labels(session: Session, key: str) -> dict[int, str]:
    """``meta.json[key]``, an object ``{"<trial id>": label}``, as ``{trial id: label}`` (empty
    when absent): ``trial_stimulus`` (the video each trial showed) or ``trial_class`` (its
    stimulus class)."""
    raw = session.meta.get(key)
    if raw is None:
        return {}
    where = f"session {session.path.name!r}: meta.json: {key}"
    if not isinstance(raw, dict):
        raise SessionFormatError(f"{where}: expected an object {{trial id: label}}, got a {type(raw).__name__}")
    out = {}
    for k, v in raw.items():
        if not str(k).lstrip("-").isdigit() or not isinstance(v, (str, int)):
            raise SessionFormatError(f"{where}: entry {k!r}: {v!r} is not a trial id with a label (in {session.path})")
        out[int(k)] = str(v)
    return out


# ------------------------------------------------------------------------------------- opening


def open_session(path: str | os.PathLike) -> Session:
    """Open a session memory-mapped and validate it; raises :class:`SessionFormatError`.

    The content checks (NaN, inf, negative responses) and the training statistics need one pass
    over the data; its result is stored in ``stats.json`` and reused while no file changes.
    """
    path = Path(path)
    if link_problem(path):
        raise SessionFormatError(f"session {path.name!r}: {link_problem(path)}: {path}")
    if not path.is_dir():
        raise SessionFormatError(f"session {path.name!r}: not a directory: {path}")
    meta = _read_meta(path)
    for key in META_KEYS:
        if key not in meta:
            _fail(path, "meta.json", f"missing key {key!r}")
    arrays = {}
    for name in (*REQUIRED, *OPTIONAL):
        f = path / f"{name}.npy"
        if problem := link_problem(f):
            _fail(path, f.name, problem)
        if not f.exists():
            if name in REQUIRED:
                _fail(path, f.name, "missing array")
            continue
        try:
            arrays[name] = np.load(f, mmap_mode="r")
        except (ValueError, OSError, EOFError) as e:
            _fail(path, f.name, npy_problem(f, e))
    s = Session(path=path, meta=meta, **arrays)
    validate(s)
    return s


def _read_meta(path: Path) -> dict:
    f = path / "meta.json"
    if problem := link_problem(f):
        _fail(path, f.name, problem)
    if not f.exists():
        _fail(path, f.name, "missing")
    raw = f.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        _fail(path, f.name, f"not UTF-8 text (byte {raw[e.start]:#04x} at position {e.start}); write it as UTF-8 JSON")
    try:
        meta = json.loads(text)
    except json.JSONDecodeError as e:
        _fail(path, f.name, f"not valid JSON ({e})")
    if not isinstance(meta, dict):
        _fail(path, f.name, f"expected a JSON object with the keys {list(META_KEYS)}, got a {type(meta).__name__}")
    return meta


def validate(s: Session) -> None:
    """Check shapes, dtypes and meta.json, then the content (from stats.json or one chunked scan)."""
    _check_structure(s)
    if s._checks is None:
        s._checks, s._stats = _load_or_scan(s)
    _check_content(s, s._checks)


def _check_structure(s: Session) -> None:
    p = s.path
    if s.stim.ndim != 3:
        _fail(p, "stim.npy", f"expected (T, H, W), got shape {s.stim.shape}")
    if s.stim.dtype not in STIM_DTYPES:
        _fail(p, "stim.npy", f"dtype {s.stim.dtype} not one of uint8, float16, float32")
    T = s.stim.shape[0]
    if T == 0:
        _fail(p, "stim.npy", "has no frames")
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
    for name in (*REQUIRED, *OPTIONAL):
        a = getattr(s, name)
        if a is None:
            continue
        if not a.flags.c_contiguous:
            # frames of a Fortran-ordered array are scattered over the whole file
            _fail(p, f"{name}.npy", "stored in Fortran order; save it with numpy.ascontiguousarray")
        kind = a.dtype.kind
        if (name == "trial" and kind not in "iu") or kind not in "iufb":
            _fail(p, f"{name}.npy", f"dtype {a.dtype} is not {'an integer' if name == 'trial' else 'numeric'}")
    m = s.meta
    names = m["behavior_names"]
    if s.behavior.shape[1] != len(names):
        _fail(p, "behavior.npy", f"{s.behavior.shape[1]} columns but meta.json names {len(names)}")
    if len(set(names)) != len(names):
        _fail(p, "meta.json", f"behavior_names repeats a name: {names}")
    if len(m["neuron_ids"]) != s.n_neurons:
        _fail(p, "meta.json", f"neuron_ids has {len(m['neuron_ids'])} entries but robs.npy has {s.n_neurons} neurons")
    coords = m.get("neuron_coordinates")
    if coords is not None and np.asarray(coords, dtype=float).shape[:1] != (s.n_neurons,):
        _fail(p, "meta.json", f"neuron_coordinates has shape {np.asarray(coords).shape}, "
                              f"expected one row per neuron ({s.n_neurons})")
    if not (isinstance(m["frame_rate"], (int, float)) and m["frame_rate"] > 0):
        _fail(p, "meta.json", f"frame_rate must be a positive number, got {m['frame_rate']!r}")
    unknown = set(m["splits"]) - set(SPLITS)
    if unknown:
        _fail(p, "meta.json", f"unknown splits {sorted(unknown)}; expected {list(SPLITS)}")
    seen: dict[int, str] = {}
    for split, trials in m["splits"].items():
        for t in trials:
            if t in seen:
                _fail(p, "meta.json", f"trial {t} is in both splits {seen[t]!r} and {split!r}")
            seen[t] = split
    if not s.segments("train"):
        _fail(p, "meta.json", "no training trials (splits.train is empty or names no trial in trial.npy)")
    for split, trials in m["splits"].items():
        if not s.segments(split):  # a listed split the loader would silently find nothing in
            what = "it is empty" if not trials else f"its trials {sorted(trials)[:5]} are not in trial.npy"
            _fail(p, "meta.json", f"split {split!r} names no trial of trial.npy ({what}); give it trials or "
                                  "leave it out of splits")


def _check_content(s: Session, checks: dict) -> None:
    p = s.path
    for name in ("stim", "behavior"):
        bad = checks[f"{name}_nonfinite_frames"]
        if bad:
            first = checks[f"{name}_first_nonfinite"]
            _fail(p, f"{name}.npy", f"contains NaN or inf on {bad} frames (first at frame {first})")
    if checks["robs_negative"]:
        _fail(p, "robs.npy", f"{checks['robs_negative']} negative responses (first at frame "
                             f"{checks['robs_first_negative']}); responses must be counts or non-negative")
    if checks["robs_inf"]:
        _fail(p, "robs.npy", f"{checks['robs_inf']} infinite responses")
    silent = checks["neurons_without_train_bins"]
    if silent:
        ids = [s.meta["neuron_ids"][j] for j in silent]
        which = (f"neuron {silent[0]} (id {ids[0]}) has" if len(silent) == 1 else
                 f"neurons {silent[:10]} (ids {ids[:10]}){' ...' if len(silent) > 10 else ''} have")
        _fail(p, "robs.npy", f"{which} no valid bin in the training split (NaN, or 0 in dfs.npy, on every training "
                             "frame): its readout could never be trained; leave it out of the session")
    if checks["robs_nan"]:
        warnings.warn(f"session {p.name!r}: robs.npy has {checks['robs_nan']} NaN bins; "
                      "they are masked out of loss and metrics", stacklevel=3)


def _stamp(path: Path) -> dict:
    """Size and modification time of every file the scan depends on."""
    files = [path / "meta.json", *(path / f"{n}.npy" for n in (*REQUIRED, *OPTIONAL))]
    return {f.name: [f.stat().st_size, f.stat().st_mtime_ns] for f in files if f.exists()}


def _load_or_scan(s: Session) -> tuple[dict, dict]:
    cache = s.path / "stats.json"
    stamp = _stamp(s.path)
    if cache.exists():
        try:
            stored = json.loads(cache.read_text())
        except json.JSONDecodeError:
            stored = {}
        if stored.get("version") == SCAN_VERSION and stored.get("stamp") == stamp:
            return stored["checks"], stored["stats"]
    checks, stats = _scan(s)
    try:
        # a cache, recomputed when lost: not worth an fsync on every first open
        atomic.write_json(cache, {"version": SCAN_VERSION, "stamp": stamp, "checks": checks, "stats": stats},
                          durable=False, indent=None)
    except OSError as e:
        warnings.warn(f"session {s.path.name!r}: cannot store stats.json beside the data ({e}); "
                      "the session is scanned again on every open", stacklevel=3)
    return checks, stats


def _scan(s: Session) -> tuple[dict, dict]:
    """One chunked pass over every frame: content checks everywhere, statistics on training frames.

    Reads go through :class:`RowReader`, so memory stays at a few chunks however long the session.
    """
    T = s.n_frames
    train = np.zeros(T, bool)
    for a, b in s.segments("train"):
        train[a:b] = True
    widest = max(int(np.prod(s.stim.shape[1:])), s.n_neurons, s.behavior.shape[1], 1)
    rows = max(1, CHUNK_BYTES // (8 * widest))
    nb = s.behavior.shape[1]
    acc: dict[str, Any]  # sums of floats and of arrays
    checks: dict[str, Any]  # counts, and first bad frames (None until one is found)
    acc = dict(s1=0.0, s2=0.0, n=0, b1=np.zeros(nb), b2=np.zeros(nb), r=np.zeros(s.n_neurons),
               rn=np.zeros(s.n_neurons))
    checks = dict(stim_nonfinite_frames=0, stim_first_nonfinite=None, behavior_nonfinite_frames=0,
                  behavior_first_nonfinite=None, robs_negative=0, robs_first_negative=None, robs_inf=0, robs_nan=0)

    for c in range(0, T, rows):
        d = min(T, c + rows)
        tr = train[c:d]
        stim = s.reader("stim").read(c, d)
        if stim.dtype != np.uint8:
            _count_bad_frames(checks, "stim", ~np.isfinite(stim).reshape(d - c, -1).all(1), c)
        beh = s.reader("behavior").read(c, d).astype(np.float64)
        # all(1) of a 2-D array is an array; numpy's stubs allow a scalar
        _count_bad_frames(checks, "behavior", ~np.isfinite(beh).all(1), c)  # type: ignore[arg-type]
        robs = s.reader("robs").read(c, d)
        nan = np.isnan(robs)
        checks["robs_nan"] += int(nan.sum())
        checks["robs_inf"] += int(np.isinf(robs).sum())
        neg = robs < 0
        if neg.any():
            if checks["robs_first_negative"] is None:
                checks["robs_first_negative"] = c + int(np.flatnonzero(neg.any(1))[0])
            checks["robs_negative"] += int(neg.sum())
        if not tr.any():
            continue
        pick = (lambda a: a) if tr.all() else (lambda a: a[tr])  # noqa: B023 (used in this iteration; most chunks are all-train)
        x = pick(stim)
        if x.dtype == np.uint8:  # a histogram gives exact sums at a fraction of the float64 cost
            hist = np.bincount(x.ravel(), minlength=256).astype(np.float64)
            acc["s1"] += hist @ LEVELS
            acc["s2"] += hist @ LEVELS**2
        else:
            x = x.astype(np.float64)
            acc["s1"] += x.sum()
            acc["s2"] += (x * x).sum()
        acc["n"] += x.size
        acc["b1"] += pick(beh).sum(0)
        acc["b2"] += (pick(beh) ** 2).sum(0)
        y = pick(robs)
        ok = valid_bins(y, None if s.dfs is None else pick(s.reader("dfs").read(c, d)))
        acc["r"] += np.where(ok, y, 0.0).sum(0, dtype=np.float64)
        acc["rn"] += ok.sum(0)
    n_frames = int(train.sum())
    with np.errstate(invalid="ignore", over="ignore"):  # inf in bad data: reported by the checks instead
        mean = acc["s1"] / max(acc["n"], 1)
        std = float(np.sqrt(max(acc["s2"] / max(acc["n"], 1) - mean**2, 0.0)))
        bmean = acc["b1"] / max(n_frames, 1)
        bstd = np.sqrt(np.maximum(acc["b2"] / max(n_frames, 1) - bmean**2, 0.0))
    finite = lambda v: [float(x) if np.isfinite(x) else 0.0 for x in v]  # bad data: JSON-safe
    stats = {
        "train_frames": n_frames,
        "stim_mean": float(mean) if np.isfinite(mean) else 0.0,
        "stim_std": std if np.isfinite(std) and std > 0 else 1.0,
        "behavior_mean": finite(bmean),
        "behavior_std": finite(np.where(bstd > 0, bstd, 1.0)),
        "mean_rate": finite(acc["r"] / np.maximum(acc["rn"], 1)),
    }
    checks["neurons_without_train_bins"] = np.flatnonzero(acc["rn"] == 0).tolist()
    return checks, stats


def _count_bad_frames(checks: dict, name: str, bad: np.ndarray, offset: int) -> None:
    if bad.any():
        if checks[f"{name}_first_nonfinite"] is None:
            checks[f"{name}_first_nonfinite"] = offset + int(np.flatnonzero(bad)[0])
        checks[f"{name}_nonfinite_frames"] += int(bad.sum())


def open_sessions(root: str | os.PathLike) -> list[Session]:
    """Open every session directory under ``root`` (hidden ones are skipped), sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise SessionFormatError(f"data root {str(root)!r} does not exist or is not a directory")
    dirs = sorted(d for d in root.iterdir() if not d.name.startswith(".") and (d.is_dir() or link_problem(d)))
    if not dirs:
        raise SessionFormatError(f"data root {str(root)!r} holds no session directories")
    sessions = [open_session(d) for d in dirs]
    first: dict[str, Session] = {}
    for s in sessions:
        if s.id in first:  # one readout per id: two recordings would share it
            _fail(s.path, "meta.json", f"session id {s.id!r} is also the id of session directory "
                                       f"{first[s.id].path.name!r}; session ids must be unique")
        first[s.id] = s
    return sessions


# ------------------------------------------------------------------------------------- writing


class SessionWriter:
    """Writes a session block by block (a trial at a time, say) without holding it in memory.

    Arrays go to a temporary directory beside ``path``; :meth:`finish` writes ``meta.json`` and
    renames the directory into place. Leaving the ``with`` block without ``finish`` (an error,
    say) deletes the temporary directory, so a session on disk is always complete::

        with SessionWriter(path, n_frames=T, n_neurons=N, frame_shape=(H, W), behavior_names=names) as w:
            for block in blocks:
                w.append(stim=..., robs=..., behavior=..., trial=..., dfs=...)
            w.finish(session_id="m1", frame_rate=30.0, splits={"train": [...], "val": [...]})
    """

    def __init__(self, path: str | os.PathLike, *, n_frames: int, n_neurons: int, frame_shape: tuple[int, int],
                 behavior_names: Sequence[str], stim_dtype=np.uint8, dfs: bool = False, rates: bool = False,
                 overwrite: bool = False):
        self.path = Path(path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"session {self.path.name!r}: destination exists: {self.path} (pass overwrite=True)")
        if np.dtype(stim_dtype) not in STIM_DTYPES:
            raise ValueError(f"session {self.path.name!r}: stim dtype {np.dtype(stim_dtype)} not one of uint8, "
                             "float16, float32")
        if n_frames <= 0:
            raise ValueError(f"session {self.path.name!r}: a session needs at least one frame, got n_frames={n_frames}")
        self.overwrite = overwrite
        self.n_frames = int(n_frames)
        self.behavior_names = list(behavior_names)
        h, w = frame_shape
        shapes = {"stim": ((h, w), np.dtype(stim_dtype)), "robs": ((n_neurons,), np.dtype(np.float32)),
                  "behavior": ((len(self.behavior_names),), np.dtype(np.float32)), "trial": ((), np.dtype(np.int64))}
        if dfs:
            shapes["dfs"] = ((n_neurons,), np.dtype(np.uint8))
        if rates:
            shapes["rates"] = ((n_neurons,), np.dtype(np.float32))
        self.layout = shapes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp: Path | None = atomic.temp_dir_beside(self.path)
        self.files = {}
        self.written = 0
        try:
            for name, (row, dt) in shapes.items():
                f = self.tmp / f"{name}.npy"
                # open_memmap writes the .npy header for the final shape; the rows are then
                # appended with plain writes, so nothing is mapped while writing
                header = np.lib.format.open_memmap(f, mode="w+", dtype=dt, shape=(self.n_frames, *row))
                offset = header.offset
                del header
                fh = open(f, "r+b")
                fh.seek(offset)
                self.files[name] = fh
        except BaseException:
            self._abort()
            raise

    def append(self, *, stim, robs, trial, behavior=None, dfs=None, rates=None) -> None:
        """Append the next ``t`` frames: stim (t, H, W), robs/dfs/rates (t, N), behavior (t, B), trial (t,).

        ``behavior`` may be left out when the session has no behaviour columns (``behavior_names=[]``)."""
        t = len(stim)
        if behavior is None and not self.behavior_names:
            behavior = np.zeros((t, 0), np.float32)
        blocks = {"stim": stim, "robs": robs, "behavior": behavior, "trial": trial, "dfs": dfs, "rates": rates}
        if self.written + t > self.n_frames:
            raise ValueError(f"session {self.path.name!r}: {self.written + t} frames appended, more than "
                             f"n_frames={self.n_frames}")
        for name, (row, dt) in self.layout.items():
            a = blocks[name]
            if a is None:
                raise ValueError(f"session {self.path.name!r}: {name} missing from append "
                                 "(the writer was opened with it)")
            a = np.ascontiguousarray(a, dtype=dt)
            if a.shape != (t, *row):
                names = f" (one column per name of behavior_names {self.behavior_names})" if name == "behavior" else ""
                raise ValueError(f"session {self.path.name!r}: {name} block has shape {a.shape}, expected {(t, *row)}"
                                 f"{names}")
            self.files[name].write(a.data)
        self.written += t

    def finish(self, *, session_id: str, frame_rate: float, splits: dict[str, list[int]],
               neuron_ids: list | np.ndarray | None = None, neuron_coordinates=None, provenance: dict | None = None,
               extra_meta: dict | None = None) -> Path:
        """Write meta.json and move the complete session into place; returns its path."""
        if self.written != self.n_frames:
            raise ValueError(f"session {self.path.name!r}: {self.written} frames appended, expected {self.n_frames}")
        n = self.layout["robs"][0][0]
        meta = {
            "format": FORMAT,
            "session_id": session_id,
            "frame_rate": float(frame_rate),
            "neuron_ids": _json_list(neuron_ids) if neuron_ids is not None else list(range(n)),
            "behavior_names": self.behavior_names,
            "splits": {k: [int(t) for t in v] for k, v in splits.items()},
            **({"neuron_coordinates": np.asarray(neuron_coordinates, float).tolist()}
               if neuron_coordinates is not None else {}),
            **({"provenance": provenance} if provenance is not None else {}),
            **(extra_meta or {}),
        }
        for fh in self.files.values():
            fh.close()
        assert self.tmp is not None, "finish() is called once"
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        if self.path.exists() and not self.overwrite:
            raise FileExistsError(f"session {self.path.name!r}: destination exists: {self.path} "
                                  "(it appeared while writing)")
        atomic.replace_dir(self.tmp, self.path)  # fsyncs every file first
        self.tmp = None
        return self.path

    def _abort(self) -> None:
        for fh in self.files.values():
            fh.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(self, *exc) -> None:
        self._abort()  # after finish() there is nothing left to remove


def _json_list(values) -> list:
    """Neuron ids as JSON values (numpy integers and strings become Python ones)."""
    return np.asarray(values).tolist()


def write_session(
    path: str | os.PathLike,
    *,
    session_id: str,
    stim: np.ndarray,
    robs: np.ndarray,
    trial: np.ndarray,
    splits: dict[str, list[int]],
    frame_rate: float,
    behavior: np.ndarray | None = None,
    behavior_names: Sequence[str] = (),
    neuron_ids: list | None = None,
    neuron_coordinates=None,
    provenance: dict | None = None,
    dfs: np.ndarray | None = None,
    rates: np.ndarray | None = None,
    extra_meta: dict | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a complete in-memory session atomically: :class:`SessionWriter` with one block.

    A session without behaviour leaves out ``behavior`` and ``behavior_names`` (or passes a
    ``(T, 0)`` array and ``[]``)."""
    stim = np.asarray(stim)
    robs = np.asarray(robs)
    with SessionWriter(path, n_frames=len(stim), n_neurons=robs.shape[1], frame_shape=stim.shape[1:3],
                       behavior_names=behavior_names, stim_dtype=stim.dtype, dfs=dfs is not None,
                       rates=rates is not None, overwrite=overwrite) as w:
        w.append(stim=stim, robs=robs, behavior=behavior, trial=trial, dfs=dfs, rates=rates)
        return w.finish(session_id=session_id, frame_rate=frame_rate, splits=splits, neuron_ids=neuron_ids,
                        neuron_coordinates=neuron_coordinates, provenance=provenance, extra_meta=extra_meta)
