"""From the source's pixels to the session's frame: crop, keep the aspect ratio, resize.

A resize never distorts: when the (cropped) source's aspect ratio differs from ``--frame-shape``'s
by more than 1%, ``--fit crop`` takes the centred region of the right aspect, ``--fit pad`` pads
the short side with the mean luminance, and without either the import is refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from neuroenc.data.nwb.options import NWBImportError

ASPECT_TOLERANCE = 0.01


@dataclass
class Geometry:
    """``crop`` (top, left, height, width) then ``pad`` (top, bottom, left, right) on the source,
    then a resize to ``shape`` when the sizes differ."""

    crop: tuple[int, int, int, int]
    pad: tuple[int, int, int, int]
    shape: tuple[int, int]
    pad_value: float | None = None

    @property
    def resizes(self) -> bool:
        return (self.crop[2] + self.pad[0] + self.pad[1], self.crop[3] + self.pad[2] + self.pad[3]) != tuple(self.shape)

    @property
    def exact(self) -> bool:
        """Source pixel values pass unchanged (no resize, no padding)."""
        return not self.resizes and not any(self.pad)

    def describe(self) -> dict:
        return {"crop_top_left_height_width": list(self.crop), "pad_top_bottom_left_right": list(self.pad),
                "resized_to": list(self.shape) if self.resizes else None}

    def apply(self, frames: np.ndarray) -> np.ndarray:
        """``(T, rows, cols)`` float32 source frames -> ``(T, H, W)`` float32."""
        import torch
        import torch.nn.functional as F

        top, left, height, width = self.crop
        frames = frames[:, top : top + height, left : left + width]
        if any(self.pad):
            # np.pad takes None for NaN: a padded geometry is planned with the value to pad with
            assert self.pad_value is not None, "a padded geometry needs pad_value"
            t, b, le, r = self.pad
            frames = np.pad(frames, ((0, 0), (t, b), (le, r)), constant_values=self.pad_value)
        if not self.resizes:
            return np.ascontiguousarray(frames, np.float32)
        x = torch.from_numpy(np.ascontiguousarray(frames, np.float32))[:, None]
        shrink = frames.shape[1] >= self.shape[0] and frames.shape[2] >= self.shape[1]
        y = F.interpolate(x, size=tuple(self.shape), mode="area") if shrink else \
            F.interpolate(x, size=tuple(self.shape), mode="bilinear", align_corners=False)
        return y[:, 0].numpy()


def plan_geometry(src: tuple[int, int], shape: tuple[int, int], crop, fit: str | None, what: str, source,
                  pad_value=None) -> Geometry:
    """The geometry that takes a ``src`` (rows, cols) frame to ``shape`` without distortion."""
    rows, cols = src
    if crop is not None:
        top, left, height, width = crop
        if top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > rows or left + width > cols:
            raise NWBImportError(f"{source}: --crop {tuple(crop)}: outside the {rows}x{cols} frames of {what}")
    else:
        top, left, height, width = 0, 0, rows, cols
    H, W = shape
    stretch = (height / width) / (H / W)
    pad = (0, 0, 0, 0)
    if abs(stretch - 1) > ASPECT_TOLERANCE:
        if fit == "crop":
            if stretch > 1:  # too tall: keep the middle rows
                h = int(round(width * H / W))
                top, height = top + (height - h) // 2, h
            else:
                w = int(round(height * W / H))
                left, width = left + (width - w) // 2, w
        elif fit == "pad":
            if stretch > 1:
                extra = int(round(height * W / H)) - width
                pad = (0, 0, extra // 2, extra - extra // 2)
            else:
                extra = int(round(width * H / W)) - height
                pad = (extra // 2, extra - extra // 2, 0, 0)
        else:
            raise NWBImportError(
                f"{source}: stimulus: {what} is {height}x{width} (rows x columns"
                + (" after --crop" if crop is not None else "") + f"), aspect {height / width:.4g}, but --frame-shape "
                f"{H},{W} has aspect {H / W:.4g}: resizing would stretch it by {stretch:.4g}. Say how to keep its "
                "shape: --fit crop (the centred region of the right aspect), --fit pad (pad with the mean luminance), "
                "or --crop TOP,LEFT,HEIGHT,WIDTH; if the movie is stored (frame, x, y) rather than (frame, rows, "
                "columns), --frame-axes x,y")
    return Geometry((top, left, height, width), pad, (H, W), pad_value() if any(pad) and callable(pad_value)
                    else pad_value)
