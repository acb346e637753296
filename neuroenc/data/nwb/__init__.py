"""Import NWB files into the session format with pynwb: one session per file (or per file and
recording plane).

What is read (objects are named by their path in the file, e.g.
``processing/behavior/BehavioralTimeSeries/running_speed``, or by a unique end of it):

- **stimulus**: the layouts of :mod:`neuroenc.data.nwb.stimulus` (frames in the file or in video
  files beside it, an ``IndexSeries`` into templates, or a movie ``.npy`` with a presentation
  table), cropped and fitted to ``--frame-shape`` without distortion (:mod:`.geometry`);
- **responses**: ``units`` (spike times counted per bin; ``--units-query``; ``obs_intervals``) or
  a ``RoiResponseSeries`` or a container of them (``DfOverF``, ``Fluorescence``): one session per
  plane, series sharing one ROI table being alternatives (:mod:`.session`);
- **behaviour** (``--behavior``, ``--eye`` -> ``eye_x``, ``eye_y``) and traces read at bin
  centres, bins they do not cover masked, never edge-filled (:mod:`.streams`);
- **trials** (``--trials``): each row cut into bins of ``1 / --frame-rate`` s from its start,
  within the stimulus's span; overlapping rows refused;
- **splits**: ``--split-column`` or seeded ``--split-fractions`` per video; a session without
  training or validation trials is refused.

The one sampling rule (:mod:`.timeline`): every stream is read at the bin centre. A stimulus at
another rate than ``--frame-rate`` is resampled by a stated rule with a warning, or refused.

Every session is written into a temporary directory beside the destination with its
``import_report.json``, opened (checked), and only then renamed into place: an error leaves
nothing behind and names the file, the object and what to do.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from neuroenc import atomic
from neuroenc.data.nwb.objects import open_nwb
from neuroenc.data.nwb.options import NWBImportError, Options
from neuroenc.data.nwb.session import plan_file, write_plan

__all__ = ["NWBImportError", "Options", "convert"]


def convert(sources, dst, options: Options, overwrite: bool = False) -> list[dict]:
    """Import every NWB file of ``sources`` into sessions under ``dst``; one summary per session
    (its ``report`` the import report written beside it).

    Refuses an existing ``dst`` unless ``overwrite``; it is replaced only once every session has
    been written and opened.
    """
    sources = [Path(s).expanduser() for s in ([sources] if isinstance(sources, (str, Path)) else sources)]
    dst = Path(dst).expanduser()
    if dst.exists() and not overwrite:
        raise FileExistsError(f"destination exists: {dst} (pass --overwrite to replace it)")
    options.check()
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = atomic.temp_dir_beside(dst)
    summaries: list[dict] = []
    seen: dict[str, Path] = {}
    try:
        for source in sources:
            io, nwb = open_nwb(source)
            try:
                stimulus, plans = plan_file(source, nwb, options)
                for plan in plans:
                    if plan.session_id in seen:
                        raise NWBImportError(f"{source}: session id {plan.session_id!r} is also that of "
                                             f"{seen[plan.session_id]}; rename one of the files")
                    seen[plan.session_id] = source
                    summaries.append(write_plan(plan, stimulus, tmp / plan.session_id, options))
            finally:
                io.close()
        atomic.replace_dir(tmp, dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summaries
