"""The convolutional networks of HALI's Table 4 (Belghazi et al. 2018), for a first latent level
z_1 that is a feature map ``[C, h, w]`` rather than a vector: residual blocks (He et al. 2015) with
batch normalisation, stride-2 convolutions to go down and bilinear upsampling to go up (HALI,
section 4), and a discriminator that joins z_1 to the image's features along the channel axis.

Sizes follow the data: every stride-2 convolution is 3x3 with padding 1 (``h -> ceil(h / 2)``:
28 -> 14 -> 7 -> 4 -> 2 -> 1), every bilinear upsampling goes back to the size its mirror came
from, and the maps of 4 x 4 or less that end a downsampling path are closed by one "valid"
convolution over the whole map (Table 4's 4x4 valid convolution), giving a 1 x 1 map. Widths double
with every stride-2 step from ``width`` at the image's resolution (DCGAN's pattern; Table 4 grows
from 32-64 at the image to 512 at 1 x 1).

* `SpatialEncoder`, q(z_1 | x)'s network G_{z_1}(x): ``x [..., C_x*H*W] -> [..., out, h, w]``.
* `SpatialImageDecoder`, G_x(z_1): ``z_1 [..., C, h, w] -> logits [..., C_x*H*W]``.
* `MapToVector`, q(z_2 | z_1)'s network G_{z_2}(z_1): ``[..., C, h, w] -> [..., out]``.
* `VectorToMap`, p(z_1 | z_2)'s network G_{z_1}(z_2): ``[..., d] -> [..., out, h, w]``.
* `ChannelGaussianHead`: a network's channels split in two, ``(mean, log_var)`` each ``[..., C, h, w]``.
* `SpatialJointDiscriminator`, D(x, z_1, ..., z_L): D(x) convolutions, then z_1 joined along the
  channel axis and D(x, z_1) convolutions down to 1 x 1, then each vector z_l joined to the
  flattened features and fully connected layers (Table 4's 1x1 convolutions on 1 x 1 maps).

All accept any number of leading dimensions and fold them into one batch dimension. Plain
modules: no likelihoods, no objectives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm as apply_weight_norm

from pogm.nn.mlp import full_precision, start_log_variance

SLOPE = 0.2  # leaky ReLU's negative slope (ALI and HALI)
CLOSING_SIZE = 4  # a downsampling path stops halving at this size and closes with a valid convolution


def halved(size: int) -> int:
    """The size after one 3x3, stride-2, padding-1 convolution."""
    return (size - 1) // 2 + 1


def halvings(image_hw: Sequence[int], target_hw: Sequence[int]) -> int:
    """How many stride-2 convolutions take an image of ``image_hw`` to a map of ``target_hw``
    (28 x 28 -> 14 x 14: 1; -> 7 x 7: 2); a one-line ValueError when none does."""
    h, w = (int(s) for s in image_hw)
    steps = 0
    while (h, w) != tuple(int(s) for s in target_hw):
        if h == 1 and w == 1:
            raise ValueError(
                f"no number of stride-2 halvings takes {tuple(image_hw)} to {tuple(target_hw)}; "
                f"z1_shape's h x w must be one of {sizes_down(image_hw)}"
            )
        h, w, steps = halved(h), halved(w), steps + 1
    return steps


def sizes_down(hw: Sequence[int], steps: int | None = None) -> list[tuple[int, int]]:
    """``(h, w)`` before and after each halving: ``steps`` of them, or down to 1 x 1."""
    h, w = (int(s) for s in hw)
    sizes = [(h, w)]
    while (steps is None and (h, w) != (1, 1)) or (steps is not None and len(sizes) <= steps):
        h, w = halved(h), halved(w)
        sizes.append((h, w))
    return sizes


def closing_sizes(hw: Sequence[int]) -> list[tuple[int, int]]:
    """The sizes of a path that halves ``hw`` until both sides are at most `CLOSING_SIZE`, first
    to last (14 x 14: [(14, 14), (7, 7), (4, 4)]); a valid convolution then closes it to 1 x 1."""
    sizes = [tuple(int(s) for s in hw)]
    while max(sizes[-1]) > CLOSING_SIZE:
        sizes.append((halved(sizes[-1][0]), halved(sizes[-1][1])))
    return sizes


def _norm(channels: int, batch_norm: bool) -> nn.Module:
    return nn.BatchNorm2d(channels) if batch_norm else nn.Identity()


def conv_block(c_in: int, c_out: int, kernel: int = 3, stride: int = 1, batch_norm: bool = True) -> nn.Sequential:
    """Convolution (``same`` padding for odd kernels), batch norm, leaky ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=not batch_norm), _norm(c_out, batch_norm), nn.LeakyReLU(SLOPE)
    )


class ResidualBlock(nn.Module):
    """He et al. (2015)'s basic block at constant width and size: ``LReLU(h + BN(conv(LReLU(BN(conv(h))))))``."""

    def __init__(self, channels: int, batch_norm: bool = True) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), _norm(channels, batch_norm), nn.LeakyReLU(SLOPE),
            nn.Conv2d(channels, channels, 3, padding=1, bias=not batch_norm), _norm(channels, batch_norm),
        )
        self.act = nn.LeakyReLU(SLOPE)

    def forward(self, h: Tensor) -> Tensor:
        return self.act(h + self.body(h))  # [N, C, H, W], the skip connection


def upsample(size: Sequence[int]) -> nn.Upsample:
    """Bilinear upsampling to exactly ``size`` (7 -> 14, and 4 -> 7, which a factor of 2 cannot give)."""
    return nn.Upsample(size=tuple(int(s) for s in size), mode="bilinear", align_corners=False)


def _fold(t: Tensor, dims: int) -> tuple[Tensor, tuple[int, ...]]:
    """``[..., *event] -> ([N, *event], leading shape)`` with ``dims`` event dimensions."""
    lead = tuple(t.shape[: t.dim() - dims])
    return t.reshape(-1, *t.shape[t.dim() - dims:]), lead


class SpatialEncoder(nn.Module):
    """G_{z_1}(x): ``x [..., C_x*H*W] -> [..., out_channels, h, w]``. A 3x3 convolution at the
    image's size, then per halving a stride-2 convolution and a residual block, then a 1x1
    convolution (Table 4's Gaussian layer: ``out_channels`` = 2 C for mean and log-variance)."""

    def __init__(self, image_shape: Sequence[int], map_hw: Sequence[int], out_channels: int, width: int = 16, batch_norm: bool = True) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        steps = halvings(self.image_shape[1:], map_hw)
        layers: list[nn.Module] = [conv_block(self.image_shape[0], width, batch_norm=batch_norm)]
        for i in range(1, steps + 1):
            layers += [conv_block(width * 2 ** (i - 1), width * 2**i, stride=2, batch_norm=batch_norm), ResidualBlock(width * 2**i, batch_norm)]
        if steps == 0:
            layers.append(ResidualBlock(width, batch_norm))
        layers.append(nn.Conv2d(width * 2**steps, out_channels, 1))
        self.net = nn.Sequential(*layers)
        self.out_shape = (out_channels, *(int(s) for s in map_hw))

    def forward(self, x: Tensor) -> Tensor:
        images, lead = _fold(x.reshape(*x.shape[:-1], *self.image_shape), 3)  # [N, C_x, H, W]
        return full_precision(self.net(images).reshape(*lead, *self.out_shape))  # [..., out, h, w]


class SpatialImageDecoder(nn.Module):
    """G_x(z_1): ``z_1 [..., C, h, w] -> logits [..., C_x*H*W]``. A 1x1 convolution, then per
    halving of the encoder a residual block, a bilinear upsampling and a 3x3 convolution that halves
    the channels, then a 3x3 convolution and a 1x1 one to the image's channels (Table 4's G_x(z_1):
    1x1, residual blocks and upsamplings, 3x3 convolutions of 64 and 32 channels, a 1x1 one)."""

    def __init__(self, map_shape: Sequence[int], image_shape: Sequence[int], width: int = 16, batch_norm: bool = True) -> None:
        super().__init__()
        self.map_shape = tuple(int(s) for s in map_shape)
        self.image_shape = tuple(int(s) for s in image_shape)
        steps = halvings(self.image_shape[1:], self.map_shape[1:])
        sizes = sizes_down(self.image_shape[1:], steps)  # image first
        layers: list[nn.Module] = [conv_block(self.map_shape[0], width * 2**steps, kernel=1, batch_norm=batch_norm)]
        for i in range(steps, 0, -1):  # a residual block at each size, then up to the next one and half the channels
            layers += [ResidualBlock(width * 2**i, batch_norm), upsample(sizes[i - 1]), conv_block(width * 2**i, width * 2 ** (i - 1), batch_norm=batch_norm)]
        if steps == 0:
            layers.append(ResidualBlock(width, batch_norm))
        layers.append(conv_block(width, max(width // 2, 1), batch_norm=batch_norm))
        layers.append(nn.Conv2d(max(width // 2, 1), self.image_shape[0], 1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        maps, lead = _fold(z, 3)  # [N, C, h, w]
        return full_precision(self.net(maps).reshape(*lead, -1))  # [..., C_x*H*W]


class MapToVector(nn.Module):
    """G_{z_2}(z_1): ``[..., C, h, w] -> [..., out_dim]``. Stride-2 convolutions down to 4 x 4 or
    less, a residual block, a valid convolution over the whole map (1 x 1) and a 1x1 convolution
    (Table 4's G_{z_2}(z_1): 3x3 stride-2 convolutions, a residual block, a 4x4 valid one, a linear 1x1)."""

    def __init__(self, map_shape: Sequence[int], out_dim: int, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        self.map_shape = tuple(int(s) for s in map_shape)
        sizes = closing_sizes(self.map_shape[1:])
        layers: list[nn.Module] = []
        previous = self.map_shape[0]
        for _ in sizes[1:]:
            layers.append(conv_block(previous, width, stride=2, batch_norm=batch_norm))
            previous = width
        if previous != width:  # no halving: widen first
            layers.append(conv_block(previous, width, batch_norm=batch_norm))
        last = sizes[-1]
        layers += [
            ResidualBlock(width, batch_norm),
            nn.Conv2d(width, width, last, bias=not batch_norm), _norm(width, batch_norm), nn.LeakyReLU(SLOPE),  # [N, width, 1, 1]
            nn.Conv2d(width, out_dim, 1),
        ]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        maps, lead = _fold(z, 3)  # [N, C, h, w]
        return full_precision(self.net(maps).reshape(*lead, -1))  # [..., out_dim]


class VectorToMap(nn.Module):
    """G_{z_1}(z_2): ``[..., in_dim] -> [..., out_channels, h, w]``. A linear map (Table 4's 1x1
    convolution to 4*4*256) to the smallest map of `MapToVector`'s path, a residual block, then per
    size a bilinear upsampling and a 3x3 convolution, the last one giving ``out_channels`` (the
    Gaussian layer: 2 C)."""

    def __init__(self, in_dim: int, map_shape: Sequence[int], out_channels: int, width: int = 64, batch_norm: bool = True) -> None:
        super().__init__()
        self.out_shape = (out_channels, *(int(s) for s in map_shape[1:]))
        sizes = closing_sizes(self.out_shape[1:])  # largest first
        self.start_shape = (width, *sizes[-1])
        self.project = nn.Linear(in_dim, math.prod(self.start_shape), bias=not batch_norm)
        layers: list[nn.Module] = [_norm(width, batch_norm), nn.LeakyReLU(SLOPE), ResidualBlock(width, batch_norm)]
        for i, size in enumerate(reversed(sizes[:-1])):
            last = i == len(sizes) - 2
            layers.append(upsample(size))
            layers.append(nn.Conv2d(width, out_channels, 3, padding=1) if last else conv_block(width, width, batch_norm=batch_norm))
        if len(sizes) == 1:
            layers.append(nn.Conv2d(width, out_channels, 3, padding=1))
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        vectors, lead = _fold(z, 1)  # [N, d]
        h = self.project(vectors).reshape(-1, *self.start_shape)  # [N, width, 4, 4]
        return full_precision(self.net(h).reshape(*lead, *self.out_shape))  # [..., out, h, w]


class ChannelGaussianHead(nn.Module):
    """A network's output ``[..., 2C, h, w]`` split along the channel axis: ``(mean, log_var)``,
    each ``[..., C, h, w]``."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = self.net(*inputs).chunk(2, dim=-3)
        return mean, log_var

    def start_std(self, std: float) -> None:
        """Start the predicted standard deviation near ``std`` (the log-variance channels' bias at 2 log std)."""
        start_log_variance(self.net, std)


class SpatialJointDiscriminator(nn.Module):
    """D(x, z_1, z_2, ..., z_L) of Table 4: ``(x [..., C_x*H*W], [z_1 [..., C, h, w], z_2 [..., d_2], ...])
    -> (logits [...], features [..., F])``; ``features`` are the penultimate layer (eq. 8's D-bar).

    * D(x): a 3x3 convolution at the image's size, a stride-2 one per halving down to z_1's size
      and a 3x3 one there (Table 4: stride 1, 2, 2, 1).
    * D(x, z_1): D(x) and z_1 concatenated along the channel axis, a 3x3 convolution, stride-2 ones
      down to 4 x 4 or less and a valid convolution to 1 x 1 (Table 4: stride 1, 2, 2, 2, 4x4 valid).
    * D(x, z_1, ..., z_l): the flattened features and z_l concatenated, ``joint_hidden`` fully
      connected layers (Table 4's 1x1 convolutions on the 1 x 1 map); then the logit.

    Section 4's regularisers: Gaussian noise of std ``input_noise`` on the data input x in training
    mode (and on the latent inputs with ``latent_noise``), weight normalisation of the convolutions (Table 4's
    WN; its 1x1 layers have none), and dropout that keeps each unit with probability ``retention``
    after every ``dropout_every``-th layer, counted from the input over all stages.
    """

    def __init__(
        self,
        image_shape: Sequence[int],
        z1_shape: Sequence[int],
        z_dims: Sequence[int] = (),
        width: int = 16,
        joint_hidden: Sequence[int] = (500,),
        retention: float = 0.2,
        dropout_every: int = 3,
        input_noise: float = 0.0,
        weight_norm: bool = True,
        latent_noise: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < retention <= 1.0:
            raise ValueError(f"the discriminator's dropout retention must be in (0, 1], got {retention}")
        if dropout_every < 1:
            raise ValueError(f"dropout_every must be at least 1, got {dropout_every}")
        if z_dims and not joint_hidden:
            raise ValueError("the discriminator needs at least one fully connected layer per vector latent level")
        self.image_shape = tuple(int(s) for s in image_shape)
        self.z1_shape = tuple(int(s) for s in z1_shape)
        self.input_noise, self.latent_noise = input_noise, latent_noise
        self.retention, self.dropout_every = retention, dropout_every
        self._count = 0
        steps = halvings(self.image_shape[1:], self.z1_shape[1:])

        def conv(c_in: int, c_out: int, kernel: int | Sequence[int] = 3, stride: int = 1) -> list[nn.Module]:
            padding = kernel // 2 if isinstance(kernel, int) else 0
            layer = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=padding)
            return [apply_weight_norm(layer) if weight_norm else layer, nn.LeakyReLU(SLOPE), *self._dropout()]

        x_layers = conv(self.image_shape[0], width)
        for i in range(1, steps + 1):
            x_layers += conv(width * 2 ** (i - 1), width * 2**i, stride=2)
        x_width = width * 2**steps
        x_layers += conv(x_width, x_width)
        self.data_stage = nn.Sequential(*x_layers)  # D(x): [N, x_width, h, w]

        sizes = closing_sizes(self.z1_shape[1:])
        joint = x_width
        z1_layers = conv(x_width + self.z1_shape[0], joint)
        for _ in sizes[1:]:
            z1_layers += conv(joint, 2 * joint, stride=2)
            joint *= 2
        z1_layers += conv(joint, joint, kernel=sizes[-1])  # the valid convolution: [N, joint, 1, 1]
        self.z1_stage = nn.Sequential(*z1_layers, nn.Flatten())  # D(x, z_1): [N, F]
        feature_dim = joint

        stages = []
        for z_dim in z_dims:
            layers: list[nn.Module] = []
            in_dim = feature_dim + z_dim
            for units in joint_hidden:
                layers += [nn.Linear(in_dim, units), nn.LeakyReLU(SLOPE), *self._dropout()]
                in_dim = units
            stages.append(nn.Sequential(*layers))
            feature_dim = in_dim
        self.latent_stages = nn.ModuleList(stages)  # D(x, z_1, ..., z_l), l >= 2
        self.feature_dim = feature_dim
        self.out = nn.Linear(feature_dim, 1)

    def _dropout(self) -> list[nn.Module]:
        """A dropout layer after every ``dropout_every``-th layer, none elsewhere."""
        self._count += 1
        return [nn.Dropout(1.0 - self.retention)] if self._count % self.dropout_every == 0 and self.retention < 1.0 else []

    def noisy(self, value: Tensor) -> Tensor:
        if self.training and self.input_noise > 0:
            return value + self.input_noise * torch.randn_like(value)
        return value

    def forward(self, x: Tensor, zs: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        if len(zs) != 1 + len(self.latent_stages):
            raise ValueError(f"the discriminator was built for {1 + len(self.latent_stages)} latent levels, got {len(zs)}")
        x = self.noisy(x)  # [..., C_x*H*W]
        if self.latent_noise:
            zs = [self.noisy(z) for z in zs]
        images, lead = _fold(x.reshape(*x.shape[:-1], *self.image_shape), 3)  # [N, C_x, H, W]
        z1, _ = _fold(zs[0], 3)  # [N, C, h, w]
        h = torch.cat([self.data_stage(images), z1], dim=1)  # [N, x_width + C, h, w]: z_1 joins along the channels
        h = self.z1_stage(h)  # [N, F]
        for stage, z in zip(self.latent_stages, zs[1:]):
            h = stage(torch.cat([h, z.reshape(-1, z.shape[-1])], -1))  # [N, H]: the next level joins
        return full_precision(self.out(h).reshape(lead)), full_precision(h.reshape(*lead, -1))


__all__ = [
    "ChannelGaussianHead", "MapToVector", "ResidualBlock", "SpatialEncoder", "SpatialImageDecoder", "SpatialJointDiscriminator", "VectorToMap",
    "closing_sizes", "halvings", "sizes_down",
]
