"""What the models with a GAN on their generator share (`m2-gan`, `cvae-gan`, `draw-gan`): the
discriminator (of images, or of (image, label) pairs), the split of the parameters into the VAE's
and the discriminator's, the two adversarial losses, and the reconstruction term of the VAE's
bound, on pixels or on the discriminator's features.

``discriminator="classes"``: D(x) has K + 1 logits, one per real class and one for fakes
(Salimans et al. 2016; the poster's "real images with different labels and fake images as a single
class"). ``"pair"``: D(x, y) has one logit (Mirza & Osindero 2014). ``"plain"``: D(x) has one
logit and no label (Goodfellow et al. 2014), for unconditional generators.

``reconstruction="pixels"`` (default): the bound's reconstruction term is the pixel likelihood
log p(x | y, z) of the VAE. ``"features"``: the poster's "adding GANs" (after Larsen et al. 2016)
replaces it by a Gaussian on the discriminator's last hidden layer,

    L_REC = E_q [log p(Dis_l(x) | z)] = E_q [log N(Dis_l(x) | Dis_l(x~), I)],   x~ = E p(x | y, z)
          = -0.5 ||Dis_l(x) - Dis_l(x~)||^2 - (F / 2) log 2 pi                  (Larsen et al. eq. 6)

with D called frozen, so that only the VAE learns from it (``feature_scale="learned"``: a
diagonal covariance exp(s) with one free log-variance s per feature, a parameter of the VAE, in
place of Larsen et al.'s I; the poster leaves the density of Dis_l(x) open); and D sees the reconstructions x~ as a
second kind of fake beside the prior samples (Larsen et al. eq. 8). The generator's GAN loss stays
on prior samples only (the poster's L_GAN = E_{z ~ p(z)} log D(G(z))), so no GAN gradient reaches
the encoder. Pixels the likelihood would not score (missing in the data, or shown to a partial
condition) take the reconstruction's values in the real image that D reads, so Dis_l(x) and
Dis_l(x~) differ only where the pixel likelihood would compare them, and a hole never shows D a
tell-tale zero.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from pogm.nn import Discriminator, call_frozen
from pogm.objectives.adversarial import (
    class_discriminator_loss,
    class_generator_loss,
    discriminator_loss,
    feature_reconstruction,
    generator_loss,
)

DISCRIMINATORS = ("classes", "pair", "plain")
RECONSTRUCTIONS = ("pixels", "features")
FEATURE_SCALES = ("unit", "learned")


def fill_holes(x: Tensor, mask: Tensor | None, x_fake: Tensor) -> Tensor:
    """The real image ``x`` ``[..., B, D]`` with the pixels outside ``mask`` (bool, broadcastable;
    None = every pixel) taken from ``x_fake`` (detached), broadcast to their common shape: no hole
    tells D which image is real."""
    if mask is None:
        return x
    return torch.where(mask, x, x_fake.detach())


class ConditionalGAN:
    """Mixin for a VAE model with ``self.one_hot``, ``self.p_x`` and a config with ``discriminator``,
    ``architecture``, ``image_shape``, ``discriminator_hidden``, ``channels``,
    ``discriminator_batch_norm``, ``num_classes``, ``gan_loss``, ``reconstruction`` and
    ``feature_scale``. The model's
    training bound calls `reconstruction_log_prob` where it would call ``self.p_x.log_prob``."""

    discriminator_groups: ClassVar[tuple[str, ...]] = ("discriminator",)
    data_defaults: ClassVar[dict[str, Any]] = {"binarize": False}

    @staticmethod
    def check_discriminator(kind: str) -> None:
        if kind not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {kind!r}; choose one of {list(DISCRIMINATORS)}")

    @staticmethod
    def check_reconstruction(kind: str) -> None:
        if kind not in RECONSTRUCTIONS:
            raise ValueError(f"unknown reconstruction {kind!r}; choose one of {list(RECONSTRUCTIONS)} (the pixel likelihood, or Larsen et al.'s discriminator features)")

    def build_discriminator(self) -> None:
        c = self.config
        self.check_discriminator(c.discriminator)
        self.check_reconstruction(c.reconstruction)
        if c.feature_scale not in FEATURE_SCALES:
            raise ValueError(f"unknown feature_scale {c.feature_scale!r}; choose one of {list(FEATURE_SCALES)} (Larsen et al.'s identity covariance, or a learned variance per feature)")
        K = c.num_classes
        if c.discriminator != "plain" and K < 2:
            raise ValueError(f"discriminator={c.discriminator!r} scores (image, label) pairs and needs class labels; use discriminator='plain'")
        label_dim = K if c.discriminator == "pair" else 0
        num_outputs = K + 1 if c.discriminator == "classes" else 1
        self.discriminator = Discriminator(
            c.architecture, c.image_shape, c.discriminator_hidden, c.channels,
            label_dim=label_dim, num_outputs=num_outputs, batch_norm=c.discriminator_batch_norm,
        )
        # log-variance of p(Dis_l(x) | z), one per feature; the VAE's parameter, not D's
        learned = c.reconstruction == "features" and c.feature_scale == "learned"
        self.feature_log_var = torch.nn.Parameter(torch.zeros(self.discriminator.feature_dim)) if learned else None

    @property
    def reconstructs_features(self) -> bool:
        """Whether the bound's reconstruction term is on the discriminator's features."""
        return self.config.reconstruction == "features"

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        discriminator = list(self.discriminator.parameters())
        own = {id(p) for p in discriminator}
        return {"vae": [p for p in self.parameters() if id(p) not in own], "discriminator": discriminator}

    # ------------------------------------------------------------------ the reconstruction term
    def reconstruction_log_prob(self, params: Tensor, x: Tensor, mask: Tensor | None, y_one_hot: Tensor | None = None) -> Tensor:
        """The reconstruction term of the bound that ``loss`` trains, ``[..., B]``: the pixel
        likelihood log p(x | params) (``reconstruction="pixels"``), or log N(Dis_l(x) | Dis_l(x~), I)
        with x~ = the likelihood's mean (``"features"``, `feature_log_likelihood`). ``params``
        ``[..., B, P * D]``, ``x`` ``[B, D]`` (zero-filled), ``mask`` the pixels the likelihood scores."""
        if not self.reconstructs_features:
            return super().reconstruction_log_prob(params, x, mask, y_one_hot)
        return self.feature_log_likelihood(self.p_x.mean(params), x, mask, y_one_hot)

    def feature_log_likelihood(self, x_tilde: Tensor, x: Tensor, mask: Tensor | None, y_one_hot: Tensor | None = None) -> Tensor:
        """log p(Dis_l(x) | z) = log N(Dis_l(x) | Dis_l(x~), I) (Larsen et al. eq. 6), or with the
        learned diagonal covariance (``feature_scale="learned"``), ``[..., B]``.

        ``x_tilde`` ``[..., B, D]`` the reconstructions (gradients flow into them), ``x`` ``[B, D]``
        the real images, shown to D with x~'s values outside ``mask``. D is called frozen and its
        target features are detached, so this term never trains D. ``y_one_hot`` ``[..., B, K]`` is
        passed to a ``pair`` discriminator, whose hidden features do not read it.
        """
        label = [y_one_hot] if self.config.discriminator == "pair" else []
        x_shown = fill_holes(x, mask, x_tilde)  # [..., B, D]
        _, features_real = call_frozen(self.discriminator, x_shown, *label)  # [..., B, F], Dis_l(x)
        _, features_tilde = call_frozen(self.discriminator, x_tilde, *label)  # [..., B, F], Dis_l(x~)
        return -feature_reconstruction(features_real.detach(), features_tilde, self.feature_log_var)  # [..., B]

    # ------------------------------------------------------------------ the adversarial losses
    def conditional_gan_losses(
        self,
        x_real: Tensor,
        real_labels: Tensor | None,
        real_labelled: Tensor | None,
        x_fake: Tensor,
        fake_labels: Tensor | None,
        x_tilde: Tensor | None = None,
        tilde_labels: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        """``(discriminator loss, generator loss)``.

        ``x_real`` ``[B, D]`` with ``real_labels`` ``[B]`` (rows with ``real_labelled`` False count
        as "some real class" for ``classes``; for ``pair`` every row's label is used; ``plain``
        reads no labels, and they may be None); ``x_fake`` ``[B_f, D]`` generated for
        ``fake_labels``. ``x_tilde`` ``[B_t, D]`` (with ``tilde_labels`` for ``pair``): the
        reconstructions, a second kind of fake in D's loss only (Larsen et al. eq. 8; the
        generator's loss stays on ``x_fake``). The discriminator sees the fakes detached in its
        own loss and is called frozen in the generator's, so each loss reaches one group only.
        """
        kind = self.config.discriminator
        label = (lambda y: [self.one_hot(y)]) if kind == "pair" else (lambda y: [])
        fakes = [(x_fake, fake_labels)] + ([] if x_tilde is None else [(x_tilde, tilde_labels)])
        logits_real, _ = self.discriminator(x_real, *label(real_labels))  # [B, K+1] or [B]
        logits_fakes = [self.discriminator(x.detach(), *label(y))[0] for x, y in fakes]
        logits_g, _ = call_frozen(self.discriminator, x_fake, *label(fake_labels))
        if kind == "classes":
            loss_d = class_discriminator_loss(logits_real, real_labels, real_labelled, *logits_fakes)
            loss_g = class_generator_loss(logits_g, fake_labels)
        else:
            loss_d = discriminator_loss(logits_real, *logits_fakes)
            loss_g = generator_loss(logits_g, self.config.gan_loss)
        return loss_d, loss_g


__all__ = ["DISCRIMINATORS", "FEATURE_SCALES", "RECONSTRUCTIONS", "ConditionalGAN", "fill_holes"]
