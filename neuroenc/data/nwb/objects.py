"""Opening an NWB file and finding its objects by path (``processing/behavior/.../running_speed``)
or by a unique end of one (``running_speed``)."""

from __future__ import annotations

from pathlib import Path

from neuroenc.data.nwb.options import NWBImportError

# series that are recordings of the brain or the animal, never what was on the screen
IMAGING_TYPES = ("TwoPhotonSeries", "OnePhotonSeries")


def _nwb_version(source: Path) -> str | None:
    """The file's NWB version from its HDF5 root (an attribute in NWB 2, a dataset in NWB 1)."""
    import h5py

    try:
        with h5py.File(source, "r") as f:
            v = f.attrs.get("nwb_version")
            if v is None and "nwb_version" in f:
                v = f["nwb_version"][()]
    except OSError:
        return None
    if isinstance(v, bytes):
        v = v.decode(errors="replace")
    return None if v is None else str(v)


def open_nwb(source: Path):
    """``(io, nwbfile)`` of an HDF5 NWB 2 file; any other thing named is refused with what it is."""
    from pynwb import NWBHDF5IO

    if source.is_dir():
        if any((source / m).exists() for m in (".zgroup", ".zattrs", "zarr.json")):
            raise NWBImportError(f"{source}: an NWB file in Zarr format (a directory); the importer reads HDF5 NWB "
                                 "files: export it to HDF5 first (hdmf-zarr's NWBZarrIO.export to an NWBHDF5IO)")
        raise NWBImportError(f"{source}: a directory, not an NWB file")
    if not source.is_file():
        raise NWBImportError(f"{source}: no such file")
    version = _nwb_version(source)
    if version is not None and (version.startswith("NWB-1") or version.startswith("1.")):
        raise NWBImportError(f"{source}: an NWB {version} file; pynwb (and this importer) reads NWB 2 only. Convert it "
                             "to NWB 2 first (for the Allen Brain Observatory, its NWB 2 release on DANDI, 000728)")
    try:
        io = NWBHDF5IO(str(source), "r")
        return io, io.read()
    except Exception as e:  # h5py, hdmf and pynwb each raise their own kinds for a file that is not NWB
        raise NWBImportError(f"{source}: not an NWB file pynwb can read ({type(e).__name__}: {e})") from None


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


def listing(objects: dict[str, object], kinds: tuple = ()) -> str:
    rows = [f"{p} ({type(o).__name__})" for p, o in objects.items() if not kinds or isinstance(o, kinds)]
    return ", ".join(rows) if rows else "nothing"


def find(objects: dict[str, object], name: str, kinds: tuple, what: str, source: Path):
    """``(path, object)``: the object ``name`` (a path, or a unique end of one) of one of
    ``kinds``, else an error naming the file and listing what it has."""
    hits = [p for p in objects if p == name] or [p for p in objects if p.endswith("/" + name.strip("/"))]
    wanted = " or ".join(k.__name__ for k in kinds)
    if not hits:
        raise NWBImportError(f"{source}: {what}: no object {name!r}; the file has {listing(objects)}")
    if len(hits) > 1:
        raise NWBImportError(f"{source}: {what}: {name!r} matches {hits}; give the whole path")
    obj = objects[hits[0]]
    if not isinstance(obj, kinds):
        raise NWBImportError(f"{source}: {what}: {hits[0]!r} is a {type(obj).__name__}, not a {wanted}; the file's "
                             f"{wanted} objects: {listing(objects, kinds)}")
    return hits[0], obj


def stimulus_series(objects: dict[str, object], name: str | None, source: Path):
    """``(path, series)`` of the stimulus: the one named, else the only stimulus-like series
    under ``stimulus/`` (what was presented): an ``ImageSeries``/``OpticalSeries`` or an
    ``IndexSeries``, never imaging data (``TwoPhotonSeries``, ``OnePhotonSeries``) nor a series
    an ``IndexSeries`` presents (a template). A camera or microscope series elsewhere in the file
    is only taken when named."""
    from pynwb.image import ImageSeries, IndexSeries

    kinds = (ImageSeries, IndexSeries)
    if name is not None:
        path, series = find(objects, name, kinds, "stimulus (--stimulus)", source)
        if type(series).__name__ in IMAGING_TYPES:
            raise NWBImportError(f"{source}: stimulus (--stimulus): {path!r} is a {type(series).__name__}, the imaging "
                                 "data of a microscope, not what was on the screen")
        return path, series
    templates = {id(o.indexed_timeseries) for o in objects.values()
                 if isinstance(o, IndexSeries) and getattr(o, "indexed_timeseries", None) is not None}
    found = [p for p, o in objects.items() if p.startswith("stimulus/") and isinstance(o, kinds)
             and type(o).__name__ not in IMAGING_TYPES and id(o) not in templates]
    if len(found) != 1:
        others = [p for p, o in objects.items() if isinstance(o, kinds) and p not in found]
        raise NWBImportError(f"{source}: stimulus: {'no' if not found else len(found)} stimulus series under "
                             f"stimulus/ ({found or 'ImageSeries, OpticalSeries or IndexSeries'}); name one with "
                             f"--stimulus, or give a movie with --stimulus-file and --presentations"
                             + (f"; other image series in the file (not taken unless named): {others}" if others else ""))
    return found[0], objects[found[0]]
