"""Structured-config schemas, registered in Hydra's ConfigStore.

Each YAML option in ``conf/<group>/`` extends one of these schemas (``/schema/<group>/<name>@_here_``
in its defaults; the ``schema`` group is not one users choose from), so Hydra rejects an unknown
key, a value of the wrong type or a missing value at composition time and names the key. Every
default is written once, here, and the YAML options set only what differs: the ``_target_``
classes take these fields as arguments without defaults of their own. Two schemas are the
parameter records of their classes (``SimulationConfig`` is the simulator's ``SimulationParams``,
``StageConfig`` the ResNet's ``StageSpec``), whose defaults they keep. Fields map one to one onto
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
    """The simulated V1 (``neuroenc.data.synthetic.SimulationParams``: fields, defaults, units).

    Time is physical (ms, s, Hz), so ``frame_rate`` changes the sampling, not the biology; the
    trial layout is in frames, like ``data.window``. The defaults are mouse V1 at 30 Hz;
    ``data=synthetic_primate`` sets primate V1 at 120 Hz.
    """

    seed: int = II("seed")


@dataclass
class WindowsConfig:
    """How sessions are cut into windows and batched (shared by every data option)."""

    # frames per window: 128 scores 104 frames for 24 of burn-in (81%; 64 would score 62%)
    window: int = 128
    burn_in: int = 24  # leading frames that give history but are not scored
    batch_size: int = 4
    num_workers: int = 0
    seed: int = II("seed")  # data order
    # train even when no session has a validation window (no val split in meta.json, or val trials
    # shorter than window): no val score, no best checkpoint. false: such data stop the run before training
    allow_no_validation: bool = False


@dataclass
class SessionsDataConfig(WindowsConfig):
    _target_: str = "neuroenc.data.datamodule.SessionDataModule"
    root: str = MISSING
    # the sessions' frame rate (Hz), checked against their meta.json: needed by presets that give
    # temporal sizes in milliseconds (${frames_ms:...}), which cannot read it from the sessions
    frame_rate: Optional[float] = None
    # pixels of the frame per unit of the eye_x, eye_y behaviour columns: readouts then start at
    # receptive fields estimated on the stimulus as the retina saw it. null: on the screen image
    # (the right choice where the stimulus is already gaze-corrected or the eye is unknown)
    eye_px_per_unit: Optional[float] = None


@dataclass
class SyntheticDataConfig(WindowsConfig):
    _target_: str = "neuroenc.data.datamodule.SyntheticDataModule"
    cache_dir: str = "${oc.env:NEUROENC_CACHE,.cache/neuroenc}"
    simulation: SimulationConfig = field(default_factory=SimulationConfig)
    # the simulator writes eye_x, eye_y in pixels of the frame (see SessionsDataConfig)
    eye_px_per_unit: Optional[float] = 1.0


# ------------------------------------------------------------------------------------ frontend


@dataclass
class LearnableTemporalConfig:
    _target_: str = "neuroenc.model.frontend.LearnableTemporalFrontend"
    num_channels: int = 4
    kernel_size: int = 16
    init: str = "gaussian_derivatives"  # or "random"
    anti_aliasing: bool = False
    # with anti_aliasing: the window on the raw taps, "hann" (VisionCore's) or "rect" (no taper)
    aa_window: str = "hann"
    bias: bool = True


@dataclass
class NoFrontendConfig:
    _target_: str = "neuroenc.model.frontend.PixelFrontend"


# ------------------------------------------------------------------------------------- convnet


# one ResNet stage: out_channels, kernel_size (t, h, w), stride, dilation, pool, dropout,
# temporal_stride, temporal_dilation, convs
StageConfig = StageSpec


@dataclass
class ResNetConfig:
    _target_: str = "neuroenc.model.convnet.resnet.ResNet"
    stages: List[StageConfig] = MISSING


@dataclass
class TokenizerConfig:
    """Tubelets (t, h, w); time padding adds past frames only (see ``TubeletTokenizer``)."""

    kernel_size: Optional[List[int]] = None  # None: the stride (non-overlapping tubelets)
    stride: List[int] = field(default_factory=lambda: [4, 4, 4])
    padding: List[int] = field(default_factory=lambda: [0, 0, 0])


@dataclass
class TemporalTransformerConfig:
    """Fields shared by the cores that end in causal temporal transformer blocks."""

    embedding_dim: int = 64
    num_temporal_blocks: int = 2
    num_heads: int = 4
    head_dim: Optional[int] = None  # None: embedding_dim / num_heads
    ff_dim: int = 256
    activation: str = "gelu"  # or "swiglu"
    dropout: float = 0.0  # after attention projection and in the feed-forward
    attn_dropout: float = 0.0
    drop_path: float = 0.0  # stochastic depth of the last block; grows linearly from 0


@dataclass
class ViViTConfig(TemporalTransformerConfig):
    _target_: str = "neuroenc.model.convnet.vivit.ViViT"
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    num_spatial_blocks: int = 2
    patch_dropout: float = 0.0  # training: a token's content is zeroed with this probability
    num_registers: int = 0


@dataclass
class HybridConfig(TemporalTransformerConfig):
    _target_: str = "neuroenc.model.convnet.hybrid.Hybrid"
    stages: List[StageConfig] = MISSING


# ----------------------------------------------------------------------------------- modulator


@dataclass
class ConvGRUConfig:
    _target_: str = "neuroenc.model.modulator.ConvGRUModulator"
    hidden_dim: int = 64
    beh_emb_dim: int = 16
    kernel_size: int = 3


@dataclass
class NoModulatorConfig:
    _target_: str = "neuroenc.model.modulator.NoModulator"


# ------------------------------------------------------------------------------------- readout


@dataclass
class GaussianReadoutConfig:
    _target_: str = "neuroenc.model.readout.GaussianReadout"
    # std of the position sampled in training, grid units (learned from there): small, since
    # positions start at their cells and noise of a few pixels would blur the finest fields
    init_std: float = 0.01
    nonlinearity: str = "softplus"  # or "exp"
    # "data": start each neuron at its receptive field estimated from the training split
    # (neuroenc.data.receptive_fields); "uniform": anywhere in [-0.5, 0.5]^2
    init_positions: str = "data"
    feature_init_std: float = 0.01


# ------------------------------------------------------------------------------------- shifter


@dataclass
class MLPShifterConfig:
    """Eye position -> a shift of every readout position, per frame (``neuroenc.model.shifter``)."""

    _target_: str = "neuroenc.model.shifter.MLPShifter"
    columns: List[str] = field(default_factory=lambda: ["eye_x", "eye_y"])  # behaviour columns, x then y
    hidden: List[int] = field(default_factory=lambda: [16])
    shared: bool = False  # one MLP for all sessions, or one each
    required: bool = True  # False (shifter=auto): no shifter when the data lacks the columns


@dataclass
class NoShifterConfig:
    _target_: Optional[str] = None


# ------------------------------------------------------------------------ trainer, logger, optim


@dataclass
class TrainerConfig:
    """Arguments of ``lightning.pytorch.Trainer`` by their Lightning names."""

    _target_: str = "lightning.pytorch.Trainer"
    # 6 epochs (486 steps) keep `make train` under 10 minutes on 2 cores: an epoch of the default
    # model is ~69 s there (10 epochs took 11 min 57 s)
    max_epochs: Optional[int] = 6
    max_steps: int = -1
    max_time: Optional[str] = None
    limit_train_batches: Optional[float] = None
    limit_val_batches: Optional[float] = None
    val_check_interval: Optional[float] = None
    check_val_every_n_epoch: Optional[int] = 1
    accelerator: str = "auto"
    devices: Any = "auto"
    num_nodes: int = 1
    strategy: Any = "auto"
    precision: Any = "32-true"
    gradient_clip_val: Optional[float] = 1.0
    accumulate_grad_batches: int = 1
    log_every_n_steps: int = 10
    deterministic: Any = False
    benchmark: Optional[bool] = None
    num_sanity_val_steps: int = 0
    enable_progress_bar: bool = True
    enable_model_summary: bool = True


@dataclass
class CSVLoggerConfig:
    _target_: str = "lightning.pytorch.loggers.CSVLogger"
    name: str = "csv"


@dataclass
class WandbLoggerConfig:
    """Lightning's WandbLogger. ``name`` and ``group`` left null come from Hydra: the job's
    overrides and the sweep's directory. Set WANDB_MODE=offline to write runs locally."""

    _target_: str = "lightning.pytorch.loggers.WandbLogger"
    project: str = "neuroenc"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    job_type: str = "train"
    tags: List[str] = field(default_factory=list)
    log_model: bool = False


@dataclass
class LoggerConfig:
    """Loggers by name; each one present is instantiated with the run directory as save_dir."""

    csv: Optional[CSVLoggerConfig] = None
    wandb: Optional[WandbLoggerConfig] = None


@dataclass
class OptimConfig:
    """AdamW with linear warmup, then cosine decay to ``lr * min_lr_ratio``."""

    lr: float = 1e-2
    weight_decay: float = 1e-4
    warmup_steps: int = 10
    min_lr_ratio: float = 0.05
    # readout positions (means and sampling std) learn at this fraction of lr
    position_lr_ratio: float = 0.1


@dataclass
class CheckpointConfig:
    """When ``checkpoints/last.ckpt``, what ``resume`` continues from, is written.

    Always after every validation; within an epoch also every ``every_n_train_steps`` optimizer
    steps and every ``every_n_minutes`` of training (null: not on that trigger), so a job killed
    mid-epoch loses little. The best checkpoint by ``val_bps_overall`` is kept besides.
    """

    every_n_train_steps: Optional[int] = None
    every_n_minutes: Optional[float] = 10.0


@dataclass
class Config:
    data: Any = MISSING
    frontend: Any = MISSING
    convnet: Any = MISSING
    modulator: Any = MISSING
    readout: Any = MISSING
    shifter: Any = MISSING
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    seed: int = 0
    eval_init: bool = True  # score the untrained model on the val split before fitting
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    # torch.compile the frontend, the core and the modulator's recurrence step (inductor; on the
    # CPU it needs a C++ compiler). python -m neuroenc.bench model compile=true measures the gain.
    compile: bool = False
    # multiplies every channel width a config writes as ${scaled:N} (the experiment presets do),
    # keeping their ratios: scale=0.125 turns the GPU-scale ladder into a CPU-sized one
    scale: float = 1.0
    # channels-last 3-D layout for the convolutions (cuDNN's preferred layout; slower on this
    # project's 2-core CPU, see docs/speed.md)
    channels_last: bool = False
    # continue a run from its checkpoints/last.ckpt: "true" finds the newest run with the same
    # overrides (see neuroenc.training.resume), or give the run directory; null: start a new run
    resume: Optional[str] = None


@dataclass
class EvaluateConfig:
    """``python -m neuroenc.evaluate checkpoint=<path>`` (conf/evaluate.yaml): per-neuron scores and plots."""

    checkpoint: str = MISSING
    out_dir: Optional[str] = None  # null: <run dir>/evaluation/<checkpoint name>
    splits: List[str] = field(default_factory=lambda: ["val", "test"])
    accelerator: str = "auto"  # Lightning's; scores equal training's on the same kind of device
    data_root: Optional[str] = None  # sessions moved since training (data=sessions): their new directory


@dataclass
class PredictDataConfig:
    root: Optional[str] = None  # sessions to predict; null: the data the checkpoint was trained on


@dataclass
class PredictConfig:
    """``python -m neuroenc.predict checkpoint=<path>`` (conf/predict.yaml): rates per frame of a split."""

    checkpoint: str = MISSING
    data: PredictDataConfig = field(default_factory=PredictDataConfig)
    split: str = "test"
    out_dir: Optional[str] = None  # null: <run dir>/predictions/<checkpoint name>/<split>
    batch_size: int = 16  # windows per forward pass
    device: str = "cpu"
    csv: bool = True  # also <session>.csv beside the .npy


SCHEMAS: dict[str, dict[str, type]] = {
    "data": {"synthetic": SyntheticDataConfig, "sessions": SessionsDataConfig},
    "frontend": {"learnable_temporal": LearnableTemporalConfig, "none": NoFrontendConfig},
    "convnet": {"resnet": ResNetConfig, "vivit": ViViTConfig, "hybrid": HybridConfig},
    "modulator": {"convgru": ConvGRUConfig, "none": NoModulatorConfig},
    "readout": {"gaussian": GaussianReadoutConfig},
    "shifter": {"mlp": MLPShifterConfig, "none": NoShifterConfig},
    "trainer": {"default": TrainerConfig},
    "logger": {"default": LoggerConfig},
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
    for group, options in SCHEMAS.items():
        for name, node in options.items():
            cs.store(group=f"schema/{group}", name=name, node=node)
