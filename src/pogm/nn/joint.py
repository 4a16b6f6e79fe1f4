"""The discriminator of ALI and HALI: D(x, z_1, ..., z_L) on a joint of data and latent codes.

As in HALI's Table 4, the data enter first and each latent level joins one stage later:
D(x) features, then [D(x), z_1] -> D(x, z_1) features, ..., then [..., z_L] -> the logit. Every
stage has leaky ReLU and dropout (HALI, section 4), optionally weight normalised (Salimans &
Kingma 2016); Gaussian noise of std ``input_noise`` is added to every input in training mode.
The D(x) stage is fully connected (``architecture="mlp"``) or, as in Table 4, stride-2
convolutions (``"dcgan"``, one per entry of ``channels``) before its fully connected layers;
the later stages are fully connected, as Table 4's 1x1 convolutions on 1x1 maps are. Plain
module: no losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import math

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from pogm.nn.conv import conv_shapes
from pogm.nn.images import check_architecture
from pogm.nn.mlp import full_precision


def _stage(in_dim: int, widths: Sequence[int], dropout: float, weight_norm: bool) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for width in widths:
        linear = nn.Linear(in_dim, width)
        layers += [apply_weight_norm(linear) if weight_norm else linear, nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers), in_dim


def _conv_stage(image_shape: Sequence[int], channels: Sequence[int], dropout: float, weight_norm: bool) -> tuple[nn.Sequential, int]:
    """Stride-2 4x4 convolutions with leaky ReLU and dropout, flattened: ``[N, C, H, W] -> [N, F]``."""
    layers: list[nn.Module] = []
    previous = image_shape[0]
    for width in channels:
        conv = nn.Conv2d(previous, width, 4, stride=2, padding=1)
        layers += [apply_weight_norm(conv) if weight_norm else conv, nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        previous = width
    layers.append(nn.Flatten())
    return nn.Sequential(*layers), previous * math.prod(conv_shapes(image_shape, len(channels))[-1])


class JointDiscriminator(nn.Module):
    """``D(x, [z_1, ..., z_L]) -> (logits [...], features [..., F])``; ``features`` are the
    penultimate layer, the embedding D-bar of HALI's eq. 8."""

    def __init__(
        self,
        x_dim: int,
        z_dims: Sequence[int],
        hidden: Sequence[int] = (500,),
        joint_hidden: Sequence[int] = (500,),
        dropout: float = 0.2,
        input_noise: float = 0.0,
        weight_norm: bool = False,
        architecture: str = "mlp",
        image_shape: Sequence[int] | None = None,
        channels: Sequence[int] = (64, 128),
    ) -> None:
        super().__init__()
        if not hidden or not joint_hidden:
            raise ValueError("the joint discriminator needs at least one layer for x and one per latent level")
        self.input_noise = input_noise
        self.image_shape = None
        if check_architecture(architecture) == "dcgan":
            if image_shape is None or math.prod(image_shape) != x_dim:
                raise ValueError(f"a convolutional discriminator needs the image_shape of its {x_dim} inputs, got {image_shape}")
            self.image_shape = tuple(int(s) for s in image_shape)
            self.conv_stage, x_dim = _conv_stage(self.image_shape, channels, dropout, weight_norm)
        self.data_stage, width = _stage(x_dim, hidden, dropout, weight_norm)
        stages = []
        for z_dim in z_dims:
            stage, width = _stage(width + z_dim, joint_hidden, dropout, weight_norm)
            stages.append(stage)
        self.latent_stages = nn.ModuleList(stages)
        self.feature_dim = width
        self.out = nn.Linear(width, 1)

    def noisy(self, value: Tensor) -> Tensor:
        if self.training and self.input_noise > 0:
            return value + self.input_noise * torch.randn_like(value)
        return value

    def forward(self, x: Tensor, zs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if len(zs) != len(self.latent_stages):
            raise ValueError(f"the discriminator was built for {len(self.latent_stages)} latent levels, got {len(zs)}")
        x = self.noisy(x)  # [..., D]
        if self.image_shape is not None:
            lead = x.shape[:-1]
            x = self.conv_stage(x.reshape(-1, *self.image_shape)).reshape(*lead, -1)  # [..., F]
        h = self.data_stage(x)  # [..., H]
        for stage, z in zip(self.latent_stages, zs):
            h = stage(torch.cat([h, self.noisy(z)], -1))  # [..., H'], the next level joins
        return full_precision(self.out(h).squeeze(-1)), full_precision(h)


__all__ = ["JointDiscriminator"]
