"""One training run: config -> data, model, Trainer -> fit -> ``metrics.json`` in the run dir."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from neuroenc.build import build_datamodule, build_module
from neuroenc.summary import RunSummary
from neuroenc.validate import check

log = logging.getLogger(__name__)


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    return [instantiate(node, save_dir=str(run_dir), _convert_="all")
            for node in cfg.logger.values() if node is not None]


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Train as configured; all outputs go under ``run_dir``. Returns the metrics.json content."""
    check(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    info = datamodule.info
    module = build_module(cfg, info)

    checkpoint = ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="best-{epoch:03d}-{step}",
                                 monitor="val_bps_overall", mode="max", save_last=True)
    summary = RunSummary(run_dir / "metrics.json")
    loggers = build_loggers(cfg, run_dir)
    callbacks = [checkpoint, summary] + ([LearningRateMonitor("step")] if loggers else [])
    trainer = instantiate(cfg.trainer, _convert_="all", default_root_dir=str(run_dir), logger=loggers or False,
                          callbacks=callbacks, use_distributed_sampler=False)
    if cfg.eval_init:
        trainer.validate(module, datamodule=datamodule, verbose=False)
    trainer.fit(module, datamodule=datamodule)
    result = summary.write(trainer, module, checkpoint)
    if trainer.is_global_zero:
        report(result, run_dir, loggers)
    return result


def report(result: dict, run_dir: Path, loggers: list) -> None:
    console = Console()
    table = Table(title="neuroenc run", show_header=False)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"  # noqa: E731
    table.add_row("best val bits/spike", fmt(result["best_val_bps_overall"]) + f"  (epoch {result['best_epoch']})")
    table.add_row("ground-truth ceiling (oracle)", fmt(result["val_bps_oracle"]))
    frac = result["val_oracle_fraction"]
    table.add_row("fraction of oracle", "n/a" if frac is None else f"{100 * frac:.1f}%")
    table.add_row("untrained model", fmt(result["init_val_bps_overall"]))
    table.add_row("epochs / steps", f"{result['epochs']} / {result['steps']}")
    table.add_row("wall time", f"{result['wall_time_s']:.1f} s")
    table.add_row("best checkpoint", str(result["best_checkpoint"]))
    table.add_row("metrics", str(run_dir / "metrics.json"))
    for lg in loggers:
        table.add_row(f"{type(lg).__name__} logs", str(getattr(lg, "log_dir", None) or getattr(lg, "save_dir", "")))
    console.print(table)
