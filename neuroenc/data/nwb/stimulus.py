"""The stimulus of an NWB import: which layout holds it, what was on screen when, and the
session frames of a run of bins.

Layouts (``Stimulus.layout`` names the one read, in the import report):

- an ``ImageSeries``/``OpticalSeries`` with its frames in the file, timed by ``timestamps`` or by
  ``rate`` and ``starting_time``;
- the same with ``external_file``: video files next to the NWB file, decoded with PyAV;
- an ``IndexSeries`` into an ``ImageSeries`` (``indexed_timeseries``, a template whose own timing,
  often NaN, is not used) or into an ``Images`` container (``indexed_images``, in its
  ``order_of_images``; several images without one are refused unless ``--image-order natural``);
- ``--stimulus-file movie.npy`` with ``--presentations TABLE``: each row of the table shows frame
  ``--frame-column`` of the movie from ``start_time`` to ``stop_time`` (AllenSDK's layout).

An index of -1 (or the largest value of an unsigned type, -1 stored as uint32) is a blank frame at
the source's mean luminance, as is a time between two presentation rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuroenc.data.nwb.frames import ArrayFrames, FrameSource, ImageFrames, VideoFrames
from neuroenc.data.nwb.geometry import Geometry, plan_geometry
from neuroenc.data.nwb.objects import find, stimulus_series
from neuroenc.data.nwb.options import NWBImportError, Options
from neuroenc.data.nwb.timeline import BLANK, Resampling, Timeline, resampling


@dataclass
class Stimulus:
    path: str
    layout: str
    timeline: Timeline
    frames: FrameSource
    geometry: Geometry
    resampling: Resampling
    notes: list[str]  # what the layout made the importer do, for the report's warnings

    def plan(self, starts: np.ndarray, period: float):
        """Per bin ``[start, start + period)``: the source frame at its centre (``nearest``), or
        the frames on screen during it with their weights (``mean``)."""
        if self.resampling.rule == "mean":
            return self.timeline.weights(starts, starts + period)
        return self.timeline.frames_at(starts + period / 2)

    def blank(self) -> np.ndarray:
        return np.full(self.geometry.shape, self.frames.mean_luminance(), np.float32)

    def render(self, plan) -> np.ndarray:
        """Session frames ``(k, H, W)`` float32 of a piece of :meth:`plan`'s result."""
        if isinstance(plan, np.ndarray):
            out = np.empty((len(plan), *self.geometry.shape), np.float32)
            shown = plan != BLANK
            if shown.any():
                out[shown] = self.geometry.apply(self.frames.read(plan[shown]))
            if not shown.all():
                out[~shown] = self.blank()
            return out
        used = np.unique(np.concatenate([f for f, _ in plan]))
        shown = used[used != BLANK]
        lookup = dict(zip(shown.tolist(), self.geometry.apply(self.frames.read(shown)))) if len(shown) else {}
        if (used == BLANK).any():
            lookup[BLANK] = self.blank()
        return np.stack([sum(w * lookup[int(f)] for f, w in zip(fs, ws)) for fs, ws in plan]).astype(np.float32)

    def used_entries(self, starts: np.ndarray, period: float) -> np.ndarray:
        """Entries of the timeline that reach a bin under the rule."""
        if self.resampling.rule == "mean":
            first = np.maximum(np.searchsorted(self.timeline.onset, starts, side="right") - 1, 0)
            last = np.searchsorted(self.timeline.onset, starts + period, side="left")
            return np.unique(np.concatenate([np.arange(a, b) for a, b in zip(first, last)] or [np.zeros(0, int)]))
        e = self.timeline.entries_at(starts + period / 2)
        return np.unique(e[e >= 0])

    def entries_during(self, spans: list[tuple[float, float]]) -> np.ndarray:
        """Entries shown wholly inside one of the spans (the imported trials): the frames a bin
        could have shown. One on screen across a trial's edge (the previous trial's last frame
        before a late first flip) is not counted."""
        hit = np.zeros(len(self.timeline.onset), bool)
        for a, b in spans:
            hit |= (self.timeline.onset >= a) & (self.timeline.offset <= b)
        return np.flatnonzero(hit)


def _index_values(data, what: str, source) -> np.ndarray:
    """Template indices with -1 (or an unsigned type's largest value) as ``BLANK``."""
    raw = np.asarray(data[:])
    if raw.dtype.kind not in "iu":
        raise NWBImportError(f"{source}: stimulus: {what} holds {raw.dtype} values, not template indices")
    index = raw.astype(np.int64)
    if raw.dtype.kind == "u":
        index[raw == np.iinfo(raw.dtype).max] = BLANK
    index[index < 0] = BLANK
    return index


def _natural_key(name: str):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def _images_in_order(images, opts: Options, source) -> tuple[list, str]:
    order = images.order_of_images
    if order is not None:
        return list(order.data), "order_of_images"
    names = list(images.images)
    if len(names) == 1:
        return [images.images[names[0]]], "its only image"
    if opts.image_order == "natural":
        return [images.images[n] for n in sorted(names, key=_natural_key)], \
            "--image-order natural (names in numeric-aware order)"
    raise NWBImportError(f"{source}: stimulus: Images {images.name!r} holds {len(names)} images and no "
                         "order_of_images, so which image an index means is not in the file (name order as text puts "
                         f"{sorted(names)[:3]} first). If the indices follow the names in numeric order "
                         "(NaturalScene2 before NaturalScene10, as the Allen Brain Observatory conversion writes them), "
                         "pass --image-order natural")


def _series_times(series, n: int, what: str, source) -> np.ndarray:
    if series.timestamps is not None:
        t = np.asarray(series.timestamps[:], np.float64)
        if len(t) != n:
            raise NWBImportError(f"{source}: stimulus: {what} has {n} frames but {len(t)} timestamps")
        return t
    rate, start = series.rate, series.starting_time
    if rate is None or not np.isfinite(rate) or rate <= 0 or start is None or not np.isfinite(start):
        raise NWBImportError(f"{source}: stimulus: {what} has rate={rate} and starting_time={start} and no "
                             "timestamps, so its frames have no times (a template: present it with the IndexSeries "
                             "that indexes it, --stimulus <that IndexSeries>)")
    return start + np.arange(n) / rate


def _image_series_frames(series, path: str, opts: Options, source: Path) -> tuple[FrameSource, str]:
    transpose = opts.frame_axes == "x,y"
    external = getattr(series, "external_file", None)
    if external is not None and len(external) and (getattr(series, "format", None) == "external"
                                                    or series.data is None or len(series.data) == 0):
        files = [(source.parent / str(f)).resolve() for f in external[:]]
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise NWBImportError(f"{source}: stimulus: {path!r} keeps its frames in {len(files)} external files, of "
                                 f"which {len(missing)} are not next to the NWB file: {missing[:5]}"
                                 + (" ..." if len(missing) > 5 else "") + "; put them there (the paths are relative "
                                 "to the NWB file) or give the movie with --stimulus-file")
        starting = getattr(series, "starting_frame", None)
        return VideoFrames(files, None if starting is None else list(starting), path, source, transpose), \
            f"{type(series).__name__} in {len(files)} external video files"
    if series.data is None or len(series.data) == 0:
        raise NWBImportError(f"{source}: stimulus: {path!r} holds no frames in the file")
    return ArrayFrames(series.data, path, source, transpose), f"{type(series).__name__} with frames in the file"


def load_stimulus(objects: dict, opts: Options, source: Path) -> Stimulus:
    """The stimulus as ``opts`` name it (see the module docstring for the layouts)."""
    from pynwb.image import IndexSeries

    notes: list[str] = []
    transpose = opts.frame_axes == "x,y"
    if opts.stimulus_file is not None:
        path, frames, timeline, layout = _presented_movie(objects, opts, source)
    else:
        path, series = stimulus_series(objects, opts.stimulus, source)
        if isinstance(series, IndexSeries):
            index = _index_values(series.data, path, source)
            if series.indexed_images is not None:
                images, how = _images_in_order(series.indexed_images, opts, source)
                frames = ImageFrames(images, series.indexed_images.name, source, transpose)
                layout = f"IndexSeries into Images {series.indexed_images.name!r} ({how})"
                if how.startswith("--image-order"):
                    notes.append(f"{path}: the images of {series.indexed_images.name!r} taken in numeric-aware name "
                                 "order (--image-order natural): the file stores no order_of_images")
            elif getattr(series, "indexed_timeseries", None) is not None:
                template = series.indexed_timeseries
                frames, how = _image_series_frames(template, template.name, opts, source)
                layout = f"IndexSeries into {how} ({template.name!r}, its own timing not used)"
            else:
                raise NWBImportError(f"{source}: stimulus: IndexSeries {path!r} indexes neither Images nor an "
                                     "ImageSeries")
            if index.max(initial=BLANK) >= frames.n:
                raise NWBImportError(f"{source}: stimulus: {path!r} indexes template {index.max()}, but "
                                     f"{frames.what!r} holds {frames.n}")
            times = _series_times(series, len(index), path, source)
            timeline = Timeline.continuous(times, index, path, source)
        else:
            frames, layout = _image_series_frames(series, path, opts, source)
            times = _series_times(series, frames.n, path, source)
            timeline = Timeline.continuous(times, np.arange(frames.n), path, source)
            layout += ", timed by " + ("timestamps" if series.timestamps is not None else "rate")
    geometry = plan_geometry(frames.shape, opts.frame_shape, opts.crop, opts.fit, path, source,
                             pad_value=frames.mean_luminance)
    return Stimulus(path, layout, timeline, frames, geometry, resampling(timeline, opts.frame_rate, opts.resample,
                                                                          source), notes)


def _presented_movie(objects: dict, opts: Options, source: Path):
    from pynwb.epoch import TimeIntervals

    assert opts.stimulus_file is not None and opts.presentations is not None  # Options has them only together
    movie_path = Path(opts.stimulus_file).expanduser()
    if not movie_path.is_file():
        raise NWBImportError(f"--stimulus-file {movie_path}: no such file")
    try:
        movie = np.load(movie_path, mmap_mode="r", allow_pickle=False)  # data, never code
    except (ValueError, OSError, EOFError) as e:
        raise NWBImportError(f"--stimulus-file {movie_path}: not a readable .npy array ({e})") from None
    frames = ArrayFrames(movie, str(movie_path), movie_path, opts.frame_axes == "x,y")
    path, table = find(objects, opts.presentations, (TimeIntervals,), "presentations (--presentations)", source)
    df = table.to_dataframe()
    if opts.frame_column not in df.columns:
        raise NWBImportError(f"{source}: presentations: {path!r} has no column {opts.frame_column!r} (--frame-column); "
                             f"its columns: {list(df.columns)}")
    onset, offset = df["start_time"].to_numpy(np.float64), df["stop_time"].to_numpy(np.float64)
    values = df[opts.frame_column].to_numpy()
    for name, col in (("start_time", onset), ("stop_time", offset)):
        bad = np.flatnonzero(~np.isfinite(col))
        if len(bad):
            raise NWBImportError(f"{source}: presentations: {path!r} row {df.index[bad[0]]}: {name} is {col[bad[0]]}; "
                                 f"{len(bad)} rows have no finite {name}")
    try:
        as_float = values.astype(np.float64)
    except (TypeError, ValueError):
        raise NWBImportError(f"{source}: presentations: {path!r} column {opts.frame_column!r} holds {values.dtype} "
                             "values, not frame numbers") from None
    bad = np.flatnonzero(~np.isfinite(as_float) | (as_float != np.round(as_float)))
    if len(bad):
        raise NWBImportError(f"{source}: presentations: {path!r} row {df.index[bad[0]]}: {opts.frame_column} is "
                             f"{values[bad[0]]!r}, not a frame number (-1 for a blank)")
    index = as_float.astype(np.int64)
    index[index < 0] = BLANK
    if index.max(initial=BLANK) >= frames.n:
        k = int(np.argmax(index))
        raise NWBImportError(f"{source}: presentations: {path!r} row {df.index[k]} shows frame {index[k]}, but "
                             f"{movie_path.name} has {frames.n}")
    order = np.argsort(onset, kind="stable")
    onset, offset, index = onset[order], offset[order], index[order]
    late = np.flatnonzero(offset[:-1] > onset[1:] + 1e-9)
    if len(late):
        k = int(order[late[0]])
        raise NWBImportError(f"{source}: presentations: {path!r} row {df.index[k]} ends at {offset[late[0]]:.6f} s, "
                             f"after the next row starts ({onset[late[0] + 1]:.6f} s): two frames on screen at once")
    timeline = Timeline(onset, offset, index, path)
    return path, frames, timeline, f"--stimulus-file {movie_path.name} presented by {path!r}"
