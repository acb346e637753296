"""Per-session readouts: from a feature map to every neuron's rate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NONLINEARITIES = ("softplus", "exp")
POSITION_INITS = ("data", "uniform")


def inverse_nonlinearity(rate: torch.Tensor, name: str) -> torch.Tensor:
    rate = rate.clamp(min=1e-4)
    if name == "exp":
        return torch.log(rate)
    return rate + torch.log(-torch.expm1(-rate))  # inverse softplus, stable for small rates


class GaussianReadout(nn.Module):
    """One session's readout: per neuron a 2-D Gaussian position on the feature map.

    In training each neuron reads the features at a position sampled from N(mean, std) (mean in
    [-1, 1]^2 grid coordinates, x then y, see :mod:`neuroenc.model.geometry`); in eval it reads at
    the mean. The features are weighted, summed with a bias and passed through the output
    nonlinearity. The bias starts at the session's training mean rate through the inverse
    nonlinearity.

    Where a neuron starts matters more than anything else here: with its position far from its
    cell, its features see nothing that predicts its spikes, get no consistent gradient, and so
    give the position and the convnet none either. ``init_positions='data'`` therefore starts each
    neuron at its receptive field as estimated from the training data
    (:mod:`neuroenc.data.receptive_fields`), passed in as ``init_mean``; ``'uniform'`` starts it
    anywhere in ``[-0.5, 0.5]^2``. Feature weights start small and random (``feature_init_std``),
    so the convnet gets a gradient from the first step.

    Input ``(B, C, T, H, W)`` and optionally a per-step shift of every position ``(B, T, 2)`` in
    grid units (a shifter's eye correction); output rates ``(B, T, N)``.
    """

    def __init__(self, in_channels: int, n_neurons: int, init_std: float, nonlinearity: str, init_positions: str,
                 feature_init_std: float, mean_rate=None, init_mean: torch.Tensor | None = None):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"nonlinearity: {nonlinearity!r} is not one of {NONLINEARITIES}")
        if init_positions not in POSITION_INITS:
            raise ValueError(f"init_positions: {init_positions!r} is not one of {POSITION_INITS}")
        if init_std <= 0:
            raise ValueError(f"init_std: must be positive, got {init_std}")
        self.n_neurons = n_neurons
        self.nonlinearity = nonlinearity
        if init_mean is None:
            mean = torch.empty(n_neurons, 2).uniform_(-0.5, 0.5)
        else:
            mean = torch.as_tensor(init_mean, dtype=torch.float32).reshape(n_neurons, 2).clamp(-1, 1)
        self.mean = nn.Parameter(mean)
        self.log_std = nn.Parameter(torch.full((n_neurons, 2), math.log(init_std)))
        self.features = nn.Parameter(torch.randn(n_neurons, in_channels) * feature_init_std)
        rate = torch.as_tensor(mean_rate if mean_rate is not None else [0.1] * n_neurons, dtype=torch.float32)
        self.bias = nn.Parameter(inverse_nonlinearity(rate, nonlinearity))

    def positions(self, batch: int) -> torch.Tensor:
        """Sampling positions ``(batch, N, 2)`` in grid coordinates."""
        mean = self.mean.clamp(-1, 1)
        if self.training:
            noise = torch.randn(batch, *mean.shape, device=mean.device, dtype=mean.dtype)
            return (mean + noise * self.log_std.exp()).clamp(-1, 1)
        return mean.expand(batch, -1, -1)

    def forward(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        grid = self.positions(b).to(x.dtype)  # (B, N, 2): one draw per window, shared by its frames
        if shift is None:
            frames = x.permute(0, 2, 1, 3, 4).reshape(b, t * c, h, w)
            feats = F.grid_sample(frames, grid[:, :, None, :], align_corners=True)  # (B, T*C, N, 1)
        else:
            grid = (grid[:, None] + shift[:, :, None, :].to(x.dtype)).clamp(-1, 1)  # (B, T, N, 2)
            frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
            feats = F.grid_sample(frames, grid.reshape(b * t, self.n_neurons, 1, 2), align_corners=True)
        feats = feats.view(b, t, c, self.n_neurons)
        y = torch.einsum("btcn,nc->btn", feats, self.features.to(x.dtype)) + self.bias
        return F.softplus(y) if self.nonlinearity == "softplus" else torch.exp(y)
