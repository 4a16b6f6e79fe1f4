"""What the models with a GAN on their generator share (`m2-gan`, `cvae-gan`, `draw-gan`): the
discriminator (of images, or of (image, label) pairs), the split of the parameters into the VAE's
and the discriminator's, and the two adversarial losses.

``discriminator="classes"``: D(x) has K + 1 logits, one per real class and one for fakes
(Salimans et al. 2016; the poster's "real images with different labels and fake images as a single
class"). ``"pair"``: D(x, y) has one logit (Mirza & Osindero 2014). ``"plain"``: D(x) has one
logit and no label (Goodfellow et al. 2014), for unconditional generators.
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
    generator_loss,
)

DISCRIMINATORS = ("classes", "pair", "plain")


class ConditionalGAN:
    """Mixin for a VAE model with ``self.one_hot`` and a config with ``discriminator``,
    ``architecture``, ``image_shape``, ``discriminator_hidden``, ``channels``,
    ``discriminator_batch_norm``, ``num_classes`` and ``gan_loss``."""

    discriminator_groups: ClassVar[tuple[str, ...]] = ("discriminator",)
    data_defaults: ClassVar[dict[str, Any]] = {"binarize": False}

    @staticmethod
    def check_discriminator(kind: str) -> None:
        if kind not in DISCRIMINATORS:
            raise ValueError(f"unknown discriminator {kind!r}; choose one of {list(DISCRIMINATORS)}")

    def build_discriminator(self) -> None:
        c = self.config
        self.check_discriminator(c.discriminator)
        K = c.num_classes
        if c.discriminator != "plain" and K < 2:
            raise ValueError(f"discriminator={c.discriminator!r} scores (image, label) pairs and needs class labels; use discriminator='plain'")
        label_dim = K if c.discriminator == "pair" else 0
        num_outputs = K + 1 if c.discriminator == "classes" else 1
        self.discriminator = Discriminator(
            c.architecture, c.image_shape, c.discriminator_hidden, c.channels,
            label_dim=label_dim, num_outputs=num_outputs, batch_norm=c.discriminator_batch_norm,
        )

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        discriminator = list(self.discriminator.parameters())
        own = {id(p) for p in discriminator}
        return {"vae": [p for p in self.parameters() if id(p) not in own], "discriminator": discriminator}

    def conditional_gan_losses(self, x_real: Tensor, real_labels: Tensor | None, real_labelled: Tensor | None, x_fake: Tensor, fake_labels: Tensor | None) -> tuple[Tensor, Tensor]:
        """``(discriminator loss, generator loss)``.

        ``x_real`` ``[B, D]`` with ``real_labels`` ``[B]`` (rows with ``real_labelled`` False count
        as "some real class" for ``classes``; for ``pair`` every row's label is used; ``plain``
        reads no labels, and they may be None); ``x_fake``
        ``[B_f, D]`` generated for ``fake_labels``. The discriminator sees the fakes detached in its
        own loss and is called frozen in the generator's, so each loss reaches one group only.
        """
        if self.config.discriminator == "classes":
            logits_real, _ = self.discriminator(x_real)  # [B, K+1]
            logits_fake, _ = self.discriminator(x_fake.detach())
            loss_d = class_discriminator_loss(logits_real, real_labels, real_labelled, logits_fake)
            loss_g = class_generator_loss(call_frozen(self.discriminator, x_fake)[0], fake_labels)
        elif self.config.discriminator == "plain":
            loss_d = discriminator_loss(self.discriminator(x_real)[0], self.discriminator(x_fake.detach())[0])
            loss_g = generator_loss(call_frozen(self.discriminator, x_fake)[0], self.config.gan_loss)
        else:
            fake_one_hot = self.one_hot(fake_labels)
            logits_real, _ = self.discriminator(x_real, self.one_hot(real_labels))  # [B]
            logits_fake, _ = self.discriminator(x_fake.detach(), fake_one_hot)
            loss_d = discriminator_loss(logits_real, logits_fake)
            loss_g = generator_loss(call_frozen(self.discriminator, x_fake, fake_one_hot)[0], self.config.gan_loss)
        return loss_d, loss_g


__all__ = ["DISCRIMINATORS", "ConditionalGAN"]
