"""Variational auto-encoder (Kingma & Welling 2013; "M1" of Kingma et al. 2014).

Generative model:   p(z) = N(0, I),   p(x | z) = f(x; z, theta)   (Bernoulli logits or Gaussian)
Inference model:    q(z | x) = N(mu_phi(x), diag(sigma^2_phi(x)))

Objective (Chen, Fang & Ju 2016, "VAE"):  log p(x) >= E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z)),
with the KL in closed form and one reparameterised sample of z. Only observed entries of x
enter log p(x|z) (the likelihood's mask), so the model trains on data with missing pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian, standard_normal_log_prob
from pogm.likelihoods import make_likelihood
from pogm.models.base import ImportanceWeighted, ImputesByReconstruction, Model, as_batch
from pogm.models.registry import register_model
from pogm.nn import MLP, GaussianHead
from pogm.objectives import elbo


@dataclass(frozen=True)
class VAEConfig:
    x_dim: int = 784
    z_dim: int = 50
    hidden: tuple[int, ...] = (600, 600)  # Kingma et al. 2014, sec. 4.1 (M1)
    activation: str = "softplus"
    likelihood: str = "bernoulli"
    batch_norm: bool = False


@register_model("vae", paper="Kingma & Welling 2013; Kingma et al. 2014 (M1); Chen, Fang & Ju 2016", summary="Variational auto-encoder (M1)")
class VAE(ImportanceWeighted, ImputesByReconstruction, Model):
    """Variational auto-encoder (M1)."""

    Config = VAEConfig

    def __init__(self, config: VAEConfig) -> None:
        super().__init__(config)
        c = config
        self.p_x = make_likelihood(c.likelihood, c.x_dim)
        self.q_z_x = GaussianHead(MLP(c.x_dim, c.hidden, 2 * c.z_dim, c.activation, c.batch_norm))
        self.p_x_z = MLP(c.z_dim, tuple(reversed(c.hidden)), self.p_x.num_params(c.x_dim), c.activation, c.batch_norm)

    def posterior(self, x: Tensor) -> DiagonalGaussian:
        return DiagonalGaussian(*self.q_z_x(x))

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, mask = self.flat_x(batch)  # [B, D]
        q_z = self.posterior(x)
        z = q_z.rsample()  # [B, Z]
        log_p_x_z = self.p_x.log_prob(self.p_x_z(z), x, mask)  # [B]
        kl = q_z.kl_standard_normal()  # [B]
        bound = elbo(log_p_x_z, kl, kl_weight)
        return {"loss": -bound.mean(), "elbo": elbo(log_p_x_z, kl).mean().detach(), "kl": kl.mean().detach()}

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x, z_k) - log q(z_k | x) for ``k`` samples: ``[k, B]``."""
        x, mask = self.flat_x(batch)
        q_z = self.posterior(x)
        z = q_z.rsample(k)  # [k, B, Z]
        log_p_x_z = self.p_x.log_prob(self.p_x_z(z), x, mask)  # [k, B]
        return log_p_x_z + standard_normal_log_prob(z) - q_z.log_prob(z)

    @torch.no_grad()
    def encode(self, batch: Batch | Tensor) -> Tensor:
        x, _ = self.flat_x(as_batch(batch))
        return self.posterior(x).mean

    @torch.no_grad()
    def reconstruct(self, batch: Batch | Tensor) -> Tensor:
        batch = as_batch(batch)
        x, _ = self.flat_x(batch)
        mean = self.p_x.mean(self.p_x_z(self.posterior(x).mean))
        return mean.reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def decode(self, z: Tensor) -> Tensor:
        """The mean of p(x | z): ``[..., Z] -> [..., D]`` (flat images)."""
        return self.p_x.mean(self.p_x_z(z))

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        return self.decode(torch.randn(n, self.config.z_dim, device=self.device))  # [n, D]
