"""Two building blocks shared by the convnets: a causal 3-D convolution and a causal batch norm."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _triple(v) -> tuple[int, int, int]:
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v, v)


class CausalConv3d(nn.Conv3d):
    """``Conv3d`` on ``(B, C, T, H, W)`` padded on the left in time (frame t sees frames <= t) and
    'same' in space. ``stride`` and ``dilation`` apply to space; with ``temporal_stride`` s, output
    step j is computed at input frame j*s from frames <= j*s (so T -> ceil(T / s)); with
    ``temporal_dilation`` d the time taps are d frames apart (lags 0, d, 2d, ...)."""

    padding: tuple[int, ...]  # always explicit, never Conv3d's 'same' or 'valid'

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride: int = 1, dilation: int = 1,
                 bias: bool = True, temporal_stride: int = 1, temporal_dilation: int = 1):
        kt, kh, kw = _triple(kernel_size)
        if kh % 2 == 0 or kw % 2 == 0:
            raise ValueError(f"spatial kernel size must be odd for 'same' padding, got {(kh, kw)}")
        super().__init__(in_channels, out_channels, (kt, kh, kw), stride=(temporal_stride, stride, stride),
                         dilation=(temporal_dilation, dilation, dilation),
                         padding=(0, dilation * (kh - 1) // 2, dilation * (kw - 1) // 2), bias=bias)
        self.time_pad = temporal_dilation * (kt - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == (1, 1, 1):
            # pointwise: one matrix product per window on the channels-first layout, no copies
            # (oneDNN's 1x1x1 convolution trains ~1.4x slower on the CPU)
            x = x[:, :, :: self.stride[0], :: self.stride[1], :: self.stride[2]]
            b, c, *grid = x.shape
            y = torch.matmul(self.weight.view(self.out_channels, c).to(x.dtype), x.reshape(b, c, -1))
            if self.bias is not None:
                y = y + self.bias.to(x.dtype)[:, None]
            return y.view(b, self.out_channels, *grid)
        if self.kernel_size[0] == 1 and self.stride[0] == 1:
            # frame by frame: oneDNN's 2-D convolution trains ~20% faster on the CPU than its 3-D one
            b, t = x.shape[0], x.shape[2]
            y = F.conv2d(x.transpose(1, 2).flatten(0, 1), self.weight[:, :, 0], self.bias, self.stride[1:],
                         self.padding[1:], self.dilation[1:])
            return y.unflatten(0, (b, t)).transpose(1, 2)
        return super().forward(F.pad(x, (0, 0, 0, 0, self.time_pad, 0)))


class FrameBatchNorm(nn.Module):
    """Batch norm for ``(B, C, T, ...)`` (channels on dim 1, time on dim 2) that keeps contrast and
    causality.

    In training each frame is normalised with the per-channel mean and variance over the batch
    and space of that frame alone, so nothing after frame t reaches it (a ``BatchNorm3d`` would mix
    in the statistics of later frames). In eval the running statistics are used: a fixed affine
    map per channel, so a stimulus of twice the contrast gives features of twice the size, as the
    cells of visual cortex respond. A per-pixel norm over channels (RMS or LayerNorm) would
    divide that contrast away.
    """

    # buffers (register_buffer), declared for the type checker: nn.Module types them Tensor | Module
    running_mean: torch.Tensor
    running_var: torch.Tensor

    def __init__(self, channels: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            # a fixed affine map per channel, written out: torch 2.14's CPU batch_norm in eval mode
            # returns wrong input gradients when the incoming gradient is not contiguous (as the
            # 1x1 ConvGRU's is), which input-gradient analyses (RFs, MEIs) take through it
            shape = (1, -1, *([1] * (x.ndim - 2)))
            scale = torch.rsqrt(self.running_var + self.eps) * self.weight
            return (x - self.running_mean.view(shape)) * scale.view(shape) + self.bias.view(shape)
        # every (channel, frame) pair a channel of one batch norm over (B, C * T, space): one fused
        # kernel forward and backward, ~3x faster on a CPU than the same statistics in element-wise ops
        b, c, t = x.shape[:3]
        y, mean, invstd = torch.native_batch_norm(x.reshape(b, c * t, -1), self.weight.repeat_interleave(t),
                                                  self.bias.repeat_interleave(t), None, None, True, 0.0, self.eps)
        with torch.no_grad():  # per channel, averaged over the frames; the variance without Bessel's correction
            var = invstd.double().pow(-2).sub(self.eps).view(c, t).mean(1)
            self.running_mean.lerp_(mean.view(c, t).mean(1).to(self.running_mean.dtype), self.momentum)
            self.running_var.lerp_(var.to(self.running_var.dtype), self.momentum)
        return y.view(x.shape)
