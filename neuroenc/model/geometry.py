"""Where the cells of a convnet's feature map sit on the stimulus frame.

A convnet with spatial strides (strided convolutions, blur pooling, tubelets) returns a map of
``H' x W'`` cells, cell ``(i, j)`` centred on a pixel of the input frame that follows from its
strides, kernels and padding. Readouts address the map in grid coordinates ``[-1, 1]`` (x, then
y; ``grid_sample`` with ``align_corners=True``: -1 and 1 are the centres of the first and last
cells). Every conversion between readout positions and stimulus pixels goes through
:class:`FeatureGrid`, so a readout placed at a neuron's receptive field reads what that pixel drove.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class FeatureGrid:
    """Cell ``(i, j)`` of a ``shape = (H', W')`` map is centred on pixel
    ``(x, y) = (offset[1] + j * step[1], offset[0] + i * step[0])`` of the frame (pixel centres
    at integers; ``offset`` and ``step`` are (y, x))."""

    shape: tuple[int, int]
    step: tuple[float, float] = (1.0, 1.0)
    offset: tuple[float, float] = (0.0, 0.0)

    def strided(self, stride: int, kernel: int = 1, padding: int | None = None) -> "FeatureGrid":
        """The grid after a spatial layer of ``kernel`` taps, ``stride`` and ``padding`` on both axes
        (``padding=None``: 'same' padding, ``(kernel - 1) // 2``), applied to this one."""
        pad = (kernel - 1) // 2 if padding is None else padding
        size = tuple((n + 2 * pad - kernel) // stride + 1 for n in self.shape)
        centre = (kernel - 1) / 2 - pad  # of output cell 0, in input cells
        # tuple() of a generator over a pair is a pair, which mypy cannot tell (tuple[int, ...])
        return FeatureGrid(size, tuple(s * stride for s in self.step),  # type: ignore[arg-type]
                           tuple(o + s * centre for o, s in zip(self.offset, self.step)))  # type: ignore[arg-type]

    def pixels_per_unit(self) -> torch.Tensor:
        """Pixels per grid unit, (x, y): a cell index ``c`` of ``n`` is grid ``2c / (n - 1) - 1``."""
        (h, w), (sy, sx) = self.shape, self.step
        return torch.tensor([sx * max(w - 1, 1) / 2, sy * max(h - 1, 1) / 2], dtype=torch.float64)

    def to_pixels(self, grid: torch.Tensor) -> torch.Tensor:
        """Grid coordinates ``(..., 2)`` (x, y) -> pixel coordinates (x, y) of the frame."""
        span = self.pixels_per_unit().to(grid)
        centre = torch.tensor([self.offset[1], self.offset[0]], dtype=grid.dtype, device=grid.device)
        return centre + (grid + 1) * span

    def to_grid(self, pixels: torch.Tensor) -> torch.Tensor:
        """Pixel coordinates ``(..., 2)`` (x, y) -> grid coordinates (x, y); outside [-1, 1] when the
        pixel lies beyond the outermost cell centres."""
        span = self.pixels_per_unit().to(pixels)
        centre = torch.tensor([self.offset[1], self.offset[0]], dtype=pixels.dtype, device=pixels.device)
        return (pixels - centre) / span - 1

    def shift_to_grid(self, shift: torch.Tensor) -> torch.Tensor:
        """A displacement ``(..., 2)`` in pixels (x, y) -> the same displacement in grid units."""
        return shift / self.pixels_per_unit().to(shift)
