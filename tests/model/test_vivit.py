"""The ViViT and hybrid convnets: token grids, causal token-to-frame map, geometry, attention masks,
token dropout, and config errors that name the key."""

import pytest
import torch
from conftest import compose_config
from parts import GaussianReadout, Hybrid, TubeletTokenizer, ViViT

from neuroenc.config.validate import ConfigError, check
from neuroenc.data.datamodule import DatasetInfo
from neuroenc.model.convnet.vivit import TokenDropout
from neuroenc.model.encoder import Encoder
from neuroenc.model.frontend import PixelFrontend
from neuroenc.model.modulator import NoModulator
from neuroenc.training.build import build_encoder

SMALL = dict(embedding_dim=16, num_heads=2, ff_dim=32, num_spatial_blocks=1, num_temporal_blocks=1)


@pytest.mark.parametrize("stride,grid", [([8, 8, 8], (37, 4, 8)), ([8, 4, 4], (37, 9, 16))])
def test_token_grid_at_300x36x64(stride, grid):
    net = ViViT(4, {"stride": stride}, **SMALL).eval()
    assert net.tokenizer.kernel_size == tuple(stride)  # kernel_size defaults to the stride
    assert net.tokenizer.grid(300, 36, 64) == grid
    x = torch.randn(1, 4, 300, 36, 64)
    with torch.no_grad():
        assert net(x).shape == (1, 16, *grid)
    assert net.step_ends(300).tolist() == list(range(7, 300, 8))


def test_explicit_kernel_gives_overlapping_tubelets():
    tok = TubeletTokenizer(1, 8, kernel_size=[8, 6, 6], stride=[8, 4, 4], padding=[0, 1, 1])
    assert tok.grid(300, 36, 64) == (37, 9, 16)
    assert tok.proj.weight.shape == (8, 1, 8, 6, 6)


@pytest.mark.parametrize("tokenizer,ends", [
    ({"stride": [8, 4, 4]}, [7, 15, 23, 31]),
    ({"kernel_size": [6, 4, 4], "stride": [4, 4, 4], "padding": [2, 0, 0]}, [3, 7, 11, 15, 19, 23, 27, 31]),
])
def test_frame_t_gets_the_newest_token_ending_at_or_before_t(tokenizer, ends):
    torch.manual_seed(0)
    net = ViViT(1, tokenizer, **SMALL)
    readout = GaussianReadout(net.out_channels, 3)
    encoder = Encoder(PixelFrontend(), net, NoModulator(net.out_channels), {"s": readout}).eval()
    assert net.step_ends(32).tolist() == ends
    with torch.no_grad():
        encoder.to_frames.no_step_yet.fill_(7.0)
        readout.features.normal_()
        x, beh = torch.randn(2, 1, 32, 8, 12), torch.zeros(2, 32, 0)
        tokens, out, rates = net(x), encoder.features(x, beh), encoder(x, beh, "s")
    assert tokens.shape[2] == len(ends)
    for t in range(32):
        done = [i for i, e in enumerate(ends) if e <= t]
        expect = tokens[:, :, done[-1]] if done else torch.full_like(out[:, :, t], 7.0)
        torch.testing.assert_close(out[:, :, t], expect, rtol=0, atol=0)
    # reading the steps, then copying rates to frames == reading every frame's features
    torch.testing.assert_close(rates, readout(out), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("convnet", ["vivit", "hybrid"])
def test_blob_in_top_right_of_stimulus_drives_top_right_of_a_non_square_map(convnet):
    torch.manual_seed(0)
    if convnet == "vivit":
        net = ViViT(1, {"stride": [4, 4, 4]}, **SMALL).eval()  # 36x64 -> 9x16 tokens
    else:
        net = Hybrid(1, [{"out_channels": 8, "kernel_size": [1, 3, 3], "stride": 2},
                         {"out_channels": 16, "kernel_size": [1, 3, 3], "stride": 2, "pool": "aablur"}],
                     embedding_dim=16, num_heads=2, ff_dim=32).eval()
    base = 0.1 * torch.randn(1, 1, 16, 36, 64)
    blob = base.clone()
    blob[..., 0:4, 56:64] += 3.0  # top rows, rightmost columns
    with torch.no_grad():
        change = (net(blob) - net(base)).abs().sum((0, 1, 2))  # (H', W')
    assert change.shape == (9, 16)
    row, col = divmod(int(change.argmax()), 16)
    assert row == 0 and col >= 14, f"strongest change at ({row}, {col}), not top-right"


def _changed_tokens(net, where):
    """Which tokens of the first token time change when the tubelet at ``where`` (row, col) changes."""
    torch.manual_seed(1)
    x = torch.randn(1, 1, 4, 12, 16)
    y = x.clone()
    r, c = where
    y[..., 4 * r:4 * r + 4, 4 * c:4 * c + 4] += 3.0
    with torch.no_grad():
        return (net(y) - net(x)).abs().sum(1)[0, 0] > 0  # (3, 4) grid


def test_spatial_attention_sees_the_whole_frame():
    torch.manual_seed(0)
    free = ViViT(1, {"stride": [4, 4, 4]}, **{**SMALL, "num_temporal_blocks": 0}).eval()
    assert _changed_tokens(free, (2, 3)).all()  # bottom-right tubelet reaches the top-left token


def test_patch_dropout_drops_whole_tokens_in_training_only():
    drop = TokenDropout(0.5)
    x = torch.ones(2, 8, 6, 5, 7)
    y = drop.train()(x)
    per_token = y.sum(1)
    assert set(per_token.unique().tolist()) == {0.0, 8.0}  # all channels of a token or none
    assert 0.3 < (per_token == 0).float().mean() < 0.7
    assert torch.equal(drop.eval()(x), x)


def _info(h=36, w=64) -> DatasetInfo:
    return DatasetInfo(session_ids=["s"], n_neurons={"s": 5}, mean_rate={"s": None}, behavior_dim=4, in_channels=1,
                       frame_shape=(h, w), has_oracle=False)


@pytest.mark.parametrize("overrides,key", [
    (["convnet.tokenizer.stride=[8,40,40]"], "convnet.tokenizer.kernel_size"),  # larger than 36x64
    (["convnet.tokenizer.kernel_size=[70,4,4]"], "convnet.tokenizer.kernel_size"),  # longer than the window
    (["convnet.embedding_dim=30", "convnet.num_heads=4"], "convnet.num_heads"),
    (["convnet.tokenizer.padding=[0,4,0]"], "convnet.tokenizer.padding"),
    (["convnet.activation=relu"], "convnet.activation"),
])
def test_impossible_vivit_fails_at_build_naming_the_key(overrides, key):
    cfg = compose_config(["convnet=vivit", "data.window=64", *overrides])
    check(cfg)
    with pytest.raises(ConfigError) as e:
        build_encoder(cfg, _info())
    assert e.value.key == key and f"'{key}'" in str(e.value)


@pytest.mark.parametrize("overrides,key", [
    (["convnet=vivit", "convnet.tokenizer.stride=[8,0,4]"], "convnet.tokenizer.stride[1]"),
    (["convnet=vivit", "convnet.drop_path=1.5"], "convnet.drop_path"),
    (["convnet=hybrid", "convnet.num_heads=0"], "convnet.num_heads"),
])
def test_impossible_transformer_value_fails_at_build_naming_the_key(overrides, key):
    cfg = compose_config(overrides)
    check(cfg)
    with pytest.raises(ConfigError) as e:
        build_encoder(cfg, _info())
    assert e.value.key == key


def test_heads_need_not_divide_embedding_when_head_dim_is_given():
    net = ViViT(1, {"stride": [4, 4, 4]}, embedding_dim=30, num_heads=4, head_dim=8, ff_dim=32)
    assert net(torch.randn(1, 1, 8, 8, 8)).shape == (1, 30, 2, 2, 2)


def test_hybrid_keeps_every_frame_and_the_resnet_grid():
    net = Hybrid(3, [{"out_channels": 8, "kernel_size": [3, 5, 5], "stride": 2}], embedding_dim=12, num_heads=3,
                 ff_dim=24, activation="swiglu")
    assert net(torch.randn(2, 3, 20, 12, 20)).shape == (2, 12, 20, 6, 10)


@pytest.mark.parametrize("tokenizer", [{"stride": [4, 4, 4]}, {"stride": [8, 4, 4], "padding": [3, 0, 0]}])
def test_non_overlapping_tubelets_as_a_matrix_product_equal_the_convolution(tokenizer):
    torch.manual_seed(0)
    tok = TubeletTokenizer(3, 16, **tokenizer).eval()
    x = torch.randn(2, 3, 30, 18, 23)  # sizes that leave frames, rows and columns over
    y = torch.nn.functional.conv3d(torch.nn.functional.pad(x, (0, 0, 0, 0, tok.padding[0], 0)), tok.proj.weight,
                                   tok.proj.bias, tok.stride)
    expect = tok.norm(y)
    torch.testing.assert_close(tok(x), expect, rtol=1e-5, atol=1e-5)
