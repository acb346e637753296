"""Real training runs for the benchmarks: ``python -m neuroenc`` in a child process, its data
generated beforehand, its ``metrics.json`` read back."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from omegaconf import DictConfig

from neuroenc.config.compose import compose_config
from neuroenc.training.build import build_datamodule


def config_overrides(overrides: list[str]) -> list[str]:
    """The overrides that compose the run's config (Hydra's own ``hydra.*`` ones do not)."""
    return [o for o in overrides if not o.lstrip("+~").startswith("hydra.")]


def prepare_data(overrides: list[str]) -> tuple[float, int | None]:
    """Generate (or find in the cache) the data a run with ``overrides`` trains on, in this process:
    a run started afterwards opens the cached files instead of generating them. Returns the seconds
    that took and the optimizer steps the run's own schedule asks for (epochs or max_steps; None
    when neither bounds it)."""
    t0 = time.perf_counter()
    cfg = compose_config(config_overrides(overrides))
    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    seconds = time.perf_counter() - t0
    return seconds, planned_steps(cfg.trainer, len(datamodule.train_dataloader()))


def planned_steps(trainer: DictConfig, batches: int) -> int | None:
    """Optimizer steps a Trainer configured as ``trainer`` takes on ``batches`` training batches an
    epoch, unless its clock stops it first (Lightning's rules for limit_train_batches: an int is
    batches, a float a fraction)."""
    limit = trainer.get("limit_train_batches")
    if isinstance(limit, int) and not isinstance(limit, bool):
        batches = min(batches, limit)
    elif isinstance(limit, float):
        batches = int(batches * limit)
    per_epoch = batches // max(int(trainer.get("accumulate_grad_batches") or 1), 1)
    epochs = trainer.get("max_epochs")
    bounds = [per_epoch * epochs] if epochs is not None and epochs >= 0 else []
    bounds += [trainer.max_steps] if trainer.get("max_steps", -1) > 0 else []
    return min(bounds) if bounds else None


def train_command(overrides: list[str], run_dir: Path) -> list[str]:
    """``python -m neuroenc <overrides>`` writing its run into ``run_dir``."""
    return [sys.executable, "-m", "neuroenc", *overrides, f'hydra.run.dir="{Path(run_dir).resolve()}"']


def read_metrics(run_dir: Path) -> dict | None:
    path = Path(run_dir) / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def oracle_fraction(metrics: dict) -> float | None:
    best, oracle = metrics.get("best_val_bps_overall"), metrics.get("val_bps_oracle")
    return best / oracle if best is not None and oracle else None
