"""A hand-built encoder with known cells, for the in-silico analyses' tests.

Two neurons read one Gabor filter pair at a known pixel: neuron 0 is a simple cell (the even
filter's output, linear before the softplus), neuron 1 a complex cell (the pair's energy). Each
frame's filter outputs pass through a known causal temporal kernel, so the cells' receptive
field, preferred orientation and spatial frequency, latency and F1/F0 are known exactly.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn

from neuroenc.data.datamodule import DatasetInfo
from neuroenc.data.synthetic import gabor
from neuroenc.model.encoder import Encoder
from neuroenc.model.frontend import PixelFrontend
from neuroenc.model.geometry import FeatureGrid
from neuroenc.model.modulator import NoModulator
from neuroenc.model.readout import GaussianReadout
from neuroenc.trained import CheckpointRecord, TrainedEncoder

H, W = 24, 32
FRAME_RATE = 30.0
CELL = dict(x=14.0, y=11.0, sigma=2.0, theta=math.radians(30), wavelength=6.0, phase=0.0)
# causal temporal kernel, index 0 = zero lag: the response peaks 2 frames (67 ms) after a frame
KERNEL = (0.0, 0.5, 1.0, 0.5)
PEAK_LAG_FRAMES = 2


class GaborPair(nn.Module):
    """``(B, 1, T, H, W)`` -> ``(B, 2, T, H, W)``: channel 0 the even Gabor's output, channel 1 the
    energy of the even/odd pair, each filtered in time by :data:`KERNEL`; full resolution."""

    temporal_stride = 1
    out_channels = 2

    def __init__(self, cell: dict = CELL):
        super().__init__()
        even = gabor(H, W, cell["x"], cell["y"], cell["sigma"], cell["theta"], cell["wavelength"], cell["phase"])
        odd = gabor(H, W, cell["x"], cell["y"], cell["sigma"], cell["theta"], cell["wavelength"],
                    cell["phase"] + math.pi / 2)
        # a filter the frame's size, centred on the frame, applied with 'same' padding: the output
        # at (y, x) is the filter centred on (y, x); the readout reads it at the cell's centre
        shift = (H // 2 - round(cell["y"]), W // 2 - round(cell["x"]))
        bank = np.stack([np.roll(even, shift, (0, 1)), np.roll(odd, shift, (0, 1))])
        bank /= np.linalg.norm(bank.reshape(2, -1), axis=1)[:, None, None]
        self.register_buffer("bank", torch.tensor(bank, dtype=torch.float32)[:, None])  # (2, 1, H, W)
        self.register_buffer("kernel", torch.tensor(KERNEL[::-1], dtype=torch.float32))  # oldest tap first

    def feature_grid(self, frame_shape: tuple[int, int]) -> FeatureGrid:
        return FeatureGrid(tuple(frame_shape))  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, 1, h, w)
        # pad so that output (y, x) is the filter's dot product with the frame, centred on (y, x)
        frames = nn.functional.pad(frames, (w // 2, w - 1 - w // 2, h // 2, h - 1 - h // 2))
        out = nn.functional.conv2d(frames, self.bank).view(b, t, 2, h, w)
        taps = len(KERNEL)
        padded = nn.functional.pad(out, (0, 0, 0, 0, 0, 0, taps - 1, 0))  # zeros before the first frame
        filtered = sum(self.kernel[i] * padded[:, i : i + t] for i in range(taps))
        even, odd_energy = filtered[:, :, 0], filtered[:, :, 1]
        energy = even**2 + odd_energy**2
        return torch.stack([even, energy], 1)


def gabor_units(cell: dict = CELL) -> TrainedEncoder:
    """The two-neuron encoder as a :class:`TrainedEncoder` of one session ``"s"``, whose
    ``info`` behaves like a checkpoint's (no behaviour normalisation; the eye at 0)."""
    convnet = GaborPair(cell)
    readout = GaussianReadout(2, 2, init_std=0.01, nonlinearity="softplus", init_positions="uniform",
                              feature_init_std=0.0, mean_rate=[0.5, 0.5])
    encoder = Encoder(PixelFrontend(1), convnet, NoModulator(2), {"s": readout}, frame_shape=(H, W))
    with torch.no_grad():
        readout.mean.copy_(encoder.grid.to_grid(torch.tensor([[cell["x"], cell["y"]]] * 2, dtype=torch.float64)).float())
        readout.features.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        readout.bias.fill_(-1.0)
    info = DatasetInfo(session_ids=["s"], n_neurons={"s": 2}, mean_rate={"s": [0.5, 0.5]}, behavior_dim=2,
                       in_channels=1, frame_shape=(H, W), has_oracle=False, behavior_names=["eye_x", "eye_y"])
    config = OmegaConf.create({"data": {"window": 16, "burn_in": 4}})
    return TrainedEncoder(encoder, config, info, CheckpointRecord("hand-built", None, None, None))
