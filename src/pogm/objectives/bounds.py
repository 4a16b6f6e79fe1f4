"""Evidence lower bounds: the ELBO and the importance-weighted bound.

All functions work in log space. ``log_weights`` are log p(x, z_k) - log q(z_k | x) for
``k = 1..K`` samples, shape ``[K, B]``.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm


def elbo(log_p_x_z: Tensor, kl: Tensor, kl_weight: float = 1.0) -> Tensor:
    """ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)); ``kl_weight`` < 1 during KL warm-up."""
    return log_p_x_z - kl_weight * kl


def importance_weighted_bound(log_weights: Tensor) -> Tensor:
    """log (1/K) sum_k w_k (Burda et al. 2015, eq. 8) with log-sum-exp over the sample dim 0."""
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])


def chunked_importance_weighted_bound(
    log_weight_fn: Callable[[int], Tensor],
    k: int,
    chunk_size: int = 500,
    progress: bool = False,
) -> Tensor:
    """The importance-weighted bound with ``k`` samples, drawn ``chunk_size`` at a time.

    ``log_weight_fn(n)`` returns ``[n, B]`` log weights of ``n`` fresh samples. A running
    log-sum-exp keeps memory at one chunk, so ``k = 5000`` fits on a small machine.
    """
    if k < 1:
        raise ValueError(f"the number of importance samples must be >= 1, got {k}")
    running = None
    remaining = k
    with tqdm(total=k, desc="IW samples", disable=not progress, leave=False) as bar:
        while remaining > 0:
            n = min(chunk_size, remaining)
            chunk = torch.logsumexp(log_weight_fn(n), dim=0)  # [B]
            running = chunk if running is None else torch.logaddexp(running, chunk)
            remaining -= n
            bar.update(n)
    return running - math.log(k)
