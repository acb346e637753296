"""Most exciting inputs: on the hand-built encoder the linear unit's MEI is its filter, the starts
agree and the contrast is the one asked for; on a small convnet the patch the MEI is optimised on
gives the full frame's rates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from units import CELL, FRAME_RATE, H, W, gabor_units

from neuroenc.analysis.insilico.mei import Objective, gabor_correlations, optimise, patches, run
from neuroenc.analysis.insilico.probe import Probe
from neuroenc.data.datamodule import DatasetInfo
from neuroenc.data.synthetic import gabor
from neuroenc.model.convnet.resnet import ResNet
from neuroenc.model.encoder import Encoder
from neuroenc.model.frontend import LearnableTemporalFrontend
from neuroenc.model.modulator import ConvGRUModulator
from neuroenc.model.readout import GaussianReadout
from neuroenc.model.shifter import MLPShifter
from neuroenc.trained import CheckpointRecord, TrainedEncoder

FILTER = gabor(H, W, CELL["x"], CELL["y"], CELL["sigma"], CELL["theta"], CELL["wavelength"], CELL["phase"])
FRAMES = 8  # the units' temporal kernel has 4 taps


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture(scope="module")
def units_meis():
    probe = Probe(gabor_units(), "s", np.array([0, 1]), FRAME_RATE, (H, W), window=16)
    return optimise(probe, frames=FRAMES, starts=3)


def test_linear_unit_mei_is_its_filter(units_meis):
    assert correlation(units_meis.spatial[0], FILTER) >= 0.9
    # its frame is the temporal kernel's peak, 2 frames before the last
    assert units_meis.peak_lag[0] == 2


def test_linear_unit_starts_agree(units_meis):
    assert units_meis.agreement[0] >= 0.95
    best = units_meis.stimuli[0, units_meis.best[0]]
    for start in units_meis.stimuli[0]:
        assert correlation(start, best) >= 0.95


def test_mei_contrast_is_the_norm_constraint(units_meis):
    h, w = units_meis.patches.size
    assert (h, w) == (H, W)  # the units' filters span the frame: no patch
    norms = np.linalg.norm(units_meis.stimuli.reshape(*units_meis.stimuli.shape[:2], -1), axis=-1)
    np.testing.assert_allclose(norms, 0.1 * math.sqrt(FRAMES * h * w), rtol=1e-4)  # the default contrast


def test_mei_excites_more_than_white_noise(units_meis):
    assert (units_meis.rates.max(1) > 2 * units_meis.noise_rates.mean(1)).all()


def test_gabor_correlations_signed_and_best_phase():
    truth = [dict(CELL)] * 3
    quadrature = gabor(H, W, CELL["x"], CELL["y"], CELL["sigma"], CELL["theta"], CELL["wavelength"], math.pi / 2)
    signed, best = gabor_correlations(np.stack([FILTER, -FILTER, quadrature]), truth)
    np.testing.assert_allclose(signed[:2], [1.0, -1.0], atol=1e-9)
    assert abs(signed[2]) < 0.05
    np.testing.assert_allclose(best, 1.0, atol=1e-6)  # 36 phases: the quadrature phase is among them


def local_encoder(h: int = 32, w: int = 40) -> TrainedEncoder:
    """The default model's architecture, smaller and untrained: a convnet with local receptive
    fields, a ConvGRU, a shifter that moves the readouts at fixation, three neurons."""
    torch.manual_seed(0)
    frontend = LearnableTemporalFrontend(1, 3, 6, "gaussian_derivatives", anti_aliasing=False, bias=True)
    convnet = ResNet(frontend.out_channels, [{"out_channels": 6, "kernel_size": [3, 5, 5], "stride": 2},
                                             {"out_channels": 6, "kernel_size": [1, 3, 3]}])
    modulator = ConvGRUModulator(6, 2, hidden_dim=6, beh_emb_dim=2, kernel_size=1)
    readout = GaussianReadout(6, 3, init_std=0.01, nonlinearity="softplus", init_positions="uniform", feature_init_std=1.0)
    shifter = MLPShifter(["eye_x", "eye_y"], ["s"], ["eye_x", "eye_y"], [4], shared=False, required=True)
    with torch.no_grad():
        readout.mean.copy_(torch.tensor([[-0.9, -0.8], [0.13, 0.07], [0.85, 0.6]]))  # near edges and inside
        shifter.mlps["s"][-1].bias.copy_(torch.tensor([1.3, -0.7]))  # px, at fixation too
    encoder = Encoder(frontend, convnet, modulator, {"s": readout}, shifter=shifter, frame_shape=(h, w))
    info = DatasetInfo(session_ids=["s"], n_neurons={"s": 3}, mean_rate={"s": [0.5] * 3}, behavior_dim=2,
                       in_channels=1, frame_shape=(h, w), has_oracle=False, behavior_names=["eye_x", "eye_y"])
    config = OmegaConf.create({"data": {"window": 16, "burn_in": 4}})
    return TrainedEncoder(encoder, config, info, CheckpointRecord("untrained", None, None, None))


def test_patch_rates_match_the_full_frame():
    probe = Probe(local_encoder(), "s", np.array([0, 1, 2]), FRAME_RATE, (32, 40), window=16)
    where = patches(probe, frames=8)
    assert where.target is not None and where.size[0] < 32 and where.size[1] < 40
    stim = torch.randn(3, 8, *where.size, generator=torch.Generator().manual_seed(1))
    assert Objective(probe, where).check(stim, torch.arange(3)) < 1e-5


def test_run_columns_summary_and_figure(tmp_path):
    probe = Probe(gabor_units(), "s", np.array([0, 1]), FRAME_RATE, (H, W), window=16,
                  truth=[dict(CELL, type="simple"), dict(CELL, type="complex")])
    result = run(probe, frames=6, steps=4, starts=2)
    for name in ("mei_rate", "mei_activation_ratio", "mei_start_agreement", "mei_peak_lag_frames", "mei_gabor_corr",
                 "mei_gabor_corr_best_phase"):
        assert result.columns[name].shape == (2,), name
    assert result.summary["mei_simple_cells"] == 1
    assert result.summary["mei_gabor_corr_median"] == pytest.approx(result.columns["mei_gabor_corr"][0])
    assert result.plot is not None
    result.plot(tmp_path / "mei.png")
    assert (tmp_path / "mei.png").stat().st_size > 0
