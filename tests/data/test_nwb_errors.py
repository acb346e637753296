"""The NWB importer's refusals name their cause (file, object or table, row, what to do) and
write nothing; external video clips are decoded; the import report says what was read and done;
an unforeseen exception is reported as an importer bug with its traceback saved."""

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from neuroenc.data import import_report
from neuroenc.data.nwb import NWBImportError, Options, convert
from neuroenc.data.sessions import open_sessions

pynwb = pytest.importorskip("pynwb")
av = pytest.importorskip("av")
from nwb_fixtures import new_nwb, save  # noqa: E402
from pynwb import TimeSeries  # noqa: E402
from pynwb.image import ImageSeries  # noqa: E402

RATE = 30.0
SHAPE = (6, 8)
N_FRAMES = 90  # three trials of 30 frames, back to back


def movie(n=N_FRAMES, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def nwb_file(path: Path, *, stimulus=None, trials=((0.0, 1.0), (1.0, 2.0), (2.0, 3.0)), spikes_offset=0.0,
             behavior=None) -> Path:
    """Frames on screen every 1/30 s from 0, three trials, two units firing throughout."""
    nwb = new_nwb(path.stem)
    nwb.add_stimulus(stimulus if stimulus is not None else
                     ImageSeries(name="movie", data=movie(), unit="n.a.", rate=RATE, starting_time=0.0))
    for a, b in trials:
        nwb.add_trial(start_time=a, stop_time=b)
    rng = np.random.default_rng(1)
    for j in range(2):
        nwb.add_unit(spike_times=np.sort(rng.uniform(0, 3, 200)) + spikes_offset, id=j)
    if behavior is not None:
        nwb.add_acquisition(behavior)
    return save(nwb, path)


def options(**kw) -> Options:
    return Options(**{"frame_shape": SHAPE, "frame_rate": RATE, "split_fractions": (1, 1, 1), **kw})


def refused(path, tmp_path, match, **kw):
    with pytest.raises(NWBImportError, match=match) as e:
        convert([path], tmp_path / "out", options(**kw))
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out*"))
    return str(e.value)


def test_an_nwb1_file_is_refused_as_nwb1(tmp_path):
    f = tmp_path / "old.nwb"
    with h5py.File(f, "w") as h:
        h["nwb_version"] = "NWB-1.0.6"
        h.create_group("acquisition")
    refused(f, tmp_path, r"old\.nwb: an NWB NWB-1\.0\.6 file; pynwb \(and this importer\) reads NWB 2 only")


def test_a_zarr_store_is_refused_as_zarr(tmp_path):
    store = tmp_path / "store.nwb"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')
    refused(store, tmp_path, r"store\.nwb: an NWB file in Zarr format .*export it to HDF5")


def test_a_trial_without_a_stop_time_is_refused_by_row(tmp_path):
    f = nwb_file(tmp_path / "m.nwb", trials=((0.0, 1.0), (1.0, np.nan), (2.0, 3.0)))
    refused(f, tmp_path, r"m\.nwb: trials: 'intervals/trials' row 1: stop_time is nan")


def test_overlapping_trials_are_refused_with_both_rows(tmp_path):
    f = nwb_file(tmp_path / "m.nwb", trials=((0.0, 1.0), (0.5, 2.0), (2.0, 3.0)))
    refused(f, tmp_path, r"rows 0 \(0\.0000-1\.0000 s\) and 1 \(from 0\.5000 s\) overlap")


def test_spike_times_on_another_clock_are_refused_with_both_ranges(tmp_path):
    f = nwb_file(tmp_path / "m.nwb", spikes_offset=5000.0)
    msg = refused(f, tmp_path, r"no spike falls in any imported bin")
    assert "from 5000." in msg and "trials from 0.000 s to 3.000 s" in msg and "another clock" in msg


def test_two_trials_at_the_default_fractions_are_refused_for_want_of_a_validation_split(tmp_path):
    f = nwb_file(tmp_path / "m.nwb", trials=((0.0, 1.5), (1.5, 3.0)))
    refused(f, tmp_path, r"splits: no (train|val) trial from --split-fractions 0\.8,0\.1,0\.1 over 2 trials",
            split_fractions=(0.8, 0.1, 0.1))


def test_a_resize_that_would_stretch_is_refused_and_fit_crop_keeps_the_centre(tmp_path):
    f = nwb_file(tmp_path / "m.nwb")
    refused(f, tmp_path, r"is 6x8 .*aspect 0\.75, but --frame-shape 6,6 .*--fit crop.*--frame-axes x,y",
            frame_shape=(6, 6))
    convert([f], tmp_path / "crop", options(frame_shape=(6, 6), fit="crop"))
    [s] = open_sessions(tmp_path / "crop")
    np.testing.assert_array_equal(s.stim, movie()[:, :, 1:7])  # 8 columns -> the middle 6, no resize


def test_the_raw_two_photon_movie_is_never_taken_for_the_stimulus(tmp_path):
    from pynwb.device import Device
    from pynwb.ophys import OpticalChannel, TwoPhotonSeries

    nwb = new_nwb("2p")
    device = Device(name="scope")
    nwb.add_device(device)
    plane = nwb.create_imaging_plane(name="plane", optical_channel=OpticalChannel(name="g", description="g",
                                                                                    emission_lambda=510.0),
                                     description="p", device=device, excitation_lambda=920.0, imaging_rate=RATE,
                                     indicator="GCaMP6", location="V1")
    nwb.add_acquisition(TwoPhotonSeries(name="raw", data=movie(), imaging_plane=plane, rate=RATE, unit="n.a.",
                                        starting_time=0.0))
    nwb.add_trial(start_time=0.0, stop_time=3.0)
    f = save(nwb, tmp_path / "2p.nwb")
    refused(f, tmp_path, r"stimulus: no stimulus series under stimulus/ .*acquisition/raw")
    refused(f, tmp_path, r"'acquisition/raw' is a TwoPhotonSeries, the imaging data of a microscope",
            stimulus="raw")


def write_clip(path: Path, frames: np.ndarray) -> Path:
    """A lossless greyscale video (FFV1), as a lab's exported clips would be, but exact."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("ffv1", rate=int(RATE))
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "gray"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="gray")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def test_external_video_clips_are_decoded_and_missing_ones_named(tmp_path):
    frames = movie()
    write_clip(tmp_path / "clip0.mkv", frames[:45])
    write_clip(tmp_path / "clip1.mkv", frames[45:])
    series = ImageSeries(name="clips", external_file=["clip0.mkv", "clip1.mkv"], starting_frame=[0, 45],
                         format="external", unit="n.a.", timestamps=np.arange(N_FRAMES) / RATE)
    f = nwb_file(tmp_path / "lab.nwb", stimulus=series)
    convert([f], tmp_path / "decoded", options())
    [s] = open_sessions(tmp_path / "decoded")
    np.testing.assert_array_equal(s.stim, frames)
    assert "external video files" in s.meta["provenance"]["stimulus_layout"]
    (tmp_path / "clip1.mkv").unlink()
    refused(f, tmp_path, r"'stimulus/clips' keeps its frames in 2 external files, of which 1 are not next to the NWB "
                         r"file: \[.*clip1\.mkv'\]")


def test_the_report_says_what_was_masked_and_check_prints_it_again(tmp_path, capsys):
    from neuroenc.data.__main__ import main

    running = TimeSeries(name="running", data=np.arange(46, dtype=float), unit="cm/s",
                         timestamps=1.0 + np.arange(46) / RATE / 1.0 * 1.0)  # 1.0 s to 2.5 s: the middle only
    f = nwb_file(tmp_path / "m.nwb", behavior=running)
    assert main(["import", "nwb", str(f), str(tmp_path / "out"), "--frame-shape", "6,8", "--frame-rate", "30",
                 "--behavior", "running", "--split-fractions", "1,1,1"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((tmp_path / "out" / "m" / import_report.REPORT_FILE).read_text())
    centres = (np.arange(N_FRAMES) + 0.5) / RATE
    covered = (centres >= 1.0) & (centres <= 2.5)
    assert report["done"]["bins_masked_for_behavior"] == int((~covered).sum()) == 45
    assert report["done"]["behavior_coverage"] == {"running": pytest.approx(covered.mean())}
    assert report["session"]["valid_bin_fraction"] == pytest.approx(covered.mean())
    assert any("behaviour does not cover 45 of 90 bins" in w for w in report["warnings"])
    assert report["read"]["stimulus_layout"] == "ImageSeries with frames in the file, timed by rate"
    assert "bins masked for behavior: 45" in printed and "behaviour does not cover 45 of 90 bins" in printed
    assert main(["check", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == import_report.render(import_report.check(tmp_path / "out")[0])
    print(import_report.render(report))


def test_an_unforeseen_exception_is_an_importer_bug_with_its_traceback_saved(tmp_path, capsys, monkeypatch):
    from neuroenc.data import __main__ as cli
    from neuroenc.data.nwb import session

    f = nwb_file(tmp_path / "m.nwb")

    def broken(*a, **k):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(session, "bin_units", broken)  # stands in for a bug we have not made yet
    assert cli.main(["import", "nwb", str(f), str(tmp_path / "out"), "--frame-shape", "6,8", "--frame-rate", "30"]) == 3
    err = capsys.readouterr().err
    assert "importer bug: ZeroDivisionError: a bug" in err and "Nothing was written" in err
    [saved] = tmp_path.glob("out.import-bug-*.txt")
    assert "Traceback" in saved.read_text() and "ZeroDivisionError" in saved.read_text()
    assert not (tmp_path / "out").exists()
