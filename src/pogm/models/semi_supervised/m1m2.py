"""M1+M2, the stacked semi-supervised model of Kingma et al. (2014), section 3.1.3.

M1 (a VAE, see ``vae.py``) is trained first on all images, without labels:
    p(z1) = N(0, I),  p(x | z1) Bernoulli,  q(z1 | x) = N(mu(x), diag sigma^2(x)).
M2 (see ``m2.py``) is then trained on the M1 features z1 in place of x, with a Gaussian
likelihood p(z1 | y, z2):
    p(y) p(z2) p(z1 | y, z2) p(x | z1),   inference q(z1 | x) q(y | z1) q(z2 | z1, y).
M1 is frozen once M2 starts. The switch happens at optimizer step ``m1_steps``. The two are
parameter groups ``m1`` and ``m2``, each with its own optimiser stepped only in its own phase, so
``train.group_lr`` can give them different learning rates (Kingma et al.'s code trains both with
Adam 3e-4; the CPU recipe keeps M1 at 1e-3 and gives M2 their 3e-4).

How the features are made, and what Kingma et al.'s code (github.com/dpkingma/nips14-ssl:
gpulearn_z_x.py trains M1, learn_yz_x_ss.py trains M2 on its features) does:

* ``m1_binarize``: M1 learns from a fresh Bernoulli sample of the grey image at every step, and the
  features of M2 come from q(z1 | x) of the grey image itself (Kingma et al.: True, with grey data,
  i.e. ``data.binarize=false``). With binarised data (``data.binarize=true``) the sample is the image
  itself and the features come from a binarised image, a noisier input for the classifier.
* ``active_threshold``: M2 models only the M1 units whose posterior mean varies across the data
  (standard deviation over the first M2 batch above this threshold; Kingma et al.: 0.1 over 1000
  unlabelled images). A VAE leaves most of its 50 units "collapsed" (q(z1|x) = p(z1) for every x);
  sampled, such a unit is pure N(0, 1) noise that M2 would have to model and that the 100 labels
  must teach q(y|z1) to ignore. The other units keep their prior N(0, 1) in the generative model;
  M2 sees them as unobserved (masked, zero-filled). 0 keeps every unit (pogm's earlier behaviour).
* ``features``: "sample" draws z1 ~ q(z1|x) at every step (Kingma et al.), "mean" uses its mean.
  Classification always uses the mean.
* ``m2_likelihood``: Kingma et al. predict mean and log-variance of p(z1|y,z2) with the network
  ("gaussian-predicted"); "gaussian-learned" has one free log-variance per unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.latents import standard_normal_log_prob
from pogm.models.base import ImportanceWeighted, ImputesByReconstruction, Model, as_batch
from pogm.models.semi_supervised.m2 import M2, M2Config
from pogm.models.registry import register_model
from pogm.models.semi_supervised.vae import VAE, VAEConfig

FEATURES = ("sample", "mean")


@dataclass(frozen=True)
class M1M2Config:
    x_dim: int = 784
    num_classes: int = 10
    m1_z_dim: int = 50
    m1_hidden: tuple[int, ...] = (600, 600)
    m1_likelihood: str = "bernoulli"
    m1_steps: int = 20000
    m1_binarize: bool = True  # M1 learns from x ~ Bernoulli(grey x) each step; features from grey x (Kingma et al.)
    active_threshold: float = 0.1  # M2 sees the M1 units whose posterior-mean std exceeds this (Kingma et al. 0.1; 0 = all)
    features: str = "sample"  # "sample": z1 ~ q(z1|x) each step (Kingma et al.); "mean": its mean
    z_dim: int = 50
    hidden: tuple[int, ...] = (500,)
    activation: str = "softplus"
    m2_likelihood: str = "gaussian-learned"  # p(z1|y,z2); Kingma et al.'s code: "gaussian-predicted"
    batch_norm: bool = False  # batch normalisation in M2's networks (M1 is plain, as in Kingma et al.)
    weighting: str = "data-set"  # M2's objective weighting (see m2.py)
    alpha: float | None = None  # M2's classifier weight; None = the weighting's paper default
    num_labelled: int = 100  # filled in from the data by `data_fields`
    num_unlabelled: int = 50000


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
        if c.features not in FEATURES:
            raise ValueError(f"features must be one of {FEATURES}, got {c.features!r}")
        if c.active_threshold < 0:
            raise ValueError(f"active_threshold must be >= 0, got {c.active_threshold}")
        self.m1 = VAE(VAEConfig(x_dim=c.x_dim, z_dim=c.m1_z_dim, hidden=c.m1_hidden, activation=c.activation, likelihood=c.m1_likelihood))
        self.m2 = M2(M2Config(
            x_dim=c.m1_z_dim, num_classes=c.num_classes, z_dim=c.z_dim, hidden=c.hidden, activation=c.activation,
            likelihood=c.m2_likelihood, batch_norm=c.batch_norm, weighting=c.weighting, alpha=c.alpha,
            num_labelled=c.num_labelled, num_unlabelled=c.num_unlabelled,
        ))
        # The M1 units M2 models, chosen at M2's first step (`choose_active_units`); all until then.
        self.register_buffer("active", torch.ones(c.m1_z_dim, dtype=torch.bool))
        self.register_buffer("active_chosen", torch.zeros((), dtype=torch.bool))

    data_fields = classmethod(M2.data_fields.__func__)

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        """M1's and M2's parameters: each phase's loss is ``loss/m1`` or ``loss/m2``, so only that
        phase's optimiser steps."""
        return {"m1": list(self.m1.parameters()), "m2": list(self.m2.parameters())}

    @torch.no_grad()
    def choose_active_units(self, x: Tensor) -> Tensor:
        """Mark the M1 units whose posterior mean over the images ``x`` ``[B, D]`` has a standard
        deviation above ``active_threshold`` (all units when it is 0); returns the mask ``[Z1]``."""
        if self.config.active_threshold > 0:
            std = self.m1.posterior(x).mean.std(0)  # [Z1]
            self.active.copy_(std > self.config.active_threshold)
            if not bool(self.active.any()):  # a collapsed M1: keep the least collapsed unit
                self.active[std.argmax()] = True
        self.active_chosen.fill_(True)
        return self.active

    def features(self, batch: Batch, sample: bool = True) -> Batch:
        """M1 features z1 ~ q(z1|x) (or its mean), as a Batch for M2 with the labels carried over;
        units outside the active set are masked (unobserved for M2)."""
        x, _ = self.flat_x(batch)
        with torch.no_grad():
            q_z1_x = self.m1.posterior(x)
            z1 = q_z1_x.rsample() if sample else q_z1_x.mean  # [B, Z1]
        mask = {} if bool(self.active.all()) else {"x": self.active.expand_as(z1)}
        return Batch(x={"x": z1}, x_mask=mask, y=batch.y, y_mask=batch.y_mask)

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        c = self.config
        if step < c.m1_steps:
            if c.m1_binarize and c.m1_likelihood == "bernoulli":
                x = batch.x[self.group]
                batch = Batch(x={**batch.x, self.group: torch.bernoulli(x.clamp(0, 1))}, x_mask=batch.x_mask, y=batch.y, y_mask=batch.y_mask)
            terms = self.m1.loss(batch, kl_weight)
            return {"loss": terms["loss"], "loss/m1": terms["loss"], "m1_elbo": terms["elbo"]}
        if not bool(self.active_chosen):
            self.choose_active_units(self.flat_x(batch)[0])
        terms = self.m2.loss(self.features(batch, sample=c.features == "sample"), kl_weight)
        return {**terms, "loss/m2": terms["loss"], "active_units": self.active.sum().float()}

    @torch.no_grad()
    def classify(self, x: Tensor | Batch) -> Tensor:
        return self.m2.classify(self.features(as_batch(x), sample=False))

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x|z1) p(z1, y, z2) - log q(z1|x) q(y, z2|z1): the M2 weight of a sampled z1 (``[k, B]``);
        the units outside the active set have their prior N(0, 1)."""
        x, mask = self.flat_x(batch)
        q_z1_x = self.m1.posterior(x)
        z1 = q_z1_x.rsample(k)  # [k, B, Z1]
        log_p_x_z1 = self.m1.p_x.log_prob(self.m1.p_x_z(z1), x, mask)  # [k, B]
        flat = z1.reshape(-1, z1.shape[-1])
        active = {} if bool(self.active.all()) else {"x": self.active.expand_as(flat)}
        log_w_m2 = self.m2.log_weights(Batch(x={"x": flat}, x_mask=active), 1).reshape(k, -1)  # [k, B]
        log_p_inactive = standard_normal_log_prob(z1[..., ~self.active])  # [k, B]
        return log_p_x_z1 + log_w_m2 + log_p_inactive - q_z1_x.log_prob(z1)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        z1 = self.m2.sample(n, y)  # mean of p(z1|y,z2)
        z1 = torch.where(self.active, z1, torch.zeros_like(z1))  # inactive units: their prior mean
        return self.m1.p_x.mean(self.m1.p_x_z(z1))

    @torch.no_grad()
    def reconstruct(self, batch: Tensor | Batch) -> Tensor:
        batch = as_batch(batch)
        z1 = self.m2.reconstruct(self.features(batch, sample=False))  # [B, Z1]
        z1 = torch.where(self.active, z1, torch.zeros_like(z1))
        return self.m1.p_x.mean(self.m1.p_x_z(z1)).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def encode(self, batch: Tensor | Batch) -> Tensor:
        return self.m2.encode(self.features(as_batch(batch), sample=False))
