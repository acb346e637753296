"""What each part of the encoder promises the :class:`~neuroenc.model.encoder.Encoder`.

A new frontend, convnet, modulator or readout is any ``nn.Module`` with these attributes and
methods; nothing needs to subclass anything. The protocols are ``runtime_checkable`` so that
:func:`check_parts` can tell a user which promise a part breaks before training starts, instead
of a shape error deep inside the first step. Time runs forward in every ``T`` axis (index 0 is
the oldest frame) and every part is causal: an output at step t depends on inputs up to t.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import torch

from neuroenc.model.geometry import FeatureGrid


@runtime_checkable
class Frontend(Protocol):
    """``(B, C, T, H, W)`` -> ``(B, out_channels, T, H, W)``: per-pixel temporal filtering; keeps
    every frame and the frame's geometry."""

    out_channels: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class ConvNet(Protocol):
    """``(B, C, T, H, W)`` -> ``(B, out_channels, T', H', W')``, the shared feature extractor.

    ``temporal_stride`` is ``T / T'`` (1 for a convnet that keeps every frame); a convnet with a stride
    above 1 also has ``step_ends(T)``, the newest input frame each of its ``T'`` steps has seen.
    ``feature_grid(frame_shape)`` says where the output cells sit on a ``(H, W)`` frame, so that
    readout positions and shifter displacements can be converted to pixels.
    """

    out_channels: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def feature_grid(self, frame_shape: tuple[int, int]) -> FeatureGrid: ...


@runtime_checkable
class Modulator(Protocol):
    """``(x (B, C, T', H', W'), behavior (B, T', n_behavior))`` -> ``(B, out_channels, T', H', W')``:
    mixes the behaviour of each convnet step into its features, causally over the steps."""

    out_channels: int

    def __call__(self, x: torch.Tensor, behavior: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Readout(Protocol):
    """``(x (B, C, T', H', W'), shift (B, T', 2) | None)`` -> ``(B, T', N)``: one session's neurons'
    rates (positive) at every step, each neuron reading the features at its own position,
    moved by ``shift`` (grid units, x then y) where the encoder has a shifter."""

    def __call__(self, x: torch.Tensor, shift: torch.Tensor | None = None) -> torch.Tensor: ...


def temporal_stride(convnet: object) -> int:
    """Frames per step of a convnet: its ``temporal_stride``, 1 for a convnet that keeps every frame
    (which need not say so)."""
    return int(getattr(convnet, "temporal_stride", 1))


def check_parts(frontend: object, convnet: object, modulator: object, readouts: Mapping[str, object]) -> None:
    """Raise ``TypeError`` naming the part and the promise it does not keep."""
    for name, part, protocol in (("frontend", frontend, Frontend), ("convnet", convnet, ConvNet),
                                 ("modulator", modulator, Modulator)):
        if not isinstance(part, protocol):
            missing = [a for a in ("out_channels", "feature_grid") if a in dir(protocol) and not hasattr(part, a)]
            raise TypeError(f"{name}: {type(part).__name__} is not a {protocol.__name__} "
                            f"(missing: {', '.join(missing) or 'a forward'}); see neuroenc.model.protocols")
    if temporal_stride(convnet) > 1 and not hasattr(convnet, "step_ends"):
        raise TypeError(f"convnet: {type(convnet).__name__} strides time by {temporal_stride(convnet)} but has no "
                        "step_ends(T), so frames cannot be matched to its steps causally")
    for session, readout in readouts.items():
        if not isinstance(readout, Readout):
            raise TypeError(f"readout of session {session!r}: {type(readout).__name__} is not callable as a Readout")


def __getattr__(name: str) -> object:
    # ``Core`` was this protocol's name until the role got one name (convnet) everywhere; kept for
    # one release so that third-party parts written against it keep importing.
    if name == "Core":
        import warnings

        warnings.warn("neuroenc.model.protocols.Core is deprecated; use ConvNet", DeprecationWarning, stacklevel=2)
        return ConvNet
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
