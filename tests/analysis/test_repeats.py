"""Repeated videos: the simulator records them, StimulusHasher finds them, evaluation scores them
(correlation to average, FEV, oracle correlation) and the true rates check the figures."""

import csv
import json

import numpy as np
import pytest
from conftest import MICRO, compose_config

from neuroenc.data.repeats import StimulusHasher, repeat_groups, session_repeat_scores, trial_stimulus
from neuroenc.data.sessions import open_sessions, write_session
from neuroenc.data.synthetic import SimulationParams, ensure_simulated, simulate_session

REPEATED = SimulationParams(num_sessions=1, neurons_min=12, neurons_max=12, trials_train=4, trials_val=3,
                            trials_test=1, trial_frames=120, height=12, width=16, repeats=6)


def test_simulated_repeats_show_one_movie_with_their_own_behaviour_and_spikes():
    d = simulate_session(REPEATED, 0)
    stimulus = d["extra_meta"]["trial_stimulus"]
    assert len(stimulus) == 4 + (3 + 1) * 6 == len(np.unique(d["trial"]))
    for split, movies, shows in (("train", 4, 1), ("val", 3, 6), ("test", 1, 6)):
        ids = [stimulus[str(t)] for t in d["splits"][split]]
        assert len(set(ids)) == movies and all(ids.count(m) == shows for m in set(ids))
    f = REPEATED.trial_frames
    val = sorted(d["splits"]["val"], key=lambda t: stimulus[str(t)])[:2]  # two showings of one movie
    a, b = (slice(t * f, (t + 1) * f) for t in val)
    np.testing.assert_array_equal(d["stim"][a], d["stim"][b])
    assert not np.array_equal(d["behavior"][a], d["behavior"][b])
    assert not np.array_equal(d["robs"][a], d["robs"][b]) and not np.array_equal(d["rates"][a], d["rates"][b])
    assert "trial_stimulus" not in simulate_session(SimulationParams(num_sessions=1, trial_frames=60, height=12,
                                                                     width=16), 0)["extra_meta"]


def test_repeat_scores_of_the_true_rates_on_simulated_repeats(tmp_path):
    """The repeat-averaged true rates explain about all the explainable variance (FEV near 1) and
    correlate with the average response at least as well as the data's own oracle."""
    s = open_sessions(ensure_simulated(tmp_path, REPEATED))[0]
    groups = repeat_groups(s, "val")
    assert [len(runs) for _, runs in groups] == [6, 6, 6]
    r = session_repeat_scores(s, "val")
    truth = r["true_rates"]
    active = np.asarray(s.stats()["mean_rate"]) > 0.1
    assert abs(np.nanmedian(truth["fev"][active]) - 1) < 0.15, truth["fev"]
    assert np.nanmean(truth["corr_to_average"]) > np.nanmean(r["scores"]["oracle_corr"])
    assert set(r["scores"]) == {"oracle_corr", "explainable_var_fraction"}
    assert np.all(r["scores"]["explainable_var_fraction"][active] > 0)


def test_stimulus_hasher_gives_identical_trials_one_id_and_leaves_single_showings_out():
    rng = np.random.default_rng(0)
    movie, other = rng.integers(0, 255, (2, 30, 6, 8), dtype=np.uint8)
    h = StimulusHasher()
    h.add(0, movie)
    h.add(1, other)
    h.add(2, movie[:10])
    h.add(2, movie[10:])  # in pieces
    h.add(3, movie.astype(np.float16))  # other values after conversion: another video
    got = h.trial_stimulus()
    assert set(got) == {"0", "2"} and got["0"] == got["2"]


def test_trial_stimulus_that_is_not_a_mapping_of_trials_is_refused_naming_the_key(tmp_path):
    d = simulate_session(REPEATED, 0)
    d["extra_meta"]["trial_stimulus"] = {"first": "movie001"}
    write_session(tmp_path / "s", **d)
    with pytest.raises(ValueError, match=r"meta.json: trial_stimulus: entry 'first'"):
        trial_stimulus(open_sessions(tmp_path)[0])


@pytest.fixture(scope="module")
def repeated_run(tmp_path_factory, data_cache):
    """A MICRO run on simulated data whose val and test movies are shown 4 times, laid out as job 0
    of a sweep."""
    from neuroenc.training.run import train

    sweep = tmp_path_factory.mktemp("sweep")
    job = sweep / "0_repeats"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("- data.simulation.repeats=4\n")
    cfg = compose_config([*MICRO, "data.simulation.repeats=4", "data.simulation.trials_val=2",
                          "trainer.max_epochs=2", "optim.lr=0.01", "optim.warmup_steps=2", "logger.csv=null"])
    return sweep, train(cfg, job)


def test_evaluate_reports_repeat_scores_per_neuron_next_to_bits_per_spike(repeated_run, tmp_path):
    from neuroenc.analysis.evaluate import evaluate

    _, metrics = repeated_run
    summary = evaluate(metrics["best_checkpoint"], tmp_path / "eval", accelerator="cpu")
    for split, videos in (("val", 2), ("test", 1)):
        rep = summary["splits"][split]["repeats"]
        assert rep["videos"] == 2 * videos and rep["trials"] == 2 * videos * 4  # two sessions
        assert rep["true_rates"]["fev_neuron_mean"] > rep["fev_neuron_mean"]
        assert -1 <= rep["oracle_corr_neuron_mean"] <= 1
    assert summary["splits"]["val"]["bps_overall"] == metrics["best_val_bps_overall"]
    rows = list(csv.DictReader(open(tmp_path / "eval" / "neurons.csv")))
    for key in ("val_corr_to_average", "val_fev", "val_oracle_corr", "test_fev", "val_bps"):
        values = np.array([float(r[key]) for r in rows])
        assert np.isfinite(values).sum() > len(rows) // 2, key


def test_sweep_report_shows_the_repeat_scores_of_each_config(repeated_run, tmp_path):
    from neuroenc.analysis.evaluate import evaluate
    from neuroenc.analysis.report import write_report

    sweep, metrics = repeated_run
    [row] = write_report(sweep)
    val = evaluate(metrics["best_checkpoint"], tmp_path / "eval", splits=("val",), accelerator="cpu")["splits"]["val"]
    for key in ("corr_to_average", "fev", "oracle_corr"):
        assert row[f"val_{key}"] == pytest.approx(val["repeats"][f"{key}_neuron_mean"], rel=1e-9)
    assert "val_fev" in (sweep / "report.md").read_text()
    cached = json.loads((sweep / "0_repeats" / "repeat_scores.json").read_text())
    neurons = list(csv.DictReader(open(sweep / "0_repeats" / "per_neuron.csv")))
    assert len(cached["per_neuron"]["val_fev"]) == len(neurons)  # one value per neuron
