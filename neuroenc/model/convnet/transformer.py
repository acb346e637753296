"""Transformer pieces shared by the ViViT and hybrid convnets: a pre-norm block built from timm's
layers, fixed sin-cos positions, and the stack of blocks over one axis (time here, space in
:mod:`neuroenc.model.convnet.vivit`)."""

from __future__ import annotations

import math

import torch
from einops import rearrange
from timm.layers import Attention, DropPath, Mlp, SwiGLU
from torch import nn

ACTIVATIONS = ("gelu", "swiglu")


def sincos(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sin-cos code ``(L, dim)`` of ``L`` positions (any ``dim``; odd ones get one extra sin)."""
    half = (dim + 1) // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32, device=positions.device) / half)
    angle = positions.float()[:, None] * freq[None]
    return torch.cat([angle.sin(), angle.cos()], 1)[:, :dim]


def sincos_2d(h: int, w: int, dim: int, device=None) -> torch.Tensor:
    """``(h * w, dim)`` codes of a row-major ``h x w`` grid: rows and columns coded apart (half the
    channels each), so a 9x16 grid is a 9x16 grid and never a 12x12 one."""
    rows = sincos(torch.arange(h, device=device), dim // 2)
    cols = sincos(torch.arange(w, device=device), dim - dim // 2)
    return torch.cat([rows[:, None].expand(h, w, -1), cols[None].expand(h, w, -1)], -1).reshape(h * w, dim)


def resolve_head_dim(embedding_dim: int, num_heads: int, head_dim: int | None) -> int:
    """``head_dim`` as given, or ``embedding_dim / num_heads``; fails naming the argument when impossible."""
    if num_heads <= 0:
        raise ValueError(f"num_heads: must be positive, got {num_heads}")
    if head_dim is not None:
        if head_dim <= 0:
            raise ValueError(f"head_dim: must be positive, got {head_dim}")
        return head_dim
    if embedding_dim % num_heads:
        raise ValueError(f"num_heads: {num_heads} heads do not divide embedding_dim={embedding_dim}; change either "
                         "or set head_dim")
    return embedding_dim // num_heads


def check_block_args(embedding_dim: int, ff_dim: int, activation: str, dropout: float, attn_dropout: float,
                     drop_path: float, **depths: int) -> None:
    """The arguments shared by the convnets that end in transformer blocks; ``depths`` are their
    block counts by argument name."""
    if embedding_dim <= 0:
        raise ValueError(f"embedding_dim: must be positive, got {embedding_dim}")
    if ff_dim <= 0:
        raise ValueError(f"ff_dim: must be positive, got {ff_dim}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: {activation!r} is not one of {ACTIVATIONS}")
    for name, p in (("dropout", dropout), ("attn_dropout", attn_dropout), ("drop_path", drop_path)):
        if not 0 <= p < 1:
            raise ValueError(f"{name}: must be in [0, 1), got {p}")
    for name, depth in depths.items():
        if depth < 0:
            raise ValueError(f"{name}: must not be negative, got {depth}")


def drop_path_rates(drop_path: float, depth: int) -> list[float]:
    """Stochastic depth growing linearly from 0 to ``drop_path`` over the blocks, as in timm's ViT."""
    return torch.linspace(0, drop_path, depth).tolist() if depth > 1 else [drop_path] * depth


class TransformerBlock(nn.Module):
    """Pre-norm block on ``(N, L, dim)``: x + attention(norm(x)), then x + feed-forward(norm(x)).

    Attention is timm's (through ``scaled_dot_product_attention``) with ``num_heads x head_dim``
    channels; ``causal`` lets position i attend to positions <= i only. The feed-forward is timm's
    ``Mlp`` (GELU) or ``SwiGLU`` with ``ff_dim`` hidden channels.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, ff_dim: int, activation: str = "gelu",
                 dropout: float = 0.0, attn_dropout: float = 0.0, drop_path: float = 0.0, causal: bool = False):
        super().__init__()
        self.causal = causal
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, num_heads, attn_head_dim=head_dim, qkv_bias=True, attn_drop=attn_dropout,
                              proj_drop=dropout)
        # always torch's SDPA, whatever timm's global setting says (timm marks it Final for TorchScript)
        self.attn.fused_attn = True  # type: ignore[misc]
        self.norm2 = nn.LayerNorm(dim)
        if activation == "swiglu":
            self.mlp: nn.Module = SwiGLU(dim, ff_dim, drop=dropout)
        else:
            self.mlp = Mlp(dim, ff_dim, act_layer=nn.GELU, drop=dropout)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x), is_causal=self.causal))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class BlockStack(nn.Module):
    """Transformer blocks over the tokens of one axis of ``(B, D, T, H, W)`` features -> same shape.

    Subclasses say which tokens form a sequence and what position code they get (``sequences``)
    and how the sequences go back to features (``features``); the blocks are the same.
    ``drop_path`` gives each block's stochastic depth (and so the number of blocks).
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, ff_dim: int, activation: str, dropout: float,
                 attn_dropout: float, drop_path: list[float], causal: bool):
        super().__init__()
        self.blocks = nn.ModuleList(
            TransformerBlock(dim, num_heads, head_dim, ff_dim, activation, dropout, attn_dropout, dp, causal=causal)
            for dp in drop_path)

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def features(self, s: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.blocks:
            return x
        s = self.sequences(x)
        for block in self.blocks:
            s = block(s)
        return self.features(s, x.shape)


class CausalTemporalBlocks(BlockStack):
    """Causal self-attention over time at each spatial position, with a 1-D time code added first.

    ``(B, D, T, H, W)`` -> ``(B, D, T, H, W)``; step t sees steps <= t of its own position only.
    """

    def __init__(self, dim: int, num_heads: int, head_dim: int, ff_dim: int, activation: str, dropout: float,
                 attn_dropout: float, drop_path: list[float]):
        super().__init__(dim, num_heads, head_dim, ff_dim, activation, dropout, attn_dropout, drop_path, causal=True)

    def sequences(self, x: torch.Tensor) -> torch.Tensor:
        t, d = x.shape[2], x.shape[1]
        return rearrange(x, "b d t h w -> (b h w) t d") + sincos(torch.arange(t, device=x.device), d).to(x.dtype)

    def features(self, s: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        b, _, _, h, w = shape
        return rearrange(s, "(b h w) t d -> b d t h w", b=b, h=h, w=w)
