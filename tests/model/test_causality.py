"""Changing the stimulus or behaviour at frame t leaves every prediction before t unchanged."""

import pytest
import torch
from parts import (
    ConvGRUModulator,
    FrameGazeCorrection,
    GaussianReadout,
    Hybrid,
    LearnableTemporalFrontend,
    MLPShifter,
    ViViT,
)

from neuroenc.model.convnet.resnet import ResNet
from neuroenc.model.encoder import Encoder, step_ends
from neuroenc.model.frontend import PixelFrontend
from neuroenc.model.modulator import NoModulator

T, H, W, NB = 24, 12, 20, 4
STAGES = [
    {"out_channels": 6, "kernel_size": [3, 3, 3], "stride": 2},
    {"out_channels": 6, "kernel_size": [3, 3, 3], "stride": 2, "pool": "aablur"},
    {"out_channels": 8, "kernel_size": [2, 3, 3], "dilation": 2},
]

FRONTENDS = {
    "learnable_temporal": lambda: LearnableTemporalFrontend(1, 3, 6),
    "learnable_temporal_aa": lambda: LearnableTemporalFrontend(1, 3, 6, anti_aliasing=True),
    "learnable_temporal_aa_rect": lambda: LearnableTemporalFrontend(1, 3, 6, anti_aliasing=True, aa_window="rect"),
    "none": lambda: PixelFrontend(1),
}
TRANSFORMER = dict(embedding_dim=8, num_heads=2, ff_dim=16, num_temporal_blocks=2)
CONVNETS = {
    "resnet": lambda c: ResNet(c, STAGES),
    # overlapping tubelets with past padding: tubelets end at frames 3, 7, ..., 23
    "vivit": lambda c: ViViT(c, {"kernel_size": [6, 3, 3], "stride": [4, 3, 3], "padding": [2, 1, 0]},
                             num_spatial_blocks=1, num_registers=1, **TRANSFORMER),
    "hybrid": lambda c: Hybrid(c, STAGES[:2], **TRANSFORMER),
    # keeps frames 0, 2, 4, ... after stage 0: the modulator runs on 12 steps
    "resnet_temporal_stride": lambda c: ResNet(c, [{**STAGES[0], "temporal_stride": 2}, *STAGES[1:]]),
    # experiment=resnet_small_gru_aa at 120 Hz: the reference analysis's one-convolution stages, 3x5x5 with time
    # halved in stage 0, aablur in stage 1, dilation 2 in time and space in stage 2
    "resnet_seed": lambda c: ResNet(c, [
        {"out_channels": 6, "kernel_size": [3, 5, 5], "stride": 2, "temporal_stride": 2, "convs": 1},
        {"out_channels": 6, "kernel_size": [3, 5, 5], "stride": 2, "pool": "aablur", "convs": 1},
        {"out_channels": 8, "kernel_size": [3, 3, 3], "dilation": 2, "temporal_dilation": 2, "convs": 1}]),
}
MODULATORS = {
    "convgru": lambda c: ConvGRUModulator(c, NB, hidden_dim=5, beh_emb_dim=3),
    "none": lambda c: NoModulator(c, NB),
}


def make_encoder(frontend, convnet, modulator, gaze: bool = False):
    """An encoder with a shifter on the eye columns (its untrained last layer given weights, so
    the eye position does move the readouts) and, with ``gaze``, the per-frame gaze correction."""
    torch.manual_seed(0)
    f = FRONTENDS[frontend]()
    c = CONVNETS[convnet](f.out_channels)
    m = MODULATORS[modulator](c.out_channels)
    readout = GaussianReadout(m.out_channels, 7, init_positions="uniform")
    torch.nn.init.normal_(readout.features)
    shifter = MLPShifter(["eye_x", "eye_y", "running", "pupil"], ["s"])
    torch.nn.init.normal_(shifter.mlps["s"][-1].weight)
    correction = FrameGazeCorrection(["eye_x", "eye_y", "running", "pupil"], ["s"]) if gaze else None
    return Encoder(f, c, m, {"s": readout}, shifter=shifter, frame_shape=(H, W), gaze=correction).eval()


def assert_causal(encoder, t0: int, what: str = "stim"):
    """In training mode too: each forward pass draws the same readout noise (seeded), and the
    norms' batch statistics are per frame."""
    """Frames before ``t0`` are unchanged; later ones change if any convnet step reads frame ``t0``
    (with a temporal stride, the behaviour of frames between step ends is never read, and the
    stimulus of frames after the last step end only reaches the next window)."""
    ends = step_ends(encoder.convnet, T)
    expect_change_after = bool((ends >= t0).any()) if what == "stim" else t0 in ends.tolist()
    torch.manual_seed(1)
    stim, beh = torch.randn(2, 1, T, H, W), torch.randn(2, T, NB)
    with torch.no_grad():
        torch.manual_seed(2)
        before = encoder(stim, beh, "s")
        if what == "stim":
            stim = stim.clone()
            stim[:, :, t0] += 5 * torch.randn_like(stim[:, :, t0])
        else:
            beh = beh.clone()
            beh[:, t0] += 5.0
        torch.manual_seed(2)
        after = encoder(stim, beh, "s")
    torch.testing.assert_close(after[:, :t0], before[:, :t0], rtol=0, atol=0)
    if expect_change_after:
        assert (after[:, t0:] - before[:, t0:]).abs().max() > 1e-6, "the change had no effect at or after t0"


@pytest.mark.parametrize("modulator", MODULATORS)
@pytest.mark.parametrize("convnet", CONVNETS)
@pytest.mark.parametrize("frontend", FRONTENDS)
@pytest.mark.parametrize("t0", [1, T // 2, T - 1])
def test_stimulus_change_at_t_leaves_earlier_predictions_unchanged(frontend, convnet, modulator, t0):
    assert_causal(make_encoder(frontend, convnet, modulator), t0, what="stim")


@pytest.mark.parametrize("convnet", ["resnet", "vivit", "resnet_temporal_stride", "resnet_seed"])
@pytest.mark.parametrize("t0", [1, T // 2, T - 2, T - 1])
def test_behaviour_change_at_t_leaves_earlier_predictions_unchanged(convnet, t0):
    assert_causal(make_encoder("learnable_temporal", convnet, "convgru"), t0, what="behavior")


@pytest.mark.parametrize("convnet", ["resnet", "resnet_temporal_stride"])
@pytest.mark.parametrize("what", ["stim", "behavior"])
@pytest.mark.parametrize("t0", [1, T // 2])
def test_per_frame_gaze_correction_keeps_earlier_predictions_unchanged(convnet, what, t0):
    assert_causal(make_encoder("learnable_temporal", convnet, "convgru", gaze=True), t0, what=what)


@pytest.mark.parametrize("convnet", CONVNETS)
@pytest.mark.parametrize("what", ["stim", "behavior"])
def test_causal_in_training_mode_with_batch_statistics(convnet, what):
    assert_causal(make_encoder("learnable_temporal", convnet, "convgru").train(), T // 2, what=what)


def test_temporal_stride_runs_the_modulator_at_the_cores_rate():
    encoder = make_encoder("learnable_temporal", "resnet_temporal_stride", "convgru")
    assert step_ends(encoder.convnet, T).tolist() == list(range(0, T, 2))
    stim, beh = torch.randn(2, 1, T, H, W), torch.randn(2, T, NB)
    with torch.no_grad():
        convnet = encoder.convnet(encoder.frontend(stim))
        frames = encoder.features(stim, beh)
    assert convnet.shape[2] == T // 2 and frames.shape[2] == T
    torch.testing.assert_close(frames[:, :, 1::2], frames[:, :, 0::2], rtol=0, atol=0)  # frame 2i+1 reuses step i
