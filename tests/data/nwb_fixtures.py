"""NWB files laid out the way other labs' tools write them, and an independent recomputation of
what an import of them must give, in plain numpy on the values written (never the importer's own
code): the bins of each trial, the frame on screen at each bin centre, spikes per bin, traces at
bin centres and where they cover, area/bilinear resizing and the centred crop of ``--fit crop``.

Used by ``test_nwb_layouts.py``; the rules are those the importer documents (see that file)."""

from __future__ import annotations

import datetime
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from neuroenc.data.nwb import NWBImportError, convert
from neuroenc.data.sessions import open_sessions

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # noqa: E402
from pynwb.behavior import BehavioralTimeSeries  # noqa: E402
from pynwb.epoch import TimeIntervals  # noqa: E402
from pynwb.image import IndexSeries  # noqa: E402

H, W = 12, 16  # the session's frame shape in every test
R = 30.0  # the session's frame rate
BLANK = 4294967295  # an IndexSeries blank as stored in uint32 (-1)
TIE = 1e-6  # s: an onset this close to a bin centre counts as at or before it ("frames 1, 3, 5" of 60 Hz at 30)


# ----------------------------------------------------------------------------- writing NWB files


def new_nwb(name: str) -> NWBFile:
    return NWBFile(session_description=f"{name} layout", identifier=name,
                   session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))


def save(nwb: NWBFile, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


def legacy_index_series(**kwargs) -> IndexSeries:
    """An ``IndexSeries`` whose ``indexed_timeseries`` is an ``ImageSeries`` (as the AllenSDK
    wrote natural movies; pynwb now refuses to make one, but reads them): built the way pynwb
    builds it when reading a file."""
    series = IndexSeries.__new__(IndexSeries, in_construct_mode=True)
    series.__init__(**kwargs)
    series._in_construct_mode = False
    return series


def add_table(nwb: NWBFile, name: str, rows: list[dict], ids=None, descriptions: dict | None = None) -> TimeIntervals:
    """A ``TimeIntervals`` table ``name`` (``trials`` is the file's trial table) of ``rows``
    (start_time, stop_time and any other columns)."""
    extra = [k for k in rows[0] if k not in ("start_time", "stop_time")]
    descriptions = descriptions or {}
    if name == "trials":
        for k in extra:
            nwb.add_trial_column(k, descriptions.get(k, k))
        for i, row in enumerate(rows):
            nwb.add_trial(**row, **({} if ids is None else {"id": int(ids[i])}))
        return nwb.trials
    table = TimeIntervals(name=name, description=f"{name} table")
    for k in extra:
        table.add_column(k, descriptions.get(k, k))
    for i, row in enumerate(rows):
        table.add_interval(**row, **({} if ids is None else {"id": int(ids[i])}))
    nwb.add_time_intervals(table)
    return table


def add_running(nwb: NWBFile, t0: float, t1: float, *, rate=60.0, name="running_speed", seed=0,
                conversion=1.0, offset=0.0, holes=(), by_rate=False) -> dict:
    """A running speed sampled at ``rate`` from ``t0`` to ``t1`` in ``processing/behavior``, timed
    by timestamps (or by ``rate`` and ``starting_time``); ``holes``: (first, stop) sample ranges set
    to NaN. Returns the written samples and their times."""
    rng = np.random.default_rng(seed)
    ts = np.arange(t0, t1, 1 / rate) + 0.003
    data = (10 + 5 * np.sin(ts * 1.7) + rng.normal(0, 1, len(ts))).astype(np.float64)
    for a, b in holes:
        data[a:b] = np.nan
    module = nwb.processing.get("behavior") or nwb.create_processing_module("behavior", "behaviour")
    timing = {"rate": rate, "starting_time": float(ts[0])} if by_rate else {"timestamps": ts}
    if by_rate:
        ts = ts[0] + np.arange(len(ts)) / rate
    series = TimeSeries(name=name, data=data, unit="cm/s", conversion=conversion, offset=offset, **timing)
    if "BehavioralTimeSeries" in module.data_interfaces:
        module["BehavioralTimeSeries"].add_timeseries(series)
    else:
        module.add(BehavioralTimeSeries(time_series=[series]))
    return {"t": ts, "data": data, "conversion": conversion, "offset": offset}


def poisson_spikes(rng, t0: float, t1: float, rate_hz: float) -> np.ndarray:
    n = rng.poisson(rate_hz * (t1 - t0))
    return np.sort(rng.uniform(t0, t1, n))


def add_units(nwb: NWBFile, spikes: list[np.ndarray], ids, obs_intervals=None) -> None:
    for j, (s, i) in enumerate(zip(spikes, ids)):
        kw = {} if obs_intervals is None else {"obs_intervals": obs_intervals[j]}
        nwb.add_unit(spike_times=s, id=int(i), **kw)


# ----------------------------------------------------------------------------- the recomputation


@dataclass
class Bins:
    """The session's bins: row id, start and centre of each, in session order."""

    trial: np.ndarray
    start: np.ndarray
    rows: dict = field(default_factory=dict)  # row id -> number of bins

    @property
    def centre(self) -> np.ndarray:
        return self.start + 0.5 / R


def trial_bins(rows, ids, span: tuple[float, float]) -> Bins:
    """Rule 1: each row clamped to the stimulus's span, ``n = floor((b - a) R + 0.1)`` bins of
    ``1/R`` from its (clamped) start; rows without a bin left out."""
    trial, start, per_row = [], [], {}
    for row, i in zip(rows, ids):
        a = max(float(row["start_time"]), span[0])
        b = min(float(row["stop_time"]), span[1])
        n = int(np.floor((b - a) * R + 0.1))
        if n <= 0:
            continue
        per_row[int(i)] = n
        trial += [int(i)] * n
        start += [a + k / R for k in range(n)]
    return Bins(np.array(trial, dtype=np.int64), np.array(start, dtype=np.float64), per_row)


def image_span(onsets) -> tuple[float, float]:
    """The span of a series of frame onsets: first onset to last onset + median frame duration."""
    onsets = np.asarray(onsets, dtype=np.float64)
    return float(onsets[0]), float(onsets[-1] + np.median(np.diff(onsets)))


def on_screen(onsets, t) -> np.ndarray:
    """Rule 2: index of the last onset at or before each time (-1 before the first)."""
    return np.searchsorted(np.asarray(onsets, dtype=np.float64), np.asarray(t) + TIE, side="right") - 1


def presented(starts, stops, frames, t) -> np.ndarray:
    """A presentation table: the ``frame`` of the row whose [start, stop) holds each time, -1 where none does."""
    out = np.full(len(t), -1, dtype=np.int64)
    for a, b, f in zip(starts, stops, frames):
        out[(t >= a) & (t < b)] = int(f)
    return out


def frames_of(movie: np.ndarray, index: np.ndarray) -> np.ndarray:
    """Frames ``movie[index]``, a blank (uniform, the mean over all pixels of all of ``movie``) where
    the index is -1; float64."""
    movie = np.asarray(movie, dtype=np.float64)
    out = np.empty((len(index), *movie.shape[1:]), dtype=np.float64)
    blank = index < 0
    out[~blank] = movie[index[~blank]]
    out[blank] = movie.mean()
    return out


def mean_on_screen(onsets, movie: np.ndarray, bin_start: np.ndarray) -> np.ndarray:
    """resample='mean': each bin the average of the frames on screen during it, weighted by their time on screen."""
    onsets = np.asarray(onsets, dtype=np.float64)
    movie = np.asarray(movie, dtype=np.float64)
    out = np.zeros((len(bin_start), *movie.shape[1:]))
    for k, s in enumerate(bin_start):
        e = s + 1 / R
        first, last = on_screen(onsets, [s])[0], on_screen(onsets, [e - TIE])[0]
        for f in range(first, last + 1):
            shown = min(e, onsets[f + 1] if f + 1 < len(onsets) else np.inf) - max(s, onsets[f])
            out[k] += max(shown, 0.0) * movie[f]
        out[k] *= R
    return out


def spike_counts(spikes: list[np.ndarray], bin_start: np.ndarray) -> np.ndarray:
    """Rule 7: spikes of each unit in [bin start, bin start + 1/R)."""
    out = np.zeros((len(bin_start), len(spikes)), dtype=np.float32)
    for j, s in enumerate(spikes):
        s = np.sort(np.asarray(s, dtype=np.float64))
        out[:, j] = np.searchsorted(s, bin_start + 1 / R, "left") - np.searchsorted(s, bin_start, "left")
    return out


def trace_at(t, data, centres, conversion=1.0, offset=0.0) -> tuple[np.ndarray, np.ndarray]:
    """Rule 8: ``(values, covered)``, each (bins, columns): linear interpolation between the finite
    samples around each centre (conversion and offset applied), and whether the centre lies on a
    finite sample or between two at most ``2 max(median sample interval, 1/R)`` apart."""
    t = np.asarray(t, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64).reshape(len(t), -1) * conversion + offset
    gap = 2 * max(float(np.median(np.diff(t))), 1 / R)
    values = np.zeros((len(centres), data.shape[1]))
    covered = np.zeros((len(centres), data.shape[1]), dtype=bool)
    for c in range(data.shape[1]):
        ok = np.isfinite(data[:, c])
        tf, vf = t[ok], data[ok, c]
        i = np.searchsorted(tf, centres, side="right")
        left, right = np.clip(i - 1, 0, len(tf) - 1), np.clip(i, 0, len(tf) - 1)
        on = (i > 0) & (tf[left] == centres)
        between = (i > 0) & (i < len(tf)) & (tf[right] - tf[left] <= gap)
        covered[:, c] = on | between
        values[:, c] = np.interp(centres, tf, vf)
    return values, covered


def area_resize(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    """Area averaging (what torch's adaptive average pooling does): output pixel i averages source
    rows floor(i in / out) .. ceil((i + 1) in / out) - 1, and the same over columns."""
    frames = np.asarray(frames, dtype=np.float64)
    rows, cols = frames.shape[1:]
    r = [(i * rows // h, -(-(i + 1) * rows // h)) for i in range(h)]
    c = [(j * cols // w, -(-(j + 1) * cols // w)) for j in range(w)]
    return np.stack([np.stack([frames[:, a:b, p:q].mean((1, 2)) for p, q in c], -1) for a, b in r], 1)


def bilinear_resize(frames: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear with align_corners=False: source coordinate (i + 0.5) in / out - 0.5, clamped at 0."""
    frames = np.asarray(frames, dtype=np.float64)

    def axis(n_in, n_out):
        x = np.maximum((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0)
        i0 = np.minimum(np.floor(x).astype(int), n_in - 1)
        i1 = np.minimum(i0 + 1, n_in - 1)
        return i0, i1, x - i0

    r0, r1, fr = axis(frames.shape[1], h)
    c0, c1, fc = axis(frames.shape[2], w)
    top = frames[:, r0][:, :, c0] * (1 - fc) + frames[:, r0][:, :, c1] * fc
    bottom = frames[:, r1][:, :, c0] * (1 - fc) + frames[:, r1][:, :, c1] * fc
    return top * (1 - fr)[:, None] + bottom * fr[:, None]


def fit_crop(rows: int, cols: int) -> tuple[int, int, int, int]:
    """fit='crop': the centred region of the frame shape's aspect ratio (top, left, h, w)."""
    if rows / cols > H / W:  # too tall
        h = round(cols * H / W)
        return (rows - h) // 2, 0, h, cols
    w = round(rows * W / H)
    return 0, (cols - w) // 2, rows, w


# ----------------------------------------------------------------------------- importing


@dataclass
class Imported:
    sessions: list
    reports: list[dict]
    warnings: list[str]

    @property
    def one(self):
        assert len(self.sessions) == 1, [s.id for s in self.sessions]
        return self.sessions[0]


def run_import(paths, dst: Path, options) -> Imported:
    """Import, open every session and read its import_report.json (rule 11: keys session, read,
    done, warnings; the "done" figures also in meta.json's provenance)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        convert(list(paths), dst, options)
        sessions = open_sessions(dst)
    reports = []
    for s in sessions:
        report = json.loads((Path(s.path) / "import_report.json").read_text())
        assert {"session", "read", "done", "warnings"} <= set(report), sorted(report)
        reports.append(report)
    said = [str(w.message) for w in caught if not issubclass(w.category, DeprecationWarning)]
    print(f"imported {[s.id for s in sessions]}: warnings {said}; report warnings {[r['warnings'] for r in reports]}")
    return Imported(sessions, reports, said)


def refused(paths, dst: Path, options) -> str:
    """The message of the NWBImportError an import raises; nothing may be left at or beside ``dst``."""
    before = sorted(p.name for p in dst.parent.iterdir()) if dst.parent.exists() else []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(NWBImportError) as e:
            convert(list(paths), dst, options)
    assert not dst.exists(), f"a refused import left {dst}"
    after = sorted(p.name for p in dst.parent.iterdir()) if dst.parent.exists() else []
    assert after == before, f"a refused import left {sorted(set(after) - set(before))} beside {dst}"
    print(f"refused: {e.value}")
    return str(e.value)


def validity(session) -> np.ndarray:
    return np.ones(session.robs.shape, dtype=np.uint8) if session.dfs is None else np.asarray(session.dfs)


def frame_errors(got: np.ndarray, want: np.ndarray, tol: float = 0.01) -> list[int]:
    """The bins whose frame differs from the recomputation by more than ``tol`` (0..255 units) anywhere."""
    assert got.shape == want.shape, (got.shape, want.shape)
    diff = np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64)).reshape(len(got), -1)
    return np.flatnonzero(diff.max(1) > tol).tolist()


# ----------------------------------------------------------------------------- what an import must give


@dataclass
class Expect:
    """A written file and the recomputed session: stim (float64), robs, dfs, behaviour, its names."""

    path: Path
    bins: Bins
    stim: np.ndarray
    robs: np.ndarray
    dfs: np.ndarray
    behavior: np.ndarray
    names: list[str]
    extra: dict = field(default_factory=dict)


def behaviour_at(streams: list[dict], centres: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rule 8 for behaviour: ``(values (T, B), uncovered (T,))``; a column's uncovered bins hold
    its mean over its covered bins."""
    cols, uncovered = [], np.zeros(len(centres), dtype=bool)
    for s in streams:
        v, ok = trace_at(s["t"], s["data"], centres, s.get("conversion", 1.0), s.get("offset", 0.0))
        for c in range(v.shape[1]):
            v[~ok[:, c], c] = v[ok[:, c], c].mean()
            uncovered |= ~ok[:, c]
        cols.append(v)
    values = np.concatenate(cols, 1) if cols else np.zeros((len(centres), 0))
    return values, uncovered


def expect(path, bins: Bins, stim, spikes=None, *, streams=(), names=(), obs_intervals=None, traces=None) -> Expect:
    """The recomputed session from the bins and stimulus frames: spike counts of ``spikes`` (dfs 0
    outside a unit's ``obs_intervals``, which the tests put between trials) or ``traces`` (a dict
    t, data, conversion, offset: clipped at 0, 0 and dfs 0 where not covered), and behaviour
    ``streams`` (dfs 0 for every neuron in a bin a stream does not cover)."""
    if traces is not None:
        v, ok = trace_at(traces["t"], traces["data"], bins.centre, traces.get("conversion", 1.0), traces.get("offset", 0.0))
        robs = np.where(ok, np.clip(v, 0, None), 0).astype(np.float32)
        dfs = ok.astype(np.uint8)
    else:
        robs = spike_counts(spikes, bins.start)
        dfs = np.ones(robs.shape, dtype=np.uint8)
        for j, intervals in enumerate(obs_intervals or []):
            if intervals is None:
                continue
            inside = np.zeros(len(bins.start), dtype=bool)
            for a, b in intervals:
                inside |= (bins.start >= a) & (bins.start + 1 / R <= b)
            dfs[~inside, j] = 0
    behavior, uncovered = behaviour_at(list(streams), bins.centre)
    dfs[uncovered] = 0
    return Expect(Path(path), bins, np.asarray(stim, dtype=np.float64), robs, dfs, behavior, list(names))


def compare(session, want: Expect, *, traces=False) -> dict:
    """Every difference between the imported session and the recomputation, by name (empty: none)."""
    problems = {}
    if not np.array_equal(session.trial, want.bins.trial):
        got_rows = dict(zip(*np.unique(session.trial, return_counts=True)))
        problems["trial"] = f"bins per row: imported {got_rows}, recomputed {want.bins.rows}"
        return problems  # nothing else lines up
    errors = frame_errors(session.stim, want.stim)
    if errors:
        problems["stim"] = f"{len(errors)} of {len(want.stim)} bins hold another frame: bins {errors[:20]}"
    if traces:
        if not np.allclose(session.robs, want.robs, rtol=1e-5, atol=1e-5):
            bad = np.argwhere(~np.isclose(session.robs, want.robs, rtol=1e-5, atol=1e-5))
            problems["robs"] = f"{len(bad)} values differ, first (bin, neuron) {bad[:5].tolist()}: " \
                               f"imported {[float(session.robs[b, n]) for b, n in bad[:5]]}, " \
                               f"recomputed {[float(want.robs[b, n]) for b, n in bad[:5]]}"
    elif not np.array_equal(session.robs, want.robs):
        bad = np.argwhere(session.robs != want.robs)
        problems["robs"] = f"{len(bad)} counts differ, first (bin, neuron) {bad[:5].tolist()}: " \
                           f"imported {[float(session.robs[b, n]) for b, n in bad[:5]]}, " \
                           f"recomputed {[float(want.robs[b, n]) for b, n in bad[:5]]}"
    dfs = validity(session)
    if not np.array_equal(dfs, want.dfs):
        bad = np.argwhere(dfs != want.dfs)
        problems["dfs"] = f"{len(bad)} validity flags differ, first (bin, neuron) {bad[:5].tolist()}: " \
                          f"imported {[int(dfs[b, n]) for b, n in bad[:5]]}"
    if session.behavior_names != want.names:
        problems["behavior_names"] = f"{session.behavior_names} != {want.names}"
    elif session.behavior.shape != want.behavior.shape or not np.allclose(session.behavior, want.behavior,
                                                                          rtol=1e-5, atol=1e-5):
        if session.behavior.shape != want.behavior.shape:
            problems["behavior"] = f"shape {session.behavior.shape} != {want.behavior.shape}"
        else:
            bad = np.argwhere(~np.isclose(session.behavior, want.behavior, rtol=1e-5, atol=1e-5))
            problems["behavior"] = f"{len(bad)} values differ, first (bin, column) {bad[:5].tolist()}: " \
                                   f"imported {[float(session.behavior[b, c]) for b, c in bad[:5]]}, " \
                                   f"recomputed {[float(want.behavior[b, c]) for b, c in bad[:5]]}"
    return problems
