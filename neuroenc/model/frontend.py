"""Frontends: what happens to each pixel's time course before the convnet.

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


AA_WINDOWS = ("hann", "rect")


def anti_aliasing_window(kernel_size: int, kind: str = "hann") -> torch.Tensor:
    """``(kernel_size,)`` window on the raw taps before the two-tap average, peak 1, newest tap 0.

    ``hann``: VisionCore's symmetric Hann window (VisionCore's ``aa_signal``,
    ``torch.signal.windows.hann`` divided by its maximum). ``rect``: flat but for the newest tap,
    which must be zero for the average to keep ``kernel_size`` taps (see
    :meth:`LearnableTemporalFrontend.kernels`); it leaves the filter free to weigh the newest lags."""
    if kind == "rect":
        w = torch.ones(kernel_size, dtype=torch.float64)
        w[-1] = 0.0
        return w.float()
    w = torch.signal.windows.hann(kernel_size, sym=True, dtype=torch.float64)
    return (w / w.max()).float()


INITS = ("gaussian_derivatives", "random")


class LearnableTemporalFrontend(nn.Module):
    """``num_channels`` learnable temporal filters of ``kernel_size`` frames, applied to every pixel.

    Causal (left) padding keeps every frame. With ``anti_aliasing`` (``kernel_size`` >= 3) the
    effective filter is ``(window * w) conv [1, 1] / 2`` without its newest tap (always zero): by
    default (``aa_window="hann"``) VisionCore's symmetric Hann window on the raw taps ``w``, then
    the two-tap average, whose zero at Nyquist makes the filter's gain there exactly zero
    whatever the optimiser does to ``w`` (see :meth:`kernels`). ``aa_window="rect"`` keeps that
    zero without the Hann window's taper, which holds the newest lags near zero.
    Input ``(B, C_in, T, H, W)``, output ``(B, C_in * num_channels, T, H, W)``.
    """

    window: torch.Tensor  # a buffer, with anti_aliasing; declared for the type checker

    def __init__(self, in_channels: int, num_channels: int, kernel_size: int, init: str, anti_aliasing: bool,
                 bias: bool, aa_window: str = "hann"):
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init: {init!r} is not one of {INITS}")
        if aa_window not in AA_WINDOWS:
            raise ValueError(f"aa_window: {aa_window!r} is not one of {AA_WINDOWS}")
        if aa_window != "hann" and not anti_aliasing:
            raise ValueError(f"aa_window: {aa_window!r} applies only with anti_aliasing=true (it is false)")
        for name, v in (("num_channels", num_channels), ("kernel_size", kernel_size)):
            if v <= 0:
                raise ValueError(f"{name}: must be positive, got {v}")
        if anti_aliasing and kernel_size < 3:
            raise ValueError(f"kernel_size: {kernel_size} is too short for anti_aliasing (at least 3: "
                             "the Hann window is zero at both ends)")
        self.in_channels = in_channels
        self.num_channels = num_channels
        self.kernel_size = kernel_size
        self.anti_aliasing = anti_aliasing
        self.aa_window = aa_window
        self.out_channels = in_channels * num_channels
        if init == "gaussian_derivatives":
            w = gaussian_derivative_bank(num_channels, kernel_size)
        else:
            w = torch.randn(num_channels, kernel_size) / math.sqrt(kernel_size)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(num_channels)) if bias else None
        if anti_aliasing:
            self.register_buffer("window", anti_aliasing_window(kernel_size, aa_window), persistent=False)

    def kernels(self) -> torch.Tensor:
        """The effective ``(num_channels, kernel_size)`` filters (index 0 = oldest tap).

        With ``anti_aliasing``: ``h = window * w``, then ``k[j] = (h[j] + h[j - 1]) / 2``.
        A Hann window alone, as in VisionCore, smooths the spectrum but leaves the gain at Nyquist,
        ``sum_j (-1)^j h[j]``, wherever the weights put it (for random taps it can be the
        largest gain of all); the two-tap average multiplies the spectrum by ``cos(f / 2)``:
        exactly zero at Nyquist, small near it (random taps keep ~4% of their energy in the top
        quarter of the band, against ~25% with the window alone). It is the shortest filter with
        that zero, and it keeps the kernel's length: the full convolution has ``kernel_size + 1``
        taps, but its newest one is ``h[-1] / 2 = 0`` (the symmetric window ends in zeros), so
        dropping it loses nothing and the zero stays exact, where [1, 2, 1] / 4 would have to be
        cropped off a non-zero tap. Causality is untouched: still ``kernel_size`` taps behind
        causal padding. No frame of delay is added (each windowed tap is shared with the next
        newer one: half a frame towards the present), but the symmetric window centres every
        filter near lag ``kernel_size / 2`` and weighs the newest lags little (lag 0 gets
        ``hann[-2] / 2``, 0.04 for 12 taps): as in VisionCore, ``kernel_size`` must suit the frame
        rate so that the responses' latencies sit near the middle of the kernel. The ``rect``
        window zeroes only the newest raw tap, so lag 0 gets ``w[-2] / 2`` and the zero at
        Nyquist is all the anti-aliasing there is (the newest raw weight then has no effect).
        """
        w: torch.Tensor = self.weight
        if self.anti_aliasing:
            h = w * self.window
            w = 0.5 * (h + F.pad(h, (1, 0))[:, :-1])
        return w

    def frequency_response(self, n_fft: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
        """``(freq, gain)``: the effective filters' gain ``(num_channels, n_fft // 2 + 1)`` at
        ``freq`` in cycles per frame, from 0 to Nyquist (0.5, the last column)."""
        k = self.kernels().detach().double()
        return torch.fft.rfftfreq(n_fft, dtype=torch.float64), torch.fft.rfft(k, n_fft, dim=1).abs()

    def nyquist_gain(self) -> float:
        """The largest gain at Nyquist relative to that filter's peak gain, over the filters: what
        anti-aliasing is to hold at 0 (VisionCore's Hann window alone leaves it wherever training
        puts it)."""
        _, gain = self.frequency_response()
        peak = gain.max(dim=1).values
        rel = torch.where(peak > 0, gain[:, -1] / peak.clamp_min(1e-300), torch.zeros_like(peak))
        return float(rel.max())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        k = self.kernels().to(x.dtype)
        weight = k[:, None, :, None, None].repeat(c, 1, 1, 1, 1)  # grouped: each input channel its bank
        bias = self.bias.repeat(c) if self.bias is not None else None
        x = F.pad(x, (0, 0, 0, 0, self.kernel_size - 1, 0))
        return F.conv3d(x, weight, bias, groups=c)
