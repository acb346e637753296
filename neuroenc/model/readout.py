"""Per-session readouts: from a feature map to every neuron's rate."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

NONLINEARITIES = ("softplus", "exp")


def inverse_nonlinearity(rate: torch.Tensor, name: str) -> torch.Tensor:
    rate = rate.clamp(min=1e-4)
    if name == "exp":
        return torch.log(rate)
    return rate + torch.log(-torch.expm1(-rate))  # inverse softplus, stable for small rates


class GaussianReadout(nn.Module):
    """One session's readout: per neuron a 2-D Gaussian position on the feature map.

    In training each neuron reads the features at a position sampled from N(mean, std) (mean in
    [-1, 1]^2 grid coordinates, x then y); in eval it reads at the mean. The features are
    weighted, summed with a bias and passed through the output nonlinearity. The bias starts at
    the session's training mean rate through the inverse nonlinearity.
    Input ``(B, C, T, H, W)``; output rates ``(B, T, N)``.
    """

    def __init__(self, in_channels: int, n_neurons: int, mean_rate=None, init_std: float = 0.2,
                 nonlinearity: str = "softplus", bias: bool = True):
        super().__init__()
        if nonlinearity not in NONLINEARITIES:
            raise ValueError(f"readout.nonlinearity: {nonlinearity!r} is not one of {NONLINEARITIES}")
        self.n_neurons = n_neurons
        self.nonlinearity = nonlinearity
        self.mean = nn.Parameter(torch.empty(n_neurons, 2).uniform_(-0.5, 0.5))
        self.log_std = nn.Parameter(torch.full((n_neurons, 2), math.log(init_std)))
        # zero feature weights: an untrained readout predicts each neuron's training mean rate (the null model)
        self.features = nn.Parameter(torch.zeros(n_neurons, in_channels))
        rate = torch.as_tensor(mean_rate if mean_rate is not None else [0.1] * n_neurons, dtype=torch.float32)
        self.bias = nn.Parameter(inverse_nonlinearity(rate, nonlinearity))

    def positions(self, batch: int) -> torch.Tensor:
        """Sampling positions ``(batch, N, 2)`` in grid coordinates."""
        mean = self.mean.clamp(-1, 1)
        if self.training:
            noise = torch.randn(batch, *mean.shape, device=mean.device, dtype=mean.dtype)
            return (mean + noise * self.log_std.exp()).clamp(-1, 1)
        return mean.expand(batch, -1, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        grid = self.positions(b).to(x.dtype)[:, :, None, :]  # (B, N, 1, 2): same position for all frames
        frames = x.permute(0, 2, 1, 3, 4).reshape(b, t * c, h, w)
        feats = F.grid_sample(frames, grid, align_corners=True)  # (B, T*C, N, 1)
        feats = feats.view(b, t, c, self.n_neurons)
        y = torch.einsum("btcn,nc->btn", feats, self.features.to(x.dtype)) + self.bias
        return F.softplus(y) if self.nonlinearity == "softplus" else torch.exp(y)
