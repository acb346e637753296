"""Modulators: mix behaviour into the core's features, frame by frame, causally."""

from __future__ import annotations

import torch
from torch import nn

from neuroenc.model.layers import CausalConv3d


class NoModulator(nn.Module):
    """``modulator=none``: core features pass through; behaviour is not used."""

    def __init__(self, in_channels: int, behavior_dim: int = 0):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        return x


class ConvGRUModulator(nn.Module):
    """A convolutional GRU over time on the core features, with behaviour mixed in.

    The behaviour at each frame, ``(B, T, n_behavior)``, is embedded to ``beh_emb_dim`` and
    concatenated (broadcast over space) to that frame's features. The input-to-gate
    convolution runs on all frames in one batched call; only the recurrence loops over time.
    Input ``(B, C, T, H, W)``; output ``(B, hidden_dim, T, H, W)``, one map per frame; frame t's
    output depends on frames <= t only.
    """

    def __init__(self, in_channels: int, behavior_dim: int, hidden_dim: int = 64, beh_emb_dim: int = 16,
                 kernel_size: int = 3):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"modulator.kernel_size must be odd, got {kernel_size}")
        self.hidden_dim = hidden_dim
        self.out_channels = hidden_dim
        self.embed = nn.Linear(behavior_dim, beh_emb_dim) if behavior_dim > 0 and beh_emb_dim > 0 else None
        cin = in_channels + (beh_emb_dim if self.embed is not None else 0)
        p = kernel_size // 2
        self.input_gates = CausalConv3d(cin, 3 * hidden_dim, (1, kernel_size, kernel_size))
        self.hidden_gates = nn.Conv2d(hidden_dim, 3 * hidden_dim, kernel_size, padding=p, bias=False)

    def forward(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        if self.embed is not None:
            e = self.embed(behavior.to(x.dtype))  # (B, T, E)
            x = torch.cat([x, e.permute(0, 2, 1)[..., None, None].expand(-1, -1, -1, h, w)], 1)
        # all frames at once; unbind (not indexing) so backward assembles the gradient once, not per frame
        frames = self.input_gates(x).unbind(2)  # T x (B, 3H, h, w)
        state = x.new_zeros(b, self.hidden_dim, h, w)
        out = []
        for gx in frames:
            state = self.step(gx, state)
            out.append(state)
        return torch.stack(out, 2)

    def step(self, gx: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One GRU update from this frame's input gates ``(B, 3H, h, w)`` and the state ``(B, H, h, w)``."""
        gxr, gxz, gxn = gx.chunk(3, 1)
        ghr, ghz, ghn = self.hidden_gates(state).chunk(3, 1)
        r = torch.sigmoid(gxr + ghr)
        z = torch.sigmoid(gxz + ghz)
        n = torch.tanh(gxn + r * ghn)
        return (1 - z) * n + z * state

    def compile(self, *args, **kwargs) -> None:
        """Compile the recurrence step: compiling ``forward`` would unroll the loop over every frame
        into one graph (minutes of compilation for 300 frames); the step is one small graph, reused."""
        self.input_gates.compile(*args, **kwargs)
        self.step = torch.compile(self.step, *args, **kwargs)
