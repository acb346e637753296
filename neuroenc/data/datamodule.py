"""The Lightning datamodule: sessions -> windows -> batches of one session each."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
from torch.utils.data import DataLoader

from neuroenc.data.sessions import Session, open_sessions
from neuroenc.data.synthetic import SimulationParams, ensure_simulated
from neuroenc.data.windows import SessionBatchSampler, WindowDataset, build_windows


@dataclass
class DatasetInfo:
    """What the model needs to know about the data to be built."""

    session_ids: list[str]
    n_neurons: dict[str, int]
    mean_rate: dict[str, list[float]]
    behavior_dim: int
    in_channels: int
    frame_shape: tuple[int, int]
    has_oracle: bool


class SessionDataModule(L.LightningDataModule):
    """Windows of ``window`` frames (``burn_in`` of them unscored) from every session under ``root``."""

    def __init__(self, root: str, window: int = 64, burn_in: int = 24, batch_size: int = 16,
                 num_workers: int = 0, seed: int = 0):
        super().__init__()
        self.root = root
        self.window = window
        self.burn_in = burn_in
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.seed = seed
        self.sessions: list[Session] | None = None
        self.windows: dict[str, np.ndarray] = {}

    def data_root(self) -> Path:
        return Path(self.root).expanduser()

    def setup(self, stage: str | None = None) -> None:
        if self.sessions is not None:
            return
        self.sessions = open_sessions(self.data_root())
        shapes = {s.frame_shape for s in self.sessions}
        if len(shapes) > 1:
            raise ValueError(f"data.root {self.root!r}: sessions have different frame shapes {sorted(shapes)}")
        nbeh = {s.behavior.shape[1] for s in self.sessions}
        if len(nbeh) > 1:
            raise ValueError(f"data.root {self.root!r}: sessions have different behaviour columns {sorted(nbeh)}")
        for split in ("train", "val", "test"):
            segs = [s.segments(split) for s in self.sessions]
            self.windows[split] = build_windows(segs, self.window, self.burn_in)
        if len(self.windows["train"]) == 0:
            raise ValueError(f"data.window={self.window}: longer than every training trial under {self.root!r}; "
                             "no training windows")

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
        )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        self.setup()
        w = self.windows[split]
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
        sampler = SessionBatchSampler(w[:, 0], self.batch_size, shuffle=shuffle, seed=self.seed,
                                      rank=rank, world_size=world, even_shards=shuffle)
        return DataLoader(WindowDataset(self.sessions, w, self.window), batch_sampler=sampler,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=trainer is not None and trainer.accelerator.__class__.__name__ == "CUDAAccelerator")

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SyntheticDataModule(SessionDataModule):
    """The built-in simulated V1, generated under ``cache_dir`` on first use and reused after."""

    def __init__(self, cache_dir: str, simulation: dict, window: int = 64, burn_in: int = 24,
                 batch_size: int = 16, num_workers: int = 0, seed: int = 0):
        super().__init__(root="", window=window, burn_in=burn_in, batch_size=batch_size,
                         num_workers=num_workers, seed=seed)
        self.cache_dir = cache_dir
        self.params = SimulationParams(**simulation)

    def data_root(self) -> Path:
        return ensure_simulated(self.cache_dir, self.params)

    def prepare_data(self) -> None:
        self.data_root()
