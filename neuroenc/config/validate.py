"""Checks on a composed config that no single constructor can make, run before anything is built.

Types, unknown keys and missing values are caught by the structured-config schemas when Hydra
composes; impossible values of one part's arguments by that part's constructor, whose message
``neuroenc.training.build`` puts on the config key. What is left here spans groups or has no constructor
of its own to check it. Each message names the key.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the offending key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"config key '{key}': {problem}")
        self.key = key


def check(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first impossible value in ``cfg`` that this module checks."""
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        key = sorted(missing)[0]
        raise ConfigError(key, "missing value (???): set it on the command line or in a config file")
    # spans the whole config: which values were written as ${scaled:N}
    if cfg.scale <= 0:
        raise ConfigError("scale", f"must be positive, got {cfg.scale}")
    if cfg.scale != 1.0 and "${scaled:" not in str(OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError("scale", f"{cfg.scale} scales no width of this config: only values written as "
                                   "${scaled:N} (the experiment presets' widths) follow it; set the widths directly")
    # here, not in SessionDataModule: evaluate and report rebuild the datamodule of a checkpoint
    # whose sessions may have moved, and there the missing directory has its own message
    root = cfg.data.get("root")
    if root is not None and not Path(root).expanduser().is_dir():
        raise ConfigError("data.root", f"{root!r} is not a directory (resolved: {Path(root).expanduser().resolve()})")
    # optim and checkpoint are plain settings read by the LightningModule and the checkpoint
    # callbacks, which have no arguments of these names to check them by
    o = cfg.optim
    if o.lr <= 0:
        raise ConfigError("optim.lr", f"must be positive, got {o.lr}")
    for key in ("weight_decay", "warmup_steps", "position_lr_ratio"):
        if o[key] < 0:
            raise ConfigError(f"optim.{key}", f"must not be negative, got {o[key]}")
    if not 0 <= o.min_lr_ratio <= 1:
        raise ConfigError("optim.min_lr_ratio", f"must be in [0, 1], got {o.min_lr_ratio}")
    for key in ("limit_train_batches", "limit_val_batches", "val_check_interval"):
        problem = batch_count_problem(cfg.trainer[key])
        if problem:
            raise ConfigError(f"trainer.{key}", problem)
    for key in ("every_n_train_steps", "every_n_minutes"):
        v = cfg.checkpoint[key]
        if v is not None and v <= 0:
            raise ConfigError(f"checkpoint.{key}", f"must be positive, or null to turn this trigger off; got {v}")


def batch_count_problem(value: object) -> str | None:
    """What is wrong with a Lightning batch limit: an int counts batches, a float in [0, 1] is a
    fraction of the epoch, null is the whole epoch; anything else is refused rather than guessed."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"must be a number of batches (int), a fraction of the epoch (float in [0, 1]) or null; got {value!r}"
    if isinstance(value, int) and value < 0:
        return f"a number of batches must not be negative, got {value}"
    if isinstance(value, float) and not 0.0 <= value <= 1.0:
        return (f"a float is a fraction of the epoch and must be in [0, 1], got {value}; "
                f"write an int ({int(value)}) for a number of batches")
    return None
