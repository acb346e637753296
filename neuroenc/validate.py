"""Checks on a composed config that the schemas cannot express, run before anything is built.

Types, unknown keys and missing values are caught by the structured-config schemas when Hydra
composes; these catch values that are well typed but impossible. Each message names the key.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf


class ConfigError(ValueError):
    """A config value that cannot work; the message starts with the offending key."""

    def __init__(self, key: str, problem: str):
        super().__init__(f"config key '{key}': {problem}")
        self.key = key


POSITIVE_INT_KEYS = {"window", "batch_size", "num_channels", "out_channels", "hidden_dim", "stride",
                     "dilation", "num_sessions", "trial_frames", "height", "width", "neurons_min",
                     "neurons_max", "trials_train", "embedding_dim", "num_heads", "head_dim", "ff_dim",
                     "temporal_stride", "frame_rate"}
NON_NEGATIVE_KEYS = {"burn_in", "num_workers", "beh_emb_dim", "trials_val", "trials_test", "weight_decay", "position_lr_ratio",
                     "warmup_steps", "max_eye_shift", "padding", "num_spatial_blocks", "num_temporal_blocks",
                     "num_registers"}


def _walk(node, prefix: str = ""):
    if isinstance(node, DictConfig):
        for k in node.keys():
            v = node._get_node(k)
            container = isinstance(v, (DictConfig, ListConfig)) and not v._is_none()  # a null list is a leaf
            yield from _walk(v if container else node[k], f"{prefix}{k}.")
    elif isinstance(node, ListConfig):
        for i, v in enumerate(node):
            yield from _walk(v, f"{prefix[:-1]}[{i}].")
    else:
        yield prefix[:-1], node


def check(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first impossible value in ``cfg`` (hydra node excluded)."""
    missing = OmegaConf.missing_keys(cfg)
    if missing:
        key = sorted(missing)[0]
        raise ConfigError(key, "missing value (???): set it on the command line or in a config file")
    for key, v in _walk(cfg):
        leaf = key.rsplit(".", 1)[-1].split("[")[0]
        if isinstance(v, bool) or v is None:
            continue
        if leaf in POSITIVE_INT_KEYS and isinstance(v, (int, float)) and v <= 0:
            raise ConfigError(key, f"must be positive, got {v}")
        if leaf in NON_NEGATIVE_KEYS and isinstance(v, (int, float)) and v < 0:
            raise ConfigError(key, f"must not be negative, got {v}")
        if (leaf in ("dropout", "drop_path") or leaf.endswith("_dropout")) and not 0 <= v < 1:
            raise ConfigError(key, f"must be in [0, 1), got {v}")
        if leaf == "kernel_size":
            sizes = list(v) if isinstance(v, (list, tuple, ListConfig)) else [v]
            if any(int(s) <= 0 for s in sizes):
                raise ConfigError(key, f"sizes must be positive, got {sizes}")
        if leaf == "lr" and v <= 0:
            raise ConfigError(key, f"must be positive, got {v}")
        if leaf in ("every_n_train_steps", "every_n_minutes") and v <= 0:
            raise ConfigError(key, f"must be positive, or null to turn this trigger off; got {v}")
    if cfg.get("scale", 1.0) <= 0:
        raise ConfigError("scale", f"must be positive, got {cfg.scale}")
    if cfg.get("scale", 1.0) != 1.0 and "${scaled:" not in str(OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError("scale", f"{cfg.scale} scales no width of this config: only values written as "
                                   "${scaled:N} (the experiment presets' widths) follow it; set the widths directly")
    d = cfg.data
    root = d.get("root")
    if root is not None and not Path(root).expanduser().is_dir():
        raise ConfigError("data.root", f"{root!r} is not a directory (resolved: {Path(root).expanduser().resolve()})")
    if d.burn_in >= d.window:
        raise ConfigError("data.burn_in", f"{d.burn_in} leaves no scored frame in a window of data.window={d.window}")
    sim = d.get("simulation")
    if sim is not None:
        if sim.neurons_min > sim.neurons_max:
            raise ConfigError("data.simulation.neurons_min", f"{sim.neurons_min} > neurons_max={sim.neurons_max}")
        if sim.trial_frames < d.window:
            raise ConfigError("data.window", f"{d.window} is longer than a simulated trial "
                                             f"(data.simulation.trial_frames={sim.trial_frames})")
    if not 0 <= cfg.optim.min_lr_ratio <= 1:
        raise ConfigError("optim.min_lr_ratio", f"must be in [0, 1], got {cfg.optim.min_lr_ratio}")
