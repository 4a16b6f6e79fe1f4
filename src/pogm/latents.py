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

    def sample(self, n: int) -> Tensor:
        """``[n, ..., D]`` draws without a path for gradients (as `GaussianMixture.sample`)."""
        return self.rsample(n).detach()

    def log_prob(self, z: Tensor) -> Tensor:
        return (-0.5 * (LOG_2PI + self.log_var + (z - self.mean) ** 2 * torch.exp(-self.log_var))).sum(-1)

    def entropy(self) -> Tensor:
        return (0.5 * (LOG_2PI + 1.0 + self.log_var)).sum(-1)

    def kl_standard_normal(self) -> Tensor:
        """KL(q || N(0, I)) in closed form (Kingma & Welling 2013, appendix B)."""
        return 0.5 * (self.mean**2 + torch.exp(self.log_var) - 1.0 - self.log_var).sum(-1)

    def kl(self, other: DiagonalGaussian) -> Tensor:
        """KL(self || other) between diagonal Gaussians, in closed form."""
        var_ratio = torch.exp(self.log_var - other.log_var)
        mahalanobis = (self.mean - other.mean) ** 2 * torch.exp(-other.log_var)
        return 0.5 * (var_ratio + mahalanobis - 1.0 - self.log_var + other.log_var).sum(-1)


def standard_normal_log_prob(z: Tensor) -> Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return (-0.5 * (LOG_2PI + z**2)).sum(-1)


def product_of_experts(means: Tensor, precisions: Tensor, observed: Tensor) -> DiagonalGaussian:
    """The product of the prior N(0, I) and the Gaussian experts of the observed groups, in
    closed form (Ainsworth et al. 2018, footnote 2):

        Lambda = I + sum_{g in O} Lambda_g,      mu = Lambda^{-1} sum_{g in O} Lambda_g mu_g.

    Args:
        means: ``[..., G, K]`` expert means mu_g.
        precisions: ``[..., G, K]`` non-negative diagonal precisions Lambda_g (a zero precision is an
            expert with no opinion on that dimension).
        observed: bool ``[..., G]``; experts of unobserved groups are left out exactly (whatever
            values they hold), so a row may use any subset of the groups.

    Returns the posterior ``[..., K]``. Each expert only adds precision, so the entropy never grows
    when a group is added.
    """
    keep = observed.unsqueeze(-1)  # [..., G, 1]
    zero = torch.zeros((), dtype=precisions.dtype, device=precisions.device)
    precisions = torch.where(keep, precisions, zero)  # [..., G, K]
    weighted_means = torch.where(keep, precisions * means, zero)  # [..., G, K]
    precision = 1.0 + precisions.sum(-2)  # [..., K]
    return DiagonalGaussian(mean=weighted_means.sum(-2) / precision, log_var=-torch.log(precision))


@dataclass
class GaussianMixture:
    """A mixture of diagonal Gaussians ``sum_g w_g N(mean_g, diag(exp(log_var_g)))``, components
    on dim -2, with log-weights (``-inf`` for an absent component). JMVAE+'s q(z | x)."""

    components: DiagonalGaussian  # mean, log_var: [..., G, K]
    log_weights: Tensor  # [..., G]

    @classmethod
    def uniform(cls, components: DiagonalGaussian, present: Tensor) -> GaussianMixture:
        """Equal weights over the ``present`` components (bool ``[..., G]``, at least one per row)."""
        count = present.sum(-1, keepdim=True).clamp(min=1)  # [..., 1]; a row with nothing present gets no weight at all
        log_count = torch.log(count.to(components.mean.dtype))
        minus_inf = torch.full((), -math.inf, dtype=components.mean.dtype, device=components.mean.device)
        return cls(components, torch.where(present, -log_count, minus_inf))

    def log_prob(self, z: Tensor) -> Tensor:
        """log q(z) by log-sum-exp over components; ``z`` is ``[..., K]`` (extra leading dims allowed)."""
        per_component = self.components.log_prob(z.unsqueeze(-2))  # [..., G]
        return torch.logsumexp(per_component + self.log_weights, dim=-1)

    def sample(self, n: int) -> Tensor:
        """``[n, ..., K]`` samples: a component by its weight, then a Gaussian draw from it (not
        reparameterised in the choice of component; used for evaluation)."""
        index = torch.distributions.Categorical(logits=self.log_weights).sample((n,))  # [n, ...]
        draws = self.components.rsample(n)  # [n, ..., G, K]
        return torch.gather(draws, -2, index[..., None, None].expand(*index.shape, 1, draws.shape[-1])).squeeze(-2)

    def entropy_estimate(self, n: int = 1000) -> Tensor:
        """Monte Carlo estimate of the entropy (there is no closed form)."""
        return -self.log_prob(self.sample(n)).mean(0)
