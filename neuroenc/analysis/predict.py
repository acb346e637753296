"""``python -m neuroenc.predict checkpoint=<path> [data.root=DIR] [split=test] [out_dir=DIR]``: a
checkpoint's rates for a split, written to disk, from ``model.predict`` on each trial's raw
recording (:meth:`neuroenc.trained.TrainedEncoder.predict`).

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

import hydra
import numpy as np
from omegaconf import DictConfig

from neuroenc import atomic
from neuroenc.config.compose import CONF_DIR
from neuroenc.config.schema import register
from neuroenc.trained import SPLITS, TrainedEncoder, load

register()


# ------------------------------------------------------------------------------------- the command


def session_predictions(model: TrainedEncoder, session, split: str, batch_size: int = 16,
                        normalization: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(rates (F, N), frames (F, 2))`` for every trial of ``split`` of an opened session:
    each trial predicted from its own start; rows in session order, frames as (index, trial id)."""
    starts, stops, ids = session.trial_runs()
    keep = set(session.meta["splits"].get(split, []))
    rates, frames = [], []
    for a, b, trial in zip(starts, stops, ids):
        if int(trial) not in keep:
            continue
        rates.append(model.predict(session.stim[a:b], session.behavior[a:b], session.id, batch_size=batch_size,
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

    checkpoint = Path(checkpoint)
    if checkpoint.is_dir():
        checkpoint = best_checkpoint(checkpoint)
    if split not in SPLITS:
        raise ValueError(f"split: {split!r} is not one of {SPLITS}")
    model = load(checkpoint, map_location=device)
    # sessions recorded beside the training data need not fit its config (data.window): opened as they are
    sessions = open_sessions(data_root) if data_root is not None else model.open_data().sessions
    model.check_sessions(sessions)
    out = Path(out_dir) if out_dir else default_out_dir(checkpoint, split)
    summary = {"checkpoint": str(checkpoint.resolve()), "split": split, "window": int(model.config.data.window),
               "burn_in": int(model.config.data.burn_in), "sessions": {}}
    for s in sessions:
        stored = model.normalization.get(s.id)
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
