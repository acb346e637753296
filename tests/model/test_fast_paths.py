"""The default step's fast paths compute what the plain formulations compute: the 1x1 ConvGRU as
one recurrence over positions (against torch's own GRUCell and against the per-frame convolution
loop), the per-frame batch norm as one native batch norm (against per-frame statistics), and
pointwise convolutions as matrix products (against torch's conv3d)."""

import subprocess
import sys

import pytest
import torch
from parts import ConvGRUModulator

from neuroenc.model.convnet.vivit import TubeletTokenizer
from neuroenc.model.gru_scan import gru_scan
from neuroenc.model.layers import CausalConv3d, FrameBatchNorm


def _as_gru_cell_input(gx_t: torch.Tensor) -> torch.Tensor:
    """``(3, N, H)`` gate blocks -> the ``(N, 3H)`` rows a GRUCell with an identity input weight reads."""
    return gx_t.permute(1, 0, 2).reshape(gx_t.shape[1], -1)


def test_gru_scan_equals_torchs_gru_cell_step_by_step():
    torch.manual_seed(0)
    t, n, h = 6, 5, 4
    gx, weight, h0 = torch.randn(t, 3, n, h, dtype=torch.double), torch.randn(3 * h, h, dtype=torch.double), \
        torch.randn(n, h, dtype=torch.double)
    # torch's GRUCell: input weight the identity and no biases, so its input pre-activations are gx
    cell = torch.nn.GRUCell(3 * h, h).double()
    with torch.no_grad():
        cell.weight_ih.copy_(torch.eye(3 * h))
        cell.weight_hh.copy_(weight)
        cell.bias_ih.zero_()
        cell.bias_hh.zero_()
    state, expect = h0, []
    for i in range(t):
        state = cell(_as_gru_cell_input(gx[i]), state)
        expect.append(state)
    torch.testing.assert_close(gru_scan(gx, weight, h0), torch.stack(expect), rtol=1e-12, atol=1e-12)


def test_gru_scan_gradients_are_the_numerical_ones():
    torch.manual_seed(0)
    args = (torch.randn(5, 3, 4, 3, dtype=torch.double, requires_grad=True),
            torch.randn(9, 3, dtype=torch.double, requires_grad=True),
            torch.randn(4, 3, dtype=torch.double, requires_grad=True))
    assert torch.autograd.gradcheck(gru_scan, args)


def test_gru_scan_state_at_t_uses_no_later_input():
    torch.manual_seed(0)
    gx, weight, h0 = torch.randn(8, 3, 5, 4), torch.randn(12, 4), torch.zeros(5, 4)
    later = gx.clone()
    later[5:] += 10 * torch.randn_like(later[5:])
    torch.testing.assert_close(gru_scan(later, weight, h0)[:5], gru_scan(gx, weight, h0)[:5], rtol=0, atol=0)


def test_gru_scan_refuses_gates_not_in_three_blocks():
    with pytest.raises(ValueError, match=r"gx \(T, 3, N, H\)"):
        gru_scan(torch.zeros(4, 5, 12), torch.zeros(12, 4), torch.zeros(5, 4))


@pytest.mark.parametrize("behavior_dim,beh_emb_dim", [(3, 2), (0, 0)])
def test_pointwise_convgru_equals_the_per_frame_convolution_loop(behavior_dim, beh_emb_dim):
    torch.manual_seed(0)
    gru = ConvGRUModulator(6, behavior_dim, hidden_dim=5, beh_emb_dim=beh_emb_dim, kernel_size=1)
    x = torch.randn(2, 6, 9, 4, 7, requires_grad=True)
    beh = torch.randn(2, 9, behavior_dim)
    fast, plain = gru(x, beh), gru._forward_convolutional(x, beh)
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-6)
    probe = torch.randn_like(plain)
    params = [x, *gru.parameters()]
    for a, b in zip(torch.autograd.grad((fast * probe).sum(), params),
                    torch.autograd.grad((plain * probe).sum(), params)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_frame_batch_norm_statistics_are_each_frames_own():
    torch.manual_seed(0)
    norm = FrameBatchNorm(3, momentum=1.0)
    with torch.no_grad():
        norm.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        norm.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
    x = 3 + 2 * torch.randn(4, 3, 5, 6, 7)
    var, mean = torch.var_mean(x, dim=(0, 3, 4), correction=0, keepdim=True)  # (1, C, T, 1, 1)
    w, b = norm.weight.view(1, 3, 1, 1, 1), norm.bias.view(1, 3, 1, 1, 1)
    torch.testing.assert_close(norm.train()(x), (x - mean) / torch.sqrt(var + norm.eps) * w + b,
                               rtol=1e-5, atol=1e-5)
    # running statistics: each channel's per-frame mean and variance averaged over the frames
    torch.testing.assert_close(norm.running_mean, mean.mean((0, 2, 3, 4)), rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(norm.running_var, var.mean((0, 2, 3, 4)), rtol=1e-5, atol=1e-6)
    eval_expect = (x - norm.running_mean.view(1, 3, 1, 1, 1)) / torch.sqrt(norm.running_var.view(1, 3, 1, 1, 1)
                                                                           + norm.eps) * w + b
    torch.testing.assert_close(norm.eval()(x), eval_expect, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("stride,temporal_stride,bias", [(1, 1, True), (2, 1, False), (2, 2, True), (1, 3, False)])
def test_pointwise_causal_conv_equals_torchs_conv3d(stride, temporal_stride, bias):
    torch.manual_seed(0)
    conv = CausalConv3d(3, 5, 1, stride, bias=bias, temporal_stride=temporal_stride)
    x = torch.randn(2, 3, 7, 11, 13)
    expect = torch.nn.functional.conv3d(x, conv.weight, conv.bias, (temporal_stride, stride, stride))
    torch.testing.assert_close(conv(x), expect, rtol=1e-5, atol=1e-6)


def _kept(env: dict) -> str:
    code = "import neuroenc.allocator as a; print(a.KEPT)"
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return r.stdout.strip()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_memory_is_kept_unless_the_user_chose_otherwise():
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES", "NEUROENC_"))}
    assert _kept(env) == "True"
    assert _kept({**env, "NEUROENC_DEFAULT_MALLOC": "1"}) == "False"
    assert _kept({**env, "MALLOC_TRIM_THRESHOLD_": "131072"}) == "False"


@pytest.mark.parametrize("training", [True, False])
def test_frame_batch_norm_input_gradient_does_not_depend_on_the_incoming_gradients_layout(training):
    """The 1x1 ConvGRU hands the convnet a gradient laid out (T, B, H, W, C); torch's CPU batch
    norm in eval mode got that wrong (by up to ~5 here), which broke input-gradient analyses."""
    torch.manual_seed(0)
    norm = FrameBatchNorm(6).train(training)
    x = torch.randn(2, 6, 8, 16, 20, requires_grad=True)
    y = norm(x)
    grad = torch.randn_like(y)
    strided = grad.permute(2, 0, 3, 4, 1).contiguous().permute(1, 4, 0, 2, 3)
    (a,) = torch.autograd.grad(y, x, grad, retain_graph=True)
    (b,) = torch.autograd.grad(y, x, strided)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("padding", [[0, 0, 0], [0, 2, 0], [3, 2, 1]])
def test_non_overlapping_tubelets_equal_torchs_conv3d_on_the_padded_frames(padding):
    tok = TubeletTokenizer(1, 5, kernel_size=None, stride=[4, 8, 8], padding=padding)
    x = torch.randn(2, 1, 21, 36, 30)
    pt, ph, pw = padding
    # past frames padded in time, both sides in space; leftover rows and columns cropped
    conv = torch.nn.functional.conv3d(torch.nn.functional.pad(x, (pw, pw, ph, ph, pt, 0)), tok.proj.weight,
                                      tok.proj.bias, tok.stride)
    tok.eval()
    torch.testing.assert_close(tok(x), tok.norm(conv), rtol=1e-5, atol=1e-5)
