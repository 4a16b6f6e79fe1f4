"""The auxiliary variational auto-encoder (Maaløe, Sønderby, Sønderby & Winther, ICML 2016;
Fig. 3 and Table 2), unsupervised, with one or two stochastic layers.

One stochastic layer (Fig. 3A-B):
    generative  p(z) p(x | z) p(a | z, x),   p(z) = N(0, I)
    inference   q(a | x) q(z | a, x)
    log p(x) >= E_q(a,z|x)[log p(a|z,x) p(x|z) p(z) - log q(a|x) q(z|a,x)] = -U_AVAE(x)   (poster)
The marginal p(x, z) is unchanged by a (p(a|z,x) integrates to one); a only makes the marginal
q(z|x) = int q(a|x) q(z|a,x) da richer than a Gaussian.

Two stochastic layers (Fig. 3C-D; ``z2_dim > 0``). The poster shows the graph only; we choose:
    generative  p(z2) p(z1 | z2) p(x | z1) p(a | z1, x)
    inference   q(a | x) q(z1 | a, x) q(z2 | z1)
so that a enriches the bottom layer, where the posterior is most complex, and the top layer is an
ordinary bottom-up Gaussian layer.

Terms in closed form: H(q(a|x)), KL(q(z|a,x) || N(0, I)) for one layer, KL(q(z2|z1) || N(0, I)) and
H(q(z1|a,x)) for two; log p(a|.) and log p(z1|z2) at the samples. KL warm-up (Sønderby et al. 2016,
as the paper trains Table 2) weights every latent term: the bound is log p(x|z) + w * (rest).
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
from pogm.nn import MLP, GaussianHead, MultiInputMLP


@dataclass(frozen=True)
class AuxiliaryVAEConfig:
    x_dim: int = 784
    a_dim: int = 100
    z_dim: int = 64  # z1 with two stochastic layers
    z2_dim: int = 0  # 0: one stochastic layer; > 0: a second layer z2 above z1
    hidden: tuple[int, ...] = (500, 500)
    top_hidden: tuple[int, ...] = (256, 256)  # networks between z1 and z2
    activation: str = "relu"
    likelihood: str = "bernoulli"
    batch_norm: bool = False


@register_model("avae", paper="Maaløe et al. 2016, Auxiliary deep generative models", summary="Auxiliary variational auto-encoder (unsupervised, 1 or 2 stochastic layers)")
class AuxiliaryVAE(ImportanceWeighted, ImputesByReconstruction, Model):
    """Auxiliary VAE: q(a|x) q(z|a,x) [q(z2|z1)], p(a|z,x) p(x|z) p(z) [p(z1|z2) p(z2)]."""

    Config = AuxiliaryVAEConfig

    def __init__(self, config: AuxiliaryVAEConfig) -> None:
        super().__init__(config)
        c = config
        D, A, Z = c.x_dim, c.a_dim, c.z_dim
        up, down = c.hidden, tuple(reversed(c.hidden))
        self.p_x = make_likelihood(c.likelihood, D)
        self.q_a_x = GaussianHead(MLP(D, up, 2 * A, c.activation, c.batch_norm))
        self.q_z_ax = GaussianHead(MultiInputMLP([D, A], up, 2 * Z, c.activation, c.batch_norm))
        self.p_a_zx = GaussianHead(MultiInputMLP([Z, D], down, 2 * A, c.activation, c.batch_norm))
        self.p_x_z = MLP(Z, down, self.p_x.num_params(D), c.activation, c.batch_norm)
        if c.z2_dim:
            self.q_z2_z1 = GaussianHead(MLP(Z, c.top_hidden, 2 * c.z2_dim, c.activation, c.batch_norm))
            self.p_z1_z2 = GaussianHead(MLP(c.z2_dim, tuple(reversed(c.top_hidden)), 2 * Z, c.activation, c.batch_norm))

    def _latents(self, x: Tensor, n: int | None) -> tuple[DiagonalGaussian, Tensor, DiagonalGaussian, Tensor]:
        """q(a|x), a, q(z|a,x), z with ``n`` samples (None: one, no sample dim)."""
        q_a_x = DiagonalGaussian(*self.q_a_x(x))  # [B, A]
        a = q_a_x.rsample(n)  # [B, A] or [n, B, A]
        q_z_ax = DiagonalGaussian(*self.q_z_ax(x, a))
        return q_a_x, a, q_z_ax, q_z_ax.rsample()

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, mask = self.flat_x(batch)  # [B, D]
        q_a_x, a, q_z_ax, z = self._latents(x, None)
        log_p_x_z = self.p_x.log_prob(self.p_x_z(z), x, mask)  # [B]
        log_p_a_zx = DiagonalGaussian(*self.p_a_zx(z, x)).log_prob(a)  # [B]
        latent = log_p_a_zx + q_a_x.entropy()
        if self.config.z2_dim:
            q_z2_z1 = DiagonalGaussian(*self.q_z2_z1(z))
            z2 = q_z2_z1.rsample()
            latent = latent + DiagonalGaussian(*self.p_z1_z2(z2)).log_prob(z) + q_z_ax.entropy() - q_z2_z1.kl_standard_normal()
        else:
            latent = latent - q_z_ax.kl_standard_normal()
        bound = log_p_x_z + kl_weight * latent
        return {
            "loss": -bound.mean(),
            "elbo": (log_p_x_z + latent).mean().detach(),
            "log_p_x_z": log_p_x_z.mean().detach(),
        }

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x, a, z) - log q(a, z | x) for ``k`` samples: ``[k, B]``."""
        x, mask = self.flat_x(batch)
        q_a_x, a, q_z_ax, z = self._latents(x, k)  # a, z: [k, B, .]
        log_p = self.p_x.log_prob(self.p_x_z(z), x, mask) + DiagonalGaussian(*self.p_a_zx(z, x)).log_prob(a)
        log_q = q_a_x.log_prob(a) + q_z_ax.log_prob(z)
        if self.config.z2_dim:
            q_z2_z1 = DiagonalGaussian(*self.q_z2_z1(z))
            z2 = q_z2_z1.rsample()
            log_p = log_p + DiagonalGaussian(*self.p_z1_z2(z2)).log_prob(z) + standard_normal_log_prob(z2)
            log_q = log_q + q_z2_z1.log_prob(z2)
        else:
            log_p = log_p + standard_normal_log_prob(z)
        return log_p - log_q

    @torch.no_grad()
    def encode(self, batch: Tensor | Batch) -> Tensor:
        """Mean of q(z|a,x) at the mean of q(a|x)."""
        x, _ = self.flat_x(as_batch(batch))
        return self.q_z_ax(x, self.q_a_x(x)[0])[0]

    @torch.no_grad()
    def encode_auxiliary(self, batch: Tensor | Batch) -> Tensor:
        x, _ = self.flat_x(as_batch(batch))
        return self.q_a_x(x)[0]

    @torch.no_grad()
    def reconstruct(self, batch: Tensor | Batch) -> Tensor:
        batch = as_batch(batch)
        return self.p_x.mean(self.p_x_z(self.encode(batch))).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """Mean images of p(x|z) with z ~ p(z) (z1 ~ p(z1|z2), z2 ~ p(z2) with two layers)."""
        if self.config.z2_dim:
            z2 = torch.randn(n, self.config.z2_dim, device=self.device)
            z = DiagonalGaussian(*self.p_z1_z2(z2)).rsample()
        else:
            z = torch.randn(n, self.config.z_dim, device=self.device)
        return self.p_x.mean(self.p_x_z(z))
