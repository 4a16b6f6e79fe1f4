"""M1+M2, the stacked semi-supervised model of Kingma et al. (2014), section 3.1.3.

M1 (a VAE, see ``vae.py``) is trained first on all images, without labels:
    p(z1) = N(0, I),  p(x | z1) Bernoulli,  q(z1 | x) = N(mu(x), diag sigma^2(x)).
M2 (see ``m2.py``) is then trained on the M1 features z1 in place of x, with a Gaussian
likelihood p(z1 | y, z2) (one learned log-variance per dimension):
    p(y) p(z2) p(z1 | y, z2) p(x | z1),   inference q(z1 | x) q(y | z1) q(z2 | z1, y).
The features are resampled from q(z1 | x) at every minibatch, as Kingma et al. do, and M1 is frozen
once M2 starts. The switch happens at optimizer step ``m1_steps``; a single optimizer serves both
phases (the frozen part receives no gradient, so Adam leaves it alone).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.models.base import ImportanceWeighted, ImputesByReconstruction, Model, as_batch
from pogm.models.semi_supervised.m2 import M2, M2Config
from pogm.models.registry import register_model
from pogm.models.semi_supervised.vae import VAE, VAEConfig


@dataclass(frozen=True)
class M1M2Config:
    x_dim: int = 784
    num_classes: int = 10
    m1_z_dim: int = 50
    m1_hidden: tuple[int, ...] = (600, 600)
    m1_likelihood: str = "bernoulli"
    m1_steps: int = 20000
    z_dim: int = 50
    hidden: tuple[int, ...] = (500,)
    activation: str = "softplus"
    m2_likelihood: str = "gaussian-learned"
    batch_norm: bool = False  # batch normalisation in M2's networks (M1 is plain, as in Kingma et al.)
    alpha: float = 50.0


@register_model("m1m2", paper="Kingma et al. 2014, Semi-supervised learning with deep generative models", summary="Stacked M1+M2: M2 on the latent features of a pretrained VAE")
class M1M2(ImportanceWeighted, ImputesByReconstruction, Model):
    """Stacked M1+M2: M2 on the latent features of a pretrained VAE."""

    def sampled_classes(self) -> int:
        return self.config.num_classes


    Config = M1M2Config
    uses_labels = True
    likelihood_field = "m1_likelihood"  # p(x | z1); m2_likelihood is over the latent features z1

    def __init__(self, config: M1M2Config) -> None:
        super().__init__(config)
        c = config
        self.m1 = VAE(VAEConfig(x_dim=c.x_dim, z_dim=c.m1_z_dim, hidden=c.m1_hidden, activation=c.activation, likelihood=c.m1_likelihood))
        self.m2 = M2(M2Config(x_dim=c.m1_z_dim, num_classes=c.num_classes, z_dim=c.z_dim, hidden=c.hidden, activation=c.activation, likelihood=c.m2_likelihood, batch_norm=c.batch_norm, alpha=c.alpha))

    data_fields = classmethod(M2.data_fields.__func__)

    def features(self, batch: Batch, sample: bool = True) -> Batch:
        """M1 features z1 ~ q(z1|x) (or its mean), as a Batch for M2 with the labels carried over."""
        x, _ = self.flat_x(batch)
        with torch.no_grad():
            q_z1_x = self.m1.posterior(x)
            z1 = q_z1_x.rsample() if sample else q_z1_x.mean  # [B, Z1]
        return Batch(x={"x": z1}, y=batch.y, y_mask=batch.y_mask)

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        if step < self.config.m1_steps:
            terms = self.m1.loss(batch, kl_weight)
            return {"loss": terms["loss"], "m1_elbo": terms["elbo"]}
        return self.m2.loss(self.features(batch), kl_weight)

    @torch.no_grad()
    def classify(self, x: Tensor | Batch) -> Tensor:
        return self.m2.classify(self.features(as_batch(x), sample=False))

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x|z1) p(z1, y, z2) - log q(z1|x) q(y, z2|z1): the M2 weight of a sampled z1 (``[k, B]``)."""
        x, mask = self.flat_x(batch)
        q_z1_x = self.m1.posterior(x)
        z1 = q_z1_x.rsample(k)  # [k, B, Z1]
        log_p_x_z1 = self.m1.p_x.log_prob(self.m1.p_x_z(z1), x, mask)  # [k, B]
        flat = Batch(x={"x": z1.reshape(-1, z1.shape[-1])})
        log_w_m2 = self.m2.log_weights(flat, 1).reshape(k, -1)  # [k, B]: log p(z1,y,z2) - log q(y,z2|z1)
        return log_p_x_z1 + log_w_m2 - q_z1_x.log_prob(z1)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        z1 = self.m2.sample(n, y)  # mean of p(z1|y,z2)
        return self.m1.p_x.mean(self.m1.p_x_z(z1))

    @torch.no_grad()
    def reconstruct(self, batch: Tensor | Batch) -> Tensor:
        batch = as_batch(batch)
        z1 = self.m2.reconstruct(self.features(batch, sample=False))  # [B, Z1]
        return self.m1.p_x.mean(self.m1.p_x_z(z1)).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def encode(self, batch: Tensor | Batch) -> Tensor:
        return self.m2.encode(self.features(as_batch(batch), sample=False))
