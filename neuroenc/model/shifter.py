"""Shifters: where the eye points moves where every neuron of a session reads.

The stimulus is the movie on the screen; a neuron's receptive field is fixed on the retina, so
when the eye moves by (dx, dy) the neuron sees the screen at its receptive field plus (dx, dy).
A shifter maps each frame's eye position to that displacement, in pixels of the frame, and the
readout adds it to every neuron's position (as in the Sensorium baselines, Lurz et al. 2021).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

log = logging.getLogger(__name__)


class MLPShifter(nn.Module):
    """Per frame, the eye-position columns of the behaviour -> a shift (dx, dy) in pixels.

    ``columns`` name the behaviour columns (the session's ``behavior_names``) that hold the eye
    position, x then y. An MLP of ``hidden`` widths (tanh) maps them to the shift; one MLP per
    session (``shared=False``, sessions may have their own calibrations) or one for all. Its last
    layer starts at zero: an untrained shifter shifts nothing.

    Without the columns in the data, ``required=True`` is an error naming the missing columns;
    ``required=False`` (the ``auto`` option) leaves the shifter inactive (``active`` is False,
    the encoder drops it) and says so in the log.

    ``forward(behavior (B, T, n_behavior), session)`` -> ``(B, T, 2)`` shifts in pixels (x, y).
    """

    index: torch.Tensor  # a buffer; declared for the type checker

    def __init__(self, behavior_names: list[str], session_ids: list[str], columns: list[str], hidden: list[int],
                 shared: bool, required: bool):
        super().__init__()
        columns = list(columns)
        if len(columns) != 2:
            raise ValueError(f"columns: needs the 2 eye-position columns (x, y), got {columns}")
        missing = [c for c in columns if c not in behavior_names]
        self.active = not missing
        self.columns = columns
        if missing:
            if required:
                have = (f"the data's behaviour columns {list(behavior_names)} (meta.json behavior_names)" if behavior_names
                        else "the data's behaviour columns: it has none (meta.json behavior_names is empty)")
                raise ValueError(f"columns: {missing} not among {have}; the shifter needs the eye position: name its "
                                 "columns or use shifter=none")
            log.info("no shifter: the data has no behaviour columns %s", missing)
            return
        self.register_buffer("index", torch.tensor([behavior_names.index(c) for c in columns]), persistent=False)
        self.shared = shared
        keys = ["shared"] if shared else [s.replace(".", "·") for s in session_ids]
        self.mlps = nn.ModuleDict({k: self._mlp(list(hidden)) for k in keys})

    @staticmethod
    def _mlp(hidden: list[int]) -> nn.Sequential:
        layers, width = [], 2
        for h in hidden:
            layers += [nn.Linear(width, h), nn.Tanh()]
            width = h
        last = nn.Linear(width, 2)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        return nn.Sequential(*layers, last)

    def forward(self, behavior: torch.Tensor, session: str) -> torch.Tensor:
        eye = behavior.index_select(-1, self.index)
        mlp = self.mlps["shared" if self.shared else session.replace(".", "·")]
        return mlp(eye)
