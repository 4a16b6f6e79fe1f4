"""DRAW with a GAN on its samples (Chen, Fang & Ju 2016, DRAW's "Generalization 2": "taking DRAW as a
black-box VAE, add GAN on top of it"), unconditional (`draw-gan`) or conditional (`cdraw-gan`).

Generator (DRAW, `pogm.models.vae_gan.draw`): z_t ~ N(0, I), c_t = c_{t-1} + write(LSTM^dec(...)),
x_p = sigmoid(c_T). Discriminator D(x) (``plain``) or D(x, y) (``classes``, ``pair``; the
conditional GAN of `pogm.models.vae_gan.conditional_gan`).

Losses, one per parameter group (the Trainer steps each on its own gradients):
    vae:            -ELBO(x) + gan_weight * L_G(D(x_p))     (DRAW's bound, eqs. 9-12 of Gregor et al.,
                                                           plus the non-saturating -log D(x_p))
    discriminator:  -log D(x) - log(1 - D(x_p))
The discriminator is called frozen in the generator's loss and sees x_p detached in its own, so no
loss reaches the other group. D sees DRAW's samples from the prior (what the GAN sharpens); the
reconstructions are already pulled towards x by the bound. Missing pixels of a real image are shown
to D with the sample's values, so a hole never tells D which image is real.

``reconstruction="features"`` (the poster's "adding GANs" applied to DRAW as a black-box VAE;
Larsen et al. 2016): L^x = -log p(x | z_{1:T}) becomes -log N(Dis_l(x) | Dis_l(sigmoid(c_T)), I) on
the frozen discriminator's last hidden layer, and D also sees the reconstructions sigmoid(c_T) as
fakes (`pogm.models.vae_gan.conditional_gan`); the generator's GAN loss stays on prior samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.models.vae_gan.conditional_gan import ConditionalGAN, fill_holes
from pogm.models.vae_gan.draw import DRAW, DRAWConfig
from pogm.models.registry import register_model


@dataclass(frozen=True)
class DRAWGANConfig(DRAWConfig):
    discriminator: str = "plain"  # cdraw-gan: "classes" (K + 1 logits) or "pair"
    architecture: str = "mlp"  # or "dcgan" (the discriminator's network)
    discriminator_hidden: tuple[int, ...] = (500, 500)
    channels: tuple[int, ...] = (32, 64)  # DCGAN discriminator: filters per stride-2 convolution
    discriminator_batch_norm: bool = True  # DCGAN discriminator only
    gan_weight: float = 1.0
    gan_loss: str = "non-saturating"  # or "minimax"
    reconstruction: str = "pixels"  # or "features": log N(Dis_l(x) | Dis_l(x~), I) replaces log p(x | z_{1:T})
    feature_scale: str = "unit"  # features: the Gaussian's covariance, I (Larsen et al.) or "learned" (a log-variance per feature)


@dataclass(frozen=True)
class ConditionalDRAWGANConfig(DRAWGANConfig):
    discriminator: str = "classes"


@register_model("draw-gan", paper="Gregor et al. 2015 (DRAW) + Goodfellow et al. 2014 (GAN); Chen, Fang & Ju 2016, Generalization 2", summary="DRAW as a black-box VAE with a GAN on its samples")
class DRAWGAN(ConditionalGAN, DRAW):
    """DRAW whose samples also fool a discriminator."""

    Config = DRAWGANConfig

    def __init__(self, config: DRAWGANConfig) -> None:
        self.check_discriminator(config.discriminator)
        super().__init__(config)
        self.build_discriminator()

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        negative_bound, terms, x, mask, labels, reconstruction = self.bound_terms(batch, kl_weight)
        B = x.shape[0]
        if B == 0:  # cdraw-gan on a batch without labelled rows: a zero that every group accepts
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {"loss": zero, "loss/vae": zero, "loss/discriminator": zero}
        canvas, _ = self.generate(B, None if labels is None else self.one_hot(labels))
        x_p = torch.sigmoid(canvas)  # [B, D], samples for the same labels as the real rows
        x_real = fill_holes(x, mask, x_p)  # [B, D], holes show no tell-tale zeros
        x_tilde = torch.sigmoid(reconstruction).detach() if self.reconstructs_features else None  # [B, D]
        labelled = None if labels is None else torch.ones_like(labels, dtype=torch.bool)
        loss_d, loss_g = self.conditional_gan_losses(x_real, labels, labelled, x_p, labels, x_tilde, labels)
        loss_vae = negative_bound.mean() + self.config.gan_weight * loss_g
        return {
            **terms,
            "loss": loss_vae + loss_d,
            "loss/vae": loss_vae,
            "loss/discriminator": loss_d,
            "gan_generator": loss_g.detach(),
        }


@register_model("cdraw-gan", paper="Gregor et al. 2015 (DRAW) + Mirza & Osindero 2014; Chen, Fang & Ju 2016, Generalizations 1 and 2", summary="Conditional DRAW with a conditional GAN on its samples")
class ConditionalDRAWGAN(DRAWGAN):
    """Conditional DRAW whose class samples also fool a discriminator of (image, label) pairs."""

    Config = ConditionalDRAWGANConfig
    conditional: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = True
    uses_unlabelled: ClassVar[bool] = False


__all__ = ["DRAWGAN", "ConditionalDRAWGAN", "ConditionalDRAWGANConfig", "DRAWGANConfig"]
