"""Experiment loggers (CSV, Weights & Biases), all writing into the run directory.

W&B runs are named and grouped from Hydra's view of the job, so a sweep is one W&B group with
one run per job: group = the sweep's directory (``<date>/<time>``), name = the job's overrides.
The whole resolved config is logged as the run config, so dashboards can group by any key
(``convnet.tokenizer.stride``, ``experiment``, ...). ``val_bps_overall``'s summary is its best value,
and ``val_bps_neuron_mean_clamped``'s (VisionCore's definition) its value at that epoch.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from neuroenc.training.callbacks.summary import RunResult


def _job_identity() -> dict:
    """Run name and group from Hydra; empty outside a Hydra app (tests, notebooks)."""
    if not HydraConfig.initialized():
        return {}
    hc = HydraConfig.get()
    name = hc.job.override_dirname or hc.job.name
    if hc.mode == RunMode.MULTIRUN:
        group = "/".join(Path(hc.sweep.dir).parts[-2:])
    else:
        group = None
    return {"name": name, "group": group}


def build_loggers(cfg: DictConfig, run_dir: Path) -> list:
    loggers = []
    for key, node in cfg.logger.items():
        if node is None:
            continue
        extra = {"save_dir": str(run_dir)}
        if key == "wandb":
            ident = _job_identity()
            extra.update({k: v for k, v in ident.items() if node.get(k) is None and v is not None})
        logger = instantiate(node, _convert_="all", **extra)
        if isinstance(logger, WandbLogger):
            logger.log_hyperparams(cast(dict, OmegaConf.to_container(cfg, resolve=True)))
            logger.experiment.define_metric("val_bps_overall", summary="max")
            logger.experiment.define_metric("val_oracle_fraction", summary="max")
        loggers.append(logger)
    return loggers


def finish_loggers(loggers: list, result: RunResult, per_neuron: list[dict]) -> None:
    """End-of-job W&B summary: best val_bps_overall, a per-neuron table and histogram; then finish.

    ``wandb.finish()`` after each job matters in a multirun: without it the next job's metrics
    would go into this job's run.
    """
    for logger in loggers:
        if not isinstance(logger, WandbLogger):
            continue
        import wandb

        run = logger.experiment
        if result.get("best_val_bps_overall") is not None:
            run.summary["val_bps_overall"] = result["best_val_bps_overall"]
        if result.get("best_val_bps_neuron_mean_clamped") is not None:
            run.summary["val_bps_neuron_mean_clamped"] = result["best_val_bps_neuron_mean_clamped"]
        run.summary["status"] = result.get("status")
        for key in ("val_bps_stimulus_shuffled", "val_bps_behavior_only", "rf_distance_px_median"):
            if result.get(key) is not None:
                run.summary[key] = result[key]
        if per_neuron:
            columns = list(per_neuron[0])
            table = wandb.Table(columns=columns, data=[[row[c] for c in columns] for row in per_neuron])
            run.log({"per_neuron_bps": table,
                     "per_neuron_bps_hist": wandb.Histogram([r["bps"] for r in per_neuron if r["bps"] == r["bps"]])})
        wandb.finish()
