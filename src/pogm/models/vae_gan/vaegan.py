"""VAE-GAN: a VAE whose reconstruction error is measured by a GAN's discriminator
(Larsen, Sønderby, Larochelle & Winther 2016, "Autoencoding beyond pixels using a learned
similarity metric"; Chen, Fang & Ju 2016, "Adding GANs").

Generative model:   p(z) = N(0, I),   x~ = Dec(z)   (a sigmoid image)
Inference model:    q(z | x) = N(mu(x), diag(sigma^2(x)))
Discriminator:      D(x) = sigmoid(l(x)), with hidden features Dis_l(x)

Losses, one per network (Larsen et al., Algorithm 1; the poster's L = L_KL + L_REC + L_GAN):
    L_prior = KL(q(z|x) || p(z))                                                      (eq. 5)
    L_llike = -E_q(z|x) log N(Dis_l(x) | Dis_l(Dec(z)), I)                            (eq. 6)
    L_GAN   = log D(x) + log(1 - D(Dec(z))) + log(1 - D(Dec(z_p))),  z_p ~ p(z)       (eq. 8)
    encoder:        L_prior + L_llike [+ pixel_weight * L_pixel]     (no GAN gradient into the encoder)
    decoder:        gamma * L_llike [+ pixel_weight * L_pixel] - L_GAN   (gamma weighs feature reconstruction against the GAN;
                                                the generator term is the non-saturating
                                                -log D(Dec(.)) by default)
    discriminator:  -L_GAN

Each loss reaches its own network only: where a loss reads another network, that network is
called frozen (`pogm.nn.call_frozen`) and its inputs detached, so the Trainer's three Adam
optimizers (one per network) never see a gradient that is not theirs. With ``equilibrium`` set,
the balancing rule of Larsen et al.'s code pauses the discriminator while it wins too clearly
and the decoder while it loses too clearly (`pogm.objectives.adversarial.equilibrium_gates`).

Images only enter through masks: pixels the Batch marks missing are zero-filled for the encoder
and shown to the discriminator as the reconstruction's value (real and fake alike), so a hole
never tells D which is which. Networks: fully connected or DCGAN (``architecture``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian
from pogm.likelihoods import make_likelihood
from pogm.models.base import Model, as_batch, image_fields
from pogm.models.registry import register_model
from pogm.nn import Discriminator, GaussianHead, ImageDecoder, ImageEncoder, call_frozen
from pogm.objectives.adversarial import (
    discriminator_loss,
    equilibrium_gates,
    fake_loss,
    feature_reconstruction,
    generator_loss,
    real_loss,
)


@dataclass(frozen=True)
class VAEGANConfig:
    x_dim: int = 784
    image_shape: tuple[int, ...] = (1, 28, 28)
    z_dim: int = 32
    hidden: tuple[int, ...] = (500, 500)
    architecture: str = "mlp"  # or "dcgan"
    channels: tuple[int, ...] = (32, 64)  # DCGAN: filters per stride-2 convolution
    activation: str = "relu"
    discriminator_hidden: tuple[int, ...] = (500, 500)
    discriminator_batch_norm: bool = True  # DCGAN discriminator only
    gamma: float = 1.0  # Larsen et al.'s gamma: weight of L_llike against L_GAN in the decoder's loss
    gan_loss: str = "non-saturating"  # or "minimax"
    equilibrium: float | None = None  # e.g. 0.68 (Larsen et al.'s code); None = no gating
    equilibrium_margin: float = 0.35
    # Weight of a pixel-space Bernoulli reconstruction term -log p(x | z) added to the encoder's and
    # the decoder's losses; 0 is Larsen et al.'s model (features only). A small weight anchors
    # the reconstructions while the discriminator's features are still uninformative.
    pixel_weight: float = 0.0


@register_model("vaegan", paper="Larsen et al. 2016, Autoencoding beyond pixels using a learned similarity metric; Chen, Fang & Ju 2016", summary="VAE-GAN: reconstruction on discriminator features, one optimizer per network")
class VAEGAN(Model):
    """VAE-GAN with an encoder, a decoder and a discriminator, each trained on its own loss."""

    Config = VAEGANConfig
    discriminator_groups: ClassVar[tuple[str, ...]] = ("discriminator",)
    data_defaults: ClassVar[dict[str, Any]] = {"binarize": False}
    sigmoid_images: ClassVar[bool] = True  # real images must lie in [0, 1] (`Model.data_support`)

    def __init__(self, config: VAEGANConfig) -> None:
        super().__init__(config)
        c = config
        if math.prod(c.image_shape) != c.x_dim:
            raise ValueError(f"image_shape {tuple(c.image_shape)} has {math.prod(c.image_shape)} values but x_dim={c.x_dim}")
        self.q_z_x = GaussianHead(ImageEncoder(c.architecture, c.image_shape, [], c.hidden, 2 * c.z_dim, c.channels, c.activation))
        self.p_x_z = ImageDecoder(c.architecture, [c.z_dim], c.image_shape, 1, tuple(reversed(c.hidden)), c.channels, c.activation)
        self.discriminator = Discriminator(c.architecture, c.image_shape, c.discriminator_hidden, c.channels, batch_norm=c.discriminator_batch_norm)
        self.p_x = make_likelihood("bernoulli", c.x_dim)  # only for the optional pixel term

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        return image_fields(cls, x_dim, train)

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]:
        return {
            "encoder": list(self.q_z_x.parameters()),
            "decoder": list(self.p_x_z.parameters()),
            "discriminator": list(self.discriminator.parameters()),
        }

    def decode_logits(self, z: Tensor, frozen: bool = False) -> Tensor:
        """The decoder's logits ``[..., D]``."""
        return call_frozen(self.p_x_z, z) if frozen else self.p_x_z(z)

    def decode(self, z: Tensor, frozen: bool = False) -> Tensor:
        """The decoder's image ``[..., D]`` in [0, 1] (sigmoid of its logits)."""
        return torch.sigmoid(self.decode_logits(z, frozen))

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, mask = self.flat_x(batch)  # [B, D]
        q_z_x = DiagonalGaussian(*self.q_z_x(x))
        z = q_z_x.rsample()  # [B, Z]
        z_p = torch.randn_like(z)  # [B, Z], z_p ~ p(z)
        kl = q_z_x.kl_standard_normal()  # [B], L_prior

        def shown(x_real: Tensor, x_fake: Tensor) -> Tensor:
            """The real image with its missing pixels taken from the fake (no hole reveals which is real)."""
            return x_real if mask is None else torch.where(mask, x_real, x_fake.detach())

        # Encoder: L_prior + L_llike through the frozen decoder and discriminator (eqs. 5, 6).
        pixel_logits_frozen = self.decode_logits(z, frozen=True)  # [B, D], gradient reaches z only
        x_tilde_frozen = torch.sigmoid(pixel_logits_frozen)
        _, features_real = call_frozen(self.discriminator, shown(x, x_tilde_frozen))
        features_real = features_real.detach()  # [B, F], the target Dis_l(x)
        _, features_enc = call_frozen(self.discriminator, x_tilde_frozen)
        llike_encoder = feature_reconstruction(features_real, features_enc)  # [B]

        # Decoder: gamma * L_llike - L_GAN with z detached and the discriminator frozen (eq. 9).
        pixel_logits = self.decode_logits(z.detach())  # [B, D]
        x_tilde = torch.sigmoid(pixel_logits)
        x_p = self.decode(z_p)  # [B, D]
        logits_tilde_dec, features_dec = call_frozen(self.discriminator, x_tilde)
        logits_p_dec, _ = call_frozen(self.discriminator, x_p)
        llike_decoder = feature_reconstruction(features_real, features_dec)  # [B]
        gan_generator = generator_loss(logits_tilde_dec, self.config.gan_loss) + generator_loss(logits_p_dec, self.config.gan_loss)

        # Discriminator: -L_GAN on the real images against both kinds of fake, detached (eq. 8).
        logits_real, _ = self.discriminator(shown(x, x_tilde))
        logits_tilde, _ = self.discriminator(x_tilde.detach())
        logits_p, _ = self.discriminator(x_p.detach())
        gan_discriminator = discriminator_loss(logits_real, logits_tilde, logits_p)

        c = self.config
        pixels_encoder = -self.p_x.log_prob(pixel_logits_frozen, x, mask) if c.pixel_weight else torch.zeros_like(kl)  # [B]
        pixels_decoder = -self.p_x.log_prob(pixel_logits, x, mask) if c.pixel_weight else torch.zeros_like(kl)
        terms = {
            "loss/encoder": (kl_weight * kl + llike_encoder + c.pixel_weight * pixels_encoder).mean(),
            "loss/decoder": (c.gamma * llike_decoder + c.pixel_weight * pixels_decoder).mean() + gan_generator,
            "loss/discriminator": gan_discriminator,
        }
        real_bce = real_loss(logits_real).mean().detach()
        fake_bce = 0.5 * (fake_loss(logits_tilde) + fake_loss(logits_p)).mean().detach()
        if self.config.equilibrium is not None and self.training:
            train_d, train_dec = equilibrium_gates(float(real_bce), float(fake_bce), self.config.equilibrium, self.config.equilibrium_margin)
            if not train_d:
                del terms["loss/discriminator"]
            if not train_dec:
                del terms["loss/decoder"]
        return {
            "loss": sum(terms.values()),
            **terms,
            "kl": kl.mean().detach(),
            "feature_reconstruction": llike_decoder.mean().detach(),
            "pixel_reconstruction": pixels_decoder.mean().detach(),
            "d_real_bce": real_bce,
            "d_fake_bce": fake_bce,
            "train_discriminator": torch.tensor(float("loss/discriminator" in terms)),
            "train_decoder": torch.tensor(float("loss/decoder" in terms)),
        }

    @torch.no_grad()
    def encode(self, batch: Batch | Tensor) -> Tensor:
        x, _ = self.flat_x(as_batch(batch))
        return self.q_z_x(x)[0]

    @torch.no_grad()
    def reconstruct(self, batch: Batch | Tensor) -> Tensor:
        batch = as_batch(batch)
        return self.decode(self.encode(batch)).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def impute(self, batch: Batch) -> Tensor:
        """Missing pixels from the reconstruction of the observed ones (observed pixels kept)."""
        x = batch.x[self.group]
        return torch.where(batch.x_mask[self.group], x, self.reconstruct(batch))

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """Decoder images of z ~ p(z): ``[n, D]``."""
        return self.decode(torch.randn(n, self.config.z_dim, device=self.device))
