"""ADGM and SDGM: the auxiliary and skip deep generative models of Maaløe, Sønderby, Sønderby &
Winther (ICML 2016), for semi-supervised classification.

ADGM (poster Fig. 4), y one-hot over K classes, a and z diagonal Gaussians:
    generative  p(y) p(z) p(x | y, z) p(a | x, y, z),   p(y) = Cat(1/K),  p(z) = N(0, I)
    inference   q(a | x) q(y | a, x) q(z | a, y, x)
SDGM (the skip connection of the poster and paper): the auxiliary variable becomes a second stochastic layer
of the generative model,
    generative  p(y) p(z) p(a | y, z) p(x | a, y, z),   inference as in the ADGM.

Labelled bound (poster, "lower bound for the labeled data"):
    log p(x, y) >= E_q(a,z|x,y)[log p(x, y, a, z) - log q(a|x) q(z|a,y,x)] = -L(x, y)
    L_l(x, y) = L(x, y) + alpha * E_q(a|x)[-log q(y | a, x)]
Unlabelled bound, y summed out exactly inside the expectation over a:
    -U(x) = E_q(a|x)[ sum_y q(y|a,x) (log p(x, y, a, z) - log q(z|a,y,x)) + H(q(y|a,x)) ] + H(q(a|x))
Objective J = sum_l L_l + sum_u U. By default (``weighting="per-batch"``, as the authors' published
training code weighs it) a step takes per-example means of one labelled and one unlabelled
minibatch, weighted equally, with alpha = 0.1 * N / N_l; ``weighting="data-set"`` weighs the terms
as Kingma et al.'s (2014) eq. 9 sums them over the data set (`pogm.objectives.semi_supervised`).

Choices where the poster and paper are silent, each tested in tests/test_auxiliary.py:
- ``a_samples`` samples of a are drawn once per example and shared by every enumerated class, by
  q(z|a,y,x), p(a|...) and by the classifier term (the sum over y sits inside E_q(a|x)). The public
  Theano code averages q(y|a,x) over the samples of a before the sum; the per-sample form used here
  is the bound as written and stays a valid lower bound for any number of samples.
- KL(q(z|a,y,x) || p(z)) and H(q(a|x)) are in closed form; log p(a|...) is evaluated at the sampled a.
  With KL warm-up the weight multiplies all latent terms: log p(a|.) + log p(z) - log q(a|x) - log q(z|.).
- At test time q(y|x) = E_q(a|x)[q(y|a,x)] is averaged over ``classify_a_samples`` samples of a
  (the public code uses 100 for its reported error); 0 uses the mean of q(a|x) instead.
- Every network has the hidden layers ``hidden`` (500, 500 in the paper) with ReLU; several inputs
  enter the first layer as a sum of linear maps (one pass gives all K classes).
- ``network="conv"`` (for images; ours, as the convolutional M2 of Chen, Fang & Ju (2016) that
  `pogm.models.semi_supervised.m2` describes): every network that reads x (q(a|x), q(y|a,x),
  q(z|a,y,x) and the ADGM's p(a|x,y,z)) starts with stride-2 convolutions of x (``conv_channels``
  filters each) followed by one hidden layer of ``hidden[-1]`` units that a, y and z join; p(x|.)
  is one hidden layer then transposed convolutions to the image (`pogm.nn.x_networks`). The
  convolutions run once on x ``[B, C, H, W]``, shared by every sample of a and every class.
  Maaløe et al. use fully connected networks only; ``conv_channels=(32, 64)`` is our size.
"""

from __future__ import annotations

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
from pogm.nn import GaussianHead, MultiInputMLP, x_decoder, x_encoder
from pogm.objectives import (
    classification_loss,
    semi_supervised_loss,
    unlabelled_bound,
)


@dataclass(frozen=True)
class ADGMConfig:
    x_dim: int = 784
    num_classes: int = 10
    a_dim: int = 100
    z_dim: int = 100
    hidden: tuple[int, ...] = (500, 500)
    activation: str = "relu"
    likelihood: str = "bernoulli"
    batch_norm: bool = False
    weighting: str = "per-batch"  # J^alpha's weighting: "per-batch" (Maaløe et al. 2016) or "data-set" (Kingma et al. 2014, eq. 9)
    alpha: float | None = None  # the classifier's weight; None = the weighting's paper default (0.1 N / N_l or 0.1 N)
    num_labelled: int = 100  # N_l and N_u, the data set's sizes: filled in from the data by `data_fields`
    num_unlabelled: int = 50000
    a_samples: int = 1  # samples of a per example in training (the MNIST recipe uses 5)
    classify_a_samples: int = 10  # samples of a averaged in q(y|x) at test time; 0 = mean of q(a|x)
    network: str = "mlp"  # or "conv": convolutions on x wherever a network reads it, for images only
    conv_channels: tuple[int, ...] = (32, 64)  # "conv": filters per stride-2 convolution (our sizes)
    image_shape: tuple[int, ...] = (1, 28, 28)  # x's [C, H, W] for "conv", filled in from the data


@register_model("adgm", paper="Maaløe et al. 2016, Auxiliary deep generative models", summary="Auxiliary deep generative model (semi-supervised)")
class ADGM(SemiSupervised, ImportanceWeighted, ImputesByReconstruction, Model):
    """Auxiliary deep generative model: q(a|x) q(y|a,x) q(z|a,y,x), p(x|y,z) p(a|x,y,z)."""

    Config = ADGMConfig
    skip = False  # SDGM: p(x|a,y,z) and p(a|y,z)

    def __init__(self, config: ADGMConfig) -> None:
        super().__init__(config)
        c = config
        if c.a_samples < 1 or c.classify_a_samples < 0:
            raise ValueError(f"a_samples must be >= 1 and classify_a_samples >= 0; got {c.a_samples}, {c.classify_a_samples}")
        K, A, Z, D = c.num_classes, c.a_dim, c.z_dim, c.x_dim
        up, down = c.hidden, tuple(reversed(c.hidden))
        self.p_x = make_likelihood(c.likelihood, D)
        self.q_a_x = GaussianHead(self.x_network([], up, 2 * A))
        self.q_y_ax = self.x_network([A], up, K)
        self.q_z_axy = GaussianHead(self.x_network([A, K], up, 2 * Z))
        if self.skip:
            self.p_a_yz = GaussianHead(MultiInputMLP([Z, K], down, 2 * A, c.activation, c.batch_norm))
            self.p_x_ayz = self.x_decoder([Z, K, A], down)
        else:
            if c.network == "mlp":  # x enters last, as before the setting
                p_a_xyz = MultiInputMLP([Z, K, D], down, 2 * A, c.activation, c.batch_norm)
            else:  # a convolutional network takes the image first (`p_a`)
                p_a_xyz = self.x_network([Z, K], down, 2 * A)
            self.p_a_xyz = GaussianHead(p_a_xyz)
            self.p_x_yz = self.x_decoder([Z, K], down)
        self.register_buffer("every_class", torch.eye(K).reshape(K, 1, 1, K), persistent=False)  # [K, 1, 1, K]
        self.log_p_y = -math.log(K)  # uniform prior p(y)

    def x_network(self, side_dims: list[int], hidden: tuple[int, ...], out_dim: int) -> torch.nn.Module:
        """A network of (x, *side) -> ``out_dim``, fully connected or convolutional (``network``)."""
        c = self.config
        return x_encoder(c.network, c.x_dim, c.image_shape, side_dims, hidden, out_dim, c.conv_channels, c.activation, c.batch_norm)

    def x_decoder(self, in_dims: list[int], hidden: tuple[int, ...]) -> torch.nn.Module:
        """The parameters of p(x | inputs), fully connected or transposed convolutions (``network``)."""
        c = self.config
        return x_decoder(c.network, in_dims, c.x_dim, c.image_shape, self.p_x.num_params(c.x_dim), hidden, c.conv_channels, c.activation, c.batch_norm)

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        """The semi-supervised fields and the images' ``image_shape`` (for ``network="conv"``)."""
        return {**super().data_fields(x_dim, num_classes, num_train, num_labelled, train), **flat_x_shape_fields(x_dim, train)}

    # ------------------------------------------------------------------ the two generative variants
    def p_a(self, x: Tensor, y_one_hot: Tensor, z: Tensor) -> DiagonalGaussian:
        """p(a | x, y, z) (ADGM) or p(a | y, z) (SDGM)."""
        if self.skip:
            return DiagonalGaussian(*self.p_a_yz(z, y_one_hot))
        if self.config.network == "conv":  # the image comes first in a convolutional network
            return DiagonalGaussian(*self.p_a_xyz(x, z, y_one_hot))
        return DiagonalGaussian(*self.p_a_xyz(z, y_one_hot, x))

    def p_x_params(self, a: Tensor, y_one_hot: Tensor, z: Tensor) -> Tensor:
        """Parameters of p(x | y, z) (ADGM) or p(x | a, y, z) (SDGM)."""
        if self.skip:
            return self.p_x_ayz(z, y_one_hot, a)
        return self.p_x_yz(z, y_one_hot)

    # ------------------------------------------------------------------ bounds
    def bound_given_a(self, x: Tensor, mask: Tensor | None, a: Tensor, y_one_hot: Tensor, kl_weight: float = 1.0) -> Tensor:
        """log p(x|.) + log p(y) + w [log p(a|.) - KL(q(z|a,y,x) || p(z))] at given samples of a.

        ``x`` ``[B, D]``, ``a`` ``[S, B, A]``, ``y_one_hot`` ``[B, K]`` or ``[K, 1, 1, K]``
        (every class); returns ``[S, B]`` or ``[K, S, B]``. One sample of z per (a, y).
        The term -log q(a|x) is added by the caller as the entropy H(q(a|x)).
        """
        q_z_axy = DiagonalGaussian(*self.q_z_axy(x, a, y_one_hot))  # [S, B, Z] or [K, S, B, Z]
        z = q_z_axy.rsample()
        log_p_x = self.p_x.log_prob(self.p_x_params(a, y_one_hot, z), x, mask)  # [S, B] or [K, S, B]
        log_p_a = self.p_a(x, y_one_hot, z).log_prob(a)
        return log_p_x + self.log_p_y + kl_weight * (log_p_a - q_z_axy.kl_standard_normal())

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, mask = self.flat_x(batch)  # [B, D]
        labelled, unlabelled, y_l = self.labelled_rows(batch, x.device)
        S = self.config.a_samples
        q_a_x = DiagonalGaussian(*self.q_a_x(x))  # [B, A]
        a = q_a_x.rsample(S)  # [S, B, A], drawn once and shared by the classifier and every class
        entropy_a = q_a_x.entropy()  # [B]
        logits_y = self.q_y_ax(x, a)  # [S, B, K]

        x_l, mask_l, a_l = x[labelled], rows(mask, labelled), a[:, labelled]
        bound_l = self.bound_given_a(x_l, mask_l, a_l, self.one_hot(y_l), kl_weight).mean(0) + kl_weight * entropy_a[labelled]  # [B_l]
        # alpha * E_q(a|x)[-log q(y|a,x)] with the same samples of a
        classification = classification_loss(logits_y[:, labelled].reshape(-1, logits_y.shape[-1]), y_l.repeat(S)).reshape(S, -1).mean(0)  # [B_l]

        x_u, mask_u, a_u = x[unlabelled], rows(mask, unlabelled), a[:, unlabelled]
        bound_all_classes = self.bound_given_a(x_u, mask_u, a_u, self.every_class, kl_weight)  # [K, S, B_u]
        log_q_y_ax = torch.log_softmax(logits_y[:, unlabelled], dim=-1)  # [S, B_u, K]
        bound_u = unlabelled_bound(log_q_y_ax, bound_all_classes.permute(1, 2, 0)).mean(0) + kl_weight * entropy_a[unlabelled]  # [B_u]
        return semi_supervised_loss(bound_l, bound_u, classification, self.objective_weights)

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x, y, a, z) - log q(a|x) q(y|a,x) q(z|a,y,x) for ``k`` samples from q: ``[k, B]``."""
        x, mask = self.flat_x(batch)
        q_a_x = DiagonalGaussian(*self.q_a_x(x))
        a = q_a_x.rsample(k)  # [k, B, A]
        logits_y = self.q_y_ax(x, a)  # [k, B, K]
        y = torch.distributions.Categorical(logits=logits_y).sample()  # [k, B]
        log_q_y_ax = torch.log_softmax(logits_y, -1).gather(-1, y.unsqueeze(-1)).squeeze(-1)  # [k, B]
        y_one_hot = self.one_hot(y)  # [k, B, K]
        q_z_axy = DiagonalGaussian(*self.q_z_axy(x, a, y_one_hot))  # [k, B, Z]
        z = q_z_axy.rsample()
        log_p_x = self.p_x.log_prob(self.p_x_params(a, y_one_hot, z), x, mask)  # [k, B]
        log_p = log_p_x + self.log_p_y + standard_normal_log_prob(z) + self.p_a(x, y_one_hot, z).log_prob(a)
        log_q = q_a_x.log_prob(a) + log_q_y_ax + q_z_axy.log_prob(z)
        return log_p - log_q

    # ------------------------------------------------------------------ prediction and generation
    def _a_for_prediction(self, x: Tensor) -> Tensor:
        """``[S, B, A]`` samples of q(a|x) for prediction, or its mean as ``[1, B, A]``."""
        q_a_x = DiagonalGaussian(*self.q_a_x(x))
        n = self.config.classify_a_samples
        return q_a_x.mean.unsqueeze(0) if n == 0 else q_a_x.rsample(n)

    @torch.no_grad()
    def classify(self, x: Tensor | Batch) -> Tensor:
        """log E_q(a|x)[q(y|a,x)] over ``classify_a_samples`` samples of a, ``[B, K]`` (usable as logits)."""
        x_flat, _ = self.flat_x(as_batch(x))
        a = self._a_for_prediction(x_flat)  # [S, B, A]
        log_q_y_ax = torch.log_softmax(self.q_y_ax(x_flat, a), -1)  # [S, B, K]
        return torch.logsumexp(log_q_y_ax, 0) - math.log(a.shape[0])

    @torch.no_grad()
    def encode_auxiliary(self, x: Tensor | Batch) -> Tensor:
        """Mean of q(a|x), ``[B, A]``: the auxiliary latent space of the poster's Fig. 1D and Fig. 2."""
        x_flat, _ = self.flat_x(as_batch(x))
        return self.q_a_x(x_flat)[0]

    def _posterior_means(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        a = self.q_a_x(x)[0]  # [B, A]
        y = self.one_hot(self.q_y_ax(x, a).argmax(-1))  # [B, K]
        z = self.q_z_axy(x, a, y)[0]  # [B, Z]
        return a, y, z

    @torch.no_grad()
    def encode(self, x: Tensor | Batch) -> Tensor:
        """Mean of q(z|a,y,x) at the mean of q(a|x) and the most probable class."""
        x_flat, _ = self.flat_x(as_batch(x))
        return self._posterior_means(x_flat)[2]

    @torch.no_grad()
    def reconstruct(self, batch: Tensor | Batch) -> Tensor:
        batch = as_batch(batch)
        x, _ = self.flat_x(batch)
        a, y, z = self._posterior_means(x)
        return self.p_x.mean(self.p_x_params(a, y, z)).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """Mean images of p(x|.) with z ~ p(z) (and a ~ p(a|y,z) in the SDGM); y ~ p(y) unless given."""
        if y is None:
            y = torch.randint(self.config.num_classes, (n,), device=self.device)
        elif isinstance(y, int):
            y = torch.full((n,), y, dtype=torch.long, device=self.device)
        y_one_hot = self.one_hot(y.to(self.device))
        z = torch.randn(n, self.config.z_dim, device=self.device)
        a = self.p_a(None, y_one_hot, z).rsample() if self.skip else None
        return self.p_x.mean(self.p_x_params(a, y_one_hot, z))


@register_model("sdgm", paper="Maaløe et al. 2016, Auxiliary deep generative models", summary="Skip deep generative model (semi-supervised)")
class SDGM(ADGM):
    """Skip deep generative model: the ADGM with p(a|y,z) and p(x|a,y,z)."""

    skip = True
