"""The shifter learns the eye's displacement of the stimulus, and does nothing it is not asked to."""

import pytest
import torch
from parts import GaussianReadout, MLPShifter

from neuroenc.model.convnet.resnet import ResNet
from neuroenc.model.encoder import Encoder
from neuroenc.model.frontend import PixelFrontend
from neuroenc.model.modulator import NoModulator

H, W = 16, 24
CELLS = torch.tensor([[6.0, 5.0], [12.0, 8.0], [17.0, 10.0], [9.0, 11.0], [15.0, 6.0], [7.0, 9.0]])  # (x, y) px


def fabricated_batch(gen: torch.Generator, batch: int = 32, frames: int = 4):
    """Screens of white noise seen through an eye displaced by whole pixels in [-2, 2]: each cell
    responds to the screen pixel at its receptive field plus the eye's displacement."""
    stim = torch.randn(batch, 1, frames, H, W, generator=gen)
    eye = torch.randint(-2, 3, (batch, frames, 2), generator=gen).float()
    xs = (CELLS[:, 0].long() + eye[..., 0:1].long())  # (B, T, N)
    ys = (CELLS[:, 1].long() + eye[..., 1:2].long())
    b, t = torch.meshgrid(torch.arange(batch), torch.arange(frames), indexing="ij")
    drive = stim[b[..., None], 0, t[..., None], ys, xs]
    counts = torch.poisson(torch.nn.functional.softplus(2 * drive), generator=gen)
    behavior = torch.cat([eye, torch.zeros(batch, frames, 1)], -1)  # eye_x, eye_y, running
    return stim, behavior, counts


def test_learned_shift_matches_the_eye_shift_in_the_data():
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    convnet = ResNet(1, [{"out_channels": 4, "kernel_size": [1, 1, 1]}])
    shifter = MLPShifter(["eye_x", "eye_y", "running"], ["s"], hidden=[8])
    readout = GaussianReadout(convnet.out_channels, len(CELLS), mean_rate=[0.8] * len(CELLS), init_std=0.01)
    encoder = Encoder(PixelFrontend(1), convnet, NoModulator(4), {"s": readout}, shifter=shifter, frame_shape=(H, W))
    with torch.no_grad():  # readouts at the cells, as the data-driven init puts them
        readout.mean.copy_(encoder.grid.to_grid(CELLS.double()).float())
    opt = torch.optim.Adam(encoder.parameters(), lr=0.02)
    for _ in range(300):
        stim, behavior, counts = fabricated_batch(gen)
        rates = encoder(stim, behavior, "s")
        loss = (rates - counts * torch.log(rates)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    encoder.eval()

    def shift(x, y):
        return shifter(torch.tensor([[[x, y, 0.0]]]), "s")[0, 0] - shifter(torch.zeros(1, 1, 3), "s")[0, 0]

    with torch.no_grad():
        for eye in [(1.0, 0.0), (0.0, 1.0), (-2.0, 1.0), (2.0, -2.0)]:
            torch.testing.assert_close(shift(*eye), torch.tensor(eye), atol=0.3, rtol=0)


def test_untrained_shifter_shifts_nothing():
    shifter = MLPShifter(["eye_x", "eye_y"], ["a", "b"])
    assert shifter(torch.randn(2, 5, 2), "a").abs().max() == 0


def test_shifter_finds_its_columns_by_name_and_names_missing_ones():
    shifter = MLPShifter(["running", "eye_y", "pupil", "eye_x"], ["s"], columns=["eye_x", "eye_y"])
    assert shifter.index.tolist() == [3, 1]
    with pytest.raises(ValueError, match=r"columns: \['eye_y'\] not among the data's behaviour columns"):
        MLPShifter(["eye_x", "running"], ["s"])
    assert not MLPShifter(["running"], ["s"], required=False).active


def test_shared_shifter_is_one_mlp_per_session_otherwise():
    assert len(MLPShifter(["eye_x", "eye_y"], ["a", "b"], shared=True).mlps) == 1
    assert len(MLPShifter(["eye_x", "eye_y"], ["a", "b.c"]).mlps) == 2
