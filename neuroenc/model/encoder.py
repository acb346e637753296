"""The encoder: frontend -> convnet -> modulator -> the readout of the batch's session."""

from __future__ import annotations

from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from neuroenc.model.gaze import FrameGazeCorrection
from neuroenc.model.geometry import FeatureGrid
from neuroenc.model.protocols import ConvNet, Modulator, check_parts, temporal_stride


def step_ends(convnet: nn.Module, t: int) -> torch.Tensor:
    """``(T',)`` the newest input frame each of the convnet's output steps has seen, for ``t`` frames.

    Convnets that keep every frame have no ``step_ends`` method: step i is frame i.
    """
    ends = getattr(convnet, "step_ends", None)
    return torch.arange(t) if ends is None else ends(t)


class StepsToFrames(nn.Module):
    """Frame t takes the features of the newest convnet step that ends at or before t; frames before
    the first step take a learned 'no step yet' feature (``channels`` values, zero at the start)."""

    def __init__(self, channels: int):
        super().__init__()
        self.no_step_yet = nn.Parameter(torch.zeros(channels))

    def prepend_empty(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, D, T', H, W)`` -> ``(B, D, 1 + T', H, W)`` with the 'no step yet' feature first."""
        b, d, _, h, w = x.shape
        return torch.cat([self.no_step_yet.to(x.dtype).view(1, d, 1, 1, 1).expand(b, d, 1, h, w), x], 2)

    @staticmethod
    def index(ends: torch.Tensor, t: int) -> torch.Tensor:
        """``(t,)`` where frame t finds its features among the ``1 + T'`` steps of :meth:`prepend_empty`."""
        # the number of steps that end at or before t is the newest such step + 1
        return torch.searchsorted(ends, torch.arange(t), right=True)

    def forward(self, x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        return x.index_select(2, index)


class Encoder(nn.Module):
    """Maps a stimulus window and behaviour to every neuron's rate at every frame.

    ``forward(stim (B, C, T, H, W), behavior (B, T, n_behavior), session)`` -> ``(B, T, N_session)``.
    Index 0 is the oldest frame; the rate at frame t depends on frames <= t only. One readout
    per session, keyed by session id; a batch holds windows of one session.

    A convnet with a temporal stride (``convnet.temporal_stride > 1``: tubelets, strided stages)
    returns ``T'`` steps, and step i has seen frames up to ``convnet.step_ends(T)[i]``. The
    modulator then runs at the convnet's rate, on the behaviour of each step's newest frame (a
    recurrence over 37 token steps in place of 300 frames), and frame t gets the rates of the
    newest step that ends at or before t; frames before the first step get those of a learned
    'no step yet' feature. So nothing after t reaches frame t, and features are up to
    ``temporal_stride - 1`` frames old.

    With a ``shifter``, each step's eye position (the behaviour at the step's newest frame) moves
    where every neuron of the session reads, by the shifter's displacement in pixels, converted
    to grid units through ``grid``: where the convnet's cells sit on a frame of ``frame_shape``
    (:class:`~neuroenc.model.geometry.FeatureGrid`).

    With a ``gaze`` stage (:class:`~neuroenc.model.gaze.FrameGazeCorrection`), every frame of the
    stimulus is first moved by that frame's own eye position, per session, before the frontend:
    :meth:`steps`, and so everything built on it, sees the corrected stimulus.
    """

    pixels_per_unit: torch.Tensor  # a buffer, with a shifter

    def __init__(self, frontend: nn.Module, convnet: nn.Module, modulator: nn.Module,
                 readouts: dict[str, nn.Module], shifter: nn.Module | None = None,
                 frame_shape: tuple[int, int] | None = None, gaze: FrameGazeCorrection | None = None):
        super().__init__()
        check_parts(frontend, convnet, modulator, readouts)
        self.gaze = gaze
        self.frontend = frontend
        self.convnet = convnet
        self.modulator = modulator
        self.shifter = shifter
        self.grid: FeatureGrid | None = None
        if frame_shape is not None:  # tuple(): some callers pass a list
            self.grid = cast(ConvNet, convnet).feature_grid(tuple(frame_shape))  # type: ignore[arg-type]
        if shifter is not None and self.grid is None:
            raise ValueError("a shifter needs the frame shape, to turn its pixels into grid units")
        if shifter is not None:  # a buffer: on the model's device, not copied there at every step
            assert self.grid is not None  # raised above otherwise
            self.register_buffer("pixels_per_unit", self.grid.pixels_per_unit().float(), persistent=False)
        self.session_ids = list(readouts)
        # ModuleDict keys may not contain '.', session ids may
        self.readouts = nn.ModuleDict({self._key(s): m for s, m in readouts.items()})
        self.temporal_stride = temporal_stride(convnet)
        self.channels_last = False
        self.to_frames = StepsToFrames(cast(Modulator, modulator).out_channels) if self.temporal_stride > 1 else None
        self._index_cache: dict[tuple[int, str], tuple[torch.Tensor, torch.Tensor | None]] = {}

    @staticmethod
    def _key(session: str) -> str:
        return session.replace(".", "·")

    def readout(self, session: str) -> nn.Module:
        return self.readouts[self._key(session)]

    def use_channels_last(self) -> "Encoder":
        """Store 5-D weights and the stimulus channels-last (``torch.channels_last_3d``)."""
        self.channels_last = True
        for p in self.parameters():  # Module.to(memory_format=...) refuses the 4-D weights beside them
            if p.dim() == 5:
                p.data = p.data.contiguous(memory_format=torch.channels_last_3d)
        return self

    def compile_parts(self, **kwargs) -> "Encoder":
        """``torch.compile`` the frontend, the convnet and the modulator in place (state-dict keys
        unchanged, so checkpoints load either way). Readouts stay eager: one per session would
        mean one compiled graph per session.

        Static shapes, and dynamo's caches cleared first: jobs of a multirun share one process,
        and code compiled for an earlier job's shapes would otherwise turn this job's shapes
        symbolic, which inductor cannot always compile (seen: ViViT after another preset).
        """
        torch._dynamo.reset()
        kwargs.setdefault("dynamic", False)
        for part in (self.frontend, self.convnet, self.modulator):
            part.compile(**kwargs)
        return self

    def _indices(self, t: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """For windows of ``t`` frames: each convnet step's newest frame ``(T',)`` and, with a temporal
        stride, where each frame finds its step among the ``1 + T'`` of ``to_frames``; on ``device``,
        made once per window length (not copied to the device at every step)."""
        key = (t, str(device))
        if key not in self._index_cache:
            ends = step_ends(self.convnet, t)
            index = None if self.to_frames is None else self.to_frames.index(ends, t).to(device)
            self._index_cache[key] = (ends.to(device), index)
        return self._index_cache[key]

    def _at_steps(self, behavior: torch.Tensor, steps: int) -> torch.Tensor:
        """``behavior (B, T, n_behavior)`` at the newest frame of each of the convnet's ``steps``."""
        if steps != behavior.shape[1]:
            behavior = behavior.index_select(1, self._indices(behavior.shape[1], behavior.device)[0])
        return behavior

    def modulate(self, features: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor:
        """The modulator on the convnet's steps ``(B, C, T', H', W')``, with each step's behaviour
        taken at the step's newest frame from ``behavior (B, T, n_behavior)``."""
        return self.modulator(features, self._at_steps(behavior, features.shape[2]))

    def shift(self, behavior: torch.Tensor, steps: int, session: str) -> torch.Tensor | None:
        """The shifter's displacement of the readout positions at each of the convnet's ``steps``,
        ``(B, T', 2)`` in grid units (x, y); None without a shifter."""
        if self.shifter is None:
            return None
        pixels = self.shifter(self._at_steps(behavior, steps), session)
        return pixels / self.pixels_per_unit.to(pixels.dtype)

    def gaze_corrected(self, stim: torch.Tensor, behavior: torch.Tensor, session: str | None) -> torch.Tensor:
        """``stim (B, C, T, H, W)`` with each frame moved by its eye position (the ``gaze`` stage),
        as the frontend sees it; ``stim`` itself without one."""
        if self.gaze is None:
            return stim
        if session is None:
            raise ValueError("the per-frame gaze correction is calibrated per session: pass the session id")
        return self.gaze(stim, behavior, session)

    def steps(self, stim: torch.Tensor, behavior: torch.Tensor, session: str | None = None) -> torch.Tensor:
        """Modulated features at the convnet's steps, ``(B, D, T', H', W')`` (``T' = T`` without a
        temporal stride). ``session``: the windows' session, which a ``gaze`` stage needs."""
        stim = self.gaze_corrected(stim, behavior, session)
        if self.channels_last:
            stim = stim.contiguous(memory_format=torch.channels_last_3d)
        return self.modulate(self.convnet(self.frontend(stim)), behavior)

    def _with_index(self, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x`` with the 'no step yet' feature prepended, and frame t's place in it; without a
        temporal stride, ``x`` and None (frame t is step t)."""
        if self.to_frames is None:
            return x, None
        return self.to_frames.prepend_empty(x), self._indices(t, x.device)[1]

    def features(self, stim: torch.Tensor, behavior: torch.Tensor, session: str | None = None) -> torch.Tensor:
        """The modulated feature map ``(B, D, T, H', W')``, one per frame: shared by all sessions
        but for a ``gaze`` stage, which needs the windows' ``session``."""
        x, index = self._with_index(self.steps(stim, behavior, session), stim.shape[2])
        if index is None:
            return x
        assert self.to_frames is not None  # an index comes with a temporal stride, which has to_frames
        return self.to_frames(x, index)

    def read(self, x: torch.Tensor, behavior: torch.Tensor, session: str) -> torch.Tensor:
        """Rates ``(B, T, N)`` of ``session``'s neurons from the modulated steps ``x`` of
        :meth:`steps` and the window's behaviour ``(B, T, n_behavior)`` (for the shifter)."""
        shift = self.shift(behavior, x.shape[2], session)
        x, index = self._with_index(x, behavior.shape[1])
        if shift is not None and index is not None:
            shift = F.pad(shift, (0, 0, 1, 0))  # the 'no step yet' feature is read unshifted
        # the readout reads every time step alike, so reading the steps and then copying rates
        # to frames gives the same as reading per-frame features, for T'+1 steps of work, not T
        rates = self.readout(session)(x, shift)
        return rates if index is None else rates.index_select(1, index)

    def forward(self, stim: torch.Tensor, behavior: torch.Tensor, session: str) -> torch.Tensor:
        return self.read(self.steps(stim, behavior, session), behavior, session)

    def parameter_counts(self) -> dict[str, int]:
        count = lambda m: sum(p.numel() for p in m.parameters())
        parts = {**({} if self.gaze is None else {"gaze": self.gaze}),
                 "frontend": self.frontend, "convnet": self.convnet, "modulator": self.modulator,
                 **({} if self.to_frames is None else {"to_frames": self.to_frames}),
                 **({} if self.shifter is None else {"shifter": self.shifter}), "readout": self.readouts}
        out = {k: count(m) for k, m in parts.items()}
        out["total"] = sum(p.numel() for p in self.parameters())
        return out
