"""One training run: config -> data, model, Trainer -> fit -> ``metrics.json`` in the run dir."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import LearningRateMonitor
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from neuroenc import atomic
from neuroenc.config.validate import check
from neuroenc.training import environment, health
from neuroenc.training.build import build_datamodule, build_module
from neuroenc.training.callbacks.per_neuron import BestPerNeuron
from neuroenc.training.callbacks.summary import RunSummary
from neuroenc.training.checkpointing import AtomicCheckpointIO, checkpoint_callbacks
from neuroenc.training.ddp import launch_ranks_per_job
from neuroenc.training.loading import read_checkpoint
from neuroenc.training.loggers import build_loggers, finish_loggers
from neuroenc.training.resume import checkpoint_to_continue

log = logging.getLogger(__name__)


def train(cfg: DictConfig, run_dir: Path) -> dict:
    """Train as configured; all outputs go under ``run_dir``. Returns the metrics.json content.

    With ``cfg.resume`` set, continues the run in ``run_dir`` from its ``checkpoints/last.ckpt``.
    Data without a validation window stop it here unless ``data.allow_no_validation``; with it, the
    run trains without validating and metrics.json's ``no_validation`` says why.
    An error during fitting (a non-finite loss, say) is recorded in metrics.json (status
    'failed') and raised; the checkpoints written before it stay as they were.
    """
    check(cfg)
    run_dir = Path(run_dir)
    resume_from = checkpoint_to_continue(cfg, run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    datamodule = build_datamodule(cfg)
    datamodule.prepare_data()
    datamodule.setup("fit")  # refuses data without validation windows, unless data.allow_no_validation
    no_validation = datamodule.validation_problem()
    if no_validation:
        log.warning("training without validation, as data.allow_no_validation=true asks: %s", no_validation)
    info = datamodule.info
    # readouts start at the receptive fields the training data show (a resumed run loads its own)
    rf_centers = datamodule.rf_centers() if cfg.readout.get("init_positions") == "data" and resume_from is None else None
    module = build_module(cfg, info, rf_centers)
    module.environment = environment.collect()
    if rank_zero_only.rank == 0:
        environment.record(run_dir, module.environment, resumed=resume_from is not None)
        if resume_from is None:  # .hydra/config.yaml keeps interpolations (${seed}, ${oc.env:...})
            atomic.write_text(run_dir / "config_resolved.yaml", OmegaConf.to_yaml(cfg, resolve=True))

    checkpoint, *mid_epoch = checkpoint_callbacks(cfg, run_dir / "checkpoints")
    summary = RunSummary(run_dir / "metrics.json")
    loggers = build_loggers(cfg, run_dir)
    per_neuron = BestPerNeuron(run_dir / "per_neuron.csv", datamodule.sessions)
    callbacks = [checkpoint, *mid_epoch, summary, per_neuron] + ([LearningRateMonitor("step")] if loggers else [])
    launch_ranks_per_job()
    # a step trains one session's readout, so the other readouts get no gradient: DDP must know
    strategy = "ddp_find_unused_parameters_true" if cfg.trainer.strategy == "ddp" else cfg.trainer.strategy
    # without validation windows: no val loop at all, rather than Lightning's warning about an empty val loader
    nothing_to_validate = {"limit_val_batches": 0} if no_validation else {}
    trainer = instantiate(cfg.trainer, _convert_="all", default_root_dir=str(run_dir), logger=loggers or False,
                          strategy=strategy, callbacks=callbacks, use_distributed_sampler=False, plugins=[AtomicCheckpointIO()],
                          **nothing_to_validate)
    if cfg.eval_init and resume_from is None and not no_validation:  # a resumed run has them in its checkpoint
        trainer.validate(module, datamodule=datamodule, verbose=False)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=resume_from)
    except BaseException as e:
        status = "failed" if isinstance(e, Exception) else "interrupted"
        if trainer.is_global_zero:
            result = summary.write(trainer, module, checkpoint, status=status, error=f"{type(e).__name__}: {e}",
                                   no_validation=no_validation)
            finish_loggers(loggers, result, [])  # the next job of a sweep must not log into this run
        raise
    if not trainer.is_global_zero:  # DDP ranks > 0: rank 0 writes the run's files
        return {}
    health = NO_HEALTH if no_validation else health_figures(cfg, module, datamodule, checkpoint)
    result = summary.write(trainer, module, checkpoint, health=health, no_validation=no_validation)
    finish_loggers(loggers, result, per_neuron.write())
    report(result, run_dir, loggers)
    return result


# a run without validation windows has no val windows to score the health figures on
NO_HEALTH = {"val_bps_stimulus_shuffled": None, "val_bps_behavior_only": None}


def health_figures(cfg: DictConfig, module, datamodule, checkpoint) -> dict:
    """The best checkpoint's stimulus-shuffled val score and, on simulated data, the behaviour-only
    score (:mod:`neuroenc.training.health`); the module is left holding the best weights."""
    if checkpoint.best_model_path:
        module.load_state_dict(read_checkpoint(checkpoint.best_model_path, map_location=module.device)["state_dict"])
    return {"val_bps_stimulus_shuffled": health.stimulus_shuffled_score(module, datamodule, cfg.seed),
            "val_bps_behavior_only": health.behavior_only_score(datamodule)}


def report(result: dict, run_dir: Path, loggers: list) -> None:
    console = Console()
    table = Table(title="neuroenc run", show_header=False)
    fmt = lambda v: "n/a" if v is None else f"{v:.4f}"
    table.add_row("best val bits/spike", fmt(result["best_val_bps_overall"]) + f"  (epoch {result['best_epoch']})")
    table.add_row("seed's definition: session mean of neuron bps clamped at 0",
                  fmt(result.get("best_val_bps_neuron_mean_clamped")))
    table.add_row("ground-truth ceiling (oracle)", fmt(result["val_bps_oracle"]))
    frac = result["val_oracle_fraction"]
    table.add_row("fraction of oracle", "n/a" if frac is None else f"{100 * frac:.1f}%")
    table.add_row("untrained model", fmt(result["init_val_bps_overall"]))
    table.add_row("stimulus shuffled (best model)", fmt(result.get("val_bps_stimulus_shuffled")))
    if result.get("val_bps_behavior_only") is not None:
        table.add_row("behaviour alone (simulator's gains)", fmt(result["val_bps_behavior_only"]))
    if result.get("rf_distance_px_median") is not None:
        table.add_row("readout to true RF, median", f"{result['rf_distance_px_median']:.2f} px")
    table.add_row("epochs / steps", f"{result['epochs']} / {result['steps']}")
    table.add_row("wall time", f"{result['wall_time_s']:.1f} s")
    table.add_row("best checkpoint", str(result["best_checkpoint"]))
    table.add_row("metrics", str(run_dir / "metrics.json"))
    for lg in loggers:
        table.add_row(f"{type(lg).__name__} logs", str(getattr(lg, "log_dir", None) or getattr(lg, "save_dir", "")))
    console.print(table)
    if result.get("no_validation"):
        console.print(f"[bold red]warning:[/] {result['no_validation']}")
    warning = health.stimulus_warning(result)
    if warning:
        console.print(f"[bold red]warning:[/] {warning}")
