"""The model's parts with the arguments these tests leave out set as they always have been.

The constructors take every configured argument without a default (the defaults live in
``neuroenc.config.schema``); a test names only what it is about.
"""

from functools import partial

from neuroenc.model.convnet import hybrid, vivit
from neuroenc.model.frontend import LearnableTemporalFrontend as _Frontend
from neuroenc.model.modulator import ConvGRUModulator as _ConvGRU
from neuroenc.model.readout import GaussianReadout as _Readout
from neuroenc.model.shifter import MLPShifter as _Shifter

BLOCKS = dict(embedding_dim=64, num_temporal_blocks=2, num_heads=4, head_dim=None, ff_dim=256, activation="gelu",
              dropout=0.0, attn_dropout=0.0, drop_path=0.0)

LearnableTemporalFrontend = partial(_Frontend, init="gaussian_derivatives", anti_aliasing=False, bias=True)
ConvGRUModulator = partial(_ConvGRU, hidden_dim=64, beh_emb_dim=16, kernel_size=3)
GaussianReadout = partial(_Readout, init_std=0.2, nonlinearity="softplus", init_positions="data", feature_init_std=0.01)
MLPShifter = partial(_Shifter, columns=("eye_x", "eye_y"), hidden=(16,), shared=False, required=True)
Hybrid = partial(hybrid.Hybrid, **BLOCKS)
TOKENIZER = dict(kernel_size=None, stride=(4, 4, 4), padding=(0, 0, 0))
TubeletTokenizer = partial(vivit.TubeletTokenizer, **TOKENIZER)


def ViViT(in_channels: int, tokenizer: dict, **kwargs) -> vivit.ViViT:
    args = {**BLOCKS, "num_spatial_blocks": 2, "patch_dropout": 0.0, "num_registers": 0, **kwargs}
    return vivit.ViViT(in_channels, {**TOKENIZER, **tokenizer}, **args)
