"""The model's parts with the arguments these tests leave out set as the shipped options set them.

The constructors take every configured argument without a default (the values live in the option
YAML under ``conf/``); here they come from composing ``conf/`` as ``python -m neuroenc`` does, so a
test gets the numbers a user gets and names only what it is about. The arguments the tests pass by
position (sizes, stages, the tokenizer) are left out.
"""

from functools import partial

from omegaconf import OmegaConf

from neuroenc.config.compose import compose_config
from neuroenc.model.convnet import hybrid, vivit
from neuroenc.model.frontend import LearnableTemporalFrontend as _Frontend
from neuroenc.model.gaze import FrameGazeCorrection as _Gaze
from neuroenc.model.modulator import ConvGRUModulator as _ConvGRU
from neuroenc.model.readout import GaussianReadout as _Readout
from neuroenc.model.shifter import MLPShifter as _Shifter


def option(group: str, name: str, *left_out: str) -> dict:
    """The arguments ``<group>=<name>`` gives its ``_target_``, without ``left_out``."""
    node = OmegaConf.to_container(compose_config([f"{group}={name}"])[group], resolve=True)
    return {k: v for k, v in node.items() if k != "_target_" and k not in left_out}


LearnableTemporalFrontend = partial(_Frontend, **option("frontend", "learnable_temporal", "num_channels", "kernel_size"))
ConvGRUModulator = partial(_ConvGRU, **option("modulator", "convgru"))
GaussianReadout = partial(_Readout, **option("readout", "gaussian"))
MLPShifter = partial(_Shifter, **option("shifter", "mlp"))
FrameGazeCorrection = partial(_Gaze, **option("gaze", "per_frame"))
Hybrid = partial(hybrid.Hybrid, **option("convnet", "hybrid", "stages"))
VIVIT = option("convnet", "vivit", "tokenizer")
TOKENIZER = option("convnet", "vivit")["tokenizer"]
TubeletTokenizer = partial(vivit.TubeletTokenizer, **TOKENIZER)


def ViViT(in_channels: int, tokenizer: dict, **kwargs) -> vivit.ViViT:
    return vivit.ViViT(in_channels, {**TOKENIZER, **tokenizer}, **{**VIVIT, **kwargs})
