"""M2, the generative semi-supervised model of Kingma, Rezende, Mohamed & Welling (2014).

Generative model (Kingma et al. 2014, eq. 2):
    p(y) = Cat(y | pi) (uniform),   p(z) = N(z | 0, I),   p(x | y, z) = f(x; y, z, theta)
Inference model (eq. 4):
    q(z | x, y) = N(z | mu_phi(x, y), diag(sigma^2_phi(x, y))),   q(y | x) = Cat(y | pi_phi(x))

Labelled bound (eq. 6, the poster's L(x, y)):
    log p(x, y) >= E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] = -L(x, y)
Unlabelled bound (eq. 7):
    log p(x) >= sum_y q(y|x) (-L(x, y)) + H(q(y|x)) = -U(x)
Objective (eq. 9), summed over the data set, alpha = 0.1 * N:
    J^alpha = sum_l L(x, y) + sum_u U(x) + alpha * E_l[-log q(y|x)]
A step estimates J^alpha / N from one labelled and one unlabelled minibatch (``weighting="data-set"``,
the default). ``weighting="per-batch"`` is the weighting of Maaløe et al.'s (2016) code, which the
ADGM and SDGM use: mean_l L + mean_u U + alpha * mean_l [-log q(y|x)], alpha = 0.1 * N / N_l, which
makes the labelled part about N / N_l times heavier (`pogm.objectives.semi_supervised`).

The sum over y in eq. 7 is exact and vectorised: the one-hot y of every class enters the first
layer of q(z|x,y) and p(x|y,z) as a ``[K, 1, K]`` tensor, so one pass gives all ``[K, B]`` bounds.
Networks follow section 4.1: one hidden layer of 500 softplus units, 50 latent dimensions.

Convolutional M2 (``network="conv"``): Chen, Fang & Ju (2016, "When VAEs meet GANs") report M2
with fully connected and with convolutional networks in their semi-supervised table. With
``"conv"`` the networks that read x (q(y|x) and q(z|x,y)) start with stride-2 4x4 convolutions of
x (``conv_channels`` filters each, the model's activation), then one hidden layer of
``hidden[-1]`` units that y joins; p(x|y,z) is one hidden layer, a linear map to the smallest
feature map, then transposed convolutions back to the image, giving the likelihood's parameters
per pixel (`pogm.nn.x_networks`). The convolutions run once on x ``[B, C, H, W]``; their features
are shared by every enumerated class. The poster gives no sizes: ``conv_channels=(32, 64)`` is
ours, the DCGAN layout of pogm's other image models (28 -> 14 -> 7 on MNIST, 8 -> 4 -> 2 on the
8x8 digits), two layers because they already cover a 28x28 digit with 7x7 maps and keep a CPU
step cheap. ``"conv"`` needs images: flat data are a one-line error.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian, standard_normal_log_prob
from pogm.likelihoods import make_likelihood
from pogm.models.base import ImportanceWeighted, ImputesByReconstruction, Model, SemiSupervised, as_batch, flat_x_shape_fields, rows
from pogm.models.registry import register_model
from pogm.nn import GaussianHead, x_decoder, x_encoder
from pogm.objectives import (
    classification_loss,
    semi_supervised_loss,
    unlabelled_bound,
)


@dataclass(frozen=True)
class M2Config:
    x_dim: int = 784
    num_classes: int = 10
    z_dim: int = 50
    hidden: tuple[int, ...] = (500,)
    activation: str = "softplus"
    likelihood: str = "bernoulli"
    batch_norm: bool = False
    weighting: str = "data-set"  # J^alpha as Kingma et al. (2014) eq. 9 sums it; "per-batch" = Maaløe et al.'s (2016) code
    alpha: float | None = None  # the classifier's weight; None = the weighting's paper default (0.1 N / N_l or 0.1 N)
    num_labelled: int = 100  # N_l and N_u, the data set's sizes: filled in from the data by `data_fields`
    num_unlabelled: int = 50000
    network: str = "mlp"  # or "conv": convolutions on x (Chen, Fang & Ju 2016), for images only
    conv_channels: tuple[int, ...] = (32, 64)  # "conv": filters per stride-2 convolution (our sizes; see the module docstring)
    image_shape: tuple[int, ...] = (1, 28, 28)  # x's [C, H, W] for "conv", filled in from the data


@register_model("m2", paper="Kingma et al. 2014, Semi-supervised learning with deep generative models; Chen, Fang & Ju 2016", summary="Semi-supervised generative model M2")
class M2(SemiSupervised, ImportanceWeighted, ImputesByReconstruction, Model):
    """Semi-supervised generative model M2 with exact enumeration of unobserved labels."""

    Config = M2Config

    def __init__(self, config: M2Config) -> None:
        super().__init__(config)
        c = config
        K = c.num_classes
        self.p_x = make_likelihood(c.likelihood, c.x_dim)
        self.q_y_x = self.x_network([], K)
        self.q_z_xy = GaussianHead(self.x_network([K], 2 * c.z_dim))
        self.p_x_yz = x_decoder(c.network, [c.z_dim, K], c.x_dim, c.image_shape, self.p_x.num_params(c.x_dim), tuple(reversed(c.hidden)), c.conv_channels, c.activation, c.batch_norm)
        self.register_buffer("every_class", torch.eye(K).unsqueeze(1), persistent=False)  # [K, 1, K]
        self.log_p_y = -math.log(K)  # uniform prior p(y)

    def x_network(self, side_dims: list[int], out_dim: int) -> torch.nn.Module:
        """A network of (x, *side) -> ``out_dim``, fully connected or convolutional (``network``)."""
        c = self.config
        return x_encoder(c.network, c.x_dim, c.image_shape, side_dims, c.hidden, out_dim, c.conv_channels, c.activation, c.batch_norm)

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        """The semi-supervised fields and, for configs that have it, the images' ``image_shape``
        (M1+M2 borrows this method for a config without it)."""
        fields = SemiSupervised.data_fields.__func__(cls, x_dim, num_classes, num_train, num_labelled, train)
        if "image_shape" in {f.name for f in dataclasses.fields(cls.Config)}:
            fields.update(flat_x_shape_fields(x_dim, train))
        return fields

    def labelled_bound(self, x: Tensor, mask: Tensor, y_one_hot: Tensor, kl_weight: float = 1.0) -> Tensor:
        """-L(x, y) of eq. 6 with one sample of z; ``y_one_hot`` ``[B, K]`` or ``[K, 1, K]`` (all classes)."""
        q_z_xy = DiagonalGaussian(*self.q_z_xy(x, y_one_hot))  # [B, Z] or [K, B, Z]
        z = q_z_xy.rsample()
        log_p_x_yz = self.reconstruction_log_prob(self.p_x_yz(z, y_one_hot), x, mask, y_one_hot)  # [B] or [K, B]
        kl_z = q_z_xy.kl_standard_normal()
        return log_p_x_yz + self.log_p_y - kl_weight * kl_z

    def reconstruction_log_prob(self, params: Tensor, x: Tensor, mask: Tensor | None, y_one_hot: Tensor | None = None) -> Tensor:
        """The reconstruction term of the trained bound, ``[..., B]``: log p(x | y, z) of the pixel
        likelihood (M2 + GAN may score it on a discriminator's features instead)."""
        return self.p_x.log_prob(params, x, mask)

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, mask = self.flat_x(batch)  # [B, D]
        labelled, unlabelled, y_l = self.labelled_rows(batch, x.device)
        logits_y = self.q_y_x(x)  # [B, K]
        x_l, mask_l = x[labelled], rows(mask, labelled)
        x_u, mask_u = x[unlabelled], rows(mask, unlabelled)

        bound_l = self.labelled_bound(x_l, mask_l, self.one_hot(y_l), kl_weight)  # [B_l]
        bound_all_classes = self.labelled_bound(x_u, mask_u, self.every_class, kl_weight)  # [K, B_u]
        log_q_y_x = torch.log_softmax(logits_y[unlabelled], dim=-1)  # [B_u, K]
        bound_u = unlabelled_bound(log_q_y_x, bound_all_classes.T)  # [B_u]
        classification = classification_loss(logits_y[labelled], y_l)  # [B_l]
        return semi_supervised_loss(bound_l, bound_u, classification, self.objective_weights)

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x, y, z) - log q(y|x) q(z|x,y) for ``k`` samples of (y, z) from q: ``[k, B]``."""
        x, mask = self.flat_x(batch)
        logits_y = self.q_y_x(x)  # [B, K]
        y = torch.distributions.Categorical(logits=logits_y).sample((k,))  # [k, B]
        log_q_y_x = torch.log_softmax(logits_y, -1).gather(-1, y.T).T  # [k, B]
        y_one_hot = self.one_hot(y)  # [k, B, K]
        q_z_xy = DiagonalGaussian(*self.q_z_xy(x, y_one_hot))  # [k, B, Z]
        z = q_z_xy.rsample()
        log_p_x_yz = self.p_x.log_prob(self.p_x_yz(z, y_one_hot), x, mask)  # [k, B]
        return log_p_x_yz + self.log_p_y + standard_normal_log_prob(z) - q_z_xy.log_prob(z) - log_q_y_x

    @torch.no_grad()
    def classify(self, x: Tensor | Batch) -> Tensor:
        """Logits of q(y|x), ``[B, K]``."""
        x_flat, _ = self.flat_x(as_batch(x))
        return self.q_y_x(x_flat)

    @torch.no_grad()
    def encode(self, batch: Tensor | Batch) -> Tensor:
        """Mean of q(z|x, y) with y the most probable class under q(y|x)."""
        x, _ = self.flat_x(as_batch(batch))
        y = self.one_hot(self.q_y_x(x).argmax(-1))
        return self.q_z_xy(x, y)[0]

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """Mean images of p(x|y,z), z ~ p(z); y ~ p(y) unless given (an int or ``[n]`` labels)."""
        if y is None:
            y = torch.randint(self.config.num_classes, (n,), device=self.device)
        elif isinstance(y, int):
            y = torch.full((n,), y, dtype=torch.long, device=self.device)
        z = torch.randn(n, self.config.z_dim, device=self.device)
        return self.p_x.mean(self.p_x_yz(z, self.one_hot(y.to(self.device))))

    @torch.no_grad()
    def reconstruct(self, batch: Tensor | Batch) -> Tensor:
        batch = as_batch(batch)
        x, _ = self.flat_x(batch)
        y = self.one_hot(self.q_y_x(x).argmax(-1))
        z = self.q_z_xy(x, y)[0]
        return self.p_x.mean(self.p_x_yz(z, y)).reshape(batch.x[self.group].shape)

