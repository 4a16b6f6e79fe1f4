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

The GAN reaches the encoder nowhere: the fakes are decoded from the prior, and the discriminator
is called frozen inside the VAE's loss (`pogm.nn.call_frozen`).

``reconstruction="features"`` (the poster's "adding GANs", Larsen et al. 2016): log p(x | y, z) in
both bounds becomes log N(Dis_l(x) | Dis_l(x~), I), x~ = E p(x | y, z), on the frozen
discriminator's last hidden layer (for every enumerated y of an unlabelled row), and D also sees
reconstructions as fakes: x~ from z ~ q(z | x, y) with y the label, or q(y|x)'s guess for
unlabelled rows (`pogm.models.vae_gan.conditional_gan`).

The classifier (``classifier``; the poster: "both the discriminator of CGAN and the encoder of SSL
VAE can be used as a classifier. We used the latter", and its future direction "encoder,
discriminator, or some ensemble?"):
    encoder:        q(y | x)
    discriminator:  p_D(y | x, real) = softmax over the K class logits of D's K + 1
                    (``discriminator="classes"`` only)
    ensemble:       (q(y | x) + p_D(y | x, real)) / 2, the mean of the two probability vectors
`classify` returns the chosen one's log-probabilities, which the Trainer's ``valid_error`` /
``test_error`` (and model selection) read; `evaluation_metrics` gives the error of all three
(``valid_error_encoder``, ``test_error_discriminator``, ...). D reads an image with missing pixels
with its holes filled by the model's reconstruction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian
from pogm.models.base import as_batch, flat_x_shape_fields
from pogm.models.vae_gan.conditional_gan import ConditionalGAN, fill_holes
from pogm.models.semi_supervised.m2 import M2, M2Config
from pogm.models.registry import register_model

CLASSIFIERS = ("encoder", "discriminator", "ensemble")


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
    reconstruction: str = "pixels"  # or "features": log N(Dis_l(x) | Dis_l(x~), I) replaces log p(x | y, z)
    feature_scale: str = "unit"  # features: the Gaussian's covariance, I (Larsen et al.) or "learned" (a log-variance per feature)
    classifier: str = "encoder"  # or "discriminator" or "ensemble" (both need discriminator="classes")


@register_model("m2-gan", paper="Kingma et al. 2014 (M2) + Mirza & Osindero 2014 (conditional GAN); Chen, Fang & Ju 2016", summary="M2 with a conditional GAN on its generator; q(y|x), D or their ensemble classifies")
class M2GAN(ConditionalGAN, M2):
    """M2 whose generator also fools a conditional discriminator."""

    Config = M2GANConfig

    def __init__(self, config: M2GANConfig) -> None:
        if config.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {config.classifier!r}; choose one of {list(CLASSIFIERS)}")
        if config.classifier != "encoder" and config.discriminator != "classes":
            raise ValueError(f"classifier={config.classifier!r} reads the class logits of the K + 1-class discriminator; set discriminator='classes' (this one is {config.discriminator!r})")
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

    @torch.no_grad()
    def reconstructions(self, x: Tensor, labels: Tensor) -> Tensor:
        """x~ = E p(x | y, z), z ~ q(z | x, y), for images ``x`` ``[B, D]`` and ``labels`` ``[B]``:
        ``[B, D]``, the fakes that D also sees with ``reconstruction="features"`` (no gradient)."""
        y = self.one_hot(labels)  # [B, K]
        z = DiagonalGaussian(*self.q_z_xy(x, y)).rsample()  # [B, Z]
        return self.p_x.mean(self.p_x_yz(z, y))

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        terms = super().loss(batch, kl_weight, step)  # M2's J^alpha and its parts
        x, mask = self.flat_x(batch)  # [B, D]
        labelled, _, y_l = self.labelled_rows(batch, x.device)
        is_labelled = torch.zeros(len(batch), dtype=torch.bool, device=x.device)  # [B]
        is_labelled[labelled] = True
        x_p, y_p = self.generate(len(batch))  # [B, D], [B]
        x_real = fill_holes(x, mask, x_p)  # [B, D], holes show no tell-tale zeros

        if self.config.discriminator == "pair" or self.reconstructs_features:  # a label for every real image
            labels = self.q_y_x(x).argmax(-1).detach()  # q(y|x)'s guess for the unlabelled images
        else:
            labels = torch.zeros(len(batch), dtype=torch.long, device=x.device)
        labels[labelled] = y_l
        x_tilde = self.reconstructions(x, labels) if self.reconstructs_features else None  # [B, D]
        loss_d, loss_g = self.conditional_gan_losses(x_real, labels, is_labelled, x_p, y_p, x_tilde, labels)

        loss_vae = terms["loss"] + self.config.gan_weight * loss_g
        return {
            **{k: v.detach() for k, v in terms.items() if k != "loss"},
            "loss": loss_vae + loss_d,
            "loss/vae": loss_vae,
            "loss/discriminator": loss_d,
            "m2_loss": terms["loss"].detach(),
            "gan_generator": loss_g.detach(),
        }

    # ------------------------------------------------------------------ the classifiers
    @torch.no_grad()
    def class_log_probabilities(self, batch: Tensor | Batch, classifiers: tuple[str, ...] = CLASSIFIERS) -> dict[str, Tensor]:
        """``{classifier: log p(y | x) [B, K]}`` for each of ``classifiers`` (those this model has:
        the discriminator's and the ensemble need ``discriminator="classes"``)."""
        batch = as_batch(batch)
        x, mask = self.flat_x(batch)  # [B, D]
        K = self.config.num_classes
        out = {"encoder": torch.log_softmax(self.q_y_x(x), -1)}  # [B, K], log q(y | x)
        if self.config.discriminator == "classes" and set(classifiers) - {"encoder"}:
            x_shown = x if mask is None else fill_holes(x, mask, self.reconstruct(batch).reshape(x.shape))  # [B, D]
            logits, _ = self.discriminator(x_shown)  # [B, K + 1]
            out["discriminator"] = torch.log_softmax(logits[..., :K], -1)  # [B, K], log p_D(y | x, real)
            both = torch.stack([out["encoder"], out["discriminator"]])  # [2, B, K]
            out["ensemble"] = torch.logsumexp(both, 0) - math.log(2)  # [B, K], log of the mean probability
        return {name: out[name] for name in classifiers if name in out}

    @torch.no_grad()
    def classify(self, x: Tensor | Batch) -> Tensor:
        """log p(y | x) ``[B, K]`` of the configured ``classifier``: q(y|x), D's K class logits, or their ensemble."""
        return self.class_log_probabilities(x, (self.config.classifier,))[self.config.classifier]

    @torch.no_grad()
    def classifier_errors(self, dataset: Any, batch_size: int = 1000) -> dict[str, float]:
        """``{"error_<classifier>": error rate}`` on the labelled rows of ``dataset`` for every
        classifier the model has (empty when it has only the encoder, or the data no labels)."""
        from pogm.data.dataset import evaluation_view
        from pogm.data.streams import iterate_batches

        if self.config.discriminator != "classes" or dataset.y is None or dataset.num_labelled == 0:
            return {}
        wrong, labelled = dict.fromkeys(CLASSIFIERS, 0), 0
        for batch in iterate_batches(evaluation_view(dataset), batch_size, self.device):
            scored = torch.ones_like(batch.y, dtype=torch.bool) if batch.y_mask is None else batch.y_mask  # [B], unlabelled rows are not scored
            for name, log_p in self.class_log_probabilities(batch).items():
                wrong[name] += int(((log_p.argmax(-1) != batch.y) & scored).sum())
            labelled += int(scored.sum())
        return {f"error_{name}": wrong[name] / labelled for name in CLASSIFIERS}

    def evaluation_metrics(self, dataset: Any) -> dict[str, float]:
        """The error of each classifier, logged by the Trainer as ``valid_error_<classifier>`` and ``test_error_<classifier>``."""
        return self.classifier_errors(dataset)


__all__ = ["CLASSIFIERS", "M2GAN", "M2GANConfig"]
