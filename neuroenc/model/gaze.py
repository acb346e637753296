"""Per-frame gaze correction: each stimulus frame moved onto the retina by its own eye position.

The convnet integrates many past frames, each seen at another gaze; a readout shifter
(:mod:`neuroenc.model.shifter`) can only move the readouts by one gaze per step. This stage
resamples every frame of the screen movie so that it shows what the retina saw at that frame,
before the frontend: retinal pixel (x, y) shows the screen at (x + sx_t, y + sy_t), where
(sx_t, sy_t) = gain * eye_t + offset is frame t's eye position in pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _key(session: str) -> str:
    return session.replace(".", "·")  # ParameterDict keys may not contain '.', session ids may


def shift_frames(stim: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """``stim (B, C, T, H, W)`` with frame t of element b moved by ``shift[b, t] = (sx, sy)``
    pixels: output pixel (x, y) is the input at (x + sx, y + sy), bilinear between pixel centres
    (at integer coordinates), 0 beyond the frame's edge. ``shift (B, T, 2)``."""
    b, c, t, h, w = stim.shape
    shift = shift.to(stim.dtype)
    # align_corners=True puts -1 and +1 on the centres of the first and last pixels
    xs = torch.arange(w, device=stim.device, dtype=stim.dtype)
    ys = torch.arange(h, device=stim.device, dtype=stim.dtype)
    gx = (xs + shift[..., 0, None, None]) * (2 / max(w - 1, 1)) - 1  # (B, T, 1, W)
    gy = (ys[:, None] + shift[..., 1, None, None]) * (2 / max(h - 1, 1)) - 1  # (B, T, H, 1)
    grid = torch.stack(torch.broadcast_tensors(gx, gy), -1).reshape(b * t, h, w, 2)
    frames = stim.transpose(1, 2).reshape(b * t, c, h, w)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return out.reshape(b, t, c, h, w).transpose(1, 2)


class FrameGazeCorrection(nn.Module):
    """Each stimulus frame shifted by that frame's eye position, with a learned calibration per session.

    ``columns`` name the behaviour columns (the session's ``behavior_names``) holding the eye
    position, x then y, in the data's units; ``eye_px_per_unit`` (``data.eye_px_per_unit``) is
    how many pixels of the frame one unit is. Per session, ``gain[session]`` (pixels per data
    unit, x and y) starts there and ``offset[session]`` (pixels, x and y) at 0; both are learned.

    The model receives the behaviour standardised per session (``(raw - behavior_mean) /
    behavior_std``, :func:`~neuroenc.data.windows.normalization_constants`); the buffers
    ``eye_mean`` and ``eye_std`` ``(S, 2)`` undo that for the eye columns, so the gain and offset
    stay in data units and pixels. They come from ``normalization`` (``DatasetInfo.normalization``)
    and are saved with the weights; without it (a model built without data, to load a checkpoint
    into) they start at 0 and 1 until the checkpoint's are loaded.

    Frame t uses frame t's stimulus and eye position only: causal by construction.

    ``forward(stim (B, C, T, H, W), behavior (B, T, n_behavior), session)`` -> ``(B, C, T, H, W)``.
    """

    index: torch.Tensor  # buffers; declared for the type checker
    eye_mean: torch.Tensor
    eye_std: torch.Tensor

    def __init__(self, behavior_names: list[str], session_ids: list[str], columns: list[str],
                 eye_px_per_unit: float | None, normalization: dict[str, dict] | None = None):
        super().__init__()
        columns = list(columns)
        if len(columns) != 2:
            raise ValueError(f"columns: needs the 2 eye-position columns (x, y), got {columns}")
        if eye_px_per_unit is None:
            raise ValueError("eye_px_per_unit: is null (data.eye_px_per_unit); the per-frame gaze correction needs "
                             f"the pixels of the frame per unit of the eye columns {columns}: set "
                             "data.eye_px_per_unit or use gaze=none")
        missing = [c for c in columns if c not in behavior_names]
        if missing:
            have = (f"the data's behaviour columns {list(behavior_names)} (meta.json behavior_names)" if behavior_names
                    else "the data's behaviour columns: it has none (meta.json behavior_names is empty)")
            raise ValueError(f"columns: {missing} not among {have}; the per-frame gaze correction needs the eye "
                             "position: name its columns or use gaze=none")
        self.columns = columns
        index = [behavior_names.index(c) for c in columns]
        self.register_buffer("index", torch.tensor(index), persistent=False)
        self.session_index = {s: i for i, s in enumerate(session_ids)}
        mean, std = torch.zeros(len(session_ids), 2), torch.ones(len(session_ids), 2)
        for i, s in enumerate(session_ids):
            norm = (normalization or {}).get(s)
            if norm is not None:
                mean[i] = torch.as_tensor(norm["behavior_mean"], dtype=torch.float32)[index]
                std[i] = torch.as_tensor(norm["behavior_std"], dtype=torch.float32)[index]
        self.register_buffer("eye_mean", mean)
        self.register_buffer("eye_std", std)
        self.gain = nn.ParameterDict({_key(s): nn.Parameter(torch.full((2,), float(eye_px_per_unit)))
                                      for s in session_ids})
        self.offset = nn.ParameterDict({_key(s): nn.Parameter(torch.zeros(2)) for s in session_ids})

    def shift(self, behavior: torch.Tensor, session: str) -> torch.Tensor:
        """``(B, T, 2)`` each frame's shift in pixels (x, y) from the standardised ``behavior (B, T, n_behavior)``."""
        i = self.session_index[session]
        eye = behavior.index_select(-1, self.index) * self.eye_std[i] + self.eye_mean[i]  # the data's units
        return eye * self.gain[_key(session)] + self.offset[_key(session)]

    def forward(self, stim: torch.Tensor, behavior: torch.Tensor, session: str) -> torch.Tensor:
        # zeros beyond the screen's edge are the stimulus mean: the datamodule standardises each
        # session's stimulus to zero mean, and the screen beyond its edge is grey
        return shift_frames(stim, self.shift(behavior, session))

    def learned(self) -> dict[str, dict[str, float]]:
        """Per session id, the calibration as learned: ``gain_x``, ``gain_y`` (pixels per data unit)
        and ``offset_x``, ``offset_y`` (pixels)."""
        out = {}
        for s in self.session_index:
            gain, offset = self.gain[_key(s)].tolist(), self.offset[_key(s)].tolist()
            out[s] = {"gain_x": gain[0], "gain_y": gain[1], "offset_x": offset[0], "offset_y": offset[1]}
        return out
