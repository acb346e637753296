"""From a composed config to the objects of a run: datamodule, encoder, LightningModule."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from typing import cast

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from neuroenc.config.validate import ConfigError, check
from neuroenc.data.datamodule import DatasetInfo, SessionDataModule, SyntheticDataModule
from neuroenc.data.synthetic import BEHAVIOR_NAMES, session_id
from neuroenc.model.encoder import Encoder
from neuroenc.training.module import EncoderModule

_ABSENT = object()


def named(node: DictConfig, key: str, cause: BaseException) -> ConfigError:
    """``cause`` as a :class:`ConfigError` naming the config key. Constructors name their own
    argument (``"num_heads: ..."``, ``"stages[0].stride: ..."``); the path of ``node`` in the config
    (``key``) is ours to add. A message that names no argument of ``node`` is put on ``key``."""
    if isinstance(cause, ConfigError):  # the part already named the full key
        return cause
    arg, sep, problem = str(cause).partition(": ")
    try:
        found = sep and OmegaConf.select(node, arg, default=_ABSENT) is not _ABSENT
    except Exception:  # not a key at all (a message of torch's, say)
        found = False
    if found:
        return ConfigError(f"{key}.{arg}", problem)
    return ConfigError(key, f"cannot build {node.get('_target_')}: {cause}")


def _instantiate(node: DictConfig, key: str, **kwargs):
    try:
        return instantiate(node, _convert_="all", **kwargs)
    except Exception as e:  # hydra wraps constructor errors; name the config key they came from
        raise named(node, key, e.__cause__ or e) from e


# data keys a config stored by an older checkpoint lacks, and what that checkpoint's run did without
# them: estimated receptive fields on the screen image; never refused to train (evaluation and
# prediction do not ask it anyway); trained on every trial
OLDER_DATA_KEYS = {"eye_px_per_unit": None, "allow_no_validation": False, "train_classes": None}


def build_datamodule(cfg: DictConfig) -> SessionDataModule:
    missing = {k: v for k, v in OLDER_DATA_KEYS.items() if k not in cfg.data}
    return _instantiate(cfg.data, "data", **missing)


def build_shifter(cfg: DictConfig, info: DatasetInfo):
    """The configured shifter, or None (``shifter=none``, a config from before shifters, or the
    ``auto`` option on data without eye-position columns)."""
    node = cfg.get("shifter")
    if node is None or node.get("_target_") is None:
        return None
    shifter = _instantiate(node, "shifter", behavior_names=list(info.behavior_names or []),
                           session_ids=info.session_ids)
    return shifter if shifter.active else None


def build_gaze(cfg: DictConfig, info: DatasetInfo):
    """The configured per-frame gaze correction, or None (``gaze=none``, or a config from before
    the option existed)."""
    node = cfg.get("gaze")
    if node is None or node.get("_target_") is None:
        return None
    return _instantiate(node, "gaze", behavior_names=list(info.behavior_names or []), session_ids=info.session_ids,
                        normalization=info.normalization)


def build_encoder(cfg: DictConfig, info: DatasetInfo, rf_centers: dict | None = None) -> Encoder:
    """Build the encoder and run one small forward pass so impossible shapes fail now.

    ``rf_centers`` (session -> ``(N, 2)`` pixels, see ``SessionDataModule.rf_centers``) place the
    readouts at ``readout.init_positions=data``; without them (a model rebuilt to load a
    checkpoint into) positions start uniform, to be overwritten.
    """
    frontend = _instantiate(cfg.frontend, "frontend", in_channels=info.in_channels)
    convnet = _instantiate(cfg.convnet, "convnet", in_channels=frontend.out_channels)
    modulator = _instantiate(cfg.modulator, "modulator", in_channels=convnet.out_channels,
                             behavior_dim=info.behavior_dim)
    grid = convnet.feature_grid(tuple(info.frame_shape))
    from_data = rf_centers is not None and cfg.readout.get("init_positions") == "data"
    centers = rf_centers or {}  # read only when from_data
    readouts = {
        s: _instantiate(cfg.readout, "readout", in_channels=modulator.out_channels, n_neurons=info.n_neurons[s],
                        mean_rate=info.mean_rate[s],
                        init_mean=grid.to_grid(torch.as_tensor(centers[s], dtype=torch.float64)) if from_data else None)
        for s in info.session_ids
    }
    encoder = Encoder(frontend, convnet, modulator, readouts, shifter=build_shifter(cfg, info),
                      frame_shape=info.frame_shape, gaze=build_gaze(cfg, info))
    dry_run(encoder, cfg, info)
    return encoder


def dry_run(encoder: Encoder, cfg: DictConfig, info: DatasetInfo) -> None:
    """One forward pass on a window of zeros; shape errors come out naming the stage.

    Parts may define ``check_input((T, H, W))`` that raises ``ValueError`` naming the argument.
    """
    t = int(cfg.data.window)
    h, w = info.frame_shape
    stim = torch.zeros(1, info.in_channels, t, h, w)
    beh = torch.zeros(1, t, info.behavior_dim)
    for key, part in (("frontend", encoder.frontend), ("convnet", encoder.convnet), ("modulator", encoder.modulator)):
        # a part that knows its own limits (a tokenizer larger than the frame, say) names the argument
        check_input = getattr(part, "check_input", None)
        if check_input is not None:
            try:
                check_input((t, h, w))
            except ValueError as e:
                raise named(cfg[key], key, e) from e
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.no_grad():
            x = encoder.gaze_corrected(stim, beh, info.session_ids[0])
            for key, stage in (("frontend", encoder.frontend), ("convnet", encoder.convnet)):
                try:
                    x = stage(x)
                except RuntimeError as e:
                    raise ConfigError(key, f"cannot process input of shape {tuple(stim.shape)}: {e}") from e
            try:
                x = encoder.modulate(x, beh)
            except RuntimeError as e:
                raise ConfigError("modulator", f"cannot process features of shape {tuple(x.shape)}: {e}") from e
            y = encoder.read(x, beh, info.session_ids[0])
        expect = (1, t, info.n_neurons[info.session_ids[0]])
        if tuple(y.shape) != expect:
            raise ConfigError("convnet", f"encoder output {tuple(y.shape)} is not (B, T, N) = {expect}")
    finally:
        encoder.train(was_training)


def apply_speed_options(encoder: Encoder, cfg: DictConfig) -> Encoder:
    """``channels_last`` and ``compile`` from the config, after the (eager) dry run."""
    if cfg.channels_last:
        encoder.use_channels_last()
    if cfg.compile:
        # inductor builds C++ (CPU) or a C launcher (Triton) at the first step: say so before training
        compilers = [os.environ.get("CXX"), "g++", "c++", "clang++"]
        if not any(c and shutil.which(c) for c in compilers):
            raise ConfigError("compile", "torch.compile needs a C++ compiler (g++ or clang++, or $CXX) on PATH and "
                                         "none was found: install one or set compile=false")
        encoder.compile_parts()
    return encoder


def build_module(cfg: DictConfig, info: DatasetInfo, rf_centers: dict | None = None) -> EncoderModule:
    encoder = apply_speed_options(build_encoder(cfg, info, rf_centers), cfg)
    return EncoderModule(encoder, info.n_neurons, cast(dict, OmegaConf.to_container(cfg.optim, resolve=True)),
                         has_oracle=info.has_oracle, config=cast(dict, OmegaConf.to_container(cfg, resolve=True)),
                         data_info=dataclasses.asdict(info), seed=cfg.seed)


def planned_info(cfg: DictConfig, frame_shape: tuple[int, int] | None = None) -> tuple[DatasetInfo, str]:
    """The :class:`DatasetInfo` a run would build the model with, without generating data.

    Simulated data: frame size and behaviour from the config, ``neurons_max`` neurons per session
    (the simulator draws between ``neurons_min`` and ``neurons_max``). Sessions on disk: opened and
    read. ``frame_shape`` replaces the data's frame size. Returns the info and a note on its source.
    """
    data = build_datamodule(cfg)
    if isinstance(data, SyntheticDataModule):
        sim = cfg.data.simulation
        ids = [session_id(i) for i in range(sim.num_sessions)]
        info = DatasetInfo(session_ids=ids, n_neurons={s: sim.neurons_max for s in ids},
                           mean_rate={s: None for s in ids}, behavior_dim=len(BEHAVIOR_NAMES), in_channels=1,
                           frame_shape=(sim.height, sim.width), has_oracle=True,
                           behavior_names=list(BEHAVIOR_NAMES))  # the shifter finds its eye columns
        note = f"simulated V1, {sim.num_sessions} sessions of up to {sim.neurons_max} neurons"
    else:
        info = data.info
        note = f"{len(info.session_ids)} sessions under {cfg.data.root}"
    if frame_shape is not None:
        info.frame_shape = tuple(frame_shape)  # type: ignore[assignment]  # a pair, maybe passed as a list
    return info, note


def build_encoder_without_data(cfg: DictConfig, input_shape: tuple[int, int, int] | None = None
                               ) -> tuple[Encoder, DatasetInfo, int, str]:
    """Check ``cfg`` and build its encoder (dry run included) as a run would, from :func:`planned_info`
    instead of the data, for windows of ``input_shape`` = T, H, W or, without it, the data's
    (``cfg.data.window`` is set to T). Returns the encoder (eval mode), the info, T and the data note."""
    check(cfg)
    info, source = planned_info(cfg, input_shape[1:] if input_shape else None)
    if input_shape:
        cfg.data.window = input_shape[0]
    torch.manual_seed(cfg.seed)
    return build_encoder(cfg, info).eval(), info, int(cfg.data.window), source


def parse_input_shape(text: str) -> tuple[int, int, int]:
    """``"T,H,W"`` -> ``(T, H, W)``: the ``--input`` argument of the tools that build without data."""
    try:
        t, h, w = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--input wants T,H,W (three integers), got {text!r}") from None
    if min(t, h, w) < 1:
        raise argparse.ArgumentTypeError(f"--input sizes must be positive, got {text!r}")
    return t, h, w
