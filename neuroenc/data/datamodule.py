"""The Lightning datamodule: sessions -> windows -> batches of one session each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from lightning.pytorch.accelerators import CUDAAccelerator
from torch.utils.data import DataLoader

from neuroenc.data.receptive_fields import session_centers
from neuroenc.data.sessions import SPLITS, Session, SessionFormatError, open_sessions, trial_labels
from neuroenc.data.synthetic import SimulationParams, ensure_simulated
from neuroenc.data.windows import (
    ResumableLoader,
    SessionBatchSampler,
    WindowDataset,
    build_windows,
    collate_windows,
    window_problem,
)

NORMALIZATION_KEYS = ("stim_mean", "stim_std", "behavior_mean", "behavior_std")


@dataclass
class DatasetInfo:
    """What the model needs to know about the data to be built."""

    session_ids: list[str]
    n_neurons: dict[str, int]
    mean_rate: dict[str, list[float] | None]  # None: not known before the data exist (planned_info)
    behavior_dim: int
    in_channels: int
    frame_shape: tuple[int, int]
    has_oracle: bool
    behavior_names: list[str] | None = None  # the shifter finds the eye-position columns by name
    # simulated data: each neuron's true receptive-field centre, (x, y) pixels, for the health figures
    true_rf_centers: dict[str, list[list[float]]] | None = None
    # each session's training-split statistics that WindowDataset normalises with (stim_mean,
    # stim_std, behavior_mean, behavior_std): stored in checkpoints so raw inputs can be predicted
    normalization: dict[str, dict] | None = None


def true_rf_centers(sessions: list[Session]) -> dict[str, list[list[float]]] | None:
    """Simulated sessions' true receptive-field centres (meta.json ``neurons``: x, y), else None."""
    if not all(len(s.meta.get("neurons") or []) == s.n_neurons for s in sessions):
        return None
    return {s.id: [[float(n["x"]), float(n["y"])] for n in s.meta["neurons"]] for s in sessions}


class SessionDataModule(L.LightningDataModule):
    """Windows of ``window`` frames (``burn_in`` of them unscored) from every session under ``root``;
    ``frame_rate`` (Hz), when given, must be the sessions' (the config's temporal sizes assume it);
    ``eye_px_per_unit``, when given, converts the ``eye_x``, ``eye_y`` columns to pixels so that
    readouts start at receptive fields estimated on retinal coordinates.

    Fitting (``setup("fit")``) refuses data without a single validation window unless
    ``allow_no_validation``: a run that never validates has no score and no best checkpoint.
    Evaluating and predicting (any other stage) do not ask.

    ``train_classes`` (stimulus classes, meta.json ``trial_class``) keeps the train and val windows
    to trials of those classes, so the model is trained and its checkpoint chosen on them; test
    windows keep every class. The normalisation statistics stay those of the whole training split."""

    def __init__(self, root: str, window: int, burn_in: int, batch_size: int, num_workers: int, seed: int,
                 frame_rate: float | None, eye_px_per_unit: float | None, allow_no_validation: bool,
                 train_classes: list[str] | None = None):
        super().__init__()
        if train_classes is not None and not len(train_classes):
            raise ValueError("train_classes: an empty list trains on nothing; null trains on every class")
        self.train_classes = None if train_classes is None else {str(c) for c in train_classes}
        self.allow_no_validation = bool(allow_no_validation)
        if eye_px_per_unit is not None and not (math.isfinite(eye_px_per_unit) and eye_px_per_unit > 0):
            raise ValueError(f"eye_px_per_unit: must be a positive number of pixels or null, got {eye_px_per_unit}")
        self.eye_px_per_unit = eye_px_per_unit
        for name, v in (("window", window), ("batch_size", batch_size)):
            if v <= 0:
                raise ValueError(f"{name}: must be positive, got {v}")
        if num_workers < 0:
            raise ValueError(f"num_workers: must not be negative, got {num_workers}")
        if window_problem(window, burn_in):
            raise ValueError(f"burn_in: {window_problem(window, burn_in)}")
        if frame_rate is not None and frame_rate <= 0:
            raise ValueError(f"frame_rate: must be positive, got {frame_rate}")
        self.root = root
        self.frame_rate = frame_rate
        self.window = window
        self.burn_in = burn_in
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        # None until setup() opens them; typed as opened, since everything that reads them calls setup() first
        self.sessions: list[Session] = None  # type: ignore[assignment]
        self.windows: dict[str, np.ndarray] = {}
        self.train_loader: ResumableLoader | None = None
        self._train_loader_state: dict | None = None  # from a checkpoint, for the next train loader
        self._rf_centers: dict[str, np.ndarray] | None = None

    def data_root(self) -> Path:
        return Path(self.root).expanduser()

    def setup(self, stage: str | None = None) -> None:
        if self.sessions is None:
            self._open()
        if stage == "fit" and not self.allow_no_validation:
            problem = self.validation_problem()
            if problem:
                raise SessionFormatError(
                    f"{problem}. Training never runs without validation: give the sessions val trials (meta.json "
                    "splits) of at least data.window frames, or set data.allow_no_validation=true to train without "
                    "a val score (no best checkpoint; metrics.json says so)")

    def validation_problem(self) -> str | None:
        """Why there is no validation window at all, naming each session and what its meta.json
        splits hold; None when any session has one."""
        self.setup()
        if len(self.windows["val"]):
            return None
        why = []
        for s in self.sessions:
            val = s.segments("val")
            why.append(f"session {s.id!r}: " + (f"its longest val trial has {max(b - a for a, b in val)} frames" if val
                                                 else "no 'val' in its splits"))
        return (f"no validation windows of data.window={self.window} frames in the sessions under "
                f"{str(self.data_root())!r} (meta.json splits: {'; '.join(why)})")

    def _open(self) -> None:
        sessions = open_sessions(self.data_root())
        self._check_compatible(sessions)
        self._check_classes(sessions)
        for split in SPLITS:
            classes = None if split == "test" else self.train_classes
            segs = [s.segments(split, classes) for s in sessions]
            self.windows[split] = build_windows(segs, self.window, self.burn_in)
        trained = set(self.windows["train"][:, 0].tolist())
        for i, s in enumerate(sessions):
            if i not in trained:  # its readout would never be trained
                train = s.segments("train", self.train_classes)
                if not train:
                    raise SessionFormatError(f"session {s.id!r}: data.train_classes={sorted(self.train_classes or [])}: "
                                             f"no training trial shows one of them (meta.json trial_class; in {s.path})")
                longest = max(b - a for a, b in train)
                raise SessionFormatError(
                    f"session {s.id!r}: meta.json: no training windows: its longest training trial has {longest} "
                    f"frames, fewer than data.window={self.window} (in {s.path})")
        self.sessions = sessions

    def _check_classes(self, sessions: list[Session]) -> None:
        """``train_classes`` needs every session's trial classes and names only classes they show."""
        if self.train_classes is None:
            return
        shown: set[str] = set()
        for s in sessions:
            labels = trial_labels(s, "trial_class")
            if not labels:
                raise SessionFormatError(f"data.train_classes={sorted(self.train_classes)}: session {s.id!r} does not "
                                         f"record its trials' stimulus classes (no meta.json trial_class; in {s.path})")
            shown |= set(labels.values())
        if self.train_classes - shown:
            raise ValueError(f"train_classes: {sorted(self.train_classes - shown)} not shown in any session; "
                             f"the sessions' classes are {sorted(shown)}")

    def _check_compatible(self, sessions: list[Session]) -> None:
        """One model reads every session: frames, behaviour columns and frame rate must agree."""
        def agree(what: str, value) -> None:
            values: dict = {}
            for s in sessions:
                values.setdefault(value(s), s.id)
            if len(values) > 1:
                found = "; ".join(f"{v} (session {sid!r})" for v, sid in values.items())
                raise SessionFormatError(f"data.root {self.root!r}: sessions differ in {what}: {found}")

        agree("frame shape", lambda s: s.frame_shape)
        agree("behaviour columns (meta.json behavior_names)", lambda s: tuple(s.behavior_names))
        agree("frame rate (meta.json frame_rate)", lambda s: s.frame_rate)
        if self.frame_rate is not None and sessions[0].frame_rate != self.frame_rate:
            raise SessionFormatError(f"data.frame_rate={self.frame_rate} but the sessions under {self.root!r} are "
                                     f"recorded at {sessions[0].frame_rate} Hz (meta.json frame_rate)")
        ids = [s.id for s in sessions]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise SessionFormatError(f"data.root {self.root!r}: session ids {dup} are used by more than one "
                                     "directory (meta.json session_id)")

    @property
    def info(self) -> DatasetInfo:
        self.setup()
        s0 = self.sessions[0]
        return DatasetInfo(
            session_ids=[s.id for s in self.sessions],
            n_neurons={s.id: s.n_neurons for s in self.sessions},
            mean_rate={s.id: s.stats()["mean_rate"] for s in self.sessions},
            behavior_dim=s0.behavior.shape[1],
            in_channels=1,
            frame_shape=s0.frame_shape,
            has_oracle=all(s.rates is not None for s in self.sessions),
            behavior_names=list(s0.behavior_names),
            true_rf_centers=true_rf_centers(self.sessions),
            normalization={s.id: {k: s.stats()[k] for k in NORMALIZATION_KEYS} for s in self.sessions},
        )

    def rf_centers(self) -> dict[str, np.ndarray]:
        """Each session's receptive-field centres ``(N, 2)`` (x, y pixels) estimated from its
        training split (:mod:`neuroenc.data.receptive_fields`), where readouts start."""
        self.setup()
        if self._rf_centers is None:
            self._rf_centers = {s.id: session_centers(s, self.eye_px_per_unit) for s in self.sessions}
        return self._rf_centers

    def shard(self) -> tuple[int, int]:
        """``(rank, world_size)`` of this process: from the attached Trainer, else ``(0, 1)``."""
        t = self.trainer
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def _loader(self, split: str, shuffle: bool) -> ResumableLoader:
        self.setup()
        w = self.windows[split]
        rank, world = self.shard()
        # training shards are trimmed to equal length so DDP steps stay in lockstep; evaluation
        # shards are not, so together the ranks score every window of the split once
        sampler = SessionBatchSampler(w[:, 0], self.batch_size, shuffle=shuffle, seed=self.seed,
                                      rank=rank, world_size=world, even_shards=shuffle)
        on_gpu = self.trainer is not None and isinstance(self.trainer.accelerator, CUDAAccelerator)
        return ResumableLoader(WindowDataset(self.sessions, w, self.window), batch_sampler=sampler,
                               collate_fn=collate_windows, num_workers=self.num_workers,
                               persistent_workers=self.num_workers > 0, pin_memory=on_gpu)

    def train_dataloader(self) -> DataLoader:
        self.train_loader = self._loader("train", shuffle=True)
        if self._train_loader_state is not None:
            self.train_loader.load_state_dict(self._train_loader_state)
            self._train_loader_state = None
        return self.train_loader

    # The training loader's position (epoch, batches trained) goes into every checkpoint through
    # the datamodule: Lightning restores the datamodule before it first asks for the training
    # loader (for estimated_stepping_batches), but its own loader-state restore comes after that
    # loader exists and is never applied to it, so a resumed epoch would restart at batch 0.
    def state_dict(self) -> dict:
        if self.train_loader is None:
            return {}
        # the Trainer's epoch, which limit_train_batches makes shorter than the loader's
        length = self.trainer.num_training_batches if self.trainer is not None else None
        return {"train_loader": self.train_loader.state_dict(int(length) if length not in (None, float("inf")) else None)}

    def load_state_dict(self, state: dict) -> None:
        if "train_loader" in state:
            self._train_loader_state = state["train_loader"]

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SyntheticDataModule(SessionDataModule):
    """The built-in simulated V1, generated under ``cache_dir`` on first use and reused after."""

    def __init__(self, cache_dir: str, simulation: dict, window: int, burn_in: int, batch_size: int,
                 num_workers: int, seed: int, eye_px_per_unit: float | None, allow_no_validation: bool,
                 train_classes: list[str] | None = None):
        super().__init__(root="", window=window, burn_in=burn_in, batch_size=batch_size,
                         num_workers=num_workers, seed=seed, frame_rate=None,  # the simulation has its own
                         eye_px_per_unit=eye_px_per_unit, allow_no_validation=allow_no_validation,
                         train_classes=train_classes)
        self.cache_dir = cache_dir
        try:
            self.params = simulation if isinstance(simulation, SimulationParams) else SimulationParams(**simulation)
        except ValueError as e:  # "kernel_ms: ..." is simulation.kernel_ms here
            raise ValueError(f"simulation.{e}") from e
        if self.params.trial_frames < window:
            raise ValueError(f"window: {window} is longer than a simulated trial "
                             f"(simulation.trial_frames={self.params.trial_frames})")

    def data_root(self) -> Path:
        return ensure_simulated(self.cache_dir, self.params)

    def prepare_data(self) -> None:
        self.data_root()
