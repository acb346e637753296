"""A trained encoder and what it was trained with: what ``neuroenc.load(path)`` returns.

A checkpoint carries what is needed to rebuild its model without the data: the resolved config,
the session ids and the data shapes (``checkpoint["neuroenc"]``, written by
:class:`~neuroenc.training.module.EncoderModule`). :class:`TrainedEncoder` holds the rebuilt
:class:`~neuroenc.model.encoder.Encoder` with its config, data info and checkpoint record, and is
the one way the analyses, the prediction command and the report use a trained model:

- ``model(stim (B, C, T, H, W), behavior (B, T, n_behavior), session_id)`` -> rates ``(B, T, N)``
  on inputs normalised as in training (``WindowDataset``);
- ``model.predict(stim, behavior, session_id)`` on raw recordings (below);
- ``model.open_data(split)``: the data it was trained on (or other sessions), opened with its
  training config and checked against its readouts.

``predict`` takes the recording as it is (the units of ``stim.npy`` and ``behavior.npy``),
standardises it with the statistics stored in the checkpoint, and cuts it into the windows the
training loop scores (:func:`neuroenc.data.windows.tile_segment`: consecutive windows overlap by
``data.burn_in`` frames, the last one ends at the input's end), ``batch_size`` windows at a time.
So every frame's rate is the one validation scores for that frame of that trial, and memory stays
at a batch of windows however long the input. The first ``data.burn_in`` frames have no full
history and get NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from neuroenc.data.datamodule import DatasetInfo, SessionDataModule
from neuroenc.data.windows import normalization_constants, tile_segment
from neuroenc.model.encoder import Encoder
from neuroenc.training.build import build_datamodule, build_encoder
from neuroenc.training.loading import MODEL_KEYS, ConfigMismatchError, config_differences, data_info, read_checkpoint

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class CheckpointRecord:
    """Where the weights came from: the file, the epoch and step, and the validation scores
    logged at that step (None for a run that never validated)."""

    path: str
    epoch: int | None
    global_step: int | None
    val_scores: dict | None

    def __getitem__(self, key: str):  # model.checkpoint["epoch"], as before this was a class
        return getattr(self, key)


def _as_batch(array, name: str, ndim: int) -> tuple[np.ndarray, bool]:
    """``array`` with a leading batch axis, and whether it had one."""
    a = np.asarray(array)
    if a.dtype.kind not in "biuf":
        raise ValueError(f"predict: {name} has dtype {a.dtype}; expected numbers")
    if a.ndim == ndim:
        return a[None], False
    if a.ndim == ndim + 1:
        return a, True
    raise ValueError(f"predict: {name} has shape {a.shape}; expected {ndim} dimensions or {ndim + 1} (batched)")


class TrainedEncoder:
    """A trained :class:`~neuroenc.model.encoder.Encoder` (``.encoder``, in eval mode) with its
    resolved training ``config``, its data ``info`` (session ids, neurons, frame shape,
    behaviour columns, normalisation) and its ``checkpoint`` record. Attributes it does not have
    itself (``readouts``, ``frontend``, ``parameters()``, ...) are the encoder's."""

    def __init__(self, encoder: Encoder, config: DictConfig, info: DatasetInfo, checkpoint: CheckpointRecord):
        self.encoder, self.config, self.info, self.checkpoint = encoder.eval(), config, info, checkpoint

    def __getattr__(self, name: str):
        if name == "encoder":  # not set yet (unpickling, copying): no recursion
            raise AttributeError(name)
        return getattr(self.encoder, name)

    def __repr__(self) -> str:
        return (f"TrainedEncoder({self.checkpoint.path!r}, sessions={self.session_ids}, epoch={self.checkpoint.epoch}, "
                f"step={self.checkpoint.global_step})")

    @property
    def session_ids(self) -> list[str]:
        return list(self.encoder.session_ids)

    @property
    def normalization(self) -> dict[str, dict]:
        """Each session's training statistics (``stim_mean``, ``stim_std``, ``behavior_mean``,
        ``behavior_std``), stored in the checkpoint."""
        return self.info.normalization or {}

    def __call__(self, stim: torch.Tensor, behavior: torch.Tensor, session_id: str) -> torch.Tensor:
        return self.encoder(stim, behavior, session_id)

    def to(self, device) -> TrainedEncoder:
        self.encoder.to(device)
        return self

    def eval(self) -> TrainedEncoder:
        self.encoder.eval()
        return self

    # --------------------------------------------------------------------------------- data

    def open_data(self, split: str | None = None, data_root: str | None = None) -> SessionDataModule:
        """The sessions the model was trained on (or those under ``data_root``), opened with its
        training config (window, burn-in, normalisation) and checked against its readouts:
        every session must have one, with as many neurons. With ``split``, that split must have
        a window in some session."""
        cfg = OmegaConf.create(OmegaConf.to_container(self.config))
        if data_root is not None:
            cfg.data.root = str(data_root)
        dm = build_datamodule(cfg)
        dm.prepare_data()
        dm.setup()
        self.check_sessions(dm.sessions)
        if split is not None:
            if split not in SPLITS:
                raise ValueError(f"split: {split!r} is not one of {SPLITS}")
            if not len(dm.windows[split]):
                raise ValueError(f"split {split!r}: no session under {str(dm.data_root())!r} has a window of "
                                 f"data.window={dm.window} frames in it (meta.json splits)")
        return dm

    def check_sessions(self, sessions) -> None:
        """Every session must have a readout in this model, with as many neurons."""
        unknown = [s.id for s in sessions if s.id not in self.info.n_neurons]
        if unknown:
            raise ValueError(f"data.root: sessions {unknown} have no readout in checkpoint {self.checkpoint.path!r} "
                             f"(its sessions: {self.session_ids})")
        for s in sessions:
            if s.n_neurons != self.info.n_neurons[s.id]:
                raise ValueError(f"session {s.id!r}: {s.n_neurons} neurons, but the checkpoint's readout has "
                                 f"{self.info.n_neurons[s.id]} (in {s.path})")

    # ----------------------------------------------------------------------------- predict

    def _normalization_of(self, session_id: str) -> dict:
        if session_id not in self.normalization:
            raise ValueError(f"predict: the checkpoint stores no normalisation for session {session_id!r} (it was "
                             "written before checkpoints held it); pass normalization= with the session's "
                             "stats.json 'stats' (neuroenc.data.sessions.open_session(path).stats())")
        return self.normalization[session_id]

    def _behavior_or_none(self, behavior, stim: np.ndarray):
        """``behavior`` as given, or for None the ``(B, T, 0)`` behaviour of a model that reads none."""
        if behavior is not None:
            return behavior
        if self.info.behavior_dim:
            raise ValueError(f"predict: behavior is None, but the model reads {self.info.behavior_dim} behaviour "
                             f"columns {self.info.behavior_names}; pass them raw, (T, {self.info.behavior_dim})")
        return np.zeros((*stim.shape[:2], 0), np.float32)

    @torch.no_grad()
    def predict(self, stim, behavior, session_id: str, *, batch_size: int = 16, normalization: dict | None = None,
                window: int | None = None, burn_in: int | None = None) -> np.ndarray:
        """Rates per frame from a raw movie and raw behaviour of one session.

        ``stim``: ``(T, H, W)`` or ``(B, T, H, W)``, uint8 or float, in the units of the session's
        ``stim.npy``; ``behavior``: ``(T, n_behavior)`` or ``(B, T, n_behavior)`` in those of its
        ``behavior.npy`` (None for a model trained on sessions without behaviour columns). Each of
        the B inputs is one trial (its history starts at its frame 0).
        Returns ``(T, N)`` or ``(B, T, N)`` float32 rates (expected counts per frame), NaN on the
        first ``burn_in`` frames (default: the training ``data.burn_in``); ``np.isfinite`` is the
        mask of frames with full history. ``window`` (default ``data.window``) is the chunk length;
        an input shorter than it runs as one chunk of its own length.
        """
        if session_id not in self.session_ids:
            raise ValueError(f"predict: session {session_id!r} has no readout in this model; its sessions are "
                             f"{self.session_ids}")
        window = int(window or self.config.data.window)
        burn_in = int(self.config.data.burn_in if burn_in is None else burn_in)
        if not 0 <= burn_in < window:
            raise ValueError(f"predict: burn_in={burn_in} must be at least 0 and less than window={window}")
        stim, batched = _as_batch(stim, "stim", 3)
        behavior, _ = _as_batch(self._behavior_or_none(behavior, stim), "behavior", 2)
        shape = tuple(self.info.frame_shape)
        if stim.shape[2:] != shape:
            raise ValueError(f"predict: stim frames are {stim.shape[2:]}, the model was trained on {shape} "
                             "(resample the movie to the training frame shape)")
        if behavior.shape[:2] != stim.shape[:2] or behavior.shape[2] != self.info.behavior_dim:
            raise ValueError(f"predict: behavior has shape {behavior.shape}; expected "
                             f"{(*stim.shape[:2], self.info.behavior_dim)} (batch and frames of stim {stim.shape}, "
                             f"columns {self.info.behavior_names})")
        norm = normalization or self._normalization_of(session_id)
        # the same float32 operations as WindowDataset, so the rates equal the ones training scores
        sm, s_inv, bm, b_inv = normalization_constants(norm)
        b, t = stim.shape[:2]
        if t == 0:
            raise ValueError("predict: stim has no frames")
        length = min(window, t)
        tiles = tile_segment(0, t, length, min(burn_in, length - 1))
        jobs = [(i, start, score_from) for i in range(b) for start, score_from in tiles]
        n = self.info.n_neurons[session_id]
        out = np.full((b, t, n), np.nan, np.float32)
        device = next(self.encoder.parameters()).device
        for c in range(0, len(jobs), batch_size):
            chunk = jobs[c : c + batch_size]
            s = np.stack([stim[i, a : a + length] for i, a, _ in chunk]).astype(np.float32)
            s -= sm
            s *= s_inv
            beh = (np.stack([behavior[i, a : a + length] for i, a, _ in chunk]).astype(np.float32) - bm) * b_inv
            rates = self.encoder(torch.from_numpy(s[:, None]).to(device), torch.from_numpy(beh).to(device), session_id)
            rates = rates.float().cpu().numpy()
            for k, (i, a, f) in enumerate(chunk):
                out[i, a + f : a + length] = rates[k, f:]
        out[:, :burn_in] = np.nan
        return out if batched else out[0]


def load(path, config=None, map_location="cpu") -> TrainedEncoder:
    """The trained encoder of checkpoint ``path`` (a ``.ckpt`` file), in eval mode on
    ``map_location``; see :class:`TrainedEncoder`. The file is read without running code from it
    (:func:`~neuroenc.training.loading.read_checkpoint`). With ``config`` (a composed config),
    raises :class:`~neuroenc.training.loading.ConfigMismatchError` listing every key of the model
    groups (:data:`~neuroenc.training.loading.MODEL_KEYS`) where it differs from the checkpoint's.
    """
    ckpt = read_checkpoint(path, map_location)
    stored = OmegaConf.create(ckpt["neuroenc"]["config"])
    if config is not None:
        diffs = config_differences(stored, config, only=MODEL_KEYS)
        if diffs:
            raise ConfigMismatchError(f"checkpoint {str(path)!r}", diffs)
    info = data_info(ckpt, path)
    encoder = build_encoder(stored, info)
    weights = {k.removeprefix("encoder."): v for k, v in ckpt["state_dict"].items() if k.startswith("encoder.")}
    try:
        result = encoder.load_state_dict(weights, strict=False)
        problem = (f"missing {result.missing_keys[:10]}, unexpected {result.unexpected_keys[:10]}"
                   if result.missing_keys or result.unexpected_keys else None)
    except RuntimeError as e:  # a tensor of another shape
        problem = str(e)
    if problem:
        raise ValueError(f"checkpoint {str(path)!r}: its weights do not fit the model its config builds "
                         f"(was the code changed since?): {problem}")
    record = CheckpointRecord(str(path), ckpt.get("epoch"), ckpt.get("global_step"), ckpt["neuroenc"].get("val_scores"))
    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    return TrainedEncoder(encoder.to(device), stored, info, record)

