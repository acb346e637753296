"""A causal 3-D ResNet convnet."""

from __future__ import annotations

import math
from typing import cast

import torch
from einops import rearrange
from timm.layers import BlurPool2d
from timm.layers.padding import get_padding
from torch import nn

from neuroenc.config.records import StageSpec
from neuroenc.model.geometry import FeatureGrid
from neuroenc.model.layers import CausalConv3d, FrameBatchNorm


class FramewiseBlurPool(nn.Module):
    """timm's anti-aliased downsampling (blur, then subsample) applied to each frame."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        self.pool = BlurPool2d(channels, filt_size=3, stride=stride)

    def feature_grid(self, grid: FeatureGrid) -> FeatureGrid:
        p = self.pool
        # get_padding returns a list only for tuple arguments
        return grid.strided(p.stride, p.filt_size, cast(int, get_padding(p.filt_size, p.stride)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        y = self.pool(rearrange(x, "b c t h w -> (b t) c h w"))
        return rearrange(y, "(b t) c h w -> b c t h w", t=t)


class ResidualStage(nn.Module):
    """conv -> norm -> SiLU -> conv -> norm, plus a shortcut, -> SiLU -> dropout; with ``convs=1``
    (the reference analysis's stage: one convolution per block) conv -> norm, plus a shortcut, -> SiLU -> dropout.

    The convolutions are causal in time. With ``temporal_stride`` s the first convolution and the
    shortcut keep frames 0, s, 2s, ... (each computed from frames up to itself), so main path and
    shortcut still add features of the same frames. ``temporal_dilation`` spaces the time taps of
    the convolutions (at the stage's own rate). Spatial downsampling is either the first
    convolution's stride (``pool='none'``) or blur-then-subsample on both paths (``'aablur'``).
    The norms are :class:`FrameBatchNorm`: causal, and features keep the stimulus contrast.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size=(3, 3, 3), stride: int = 1,
                 dilation: int = 1, pool: str = "none", dropout: float = 0.0, temporal_stride: int = 1,
                 temporal_dilation: int = 1, convs: int = 2):
        super().__init__()
        # the stage's rules live in StageSpec.check, once for a stage built alone or by ResNet
        StageSpec(out_channels, list(kernel_size), stride, dilation, pool, dropout, temporal_stride,
                  temporal_dilation, convs).check()
        conv_stride = stride if pool == "none" else 1
        self.conv1 = CausalConv3d(in_channels, out_channels, kernel_size, conv_stride, dilation, bias=False,
                                  temporal_stride=temporal_stride, temporal_dilation=temporal_dilation)
        self.norm1 = FrameBatchNorm(out_channels)
        if convs == 2:
            self.conv2: CausalConv3d | None = CausalConv3d(out_channels, out_channels, kernel_size, 1, dilation,
                                                           bias=False, temporal_dilation=temporal_dilation)
            self.norm2: FrameBatchNorm | None = FrameBatchNorm(out_channels)
        else:
            self.conv2 = self.norm2 = None
        self.act = nn.SiLU()
        self.pool = FramewiseBlurPool(out_channels, stride) if pool == "aablur" and stride > 1 else nn.Identity()
        if in_channels != out_channels or stride > 1 or temporal_stride > 1:
            self.shortcut: nn.Module = nn.Sequential(
                CausalConv3d(in_channels, out_channels, 1, conv_stride, bias=False, temporal_stride=temporal_stride),
                FrameBatchNorm(out_channels))
        else:
            self.shortcut = nn.Identity()
        self.drop = nn.Dropout(dropout)

    def feature_grid(self, grid: FeatureGrid) -> FeatureGrid:
        """Where this stage's output cells sit, given where its input cells sit."""
        k, d, s = self.conv1.kernel_size[1], self.conv1.dilation[1], self.conv1.stride[1]
        grid = grid.strided(s, (k - 1) * d + 1, self.conv1.padding[1])
        return self.pool.feature_grid(grid) if isinstance(self.pool, FramewiseBlurPool) else grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(self.conv1(x))
        if self.conv2 is not None and self.norm2 is not None:
            h = self.norm2(self.conv2(self.act(h)))
        # blur-pooling is linear: one pool of the sum costs half of pooling both paths
        return self.drop(self.act(self.pool(h + self.shortcut(x))))


class ResNet(nn.Module):
    """Causal 3-D ResNet convnet: ``(B, C, T, H, W)`` -> ``(B, stages[-1].out_channels, T', H', W')``.

    ``T' = T`` (every frame keeps its own output) unless stages set ``temporal_stride``: then step
    i has seen frames up to ``step_ends(T)[i]`` only, and the encoder maps steps back to frames.
    """

    def __init__(self, in_channels: int, stages: list):
        super().__init__()
        specs = [s if isinstance(s, StageSpec) else StageSpec(**s) for s in stages]
        if not specs:
            raise ValueError("stages: at least one stage is needed")
        for i, s in enumerate(specs):
            try:
                s.check()
            except ValueError as e:
                raise ValueError(f"stages[{i}].{e}") from e
        layers = []
        c = in_channels
        for s in specs:
            layers.append(ResidualStage(c, s.out_channels, tuple(s.kernel_size), s.stride, s.dilation, s.pool, s.dropout,
                                        s.temporal_stride, s.temporal_dilation, s.convs))
            c = s.out_channels
        self.stages = nn.ModuleList(layers)
        self.out_channels = c
        self.temporal_stride = math.prod(s.temporal_stride for s in specs)

    def step_ends(self, t: int) -> torch.Tensor:
        """``(T',)`` the newest input frame each output step has seen: frame ``i * temporal_stride``."""
        return torch.arange(0, t, self.temporal_stride)

    def feature_grid(self, frame_shape: tuple[int, int]) -> FeatureGrid:
        """Where the output cells sit on a frame of ``frame_shape`` (H, W) pixels."""
        grid = FeatureGrid(tuple(frame_shape))  # type: ignore[arg-type]  # a pair, passed as a list by some callers
        for stage in self.stages:
            grid = cast(ResidualStage, stage).feature_grid(grid)
        return grid

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x
