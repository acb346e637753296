"""Structured-config schemas, registered in Hydra's ConfigStore.

Each YAML option in ``conf/<group>/`` extends one of these schemas (``/schema/<group>/<name>@_here_``
in its defaults; the ``schema`` group is not one users choose from), so Hydra rejects an unknown
key, a value of the wrong type or a missing value at composition time and names the key. They
hold types, ``_target_``, links to the run's ``${seed}`` and MISSING: every value a user gets is written
once, in the option YAML under ``conf/`` (a key it leaves out is a missing value), and the ``_target_``
classes take these fields as arguments without defaults of their own. Two schemas are the parameter
records of their classes (``StageConfig`` the ResNet's ``StageSpec``, ``SimulationConfig`` the
simulator's ``SimulationParams``), whose defaults they keep; an unused logger slot is null. Fields map one to one onto
constructor arguments of the ``_target_`` classes: nothing in a config is read-but-ignored.
Constructors check their own arguments and name them; ``neuroenc.training.build`` adds the config path,
and ``neuroenc.config.validate`` checks what spans several groups.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import II, MISSING, OmegaConf

from neuroenc.config.records import SimulationParams, StageSpec

# ---------------------------------------------------------------------------------------- data


@dataclass
class SimulationConfig(SimulationParams):
    """The simulated V1 (``neuroenc.config.records.SimulationParams``: fields, units, checks), seeded by the run.

    The simulator's record keeps defaults of its own, for callers outside a config and for configs
    stored by older checkpoints; ``conf/data/synthetic.yaml`` writes every one of them too, and
    ``tests/config/test_defaults.py`` fails when the two differ.
    """

    seed: int = II("seed")


@dataclass
class WindowsConfig:
    """How sessions are cut into windows and batched (shared by every data option)."""

    window: int = MISSING  # frames per window
    burn_in: int = MISSING  # leading frames that give history but are not scored
    batch_size: int = MISSING
    num_workers: int = MISSING
    seed: int = II("seed")  # data order
    # train even when no session has a validation window (no val split in meta.json, or val trials
    # shorter than window): no val score, no best checkpoint. false: such data stop the run before training
    allow_no_validation: bool = MISSING
    # train (and select the checkpoint) on the trials of these stimulus classes only (meta.json
    # trial_class, e.g. the simulator's data.simulation.stimuli); the test split keeps every class.
    # null: every trial
    train_classes: Optional[List[str]] = MISSING


@dataclass
class SessionsDataConfig(WindowsConfig):
    _target_: str = "neuroenc.data.datamodule.SessionDataModule"
    root: str = MISSING
    # the sessions' frame rate (Hz), checked against their meta.json: needed by presets that give
    # temporal sizes in milliseconds (${frames_ms:...}), which cannot read it from the sessions
    frame_rate: Optional[float] = MISSING
    # pixels of the frame per unit of the eye_x, eye_y behaviour columns: readouts then start at
    # receptive fields estimated on the stimulus as the retina saw it. null: on the screen image
    # (the right choice where the stimulus is already gaze-corrected or the eye is unknown)
    eye_px_per_unit: Optional[float] = MISSING


@dataclass
class SyntheticDataConfig(WindowsConfig):
    _target_: str = "neuroenc.data.datamodule.SyntheticDataModule"
    cache_dir: str = MISSING
    simulation: SimulationConfig = MISSING
    eye_px_per_unit: Optional[float] = MISSING  # see SessionsDataConfig


# ------------------------------------------------------------------------------------ frontend


@dataclass
class LearnableTemporalConfig:
    _target_: str = "neuroenc.model.frontend.LearnableTemporalFrontend"
    num_channels: int = MISSING
    kernel_size: int = MISSING
    init: str = MISSING  # "gaussian_derivatives" or "random"
    anti_aliasing: bool = MISSING
    # with anti_aliasing: the window on the raw taps, "hann" (VisionCore's) or "rect" (no taper)
    aa_window: str = MISSING
    bias: bool = MISSING


@dataclass
class NoFrontendConfig:
    _target_: str = "neuroenc.model.frontend.PixelFrontend"


# ------------------------------------------------------------------------------------- convnet


# one ResNet stage: out_channels, kernel_size (t, h, w), stride, dilation, pool, dropout,
# temporal_stride, temporal_dilation, convs. A stage is a list element, which no YAML can give
# defaults to, so the record's own defaults (neuroenc/config/records.py) fill what a stage leaves out.
StageConfig = StageSpec


@dataclass
class ResNetConfig:
    _target_: str = "neuroenc.model.convnet.resnet.ResNet"
    stages: List[StageConfig] = MISSING


@dataclass
class TokenizerConfig:
    """Tubelets (t, h, w); time padding adds past frames only (see ``TubeletTokenizer``)."""

    kernel_size: Optional[List[int]] = MISSING  # null: the stride (non-overlapping tubelets)
    stride: List[int] = MISSING
    padding: List[int] = MISSING


@dataclass
class TemporalTransformerConfig:
    """Fields shared by the convnets that end in causal temporal transformer blocks."""

    embedding_dim: int = MISSING
    num_temporal_blocks: int = MISSING
    num_heads: int = MISSING
    head_dim: Optional[int] = MISSING  # null: embedding_dim / num_heads
    ff_dim: int = MISSING
    activation: str = MISSING  # "gelu" or "swiglu"
    dropout: float = MISSING  # after attention projection and in the feed-forward
    attn_dropout: float = MISSING
    drop_path: float = MISSING  # stochastic depth of the last block; grows linearly from 0


@dataclass
class ViViTConfig(TemporalTransformerConfig):
    _target_: str = "neuroenc.model.convnet.vivit.ViViT"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    num_spatial_blocks: int = MISSING
    patch_dropout: float = MISSING  # training: a token's content is zeroed with this probability
    num_registers: int = MISSING


@dataclass
class HybridConfig(TemporalTransformerConfig):
    _target_: str = "neuroenc.model.convnet.hybrid.Hybrid"
    stages: List[StageConfig] = MISSING


# ----------------------------------------------------------------------------------- modulator


@dataclass
class ConvGRUConfig:
    _target_: str = "neuroenc.model.modulator.ConvGRUModulator"
    hidden_dim: int = MISSING
    beh_emb_dim: int = MISSING
    kernel_size: int = MISSING


@dataclass
class NoModulatorConfig:
    _target_: str = "neuroenc.model.modulator.NoModulator"


# ------------------------------------------------------------------------------------- readout


@dataclass
class GaussianReadoutConfig:
    _target_: str = "neuroenc.model.readout.GaussianReadout"
    init_std: float = MISSING  # std of the position sampled in training, grid units (learned from there)
    nonlinearity: str = MISSING  # "softplus" or "exp"
    # "data": start each neuron at its receptive field estimated from the training split
    # (neuroenc.data.receptive_fields); "uniform": anywhere in [-0.5, 0.5]^2
    init_positions: str = MISSING
    feature_init_std: float = MISSING


# ------------------------------------------------------------------------------------- shifter


@dataclass
class MLPShifterConfig:
    """Eye position -> a shift of every readout position, per frame (``neuroenc.model.shifter``)."""

    _target_: str = "neuroenc.model.shifter.MLPShifter"
    columns: List[str] = MISSING  # behaviour columns, x then y
    hidden: List[int] = MISSING
    shared: bool = MISSING  # one MLP for all sessions, or one each
    required: bool = MISSING  # false (shifter=auto): no shifter when the data lacks the columns


@dataclass
class NoShifterConfig:
    _target_: Optional[str] = None


# ---------------------------------------------------------------------------------------- gaze


@dataclass
class FrameGazeConfig:
    """Each stimulus frame shifted by its own eye position before the frontend (``neuroenc.model.gaze``)."""

    _target_: str = "neuroenc.model.gaze.FrameGazeCorrection"
    columns: List[str] = MISSING  # behaviour columns, x then y
    # pixels of the frame per unit of the eye columns: where each session's learned gain starts
    eye_px_per_unit: Optional[float] = MISSING


@dataclass
class NoGazeConfig:
    _target_: Optional[str] = None


# ------------------------------------------------------------------------ trainer, logger, optim


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.pytorch.Trainer`` by their Lightning names."""

    _target_: str = "lightning.pytorch.Trainer"
    max_epochs: Optional[int] = MISSING
    max_steps: int = MISSING
    max_time: Optional[str] = MISSING
    # Lightning reads an int as a number of batches and a float as a fraction of the epoch, so these
    # stay untyped here (a float type would turn `=1` into 1.0, all batches); check() enforces the rule
    limit_train_batches: Any = MISSING
    limit_val_batches: Any = MISSING
    val_check_interval: Any = MISSING
    check_val_every_n_epoch: Optional[int] = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    num_nodes: int = MISSING
    strategy: Any = MISSING
    precision: Any = MISSING
    gradient_clip_val: Optional[float] = MISSING
    accumulate_grad_batches: int = MISSING
    log_every_n_steps: int = MISSING
    deterministic: Any = MISSING
    benchmark: Optional[bool] = MISSING
    num_sanity_val_steps: int = MISSING
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = MISSING


@dataclass
class CSVLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.CSVLogger"
    name: str = MISSING


@dataclass
class WandbLoggerConfig:
    """Lightning's WandbLogger. ``name`` and ``group`` left null come from Hydra: the job's
    overrides and the sweep's directory. Set WANDB_MODE=offline to write runs locally."""

    _target_: str = "lightning.pytorch.loggers.WandbLogger"
    project: str = MISSING
    entity: Optional[str] = MISSING
    group: Optional[str] = MISSING
    name: Optional[str] = MISSING
    job_type: str = MISSING
    tags: List[str] = MISSING
    log_model: bool = MISSING


@dataclass
class LoggerConfig:
    """Loggers by name; each one present is instantiated with the run directory as save_dir.

    A slot is empty (null) unless the option fills it: absence is what "no such logger" means, so
    an option names only the loggers it turns on (``logger=csv_wandb`` is ``csv`` plus ``wandb``)."""

    csv: Optional[CSVLoggerConfig] = None
    wandb: Optional[WandbLoggerConfig] = None


@dataclass
class OptimConfig:
    """AdamW with linear warmup, then cosine decay to ``lr * min_lr_ratio`` (``EncoderModule.configure_optimizers``)."""

    lr: float = MISSING
    weight_decay: float = MISSING
    warmup_steps: int = MISSING
    min_lr_ratio: float = MISSING
    position_lr_ratio: float = MISSING  # readout positions (means and sampling std) learn at this fraction of lr


@dataclass
class CheckpointConfig:
    """When ``checkpoints/last.ckpt``, what ``resume`` continues from, is written.

    Always after every validation; within an epoch also every ``every_n_train_steps`` optimizer
    steps and every ``every_n_minutes`` of training (null: not on that trigger), so a job killed
    mid-epoch loses little. The best checkpoint by ``val_bps_overall`` is kept besides.
    """

    every_n_train_steps: Optional[int] = MISSING
    every_n_minutes: Optional[float] = MISSING


@dataclass
class Config:
    data: Any = MISSING
    frontend: Any = MISSING
    convnet: Any = MISSING
    modulator: Any = MISSING
    readout: Any = MISSING
    shifter: Any = MISSING
    gaze: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = MISSING
    eval_init: bool = MISSING  # score the untrained model on the val split before fitting
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    # torch.compile the frontend, the convnet and the modulator's recurrence step (inductor; on the
    # CPU it needs a C++ compiler). python -m neuroenc.bench model compile=true measures the gain.
    compile: bool = MISSING
    # multiplies every channel width a config writes as ${scaled:N} (the experiment presets do),
    # keeping their ratios: scale=0.125 turns the GPU-scale ladder into a CPU-sized one
    scale: float = MISSING
    # channels-last 3-D layout for the convolutions (cuDNN's preferred layout; slower on this
    # project's 2-core CPU, see docs/speed.md)
    channels_last: bool = MISSING
    # continue a run from its checkpoints/last.ckpt: "true" finds the newest run with the same
    # overrides (see neuroenc.training.resume), or give the run directory; null: start a new run
    resume: Optional[str] = MISSING


@dataclass
class EvaluateConfig:
    """``python -m neuroenc.evaluate checkpoint=<path>`` (conf/evaluate.yaml): per-neuron scores and plots."""

    checkpoint: str = MISSING
    out_dir: Optional[str] = MISSING  # null: <run dir>/evaluation/<checkpoint name>
    splits: List[str] = MISSING
    accelerator: str = MISSING  # Lightning's; scores equal training's on the same kind of device
    data_root: Optional[str] = MISSING  # sessions moved since training (data=sessions): their new directory


@dataclass
class InsilicoConfig:
    """``python -m neuroenc.insilico checkpoint=<path>`` (conf/insilico.yaml): in-silico experiments."""

    checkpoint: str = MISSING
    analyses: List[str] = MISSING
    sessions: Optional[List[str]] = MISSING
    neurons: Optional[List[int]] = MISSING
    out_dir: Optional[str] = MISSING
    device: str = MISSING
    data_root: Optional[str] = MISSING
    seed: int = MISSING


@dataclass
class PredictDataConfig:
    root: Optional[str] = MISSING  # sessions to predict; null: the data the checkpoint was trained on


@dataclass
class PredictConfig:
    """``python -m neuroenc.predict checkpoint=<path>`` (conf/predict.yaml): rates per frame of a split."""

    checkpoint: str = MISSING
    data: PredictDataConfig = field(default_factory=PredictDataConfig)
    split: str = MISSING
    out_dir: Optional[str] = MISSING  # null: <run dir>/predictions/<checkpoint name>/<split>
    batch_size: int = MISSING  # windows per forward pass
    device: str = MISSING
    csv: bool = MISSING  # also <session>.csv beside the .npy


SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"synthetic": SyntheticDataConfig, "sessions": SessionsDataConfig},
    "frontend": {"learnable_temporal": LearnableTemporalConfig, "none": NoFrontendConfig},
    "convnet": {"resnet": ResNetConfig, "vivit": ViViTConfig, "hybrid": HybridConfig},
    "modulator": {"convgru": ConvGRUConfig, "none": NoModulatorConfig},
    "readout": {"gaussian": GaussianReadoutConfig},
    "shifter": {"mlp": MLPShifterConfig, "none": NoShifterConfig},
    "gaze": {"per_frame": FrameGazeConfig, "none": NoGazeConfig},
    "trainer": {"default": TrainerConfig},
    "optim": {"adamw": OptimConfig},
}


def scaled(width: int, _root_) -> int:
    """``${scaled:N}``: the channel width ``N`` times the config's ``scale``, rounded, at least 1."""
    return max(1, round(int(width) * float(_root_.scale)))


def frames_ms(ms: float, _root_) -> int:
    """``${frames_ms:MS}``: the number of frames spanning ``MS`` milliseconds at the data's frame
    rate (``data.simulation.frame_rate``, or ``data.frame_rate`` for sessions on disk), rounded
    half up, at least 1."""
    data = _root_.data
    rate = data.simulation.frame_rate if "simulation" in data else data.get("frame_rate")
    if rate is None:
        raise ValueError(f"config key 'data.frame_rate': ${{frames_ms:{ms}}} needs the data's frame rate; "
                         "set data.frame_rate to the sessions' (meta.json frame_rate)")
    return max(1, math.floor(float(ms) * float(rate) / 1000 + 0.5))


def register() -> None:
    """Register every schema as ``schema/<group>/<option>`` and the roots as ``config_schema``,
    ``evaluate_schema`` and ``predict_schema``, and the ``scaled`` and ``frames_ms`` resolvers.

    The schemas get a group of their own, which the YAML options extend: under ``<group>`` itself
    Hydra would offer them as options (``convnet=resnet_schema``) in ``--help`` and in its errors.
    """
    if not OmegaConf.has_resolver("scaled"):
        OmegaConf.register_new_resolver("scaled", scaled)
    if not OmegaConf.has_resolver("frames_ms"):
        OmegaConf.register_new_resolver("frames_ms", frames_ms)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(name="evaluate_schema", node=EvaluateConfig)
    cs.store(name="predict_schema", node=PredictConfig)
    cs.store(name="insilico_schema", node=InsilicoConfig)
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
