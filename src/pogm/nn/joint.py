"""The discriminator of ALI and HALI: D(x, z_1, ..., z_L) on a joint of data and latent codes.

As in HALI's Table 4, the data enter first and each latent level joins one stage later:
D(x) features, then [D(x), z_1] -> D(x, z_1) features, ..., then [..., z_L] -> the logit. Every
stage is fully connected with leaky ReLU and dropout (HALI, section 4), optionally weight
normalised (Salimans & Kingma 2016); Gaussian noise of std ``input_noise`` is added to every
input in training mode. Plain module: no losses.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm


def _stage(in_dim: int, widths: Sequence[int], dropout: float, weight_norm: bool) -> tuple[nn.Sequential, int]:
    layers: list[nn.Module] = []
    for width in widths:
        linear = nn.Linear(in_dim, width)
        layers += [apply_weight_norm(linear) if weight_norm else linear, nn.LeakyReLU(0.2), nn.Dropout(dropout)]
        in_dim = width
    return nn.Sequential(*layers), in_dim


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
    ) -> None:
        super().__init__()
        if not hidden or not joint_hidden:
            raise ValueError("the joint discriminator needs at least one layer for x and one per latent level")
        self.input_noise = input_noise
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
        h = self.data_stage(self.noisy(x))  # [..., H]
        for stage, z in zip(self.latent_stages, zs):
            h = stage(torch.cat([h, self.noisy(z)], -1))  # [..., H'], the next level joins
        return self.out(h).squeeze(-1), h


__all__ = ["JointDiscriminator"]
