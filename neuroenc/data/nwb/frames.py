"""Where the stimulus's pixels are: frames in the file, in video files beside it, in an
``Images`` container or in a movie ``.npy``. Each source reads frames by index as float32
greyscale ``(k, rows, cols)``; a last axis of 3 (RGB) is averaged to grey."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from neuroenc.data.nwb.options import NWBImportError

CHUNK = 64  # frames read at a time: memory stays at a chunk of the source (50 MB of 304x608 float32), not the movie


def _grey(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames, np.float32)
    return frames.mean(-1) if frames.ndim == 4 else frames


def _check_shape(shape: tuple, what: str, source) -> None:
    if len(shape) not in (3, 4) or (len(shape) == 4 and shape[-1] != 3):
        raise NWBImportError(f"{source}: stimulus: {what} has shape {tuple(shape)}; expected (frames, rows, columns) "
                             "or (frames, rows, columns, 3)")


class FrameSource:
    """``n`` frames of ``shape`` (rows, cols); ``integer``: stored as uint8 (0..255)."""

    n: int
    shape: tuple[int, int]
    integer: bool
    what: str
    transpose: bool = False  # stored (frame, x, y): rows and columns swapped on reading

    def _read(self, idx: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def read(self, idx: np.ndarray) -> np.ndarray:
        """Frames ``idx`` (any order, repeats allowed) as float32 ``(len(idx), rows, cols)``."""
        idx = np.asarray(idx, np.int64)
        unique, inverse = np.unique(idx, return_inverse=True)
        frames = self._read(unique)
        if self.transpose:
            frames = frames.transpose(0, 2, 1)
        return frames[inverse.reshape(-1)]

    def mean_luminance(self) -> float:
        """The mean over every pixel of every frame: the value of a blank frame and of padding."""
        if not hasattr(self, "_mean"):
            total = 0.0
            for a in range(0, self.n, CHUNK):
                total += float(self._read(np.arange(a, min(a + CHUNK, self.n))).sum(dtype=np.float64))
            self._mean = total / (self.n * self.shape[0] * self.shape[1])
        return self._mean


class ArrayFrames(FrameSource):
    """Frames in an array: an ImageSeries's ``data`` (read lazily from the file) or a movie
    ``.npy`` mapped from disk."""

    def __init__(self, data, what: str, source, transpose: bool = False):
        _check_shape(data.shape, what, source)
        self.data, self.what, self.transpose = data, what, transpose
        self.n = int(data.shape[0])
        rows, cols = int(data.shape[1]), int(data.shape[2])
        self.shape = (cols, rows) if transpose else (rows, cols)
        self.integer = np.dtype(data.dtype) == np.uint8

    def _read(self, idx: np.ndarray) -> np.ndarray:
        if len(idx) == 0:
            return np.zeros((0, *self.data.shape[1:3]), np.float32)
        if self.n and idx.max() >= self.n:
            raise NWBImportError(f"stimulus: {self.what} has {self.n} frames; frame {int(idx.max())} was asked for")
        return _grey(self.data[idx.tolist()] if not isinstance(self.data, np.ndarray) else self.data[idx])


class ImageFrames(FrameSource):
    """The images of an ``Images`` container, in a given order (templates an IndexSeries indexes)."""

    def __init__(self, images: list, what: str, source, transpose: bool = False):
        raw = [np.asarray(im.data) for im in images]
        shapes = {r.shape for r in raw}
        if len(shapes) != 1:
            raise NWBImportError(f"{source}: stimulus: the images of {what} differ in shape: {sorted(shapes)}")
        stacked = np.stack(raw)
        _check_shape(stacked.shape, what, source)
        self.frames = _grey(stacked)
        self.what, self.transpose = what, transpose
        self.n = len(raw)
        rows, cols = self.frames.shape[1:3]
        self.shape = (cols, rows) if transpose else (rows, cols)
        self.integer = all(r.dtype == np.uint8 for r in raw)

    def _read(self, idx: np.ndarray) -> np.ndarray:
        return self.frames[idx]


class VideoFrames(FrameSource):
    """Frames in video files next to the NWB file (an ImageSeries with ``external_file``),
    decoded with PyAV (FFmpeg); ``starting_frame`` gives each file's first frame's index."""

    def __init__(self, files: list[Path], starting: list[int] | None, what: str, source, transpose: bool = False):
        try:
            import av
        except ImportError:  # pragma: no cover - av is a dependency
            raise NWBImportError(f"{source}: stimulus: {what} is in external video files; install PyAV to read them") \
                from None
        self.av, self.files, self.what, self.transpose = av, files, what, transpose
        counts = []
        for f in files:
            try:
                with av.open(str(f)) as c:
                    stream = c.streams.video[0]
                    n = stream.frames or sum(1 for _ in c.decode(video=0))
                    counts.append(int(n))
                    rows, cols = stream.codec_context.height, stream.codec_context.width
                    self.gray = stream.codec_context.pix_fmt in ("gray", "gray8")
            except (av.error.FFmpegError, IndexError) as e:
                raise NWBImportError(f"{source}: stimulus: {what}: external file {f} cannot be decoded ({e})") from None
        self.starting = np.asarray(starting if starting is not None else np.cumsum([0, *counts[:-1]]), np.int64)
        self.counts = np.asarray(counts)
        self.n = int(self.starting[-1] + counts[-1])
        self.shape = (cols, rows) if transpose else (rows, cols)
        self.integer = True

    def _read(self, idx: np.ndarray) -> np.ndarray:
        out = np.empty((len(idx), *((self.shape[::-1]) if self.transpose else self.shape)), np.float32)
        which = np.searchsorted(self.starting, idx, side="right") - 1
        for k in np.unique(which):
            wanted = {int(i - self.starting[k]): j for j, i in enumerate(idx) if which[j] == k}
            last = max(wanted)
            n = -1
            with self.av.open(str(self.files[k])) as c:  # decoded from the start: seeking is not frame-exact
                for n, frame in enumerate(c.decode(video=0)):
                    if n in wanted:
                        a = frame.to_ndarray(format="gray") if self.gray else frame.to_ndarray(format="rgb24")
                        out[wanted[n]] = _grey(a[None])[0]
                    if n >= last:
                        break
            missing = [f for f in wanted if f > n]
            if missing:
                raise NWBImportError(f"stimulus: {self.what}: {self.files[k]} has {n + 1} frames; frame {missing[0]} "
                                     "was asked for (starting_frame and the files disagree)")
        return out
