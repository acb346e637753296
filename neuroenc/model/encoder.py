"""The encoder: frontend -> core -> modulator -> the readout of the batch's session."""

from __future__ import annotations

import torch
from torch import nn


class Encoder(nn.Module):
    """Maps a stimulus window and behaviour to every neuron's rate at every frame.

    ``forward(stim (B, C, T, H, W), behavior (B, T, n_behavior), session)`` -> ``(B, T, N_session)``.
    Index 0 is the oldest frame; the rate at frame t depends on frames <= t only. One readout
    per session, keyed by session id; a batch holds windows of one session.
    """

    def __init__(self, frontend: nn.Module, convnet: nn.Module, modulator: nn.Module,
                 readouts: dict[str, nn.Module]):
        super().__init__()
        self.frontend = frontend
        self.convnet = convnet
        self.modulator = modulator
        self.session_ids = list(readouts)
        # ModuleDict keys may not contain '.', session ids may
        self.readouts = nn.ModuleDict({self._key(s): m for s, m in readouts.items()})

    @staticmethod
    def _key(session: str) -> str:
        return session.replace(".", "·")

    def readout(self, session: str) -> nn.Module:
        return self.readouts[self._key(session)]

    def features(self, stim: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        """The modulated feature map ``(B, D, T, H', W')`` shared by all sessions."""
        return self.modulator(self.convnet(self.frontend(stim)), behavior)

    def forward(self, stim: torch.Tensor, behavior: torch.Tensor, session: str) -> torch.Tensor:
        return self.readout(session)(self.features(stim, behavior))

    def parameter_counts(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        parts = {"frontend": self.frontend, "convnet": self.convnet, "modulator": self.modulator,
                 "readout": self.readouts}
        out = {k: count(m) for k, m in parts.items()}
        out["total"] = sum(out.values())
        return out
