"""NWB files laid out the way other labs' tools write them (photodiode-timed flips, display
latency, the Allen Brain Observatory's natural scenes and movie templates, an AllenSDK Neuropixels
presentation table with the movie outside the file, two-photon acquisitions, shared ROI tables,
60 Hz stimuli, partial behaviour, (frame, x, y) movies, other aspect ratios), each imported and
compared with a recomputation in plain numpy on what was written (``nwb_fixtures``), from the
importer's documented rules:

1. bins of ``1/R`` from each trial row's start, the row clamped to the stimulus's span (first
   onset .. last onset + median frame duration, or the last presentation's stop), ``n = floor((b -
   a) R + 0.1)``; ``trial.npy`` the row ids;
2. the frame of a bin is the one on screen at its centre (last onset at or before it; a
   presentation row's frame over [start, stop), the blank elsewhere); -1 / 4294967295 a blank at
   the mean over all templates' (movie frames') pixels;
3. a stimulus within 2% of R or at an integer multiple / divisor of it: the centre rule (warned,
   ``stimulus_frames_dropped``); other rates refused unless ``resample`` ("mean": time-weighted);
4. Images without order_of_images refused unless ``image_order="natural"``;
5. an IndexSeries into an ImageSeries template (rate NaN): index i the template's frame i;
6. aspect ratio off by > 1% refused unless ``fit``/``crop``; ``frame_axes="x,y"``; area
   averaging when shrinking, bilinear when growing;
7. spikes counted in [start, start + 1/R); dfs 0 outside obs_intervals; spikes on another clock refused;
8. traces linearly interpolated at bin centres where covered; uncovered behaviour bins masked for
   every neuron and filled with the column's covered mean; uncovered ROI bins 0 and masked;
9. series of one ROI table: one session; 10. overlapping rows and sessions without train/val refused;
11. ``import_report.json`` everywhere; 12. no behaviour at all allowed.

Where a file also has a known ground truth (frame k of a clip in bin k) the import is held to it too.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from nwb_fixtures import (
    BLANK,
    Expect,
    H,
    R,
    W,
    add_running,
    add_table,
    add_units,
    area_resize,
    bilinear_resize,
    compare,
    expect,
    fit_crop,
    frame_errors,
    frames_of,
    image_span,
    legacy_index_series,
    mean_on_screen,
    new_nwb,
    on_screen,
    poisson_spikes,
    presented,
    refused,
    run_import,
    save,
    trace_at,
    trial_bins,
)

from neuroenc.data.nwb import Options

pytest.importorskip("pynwb")
from pynwb.base import Images
from pynwb.behavior import EyeTracking, SpatialSeries
from pynwb.image import GrayscaleImage, ImageSeries, IndexSeries
from pynwb.ophys import DfOverF, ImageSegmentation, OpticalChannel, RoiResponseSeries, TwoPhotonSeries


def options(**kw) -> Options:
    return Options(**{"frame_shape": (H, W), "frame_rate": R, "behavior": ["running_speed"], "split_column": "split", **kw})


def assert_same(session, want: Expect, **kw):
    problems = compare(session, want, **kw)
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def units_over(nwb, rng, t0, t1, n=3, ids=None, rate_hz=15.0):
    spikes = [poisson_spikes(rng, t0, t1, rate_hz) for _ in range(n)]
    add_units(nwb, spikes, ids if ids is not None else range(n))
    return spikes


# ----------------------------------------------------------------------------- a, b: photodiode flips

CLIP = 20  # frames per clip, 2 monitor refreshes (60 Hz) each
ORDER = [0, 1, 2, 0, 3, 1, 4, 2, 0]  # clips 0 (3 times), 1 and 2 (twice) repeat
SPLIT = ["train", "train", "val", "train", "test", "train", "train", "val", "train"]
TRIAL_IDS = [100 + i for i in range(len(ORDER))]  # row ids that are not positions


def photodiode(path, latency: float) -> Expect:
    """A stimulus PC flipping a new frame every 2 refreshes of a 60 Hz monitor, each flip's time
    from a photodiode (+-0.25 ms jitter), a grey frame between clips. ``latency`` 0: trials start at
    their first flip and stop at the flip of the grey that ends the clip (the table a photodiode
    pipeline writes); otherwise trials hold the commanded times and frames appear ``latency`` later."""
    rng = np.random.default_rng(1)
    clips = rng.integers(0, 256, (5, CLIP, H, W), dtype=np.uint8)
    grey = np.full((1, H, W), 128, dtype=np.uint8)
    frames, refresh, first = [grey], [0], []
    r = 30
    for c in ORDER:
        first.append(len(refresh))
        frames += [clips[c], grey]
        refresh += [r + 2 * k for k in range(CLIP)] + [r + 2 * CLIP]
        r += 2 * CLIP + 30
    movie = np.concatenate(frames)
    nominal = 1.0 + np.array(refresh) / 60
    onsets = nominal + latency + rng.uniform(-0.25e-3, 0.25e-3, len(nominal))
    if latency == 0:
        rows = [{"start_time": onsets[f], "stop_time": onsets[f + CLIP]} for f in first]
    else:
        rows = [{"start_time": nominal[f], "stop_time": nominal[f] + CLIP / R} for f in first]
    for row, s, c in zip(rows, SPLIT, ORDER):
        row.update(split=s, clip=f"clip{c}")

    nwb = new_nwb(path.stem)
    nwb.add_stimulus(ImageSeries(name="movie", data=movie, unit="n.a.", timestamps=onsets))
    add_table(nwb, "trials", rows, ids=TRIAL_IDS)
    end = onsets[-1] + 0.5
    running = add_running(nwb, 0.9, end)
    eye_t = np.arange(0.95, end, 1 / 60)
    eye = np.stack([np.sin(eye_t), np.cos(2 * eye_t)], 1)
    nwb.processing["behavior"].add(EyeTracking(spatial_series=SpatialSeries(
        name="eye_position", data=eye, reference_frame="screen centre", timestamps=eye_t)))
    spikes = units_over(nwb, rng, 1.0, end, ids=[5, 6, 7])
    save(nwb, path)

    bins = trial_bins(rows, TRIAL_IDS, image_span(onsets))
    stim = movie[on_screen(onsets, bins.centre)]
    want = expect(path, bins, stim, spikes, streams=[running, {"t": eye_t, "data": eye}],
                  names=["running_speed", "eye_x", "eye_y"])
    want.extra.update(clips=clips, start_rule=movie[on_screen(onsets, bins.start)])
    return want


@pytest.fixture(scope="module")
def flips(tmp_path_factory):
    return photodiode(tmp_path_factory.mktemp("flips") / "flips.nwb", latency=0.0)


@pytest.fixture(scope="module")
def flips_imported(flips, tmp_path_factory):
    return run_import([flips.path], tmp_path_factory.mktemp("flips_out") / "sessions", options(eye="eye_position"))


@pytest.fixture(scope="module")
def latency(tmp_path_factory):
    return photodiode(tmp_path_factory.mktemp("latency") / "latency.nwb", latency=0.008)


@pytest.fixture(scope="module")
def latency_imported(latency, tmp_path_factory):
    return run_import([latency.path], tmp_path_factory.mktemp("latency_out") / "sessions",
                      options(eye="eye_position", stimulus_id_column="clip"))


def ground_truth_errors(session, want: Expect) -> tuple[dict, list]:
    """(bins per trial that is not CLIP, (trial, bin) whose frame is not the clip's frame of that bin)."""
    clips, short, wrong = want.extra["clips"], {}, []
    for i, c in zip(TRIAL_IDS, ORDER):
        frames = np.asarray(session.stim[session.trial == i], dtype=np.float64)
        if len(frames) != CLIP:
            short[i] = len(frames)
        wrong += [(i, k) for k in range(min(len(frames), CLIP)) if not np.array_equal(frames[k], clips[c][k])]
    return short, wrong


def test_photodiode_flips_import_as_recomputed(flips, flips_imported):
    s = flips_imported.one
    assert_same(s, flips)
    assert s.stim.dtype == np.uint8
    assert s.meta["splits"] == {k: [i for i, v in zip(TRIAL_IDS, SPLIT) if v == k] for k in ("train", "val", "test")}


def test_photodiode_flips_put_every_clip_frame_in_its_bin(flips, flips_imported):
    """Ground truth: clip frame k was on screen over bin k of its trial (flips jittered by 0.25 ms,
    the trial's start and stop taken from the photodiode): 20 bins per trial, frame k in bin k."""
    short, wrong = ground_truth_errors(flips_imported.one, flips)
    assert not wrong, f"frames not the clip's: {wrong}"
    assert not short, f"trials of {CLIP} frames imported with fewer bins {short} (recomputed by rule 1: {flips.bins.rows})"


def test_photodiode_flips_repeated_clips_are_found_from_identical_frames(flips_imported):
    stimulus = flips_imported.one.meta.get("trial_stimulus", {})
    groups = {}
    for t, v in stimulus.items():
        groups.setdefault(v, set()).add(int(t))
    found = sorted(sorted(g) for g in groups.values() if len(g) > 1)
    want = sorted(sorted(i for i, c in zip(TRIAL_IDS, ORDER) if c == clip) for clip in (0, 1, 2))
    assert found == want, f"trial_stimulus {stimulus}"


def test_constant_display_latency_imports_as_recomputed(latency, latency_imported):
    s = latency_imported.one
    assert len(frame_errors(latency.extra["start_rule"], latency.stim)) > 0.9 * len(latency.stim)  # no bin-start rule
    assert_same(s, latency)
    short, wrong = ground_truth_errors(s, latency)
    assert not wrong and not short, (short, wrong)
    stimulus = {int(t): v for t, v in s.meta["trial_stimulus"].items()}
    assert stimulus == {i: f"clip{c}" for i, c in zip(TRIAL_IDS, ORDER)}


# ----------------------------------------------------------------------------- c: Allen natural scenes


def natural_scenes(path) -> Expect:
    """The Allen Brain Observatory (2p) layout: 12 templates NaturalScene0..11 in an Images
    container without order_of_images (added in shuffled order), an IndexSeries of 250 ms
    presentations with blanks stored as uint32 4294967295, a blank between blocks."""
    rng = np.random.default_rng(3)
    scenes = rng.integers(0, 256, (12, H, W), dtype=np.uint8)
    images = [GrayscaleImage(name=f"NaturalScene{i}", data=scenes[i], description="scene") for i in rng.permutation(12)]
    templates = Images(name="natural_scenes", images=images, description="natural scene templates")
    index, onsets, rows = [-1], [0.5], []
    t = 1.5
    for split in ["train", "train", "val", "test"]:
        shown = rng.permutation(12)
        shown[[3, 8]] = -1
        index += shown.tolist()
        onsets += (t + 0.25 * np.arange(12)).tolist()
        rows.append({"start_time": None, "stop_time": None, "split": split, "first": len(onsets) - 12})
        t += 3.0
        index.append(-1)
        onsets.append(t)
        t += 1.0
    index = np.array(index)
    onsets = np.array(onsets) + rng.uniform(-0.25e-3, 0.25e-3, len(onsets))
    for row in rows:
        row["start_time"] = onsets[row.pop("first")] + 0.005
        row["stop_time"] = row["start_time"] + 2.9

    nwb = new_nwb(path.stem)
    nwb.add_stimulus_template(templates)
    nwb.add_stimulus(IndexSeries(name="natural_scenes_stimulus", data=np.where(index < 0, BLANK, index).astype(np.uint32),
                                 indexed_images=templates, unit="N/A", timestamps=onsets))
    add_table(nwb, "trials", rows)
    running = add_running(nwb, 0.4, t + 0.5)
    spikes = units_over(nwb, rng, 0.5, t + 0.5, n=4)
    save(nwb, path)

    bins = trial_bins(rows, range(len(rows)), image_span(onsets))
    shown = index[on_screen(onsets, bins.centre)]
    want = expect(path, bins, frames_of(scenes, shown), spikes, streams=[running], names=["running_speed"])
    want.extra.update(blank_bins=int((shown < 0).sum()), scenes=scenes)
    return want


def test_allen_natural_scenes_refused_without_natural_image_order_and_resampling(tmp_path):
    want = natural_scenes(tmp_path / "scenes.nwb")
    message = refused([want.path], tmp_path / "a", options(resample="nearest"))
    assert "--image-order natural" in message and "natural_scenes" in message, message
    message = refused([want.path], tmp_path / "b", options(image_order="natural"))
    assert "--resample" in message and "natural_scenes_stimulus" in message, message


def test_allen_natural_scenes_import_in_natural_name_order_with_uint32_blanks(tmp_path):
    want = natural_scenes(tmp_path / "scenes.nwb")
    assert want.extra["blank_bins"] > 0 and want.extra["scenes"].mean() % 1 != 0
    imported = run_import([want.path], tmp_path / "out", options(resample="nearest", image_order="natural"))
    s = imported.one
    assert_same(s, want)
    assert s.stim.dtype == np.float32  # blanks at a non-integer mean luminance
    assert s.meta["provenance"]["stimulus_bins_blank"] == want.extra["blank_bins"]
    assert imported.reports[0]["done"]["stimulus_bins_blank"] == want.extra["blank_bins"]


# ----------------------------------------------------------------------------- d: Allen natural movie template

MOVIE = 30


def natural_movie(path) -> Expect:
    """The AllenSDK's natural movie: the movie an ImageSeries in stimulus_templates with rate and
    starting_time NaN, shown by an IndexSeries (indexed_timeseries) with a timestamp per 30 Hz
    frame (+-0.25 ms); 4 repeats, grey (-1) between them; trials from the first frame for 1 s."""
    rng = np.random.default_rng(4)
    movie = rng.integers(0, 256, (MOVIE, H, W), dtype=np.uint8)
    template = ImageSeries(name="natural_movie_one", data=movie, unit="n.a.", format="raw", rate=float("nan"),
                           starting_time=float("nan"))
    index, first = [-1] * 15, []
    for _ in range(4):
        first.append(len(index))
        index += list(range(MOVIE)) + [-1] * 15
    index = np.array(index)
    onsets = 1.0 + np.arange(len(index)) / 30 + rng.uniform(-0.25e-3, 0.25e-3, len(index))
    rows = [{"start_time": onsets[f], "stop_time": onsets[f] + MOVIE / R, "split": s}
            for f, s in zip(first, ["train", "train", "val", "test"])]

    nwb = new_nwb(path.stem)
    nwb.add_stimulus_template(template)
    nwb.add_stimulus(legacy_index_series(name="natural_movie_one_stimulus", data=np.where(index < 0, BLANK, index).astype(
        np.uint32), indexed_timeseries=template, unit="N/A", timestamps=onsets))
    add_table(nwb, "trials", rows)
    running = add_running(nwb, 0.8, onsets[-1] + 0.5)
    spikes = units_over(nwb, rng, 1.0, onsets[-1], n=3)
    save(nwb, path)

    bins = trial_bins(rows, range(4), image_span(onsets))
    shown = index[on_screen(onsets, bins.centre)]
    want = expect(path, bins, frames_of(movie, shown), spikes, streams=[running], names=["running_speed"])
    want.extra.update(shown=shown)
    return want


def test_allen_natural_movie_template_indexed_by_an_index_series(tmp_path):
    want = natural_movie(tmp_path / "movie.nwb")
    s = run_import([want.path], tmp_path / "out", options()).one
    assert_same(s, want)
    ground_truth = np.tile(np.arange(MOVIE), 4)  # movie frame k in bin k of every repeat
    np.testing.assert_array_equal(want.extra["shown"], ground_truth)
    assert "natural_movie_one_stimulus" in s.meta["provenance"]["stimulus"]


def test_presenting_the_movie_template_itself_is_refused(tmp_path):
    want = natural_movie(tmp_path / "movie.nwb")
    message = refused([want.path], tmp_path / "out", options(stimulus="natural_movie_one"))
    assert "natural_movie_one" in message and "rate" in message.lower(), message


# ----------------------------------------------------------------------------- e: TwoPhotonSeries


def two_photon(path, with_stimulus: bool) -> Expect:
    """A two-photon recording in acquisition (frames of the session's very shape, at 30 Hz), with
    or without a stimulus movie under /stimulus."""
    rng = np.random.default_rng(5)
    nwb = new_nwb(path.stem)
    device = nwb.create_device("scope")
    plane = nwb.create_imaging_plane(name="plane0", optical_channel=OpticalChannel(name="green", description="g",
                                                                                   emission_lambda=510.0),
                                     description="V1", device=device, excitation_lambda=920.0, imaging_rate=R,
                                     indicator="GCaMP6", location="V1")
    nwb.add_acquisition(TwoPhotonSeries(name="TwoPhotonSeries", data=rng.integers(0, 256, (100, H, W), dtype=np.uint8),
                                        imaging_plane=plane, rate=R, starting_time=0.9, unit="n.a."))
    movie = rng.integers(0, 256, (90, H, W), dtype=np.uint8)
    onsets = 1.0 + np.arange(90) / 30
    if with_stimulus:
        nwb.add_stimulus(ImageSeries(name="gratings", data=movie, unit="n.a.", timestamps=onsets))
    rows = [{"start_time": 1.0 + i, "stop_time": 1.8 + i, "split": s} for i, s in enumerate(["train", "val", "test"])]
    add_table(nwb, "trials", rows)
    running = add_running(nwb, 0.8, 4.5)
    spikes = units_over(nwb, rng, 0.9, 4.2)
    save(nwb, path)
    bins = trial_bins(rows, range(3), image_span(onsets))
    return expect(path, bins, movie[on_screen(onsets, bins.centre)], spikes, streams=[running], names=["running_speed"])


def test_a_two_photon_series_is_never_taken_for_the_stimulus(tmp_path):
    want = two_photon(tmp_path / "tpm.nwb", with_stimulus=False)
    message = refused([want.path], tmp_path / "out", options())
    assert "stimulus" in message and "--stimulus" in message, message


def test_the_stimulus_under_stimulus_is_taken_beside_a_two_photon_series(tmp_path):
    want = two_photon(tmp_path / "tpm.nwb", with_stimulus=True)
    s = run_import([want.path], tmp_path / "out", options()).one
    assert s.meta["provenance"]["stimulus"] == "stimulus/gratings"
    assert_same(s, want)


# ----------------------------------------------------------------------------- f: spike clock


def simple(path, *, n_trials=3, rows=None, spike_shift=0.0, spike_window=None, behaviour=True, split=True) -> Expect:
    """A 30 Hz movie (timestamps), trials [1 + i, 1.8 + i), units, a running speed."""
    rng = np.random.default_rng(6)
    movie = rng.integers(0, 256, (30 * (n_trials + 1), H, W), dtype=np.uint8)
    onsets = 1.0 + np.arange(len(movie)) / 30
    splits = (["train", "val", "test"] + ["train"] * n_trials)[:n_trials]
    if rows is None:
        rows = [{"start_time": 1.0 + i, "stop_time": 1.8 + i} for i in range(n_trials)]
    if split:
        for row, s in zip(rows, splits):
            row["split"] = s
    nwb = new_nwb(path.stem)
    nwb.add_stimulus(ImageSeries(name="movie", data=movie, unit="n.a.", timestamps=onsets))
    add_table(nwb, "trials", rows)
    streams = [add_running(nwb, 0.8, onsets[-1] + 0.5)] if behaviour else []
    window = spike_window or (0.9, onsets[-1])
    spikes = [poisson_spikes(rng, *window, 20.0) for _ in range(3)]
    add_units(nwb, [s + spike_shift for s in spikes], range(3))
    save(nwb, path)
    bins = trial_bins(rows, range(len(rows)), image_span(onsets))
    return expect(path, bins, movie[on_screen(onsets, bins.centre)], spikes, streams=streams,
                  names=["running_speed"] if behaviour else [])


def test_spike_times_on_another_clock_are_refused_naming_both_ranges(tmp_path):
    want = simple(tmp_path / "clock.nwb", spike_shift=5000.0)
    message = refused([want.path], tmp_path / "out", options())
    assert "another clock" in message and "units" in message, message
    assert re.search(r"from 500\d\.\d+ s to 500\d\.\d+ s", message) and "1.000 s to 3.800 s" in message, message


def test_spike_times_covering_a_third_of_the_trials_are_refused(tmp_path):
    want = simple(tmp_path / "clock.nwb", spike_window=(0.9, 1.9))
    message = refused([want.path], tmp_path / "out", options())
    assert "another clock" in message, message


# ----------------------------------------------------------------------------- g: shared ROI tables


def shared_rois(path, second_plane: bool) -> tuple[Expect, Expect | None]:
    """Ophys as suite2p-to-NWB converters write it: a DfOverF holding "raw" and "dff" of the same
    plane (one ROI table; 31 Hz timed by rate from 1.2 s, after the first trial has begun; dff with
    negative values, conversion 2, a NaN stretch in one ROI), and optionally a second plane's
    "plane2_dff" (timed by timestamps)."""
    rng = np.random.default_rng(7)
    movie = rng.integers(0, 256, (120, H, W), dtype=np.uint8)
    onsets = 1.0 + np.arange(120) / 30
    rows = [{"start_time": 1.0 + i, "stop_time": 1.8 + i, "split": s} for i, s in enumerate(["train", "val", "train", "test"])]
    nwb = new_nwb(path.stem)
    nwb.add_stimulus(ImageSeries(name="movie", data=movie, unit="n.a.", timestamps=onsets))
    add_table(nwb, "trials", rows)
    running = add_running(nwb, 0.8, 5.5)
    device = nwb.create_device("scope")
    seg = ImageSegmentation()
    ophys = nwb.create_processing_module("ophys", "imaging")
    ophys.add(seg)
    dff = DfOverF(name="DfOverF")
    ophys.add(dff)
    t = 1.2 + np.arange(int(4.0 * 31)) / 31
    traces = []
    for p, (n, ids, names) in enumerate([(5, range(7, 12), ["raw", "dff"]), (3, range(20, 23), ["plane2_dff"])]):
        if p == 1 and not second_plane:
            break
        plane = nwb.create_imaging_plane(name=f"plane{p}", optical_channel=OpticalChannel(
            name="green", description="g", emission_lambda=510.0), description="V1", device=device,
            excitation_lambda=920.0, imaging_rate=31.0, indicator="GCaMP6", location="V1")
        ps = seg.create_plane_segmentation(description="rois", imaging_plane=plane, name=f"PlaneSegmentation{p}")
        for i in ids:
            ps.add_roi(image_mask=np.ones((4, 4)), id=i)
        for name in names:  # "raw" first: the session is "dff", first by name, not by order added
            data = rng.normal(0.2, 0.5, (len(t), n)) if "dff" in name else rng.normal(500, 50, (len(t), n))
            if name == "dff":
                data[40:60, 2] = np.nan
            conversion = 2.0 if name == "dff" else 1.0
            timing = {"timestamps": t} if p else {"rate": 31.0, "starting_time": 1.2}
            region = ps.create_roi_table_region(region=list(range(n)), description="all")
            dff.add_roi_response_series(RoiResponseSeries(name=name, data=data, rois=region, unit="n.a.",
                                                          conversion=conversion, **timing))
            if "dff" in name:
                traces.append({"t": t, "data": data, "conversion": conversion})
    save(nwb, path)
    bins = trial_bins(rows, range(4), image_span(onsets))
    stim = movie[on_screen(onsets, bins.centre)]
    wants = [expect(path, bins, stim, traces=tr, streams=[running], names=["running_speed"]) for tr in traces]
    return wants[0], (wants[1] if second_plane else None)


def test_dff_and_raw_of_one_roi_table_give_one_session_of_dff(tmp_path):
    want, _ = shared_rois(tmp_path / "suite2p.nwb", second_plane=False)
    imported = run_import([want.path], tmp_path / "out", options(responses="DfOverF"))
    s = imported.one
    assert s.meta["neuron_ids"] == [7, 8, 9, 10, 11]
    assert_same(s, want, traces=True)
    assert (want.dfs == 0).any() and (want.robs == 0).any()  # the fixture has uncovered and negative values
    assert any("raw" in w for w in imported.warnings + imported.reports[0]["warnings"]), imported.warnings


def test_series_on_two_roi_tables_give_one_session_each(tmp_path):
    want, want2 = shared_rois(tmp_path / "suite2p.nwb", second_plane=True)
    imported = run_import([want.path], tmp_path / "out", options(responses="DfOverF"))
    assert [s.id for s in imported.sessions] == ["suite2p-dff", "suite2p-plane2_dff"]
    assert imported.sessions[1].meta["neuron_ids"] == [20, 21, 22]
    assert_same(imported.sessions[0], want, traces=True)
    assert_same(imported.sessions[1], want2, traces=True)


# ----------------------------------------------------------------------------- h: other stimulus rates


def rate_movie(path, rate: float, seconds: float, rows: list[dict]) -> tuple[Expect, np.ndarray, np.ndarray]:
    """A movie timed by ``rate`` and ``starting_time`` 1 s, ``seconds`` long, and trials ``rows``."""
    rng = np.random.default_rng(8)
    movie = rng.integers(0, 256, (int(round(seconds * rate)), H, W), dtype=np.uint8)
    nwb = new_nwb(path.stem)
    nwb.add_stimulus(ImageSeries(name="movie", data=movie, unit="n.a.", rate=rate, starting_time=1.0))
    add_table(nwb, "trials", rows)
    end = max(r["stop_time"] for r in rows) + 0.5
    running = add_running(nwb, 0.8, end)
    spikes = units_over(nwb, rng, 0.9, end)
    save(nwb, path)
    onsets = 1.0 + np.arange(len(movie)) / rate
    bins = trial_bins(rows, range(len(rows)), image_span(onsets))
    want = expect(path, bins, movie[on_screen(onsets, bins.centre)], spikes, streams=[running], names=["running_speed"])
    return want, movie, onsets


SECONDS = [{"start_time": 1.0 + i, "stop_time": 2.0 + i, "split": s} for i, s in enumerate(["train", "val", "train", "test"])]


def sixty_hz(path):
    """A 60 Hz movie of 4 s, trials tiling it, and a row after it."""
    return rate_movie(path, 60.0, 4.0, SECONDS + [{"start_time": 6.0, "stop_time": 7.0, "split": "train"}])


def test_a_60hz_movie_at_30hz_keeps_the_frame_on_screen_at_each_centre_and_counts_the_dropped(tmp_path):
    """Each bin centre falls exactly on the onset of an odd frame (t0 + (2k + 1)/60): "at or
    before" keeps frames 1, 3, 5, ... as documented, whatever the rounding of the two sums."""
    want, movie, onsets = sixty_hz(tmp_path / "sixty.nwb")
    assert sorted(want.bins.rows) == [0, 1, 2, 3]  # the row after the movie has no bin
    np.testing.assert_array_equal(want.stim, movie[1::2])
    imported = run_import([want.path], tmp_path / "out", options())
    s = imported.one
    assert_same(s, want)
    dropped = len(movie) - len(np.unique(on_screen(onsets, want.bins.centre)))
    assert dropped == 120
    assert s.meta["provenance"]["stimulus_frames_dropped"] == dropped
    assert imported.reports[0]["done"]["stimulus_frames_dropped"] == dropped
    assert any("60 Hz" in w for w in imported.warnings), imported.warnings
    assert any("60 Hz" in w for w in imported.reports[0]["warnings"]), imported.reports[0]["warnings"]


def test_a_60hz_movie_resampled_by_mean_averages_the_two_frames_of_each_bin(tmp_path):
    want, movie, onsets = sixty_hz(tmp_path / "sixty.nwb")
    want.stim = mean_on_screen(onsets, movie, want.bins.start)
    np.testing.assert_allclose(want.stim, (movie[0::2].astype(float) + movie[1::2]) / 2)
    s = run_import([want.path], tmp_path / "out", options(resample="mean")).one
    assert_same(s, want)
    assert "stimulus_resampling" in s.meta["provenance"]


def test_a_15hz_movie_at_30hz_shows_each_frame_in_two_bins(tmp_path):
    want, movie, _ = rate_movie(tmp_path / "fifteen.nwb", 15.0, 4.0, SECONDS)
    np.testing.assert_array_equal(want.stim, np.repeat(movie, 2, axis=0))
    assert_same(run_import([want.path], tmp_path / "out", options()).one, want)


def test_a_29_97hz_movie_at_30hz_follows_the_frame_on_screen_over_40_seconds(tmp_path):
    """NTSC 29.97 Hz (within 2% of 30): the frame at each centre, a frame shown twice as the clocks drift."""
    rows = [{"start_time": 1.0 + 4 * i, "stop_time": 4.5 + 4 * i, "split": s}
            for i, s in enumerate(["train", "val", "test"] + ["train"] * 7)]
    want, movie, onsets = rate_movie(tmp_path / "ntsc.nwb", 29.97, 40.0, rows)
    gap = np.abs(want.bins.centre[:, None] - onsets[None, :]).min()
    assert gap > 1e-5, f"a bin centre {gap} s from an onset: no tie in this fixture"
    shown = on_screen(onsets, want.bins.centre)
    assert np.array_equal(shown, np.floor((want.bins.centre - 1.0) * 29.97).astype(int))
    assert (np.diff(shown) == 0).any()  # a frame in two bins: not "frame k in bin k"
    assert_same(run_import([want.path], tmp_path / "out", options()).one, want)


# ----------------------------------------------------------------------------- i: partial behaviour


def partial_behaviour(path) -> Expect:
    """A running speed recorded over the middle of the session only (conversion 0.5, offset 1),
    with one NaN sample (still covered) and a run of 10 (not), and a pupil area over all of it
    (25 Hz, timed by rate)."""
    rng = np.random.default_rng(9)
    movie = rng.integers(0, 256, (210, H, W), dtype=np.uint8)
    onsets = 1.0 + np.arange(210) / 30
    rows = [{"start_time": 1.0 + i, "stop_time": 1.8 + i, "split": s}
            for i, s in enumerate(["train", "train", "val", "train", "test", "train"])]
    nwb = new_nwb(path.stem)
    nwb.add_stimulus(ImageSeries(name="movie", data=movie, unit="n.a.", timestamps=onsets))
    add_table(nwb, "trials", rows)
    running = add_running(nwb, 2.4, 5.5, conversion=0.5, offset=1.0, holes=[(45, 46), (100, 110)])
    pupil = add_running(nwb, 0.5, 8.5, rate=25.0, name="pupil_area", seed=1, by_rate=True)
    spikes = units_over(nwb, rng, 0.9, 8.0)
    save(nwb, path)
    bins = trial_bins(rows, range(len(rows)), image_span(onsets))
    want = expect(path, bins, movie[on_screen(onsets, bins.centre)], spikes, streams=[running, pupil],
                  names=["running_speed", "pupil"])
    _, ok = trace_at(running["t"], running["data"], bins.centre)
    want.extra.update(covered=ok[:, 0], running=running)
    return want


def test_behaviour_over_part_of_the_session_masks_the_rest_without_edge_filling(tmp_path):
    want = partial_behaviour(tmp_path / "partial.nwb")
    covered, t = want.extra["covered"], want.extra["running"]["t"]
    first, last = covered.argmax(), len(covered) - 1 - covered[::-1].argmax()
    assert first > 0 and last < len(covered) - 1 and (~covered[first:last]).any()  # before, after, and the 10-NaN hole
    across = (want.bins.centre > t[44]) & (want.bins.centre < t[46])
    assert across.any() and covered[across].all()  # a single NaN sample still covers: its finite neighbours 1/30 s apart
    imported = run_import([want.path], tmp_path / "out", options(behavior=["running_speed", "pupil_area:pupil"]))
    s = imported.one
    assert_same(s, want)
    speed = np.asarray(s.behavior[:, 0], dtype=np.float64)
    assert np.allclose(speed[~covered], speed[covered].mean(), rtol=1e-5)  # the covered mean, not the edge sample
    edge = want.extra["running"]["data"][0] * 0.5 + 1.0
    assert not np.isclose(speed[0], edge)
    assert s.meta["provenance"]["bins_masked_for_behavior"] == int((~covered).sum())
    assert any("running_speed" in w for w in imported.reports[0]["warnings"]), imported.reports[0]["warnings"]
    assert any("running_speed" in w for w in imported.warnings), imported.warnings


def test_behaviour_over_part_of_the_session_is_refused_when_asked(tmp_path):
    want = partial_behaviour(tmp_path / "partial.nwb")
    message = refused([want.path], tmp_path / "out", options(behavior=["running_speed", "pupil_area:pupil"],
                                                              uncovered="refuse"))
    assert "running_speed" in message and "--uncovered" in message, message


# ----------------------------------------------------------------------------- j: geometry


def movie_file(path, data: np.ndarray) -> tuple[Expect, np.ndarray]:
    """A 30 Hz movie of ``data`` (stored as given), 3 trials; returns the expectation with the
    stored frames on screen (to be turned into what the session shows) and the frame indices."""
    rng = np.random.default_rng(10)
    onsets = 1.0 + np.arange(len(data)) / 30
    rows = [{"start_time": 1.0 + i, "stop_time": 1.8 + i, "split": s} for i, s in enumerate(["train", "val", "test"])]
    nwb = new_nwb(path.stem)
    nwb.add_stimulus(ImageSeries(name="movie", data=data, unit="n.a.", timestamps=onsets))
    add_table(nwb, "trials", rows)
    running = add_running(nwb, 0.8, 4.5)
    spikes = units_over(nwb, rng, 0.9, 4.2)
    save(nwb, path)
    bins = trial_bins(rows, range(3), image_span(onsets))
    shown = on_screen(onsets, bins.centre)
    return expect(path, bins, np.zeros((len(shown), H, W)), spikes, streams=[running], names=["running_speed"]), shown


def test_a_movie_stored_frame_x_y_is_refused_then_transposed_with_frame_axes(tmp_path):
    frames = np.random.default_rng(11).integers(0, 256, (100, H, W), dtype=np.uint8)
    want, shown = movie_file(tmp_path / "xy.nwb", np.ascontiguousarray(frames.transpose(0, 2, 1)))  # (frame, x, y)
    message = refused([want.path], tmp_path / "refused", options())
    assert "--frame-axes" in message, message
    want.stim = frames[shown].astype(np.float64)
    s = run_import([want.path], tmp_path / "out", options(frame_axes="x,y")).one
    assert_same(s, want)
    assert s.stim.dtype == np.uint8


@pytest.mark.parametrize("rows,cols", [(24, 40), (40, 24)], ids=["too_wide", "too_tall"])
def test_another_aspect_ratio_is_refused_then_cropped_centred_and_resized(tmp_path, rows, cols):
    frames = np.random.default_rng(12).integers(0, 256, (100, rows, cols), dtype=np.uint8)
    want, shown = movie_file(tmp_path / "wide.nwb", frames)
    message = refused([want.path], tmp_path / "refused", options())
    assert "--fit" in message and f"{rows}" in message and f"{cols}" in message, message
    top, left, h, w = fit_crop(rows, cols)
    assert (top, left, h, w) == ((0, 4, 24, 32) if rows == 24 else (11, 0, 18, 24))
    want.stim = area_resize(frames[shown, top:top + h, left:left + w], H, W)
    s = run_import([want.path], tmp_path / "out", options(fit="crop")).one
    assert_same(s, want)
    assert s.stim.dtype == np.float32


def test_a_smaller_movie_of_the_same_aspect_grows_bilinearly(tmp_path):
    frames = np.random.default_rng(13).integers(0, 256, (100, 6, 8), dtype=np.uint8)
    want, shown = movie_file(tmp_path / "small.nwb", frames)
    want.stim = bilinear_resize(frames[shown], H, W)
    s = run_import([want.path], tmp_path / "out", options()).one
    assert_same(s, want)


# ----------------------------------------------------------------------------- k: trials the import refuses


def test_overlapping_trials_are_refused(tmp_path):
    rows = [{"start_time": 1.0, "stop_time": 1.8}, {"start_time": 1.7, "stop_time": 2.5}, {"start_time": 3.0, "stop_time": 3.8}]
    want = simple(tmp_path / "overlap.nwb", rows=rows)
    message = refused([want.path], tmp_path / "out", options())
    assert "overlap" in message.lower() and "trials" in message, message


def test_rows_out_of_time_order_import_in_table_order(tmp_path):
    rows = [{"start_time": 3.0, "stop_time": 3.8}, {"start_time": 1.0, "stop_time": 1.8}, {"start_time": 2.0, "stop_time": 2.8}]
    want = simple(tmp_path / "unsorted.nwb", rows=rows)
    assert_same(run_import([want.path], tmp_path / "out", options()).one, want)


def test_two_trials_with_default_fractions_are_refused_naming_the_missing_split(tmp_path):
    want = simple(tmp_path / "two.nwb", n_trials=2, split=False)
    message = refused([want.path], tmp_path / "out", options(split_column=None))
    assert "no train trial" in message or "no val" in message, message


# ----------------------------------------------------------------------------- l: AllenSDK Neuropixels


def neuropixels(path) -> tuple[Expect, dict]:
    """The AllenSDK Neuropixels layout: the movie a .npy beside the file, a presentation table
    (start_time, stop_time, frame as float; one row per movie frame, photodiode-jittered, -1 for
    one frame) with 1 s gaps between repeats, trials from another table reaching into the gaps,
    spikes in units (one observed over the first two trials only, one silent in the trials)."""
    rng = np.random.default_rng(14)
    movie = rng.integers(0, 256, (MOVIE, H, W), dtype=np.uint8)
    movie_path = path.with_name("natural_movie_one.npy")
    np.save(movie_path, movie)
    starts, stops, frames, blocks = [], [], [], []
    for r, split in enumerate(["train", "train", "val", "test"]):
        t = 2.0 + 2.0 * r
        s = t + np.arange(MOVIE) / 30 + rng.uniform(-0.25e-3, 0.25e-3, MOVIE)
        starts += s.tolist()
        stops += s[1:].tolist() + [t + MOVIE / 30 + rng.uniform(-0.25e-3, 0.25e-3)]
        frames += [-1.0 if (r == 1 and k == 15) else float(k) for k in range(MOVIE)]
        blocks.append({"start_time": t - 0.2, "stop_time": t + MOVIE / 30 + 0.2, "split": split})
    presentations = [{"start_time": a, "stop_time": b, "frame": f} for a, b, f in zip(starts, stops, frames)]

    nwb = new_nwb(path.stem)
    add_table(nwb, "natural_movie_one_presentations", presentations)
    add_table(nwb, "movie_blocks", blocks)
    running = add_running(nwb, 1.0, 10.0)
    spikes = [poisson_spikes(rng, 1.5, 9.5, 20.0) for _ in range(3)]
    spikes.append(np.sort(np.concatenate([rng.uniform(t + 1.3, t + 1.7, 3) for t in (2.0, 4.0, 6.0)])))  # silent
    observed = [None, None, [[1.0, 5.5]], None]  # unit 12 observed over the first two blocks (they end at 5.2)
    add_units(nwb, spikes, [10, 11, 12, 99], obs_intervals=[o or [[0.0, 20.0]] for o in observed])
    save(nwb, path)

    span = (starts[0], stops[-1])
    bins = trial_bins(blocks, range(4), span)
    shown = presented(starts, stops, frames, bins.centre)
    want = expect(path, bins, frames_of(movie, shown), spikes, streams=[running], names=["running_speed"],
                  obs_intervals=observed)
    want.extra.update(blank_bins=int((shown < 0).sum()), shown=shown)
    return want, {"stimulus_file": movie_path, "presentations": "natural_movie_one_presentations", "trials": "movie_blocks"}


def test_allensdk_neuropixels_presentation_table_with_gaps_and_a_movie_file(tmp_path):
    want, layout = neuropixels(tmp_path / "ecephys.nwb")
    shown = want.extra["shown"]
    assert want.extra["blank_bins"] > 0 and (shown == 15).any() and (want.dfs[:, 2] == 0).any()
    imported = run_import([want.path], tmp_path / "out", options(**layout))
    s = imported.one
    assert s.meta["neuron_ids"] == [10, 11, 12, 99]
    assert_same(s, want)
    assert s.meta["provenance"]["stimulus_bins_blank"] == want.extra["blank_bins"]
    silent = imported.reports[0]["session"].get("silent_neurons")
    assert silent is not None and 99 in [int(x) for x in silent], imported.reports[0]["session"]
    assert any("99" in w for w in imported.warnings), imported.warnings


# ----------------------------------------------------------------------------- m: no behaviour


def test_no_behaviour_at_all_gives_a_session_without_behaviour_columns(tmp_path):
    want = simple(tmp_path / "nobehaviour.nwb", behaviour=False)
    s = run_import([want.path], tmp_path / "out", options(behavior=[], eye=None)).one
    assert s.behavior.shape == (len(want.bins.trial), 0) and s.behavior_names == []
    assert_same(s, want)
