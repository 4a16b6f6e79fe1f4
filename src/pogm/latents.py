"""Latent distributions: diagonal Gaussians with reparameterised samples and analytic KL.

Variances are carried as unconstrained log-variances; nothing is clamped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class DiagonalGaussian:
    """N(mean, diag(exp(log_var))) over the last dimension; leading dims are batch dims."""

    mean: Tensor
    log_var: Tensor

    def rsample(self, n: int | None = None) -> Tensor:
        """Reparameterised sample ``mean + sigma * eps``: ``[..., D]``, or ``[n, ..., D]`` if ``n``."""
        shape = self.mean.shape if n is None else (n, *self.mean.shape)
        eps = torch.randn(shape, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + torch.exp(0.5 * self.log_var) * eps

    def log_prob(self, z: Tensor) -> Tensor:
        return (-0.5 * (LOG_2PI + self.log_var + (z - self.mean) ** 2 * torch.exp(-self.log_var))).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 * (LOG_2PI + 1.0 + self.log_var)).sum(-1)

    def kl_standard_normal(self) -> Tensor:
        """KL(q || N(0, I)) in closed form (Kingma & Welling 2013, appendix B)."""
        return 0.5 * (self.mean**2 + torch.exp(self.log_var) - 1.0 - self.log_var).sum(-1)

    def kl(self, other: "DiagonalGaussian") -> Tensor:
        """KL(self || other) between diagonal Gaussians, in closed form."""
        var_ratio = torch.exp(self.log_var - other.log_var)
        mahalanobis = (self.mean - other.mean) ** 2 * torch.exp(-other.log_var)
        return 0.5 * (var_ratio + mahalanobis - 1.0 - self.log_var + other.log_var).sum(-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return (-0.5 * (LOG_2PI + z**2)).sum(-1)
