"""Calling a network as a constant: its outputs carry gradients to its inputs, never to its own
parameters.

Adversarial models give every network its own loss (Larsen et al. 2016: the encoder, the decoder
and the discriminator each have one). Where one network's loss reads another network, that other
network is called frozen, so that each loss reaches its own parameter group only and an optimizer
can never move a network with a loss that is not its own.
"""

from __future__ import annotations

from typing import Any

from torch import nn
from torch.func import functional_call


def call_frozen(module: nn.Module, *args: Any, **kwargs: Any) -> Any:
    """``module(*args, **kwargs)`` with its parameters detached (buffers, such as batch-norm
    statistics, behave as in a normal call)."""
    detached = {name: p.detach() for name, p in module.named_parameters()}
    return functional_call(module, detached, args, kwargs)


__all__ = ["call_frozen"]
