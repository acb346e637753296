"""Import NWB files into the session format with pynwb: one session per file (or per file and
imaging plane).

What is read (objects are named by their path in the file, e.g.
``processing/behavior/BehavioralTimeSeries/running_speed``, or by a unique end of it such as
``running_speed``):

- **stimulus** (``--stimulus``): an ``ImageSeries`` or ``OpticalSeries`` whose frames are
  stored in the file, ``(frames, rows, columns)`` or with a last axis of 3 (RGB, averaged to
  grey), or an ``IndexSeries`` into an ``Images`` container of templates (in its
  ``order_of_images``, else in name order; a negative index is a blank at the templates' mean);
- **responses** (``--responses``): ``units`` (spike times, binned into frames; rows chosen with
  ``--units-query``, a pandas query over the units table; a unit's ``obs_intervals`` mark the bins
  outside them invalid) or a ``RoiResponseSeries``, or a container of several (``DfOverF``,
  ``Fluorescence``: one session per series, e.g. per imaging plane), linearly interpolated at each
  frame's centre and clipped at 0;
- **behaviour** (``--behavior`` names ``TimeSeries``; ``--eye`` a two-column eye position, which
  becomes ``eye_x``, ``eye_y``, the columns the shifter uses), linearly interpolated at each
  frame's centre (NaN filled by interpolation over time);
- **trials** (``--trials``, default the ``trials`` table; any ``TimeIntervals`` such as a
  stimulus presentation table): each row is a trial, cut into frames of ``1 / --frame-rate``
  seconds from its start time, within the stimulus's time span;
- **splits**: a column of the trial table (``--split-column``: train/val/test, other values left
  out), else seeded fractions (``--split-fractions``, ``--seed``), drawn per video when the trials
  have stimulus ids so that all showings of one video land in one split;
- **repeats**: ``--stimulus-id-column`` names the trial table's column of which video a trial
  showed; without it, trials whose converted frames are identical count as repeats of one video
  (``meta.json`` ``trial_stimulus``).

The frame at time t is the stimulus frame on screen at t (the last one that started at or
before t), cropped (``--crop top,left,height,width``) and resized to ``--frame-shape`` (area
averaging when shrinking, bilinear when growing; nothing when the shape already fits).

Everything is written into a temporary directory beside the destination, opened (checked), and
only then renamed into place: an error leaves nothing behind and names the file, the object and
what the file has.
"""

from __future__ import annotations

import shutil
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from neuroenc import atomic
from neuroenc.data.repeats import StimulusHasher
from neuroenc.data.sessions import SessionWriter, open_session

SPLIT_NAMES = ("train", "val", "test")
_TIME_TOLERANCE = 1e-3  # of a frame: timestamps written as start + k / rate land on their frame


class NWBImportError(ValueError):
    """An NWB file that cannot be imported as asked; the message names the file and the object."""


@dataclass
class Options:
    """What to read and the frame grid to read it onto (see the module docstring)."""

    frame_shape: tuple[int, int]
    frame_rate: float
    stimulus: str | None = None
    responses: str = "units"
    units_query: str | None = None
    behavior: list[str] = field(default_factory=list)
    eye: str | None = None
    trials: str = "trials"
    split_column: str | None = None
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    seed: int = 0
    stimulus_id_column: str | None = None
    crop: tuple[int, int, int, int] | None = None


# ------------------------------------------------------------------------------- finding objects


def catalogue(nwb) -> dict[str, object]:
    """Every importable object of the file by path: time series, tables, template containers."""
    from hdmf.common import DynamicTable
    from pynwb import TimeSeries
    from pynwb.base import Images

    out: dict[str, object] = {}

    def walk(prefix: str, obj) -> None:
        out[prefix] = obj
        if isinstance(obj, (TimeSeries, DynamicTable, Images)):
            return
        for child in getattr(obj, "children", []):
            walk(f"{prefix}/{child.name}", child)

    roots = {"acquisition": nwb.acquisition, "stimulus": nwb.stimulus, "stimulus_templates": nwb.stimulus_template,
             "processing": nwb.processing, "intervals": nwb.intervals}
    for root, items in roots.items():
        for name, obj in (items or {}).items():
            walk(f"{root}/{name}", obj)
    if nwb.units is not None:
        out["units"] = nwb.units
    return out


def _listing(objects: dict[str, object], kinds: tuple = ()) -> str:
    rows = [f"{p} ({type(o).__name__})" for p, o in objects.items() if not kinds or isinstance(o, kinds)]
    return ", ".join(rows) if rows else "nothing"


def find(objects: dict[str, object], name: str, kinds: tuple, what: str, source: Path):
    """The object ``name`` (a path, or a unique end of one) of one of ``kinds``, else an error
    naming the file and listing what it has."""
    hits = [p for p in objects if p == name] or [p for p in objects if p.endswith("/" + name.strip("/"))]
    wanted = " or ".join(k.__name__ for k in kinds)
    if not hits:
        raise NWBImportError(f"{source}: {what}: no object {name!r}; the file has {_listing(objects)}")
    if len(hits) > 1:
        raise NWBImportError(f"{source}: {what}: {name!r} matches {hits}; give the whole path")
    obj = objects[hits[0]]
    if not isinstance(obj, kinds):
        raise NWBImportError(f"{source}: {what}: {hits[0]!r} is a {type(obj).__name__}, not a {wanted}; the file's "
                             f"{wanted} objects: {_listing(objects, kinds)}")
    return hits[0], obj


# ---------------------------------------------------------------------------------------- stimulus


def resize(frames: np.ndarray, shape: tuple[int, int], crop) -> np.ndarray:
    """``(T, h, w)`` float32 -> ``(T, H, W)``: crop, then area-average (shrink) or bilinear (grow)."""
    import torch
    import torch.nn.functional as F

    if crop is not None:
        top, left, height, width = crop
        frames = frames[:, top : top + height, left : left + width]
    if frames.shape[1:] == tuple(shape):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames, np.float32))[:, None]
    shrink = frames.shape[1] >= shape[0] and frames.shape[2] >= shape[1]
    y = F.interpolate(x, size=tuple(shape), mode="area") if shrink else \
        F.interpolate(x, size=tuple(shape), mode="bilinear", align_corners=False)
    return y[:, 0].numpy()


def _grey(frames: np.ndarray) -> np.ndarray:
    return frames.mean(-1) if frames.ndim == 4 and frames.shape[-1] == 3 else frames


class Stimulus:
    """The frames on screen at given times, on the session's frame grid."""

    def __init__(self, series, path: str, opts: Options, source: Path):
        from pynwb.image import IndexSeries

        self.path, self.opts, self.source = path, opts, source
        self.times = np.asarray(series.get_timestamps(), np.float64)
        if isinstance(series, IndexSeries):
            images = series.indexed_images
            if images is None:
                raise NWBImportError(f"{source}: stimulus: IndexSeries {path!r} indexes no Images container "
                                     "(indexed_timeseries is not supported)")
            order = images.order_of_images
            names = [im.name for im in order.data] if order is not None else sorted(images.images)
            raw = [np.asarray(images.images[n].data) for n in names]
            shapes = {r.shape for r in raw}
            if len(shapes) != 1:
                raise NWBImportError(f"{source}: stimulus: templates of {path!r} differ in shape: {sorted(shapes)}")
            templates = _grey(np.stack(raw).astype(np.float32))
            self.integer = all(r.dtype == np.uint8 for r in raw)
            self.templates = resize(templates, opts.frame_shape, opts.crop)
            self.blank = self.templates.mean(0)
            self.index = np.asarray(series.data[:], np.int64)
            if self.index.max(initial=-1) >= len(raw):
                raise NWBImportError(f"{source}: stimulus: {path!r} indexes template {self.index.max()}, but "
                                     f"{images.name!r} holds {len(raw)}")
            self.data = None
        else:
            if series.data is None or len(series.data) == 0:
                ext = getattr(series, "external_file", None)
                raise NWBImportError(f"{source}: stimulus: {path!r} holds no frames in the file"
                                     + (f" (they are in external files {list(ext[:3])})" if ext is not None else ""))
            self.data = series.data
            if self.data.ndim not in (3, 4) or (self.data.ndim == 4 and self.data.shape[-1] != 3):
                raise NWBImportError(f"{source}: stimulus: {path!r} has shape {self.data.shape}; expected "
                                     "(frames, rows, columns) or (frames, rows, columns, 3)")
            self.integer = self.data.dtype == np.uint8
        self.n = len(self.index) if self.data is None else self.data.shape[0]
        if len(self.times) != self.n:
            raise NWBImportError(f"{source}: stimulus: {path!r} has {self.n} frames but {len(self.times)} timestamps")
        step = np.median(np.diff(self.times)) if self.n > 1 else 1.0 / opts.frame_rate
        self.start, self.stop = float(self.times[0]), float(self.times[-1] + step)

    def frames(self, times: np.ndarray) -> np.ndarray:
        """``(len(times), H, W)`` float32: the frame on screen at each time."""
        tol = _TIME_TOLERANCE / self.opts.frame_rate
        which = np.searchsorted(self.times, times + tol, side="right") - 1
        if self.data is None:
            idx = self.index[which]
            out = self.templates[np.maximum(idx, 0)]
            out[idx < 0] = self.blank
            return out
        unique, inverse = np.unique(which, return_inverse=True)
        raw = _grey(np.asarray(self.data[unique.tolist()], np.float32))
        return resize(raw, self.opts.frame_shape, self.opts.crop)[inverse]


# --------------------------------------------------------------------------------------- responses


def interpolate(series, times: np.ndarray, source: Path, path: str) -> np.ndarray:
    """``(len(times), columns)`` float64: a time series linearly interpolated at ``times``
    (``conversion`` and ``offset`` applied, NaN filled by interpolation over time)."""
    t = np.asarray(series.get_timestamps(), np.float64)
    data = np.asarray(series.data[:], np.float64)
    data = data.reshape(len(data), -1) * float(getattr(series, "conversion", 1.0) or 1.0) \
        + float(getattr(series, "offset", 0.0) or 0.0)
    if len(t) != len(data):
        raise NWBImportError(f"{source}: {path!r} has {len(data)} samples but {len(t)} timestamps")
    out = np.empty((len(times), data.shape[1]))
    for j in range(data.shape[1]):
        ok = np.isfinite(data[:, j])
        if not ok.any():
            raise NWBImportError(f"{source}: {path!r}: column {j} has no finite value")
        out[:, j] = np.interp(times, t[ok], data[ok, j])
    return out


def bin_units(units, rows: np.ndarray, starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spike counts ``(frames, units)`` in the bins ``[starts, stops)`` and their validity (inside
    the unit's ``obs_intervals`` where the table has them)."""
    counts = np.zeros((len(starts), len(rows)), np.float32)
    valid = np.ones((len(starts), len(rows)), bool)
    has_obs = "obs_intervals" in units.colnames
    for j, r in enumerate(rows):
        spikes = np.sort(np.asarray(units["spike_times"][int(r)], np.float64))
        counts[:, j] = np.searchsorted(spikes, stops, "left") - np.searchsorted(spikes, starts, "left")
        if has_obs:
            obs = np.asarray(units["obs_intervals"][int(r)], np.float64).reshape(-1, 2)
            valid[:, j] = ((starts[:, None] >= obs[None, :, 0]) & (stops[:, None] <= obs[None, :, 1])).any(1)
    return counts, valid


# ---------------------------------------------------------------------------------------- a file


@dataclass
class Plan:
    """What one session will hold, before anything is written."""

    session_id: str
    source: Path
    trial_ids: list[int]
    frame_times: list[np.ndarray]  # per trial: start of every frame
    splits: dict[str, list[int]]
    stimulus_ids: dict[int, str] | None
    responses: tuple  # ("units", units table, rows, ids) or ("roi", series, path, ids)
    behavior: list[tuple[str, object, str]]  # (column name, series, path)
    provenance: dict


def _trial_table(objects, opts: Options, source: Path):
    from pynwb.epoch import TimeIntervals

    path, table = find(objects, opts.trials, (TimeIntervals,), "trials (--trials)", source)
    df = table.to_dataframe()
    if len(df) == 0:
        raise NWBImportError(f"{source}: trials (--trials): {path!r} has no rows")
    for col in (opts.split_column, opts.stimulus_id_column):
        if col is not None and col not in df.columns:
            raise NWBImportError(f"{source}: trials: {path!r} has no column {col!r}; its columns: "
                                 f"{list(df.columns)}")
    return path, df


def assign_splits(trial_ids: list[int], groups: list[str], fractions, seed: int) -> dict[str, list[int]]:
    """Seeded split of trials by group (a video's showings stay together): the first fraction
    of the shuffled groups trains, the next validates, the rest tests; every split with a
    positive fraction gets at least one group when there are enough."""
    fractions = np.asarray(fractions, float)
    if len(fractions) != 3 or (fractions < 0).any() or fractions.sum() <= 0:
        raise NWBImportError(f"--split-fractions {tuple(fractions)}: expected three non-negative train,val,test "
                             "fractions")
    unique = sorted(set(groups))
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    cuts = np.round(np.cumsum(fractions / fractions.sum()) * len(order)).astype(int)
    for k in range(2):  # a val or test split asked for gets a group when there are enough
        if fractions[k + 1] > 0 and cuts[k + 1] - cuts[k] == 0 and cuts[k] > 1:
            cuts[: k + 1] -= 1
    split_of = {}
    for k, name in enumerate(SPLIT_NAMES):
        for g in order[(cuts[k - 1] if k else 0) : cuts[k]]:
            split_of[g] = name
    return {s: [t for t, g in zip(trial_ids, groups) if split_of.get(g) == s] for s in SPLIT_NAMES}


def plan_file(source: Path, nwb, opts: Options) -> tuple[Stimulus, list[Plan]]:
    """The stimulus and the sessions of one file, every name checked before anything is written."""
    from hdmf.common import DynamicTable
    from pynwb import TimeSeries
    from pynwb.image import ImageSeries, IndexSeries
    from pynwb.ophys import DfOverF, Fluorescence, RoiResponseSeries

    objects = catalogue(nwb)
    if opts.stimulus is None:
        found = [p for p, o in objects.items() if isinstance(o, (ImageSeries, IndexSeries))]
        if len(found) != 1:
            raise NWBImportError(f"{source}: stimulus: {'no' if not found else len(found)} ImageSeries or IndexSeries "
                                 f"found ({found}); name one with --stimulus; the file has {_listing(objects)}")
        opts_stim = found[0]
    else:
        opts_stim = opts.stimulus
    stim_path, series = find(objects, opts_stim, (ImageSeries, IndexSeries), "stimulus (--stimulus)", source)
    stimulus = Stimulus(series, stim_path, opts, source)

    trials_path, df = _trial_table(objects, opts, source)
    period = 1.0 / opts.frame_rate
    trial_ids, frame_times, cut = [], [], 0
    for tid, row in zip(df.index.tolist(), df.itertuples()):
        start, stop = max(float(row.start_time), stimulus.start), min(float(row.stop_time), stimulus.stop)
        n = int(np.floor((stop - start) / period + _TIME_TOLERANCE))
        if n <= 0:
            cut += 1
            continue
        trial_ids.append(int(tid))
        frame_times.append(start + np.arange(n) * period)
    if not trial_ids:
        raise NWBImportError(f"{source}: trials: no trial of {trials_path!r} overlaps the stimulus {stim_path!r} "
                             f"({stimulus.start:.3f} s to {stimulus.stop:.3f} s) by a frame")
    kept = df.loc[trial_ids]
    stimulus_ids = None
    if opts.stimulus_id_column:
        stimulus_ids = {t: str(v) for t, v in zip(trial_ids, kept[opts.stimulus_id_column].tolist())}
    if opts.split_column:
        values = [str(v) for v in kept[opts.split_column].tolist()]
        splits = {s: [t for t, v in zip(trial_ids, values) if v == s] for s in SPLIT_NAMES}
    else:
        groups = [stimulus_ids[t] if stimulus_ids else f"trial{t}" for t in trial_ids]
        splits = assign_splits(trial_ids, groups, opts.split_fractions, opts.seed)
    splits = {s: v for s, v in splits.items() if v}
    if "train" not in splits:
        raise NWBImportError(f"{source}: splits: no training trial (split column {opts.split_column!r} "
                             f"values: {sorted(set(map(str, kept[opts.split_column])) if opts.split_column else [])})")

    behavior = []
    for spec in opts.behavior:
        path_name, _, column = spec.partition(":")
        path, ts = find(objects, path_name, (TimeSeries,), "behaviour (--behavior)", source)
        behavior.append((column or ts.name, ts, path))
    if opts.eye:
        path, ts = find(objects, opts.eye, (TimeSeries,), "eye position (--eye)", source)
        if np.asarray(ts.data).ndim != 2 or ts.data.shape[1] != 2:
            raise NWBImportError(f"{source}: eye position (--eye): {path!r} has shape {ts.data.shape}; expected "
                                 "(samples, 2): x, y")
        behavior.append(("eye", ts, path))

    base = dict(source=source, trial_ids=trial_ids, frame_times=frame_times, splits=splits,
                stimulus_ids=stimulus_ids, behavior=behavior)
    provenance = {"source": "nwb", "file": str(source.resolve()), "stimulus": stim_path, "trials": trials_path,
                  "trials_outside_stimulus": cut, "frame_rate": opts.frame_rate,
                  "frame_shape": list(opts.frame_shape), "crop": list(opts.crop) if opts.crop else None,
                  "behavior": {name: path for name, _, path in behavior}}
    sid = source.stem
    if opts.responses == "units":
        if nwb.units is None:
            raise NWBImportError(f"{source}: responses: the file has no units table; name a RoiResponseSeries with "
                                 f"--responses; the file has {_listing(objects, (RoiResponseSeries, DynamicTable))}")
        units = nwb.units
        rows = np.arange(len(units))
        if opts.units_query:
            table = units.to_dataframe(index=False).reset_index(drop=True)
            try:
                rows = table.query(opts.units_query).index.to_numpy()
            except Exception as e:  # pandas raises many kinds for a bad expression
                raise NWBImportError(f"{source}: --units-query {opts.units_query!r}: {e}; the units table's columns: "
                                     f"{list(units.colnames)}") from None
            if len(rows) == 0:
                raise NWBImportError(f"{source}: --units-query {opts.units_query!r} selects no unit of {len(units)}")
        ids = np.asarray(units.id[:])[rows]
        return stimulus, [Plan(session_id=sid, responses=("units", units, rows, ids),
                               provenance={**provenance, "responses": "units", "units_query": opts.units_query},
                               **base)]
    path, obj = find(objects, opts.responses, (RoiResponseSeries, DfOverF, Fluorescence), "responses (--responses)",
                     source)
    series = [obj] if isinstance(obj, RoiResponseSeries) else \
        [c for c in getattr(obj, "children", []) if isinstance(c, RoiResponseSeries)]
    if not series:
        raise NWBImportError(f"{source}: responses (--responses): {path!r} is a {type(obj).__name__} holding no "
                             f"RoiResponseSeries; the file's: {_listing(objects, (RoiResponseSeries,))}")
    plans = []
    for s in series:
        s_path = path if s is obj else f"{path}/{s.name}"
        rois = np.asarray(s.rois.data[:])
        ids = np.asarray(s.rois.table.id[:])[rois]
        plans.append(Plan(session_id=sid if len(series) == 1 else f"{sid}-{s.name}",
                          responses=("roi", s, s_path, ids),
                          provenance={**provenance, "responses": s_path}, **base))
    return stimulus, plans


def write_plan(plan: Plan, stimulus: Stimulus, dest: Path, opts: Options) -> dict:
    period = 1.0 / opts.frame_rate
    n_frames = sum(len(t) for t in plan.frame_times)
    kind, obj, sel, ids = plan.responses
    names = []
    for name, series, _ in plan.behavior:
        cols = 1 if np.asarray(series.data).ndim == 1 else series.data.shape[1]
        names += ["eye_x", "eye_y"] if name == "eye" else [name] if cols == 1 else [f"{name}_{j}" for j in range(cols)]
    if len(set(names)) != len(names):
        raise NWBImportError(f"{plan.source}: behaviour columns repeat a name: {names}; name them with PATH:NAME")
    starts = np.concatenate(plan.frame_times)
    centres = starts + period / 2
    behavior = np.concatenate([interpolate(series, centres, plan.source, path) for _, series, path in plan.behavior], 1) \
        if plan.behavior else np.zeros((n_frames, 0))
    if kind == "units":
        robs, valid = bin_units(obj, sel, starts, starts + period)
        clipped = 0
    else:
        robs = interpolate(obj, centres, plan.source, sel)
        clipped = int((robs < 0).sum())
        robs = np.maximum(robs, 0.0).astype(np.float32)
        valid = np.ones_like(robs, bool)
    stim_frames = [stimulus.frames(t) for t in plan.frame_times]
    integer = stimulus.integer and all(np.array_equal(f, np.round(f)) and f.min() >= 0 and f.max() <= 255
                                       for f in stim_frames)
    dtype = np.uint8 if integer else np.float32
    hasher = StimulusHasher()
    with SessionWriter(dest, n_frames=n_frames, n_neurons=robs.shape[1], frame_shape=opts.frame_shape,
                       behavior_names=names, stim_dtype=dtype, dfs=True) as w:
        a = 0
        for trial, frames in zip(plan.trial_ids, stim_frames):
            b = a + len(frames)
            stim = frames.astype(dtype) if integer else frames
            hasher.add(trial, stim)
            w.append(stim=stim, robs=robs[a:b], behavior=behavior[a:b], trial=np.full(b - a, trial), dfs=valid[a:b])
            a = b
        stimulus_ids = {str(t): v for t, v in plan.stimulus_ids.items()} if plan.stimulus_ids else hasher.trial_stimulus()
        provenance = {**plan.provenance, "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "responses_clipped": clipped, "bins_outside_obs_intervals": int((~valid).sum()),
                      "trial_stimulus": ("--stimulus-id-column " + opts.stimulus_id_column if plan.stimulus_ids
                                         else "trials with identical frames") if stimulus_ids else None}
        w.finish(session_id=plan.session_id, frame_rate=opts.frame_rate, splits=plan.splits, neuron_ids=ids,
                 provenance=provenance, extra_meta={"trial_stimulus": stimulus_ids} if stimulus_ids else None)
    if clipped:
        warnings.warn(f"{plan.source}: {sel}: {clipped} negative responses clipped at 0", stacklevel=2)
    return {"session_id": plan.session_id, "neurons": int(robs.shape[1]), "frames": int(n_frames),
            "trials": {s: len(plan.splits.get(s, [])) for s in SPLIT_NAMES}, "behavior": names,
            "repeated_videos": sum(n > 1 for n in Counter(stimulus_ids.values()).values()) if stimulus_ids else 0}


def open_nwb(source: Path):
    from pynwb import NWBHDF5IO

    if not source.is_file():
        raise NWBImportError(f"{source}: no such file")
    try:
        io = NWBHDF5IO(str(source), "r")
        return io, io.read()
    except Exception as e:  # h5py, hdmf and pynwb each raise their own kinds for a file that is not NWB
        raise NWBImportError(f"{source}: not an NWB file pynwb can read ({type(e).__name__}: {e})") from None


def convert(sources, dst, options: Options, overwrite: bool = False) -> list[dict]:
    """Import every NWB file of ``sources`` into sessions under ``dst``; one summary per session.

    Refuses an existing ``dst`` unless ``overwrite``; it is replaced only once every session has
    been written and opened.
    """
    sources = [Path(s).expanduser() for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    dst = Path(dst).expanduser()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"destination exists: {dst} (pass --overwrite to replace it)")
    h, w = options.frame_shape
    if h <= 0 or w <= 0 or options.frame_rate <= 0:
        raise NWBImportError(f"--frame-shape {options.frame_shape} and --frame-rate {options.frame_rate} must be "
                             "positive")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir_beside(dst)
    summaries, seen = [], {}
    try:
        for source in sources:
            io, nwb = open_nwb(source)
            try:
                stimulus, plans = plan_file(source, nwb, options)
                for plan in plans:
                    if plan.session_id in seen:
                        raise NWBImportError(f"{source}: session id {plan.session_id!r} is also that of {seen[plan.session_id]}; "
                                             "rename one of the files")
                    seen[plan.session_id] = source
                    summaries.append(write_plan(plan, stimulus, tmp / plan.session_id, options))
            finally:
                io.close()
        for s in summaries:
            open_session(tmp / s["session_id"])  # checks, and stores training statistics beside the data
        atomic.replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summaries
