"""Semi-supervised VAE with a conditional GAN: M2 (Kingma et al. 2014) whose generator p(x|y,z)
also plays a conditional GAN (Chen, Fang & Ju 2016, "SSL with GANs"; Mirza & Osindero 2014; the
K + 1-class discriminator of Salimans et al. 2016).

Generative model (M2):  p(y) = Cat(1/K),  p(z) = N(0, I),  p(x | y, z) = Bernoulli(Dec(y, z))
Inference model (M2):   q(y | x) = Cat(pi(x)),  q(z | x, y) = N(mu(x, y), diag(sigma^2(x, y)))
Discriminator:          D(x) -> K + 1 logits (``discriminator="classes"``: a real image of each
                        class, or fake), or D(x, y) -> one logit (``"pair"``: Mirza & Osindero)

Losses, one per parameter group:
    vae:            J^alpha of M2 (eq. 9: labelled bound, unlabelled bound, alpha * classification)
                    + gan_weight * generator loss on x_p = Dec(y_p, z_p), z_p ~ p(z), y_p ~ p(y)
    discriminator:  real labelled images as their class, real unlabelled images as "some real
                    class", x_p as fake ("classes"); or real (x, y) pairs against (x_p, y_p)
                    ("pair", with the unlabelled images paired with q(y|x)'s guess, detached).

q(y|x) stays the classifier (the poster used the encoder, not the discriminator). The GAN reaches
the encoder nowhere: the fakes are decoded from the prior, and the discriminator is called
frozen inside the VAE's loss (`pogm.nn.call_frozen`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.models.base import flat_x_shape_fields
from pogm.models.vae_gan.conditional_gan import ConditionalGAN
from pogm.models.semi_supervised.m2 import M2, M2Config
from pogm.models.registry import register_model


@dataclass(frozen=True)
class M2GANConfig(M2Config):
    image_shape: tuple[int, ...] = (1, 28, 28)
    discriminator: str = "classes"  # K + 1 outputs, or "pair": D(x, y) with one logit
    architecture: str = "mlp"  # the discriminator's: "mlp" or "dcgan"
    discriminator_hidden: tuple[int, ...] = (500, 500)
    channels: tuple[int, ...] = (32, 64)
    discriminator_batch_norm: bool = True  # DCGAN discriminator only
    gan_weight: float = 1.0  # weight of the generator's GAN loss beside J^alpha
    gan_loss: str = "non-saturating"  # for "pair"; "classes" uses -log p(y | x_p)


@register_model("m2-gan", paper="Kingma et al. 2014 (M2) + Mirza & Osindero 2014 (conditional GAN); Chen, Fang & Ju 2016", summary="M2 with a conditional GAN on its generator; q(y|x) classifies")
class M2GAN(ConditionalGAN, M2):
    """M2 whose generator also fools a conditional discriminator."""

    Config = M2GANConfig

    def __init__(self, config: M2GANConfig) -> None:
        super().__init__(config)
        self.build_discriminator()

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        return {**super().data_fields(x_dim, num_classes, num_train, num_labelled, train), **flat_x_shape_fields(x_dim, train)}

    def generate(self, n: int) -> tuple[Tensor, Tensor]:
        """``(x_p [n, D] in [0, 1], y_p [n])`` with y_p ~ p(y), z_p ~ p(z)."""
        y_p = torch.randint(self.config.num_classes, (n,), device=self.device)
        z_p = torch.randn(n, self.config.z_dim, device=self.device)
        return self.p_x.mean(self.p_x_yz(z_p, self.one_hot(y_p))), y_p

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        terms = super().loss(batch, kl_weight, step)  # M2's J^alpha and its parts
        x, mask = self.flat_x(batch)  # [B, D]
        labelled, _, y_l = self.labelled_rows(batch, x.device)
        is_labelled = torch.zeros(len(batch), dtype=torch.bool, device=x.device)  # [B]
        is_labelled[labelled] = True
        x_p, y_p = self.generate(len(batch))  # [B, D], [B]
        x_real = x if mask is None else torch.where(mask, x, x_p.detach())  # holes show no tell-tale zeros

        if self.config.discriminator == "pair":  # D(x, y) needs a label for every real image
            labels = self.q_y_x(x).argmax(-1).detach()  # q(y|x)'s guess for the unlabelled images
        else:
            labels = torch.zeros(len(batch), dtype=torch.long, device=x.device)
        labels[labelled] = y_l
        loss_d, loss_g = self.conditional_gan_losses(x_real, labels, is_labelled, x_p, y_p)

        loss_vae = terms["loss"] + self.config.gan_weight * loss_g
        return {
            **{k: v.detach() for k, v in terms.items() if k != "loss"},
            "loss": loss_vae + loss_d,
            "loss/vae": loss_vae,
            "loss/discriminator": loss_d,
            "m2_loss": terms["loss"].detach(),
            "gan_generator": loss_g.detach(),
        }
