"""Output shapes of each component, residual alignment in time, anti-aliasing, readout init."""

import math

import numpy as np
import pytest
import torch
from parts import ConvGRUModulator, GaussianReadout, LearnableTemporalFrontend

from neuroenc.model.convnet.resnet import ResidualStage, ResNet
from neuroenc.model.frontend import PixelFrontend, gaussian_derivative_bank
from neuroenc.model.modulator import NoModulator


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


def seed_hann(n: int) -> np.ndarray:
    """VisionCore's window: symmetric Hann (numpy's), scaled to a peak of 1."""
    w = np.hanning(n)
    return w / w.max()


def test_anti_aliasing_passes_little_energy_near_nyquist():
    torch.manual_seed(0)
    plain = LearnableTemporalFrontend(1, 8, 16, init="random")
    aa = LearnableTemporalFrontend(1, 8, 16, init="random", anti_aliasing=True)
    aa.weight.data.copy_(plain.weight.data)  # same raw weights: only the anti-aliasing differs
    f_plain = np.mean([nyquist_fraction(k) for k in plain.kernels().detach().numpy()])
    f_seed = np.mean([nyquist_fraction(k * seed_hann(16)) for k in plain.kernels().detach().numpy()])
    f_aa = np.mean([nyquist_fraction(k) for k in aa.kernels().detach().numpy()])
    assert f_plain > 0.1 and f_seed > 0.1  # white-noise kernels put ~a quarter of their energy there, windowed or not
    assert f_aa < 0.06  # the two-tap average's cos^2(f/2) leaves ~4%


@pytest.mark.parametrize("kernel_size", [3, 4, 5, 12, 16, 25])
@pytest.mark.parametrize("init", ["random", "gaussian_derivatives"])
@pytest.mark.parametrize("aa_window", ["hann", "rect"])
def test_anti_aliased_kernels_have_zero_gain_at_nyquist(kernel_size, init, aa_window):
    torch.manual_seed(kernel_size)
    fe = LearnableTemporalFrontend(1, 64, kernel_size, init=init, anti_aliasing=True, aa_window=aa_window)
    if init == "random":  # raw weights anywhere, as an optimiser might leave them
        fe.weight.data.mul_(torch.exp(torch.randn(64, 1)))
    gain = np.abs(np.fft.rfft(fe.kernels().detach().double().numpy(), 512, axis=1))  # bin 256 is Nyquist
    assert np.all(gain[:, -1] <= 1e-6 * gain.max(axis=1))  # float32 rounding only (<=: a kernel may be all zero)
    raw = np.abs(np.fft.rfft(fe.weight.detach().double().numpy() * seed_hann(kernel_size), 512, axis=1))
    if init == "random" and kernel_size > 3:  # VisionCore's window alone would not do it
        assert np.max(raw[:, -1] / raw.max(axis=1)) > 0.3


@pytest.mark.parametrize("anti_aliasing", [False, True])
def test_nyquist_gain_is_the_alternating_tap_sum_over_the_peak_gain(anti_aliasing):
    torch.manual_seed(1)
    fe = LearnableTemporalFrontend(1, 5, 16, init="random", anti_aliasing=anti_aliasing, bias=False)
    k = fe.kernels().detach().double().numpy()
    at_nyquist = np.abs(k @ (-1.0) ** np.arange(16))  # the DTFT at half the frame rate
    peak = np.abs(np.fft.rfft(k, 4096, axis=1)).max(axis=1)
    expected = 0.0 if anti_aliasing else np.max(at_nyquist / peak)
    assert fe.nyquist_gain() == pytest.approx(expected, rel=1e-3, abs=1e-6)
    freq, gain = fe.frequency_response()
    assert freq[0] == 0 and freq[-1] == 0.5 and gain.shape == (5, 257)


def test_anti_aliased_kernel_is_the_seeds_hann_window_then_a_two_tap_average():
    torch.manual_seed(0)
    fe = LearnableTemporalFrontend(1, 3, 12, init="random", anti_aliasing=True)
    w = fe.weight.detach().double().numpy()
    for raw, got in zip(w, fe.kernels().detach().double().numpy()):
        full = np.convolve(raw * seed_hann(12), [0.5, 0.5])  # 13 taps, index 0 oldest
        assert full[-1] == 0  # the newest tap the kernel drops: the window ends in zero
        np.testing.assert_allclose(got, full[:12], rtol=1e-6, atol=1e-7)
    assert fe.kernels()[:, -1].abs().max() > 0  # the current frame still reaches the output


def test_rect_window_kernel_is_the_two_tap_average_of_all_but_the_newest_raw_tap():
    torch.manual_seed(0)
    fe = LearnableTemporalFrontend(1, 3, 12, init="random", anti_aliasing=True, aa_window="rect")
    w = fe.weight.detach().double().numpy()
    for raw, got in zip(w, fe.kernels().detach().double().numpy()):
        np.testing.assert_allclose(got, np.convolve(raw[:-1], [0.5, 0.5]), rtol=1e-6, atol=1e-7)  # 12 taps
        assert got[-1] == pytest.approx(raw[-2] / 2)  # lag 0 at full weight, not the Hann window's 0.04
    hann = LearnableTemporalFrontend(1, 3, 12, init="random", anti_aliasing=True)
    hann.weight.data.copy_(fe.weight.data)
    assert hann.kernels()[:, -1].abs().max() < 0.1 * fe.kernels()[:, -1].abs().max()


@pytest.mark.parametrize("kwargs,match", [({"aa_window": "kaiser", "anti_aliasing": True}, "aa_window"),
                                          ({"aa_window": "rect", "anti_aliasing": False}, "anti_aliasing=true")])
def test_aa_window_errors_name_the_key(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LearnableTemporalFrontend(1, 2, 8, **kwargs)


def test_without_anti_aliasing_the_kernels_are_the_raw_weights():
    torch.manual_seed(0)
    fe = LearnableTemporalFrontend(1, 3, 7, init="random", bias=False)
    assert torch.equal(fe.kernels(), fe.weight) and set(fe.state_dict()) == {"weight"}
    x = torch.randn(1, 1, 20, 2, 2)
    w = fe.weight.detach().double().numpy()
    expect = np.stack([[np.convolve(x[0, 0, :, i, j].double().numpy(), k[::-1])[:20] for k in w]
                       for i in range(2) for j in range(2)])  # (pixel, filter, T): causal, index 0 oldest
    got = fe(x).detach().double().numpy()[0].reshape(3, 20, 4).transpose(2, 0, 1)
    np.testing.assert_allclose(got, expect, rtol=1e-5, atol=1e-6)


def test_anti_aliasing_needs_three_taps():
    with pytest.raises(ValueError, match="kernel_size"):
        LearnableTemporalFrontend(1, 2, 2, anti_aliasing=True)


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


@pytest.mark.parametrize("kernel,temporal_stride,temporal_dilation", [((3, 5, 5), 1, 2), ((3, 3, 3), 2, 2),
                                                                        ((2, 3, 3), 1, 3)])
def test_temporal_dilation_spaces_the_time_taps_causally(kernel, temporal_stride, temporal_dilation):
    """Equal to torch's conv3d on the input padded with ``d * (k - 1)`` past frames: output step j
    reads frames j*s, j*s - d, j*s - 2d, ..."""
    from neuroenc.model.layers import CausalConv3d

    torch.manual_seed(0)
    conv = CausalConv3d(3, 5, kernel, temporal_stride=temporal_stride, temporal_dilation=temporal_dilation)
    x = torch.randn(2, 3, 11, 9, 10)
    padded = torch.nn.functional.pad(x, (0, 0, 0, 0, temporal_dilation * (kernel[0] - 1), 0))
    expect = torch.nn.functional.conv3d(padded, conv.weight, conv.bias, conv.stride, conv.padding, conv.dilation)
    torch.testing.assert_close(conv(x), expect, rtol=0, atol=0)
    assert conv(x).shape[2] == -(-11 // temporal_stride)


@pytest.mark.parametrize("pool,stride", [("none", 2), ("aablur", 2)])
def test_one_convolution_stage_is_conv_norm_plus_shortcut(pool, stride):
    """``convs=1`` (the reference analysis's stage): SiLU(pool(norm(conv(x))) + pool(shortcut(x))), no second conv.
    The stage pools the sum of the paths once (blur-pooling is linear): the same, to rounding, as
    pooling each path, in training (batch statistics) and in eval."""
    torch.manual_seed(0)
    st = ResidualStage(3, 4, (3, 5, 5), stride=stride, pool=pool, convs=1)
    assert st.conv2 is None and not any("conv2" in k or "norm2" in k for k in st.state_dict())
    x = torch.randn(2, 3, 6, 12, 16)
    for mode in (st.train, st.eval):
        mode()
        with torch.no_grad():
            expect = torch.nn.functional.silu(st.pool(st.norm1(st.conv1(x))) + st.pool(st.shortcut(x)))
            torch.testing.assert_close(st(x), expect, rtol=1e-5, atol=1e-6)
    assert st(x).shape == (2, 4, 6, 6, 8)


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
