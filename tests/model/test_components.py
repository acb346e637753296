"""Output shapes of each component, residual alignment in time, anti-aliasing, readout init."""

import math

import numpy as np
import pytest
import torch

from neuroenc.model.convnet.resnet import ResidualStage, ResNet
from neuroenc.model.frontend import LearnableTemporalFrontend, PixelFrontend, gaussian_derivative_bank
from neuroenc.model.modulator import ConvGRUModulator, NoModulator
from neuroenc.model.readout import GaussianReadout


def test_frontend_shapes():
    x = torch.randn(2, 1, 30, 9, 11)
    assert LearnableTemporalFrontend(1, 4, 8)(x).shape == (2, 4, 30, 9, 11)
    assert LearnableTemporalFrontend(2, 3, 5)(torch.randn(2, 2, 30, 9, 11)).shape == (2, 6, 30, 9, 11)
    assert PixelFrontend(1)(x).shape == x.shape


def test_frontend_applies_each_filter_causally_to_every_pixel():
    fe = LearnableTemporalFrontend(1, 2, 4, bias=False)
    x = torch.zeros(1, 1, 10, 3, 3)
    x[0, 0, 5, 1, 2] = 1.0  # an impulse at frame 5, one pixel
    y = fe(x).detach()
    k = fe.kernels().detach()
    # impulse response: frame 5 + lag gets tap (kernel_size - 1 - lag), index 0 being the oldest tap
    for lag in range(4):
        torch.testing.assert_close(y[0, :, 5 + lag, 1, 2], k[:, 3 - lag])
    assert y[0, :, :5].abs().sum() == 0 and y[0, :, :, 0].abs().sum() == 0


def test_gaussian_derivative_init_is_unit_norm():
    bank = gaussian_derivative_bank(6, 16)
    torch.testing.assert_close(bank.norm(dim=1), torch.ones(6))


def nyquist_fraction(k: np.ndarray) -> float:
    """Fraction of a kernel's energy in the top quarter of the frequency band."""
    p = np.abs(np.fft.rfft(k, 256)) ** 2
    return float(p[int(0.75 * len(p)) :].sum() / p.sum())


def test_anti_aliasing_passes_little_energy_near_nyquist():
    torch.manual_seed(0)
    plain = LearnableTemporalFrontend(1, 8, 16, init="random")
    aa = LearnableTemporalFrontend(1, 8, 16, init="random", anti_aliasing=True)
    aa.weight.data.copy_(plain.weight.data)  # same raw weights: only the anti-aliasing differs
    f_plain = np.mean([nyquist_fraction(k) for k in plain.kernels().detach().numpy()])
    f_aa = np.mean([nyquist_fraction(k) for k in aa.kernels().detach().numpy()])
    assert f_plain > 0.1  # white-noise kernels put ~a quarter of their energy there
    assert f_aa < 0.02


@pytest.mark.parametrize("stride,pool,expect_hw", [(1, "none", (12, 20)), (2, "none", (6, 10)),
                                                   (2, "aablur", (6, 10)), (3, "none", (4, 7))])
def test_resnet_stage_shapes(stride, pool, expect_hw):
    st = ResidualStage(3, 5, (3, 3, 3), stride=stride, pool=pool)
    assert st(torch.randn(2, 3, 16, 12, 20)).shape == (2, 5, 16, *expect_hw)


def test_resnet_keeps_every_frame_and_reports_channels():
    net = ResNet(4, [{"out_channels": 8, "kernel_size": [5, 5, 5], "stride": 2},
                     {"out_channels": 16, "kernel_size": [3, 3, 3], "stride": 2, "pool": "aablur"},
                     {"out_channels": 16, "kernel_size": [3, 3, 3], "dilation": 2}])
    y = net(torch.randn(2, 4, 40, 36, 64))
    assert y.shape == (2, 16, 40, 9, 16) and net.out_channels == 16


@pytest.mark.parametrize("pool,stride", [("none", 1), ("none", 2), ("aablur", 2)])
def test_residual_shortcut_adds_features_of_the_same_frame(pool, stride):
    """With the main path silenced, each output frame equals the shortcut of that same input frame."""
    torch.manual_seed(0)
    st = ResidualStage(3, 4, (3, 3, 3), stride=stride, pool=pool).eval()
    st.conv1.weight.data.zero_()
    st.conv2.weight.data.zero_()
    x = torch.randn(1, 3, 10, 8, 8)
    y = st(x)
    shortcut = st.pool(st.shortcut(x))
    torch.testing.assert_close(y, torch.nn.functional.silu(shortcut))
    # and the shortcut is frame-local: an impulse at frame 6 only shows at frame 6
    x2 = torch.zeros_like(x)
    x2[:, :, 6] = torch.randn(1, 3, 8, 8)
    y2 = st(x2) - st(torch.zeros_like(x))
    assert y2[:, :, :6].abs().max() == 0 and y2[:, :, 7:].abs().max() == 0 and y2[:, :, 6].abs().max() > 0


def test_modulator_shapes():
    x, beh = torch.randn(2, 6, 12, 5, 7), torch.randn(2, 12, 4)
    assert ConvGRUModulator(6, 4, hidden_dim=9, beh_emb_dim=3)(x, beh).shape == (2, 9, 12, 5, 7)
    assert NoModulator(6, 4)(x, beh).shape == x.shape


@pytest.mark.parametrize("nonlinearity", ["softplus", "exp"])
def test_readout_shape_and_bias_starts_at_mean_rate(nonlinearity):
    rate = torch.tensor([0.05, 0.2, 1.5])
    ro = GaussianReadout(6, 3, mean_rate=rate, nonlinearity=nonlinearity).eval()
    y = ro(torch.zeros(2, 6, 11, 5, 7))
    assert y.shape == (2, 11, 3)
    torch.testing.assert_close(y[0, 0], rate, rtol=1e-4, atol=1e-6)


def test_readout_reads_mean_position_in_eval_and_samples_in_training():
    torch.manual_seed(0)
    ro = GaussianReadout(2, 4)
    torch.nn.init.normal_(ro.features)  # untrained weights are zero: the output would not depend on position
    x = torch.randn(3, 2, 5, 9, 9)
    ro.eval()
    torch.testing.assert_close(ro(x), ro(x))
    ro.train()
    assert not torch.allclose(ro(x), ro(x))


def test_readout_reads_features_where_its_mean_points():
    """A neuron whose mean sits at the top-right corner reads the top-right feature (x, then y)."""
    ro = GaussianReadout(1, 1, mean_rate=[1.0], nonlinearity="exp").eval()
    ro.mean.data[:] = torch.tensor([[1.0, -1.0]])  # x = right edge, y = top row
    ro.features.data[:] = 1.0
    ro.bias.data[:] = 0.0
    x = torch.zeros(1, 1, 1, 6, 8)
    x[0, 0, 0, 0, 7] = 2.0
    assert float(ro(x)[0, 0, 0]) == pytest.approx(math.exp(2.0))


@pytest.mark.parametrize("kernel,stride,dilation", [((1, 3, 3), 1, 1), ((1, 3, 3), 2, 1), ((1, 5, 3), 1, 2)])
def test_framewise_causal_conv_equals_torchs_conv3d(kernel, stride, dilation):
    from neuroenc.model.layers import CausalConv3d

    torch.manual_seed(0)
    conv = CausalConv3d(3, 5, kernel, stride, dilation)
    x = torch.randn(2, 3, 7, 11, 13)
    expect = torch.nn.functional.conv3d(x, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
    torch.testing.assert_close(conv(x), expect, rtol=1e-5, atol=1e-5)


def test_temporal_stride_keeps_every_sth_frame_computed_from_the_past():
    torch.manual_seed(0)
    stage = ResidualStage(2, 4, (3, 3, 3), temporal_stride=3).eval()
    x = torch.randn(1, 2, 10, 6, 6)
    with torch.no_grad():
        y = stage(x)
        assert y.shape[2] == 4  # frames 0, 3, 6, 9
        for j, f in enumerate(range(0, 10, 3)):  # step j sees frames <= 3j only
            future = x.clone()
            future[:, :, f + 1:] = torch.randn_like(future[:, :, f + 1:])
            torch.testing.assert_close(stage(future)[:, :, j], y[:, :, j], rtol=0, atol=0)
    net = ResNet(2, [{"out_channels": 4, "kernel_size": [3, 3, 3], "temporal_stride": 2},
                     {"out_channels": 4, "kernel_size": [3, 3, 3], "temporal_stride": 2}])
    assert net.temporal_stride == 4 and net.step_ends(10).tolist() == [0, 4, 8]
    assert net(x).shape[2] == 3
