"""Readout positions and stimulus pixels agree: a readout placed at pixel (x, y) reads what that
pixel drove, for every convnet's strides, kernels, padding and pooling."""

import pytest
import torch
from parts import GaussianReadout, Hybrid, TubeletTokenizer

from neuroenc.model.convnet.resnet import ResNet
from neuroenc.model.encoder import Encoder
from neuroenc.model.frontend import PixelFrontend
from neuroenc.model.geometry import FeatureGrid
from neuroenc.model.modulator import NoModulator

H, W, T = 36, 64, 4
RESNET_STAGES = {
    "strided": [{"out_channels": 4, "kernel_size": [1, 5, 5], "stride": 2},
                {"out_channels": 4, "kernel_size": [1, 3, 3], "stride": 2, "pool": "aablur"}],
    "dilated": [{"out_channels": 4, "kernel_size": [1, 3, 3], "stride": 2},
                {"out_channels": 4, "kernel_size": [1, 3, 3], "dilation": 2}],
    "full_resolution": [{"out_channels": 4, "kernel_size": [1, 7, 7], "stride": 1}],
}


def symmetric(module: torch.nn.Module) -> torch.nn.Module:
    """Positive constant kernels: every output cell then weighs its input symmetrically about its
    centre, so the centroid of its input gradient is where the cell sits."""
    with torch.no_grad():
        for _name, p in module.named_parameters():
            if p.dim() >= 2:
                p.fill_(0.05)
    return module.eval()


def gradient_centroid(fn, stim: torch.Tensor) -> torch.Tensor:
    """(x, y) centroid of |d fn(stim) / d stim| over the pixels of the last frame."""
    stim = stim.clone().requires_grad_(True)
    fn(stim).backward()
    g = stim.grad[0, 0, -1].abs().double()
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    return torch.stack([(g * xx).sum(), (g * yy).sum()]) / g.sum()


def cell_centroid(convnet, cell: tuple[int, int]) -> torch.Tensor:
    stim = torch.ones(1, 1, T, H, W)  # constant, so no input weighs one side more than the other
    return gradient_centroid(lambda s: convnet(s)[0, :, -1, cell[0], cell[1]].sum(), stim)


@pytest.mark.parametrize("stages", RESNET_STAGES)
@pytest.mark.parametrize("where", [(0.5, 0.5), (0.4, 0.6), (0.6, 0.35)])
def test_resnet_cells_sit_where_their_input_gradient_is(stages, where):
    """Cells away from the frame's edge (where zero padding would cut their field short)."""
    convnet = symmetric(ResNet(1, RESNET_STAGES[stages]))
    grid = convnet.feature_grid((H, W))
    cell = y, x = tuple(round(f * (n - 1)) for f, n in zip(where, grid.shape))
    expect = torch.tensor([grid.offset[1] + x * grid.step[1], grid.offset[0] + y * grid.step[0]], dtype=torch.float64)
    torch.testing.assert_close(cell_centroid(convnet, cell), expect, atol=0.05, rtol=0)


def test_feature_grid_shape_matches_the_core_output():
    for stages in RESNET_STAGES.values():
        convnet = ResNet(1, stages).eval()
        assert convnet.feature_grid((H, W)).shape == tuple(convnet(torch.zeros(1, 1, T, H, W)).shape[-2:])
    hybrid = Hybrid(1, RESNET_STAGES["strided"], embedding_dim=8, num_heads=2, ff_dim=8).eval()
    assert hybrid.feature_grid((H, W)).shape == tuple(hybrid(torch.zeros(1, 1, T, H, W)).shape[-2:])


@pytest.mark.parametrize("tokenizer", [
    {"stride": [1, 4, 4]},
    {"stride": [1, 8, 8]},
    {"kernel_size": [1, 6, 6], "stride": [1, 4, 4], "padding": [0, 1, 1]},
])
def test_tubelet_cells_sit_at_their_tubelet_centres(tokenizer):
    tok = symmetric(TubeletTokenizer(1, 4, **tokenizer))
    grid = tok.feature_grid((H, W))
    assert grid.shape == tuple(tok(torch.zeros(1, 1, T, H, W)).shape[-2:])
    for cell in [(1, 2), (2, 5)]:
        y, x = cell
        expect = torch.tensor([grid.offset[1] + x * grid.step[1], grid.offset[0] + y * grid.step[0]],
                              dtype=torch.float64)
        torch.testing.assert_close(cell_centroid(tok, cell), expect, atol=0.05, rtol=0)


@pytest.mark.parametrize("pixel", [(20.0, 14.0), (31.0, 17.5), (36.5, 21.0)])
def test_a_readout_placed_at_a_pixel_reads_that_pixel(pixel):
    convnet = symmetric(ResNet(1, RESNET_STAGES["strided"]))
    readout = GaussianReadout(convnet.out_channels, 1, init_positions="uniform")
    encoder = Encoder(PixelFrontend(1), convnet, NoModulator(convnet.out_channels), {"s": readout},
                      frame_shape=(H, W)).eval()
    with torch.no_grad():
        readout.mean.copy_(encoder.grid.to_grid(torch.tensor([pixel], dtype=torch.float64)).float())
        readout.features.fill_(1.0)
    behavior = torch.zeros(1, T, 2)
    got = gradient_centroid(lambda s: encoder(s, behavior, "s")[0, -1].sum(), torch.ones(1, 1, T, H, W))
    torch.testing.assert_close(got, torch.tensor(pixel, dtype=torch.float64), atol=0.1, rtol=0)


def test_grid_and_pixel_conversions_invert_each_other():
    grid = FeatureGrid((9, 16), (4.0, 4.0), (1.5, 1.5))
    px = torch.tensor([[1.5, 1.5], [61.5, 33.5], [20.0, 7.25]], dtype=torch.float64)
    g = grid.to_grid(px)
    torch.testing.assert_close(g[:2], torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=torch.float64))
    torch.testing.assert_close(grid.to_pixels(g), px)
    torch.testing.assert_close(grid.to_pixels(g + grid.shift_to_grid(torch.tensor([2.0, -1.0], dtype=torch.float64))),
                               px + torch.tensor([2.0, -1.0], dtype=torch.float64))
