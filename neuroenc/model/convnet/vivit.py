"""A factorised video transformer convnet (ViViT): tubelet tokens, spatial blocks per token time,
causal temporal blocks per spatial position."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from neuroenc.model.convnet.transformer import (
    BlockStack,
    CausalTemporalBlocks,
    check_block_args,
    drop_path_rates,
    resolve_head_dim,
    sincos_2d,
)
from neuroenc.model.geometry import FeatureGrid
from neuroenc.model.layers import FrameBatchNorm


def _sizes(value, name: str, minimum: int) -> tuple[int, int, int]:
    sizes = tuple(int(v) for v in value)
    if len(sizes) != 3:
        raise ValueError(f"{name}: needs 3 sizes (t, h, w), got {list(value)}")
    for i, s in enumerate(sizes):
        if s < minimum:
            raise ValueError(f"{name}[{i}]: sizes must be >= {minimum}, got {list(sizes)}")
    return sizes


class TubeletTokenizer(nn.Module):
    """Non-overlapping or overlapping 3-D tubelets projected to ``embedding_dim``, then a causal
    batch norm (:class:`FrameBatchNorm`: a LayerNorm over each token's channels would remove its
    contrast).

    ``(B, C, T, H, W)`` -> ``(B, D, T', H', W')``. ``kernel_size`` None is ``stride``
    (non-overlapping tubelets). Padding in time adds past frames only (zeros before the first
    frame), so tubelet i covers frames ``[i*st - pt, i*st - pt + kt - 1]`` and none reaches past the
    window; padding in space is symmetric (zeros: the stimulus mean). Tubelets tile the padded frame
    from its top-left corner, and rows or columns left over at the bottom or right (fewer than a
    tubelet) are cropped: no token sees them (the inspector names them).
    """

    def __init__(self, in_channels: int, embedding_dim: int, kernel_size, stride, padding):
        super().__init__()
        self.stride = _sizes(stride, "stride", 1)
        self.kernel_size = self.stride if kernel_size is None else _sizes(kernel_size, "kernel_size", 1)
        self.padding = _sizes(padding, "padding", 0)
        if any(p >= k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(f"padding: {list(self.padding)} must be smaller than the kernel {list(self.kernel_size)} "
                             "on every axis (t, h, w)")
        self.proj = nn.Conv3d(in_channels, embedding_dim, self.kernel_size, self.stride,
                              padding=(0, self.padding[1], self.padding[2]))
        self.norm = FrameBatchNorm(embedding_dim)

    def feature_grid(self, frame_shape: tuple[int, int]) -> FeatureGrid:
        """Where the token cells sit on a frame of ``frame_shape`` (H, W) pixels: the centres of
        their tubelets."""
        (_, kh, kw), (_, sh, sw), (_, ph, pw) = self.kernel_size, self.stride, self.padding
        h, w = self.grid(1, *frame_shape)[1:]
        return FeatureGrid((h, w), (sh, sw), ((kh - 1) / 2 - ph, (kw - 1) / 2 - pw))

    def grid(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """Token grid ``(T', H', W')`` for an input of ``t x h x w``; a size < 1 means it does not fit."""
        (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = self.kernel_size, self.stride, self.padding
        return (t + pt - kt) // st + 1, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def check_input(self, shape: tuple[int, int, int]) -> None:
        """Fails, naming the argument, when no tubelet fits an input of ``shape`` (T, H, W)."""
        t, h, w = shape
        if min(self.grid(t, h, w)) < 1:
            raise ValueError(f"kernel_size: tubelets of {list(self.kernel_size)} (t, h, w) with padding "
                             f"{list(self.padding)} do not fit an input of {t}x{h}x{w} frames x pixels; make them "
                             "smaller or the window / frames larger")

    def step_ends(self, t: int) -> torch.Tensor:
        """``(T',)`` the last frame of each token time's tubelets, for ``t`` frames."""
        kt, st, pt = self.kernel_size[0], self.stride[0], self.padding[0]
        return torch.arange(self.grid(t, 1, 1)[0]) * st - pt + kt - 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kernel_size == self.stride:
            # non-overlapping tubelets are a matrix product over patches: on the CPU ~2x faster to
            # train than oneDNN's strided 3-D convolution (same weights, same result); spatial
            # padding is then added to the frame first, as the convolution would
            pt, ph, pw = self.padding
            x = F.pad(x, (pw, pw, ph, ph, pt, 0))
            (kt, kh, kw), (t, h, w) = self.kernel_size, self.grid(x.shape[2] - pt, x.shape[3] - 2 * ph, x.shape[4] - 2 * pw)
            patches = rearrange(x[:, :, :t * kt, :h * kh, :w * kw], "b c (t i) (h j) (w k) -> b t h w (c i j k)",
                                i=kt, j=kh, k=kw)
            y = F.linear(patches, self.proj.weight.flatten(1), self.proj.bias)  # (B, T', H', W', D)
            return self.norm(y.movedim(-1, 1))
        return self.norm(self.proj(F.pad(x, (0, 0, 0, 0, self.padding[0], 0))))


class TokenDropout(nn.Module):
    """In training, each token's content is replaced by zeros with probability ``p`` (its position
    code is added later, so the grid stays whole: the readout needs a feature everywhere); ``p`` in
    [0, 1), checked by :class:`ViViT` as its ``patch_dropout``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        b, _, t, h, w = x.shape
        keep = torch.rand(b, 1, t, h, w, device=x.device) >= self.p
        return x * keep.to(x.dtype)


class SpatialBlocks(BlockStack):
    """Self-attention over the ``H' x W'`` tokens of each token time, with a 2-D (row, column) code.

    ``(B, D, T', H', W')`` -> same. Not causal: every token of a time step sees all the others.
    Optional register tokens join each step's sequence and are dropped after the last block.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, ff_dim: int, activation: str, dropout: float,
                 attn_dropout: float, drop_path: list[float], num_registers: int):
        super().__init__(dim, num_heads, head_dim, ff_dim, activation, dropout, attn_dropout, drop_path, causal=False)
        if num_registers < 0:
            raise ValueError(f"num_registers: must not be negative, got {num_registers}")
        self.registers = nn.Parameter(torch.randn(1, num_registers, dim) * 0.02) if num_registers else None

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[1], x.shape[3], x.shape[4]
        s = rearrange(x, "b d t h w -> (b t) (h w) d") + sincos_2d(h, w, d, device=x.device).to(x.dtype)
        if self.registers is not None:
            s = torch.cat([self.registers.to(s.dtype).expand(s.shape[0], -1, -1), s], 1)
        return s

    def features(self, s: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, h = shape[0], shape[3]
        r = 0 if self.registers is None else self.registers.shape[1]
        return rearrange(s[:, r:], "(b t) (h w) d -> b d t h w", b=b, h=h)


class ViViT(nn.Module):
    """Factorised video transformer convnet: ``(B, C, T, H, W)`` -> ``(B, embedding_dim, T', H', W')``.

    Tubelet tokens ``(T', H', W')`` go through ``num_spatial_blocks`` blocks over the tokens of each
    token time and ``num_temporal_blocks`` causal blocks over token times at each position. Token
    time i has seen frames up to ``step_ends(T)[i]`` only; the encoder maps token times back to
    frames (see :class:`neuroenc.model.encoder.Encoder`).
    """

    def __init__(self, in_channels: int, tokenizer: dict, embedding_dim: int, num_spatial_blocks: int,
                 num_temporal_blocks: int, num_heads: int, head_dim: int | None, ff_dim: int, activation: str,
                 dropout: float, attn_dropout: float, drop_path: float, patch_dropout: float, num_registers: int):
        super().__init__()
        check_block_args(embedding_dim, ff_dim, activation, dropout, attn_dropout, drop_path,
                         num_spatial_blocks=num_spatial_blocks, num_temporal_blocks=num_temporal_blocks)
        head_dim = resolve_head_dim(embedding_dim, num_heads, head_dim)
        try:
            self.tokenizer = TubeletTokenizer(in_channels, embedding_dim, **tokenizer)
        except ValueError as e:  # "stride[1]: ..." is tokenizer.stride[1] of this convnet
            raise ValueError(f"tokenizer.{e}") from e
        if not 0 <= patch_dropout < 1:
            raise ValueError(f"patch_dropout: must be in [0, 1), got {patch_dropout}")
        self.drop_tokens = TokenDropout(patch_dropout)
        rates = drop_path_rates(drop_path, num_spatial_blocks + num_temporal_blocks)
        common: dict = dict(num_heads=num_heads, head_dim=head_dim, ff_dim=ff_dim, activation=activation,
                            dropout=dropout, attn_dropout=attn_dropout)
        self.spatial = SpatialBlocks(embedding_dim, drop_path=rates[:num_spatial_blocks], num_registers=num_registers,
                                     **common)
        self.temporal = CausalTemporalBlocks(embedding_dim, drop_path=rates[num_spatial_blocks:], **common)
        self.norm = FrameBatchNorm(embedding_dim)  # keeps contrast, unlike a LayerNorm per token
        self.out_channels = embedding_dim
        self.temporal_stride = self.tokenizer.stride[0]

    def feature_grid(self, frame_shape: tuple[int, int]) -> FeatureGrid:
        return self.tokenizer.feature_grid(frame_shape)

    def check_input(self, shape: tuple[int, int, int]) -> None:
        try:
            self.tokenizer.check_input(shape)
        except ValueError as e:
            raise ValueError(f"tokenizer.{e}") from e

    def step_ends(self, t: int) -> torch.Tensor:
        return self.tokenizer.step_ends(t)

    def named_stages(self) -> list[tuple[str, nn.Module]]:
        """The stages the inspector reports, each mapping ``(B, C, T, H, W)``-shaped tensors."""
        return [("tokenizer", self.tokenizer), ("spatial blocks", self.spatial), ("temporal blocks", self.temporal)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.temporal(self.spatial(self.drop_tokens(self.tokenizer(x)))))
