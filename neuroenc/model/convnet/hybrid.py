"""A hybrid convnet: ResNet stages for space, then causal transformer blocks for time."""

from __future__ import annotations

import torch
from torch import nn

from neuroenc.model.convnet.resnet import ResNet
from neuroenc.model.convnet.transformer import CausalTemporalBlocks, check_block_args, drop_path_rates, resolve_head_dim
from neuroenc.model.geometry import FeatureGrid
from neuroenc.model.layers import FrameBatchNorm


class Hybrid(nn.Module):
    """``(B, C, T, H, W)`` -> ``(B, embedding_dim, T', H', W')``.

    The causal ResNet ``stages`` keep spatial detail (``H', W'`` and ``T'``, with ``step_ends``,
    as the ResNet gives them); a 1x1 projection to ``embedding_dim`` (when the channels differ); then
    ``num_temporal_blocks`` causal attention blocks over all frames of the window at each spatial
    position, and a (contrast-keeping, causal) :class:`FrameBatchNorm`. Step i's features
    depend on frames <= ``step_ends(T)[i]`` only.
    """

    def __init__(self, in_channels: int, stages: list, embedding_dim: int, num_temporal_blocks: int, num_heads: int,
                 head_dim: int | None, ff_dim: int, activation: str, dropout: float, attn_dropout: float,
                 drop_path: float):
        super().__init__()
        check_block_args(embedding_dim, ff_dim, activation, dropout, attn_dropout, drop_path,
                         num_temporal_blocks=num_temporal_blocks)
        head_dim = resolve_head_dim(embedding_dim, num_heads, head_dim)
        self.resnet = ResNet(in_channels, stages)
        c = self.resnet.out_channels
        self.proj = (nn.Identity() if c == embedding_dim else
                     nn.Sequential(nn.Conv3d(c, embedding_dim, 1, bias=False), FrameBatchNorm(embedding_dim)))
        self.temporal = CausalTemporalBlocks(embedding_dim, num_heads, head_dim, ff_dim, activation, dropout,
                                             attn_dropout, drop_path_rates(drop_path, num_temporal_blocks))
        # not a LayerNorm over channels: that would divide each position's contrast away
        self.norm = FrameBatchNorm(embedding_dim)
        self.out_channels = embedding_dim
        self.temporal_stride = self.resnet.temporal_stride

    def feature_grid(self, frame_shape: tuple[int, int]) -> FeatureGrid:
        return self.resnet.feature_grid(frame_shape)

    def step_ends(self, t: int) -> torch.Tensor:
        return self.resnet.step_ends(t)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        """The stages the inspector reports, each mapping ``(B, C, T, H, W)``-shaped tensors."""
        return [*((f"resnet stage {i}", s) for i, s in enumerate(self.resnet.stages)),
                ("temporal blocks", self.temporal)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.temporal(self.proj(self.resnet(x))))
