"""Frontends: what happens to each pixel's time course before the core.

All take and return ``(B, C, T, H, W)`` with index 0 the oldest frame and are causal: output
frame t depends on input frames <= t only.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class PixelFrontend(nn.Module):
    """``frontend=none``: pixels pass through unchanged."""

    def __init__(self, in_channels: int = 1):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def gaussian_derivative_bank(num: int, length: int) -> torch.Tensor:
    """``(num, length)`` unit-norm causal kernels: Gaussian, 1st and 2nd derivative at growing widths.

    Index 0 of a kernel multiplies the oldest frame of its support (as in ``conv1d``), so the
    bumps sit near the end of the kernel: recent frames weigh most.
    """
    tau = torch.arange(length, dtype=torch.float64).flip(0)  # lag of each tap: length-1 ... 0
    out = []
    for i in range(num):
        order = i % 3
        sigma = max(length / 8, 1.0) * (1.0 + 0.5 * (i // 3))
        center = min(2 * sigma, (length - 1) / 2)
        z = (tau - center) / sigma
        g = torch.exp(-0.5 * z**2)
        k = [g, -z * g, (z**2 - 1) * g][order]
        out.append(k / k.norm().clamp(min=1e-12))
    return torch.stack(out).float()


class LearnableTemporalFrontend(nn.Module):
    """``num_channels`` learnable temporal filters of ``kernel_size`` frames, applied to every pixel.

    Causal (left) padding keeps every frame. With ``anti_aliasing`` the learned kernel is
    smoothed with a binomial [1, 2, 1]/4 filter (zero gain at Nyquist) and tapered by a
    Hann-shaped window at its oldest end, so the effective filters pass little energy near the
    Nyquist frequency whatever the optimiser does to the raw weights.
    Input ``(B, C_in, T, H, W)``, output ``(B, C_in * num_channels, T, H, W)``.
    """

    def __init__(self, in_channels: int = 1, num_channels: int = 4, kernel_size: int = 16,
                 init: str = "gaussian_derivatives", anti_aliasing: bool = False, bias: bool = True):
        super().__init__()
        if init not in ("gaussian_derivatives", "random"):
            raise ValueError(f"frontend.init: {init!r} is not one of 'gaussian_derivatives', 'random'")
        self.in_channels = in_channels
        self.num_channels = num_channels
        self.kernel_size = kernel_size
        self.anti_aliasing = anti_aliasing
        self.out_channels = in_channels * num_channels
        if init == "gaussian_derivatives":
            w = gaussian_derivative_bank(num_channels, kernel_size)
        else:
            w = torch.randn(num_channels, kernel_size) / math.sqrt(kernel_size)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None
        taper = torch.ones(kernel_size)
        n = max(kernel_size // 4, 1)
        taper[:n] = torch.sin(0.5 * math.pi * (torch.arange(n) + 1) / (n + 1)) ** 2
        self.register_buffer("taper", taper, persistent=False)
        self.register_buffer("binomial", torch.tensor([[[0.25, 0.5, 0.25]]]), persistent=False)

    def kernels(self) -> torch.Tensor:
        """The effective ``(num_channels, kernel_size)`` filters (index 0 = oldest tap)."""
        w = self.weight
        if self.anti_aliasing:
            w = F.conv1d(w[:, None], self.binomial, padding=1)[:, 0] * self.taper
        return w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        k = self.kernels().to(x.dtype)
        weight = k[:, None, :, None, None].repeat(c, 1, 1, 1, 1)  # grouped: each input channel its bank
        bias = self.bias.repeat(c) if self.bias is not None else None
        x = F.pad(x, (0, 0, 0, 0, self.kernel_size - 1, 0))
        return F.conv3d(x, weight, bias, groups=c)
