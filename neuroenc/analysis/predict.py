"""Rates from raw inputs: ``model.predict(stim, behavior, session_id)`` and
``python -m neuroenc.predict checkpoint=<path> [data.root=DIR] [split=test] [out_dir=DIR]``.

A model from :func:`neuroenc.load` takes what ``WindowDataset`` makes: windows of ``data.window``
frames, the movie and behaviour standardised with the session's training statistics. Its
``predict`` takes the recording as it is (the units of ``stim.npy`` and ``behavior.npy``),
standardises it with the statistics stored in the checkpoint, and cuts it into the windows the
training loop scores (:func:`neuroenc.data.windows.tile_segment`: consecutive windows overlap by
``data.burn_in`` frames, the last one ends at the input's end), ``batch_size`` windows at a time.
So every frame's rate is the one validation scores for that frame of that trial, and memory stays
at a batch of windows however long the input. The first ``data.burn_in`` frames have no full
history and get NaN.

The command predicts every trial of a split of every session under ``data.root`` (default: the
data the checkpoint was trained on) and writes into ``out_dir`` (default
``<run dir>/predictions/<checkpoint name>/<split>/``), per session:

    <session>.npy          (F, N) float32   rates of the split's F frames (in session order), NaN in burn-in
    <session>_frames.npy   (F, 2) int64     frame index in the session and trial id of each row
    <session>.csv                           frame, trial, then one column per neuron id
    predictions.json                        checkpoint, split, window, burn-in, sessions with frames and neuron ids
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from types import MethodType

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from neuroenc import atomic
from neuroenc.config.compose import CONF_DIR
from neuroenc.config.schema import register
from neuroenc.data.windows import normalization_constants, tile_segment

register()


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


def _behavior_or_none(model, behavior, stim: np.ndarray):
    """``behavior`` as given, or for None the ``(B, T, 0)`` behaviour of a model that reads none."""
    if behavior is not None:
        return behavior
    if model.info.behavior_dim:
        raise ValueError(f"predict: behavior is None, but the model reads {model.info.behavior_dim} behaviour columns "
                         f"{model.info.behavior_names}; pass them raw, (T, {model.info.behavior_dim})")
    return np.zeros((*stim.shape[:2], 0), np.float32)


def normalization_of(model, session_id: str) -> dict:
    """The session's stored statistics (``stim_mean``, ``stim_std``, ``behavior_mean``, ``behavior_std``)."""
    stored = getattr(model, "normalization", None) or {}
    if session_id not in stored:
        raise ValueError(f"predict: the checkpoint stores no normalisation for session {session_id!r} (it was "
                         "written before checkpoints held it); pass normalization= with the session's "
                         "stats.json 'stats' (neuroenc.data.sessions.open_session(path).stats())")
    return stored[session_id]


@torch.no_grad()
def predict(model, stim, behavior, session_id: str, *, batch_size: int = 16, normalization: dict | None = None,
            window: int | None = None, burn_in: int | None = None) -> np.ndarray:
    """Rates per frame from a raw movie and raw behaviour of one session.

    ``stim``: ``(T, H, W)`` or ``(B, T, H, W)``, uint8 or float, in the units of the session's
    ``stim.npy``; ``behavior``: ``(T, n_behavior)`` or ``(B, T, n_behavior)`` in those of its
    ``behavior.npy`` (None for a model trained on sessions without behaviour columns). Each of the
    B inputs is one trial (its history starts at its frame 0).
    Returns ``(T, N)`` or ``(B, T, N)`` float32 rates (expected counts per frame), NaN on the first
    ``burn_in`` frames (default: the training ``data.burn_in``); ``np.isfinite`` is the mask of
    frames with full history. ``window`` (default ``data.window``) is the chunk length; an input
    shorter than it runs as one chunk of its own length.
    """
    if session_id not in model.session_ids:
        raise ValueError(f"predict: session {session_id!r} has no readout in this model; its sessions are "
                         f"{model.session_ids}")
    window = int(window or model.config.data.window)
    burn_in = int(model.config.data.burn_in if burn_in is None else burn_in)
    if not 0 <= burn_in < window:
        raise ValueError(f"predict: burn_in={burn_in} must be at least 0 and less than window={window}")
    stim, batched = _as_batch(stim, "stim", 3)
    behavior, _ = _as_batch(_behavior_or_none(model, behavior, stim), "behavior", 2)
    shape = tuple(model.info.frame_shape)
    if stim.shape[2:] != shape:
        raise ValueError(f"predict: stim frames are {stim.shape[2:]}, the model was trained on {shape} "
                         "(resample the movie to the training frame shape)")
    if behavior.shape[:2] != stim.shape[:2] or behavior.shape[2] != model.info.behavior_dim:
        raise ValueError(f"predict: behavior has shape {behavior.shape}; expected {(*stim.shape[:2], model.info.behavior_dim)} "
                         f"(batch and frames of stim {stim.shape}, columns {model.info.behavior_names})")
    norm = normalization or normalization_of(model, session_id)
    # the same float32 operations as WindowDataset, so the rates equal the ones training scores
    sm, s_inv, bm, b_inv = normalization_constants(norm)
    b, t = stim.shape[:2]
    if t == 0:
        raise ValueError("predict: stim has no frames")
    length = min(window, t)
    tiles = tile_segment(0, t, length, min(burn_in, length - 1))
    jobs = [(i, start, score_from) for i in range(b) for start, score_from in tiles]
    n = model.info.n_neurons[session_id]
    out = np.full((b, t, n), np.nan, np.float32)
    device = next(model.parameters()).device
    for c in range(0, len(jobs), batch_size):
        chunk = jobs[c : c + batch_size]
        s = np.stack([stim[i, a : a + length] for i, a, _ in chunk]).astype(np.float32)
        s -= sm
        s *= s_inv
        beh = (np.stack([behavior[i, a : a + length] for i, a, _ in chunk]).astype(np.float32) - bm) * b_inv
        rates = model(torch.from_numpy(s[:, None]).to(device), torch.from_numpy(beh).to(device), session_id)
        rates = rates.float().cpu().numpy()
        for k, (i, a, f) in enumerate(chunk):
            out[i, a + f : a + length] = rates[k, f:]
    out[:, :burn_in] = np.nan
    return out if batched else out[0]


def attach(model) -> None:
    """Give a loaded model its ``predict`` method and ``normalization`` (from ``model.info``)."""
    model.normalization = model.info.normalization
    model.predict = MethodType(predict, model)


# ------------------------------------------------------------------------------------- the command


def session_predictions(model, session, split: str, batch_size: int = 16,
                        normalization: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rates (F, N), frames (F, 2))`` for every trial of ``split`` of an opened session:
    each trial predicted from its own start; rows in session order, frames as (index, trial id)."""
    starts, stops, ids = session.trial_runs()
    keep = set(session.meta["splits"].get(split, []))
    rates, frames = [], []
    for a, b, trial in zip(starts, stops, ids):
        if int(trial) not in keep:
            continue
        rates.append(predict(model, session.stim[a:b], session.behavior[a:b], session.id, batch_size=batch_size,
                             normalization=normalization))
        frames.append(np.stack([np.arange(a, b), np.full(b - a, trial)], 1))
    if not rates:
        return np.zeros((0, session.n_neurons), np.float32), np.zeros((0, 2), np.int64)
    return np.concatenate(rates), np.concatenate(frames).astype(np.int64)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with atomic.open_for_write(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)


def _csv(rates: np.ndarray, frames: np.ndarray, neuron_ids: list) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame", "trial", *neuron_ids])
    for (frame, trial), row in zip(frames.tolist(), rates):
        w.writerow([frame, trial, *("" if np.isnan(v) else repr(float(v)) for v in row)])
    return buf.getvalue()


def default_out_dir(checkpoint: Path, split: str) -> Path:
    checkpoint = Path(checkpoint).resolve()
    run = checkpoint.parent.parent if checkpoint.parent.name == "checkpoints" else checkpoint.parent
    return run / "predictions" / checkpoint.stem / split


def predict_split(checkpoint, split: str = "test", data_root: str | None = None, out_dir=None,
                  batch_size: int = 16, device: str = "cpu", csv_files: bool = True) -> dict:
    """Write the files listed in the module docstring; returns the content of predictions.json."""
    from neuroenc.analysis.evaluate import best_checkpoint
    from neuroenc.data.sessions import open_sessions
    from neuroenc.training.build import build_datamodule
    from neuroenc.training.loading import load

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = best_checkpoint(checkpoint)
    if split not in ("train", "val", "test"):
        raise ValueError(f"split: {split!r} is not one of 'train', 'val', 'test'")
    model = load(checkpoint, map_location=device)
    if data_root is not None:
        sessions = open_sessions(data_root)
    else:
        dm = build_datamodule(model.config)
        dm.prepare_data()
        dm.setup()
        sessions = dm.sessions
    unknown = [s.id for s in sessions if s.id not in model.session_ids]
    if unknown:
        raise ValueError(f"data.root: sessions {unknown} have no readout in checkpoint {str(checkpoint)!r} "
                         f"(its sessions: {model.session_ids})")
    out = Path(out_dir) if out_dir else default_out_dir(checkpoint, split)
    summary: dict = {"checkpoint": str(checkpoint.resolve()), "split": split, "window": int(model.config.data.window),
                     "burn_in": int(model.config.data.burn_in), "sessions": {}}
    for s in sessions:
        if s.n_neurons != model.info.n_neurons[s.id]:
            raise ValueError(f"session {s.id!r}: {s.n_neurons} neurons, but the checkpoint's readout has "
                             f"{model.info.n_neurons[s.id]} (in {s.path})")
        stored = (model.normalization or {}).get(s.id)
        rates, frames = session_predictions(model, s, split, batch_size, None if stored else s.stats())
        _save_npy(out / f"{s.id}.npy", rates)
        _save_npy(out / f"{s.id}_frames.npy", frames)
        ids = list(s.meta["neuron_ids"])
        if csv_files:
            atomic.write_text(out / f"{s.id}.csv", _csv(rates, frames, ids))
        summary["sessions"][s.id] = {"frames": int(len(frames)), "trials": sorted({int(t) for t in frames[:, 1]}),
                                     "neuron_ids": ids, "normalization": "checkpoint" if stored else "stats.json"}
    atomic.write_json(out / "predictions.json", summary)
    summary["out_dir"] = str(out)
    return summary


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
def main(cfg: DictConfig) -> None:
    summary = predict_split(cfg.checkpoint, cfg.split, cfg.data.root, cfg.out_dir, cfg.batch_size, cfg.device,
                            cfg.csv)
    for sid, s in summary["sessions"].items():
        print(f"{sid}: {s['frames']} frames of {len(s['trials'])} {cfg.split} trials, {len(s['neuron_ids'])} neurons")
    print(f"written to {summary['out_dir']}")


if __name__ == "__main__":
    main()
