"""Import the NeurIPS Sensorium 2023 recordings into the session format, one session per mouse.

Sensorium 2023 ships one folder per mouse (unzipped)::

    <mouse>/data/videos/<trial>.npy         (36, 64, T) greyscale movie
    <mouse>/data/responses/<trial>.npy      (N, T) deconvolved calcium activity
    <mouse>/data/behavior/<trial>.npy       (2, T) pupil dilation, running speed
    <mouse>/data/pupil_center/<trial>.npy   (2, T) pupil x, y
    <mouse>/meta/trials/tiers.npy           (trials,) train | oracle | live_test_main | live_test_bonus
                                            | final_test_main | final_test_bonus | none
    <mouse>/meta/neurons/unit_ids.npy       (N,)
    <mouse>/meta/neurons/cell_motor_coordinates.npy   (N, 3)

Arrays are NaN-padded after each trial's end: a trial ends at its last frame whose video is
finite, and the frames after it are dropped. Tiers become splits (train -> train, oracle -> val,
the four test tiers -> test); trials of tier ``none`` are left out, and so are test-tier trials
whose response file is absent (some copies ship those tiers without responses), with a warning; an
absent response file of a train or oracle trial is an error. Responses are clipped at 0 and kept
as floats (bits per spike on them is a pseudo-likelihood score, see docs/data-format.md); NaN
responses inside a trial are masked through ``dfs``. Behaviour is pupil dilation, running speed
and the pupil centre, which becomes ``eye_x``, ``eye_y``: the columns the shifter reads
(``shifter.columns``). A NaN in it inside a trial is filled by linear interpolation over time and
counted. Trials with identical frames (the oracle tier shows each of its videos several times) are
recorded in ``meta.json`` ``trial_stimulus``, for the repeat scores.

The conversion reads every trial twice (lengths first, then data) and streams each mouse to disk
with :class:`~neuroenc.data.sessions.SessionWriter`, so memory stays at one trial. All mice are
written into a temporary directory beside the destination, checked by opening them (which also
stores their training statistics) and given their ``import_report.json``
(:mod:`neuroenc.data.import_report`), and only then renamed into place: a failed import leaves the
destination as it was.
"""

from __future__ import annotations

import pickle
import re
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from neuroenc import atomic
from neuroenc.data import import_report
from neuroenc.data.repeats import StimulusHasher
from neuroenc.data.sessions import SPLITS, SessionWriter, link_problem, npy_problem, open_session, read_npy_header

FRAME_RATE = 30.0  # Hz, the rate at which Sensorium 2023 videos and responses are sampled
# behaviour columns: (source array, row, Sensorium's name); the pupil centre is the eye position, named as the
# shifter looks for it (shifter.columns), or the default model would silently run without a shifter
SOURCE_COLUMNS = [("behavior", 0, "pupil_dilation"), ("behavior", 1, "running_speed"), ("pupil_center", 0, "pupil_x"),
                  ("pupil_center", 1, "pupil_y")]
RENAMED = {"pupil_x": "eye_x", "pupil_y": "eye_y"}
BEHAVIOR_NAMES = [RENAMED.get(name, name) for _, _, name in SOURCE_COLUMNS]
TIER_SPLITS = {
    "train": "train",
    "oracle": "val",
    "live_test_main": "test",
    "live_test_bonus": "test",
    "final_test_main": "test",
    "final_test_bonus": "test",
    "none": None,
}
ARRAYS = ("videos", "responses", "behavior", "pupil_center")


class SensoriumFormatError(ValueError):
    """A source folder that does not follow the Sensorium 2023 layout; names mouse, file, problem."""


@dataclass
class Mouse:
    """One mouse folder, its trials (in id order, tier ``none`` left out) and neuron metadata."""

    folder: Path
    session_id: str
    trials: list[int]
    tiers: dict[int, str]
    unit_ids: np.ndarray
    coordinates: np.ndarray
    lengths: dict[int, int] = field(default_factory=dict)  # frames before the NaN padding
    stim_dtype: type = np.uint8
    responses_absent: dict[str, list[int]] = field(default_factory=dict)  # test tier -> trials left out
    warned: list[str] = field(default_factory=list)  # every warning as issued, for the import report

    def warn(self, text: str):
        text = f"mouse {self.folder.name!r}: {text}"
        self.warned.append(text)
        warnings.warn(text, stacklevel=3)

    @property
    def tier_none(self) -> list[int]:
        return sorted(t for t, tier in self.tiers.items() if tier == "none")

    def file(self, array: str, trial: int) -> Path:
        return self.folder / "data" / array / f"{trial}.npy"

    def fail(self, path: Path | str, problem: str):
        rel = path.relative_to(self.folder) if isinstance(path, Path) else path
        raise SensoriumFormatError(f"mouse {self.folder.name!r}: {rel}: {problem} (in {self.folder})")

    def load(self, array: str, trial: int, mmap: bool = False) -> np.ndarray:
        f = self.file(array, trial)
        if problem := link_problem(f):
            self.fail(f, problem)
        if not f.exists():
            self.fail(f, f"missing (trial {trial} has tier {self.tiers[trial]!r})")
        try:
            a = np.load(f, mmap_mode="r" if mmap else None)
        except (ValueError, OSError, EOFError) as e:
            self.fail(f, npy_problem(f, e))
        if a.dtype.kind not in "biuf":
            self.fail(f, f"dtype {a.dtype} is not real numbers")
        return a


def session_id_of(folder: Path) -> str:
    """``dynamic29156-11-10-Video-8744ed...`` -> ``dynamic29156-11-10``: the hash adds nothing."""
    return re.sub(r"-Video-[0-9a-fA-F]+$", "", folder.name)


def find_mice(src: Path) -> list[Path]:
    """``src`` itself if it is a mouse folder (``data/`` and ``meta/``), else its mouse subfolders."""
    is_mouse = lambda d: (d / "data").is_dir() and (d / "meta").is_dir()
    if not src.is_dir():
        raise SensoriumFormatError(f"source {str(src)!r} does not exist or is not a directory")
    if is_mouse(src):
        return [src]
    mice = sorted(d for d in src.iterdir() if d.is_dir() and is_mouse(d))
    if not mice:
        zips = sorted(p.name for p in src.glob("*.zip"))
        hint = f"; unzip {zips[0]} and the others first" if zips else ""
        raise SensoriumFormatError(f"source {str(src)!r} holds no Sensorium mouse folder (one with data/ and "
                                   f"meta/){hint}")
    return mice


def _load_meta(folder: Path, rel: str) -> np.ndarray:
    f = folder / rel
    fail = lambda problem: SensoriumFormatError(f"mouse {folder.name!r}: {rel}: {problem} (in {folder})")
    if link_problem(f):
        raise fail(link_problem(f))
    if not f.exists():
        raise fail("missing")
    try:
        try:
            return np.load(f)
        except ValueError as e:
            if "allow_pickle" not in str(e):
                raise
            return _load_object_array(f)  # tier names are often saved as an object array of str
    except (ValueError, OSError, EOFError, pickle.UnpicklingError) as e:
        raise fail(npy_problem(f, e)) from None


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles an object array of plain values and nothing else: a crafted .npy cannot run code."""

    ALLOWED = {("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"it holds a pickled {module}.{name}, not an array of strings; not loaded")
        return super().find_class(module, name)


def _load_object_array(f: Path) -> np.ndarray:
    with open(f, "rb") as fh:
        read_npy_header(fh)
        array = _ArrayOnlyUnpickler(fh).load()
    if not isinstance(array, np.ndarray):
        raise ValueError(f"expected an array, found a pickled {type(array).__name__}")
    return array


def read_mouse(folder: Path) -> Mouse:
    """Read a mouse's metadata and list its trials; checks what can be checked without the data."""
    tiers_arr = [str(t) for t in np.asarray(_load_meta(folder, "meta/trials/tiers.npy")).ravel()]
    unit_ids = np.asarray(_load_meta(folder, "meta/neurons/unit_ids.npy"))
    coords = np.asarray(_load_meta(folder, "meta/neurons/cell_motor_coordinates.npy"), dtype=np.float64)
    mouse = Mouse(folder, session_id_of(folder), [], {}, unit_ids, coords)
    if unit_ids.ndim != 1:
        mouse.fail("meta/neurons/unit_ids.npy", f"expected (N,), got shape {unit_ids.shape}")
    if coords.shape != (len(unit_ids), 3):
        mouse.fail("meta/neurons/cell_motor_coordinates.npy",
                   f"shape {coords.shape}, expected (N, 3) with N = {len(unit_ids)} from unit_ids.npy")
    unknown = sorted(set(tiers_arr) - set(TIER_SPLITS))
    if unknown:
        mouse.fail("meta/trials/tiers.npy", f"unknown tiers {unknown}; expected {sorted(TIER_SPLITS)}")
    videos = folder / "data" / "videos"
    if not videos.is_dir():
        mouse.fail("data/videos", "missing directory")
    ids: list[int] = []
    files: dict[int, Path] = {}
    for f in sorted(videos.glob("*.npy")):
        if not f.stem.isdigit():
            mouse.fail(f, "trial files must be named <trial id>.npy")
        t = int(f.stem)
        if t in files:  # 5.npy and 05.npy: one trial, two recordings
            mouse.fail(files[t], f"trial {t} has two files, {files[t].name} and {f.name}")
        files[t] = f
        ids.append(t)
    for t in ids:
        if t >= len(tiers_arr):
            mouse.fail(f"data/videos/{t}.npy",
                       f"trial {t} has no tier: meta/trials/tiers.npy has {len(tiers_arr)} entries")
    mouse.tiers = {t: str(tiers_arr[t]) for t in range(len(tiers_arr))}
    missing = [t for t, tier in mouse.tiers.items() if TIER_SPLITS[tier] is not None and t not in ids]
    if missing:
        mouse.fail(f"data/videos/{missing[0]}.npy", f"missing (trial {missing[0]} has tier "
                                                    f"{mouse.tiers[missing[0]]!r}; {len(missing)} trials missing)")
    mouse.trials = sorted(t for t in ids if TIER_SPLITS[mouse.tiers[t]] is not None)
    leave_out_absent_test_responses(mouse)
    for split, tier in (("train", "train"), ("val", "oracle")):  # what training needs; a test split may be absent
        if not any(TIER_SPLITS[mouse.tiers[t]] == split for t in mouse.trials):
            mouse.fail("meta/trials/tiers.npy", f"no trial has tier {tier!r} (the {split} split)")
    return mouse


def leave_out_absent_test_responses(mouse: Mouse) -> None:
    """Drop the test-tier trials without a response file, with a warning: the live and final test
    tiers are published with videos and behaviour only. A train or oracle trial without one stays
    an error (when it is read). A broken link is not absent: reading it names the problem."""
    absent = {t for t in mouse.trials if TIER_SPLITS[mouse.tiers[t]] == "test"
              and not mouse.file("responses", t).exists() and not mouse.file("responses", t).is_symlink()}
    if not absent:
        return
    mouse.responses_absent = {tier: sorted(t for t in absent if mouse.tiers[t] == tier) for tier in TIER_SPLITS
                              if any(mouse.tiers[t] == tier for t in absent)}
    mouse.trials = [t for t in mouse.trials if t not in absent]
    per_tier = ", ".join(f"{len(v)} of tier {tier!r}" for tier, v in mouse.responses_absent.items())
    mouse.warn(f"test-tier trials left out because their response file (data/responses/<trial>.npy) is absent: "
               f"{len(absent)} ({per_tier})")


def trial_length(mouse: Mouse, trial: int) -> tuple[int, bool]:
    """Frames before the NaN padding, and whether they all hold integers in 0..255."""
    video = mouse.load("videos", trial)
    f = mouse.file("videos", trial)
    if video.ndim != 3 or video.shape[:2] != (36, 64):
        mouse.fail(f, f"expected (36, 64, T), got shape {video.shape}")
    finite = np.isfinite(video).all(axis=(0, 1)) if video.dtype.kind == "f" else np.ones(video.shape[2], bool)
    if not finite.any():
        mouse.fail(f, "no finite frame (the whole trial is padding)")
    n = int(np.flatnonzero(finite)[-1]) + 1
    if not finite[:n].all():
        mouse.fail(f, f"NaN or inf in frame {int(np.flatnonzero(~finite[:n])[0])}, before the trial's end at frame {n}")
    v = video[:, :, :n]
    as_uint8 = bool(v.min() >= 0 and v.max() <= 255 and (video.dtype == np.uint8 or (v == np.round(v)).all()))
    for array, rows in (("responses", len(mouse.unit_ids)), ("behavior", 2), ("pupil_center", 2)):
        a = mouse.load(array, trial, mmap=True)  # only the header is read here
        if a.ndim != 2 or a.shape[0] != rows:
            why = " (N from meta/neurons/unit_ids.npy)" if array == "responses" else ""
            mouse.fail(mouse.file(array, trial), f"expected ({rows}, T), got shape {a.shape}{why}")
        if a.shape[1] < n:
            mouse.fail(mouse.file(array, trial), f"{a.shape[1]} frames, fewer than the video's {n}")
    return n, as_uint8


def fill_nan(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Linear interpolation over time (axis 0) of NaN in each column of ``x`` (T, B); returns the count."""
    bad = ~np.isfinite(x)
    n = int(bad.sum())
    if n:
        t = np.arange(len(x))
        for j in np.flatnonzero(bad.any(0)):
            ok = ~bad[:, j]
            x[:, j] = np.interp(t, t[ok], x[ok, j]) if ok.any() else np.nan
    return x, n


def convert_mouse(mouse: Mouse, dest: Path, progress: Progress) -> dict:
    """Write one mouse as a session at ``dest``; returns counts for the summary and provenance."""
    scan = progress.add_task(f"scan  {mouse.session_id}", total=len(mouse.trials))
    as_uint8 = True
    for t in mouse.trials:
        mouse.lengths[t], ok = trial_length(mouse, t)
        as_uint8 &= ok
        progress.advance(scan)
    mouse.stim_dtype = np.uint8 if as_uint8 else np.float16
    counts = dict(padding_frames_dropped=0, responses_nan_masked=0, responses_clipped=0, behavior_nan_filled=0)
    n_frames = sum(mouse.lengths.values())
    train_bins = np.zeros(len(mouse.unit_ids), np.int64)  # finite responses per neuron in training trials
    write = progress.add_task(f"write {mouse.session_id}", total=len(mouse.trials))
    videos = StimulusHasher()  # the oracle tier shows each of its videos several times: find which
    with SessionWriter(dest, n_frames=n_frames, n_neurons=len(mouse.unit_ids), frame_shape=(36, 64),
                       behavior_names=BEHAVIOR_NAMES, stim_dtype=mouse.stim_dtype, dfs=True) as w:
        for t in mouse.trials:
            n = mouse.lengths[t]
            video = mouse.load("videos", t)
            stim = np.moveaxis(video[:, :, :n], -1, 0)
            responses = mouse.load("responses", t)
            robs = np.asarray(responses[:, :n].T, dtype=np.float32)
            nan = np.isnan(robs)
            counts["responses_nan_masked"] += int(nan.sum())
            counts["responses_clipped"] += int((robs < 0).sum())
            if np.isinf(robs).any():
                mouse.fail(mouse.file("responses", t), "contains inf")
            robs = np.where(nan, 0.0, np.maximum(robs, 0.0))
            if TIER_SPLITS[mouse.tiers[t]] == "train":
                train_bins += (~nan).sum(0)
            beh = np.concatenate([mouse.load("behavior", t)[:, :n], mouse.load("pupil_center", t)[:, :n]]).T
            beh, filled = fill_nan(beh.astype(np.float64))
            if np.isnan(beh).any():
                array, row, name = SOURCE_COLUMNS[int(np.flatnonzero(np.isnan(beh).any(0))[0])]
                mouse.fail(mouse.file(array, t), f"{name} (row {row}) is NaN on every frame of the trial")
            counts["behavior_nan_filled"] += filled
            counts["padding_frames_dropped"] += video.shape[2] - n
            stim = stim if as_uint8 else stim.astype(np.float16)
            videos.add(t, stim)
            w.append(stim=stim, robs=robs, behavior=beh, trial=np.full(n, t), dfs=~nan)
            progress.advance(write)
        silent = np.flatnonzero(train_bins == 0)
        if len(silent):
            mouse.fail("data/responses", f"neuron {silent[0]} (unit id {mouse.unit_ids[silent[0]]}) is NaN in every "
                                         f"training trial ({len(silent)} such neurons): it could never be trained")
        splits = {s: [t for t in mouse.trials if TIER_SPLITS[mouse.tiers[t]] == s] for s in SPLITS}
        splits = {s: trials for s, trials in splits.items() if trials}  # a mouse without test trials has no test split
        provenance = {
            "source": "sensorium2023",
            "source_folder": str(mouse.folder.resolve()),
            "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "trial_tiers": {str(t): mouse.tiers[t] for t in mouse.trials},
            "trials_dropped_tier_none": mouse.tier_none,
            "trials_dropped_responses_absent": mouse.responses_absent,
            "behavior_columns": {BEHAVIOR_NAMES[j]: f"data/{array}/<trial>.npy row {row} ({name})"
                                 for j, (array, row, name) in enumerate(SOURCE_COLUMNS)},
            "responses": "deconvolved calcium activity, clipped at 0 (not spike counts)",
            "neuron_coordinates": "meta/neurons/cell_motor_coordinates.npy",
            **counts,
        }
        stimulus = videos.trial_stimulus()
        if stimulus:
            provenance["trial_stimulus"] = "trials with identical frames (neuroenc.data.repeats.StimulusHasher)"
        w.finish(session_id=mouse.session_id, frame_rate=FRAME_RATE, splits=splits, neuron_ids=mouse.unit_ids,
                 neuron_coordinates=mouse.coordinates, provenance=provenance,
                 extra_meta={"trial_stimulus": stimulus} if stimulus else None)
    for key, what in (("responses_nan_masked", "NaN response bins masked through dfs"),
                      ("behavior_nan_filled", "NaN behaviour values filled by interpolation")):
        if counts[key]:
            mouse.warn(f"{counts[key]} {what}")
    return {"session_id": mouse.session_id, "neurons": len(mouse.unit_ids), "frames": n_frames,
            "trials": {s: len(v) for s, v in splits.items()}, **counts,
            "repeated_videos": len(set(stimulus.values()))}


def report(mouse: Mouse, session, summary: dict) -> dict:
    """The import report of ``mouse``, written as ``session`` (:mod:`neuroenc.data.import_report`)."""
    in_tiers = list(mouse.tiers.values())
    read = {
        "mouse_folder": str(mouse.folder.resolve()),
        "trials_per_tier": {tier: in_tiers.count(tier) for tier in TIER_SPLITS if tier in in_tiers},
        "trials_left_out_tier_none": mouse.tier_none,
        "trials_left_out_responses_absent": mouse.responses_absent,
        "neurons": len(mouse.unit_ids),
        "repeated_videos": summary["repeated_videos"],
    }
    done = {key: summary[key] for key in ("padding_frames_dropped", "responses_nan_masked", "responses_clipped",
                                          "behavior_nan_filled")}
    done["columns_renamed"] = dict(RENAMED)
    return import_report.build(session, source=str(mouse.folder.resolve()), importer="sensorium2023", read=read,
                               done=done, warnings=mouse.warned)


def convert(src: str | Path, dst: str | Path, overwrite: bool = False, show_progress: bool = True) -> list[dict]:
    """Convert every mouse under ``src`` into sessions under ``dst``; returns one summary per session.

    Refuses an existing ``dst`` unless ``overwrite``; an existing one is replaced only once the
    whole import has succeeded.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"destination exists: {dst} (pass --overwrite to replace it)")
    if src.resolve() == dst.resolve() or dst.resolve() in src.resolve().parents:
        raise SensoriumFormatError(f"destination {str(dst)!r} contains the source {str(src)!r}; "
                                   "replacing it would delete the source")
    folders = find_mice(src)
    seen: dict[Path, Path] = {}
    for f in folders:  # a folder linked in twice would be two sessions of one recording
        if f.resolve() in seen:
            first = seen[f.resolve()]
            raise SensoriumFormatError(f"mouse {first.name!r}: the source lists this folder twice ({first.name!r} and "
                                       f"{f.name!r} are the same folder); session ids must be unique (in {src})")
        seen[f.resolve()] = f
    mice = [read_mouse(f) for f in folders]
    ids = [m.session_id for m in mice]
    if len(set(ids)) != len(ids):  # the shortened names collide: keep the full folder names
        for m in mice:
            m.session_id = m.folder.name
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir_beside(dst)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("trials"),
               TimeRemainingColumn())
    try:
        with Progress(*columns, disable=not show_progress) as progress:
            summaries = [convert_mouse(m, tmp / m.session_id, progress) for m in mice]
        for m, summary in zip(mice, summaries):
            session = open_session(tmp / m.session_id)  # validates, and stores training statistics beside the data
            import_report.write(session.path, report(m, session, summary))
        atomic.replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summaries
