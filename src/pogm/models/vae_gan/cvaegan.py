"""CVAE with a conditional GAN (Chen, Fang & Ju 2016, "CVAE with CGAN"; Sohn et al. 2015 and Mirza &
Osindero 2014): the conditional VAE of `pogm.models.vae_gan.cvae` whose generator also fools a
discriminator of (image, label) pairs.

Generative model (CVAE):  p(z | y) (prior network),  p(x | y, z) = Bernoulli(Dec(y, z))
Inference model (CVAE):   q(z | x, y)
Discriminator:            D(x) -> K + 1 logits, a real image of each class or fake
                          (``discriminator="classes"``, the poster's "real images with different
                          labels and fake images as a single class"), or D(x, y) -> one logit
                          (``"pair"``, Mirza & Osindero)

Losses, one per parameter group:
    vae:            -[E_q log p(x | y, z) - KL(q(z | x, y) || p(z | y))]   (the CVAE bound)
                    + gan_weight * generator loss on x_p = Dec(y, z_p), z_p ~ p(z | y) (detached,
                    so the GAN shapes the generator, not the prior network)
    discriminator:  real labelled (x, y) against (x_p, y)

``reconstruction="features"`` (the poster's "adding GANs", Larsen et al. 2016): the bound's
log p(x | y, z) becomes log N(Dis_l(x) | Dis_l(x~), I), x~ = Dec(y, z), z ~ q(z | x, y), on the
frozen discriminator's last hidden layer, and D also sees (x~, y), x~ from z ~ q(z | x, y) with
nothing of the image shown, as fakes (`pogm.models.vae_gan.conditional_gan`).

The discriminator is called frozen inside the VAE's loss and sees detached fakes in its own, so
each loss reaches only its own group. With ``condition="both"`` the fakes are drawn with nothing
of the image shown, p(x | y) alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.models.vae_gan.conditional_gan import ConditionalGAN, fill_holes
from pogm.models.vae_gan.cvae import CVAE, CVAEConfig
from pogm.models.registry import register_model


@dataclass(frozen=True)
class CVAEGANConfig(CVAEConfig):
    condition: str = "label"  # "label" or "both": the discriminator scores (image, label) pairs
    discriminator: str = "classes"  # or "pair"
    discriminator_hidden: tuple[int, ...] = (500, 500)
    discriminator_batch_norm: bool = True  # DCGAN discriminator only
    gan_weight: float = 1.0
    gan_loss: str = "non-saturating"  # for "pair"; "classes" uses -log p(y | x_p)
    reconstruction: str = "pixels"  # or "features": log N(Dis_l(x) | Dis_l(x~), I) replaces log p(x | y, z)
    feature_scale: str = "unit"  # features: the Gaussian's covariance, I (Larsen et al.) or "learned" (a log-variance per feature)


@register_model("cvae-gan", paper="Sohn et al. 2015 (CVAE) + Mirza & Osindero 2014 (conditional GAN); Chen, Fang & Ju 2016", summary="CVAE with a conditional GAN on (image, label) pairs")
class CVAEGAN(ConditionalGAN, CVAE):
    """Conditional VAE whose generator also fools a discriminator of (image, label) pairs."""

    def figures(self, data, out, labelled_index=None, run_dir=None):
        """The CVAE's figures, then samples and reconstructions of the GAN-trained generator."""
        from pogm.models.figures import image_model_figures, unique
        from pogm.models.vae_gan.completion import cvae_figures

        return unique(cvae_figures(self, data, out) + image_model_figures(self, data, out))


    Config = CVAEGANConfig
    uses_unlabelled: ClassVar[bool] = False  # conditioned on labels: the stream draws labelled rows only

    def __init__(self, config: CVAEGANConfig) -> None:
        if config.condition not in ("label", "both"):
            raise ValueError(f"cvae-gan's discriminator scores (image, label) pairs: condition must be 'label' or 'both', got {config.condition!r}")
        self.check_discriminator(config.discriminator)
        super().__init__(config)
        self.build_discriminator()

    @torch.no_grad()
    def reconstructions(self, x: Tensor, observed: Tensor, c: list[Tensor]) -> Tensor:
        """x~ = E p(x | c, z), z ~ q(z | x, c), for the condition inputs ``c``: ``[B, D]``, the
        fakes that D also sees with ``reconstruction="features"`` (no gradient)."""
        z = self.posterior(x, observed, c).rsample()  # [B, Z]
        return self.p_x.mean(self.generator(z, c))

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        terms = super().loss(batch, kl_weight, step)  # the CVAE bound on the labelled rows
        x, observed = self.image(batch)  # [B, C, H, W]
        y_one_hot, labelled = self.labels(batch, every_row=False)
        if y_one_hot is None or not bool(labelled.any()):
            zero = sum(p.sum() for p in self.discriminator.parameters()) * 0.0  # no labelled row: a zero backward accepts
            return {**terms, "loss": terms["loss"] + zero, "loss/vae": terms["loss"], "loss/discriminator": zero}
        x, observed, y_one_hot = x[labelled], observed[labelled], y_one_hot[labelled]
        B = x.shape[0]
        y = y_one_hot.argmax(-1)  # [B]
        nothing_shown = torch.zeros_like(observed)
        c = self.condition_inputs(x, nothing_shown, y_one_hot)
        z_p = self.prior(x, nothing_shown, y_one_hot).rsample().detach()  # [B, Z], z_p ~ p(z | y)
        x_p = self.p_x.mean(self.generator(z_p, c))  # [B, D]
        x_real = fill_holes(x.reshape(B, -1), observed.reshape(B, -1), x_p)  # [B, D], holes show no tell-tale zeros
        x_tilde = self.reconstructions(x, observed, c) if self.reconstructs_features else None  # [B, D]

        loss_d, loss_g = self.conditional_gan_losses(x_real, y, torch.ones_like(y, dtype=torch.bool), x_p, y, x_tilde, y)

        loss_vae = terms["loss"] + self.config.gan_weight * loss_g
        return {
            **{k: v.detach() for k, v in terms.items() if k != "loss"},
            "loss": loss_vae + loss_d,
            "loss/vae": loss_vae,
            "loss/discriminator": loss_d,
            "cvae_loss": terms["loss"].detach(),
            "gan_generator": loss_g.detach(),
        }
