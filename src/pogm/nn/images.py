"""Image networks that a config chooses between: fully connected (``"mlp"``) or DCGAN-style
convolutional (``"dcgan"``, Radford et al. 2015: stride-2 convolutions, batch norm after all but
the first discriminator layer, leaky ReLU in the discriminator, ReLU in the generator).

All three read and write flat images ``[..., C * H * W]`` so that models and likelihoods never
see the difference; side inputs (one-hot labels, latent codes) are vectors joined by a sum of
linear maps, as in `MultiInputMLP`. Plain modules: no likelihoods, no objectives.

* `ImageEncoder`: ``(image [..., C*H*W], *side [..., d_i]) -> [..., out_dim]``. Image-shaped
  conditions (an observed part and its mask) are stacked as channels by the caller.
* `ImageDecoder`: ``(*inputs [..., d_i]) -> [..., P * H * W]`` for a likelihood with ``P``
  parameters per pixel (Bernoulli logits: 1; a Gaussian with predicted variance: 2, in the order
  the likelihood splits them: all means, then all log-variances).
* `Discriminator`: ``(image, label_one_hot=None) -> (logits, features)``; ``features`` are the
  last hidden layer, the Dis_l of Larsen et al. (2016) that VAE-GAN reconstructs.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

from pogm.nn.conv import ConvEncoder, DeconvDecoder, conv_shapes
from pogm.nn.mlp import MultiInputMLP, activation, full_precision

ARCHITECTURES = ("mlp", "dcgan")


def check_architecture(name: str) -> str:
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {list(ARCHITECTURES)}")
    return name


def _fold(x: Tensor, image_shape: Sequence[int]) -> tuple[Tensor, tuple[int, ...]]:
    """``[..., C*H*W] -> ([N, C, H, W], leading shape)``."""
    lead = tuple(x.shape[:-1])
    return x.reshape(-1, *image_shape), lead


class ImageEncoder(nn.Module):
    """``(image, *side) -> [..., out_dim]`` through ``hidden`` fully connected layers (``"mlp"``) or
    stride-2 convolutions with ``channels`` filters and one fully connected layer of
    ``hidden[-1]`` units (``"dcgan"``)."""

    def __init__(
        self,
        architecture: str,
        image_shape: Sequence[int],
        side_dims: Sequence[int],
        hidden: Sequence[int],
        out_dim: int,
        channels: Sequence[int] = (64, 128),
        act: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.architecture = check_architecture(architecture)
        self.image_shape = tuple(int(s) for s in image_shape)
        image_dim = math.prod(self.image_shape)
        if architecture == "mlp":
            self.conv = None
            self.head = MultiInputMLP([image_dim, *side_dims], hidden, out_dim, act, batch_norm)
        else:
            self.conv = ConvEncoder(self.image_shape, channels, "leaky_relu" if act == "leaky_relu" else act, batch_norm)
            self.head = MultiInputMLP([self.conv.out_dim, *side_dims], hidden[-1:], out_dim, act, batch_norm)

    def forward(self, image: Tensor, *side: Tensor) -> Tensor:
        if self.conv is None:
            return self.head(image, *side)
        images, lead = _fold(image, self.image_shape)  # [N, C, H, W]
        features = self.conv(images).reshape(*lead, -1)  # [..., F]
        return self.head(features, *side)


class ImageDecoder(nn.Module):
    """``(*inputs) -> [..., params_per_pixel * C * H * W]``: ``hidden`` fully connected layers
    (``"mlp"``), or one fully connected layer of ``hidden[-1]`` units then transposed
    convolutions mirroring ``channels`` (``"dcgan"``)."""

    def __init__(
        self,
        architecture: str,
        in_dims: Sequence[int],
        image_shape: Sequence[int],
        params_per_pixel: int,
        hidden: Sequence[int],
        channels: Sequence[int] = (64, 128),
        act: str = "relu",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        self.architecture = check_architecture(architecture)
        self.image_shape = tuple(int(s) for s in image_shape)
        out_dim = params_per_pixel * math.prod(self.image_shape)
        if architecture == "mlp":
            self.trunk = MultiInputMLP(in_dims, hidden, out_dim, act, batch_norm)
            self.deconv = None
        else:
            width = hidden[-1]
            self.trunk = MultiInputMLP(in_dims, (width,), width, act, batch_norm)
            channels_out = params_per_pixel * self.image_shape[0]
            self.deconv = DeconvDecoder(width, self.image_shape, channels, channels_out, act, batch_norm)
            self.post = activation(act)

    def forward(self, *inputs: Tensor) -> Tensor:
        h = self.trunk(*inputs)
        if self.deconv is None:
            return full_precision(h)
        return self.deconv(self.post(h)).reshape(*h.shape[:-1], -1)  # [..., P*C*H*W]


class Discriminator(nn.Module):
    """``D(x)`` or ``D(x, y)``: logits and the features of its last hidden layer.

    ``num_outputs`` is 1 for a real/fake logit, or K + 1 for the conditional GAN that gives every
    real class its own logit and all fakes one more (Salimans et al. 2016; the poster's
    "real images with different labels and fake images as a single class"). ``label_dim`` > 0
    joins a one-hot label after the feature layer (Mirza & Osindero 2014's D(x | y)), so the
    features that VAE-GAN reconstructs do not depend on the label. ``dropout`` acts on the
    features; ``input_noise`` is the std of Gaussian noise added to the input in training mode.
    """

    def __init__(
        self,
        architecture: str,
        image_shape: Sequence[int],
        hidden: Sequence[int] = (500, 500),
        channels: Sequence[int] = (64, 128),
        label_dim: int = 0,
        num_outputs: int = 1,
        batch_norm: bool = True,
        dropout: float = 0.0,
        input_noise: float = 0.0,
    ) -> None:
        super().__init__()
        self.architecture = check_architecture(architecture)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.input_noise = input_noise
        if architecture == "mlp":
            layers: list[nn.Module] = []
            previous = math.prod(self.image_shape)
            for width in hidden:
                layers += [nn.Linear(previous, width), nn.LeakyReLU(0.2)]
                previous = width
            self.features = nn.Sequential(*layers)
            self.feature_dim = previous
        else:
            shapes = conv_shapes(self.image_shape, len(channels))
            layers = []
            previous = self.image_shape[0]
            for i, width in enumerate(channels):
                layers.append(nn.Conv2d(previous, width, 4, stride=2, padding=1, bias=not (batch_norm and i > 0)))
                if batch_norm and i > 0:  # DCGAN: no batch norm on the discriminator's first layer
                    layers.append(nn.BatchNorm2d(width))
                layers.append(nn.LeakyReLU(0.2))
                previous = width
            self.features = nn.Sequential(*layers)
            self.feature_dim = previous * math.prod(shapes[-1])
        self.dropout = nn.Dropout(dropout)
        self.label = nn.Linear(label_dim, self.feature_dim, bias=False) if label_dim else None
        self.out = nn.Linear(self.feature_dim, num_outputs)
        self.num_outputs = num_outputs

    def forward(self, image: Tensor, label_one_hot: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.training and self.input_noise > 0:
            image = image + self.input_noise * torch.randn_like(image)
        if self.architecture == "mlp":
            features = self.features(image)  # [..., F]
        else:
            images, lead = _fold(image, self.image_shape)  # [N, C, H, W]
            features = self.features(images).reshape(*lead, -1)  # [..., F]
        h = self.dropout(features)
        if self.label is not None:
            if label_one_hot is None:
                raise ValueError("this discriminator scores (image, label) pairs; pass the one-hot label")
            h = nn.functional.leaky_relu(h + self.label(label_one_hot), 0.2)
        logits = self.out(h)
        if self.num_outputs == 1:
            logits = logits.squeeze(-1)  # [...]
        return full_precision(logits), full_precision(features)


__all__ = ["ARCHITECTURES", "Discriminator", "ImageDecoder", "ImageEncoder", "check_architecture"]
