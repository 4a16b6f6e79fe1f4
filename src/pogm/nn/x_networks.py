"""Networks of the data x that a model's ``network`` setting chooses: fully connected (``"mlp"``)
or convolutional (``"conv"``), for the convolutional M2 of Chen, Fang & Ju (2016, "When VAEs meet
GANs", semi-supervised table) and the ADGM / SDGM of Maaløe et al. (2016) built the same way.

* `x_encoder`: ``(x [..., D], *side [..., d_i]) -> [..., out_dim]``, a network that reads x and
  side inputs (one-hot labels, latent codes). ``"mlp"``: a `MultiInputMLP` over ``[D, *side]``.
  ``"conv"``: an `ImageEncoder` (stride-2 convolutions on x as ``[B, C, H, W]``, flattened, then one
  hidden layer of ``hidden[-1]`` units joined by the side inputs). The convolutions see x's own
  leading dimensions only, so with a one-hot y of ``[K, 1, K]`` they run once on ``[B, C, H, W]``
  and their features are shared by all K classes; only the fully connected head gives ``[K, B, ...]``.
* `x_decoder`: ``(*inputs [..., d_i]) -> [..., P * D]``, the parameters of a likelihood of x with
  P values per entry. ``"mlp"``: a `MultiInputMLP`. ``"conv"``: an `ImageDecoder` (one hidden layer,
  a linear map to the smallest feature map, then stride-2 transposed convolutions back to the
  image's shape with ``P * C`` output channels: all first parameters, then all second ones, the
  order in which the likelihoods split them).

The ``"mlp"`` networks are the very modules the models built before the setting existed (same
parameter names, same initialisation order), so saved weights and seeded runs are unchanged.
Plain factories of plain modules: no likelihoods, no objectives.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from pogm.nn.images import ImageDecoder, ImageEncoder
from pogm.nn.mlp import MultiInputMLP

NETWORKS = ("mlp", "conv")
_ARCHITECTURE = {"mlp": "mlp", "conv": "dcgan"}  # the `pogm.nn.images` name of each choice


def check_network(network: str, x_dim: int, image_shape: Sequence[int]) -> None:
    """A one-line ValueError for an unknown ``network``, or ``"conv"`` on data that are not images
    (flat vectors come as ``image_shape`` ``(1, 1, D)``, `pogm.models.base.flat_x_shape_fields`)."""
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; choose one of {list(NETWORKS)}")
    if network == "mlp":
        return
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape[1:]) < 2:
        raise ValueError(
            f"network='conv' needs images [C, H, W], but x holds flat vectors of {x_dim} values (image_shape {shape}); "
            "use network='mlp', or give the images' shape with --set data.image_shape=[C,H,W]"
        )
    if math.prod(shape) != x_dim:
        raise ValueError(f"network='conv': image_shape {shape} has {math.prod(shape)} values but x_dim={x_dim}")


def x_encoder(
    network: str,
    x_dim: int,
    image_shape: Sequence[int],
    side_dims: Sequence[int],
    hidden: Sequence[int],
    out_dim: int,
    conv_channels: Sequence[int],
    act: str,
    batch_norm: bool = False,
) -> nn.Module:
    """``(x [..., D], *side) -> [..., out_dim]``: fully connected, or convolutional features of x
    (one stride-2 convolution per entry of ``conv_channels``) then one hidden layer."""
    check_network(network, x_dim, image_shape)
    if network == "mlp":
        return MultiInputMLP([x_dim, *side_dims], hidden, out_dim, act, batch_norm)
    return ImageEncoder(_ARCHITECTURE[network], image_shape, side_dims, hidden, out_dim, conv_channels, act, batch_norm)


def x_decoder(
    network: str,
    in_dims: Sequence[int],
    x_dim: int,
    image_shape: Sequence[int],
    num_params: int,
    hidden: Sequence[int],
    conv_channels: Sequence[int],
    act: str,
    batch_norm: bool = False,
) -> nn.Module:
    """``(*inputs) -> [..., num_params]`` with ``num_params`` a multiple of ``x_dim`` (P per entry):
    fully connected, or one hidden layer then transposed convolutions to the image's shape."""
    check_network(network, x_dim, image_shape)
    if network == "mlp":
        return MultiInputMLP(in_dims, hidden, num_params, act, batch_norm)
    if num_params % x_dim:
        raise ValueError(f"network='conv' decodes a whole number of parameters per pixel; the likelihood wants {num_params} for {x_dim} pixels")
    return ImageDecoder(_ARCHITECTURE[network], in_dims, image_shape, num_params // x_dim, hidden, conv_channels, act, batch_norm)


__all__ = ["NETWORKS", "check_network", "x_decoder", "x_encoder"]
