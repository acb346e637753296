"""Modulators: mix behaviour into the convnet's features, causally, at the convnet's rate: one step per
frame, or per core step when the core strides time (see :class:`neuroenc.model.encoder.Encoder`)."""

from __future__ import annotations

import logging

import torch
from torch import nn

from neuroenc.model.gru_scan import gru_scan
from neuroenc.model.layers import CausalConv3d

log = logging.getLogger(__name__)


class NoModulator(nn.Module):
    """``modulator=none``: convnet features pass through; behaviour is not used."""

    def __init__(self, in_channels: int, behavior_dim: int = 0):
        super().__init__()
        self.out_channels = in_channels

    def forward(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        return x


class ConvGRUModulator(nn.Module):
    """A convolutional GRU over time on the convnet features, with behaviour mixed in.

    The behaviour at each step, ``(B, T, n_behavior)``, is embedded to ``beh_emb_dim`` and
    concatenated (broadcast over space) to that step's features. The input-to-gate
    convolution runs on all steps in one batched call; only the recurrence loops over time.
    Input ``(B, C, T, H, W)`` with ``T`` the convnet's steps (the frames, unless the convnet strides
    time); output ``(B, hidden_dim, T, H, W)``, one map per step; step t's output depends on
    steps <= t only.

    A 1x1 GRU (``kernel_size=1``, the default) runs as one :func:`~neuroenc.model.gru_scan.gru_scan`
    over all positions, with the behaviour's part of the input gates computed once per step
    rather than broadcast over space and convolved: the same function of the same parameters
    (state-dict keys and shapes unchanged), faster to train (docs/speed.md). Larger kernels mix
    neighbouring positions and keep the per-frame convolution loop.

    Data without behaviour columns (``behavior_dim=0``) leave it a GRU over the features alone,
    with no embedding; a ``beh_emb_dim`` above 0 then sizes nothing, and a warning says so.
    """

    def __init__(self, in_channels: int, behavior_dim: int, hidden_dim: int, beh_emb_dim: int, kernel_size: int):
        super().__init__()
        if hidden_dim <= 0:
            raise ValueError(f"hidden_dim: must be positive, got {hidden_dim}")
        if beh_emb_dim < 0:
            raise ValueError(f"beh_emb_dim: must not be negative, got {beh_emb_dim}")
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: must be positive and odd, got {kernel_size}")
        self.hidden_dim = hidden_dim
        self.out_channels = hidden_dim
        if behavior_dim == 0 and beh_emb_dim > 0:
            # a warning, not an error: the default config (beh_emb_dim=8) must train on such data
            log.warning("modulator.beh_emb_dim=%d does nothing: the data has no behaviour columns (meta.json "
                        "behavior_names is empty), so the ConvGRU mixes in no behaviour; set modulator.beh_emb_dim=0 "
                        "for this data", beh_emb_dim)
        self.embed = nn.Linear(behavior_dim, beh_emb_dim) if behavior_dim > 0 and beh_emb_dim > 0 else None
        cin = in_channels + (beh_emb_dim if self.embed is not None else 0)
        p = kernel_size // 2
        self.input_gates = CausalConv3d(cin, 3 * hidden_dim, (1, kernel_size, kernel_size))
        self.hidden_gates = nn.Conv2d(hidden_dim, 3 * hidden_dim, kernel_size, padding=p, bias=False)

    def forward(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        if self.input_gates.kernel_size[1] == 1:
            return self._forward_pointwise(x, behavior)
        return self._forward_convolutional(x, behavior)

    def _forward_convolutional(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of any kernel size: the input gates of all frames in one convolution,
        the recurrence a loop of :meth:`step`."""
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

    def _forward_pointwise(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` of a 1x1 GRU: every position a row of one recurrence."""
        b, c, t, h, w = x.shape
        hd = self.hidden_dim
        weight = self.input_gates.weight.view(3, hd, -1)  # (gate, H, C [+ E]): a 1x1x1 kernel
        assert self.input_gates.bias is not None  # made with a bias above
        bias = self.input_gates.bias.view(3, 1, hd)
        rows = x.permute(2, 0, 3, 4, 1).reshape(t, 1, b * h * w, c)  # (T, 1, N, C), N = (B, h, w)
        gx = rows @ weight[..., :c].transpose(1, 2)  # (T, 3, N, H): each gate a contiguous block
        if self.embed is None:
            gx = gx + bias
        else:
            # behaviour is the same at every position: its share of the gates once per (B, T)
            e = self.embed(behavior.to(x.dtype))  # (B, T, E)
            ge = torch.einsum("bte,ghe->tgbh", e, weight[..., c:]) + bias  # (T, 3, B, H)
            gx.view(t, 3, b, h * w, hd).add_(ge[:, :, :, None])  # in place: a fresh tensor that backward does not need
        # the recurrence in float32 whatever the autocast: 128+ steps of bf16 rounding would compound
        with torch.autocast("cuda" if x.is_cuda else "cpu", enabled=False):  # not "meta" (FLOP counting)
            gx = gx.float()
            states = gru_scan(gx, self.hidden_gates.weight.flatten(1).float(), gx.new_zeros(b * h * w, hd))
        return states.to(x.dtype).view(t, b, h, w, hd).permute(1, 4, 0, 2, 3)

    def step(self, gx: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """One GRU update from this frame's input gates ``(B, 3H, h, w)`` and the state ``(B, H, h, w)``."""
        gxr, gxz, gxn = gx.chunk(3, 1)
        ghr, ghz, ghn = self.hidden_gates(state).chunk(3, 1)
        r = torch.sigmoid(gxr + ghr)
        z = torch.sigmoid(gxz + ghz)
        n = torch.tanh(gxn + r * ghn)
        return (1 - z) * n + z * state

    def compile(self, *args, **kwargs) -> None:
        """Compile the recurrence step (a 1x1 GRU's :func:`gru_scan` stays eager: it is already one
        fused loop, and dynamo would unroll it); compiling ``forward`` would unroll the loop over every frame
        into one graph (minutes of compilation for 300 frames); the step is one small graph, reused."""
        self.input_gates.compile(*args, **kwargs)
        self.step = torch.compile(self.step, *args, **kwargs)  # type: ignore[method-assign]
