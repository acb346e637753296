"""What every in-silico analysis gets (:class:`Probe`) and returns (:class:`Result`).

An analysis drives one session's readout with stimuli it makes itself, in the model's own units:
the stimulus standardised as in training (so a stimulus of standard deviation 1 has the training
stimulus's contrast), behaviour at its training mean with the gaze at 0 (fixation, in the
recording's eye units). Rates come from the last frame of each window, the one with the longest
history, so ``Probe.window`` frames is the longest history any analysis needs to give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from neuroenc.data.receptive_fields import EYE_COLUMNS
from neuroenc.data.windows import normalization_constants
from neuroenc.trained import TrainedEncoder


@dataclass
class Probe:
    """One session of one trained model, and the neurons to analyse.

    ``neurons``: indices into the session's readout. ``frame_rate`` in Hz and ``frame_shape``
    ``(H, W)`` in pixels of the model's input. ``truth``: meta.json ``neurons`` entries of the
    analysed neurons, in the same order (simulated data), else None. ``session``: the opened
    session (``neuroenc.data.sessions.Session``) for analyses that need recorded data (saccades,
    per-class scores), else None.
    """

    model: TrainedEncoder
    session_id: str
    neurons: np.ndarray
    frame_rate: float
    frame_shape: tuple[int, int]
    window: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    truth: list[dict] | None = None
    session: Any = None
    seed: int = 0
    _predicted: dict = field(default_factory=dict, repr=False)

    def behavior(self, batch: int, frames: int) -> torch.Tensor:
        """``(batch, frames, n_behavior)`` normalised behaviour: each column at its training mean,
        the gaze columns at 0 (fixation)."""
        info = self.model.info
        names = info.behavior_names or []
        beh = torch.zeros(batch, frames, info.behavior_dim, device=self.device)
        norm = self.model.normalization.get(self.session_id)
        if norm is not None:
            _, _, mean, inv_std = normalization_constants(norm)
            for col, name in enumerate(names):
                if name in EYE_COLUMNS:
                    beh[..., col] = float((0.0 - mean[col]) * inv_std[col])
        return beh

    def recorded_rates(self, start: int, stop: int) -> np.ndarray:
        """``(stop - start, N_session)`` the model's rates on frames ``start:stop`` of the recorded
        session (one trial), as ``TrainedEncoder.predict`` gives them (NaN for the first burn-in
        frames), computed once per trial for all the analyses that read them."""
        key = (start, stop)
        if key not in self._predicted:
            s = self.session
            norm = self.model.normalization.get(self.session_id) or s.stats()
            self._predicted[key] = self.model.predict(np.asarray(s.stim[start:stop]), np.asarray(s.behavior[start:stop]),
                                                      self.session_id, normalization=norm)
        return self._predicted[key]

    @torch.no_grad()
    def rates(self, stim: torch.Tensor, batch_size: int = 16) -> torch.Tensor:
        """``stim (B, T, H, W)`` or ``(B, C, T, H, W)`` in model units -> ``(B, len(neurons))``
        predicted rates (spikes per frame) at the last frame, ``batch_size`` stimuli at a time."""
        return torch.cat([self.last_frame(chunk) for chunk in stim.split(batch_size)])

    def last_frame(self, stim: torch.Tensor) -> torch.Tensor:
        """Differentiable ``(B, len(neurons))`` rates at the last frame of ``stim`` (no batching)."""
        if stim.ndim == 4:
            stim = stim[:, None]
        stim = stim.to(self.device, torch.float32)
        out = self.model(stim, self.behavior(stim.shape[0], stim.shape[2]), self.session_id)
        return out[:, -1, torch.as_tensor(self.neurons, device=out.device)]


@dataclass
class Result:
    """What an analysis found: ``columns`` one value per analysed neuron (CSV columns, prefixed by
    the analysis's name by the caller), ``summary`` medians and counts for ``summary.json``, and
    ``plot(path)`` which draws its figure into ``path`` (a PNG)."""

    columns: dict[str, np.ndarray]
    summary: dict[str, Any]
    plot: Callable[[Path], None] | None = None


def finite_median(values) -> float | None:
    """The median of the finite values (None when there are none): every analysis's summary figure,
    so that a neuron an analysis could not measure (NaN, inf) moves no median."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    return float(np.median(v)) if v.size else None


class Skipped(Exception):
    """An analysis that cannot run on this probe (no eye columns, no stimulus labels): the message
    says why in one line, and the other analyses still run."""
