"""What an NWB import reads and the frame grid it reads it onto, and its one error type."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class NWBImportError(ValueError):
    """An NWB file that cannot be imported as asked; the message names the file, the object or
    table (and row) and what to do."""


RESAMPLE_RULES = ("nearest", "mean")
FITS = ("crop", "pad")
IMAGE_ORDERS = ("stored", "natural")
FRAME_AXES = ("rows,cols", "x,y")
UNCOVERED = ("mask", "refuse")


@dataclass
class Options:
    """The command line's options (``python -m neuroenc.data import nwb --help``)."""

    frame_shape: tuple[int, int]
    frame_rate: float
    stimulus: str | None = None
    stimulus_file: Path | None = None  # a movie .npy outside the file, with --presentations
    presentations: str | None = None  # the table whose rows put --stimulus-file frames on screen
    frame_column: str = "frame"
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
    fit: str | None = None  # crop or pad the source to the frame shape's aspect ratio
    frame_axes: str = "rows,cols"
    resample: str | None = None  # nearest or mean: how a stimulus at another rate is sampled
    image_order: str = "stored"  # natural: Images without order_of_images in numeric-aware name order
    uncovered: str = "mask"  # behaviour or traces that do not cover a bin: mask the bin, or refuse
    allow_no_val: bool = False  # import a session without validation trials all the same

    def check(self) -> None:
        h, w = self.frame_shape
        if h <= 0 or w <= 0 or not self.frame_rate > 0:
            raise NWBImportError(f"--frame-shape {self.frame_shape} and --frame-rate {self.frame_rate} must be positive")
        for flag, value, allowed in (("--resample", self.resample, (None, *RESAMPLE_RULES)),
                                     ("--fit", self.fit, (None, *FITS)), ("--image-order", self.image_order, IMAGE_ORDERS),
                                     ("--frame-axes", self.frame_axes, FRAME_AXES),
                                     ("--uncovered", self.uncovered, UNCOVERED)):
            if value not in allowed:
                raise NWBImportError(f"{flag} {value!r}: expected one of {[a for a in allowed if a]}")
        if (self.stimulus_file is None) != (self.presentations is None):
            raise NWBImportError("--stimulus-file and --presentations go together: the movie, and the table whose "
                                 f"rows say which of its frames is on screen (column --frame-column {self.frame_column!r})")
        if self.stimulus_file is not None and self.stimulus is not None:
            raise NWBImportError("--stimulus names a stimulus in the file and --stimulus-file one outside it: give one")
