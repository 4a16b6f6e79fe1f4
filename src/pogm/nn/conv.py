"""Convolutional networks in the DCGAN layout (Radford et al. 2015): every convolution halves the
height and width and doubles the channels, every transposed convolution does the opposite.
Plain modules: no likelihoods, no objectives.

Both networks accept any number of leading dimensions (samples, batch) and fold them into one
batch dimension for the convolutions.
"""

from __future__ import annotations

import math
from typing import Sequence

from torch import Tensor, nn

from pogm.nn.mlp import activation, full_precision


def conv_shapes(image_shape: Sequence[int], num_layers: int) -> list[tuple[int, int]]:
    """Spatial sizes ``(H, W)`` after each 4x4, stride-2, padding-1 convolution, input first."""
    h, w = int(image_shape[-2]), int(image_shape[-1])
    shapes = [(h, w)]
    for _ in range(num_layers):
        h, w = (h + 2 - 4) // 2 + 1, (w + 2 - 4) // 2 + 1
        if h < 1 or w < 1:
            raise ValueError(f"an image of {tuple(image_shape)} is too small for {num_layers} stride-2 convolutions; use fewer channels entries")
        shapes.append((h, w))
    return shapes


class ConvEncoder(nn.Module):
    """``[..., C, H, W] -> [..., F]``: stride-2 convolutions with ``channels[i]`` filters each,
    then flattened (``F = channels[-1] * h * w`` of the last feature map)."""

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], act: str = "relu", batch_norm: bool = False) -> None:
        super().__init__()
        if not channels:
            raise ValueError("a convolutional encoder needs at least one entry in channels")
        self.image_shape = tuple(int(s) for s in image_shape)
        shapes = conv_shapes(self.image_shape, len(channels))
        layers: list[nn.Module] = []
        previous = self.image_shape[0]
        for i, width in enumerate(channels):
            layers.append(nn.Conv2d(previous, width, 4, stride=2, padding=1, bias=not (batch_norm and i > 0)))
            if batch_norm and i > 0:  # DCGAN: no batch norm on the first layer
                layers.append(nn.BatchNorm2d(width))
            layers.append(activation(act))
            previous = width
        self.net = nn.Sequential(*layers)
        self.out_dim = previous * math.prod(shapes[-1])

    def forward(self, images: Tensor) -> Tensor:
        lead = images.shape[:-3]
        features = self.net(images.reshape(-1, *images.shape[-3:]))  # [N, C', h, w]
        return full_precision(features.reshape(*lead, self.out_dim))


class DeconvDecoder(nn.Module):
    """``[..., in_dim] -> [..., out_channels, H, W]``: a linear map to the smallest feature map,
    then stride-2 transposed convolutions back to the image size (the mirror of `ConvEncoder`
    with the same ``channels``). Output padding makes odd sizes (28 -> 14 -> 7 -> 3) come back exactly."""

    def __init__(
        self,
        in_dim: int,
        image_shape: Sequence[int],
        channels: Sequence[int],
        out_channels: int,
        act: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError("a deconvolutional decoder needs at least one entry in channels")
        self.image_shape = tuple(int(s) for s in image_shape)
        shapes = conv_shapes(self.image_shape, len(channels))
        widths = list(reversed(channels))  # widest first
        self.start_shape = (widths[0], *shapes[-1])
        self.project = nn.Linear(in_dim, math.prod(self.start_shape))
        layers: list[nn.Module] = [activation(act)]
        sizes = list(reversed(shapes))  # smallest first
        for i, width in enumerate(widths):
            target = sizes[i + 1]
            last = i + 1 == len(widths)
            out = out_channels if last else widths[i + 1]
            padding = (target[0] - 2 * sizes[i][0], target[1] - 2 * sizes[i][1])
            layers.append(nn.ConvTranspose2d(width, out, 4, stride=2, padding=1, output_padding=padding))
            if not last:
                if batch_norm:
                    layers.append(nn.BatchNorm2d(out))
                layers.append(activation(act))
        self.net = nn.Sequential(*layers)
        self.out_shape = (out_channels, *self.image_shape[-2:])

    def forward(self, features: Tensor) -> Tensor:
        lead = features.shape[:-1]
        h = self.project(features).reshape(-1, *self.start_shape)  # [N, C0, h0, w0]
        return full_precision(self.net(h).reshape(*lead, *self.out_shape))


def flatten_image(images: Tensor) -> Tensor:
    """``[..., C, H, W] -> [..., C * H * W]``."""
    return images.reshape(*images.shape[:-3], -1)


__all__ = ["ConvEncoder", "DeconvDecoder", "conv_shapes", "flatten_image"]
