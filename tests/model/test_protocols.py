"""Every built part keeps the promises of neuroenc.model.protocols, and a part that breaks one is
refused when the encoder is built, naming the part."""

import pytest
import torch
from conftest import TINY_MODEL, compose_config
from torch import nn

from neuroenc.model.encoder import Encoder
from neuroenc.model.protocols import ConvNet, Frontend, Modulator, Readout
from neuroenc.training.build import build_encoder_without_data


@pytest.mark.parametrize("convnet", ["resnet", "vivit", "hybrid"])
def test_every_core_option_builds_parts_that_keep_their_protocols(convnet):
    encoder, *_ = build_encoder_without_data(compose_config([f"convnet={convnet}"]))
    assert isinstance(encoder.frontend, Frontend)
    assert isinstance(encoder.convnet, ConvNet)
    assert isinstance(encoder.modulator, Modulator)
    assert all(isinstance(r, Readout) for r in encoder.readouts.values())


class NoGrid(nn.Module):
    out_channels = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def test_a_core_without_a_feature_grid_is_refused_naming_the_convnet():
    encoder, *_ = build_encoder_without_data(compose_config(list(TINY_MODEL)))
    with pytest.raises(TypeError, match=r"convnet: NoGrid is not a ConvNet \(missing: feature_grid\)"):
        Encoder(encoder.frontend, NoGrid(), encoder.modulator, dict(encoder.readouts))


def test_a_core_that_strides_time_without_step_ends_is_refused():
    class Strided(NoGrid):
        temporal_stride = 2

        def feature_grid(self, frame_shape):
            raise AssertionError("not reached")

    encoder, *_ = build_encoder_without_data(compose_config(list(TINY_MODEL)))
    with pytest.raises(TypeError, match="strides time by 2 but has no step_ends"):
        Encoder(encoder.frontend, Strided(), encoder.modulator, dict(encoder.readouts))


def test_the_old_core_protocol_name_warns_and_is_the_convnet_protocol():
    import neuroenc.model.protocols as protocols

    with pytest.warns(DeprecationWarning, match="use ConvNet"):
        assert protocols.Core is ConvNet
