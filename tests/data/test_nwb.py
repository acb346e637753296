"""The NWB importer: NWB files written with pynwb from simulated sessions (spike times and
ophys, stimulus as an ImageSeries and as indexed templates) import to the source's counts, frames,
behaviour, splits and repeats; bad input names the file and object and writes nothing."""

import datetime
import warnings
from pathlib import Path

import numpy as np
import pytest

from neuroenc.data.nwb import NWBImportError, Options, convert
from neuroenc.data.repeats import repeat_groups
from neuroenc.data.sessions import open_sessions
from neuroenc.data.synthetic import SimulationParams, simulate_session

pynwb = pytest.importorskip("pynwb")
from pynwb import NWBHDF5IO, NWBFile, TimeSeries  # noqa: E402
from pynwb.base import ImageReferences, Images  # noqa: E402
from pynwb.behavior import BehavioralTimeSeries, EyeTracking, SpatialSeries  # noqa: E402
from pynwb.image import GrayscaleImage, ImageSeries, IndexSeries  # noqa: E402
from pynwb.ophys import DfOverF, ImageSegmentation, OpticalChannel, RoiResponseSeries  # noqa: E402

RATE = 30.0
GAP = 0.5  # seconds between trials, when nothing is recorded into the session
SIM = SimulationParams(num_sessions=1, neurons_min=6, neurons_max=6, trials_train=4, trials_val=1, trials_test=1,
                       trial_frames=40, height=12, width=16, repeats=3)


def trial_starts(sim):
    return {t: i * (SIM.trial_frames / RATE + GAP) for i, t in enumerate(np.unique(sim["trial"]))}


def write_nwb(path: Path, sim: dict, *, responses="units", stimulus="images", units=True) -> Path:
    """The simulated session as an NWB file: frames on screen from each trial's start, spikes at
    times inside their frame's bin (or responses as two imaging planes), behaviour at frame centres."""
    nwb = NWBFile(session_description="simulated", identifier=path.stem,
                  session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    starts = trial_starts(sim)
    split_of = {t: s for s, trials in sim["splits"].items() for t in trials}
    movie_of = sim["extra_meta"].get("trial_stimulus", {})
    frame_start = np.array([starts[t] for t in sim["trial"]]) + np.concatenate(
        [np.arange(SIM.trial_frames)] * len(starts)) / RATE
    nwb.add_trial_column("split", "train, val or test")
    nwb.add_trial_column("movie", "the video shown")
    for t, s in starts.items():
        nwb.add_trial(start_time=s, stop_time=s + SIM.trial_frames / RATE, split=split_of[t],
                      movie=movie_of.get(str(t), f"m{t}"))
    if stimulus == "images":
        nwb.add_stimulus(ImageSeries(name="movie", data=sim["stim"], unit="n.a.", timestamps=frame_start))
    else:  # templates: every distinct frame once, in an order that is not their names'
        frames, index = np.unique(sim["stim"].reshape(len(sim["stim"]), -1), axis=0, return_inverse=True)
        images = [GrayscaleImage(name=f"frame{i:05d}", data=f.reshape(SIM.height, SIM.width)) for i, f in enumerate(frames)]
        order = images[::-1]
        templates = Images(name="templates", images=images, order_of_images=ImageReferences(name="order_of_images",
                                                                                             data=order))
        nwb.add_stimulus_template(templates)
        nwb.add_stimulus(IndexSeries(name="movie_index", data=(len(images) - 1 - index.ravel()).astype(np.uint32),
                                     indexed_images=templates, unit="N/A", timestamps=frame_start))
    centres = frame_start + 0.5 / RATE
    behavior = nwb.create_processing_module("behavior", "behaviour")
    behavior.add(EyeTracking(spatial_series=SpatialSeries(name="eye_position", data=sim["behavior"][:, :2],
                                                          reference_frame="screen", timestamps=centres)))
    behavior.add(BehavioralTimeSeries(time_series=[
        TimeSeries(name="running_speed", data=sim["behavior"][:, 2], unit="cm/s", timestamps=centres),
        TimeSeries(name="pupil_area", data=sim["behavior"][:, 3], unit="a.u.", timestamps=centres)]))
    robs = sim["robs"]
    if responses == "units" and units:
        nwb.add_unit_column("quality", "curation label")
        for j in range(robs.shape[1]):
            counts = robs[:, j].astype(int)
            spikes = np.concatenate([frame_start[k] + (np.arange(c) + 0.5) / (c + 1) / RATE
                                     for k, c in enumerate(counts) if c])
            nwb.add_unit(spike_times=spikes, quality="noise" if j == 2 else "good", id=100 + j)
    elif responses == "ophys":
        device = nwb.create_device("scope")
        seg = ImageSegmentation()
        ophys = nwb.create_processing_module("ophys", "imaging")
        ophys.add(seg)
        dff = DfOverF(name="DfOverF")
        for p, cols in enumerate((slice(0, 3), slice(3, None))):
            plane = nwb.create_imaging_plane(
                name=f"plane{p}", optical_channel=OpticalChannel(name="green", description="g", emission_lambda=510.0),
                description="plane", device=device, excitation_lambda=920.0, imaging_rate=RATE, indicator="GCaMP6",
                location="V1")
            ps = seg.create_plane_segmentation(description="rois", imaging_plane=plane, name=f"rois{p}")
            for j in range(robs[:, cols].shape[1]):
                ps.add_roi(image_mask=np.ones((4, 4)), id=10 * (p + 1) + j)
            region = ps.create_roi_table_region(region=list(range(robs[:, cols].shape[1])), description="all")
            dff.add_roi_response_series(RoiResponseSeries(name=f"plane{p}", data=robs[:, cols], rois=region,
                                                          unit="n.a.", timestamps=centres))
        ophys.add(dff)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with NWBHDF5IO(str(path), "w") as io:
            io.write(nwb)
    return path


@pytest.fixture(scope="module")
def sim():
    return simulate_session(SIM, 0)


@pytest.fixture(scope="module")
def spikes_file(sim, tmp_path_factory):
    return write_nwb(tmp_path_factory.mktemp("nwb") / "mouse1.nwb", sim)


def options(**kw) -> Options:
    base = dict(frame_shape=(SIM.height, SIM.width), frame_rate=RATE, behavior=["running_speed", "pupil_area:pupil"],
                eye="eye_position", split_column="split")
    return Options(**{**base, **kw})


def test_spike_times_and_image_series_import_to_the_source_counts_frames_behaviour_splits_and_repeats(
        sim, spikes_file, tmp_path):
    summary = convert([spikes_file], tmp_path / "sessions", options(units_query="quality == 'good'"))
    [s] = open_sessions(tmp_path / "sessions")
    keep = [0, 1, 3, 4, 5]  # unit 2 is noise
    assert s.id == "mouse1" and summary[0]["neurons"] == 5 and s.meta["neuron_ids"] == [100 + j for j in keep]
    np.testing.assert_array_equal(s.stim, sim["stim"])
    assert s.stim.dtype == np.uint8
    np.testing.assert_array_equal(s.robs, sim["robs"][:, keep])
    np.testing.assert_array_equal(s.trial, sim["trial"])
    assert s.behavior_names == ["running_speed", "pupil", "eye_x", "eye_y"]
    np.testing.assert_allclose(s.behavior, sim["behavior"][:, [2, 3, 0, 1]], rtol=1e-5, atol=1e-6)
    assert s.meta["splits"] == sim["splits"] and s.frame_rate == RATE
    # repeats found from identical frames: the same trials per video as the simulator's
    by_video = lambda m: sorted(sorted(int(t) for t in m if m[t] == v) for v in set(m.values()))
    want = {t: v for t, v in sim["extra_meta"]["trial_stimulus"].items()
            if list(sim["extra_meta"]["trial_stimulus"].values()).count(v) > 1}
    assert by_video(s.meta["trial_stimulus"]) == by_video(want)
    assert [len(runs) for _, runs in repeat_groups(s, "val")] == [3]
    assert s.meta["provenance"]["source"] == "nwb" and s.meta["provenance"]["stimulus"] == "stimulus/movie"


def test_ophys_planes_and_indexed_templates_import_one_session_per_plane(sim, tmp_path):
    path = write_nwb(tmp_path / "mouse2.nwb", sim, responses="ophys", stimulus="templates")
    convert([path], tmp_path / "sessions", options(responses="DfOverF", stimulus_id_column="movie",
                                                  split_column=None, split_fractions=(0.6, 0.2, 0.2), seed=3))
    sessions = open_sessions(tmp_path / "sessions")
    assert [s.id for s in sessions] == ["mouse2-plane0", "mouse2-plane1"]
    for s, cols, ids in zip(sessions, (slice(0, 3), slice(3, None)), ([10, 11, 12], [20, 21, 22])):
        np.testing.assert_array_equal(s.stim, sim["stim"])
        np.testing.assert_allclose(s.robs, sim["robs"][:, cols], rtol=1e-6, atol=1e-6)
        assert s.meta["neuron_ids"] == ids
        stimulus = s.meta["trial_stimulus"]  # from the presentation column, for every trial
        assert len(stimulus) == len(np.unique(sim["trial"]))
        split_of = {t: name for name, trials in s.meta["splits"].items() for t in trials}
        assert sorted(split_of) == sorted(int(t) for t in stimulus)  # every trial in a split
        for video in set(stimulus.values()):  # all showings of a video in one split
            assert len({split_of[int(t)] for t, v in stimulus.items() if v == video}) == 1
    assert sessions[0].meta["splits"] == sessions[1].meta["splits"]


def test_frames_are_resized_to_the_frame_shape_and_cropped(sim, spikes_file, tmp_path):
    convert([spikes_file], tmp_path / "half", options(frame_shape=(6, 8)))
    [s] = open_sessions(tmp_path / "half")
    area = sim["stim"].astype(np.float64).reshape(-1, 6, 2, 8, 2).mean((2, 4))
    assert s.stim.shape[1:] == (6, 8) and s.stim.dtype == np.float32
    np.testing.assert_allclose(s.stim, area, rtol=1e-6)
    convert([spikes_file], tmp_path / "crop", options(frame_shape=(4, 5), crop=(2, 3, 4, 5)))
    [c] = open_sessions(tmp_path / "crop")
    np.testing.assert_array_equal(c.stim, sim["stim"][:, 2:6, 3:8])


def test_the_command_line_imports_and_prints_the_sessions(spikes_file, tmp_path, capsys):
    from neuroenc.data.__main__ import main

    dst = tmp_path / "cli"
    assert main(["import", "nwb", str(spikes_file), str(dst), "--frame-shape", "12,16", "--frame-rate", "30",
                 "--behavior", "running_speed", "--eye", "eye_position", "--units-query", "quality == 'good'"]) == 0
    out = capsys.readouterr().out
    assert "mouse1" in out and "train on it" in out
    [s] = open_sessions(dst)
    assert s.behavior_names == ["running_speed", "eye_x", "eye_y"] and s.n_neurons == 5
    assert sum(len(v) for v in s.meta["splits"].values()) == len(np.unique(s.trial))  # seeded fractions


BAD = [
    ("not_nwb", {}, r"bad\.nwb: not an NWB file pynwb can read"),
    ("missing", {"behavior": ["running_speed", "nose_position"]},
     r"mouse1\.nwb: behaviour \(--behavior\): no object 'nose_position'; the file has .*"
     r"processing/behavior/BehavioralTimeSeries/running_speed \(TimeSeries\)"),
    ("wrong_type", {"stimulus": "running_speed"},
     r"stimulus \(--stimulus\): 'processing/behavior/BehavioralTimeSeries/running_speed' is a TimeSeries, not a "
     r"ImageSeries or IndexSeries; .*stimulus/movie \(ImageSeries\)"),
    ("query", {"units_query": "snr > 3"}, r"--units-query 'snr > 3': .*the units table's columns: \['quality', 'spike_times'\]"),
    ("split_column", {"split_column": "fold"}, r"trials: 'intervals/trials' has no column 'fold'; its columns: \['start_time', "),
    ("responses", {"responses": "running_speed"}, r"is a TimeSeries, not a RoiResponseSeries or DfOverF or Fluorescence"),
    ("eye", {"eye": "running_speed"}, r"eye position \(--eye\): .*running_speed' has shape \(400,\); expected \(samples, 2\)"),
]


@pytest.mark.parametrize("case,change,message", BAD, ids=[b[0] for b in BAD])
def test_bad_input_names_the_file_and_object_and_writes_nothing(spikes_file, tmp_path, case, change, message):
    src = spikes_file
    if case == "not_nwb":
        src = tmp_path / "bad.nwb"
        src.write_text("not hdf5")
    opts = options(**{"behavior": ["running_speed"], **change})
    with pytest.raises(NWBImportError, match=message) as e:
        convert([src], tmp_path / "out", opts)
    print(e.value)
    assert list(tmp_path.iterdir()) == ([src] if case == "not_nwb" else [])  # no destination, no temporary


def test_a_file_without_units_says_so_and_an_existing_destination_is_kept(sim, tmp_path):
    path = write_nwb(tmp_path / "nounits.nwb", sim, units=False)
    with pytest.raises(NWBImportError, match=r"nounits\.nwb: responses: the file has no units table; name a "
                                             r"RoiResponseSeries with --responses"):
        convert([path], tmp_path / "out", options())
    (tmp_path / "out").mkdir()
    with pytest.raises(FileExistsError, match="destination exists"):
        convert([path], tmp_path / "out", options())
