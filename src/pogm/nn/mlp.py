"""Fully connected networks. Plain modules: no likelihoods, no objectives."""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn

ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}


def full_precision(output: Tensor) -> Tensor:
    """A network's output in float32 when autocast ran its matrix multiplies in a lower precision.

    ``train.precision=bf16`` autocasts the forward pass: the matrix multiplies run in bfloat16 with
    float32 accumulation. Their outputs would stay bfloat16, and with them everything computed from
    them: samples, log-densities, KL terms, likelihoods over 784 pixels. In bfloat16 (8 bits of
    mantissa) that moves an SDGM's per-example bound by about a nat. Networks return their outputs
    through this function, so that everything after the matrix multiplies (the model's equations,
    the objective) runs in float32, as the precision setting promises. Outside autocast it returns
    its input unchanged (float64 stays float64)."""
    if output.dtype in (torch.bfloat16, torch.float16) and torch.is_autocast_enabled(output.device.type):
        return output.float()
    return output


class LinearOutput(nn.Linear):
    """A linear layer that ends a network (class logits, say): ``nn.Linear`` whose output goes on in
    float32 under autocast (`full_precision`). Its parameters and state are ``nn.Linear``'s."""

    def forward(self, h: Tensor) -> Tensor:
        return full_precision(super().forward(h))


def activation(name: str) -> nn.Module:
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


class MultiInputMLP(nn.Module):
    """MLP over several inputs that are concatenated in meaning but never in memory.

    The first layer is a sum of one linear map per input, ``W [a; b] = W_a a + W_b b``, so the
    inputs may have different but broadcastable leading shapes: an ``x`` of ``[B, D]`` and a
    one-hot ``y`` of ``[K, 1, K]`` give ``[K, B, out]`` while the ``x`` part is computed once.
    This is what makes exact enumeration over classes a single vectorised pass.
    """

    def __init__(
        self,
        in_dims: Sequence[int],
        hidden: Sequence[int],
        out_dim: int,
        act: str = "softplus",
        batch_norm: bool = False,
    ) -> None:
        super().__init__()
        if not hidden:
            raise ValueError("an MLP needs at least one hidden layer")
        self.inputs = nn.ModuleList(nn.Linear(d, hidden[0], bias=(i == 0)) for i, d in enumerate(in_dims))
        layers: list[nn.Module] = []
        widths = list(hidden)
        for i, width in enumerate(widths):
            if batch_norm:
                layers.append(_FeatureBatchNorm(width))
            layers.append(activation(act))
            if i + 1 < len(widths):
                layers.append(nn.Linear(width, widths[i + 1]))
        self.body = nn.Sequential(*layers)
        self.out = nn.Linear(widths[-1], out_dim)

    def forward(self, *inputs: Tensor) -> Tensor:
        if len(inputs) != len(self.inputs):
            raise ValueError(f"expected {len(self.inputs)} inputs, got {len(inputs)}")
        h = self.inputs[0](inputs[0])
        for layer, value in zip(self.inputs[1:], inputs[1:]):
            h = h + layer(value)  # broadcasts: [K, B, H] from [B, H] + [K, 1, H]
        return full_precision(self.out(self.body(h)))


class MLP(MultiInputMLP):
    """A plain MLP: ``in_dim -> hidden... -> out_dim``."""

    def __init__(self, in_dim: int, hidden: Sequence[int], out_dim: int, act: str = "softplus", batch_norm: bool = False) -> None:
        super().__init__([in_dim], hidden, out_dim, act=act, batch_norm=batch_norm)


class GaussianHead(nn.Module):
    """Maps features to the mean and unconstrained log-variance of a diagonal Gaussian."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: Tensor) -> tuple[Tensor, Tensor]:
        mean, log_var = full_precision(self.net(*inputs)).chunk(2, dim=-1)  # [..., D] each
        return mean, log_var

    def start_std(self, std: float) -> None:
        """Start the predicted standard deviation near ``std``: the bias of the log-variance outputs
        (the second half of the network's last layer) at 2 log std."""
        start_log_variance(self.net, std)


def start_log_variance(net: nn.Module, std: float) -> None:
    """Set the bias of the second half of the outputs of ``net``'s last linear or convolutional
    layer (a Gaussian head's log-variances, by features or by channels) to 2 log ``std``."""
    if not (std > 0 and math.isfinite(std)):
        raise ValueError(f"a starting standard deviation must be a positive number, got {std}")
    layers = [m for m in net.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]
    if not layers or layers[-1].bias is None:
        raise ValueError("the network's last layer has no bias to start its log-variances with")
    bias = layers[-1].bias
    with torch.no_grad():
        bias[bias.shape[0] // 2:] = 2.0 * math.log(std)


class _FeatureBatchNorm(nn.BatchNorm1d):
    """BatchNorm1d over the last dim for inputs with any number of leading dims."""

    def forward(self, h: Tensor) -> Tensor:
        shape = h.shape
        return super().forward(h.reshape(-1, shape[-1])).reshape(shape)
