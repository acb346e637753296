"""Health figures: the stimulus-shuffled control, the behaviour-only reference and the warning."""

import numpy as np
import pytest
import torch

from neuroenc.data.datamodule import SyntheticDataModule
from neuroenc.data.windows import WindowDataset
from neuroenc.training import health

SIM = dict(seed=0, num_sessions=2, neurons_min=6, neurons_max=8, trials_train=6, trials_val=3, trials_test=1,
           trial_frames=100, height=12, width=16)


def datamodule(tmp_path) -> SyntheticDataModule:
    dm = SyntheticDataModule(str(tmp_path), SIM, window=40, burn_in=10, batch_size=4, num_workers=0, seed=0,
                             eye_px_per_unit=1.0, allow_no_validation=False)
    dm.setup()
    return dm


def test_shuffled_windows_permute_within_each_session():
    sessions = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    source = health.shuffled_windows(sessions, seed=3)
    assert sorted(source.tolist()) == list(range(len(sessions)))
    np.testing.assert_array_equal(sessions[source], sessions)
    assert np.all((source != np.arange(len(sessions))) | (sessions == 2))  # all but the lone window move
    np.testing.assert_array_equal(source, health.shuffled_windows(sessions, seed=3))


def test_shuffled_dataset_takes_only_the_stimulus_from_another_window(tmp_path):
    dm = datamodule(tmp_path)
    windows = dm.windows["val"]
    dataset = WindowDataset(dm.sessions, windows, dm.window)
    source = health.shuffled_windows(windows[:, 0], seed=0)
    shuffled = health.StimulusFrom(dataset, source)
    i = int(np.flatnonzero(source != np.arange(len(source)))[0])
    torch.testing.assert_close(shuffled[i]["stim"], dataset[int(source[i])]["stim"])
    for key in ("behavior", "robs", "mask", "rates"):
        torch.testing.assert_close(shuffled[i][key], dataset[i][key])


def test_behavior_only_rates_follow_the_simulators_gain_and_score_between_null_and_oracle(tmp_path):
    dm = datamodule(tmp_path)
    session = dm.sessions[0]
    rates = health.behavior_only_rates(session)
    assert rates.shape == (session.n_frames, session.n_neurons)
    train = session.split_frames("train")
    valid = session.dfs[train] > 0
    np.testing.assert_allclose(np.where(valid, rates[train], 0).sum(0), np.where(valid, session.robs[train], 0).sum(0),
                               rtol=1e-6)  # scaled to each neuron's training mean
    # the true rates are the behaviour gain times a stimulus drive: they correlate with the gain
    corr = [np.corrcoef(rates[:, i], session.rates[:, i])[0, 1] for i in range(session.n_neurons)]
    assert np.mean(corr) > 0
    assert -0.1 < health.behavior_only_score(dm) < 0.5


def test_warning_when_the_trained_score_is_under_twice_the_shuffled_one():
    assert health.stimulus_warning({"best_val_bps_overall": 0.07, "val_bps_stimulus_shuffled": 0.06})
    assert health.stimulus_warning({"best_val_bps_overall": 0.05, "val_bps_stimulus_shuffled": -0.01}) is None
    assert health.stimulus_warning({"best_val_bps_overall": 0.5, "val_bps_stimulus_shuffled": 0.1}) is None
    assert health.stimulus_warning({"best_val_bps_overall": 0.5, "val_bps_stimulus_shuffled": None}) is None


def test_shifter_response_reads_the_raw_gaze_and_scores_the_shift_against_it(tmp_path):
    from types import SimpleNamespace

    from neuroenc.model.shifter import MLPShifter

    dm = datamodule(tmp_path)
    ids = [s.id for s in dm.sessions]
    names = dm.sessions[0].behavior_names
    shifter = MLPShifter(names, ids, columns=["eye_x", "eye_y"], hidden=[], shared=False, required=True)
    for s in dm.sessions:  # a linear shifter that undoes the standardisation: shift = the raw gaze
        st = s.stats()
        eye = [names.index("eye_x"), names.index("eye_y")]
        last = shifter.mlps[s.id][-1]
        last.weight.data = torch.diag(torch.tensor([st["behavior_std"][i] for i in eye], dtype=torch.float32))
        last.bias.data = torch.tensor([st["behavior_mean"][i] for i in eye], dtype=torch.float32)
    model = SimpleNamespace(shifter=shifter)
    response = health.shifter_response(model, dm.sessions, "val", eye_px_per_unit=1.0)
    for s in dm.sessions:
        frames = s.split_frames("val")
        np.testing.assert_allclose(response[s.id]["gaze"], s.behavior[frames][:, eye])
        np.testing.assert_allclose(response[s.id]["shift"], response[s.id]["gaze"], atol=1e-4)
    summary = health.shifter_summary(response, 1.0)
    assert summary["slope_x"] == pytest.approx(1, abs=1e-4) and summary["slope_y"] == pytest.approx(1, abs=1e-4)
    assert summary["rms_error_px"] < 1e-4 and summary["gaze_in_px"]

    for s in dm.sessions:  # half the gaze, at 2 px per data unit: a slope of 1/4 px per px, off by 3/4 of it
        shifter.mlps[s.id][-1].weight.data *= 0.5
        shifter.mlps[s.id][-1].bias.data *= 0.5
    response = health.shifter_response(model, dm.sessions, "val", eye_px_per_unit=2.0)
    gaze = np.concatenate([r["gaze"] for r in response.values()])
    summary = health.shifter_summary(response, 2.0)
    assert summary["slope_x"] == pytest.approx(0.25, abs=1e-4) and summary["slope_y"] == pytest.approx(0.25, abs=1e-4)
    assert summary["rms_error_px"] == pytest.approx(np.sqrt(np.mean(np.sum((0.75 * gaze) ** 2, 1))), rel=1e-3)
    assert health.shifter_summary(response, None)["rms_error_px"] is None
    assert health.shifter_response(SimpleNamespace(shifter=None), dm.sessions, "val", 1.0) is None


def known_encoder(shifter: str = "shifter=none"):
    """The micro model built without data, stride 2 in space so that grid and pixels differ."""
    from conftest import MICRO_DATA, compose_config

    from neuroenc.training.build import build_encoder_without_data

    cfg = compose_config([*MICRO_DATA, "frontend.num_channels=2", "frontend.kernel_size=4",
                          "convnet.stages=[{out_channels:4,kernel_size:[2,3,3],stride:2}]", shifter])
    encoder, info, _, _ = build_encoder_without_data(cfg)
    return encoder, info


def test_a_readout_placed_at_a_known_pixel_reads_there_and_is_that_far_from_a_known_centre():
    encoder, info = known_encoder()
    session = info.session_ids[0]
    n = info.n_neurons[session]
    pixels = torch.tensor([[3.0 + k % 5, 2.0 + k % 4] for k in range(n)], dtype=torch.float64)
    with torch.no_grad():
        encoder.readout(session).mean.copy_(encoder.grid.to_grid(pixels).to(encoder.readout(session).mean.dtype))
    got = health.readout_centers_px(encoder, session, info.behavior_dim)
    np.testing.assert_allclose(got.numpy(), pixels.numpy(), atol=1e-5)
    truth = {session: (pixels.numpy() + [[3.0, 4.0]]).tolist()}  # every true centre 5 px away
    np.testing.assert_allclose(health.rf_distances_px(encoder, truth, info.behavior_dim), 5.0, atol=1e-5)


def test_a_known_shifter_offset_moves_the_readout_centres_by_that_many_pixels():
    encoder, info = known_encoder("shifter=mlp")
    session = info.session_ids[0]
    before = health.readout_centers_px(encoder, session, info.behavior_dim)  # the shifter starts at zero shift
    last = encoder.shifter.mlps[session][-1]
    with torch.no_grad():  # a constant shift of (+2, -1) px, whatever the gaze
        last.weight.zero_()
        last.bias.copy_(torch.tensor([2.0, -1.0]))
    after = health.readout_centers_px(encoder, session, info.behavior_dim)
    np.testing.assert_allclose((after - before).numpy(), [[2.0, -1.0]] * len(before), atol=1e-5)


def test_the_health_figures_are_scored_on_the_best_checkpoint_not_the_weights_training_ended_with(micro_run):
    """health_figures loads the best checkpoint into the module before scoring: with the module's
    weights made to differ from the best ones (as the last epoch's may), the shuffled score is the
    one the run recorded for its best checkpoint, and the module ends holding the best weights."""
    from types import SimpleNamespace

    from conftest import MICRO_RUN, compose_config

    from neuroenc.training.build import build_datamodule, build_module
    from neuroenc.training.loading import read_checkpoint
    from neuroenc.training.run import health_figures

    _, metrics = micro_run
    cfg = compose_config(MICRO_RUN)
    dm = build_datamodule(cfg)
    dm.prepare_data()
    dm.setup()
    module = build_module(cfg, dm.info)
    best = read_checkpoint(metrics["best_checkpoint"])["state_dict"]
    module.load_state_dict(best)
    with torch.no_grad():  # weights training might have ended with: not the best ones
        for p in module.parameters():
            p.add_(0.5 * torch.randn_like(p))
    shuffled_from_these = health.stimulus_shuffled_score(module, dm, cfg.seed)
    figures = health_figures(cfg, module, dm, SimpleNamespace(best_model_path=metrics["best_checkpoint"]))
    assert figures["val_bps_stimulus_shuffled"] == metrics["val_bps_stimulus_shuffled"]
    assert figures["val_bps_stimulus_shuffled"] != shuffled_from_these
    for k, v in module.state_dict().items():
        assert torch.equal(v, best[k]), k
