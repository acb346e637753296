"""Normalisation keeps the stimulus contrast (simulated and real V1 cells respond more to more
contrast) and stays causal in training, where it uses batch statistics."""

import pytest
import torch
from parts import Hybrid, ViViT

from neuroenc.model.convnet.resnet import ResNet
from neuroenc.model.layers import FrameBatchNorm

STAGES = [{"out_channels": 6, "kernel_size": [3, 3, 3], "stride": 2},
          {"out_channels": 6, "kernel_size": [3, 3, 3], "stride": 2, "pool": "aablur"}]
TRANSFORMER = dict(embedding_dim=8, num_heads=2, ff_dim=16, num_temporal_blocks=1)
CONVNETS = {
    "resnet": lambda: ResNet(1, STAGES),
    "vivit": lambda: ViViT(1, {"stride": [4, 4, 4]}, num_spatial_blocks=1, **TRANSFORMER),
    "hybrid": lambda: Hybrid(1, STAGES, **TRANSFORMER),
}


@pytest.mark.parametrize("convnet", CONVNETS)
def test_doubling_the_stimulus_contrast_changes_the_untrained_convnets_output(convnet):
    torch.manual_seed(0)
    net = CONVNETS[convnet]()
    stim = torch.randn(2, 1, 16, 16, 24)
    with torch.no_grad():
        for _ in range(30):  # the norms' running statistics of this stimulus, as after a few steps
            net.train()(stim)
        once, twice = net.eval()(stim), net(2 * stim)
    # a per-position norm over channels would make these equal; a contrast-keeping convnet does not
    assert (twice - once).abs().mean() > 0.1 * once.abs().mean()
    assert twice.abs().mean() > once.abs().mean()


def test_frame_batch_norm_in_training_uses_no_later_frame():
    torch.manual_seed(0)
    norm = FrameBatchNorm(3).train()
    x = torch.randn(4, 3, 10, 5, 6)
    later = x.clone()
    later[:, :, 6:] += 10 * torch.randn_like(later[:, :, 6:])
    torch.testing.assert_close(norm(later)[:, :, :6], norm(x)[:, :, :6], rtol=0, atol=0)


def test_frame_batch_norm_normalises_each_frame_in_training_and_is_affine_in_eval():
    torch.manual_seed(0)
    norm = FrameBatchNorm(3, momentum=1.0)
    x = 3 + 2 * torch.randn(8, 3, 5, 6, 7)
    y = norm.train()(x)
    torch.testing.assert_close(y.mean((0, 3, 4)), torch.zeros(3, 5), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var((0, 3, 4), unbiased=False), torch.ones(3, 5), atol=1e-3, rtol=0)
    norm.eval()
    torch.testing.assert_close(norm(2 * x) - norm(x), norm(x) - norm(torch.zeros_like(x)), atol=1e-5, rtol=1e-5)


def test_frame_batch_norm_tracks_each_channels_own_statistics():
    norm = FrameBatchNorm(3, momentum=1.0).train()
    x = torch.randn(8, 3, 5, 6, 7) * torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1, 1) + \
        torch.tensor([-1.0, 0.0, 5.0]).view(1, 3, 1, 1, 1)
    norm(x)
    torch.testing.assert_close(norm.running_mean, torch.tensor([-1.0, 0.0, 5.0]), atol=0.1, rtol=0)
    torch.testing.assert_close(norm.running_var, torch.tensor([1.0, 4.0, 16.0]), rtol=0.1, atol=0)
