"""One NWB file -> its sessions: plan every bin and name (nothing written until all is checked),
then write each session a chunk of frames at a time, with its import report."""

from __future__ import annotations

import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from neuroenc.data import import_report
from neuroenc.data.nwb.frames import CHUNK
from neuroenc.data.nwb.objects import find, listing
from neuroenc.data.nwb.options import NWBImportError, Options
from neuroenc.data.nwb.stimulus import Stimulus, load_stimulus
from neuroenc.data.nwb.streams import bin_units, check_clock, sample, spike_range
from neuroenc.data.nwb.timeline import BLANK
from neuroenc.data.repeats import StimulusHasher
from neuroenc.data.sessions import SPLITS, SessionWriter, open_session

# of a bin: a trial whose stop time cuts its last bin short by less keeps that bin. Photodiode
# flips jitter by a fraction of a millisecond, so a trial from one flip to the flip after its last
# frame spans n bins give or take that: it must still get all n of its frames.
BIN_TOLERANCE = 0.1


@dataclass
class Trials:
    """The imported trials: their ids (the table's), first bin starts and spans."""

    path: str
    ids: list[int]
    starts: list[np.ndarray]  # per trial: the start of every bin
    left_out: int  # rows with no bin inside the stimulus's span
    rows: int


@dataclass
class Plan:
    """What one session will hold, before anything is written."""

    session_id: str
    source: Path
    trials: Trials
    splits: dict[str, list[int]]
    stimulus_ids: dict[int, str] | None
    responses: tuple  # ("units", units table, rows, ids) or ("roi", series, path, ids)
    behavior: list[tuple[str, Any, str]]  # (column name, series (a pynwb TimeSeries), path)
    read: dict  # for the report: what the file holds
    notes: list[str]  # warnings raised while planning


def _warn(notes: list[str], text: str) -> None:
    notes.append(text)
    warnings.warn(text, stacklevel=3)


def read_trials(objects: dict, opts: Options, stimulus: Stimulus, source: Path) -> tuple[Trials, object]:
    """Bins of every row of the trial table inside the stimulus's span; overlapping trials refused."""
    from pynwb.epoch import TimeIntervals

    path, table = find(objects, opts.trials, (TimeIntervals,), "trials (--trials)", source)
    df = table.to_dataframe()
    if len(df) == 0:
        raise NWBImportError(f"{source}: trials (--trials): {path!r} has no rows")
    for col in (opts.split_column, opts.stimulus_id_column):
        if col is not None and col not in df.columns:
            raise NWBImportError(f"{source}: trials: {path!r} has no column {col!r}; its columns: {list(df.columns)}")
    for col in ("start_time", "stop_time"):
        bad = np.flatnonzero(~np.isfinite(df[col].to_numpy(np.float64)))
        if len(bad):
            raise NWBImportError(f"{source}: trials: {path!r} row {df.index[bad[0]]}: {col} is {df[col].iloc[bad[0]]}"
                                 f" ({len(bad)} rows without a finite {col}); fix the table or choose another with "
                                 "--trials")
    period = 1.0 / opts.frame_rate
    span = stimulus.timeline
    ids, starts, cut = [], [], 0
    for tid, a, b in zip(df.index.tolist(), df["start_time"], df["stop_time"]):
        a, b = max(float(a), span.start), min(float(b), span.stop)
        n = int(np.floor((b - a) / period + BIN_TOLERANCE))
        if n <= 0:
            cut += 1
            continue
        ids.append(int(tid))
        starts.append(a + np.arange(n) * period)
    if not ids:
        raise NWBImportError(f"{source}: trials: no trial of {path!r} overlaps the stimulus {stimulus.path!r} "
                             f"({span.start:.3f} s to {span.stop:.3f} s) by a bin")
    order = np.argsort([s[0] for s in starts], kind="stable")
    for i, j in zip(order[:-1], order[1:]):
        end = starts[i][-1] + period
        if starts[j][0] < end - BIN_TOLERANCE * period:  # a last bin kept by the tolerance is no overlap
            raise NWBImportError(f"{source}: trials: {path!r} rows {ids[i]} ({starts[i][0]:.4f}-{end:.4f} s) and "
                                 f"{ids[j]} (from {starts[j][0]:.4f} s) overlap: their frames would be imported twice "
                                 "(and could land in two splits). Give a table of non-overlapping trials with --trials")
    return Trials(path, ids, starts, cut, len(df)), df.loc[ids]


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
    for k, name in enumerate(SPLITS):
        for g in order[(cuts[k - 1] if k else 0) : cuts[k]]:
            split_of[g] = name
    return {s: [t for t, g in zip(trial_ids, groups) if split_of.get(g) == s] for s in SPLITS}


def _splits(trials: Trials, kept, opts: Options, source: Path) -> tuple[dict, dict | None]:
    stimulus_ids = None
    if opts.stimulus_id_column:
        stimulus_ids = {t: str(v) for t, v in zip(trials.ids, kept[opts.stimulus_id_column].tolist())}
    if opts.split_column:
        values = [str(v) for v in kept[opts.split_column].tolist()]
        splits = {s: [t for t, v in zip(trials.ids, values) if v == s] for s in SPLITS}
        how = f"split column {opts.split_column!r} (values {sorted(set(values))})"
    else:
        groups = [stimulus_ids[t] if stimulus_ids else f"trial{t}" for t in trials.ids]
        splits = assign_splits(trials.ids, groups, opts.split_fractions, opts.seed)
        how = (f"--split-fractions {','.join(f'{f:g}' for f in opts.split_fractions)} over {len(set(groups))} "
               + ("videos" if stimulus_ids else "trials"))
    splits = {s: v for s, v in splits.items() if v}
    for name in ("train",) if opts.allow_no_val else ("train", "val"):
        if name not in splits:
            raise NWBImportError(f"{source}: splits: no {name} trial from {how}, of {len(trials.ids)} imported trials; "
                                 "a session needs training and validation trials: give more trials, or say which trial "
                                 "is which with --split-column"
                                 + ("" if name == "train" else "; or pass --allow-no-val (training then needs "
                                    "data.allow_no_validation=true)"))
    return splits, stimulus_ids


def _behavior(objects: dict, opts: Options, source: Path) -> list[tuple[str, Any, str]]:
    from pynwb import TimeSeries

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
    return behavior


def _planes(objects: dict, opts: Options, sid: str, source: Path, notes: list[str]) -> list[tuple[str, tuple]]:
    """``(session id, ("roi", series, path, ids))`` per recording plane: series that share one ROI
    table are alternatives (dF/F and raw of one plane), of which the one named is taken, or the
    first by name with a warning naming the others."""
    from pynwb.ophys import DfOverF, Fluorescence, RoiResponseSeries

    path, obj = find(objects, opts.responses, (RoiResponseSeries, DfOverF, Fluorescence), "responses (--responses)",
                     source)
    if isinstance(obj, RoiResponseSeries):
        series = [(path, obj)]
    else:
        series = sorted(((f"{path}/{c.name}", c) for c in getattr(obj, "children", [])
                         if isinstance(c, RoiResponseSeries)), key=lambda x: x[0])
    if not series:
        raise NWBImportError(f"{source}: responses (--responses): {path!r} is a {type(obj).__name__} holding no "
                             f"RoiResponseSeries; the file's: {listing(objects, (RoiResponseSeries,))}")
    by_table: dict[int, list] = {}
    for p, s in series:
        by_table.setdefault(id(s.rois.table), []).append((p, s))
    out = []
    for group in by_table.values():
        (p, s), others = group[0], group[1:]
        if others:
            _warn(notes, f"{source}: responses: {[q for q, _ in group]} share the ROI table {s.rois.table.name!r} (one "
                         f"plane): imported {p!r}, the first by name; name another with --responses PATH")
        rois = np.asarray(s.rois.data[:])
        ids = np.asarray(s.rois.table.id[:])[rois]
        name = sid if len(by_table) == 1 else f"{sid}-{s.name}"
        out.append((name, ("roi", s, p, ids)))
    return out


def plan_file(source: Path, nwb, opts: Options) -> tuple[Stimulus, list[Plan]]:
    """The stimulus and the sessions of one file, every name checked before anything is written."""
    from pynwb.ophys import RoiResponseSeries

    from neuroenc.data.nwb.objects import catalogue

    notes: list[str] = []
    objects = catalogue(nwb)
    stimulus = load_stimulus(objects, opts, source)
    for n in stimulus.notes:
        _warn(notes, n)
    trials, kept = read_trials(objects, opts, stimulus, source)
    splits, stimulus_ids = _splits(trials, kept, opts, source)
    behavior = _behavior(objects, opts, source)
    read = {"stimulus": stimulus.path, "stimulus_layout": stimulus.layout, "trials": trials.path,
            "trial_rows": trials.rows, "trials_outside_stimulus": trials.left_out,
            "stimulus_source_rate_hz": round(stimulus.resampling.source_rate, 6),
            "behavior": {name: path for name, _, path in behavior}}
    sid = source.stem
    base: dict = dict(source=source, trials=trials, splits=splits, stimulus_ids=stimulus_ids, behavior=behavior)
    if opts.responses != "units":
        return stimulus, [Plan(session_id=name, responses=resp, read={**read, "responses": resp[2]},
                               notes=list(notes), **base) for name, resp in _planes(objects, opts, sid, source, notes)]
    if nwb.units is None:
        raise NWBImportError(f"{source}: responses: the file has no units table; name a RoiResponseSeries with "
                             f"--responses; the file has {listing(objects, (RoiResponseSeries,))}")
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
    all_ids = np.asarray(units.id[:])
    ids = all_ids[rows]
    read = {**read, "responses": "units", "units_in_file": len(units), "units_kept": len(rows),
            "units_dropped_by_query": [int(i) if np.issubdtype(type(i), np.integer) else str(i)
                                       for i in np.setdiff1d(all_ids, ids)], "units_query": opts.units_query}
    return stimulus, [Plan(session_id=sid, responses=("units", units, rows, ids), read=read, notes=notes, **base)]


def _behavior_columns(plan: Plan) -> list[str]:
    names = []
    for name, series, _ in plan.behavior:
        cols = 1 if np.asarray(series.data).ndim == 1 else series.data.shape[1]
        names += ["eye_x", "eye_y"] if name == "eye" else [name] if cols == 1 else [f"{name}_{j}" for j in range(cols)]
    if len(set(names)) != len(names):
        raise NWBImportError(f"{plan.source}: behaviour columns repeat a name: {names}; name them with PATH:NAME")
    return names


def _read_behavior(plan: Plan, centres: np.ndarray, period: float, opts: Options, notes: list[str], done: dict):
    """``(behaviour (bins, columns), bins it leaves uncovered)``; see ``streams`` for the rule."""
    blocks, uncovered = [], np.zeros(len(centres), bool)
    coverage = {}
    for name, series, path in plan.behavior:
        s = sample(series, centres, period, plan.source, path)
        for j in range(s.values.shape[1]):
            col = s.covered[:, j]
            coverage[f"{name}_{j}" if s.values.shape[1] > 1 else name] = round(float(col.mean()), 6)
            if not col.any():
                raise NWBImportError(f"{plan.source}: behaviour: {path!r} (column {j}) covers none of the imported bins "
                                     f"(its samples run from {series.get_timestamps()[0]:.3f} s to "
                                     f"{series.get_timestamps()[-1]:.3f} s, the trials from {centres[0]:.3f} s to "
                                     f"{centres[-1]:.3f} s)")
            if not col.all():
                missing = np.flatnonzero(~col)
                if opts.uncovered == "refuse":
                    raise NWBImportError(f"{plan.source}: behaviour: {path!r} does not cover {len(missing)} of "
                                         f"{len(col)} bins (first at {centres[missing[0]]:.3f} s: outside its samples, "
                                         "or in a gap of missing or NaN samples); --uncovered mask imports them as "
                                         "invalid bins")
                s.values[~col, j] = s.values[col, j].mean()
            uncovered |= ~col
        blocks.append(s.values)
    if plan.behavior:
        done["behavior_coverage"] = coverage
    if uncovered.any():
        done["bins_masked_for_behavior"] = int(uncovered.sum())
        _warn(notes, f"{plan.source}: behaviour does not cover {int(uncovered.sum())} of {len(centres)} bins (per "
                     f"column: {coverage}); those bins are marked invalid for every neuron, never filled from the edge")
    return (np.concatenate(blocks, 1) if blocks else np.zeros((len(centres), 0))), uncovered


def write_plan(plan: Plan, stimulus: Stimulus, dest: Path, opts: Options) -> dict:
    notes = list(plan.notes)
    done: dict = {"sampling": "each stream at the bin centre (stimulus: the frame on screen there); spikes counted "
                              "over the bin"}
    period = 1.0 / opts.frame_rate
    starts = np.concatenate(plan.trials.starts)
    centres = starts + period / 2
    kind, obj, sel, ids = plan.responses
    names = _behavior_columns(plan)
    behavior, uncovered = _read_behavior(plan, centres, period, opts, notes, done)
    if kind == "units":
        robs, valid = bin_units(obj, sel, starts, starts + period)
        spans = [(s[0], s[-1] + period) for s in plan.trials.starts]
        check_clock(spans, spike_range(obj, sel), float(robs.sum()), plan.source)
        done["bins_outside_obs_intervals"] = int((~valid).sum())
    else:
        s = sample(obj, centres, period, plan.source, sel)
        valid = s.covered
        robs = np.nan_to_num(s.values)
        done["response_bins_not_covered"] = int((~valid).sum())
        if (~valid).any():
            _warn(notes, f"{plan.source}: responses: {sel!r} does not cover {int((~valid).sum())} neuron-bins; marked "
                         "invalid")
        clipped = int((robs < 0).sum())
        robs = np.maximum(robs, 0.0)
        done["responses_clipped"] = clipped
        if clipped:
            _warn(notes, f"{plan.source}: {sel}: {clipped} negative responses clipped at 0")
    valid &= ~uncovered[:, None]
    silent = [ids[j] for j in np.flatnonzero(np.where(valid, robs, 0).sum(0) == 0)]
    if silent:
        _warn(notes, f"{plan.source}: {len(silent)} of {len(ids)} neurons have no response in the imported trials: "
                     f"ids {[x.item() if hasattr(x, 'item') else x for x in silent][:20]}")

    frame_plans = [stimulus.plan(s, period) for s in plan.trials.starts]
    nearest = stimulus.resampling.rule != "mean"
    blanks = sum(int((p == BLANK).sum()) for p in frame_plans) if nearest else \
        sum(sum(BLANK in f for f, _ in p) for p in frame_plans)
    integer = stimulus.frames.integer and stimulus.geometry.exact and nearest and \
        (blanks == 0 or float(stimulus.frames.mean_luminance()).is_integer())
    dtype = np.uint8 if integer else np.float32
    spans = [(s[0], s[-1] + period) for s in plan.trials.starts]
    used = stimulus.used_entries(starts, period)
    during = stimulus.entries_during(spans)
    dropped = int(len(np.setdiff1d(during, used)))
    rs = stimulus.resampling
    done.update({"stimulus_resampling": rs.note, "stimulus_rule": rs.rule, "stimulus_frames_shown_in_trials": len(during),
                 "stimulus_frames_dropped": dropped, "stimulus_bins_blank": blanks,
                 "stimulus_geometry": stimulus.geometry.describe(), "stimulus_dtype": np.dtype(dtype).name})
    if abs(rs.ratio - 1) > 0.02 and np.isfinite(rs.ratio):
        _warn(notes, f"{plan.source}: stimulus: {rs.note} ({dropped} of {len(during)} source frames shown during the "
                     "trials never reach a bin)")
    elif dropped:
        _warn(notes, f"{plan.source}: stimulus: {dropped} of {len(during)} source frames shown during the trials "
                     "never reach a bin (shown for less than half a bin)")
    if blanks:
        _warn(notes, f"{plan.source}: stimulus: {blanks} bins show the blank frame at the mean luminance "
                     f"({stimulus.frames.mean_luminance():.4g}): a blank index or no presentation at their centre")

    hasher = StimulusHasher()
    with SessionWriter(dest, n_frames=len(starts), n_neurons=robs.shape[1], frame_shape=opts.frame_shape,
                       behavior_names=names, stim_dtype=dtype, dfs=True) as w:
        a = 0
        for trial, fp in zip(plan.trials.ids, frame_plans):
            for c in range(0, len(fp), CHUNK):
                piece = fp[c : c + CHUNK]
                frames = stimulus.render(piece)
                stim = np.round(frames).astype(np.uint8) if integer else frames
                b = a + len(stim)
                hasher.add(trial, stim)
                w.append(stim=stim, robs=robs[a:b], behavior=behavior[a:b], trial=np.full(b - a, trial),
                         dfs=valid[a:b])
                a = b
        stimulus_ids = {str(t): v for t, v in plan.stimulus_ids.items()} if plan.stimulus_ids else hasher.trial_stimulus()
        provenance = {"source": "nwb", "file": str(plan.source.resolve()), **plan.read,
                      "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "frame_rate": opts.frame_rate,
                      "frame_shape": list(opts.frame_shape), "crop": list(opts.crop) if opts.crop else None,
                      "units_query": opts.units_query, **done,
                      "trial_stimulus": (f"--stimulus-id-column {opts.stimulus_id_column}" if plan.stimulus_ids
                                         else "trials with identical frames") if stimulus_ids else None}
        w.finish(session_id=plan.session_id, frame_rate=opts.frame_rate, splits=plan.splits, neuron_ids=ids,
                 provenance=provenance, extra_meta={"trial_stimulus": stimulus_ids} if stimulus_ids else None)
    session = open_session(dest)  # checks it, and stores its training statistics beside the data
    report = import_report.build(session, source=str(plan.source), importer="nwb", read=plan.read, done=done,
                                 warnings=notes)
    import_report.write(dest, report)
    return {"session_id": plan.session_id, "neurons": int(robs.shape[1]), "frames": int(len(starts)),
            "trials": {s: len(plan.splits.get(s, [])) for s in SPLITS}, "behavior": names,
            "repeated_videos": sum(n > 1 for n in Counter(stimulus_ids.values()).values()) if stimulus_ids else 0,
            "report": report}
