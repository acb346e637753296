"""Health figures: is a trained model using the stimulus at all, and are its readouts on their cells?

A validation score alone cannot tell a model of the stimulus from a model of behaviour: the
simulated cells' behaviour gain alone is worth a few hundredths of a bit per spike. These figures
can (README, "Is the model using the stimulus?"):

- ``val_bps_stimulus_shuffled``: the best checkpoint scored on the val windows with each
  window's stimulus taken from another window of the same session (behaviour kept). A model
  that uses the stimulus loses most of its score; one that does not keeps it.
- ``val_bps_behavior_only`` (simulated data): the simulator's own behaviour gains with a constant
  stimulus drive, scaled to each neuron's training mean, scored on the same bins: what a
  perfect model of behaviour alone reaches.
- ``rf_distance_px_median`` (simulated data, every validation): median distance in pixels from
  each readout's centre to its neuron's true receptive-field centre.
- :func:`shifter_response` (``python -m neuroenc.evaluate``): how far the trained shifter moves
  the readouts for each gaze. Where the gaze is known in pixels (``data.eye_px_per_unit``, the
  simulator's 1), the right shift is the gaze itself: a receptive field fixed on the retina
  reads the screen at its position plus the gaze.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from neuroenc.data.sessions import valid_bins
from neuroenc.data.windows import SessionBatchSampler, WindowDataset, collate_windows, normalization_constants
from neuroenc.metrics import BitsPerSpike
from neuroenc.model.encoder import Encoder

# trained below this multiple of its stimulus-shuffled score, a model is not using the stimulus
USES_STIMULUS_RATIO = 2.0


def readout_centers_px(encoder: Encoder, session: str, behavior_dim: int) -> torch.Tensor | None:
    """``(N, 2)`` (x, y) pixels where ``session``'s readouts read in eval, at the session's mean
    eye position (behaviour normalised to zero); None for a readout without positions."""
    mean = getattr(encoder.readout(session), "mean", None)
    if mean is None or encoder.grid is None:
        return None
    grid = mean.detach().double().cpu()
    if encoder.shifter is not None:
        with torch.no_grad():
            zero = torch.zeros(1, 1, behavior_dim, device=mean.device, dtype=mean.dtype)
            shift = encoder.shifter(zero, session)[0, 0].double().cpu()
        grid = grid + encoder.grid.shift_to_grid(shift)
    return encoder.grid.to_pixels(grid.clamp(-1, 1))  # the readout clamps where it samples


def rf_distances_px(encoder: Encoder, true_centers: dict[str, list], behavior_dim: int) -> np.ndarray | None:
    """Distance in pixels from each neuron's readout centre to its true receptive-field centre,
    sessions laid end to end; None where the readouts have no positions."""
    out = []
    for session, truth in true_centers.items():
        pixels = readout_centers_px(encoder, session, behavior_dim)
        if pixels is None:
            return None
        out.append(np.hypot(*(pixels.numpy() - np.asarray(truth, dtype=np.float64)).T))
    return np.concatenate(out)


def shifter_response(encoder: Encoder, sessions, split: str, eye_px_per_unit: float | None) -> dict | None:
    """The trained shifter on every frame of ``split``: per session id, ``gaze`` ``(F, 2)`` (x, y)
    in pixels (in the data's units where ``eye_px_per_unit`` is None) and ``shift`` ``(F, 2)``, the
    pixels it moves the readouts by. None without a shifter.

    The shifter sees the behaviour as training did (standardised with the session's training
    statistics), one frame at a time: it maps each frame's eye position alone."""
    shifter = encoder.shifter
    if shifter is None:
        return None
    out = {}
    for s in sessions:
        frames = s.split_frames(split)
        _, _, bm, b_inv = normalization_constants(s.stats())
        raw = np.asarray(s.behavior[frames], np.float64)
        z = (raw.astype(np.float32) - bm) * b_inv
        with torch.no_grad():
            shift = shifter(torch.from_numpy(z)[None], s.id)[0].double().numpy()
        gaze = raw[:, shifter.index.cpu().numpy()] * (eye_px_per_unit or 1.0)
        out[s.id] = {"gaze": gaze, "shift": shift}
    return out


def shifter_summary(response: dict, eye_px_per_unit: float | None) -> dict:
    """Per axis, the least-squares slope of shift on gaze over all sessions' frames (pixels of
    shift per pixel of gaze, or per data unit without ``eye_px_per_unit``); with the gaze in
    pixels also the RMS of shift - gaze, how far the readouts sit from where the retina puts them."""
    gaze = np.concatenate([r["gaze"] for r in response.values()])
    shift = np.concatenate([r["shift"] for r in response.values()])
    slope = [float(np.polyfit(gaze[:, a], shift[:, a], 1)[0]) if np.ptp(gaze[:, a]) > 0 else float("nan")
             for a in (0, 1)]
    rms = float(np.sqrt(np.mean(np.sum((shift - gaze) ** 2, 1)))) if eye_px_per_unit else None
    return {"slope_x": slope[0], "slope_y": slope[1], "rms_error_px": rms, "gaze_in_px": bool(eye_px_per_unit)}


def shuffled_windows(session_of_window: np.ndarray, seed: int) -> np.ndarray:
    """For each window, another window of the same session to take the stimulus from: the
    session's windows in a random (seeded) cycle, so none keeps its own stimulus (a session with a
    single window does)."""
    rng = np.random.default_rng([seed, 7])
    source = np.arange(len(session_of_window))
    for s in np.unique(session_of_window):
        cycle = rng.permutation(np.flatnonzero(session_of_window == s))
        source[cycle] = np.roll(cycle, 1)
    return source


class StimulusFrom(torch.utils.data.Dataset):
    """The windows of ``dataset`` (a :class:`~neuroenc.data.windows.WindowDataset`), each with the
    stimulus of window ``source[i]`` and everything else (behaviour, responses, mask) its own."""

    def __init__(self, dataset: WindowDataset, source: np.ndarray):
        self.dataset = dataset
        self.source = source

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        return {**self.dataset[i], "stim": self.dataset[int(self.source[i])]["stim"]}


def _sizes(sessions) -> dict[str, int]:
    return {s.id: s.n_neurons for s in sessions}


@torch.no_grad()
def score(module, loader, sessions) -> float:
    """Pooled bits per spike of ``module`` (eval mode) over the batches of ``loader``."""
    was_training = module.training
    module.eval()
    # one process scores the whole split (rank 0 after a DDP fit, the other ranks gone): no sync
    metric = BitsPerSpike(_sizes(sessions), sync_on_compute=False).to(module.device)
    try:
        for batch in loader:
            batch = {k: v.to(module.device) for k, v in batch.items()}
            metric.update(module.session_of(batch), module(batch), batch["robs"], batch["mask"])
    finally:
        module.train(was_training)
    return metric.result().overall


def _loader(dataset, windows: np.ndarray, batch_size: int) -> DataLoader:
    sampler = SessionBatchSampler(windows[:, 0], batch_size, shuffle=False)
    return DataLoader(dataset, batch_sampler=sampler, collate_fn=collate_windows)


def stimulus_shuffled_score(module, datamodule, seed: int) -> float:
    """``val_bps_stimulus_shuffled``: ``module`` on the val windows with their stimuli permuted
    within each session, behaviour kept."""
    windows = datamodule.windows["val"]
    dataset = WindowDataset(datamodule.sessions, windows, datamodule.window)
    shuffled = StimulusFrom(dataset, shuffled_windows(windows[:, 0], seed))
    return score(module, _loader(shuffled, windows, datamodule.batch_size), datamodule.sessions)


def behavior_only_rates(session) -> np.ndarray | None:
    """``(T, N)`` the simulator's behaviour gains of ``session`` with a constant stimulus drive,
    each neuron scaled to its training mean count; None for sessions without those gains."""
    neurons = session.meta.get("neurons") or []
    names = list(session.behavior_names)
    if not neurons or "beta_running" not in neurons[0] or not {"running", "pupil"} <= set(names):
        return None
    beh = np.asarray(session.behavior, np.float64)
    z = lambda v: (v - v.mean()) / v.std()  # over the whole session, as the simulator does
    run, pupil = z(beh[:, names.index("running")]), z(beh[:, names.index("pupil")])
    beta = np.array([[n["beta_running"], n["beta_pupil"]] for n in neurons])
    gain = np.exp(run[:, None] * beta[:, 0] + pupil[:, None] * beta[:, 1])  # (T, N)
    train = session.split_frames("train")
    y = np.asarray(session.robs[train], np.float64)
    valid = valid_bins(y, None if session.dfs is None else np.asarray(session.dfs[train]))
    scale = np.where(valid, y, 0).sum(0) / np.where(valid, gain[train], 0).sum(0)
    return gain * scale


def behavior_only_score(datamodule) -> float | None:
    """``val_bps_behavior_only``: :func:`behavior_only_rates` scored on the val windows' bins."""
    rates = [behavior_only_rates(s) for s in datamodule.sessions]
    if any(r is None for r in rates):
        return None
    windows = datamodule.windows["val"]
    dataset = WindowDataset(datamodule.sessions, windows, datamodule.window)
    metric = BitsPerSpike(_sizes(datamodule.sessions), sync_on_compute=False)
    for i, (si, start, _) in enumerate(windows):
        item = dataset[i]
        r = torch.from_numpy(rates[si][start:start + datamodule.window])[None]
        metric.update(datamodule.sessions[si].id, r, item["robs"][None], item["mask"][None])
    return metric.result().overall


def stimulus_warning(result: dict) -> str | None:
    """A sentence for the run summary when ``result`` (metrics.json) says the model is not using
    the stimulus: its best score below ``USES_STIMULUS_RATIO`` times the stimulus-shuffled one."""
    trained, shuffled = result.get("best_val_bps_overall"), result.get("val_bps_stimulus_shuffled")
    if trained is None or shuffled is None or trained > USES_STIMULUS_RATIO * max(shuffled, 0.0):
        return None
    return (f"the model is not using the stimulus: its val score {trained:.4f} bits/spike is less than "
            f"{USES_STIMULUS_RATIO:g}x what it scores with the stimulus shuffled across windows ({shuffled:.4f}); "
            "compare nothing with it until it does")
