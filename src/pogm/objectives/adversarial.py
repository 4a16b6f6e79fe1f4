"""Adversarial objectives, separate from the networks that use them.

All losses take discriminator logits (never probabilities) and are computed with softplus /
log-softmax, so saturated discriminators give exact gradients instead of log(0).

* GAN (Goodfellow et al. 2014): D maximises E log D(x) + E log(1 - D(G(z))); with logits l,
  -log D = softplus(-l) and -log(1 - D) = softplus(l).
* The generator's loss is the non-saturating -log D(G(z)) by default, or the minimax
  log(1 - D(G(z))).
* Conditional GAN with K + 1 outputs (Salimans et al. 2016; the poster's "discriminator assigning
  probability to real images with different labels and fake images as a single class"): real
  labelled images should get their class, real unlabelled images any real class, fakes class K.
* VAE-GAN (Larsen et al. 2016): the reconstruction error measured on a discriminator layer,
  L_llike^Dis_l = -log N(Dis_l(x) | Dis_l(x~), I) (eq. 6), and the equilibrium gate that pauses
  the discriminator when it wins too clearly and the decoder when it loses too clearly.
* ALI / HALI (Dumoulin et al. 2016; HALI's Algorithm 1): D tells the encoder's joint (x, z^) from
  the decoder's (x~, z); encoder and decoder share one generator loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

GENERATOR_FORMS = ("non-saturating", "minimax")


def real_loss(logits: Tensor) -> Tensor:
    """-log D(x) per example: ``[B]``."""
    return F.softplus(-logits)


def fake_loss(logits: Tensor) -> Tensor:
    """-log(1 - D(x)) per example: ``[B]``."""
    return F.softplus(logits)


def discriminator_loss(real_logits: Tensor, *fake_logits: Tensor) -> Tensor:
    """-[E log D(x) + sum_f E log(1 - D(x_f))]: one real batch against each kind of fake
    (Larsen et al. show D reconstructions and prior samples: two fake terms)."""
    loss = real_loss(real_logits).mean()
    for logits in fake_logits:
        loss = loss + fake_loss(logits).mean()
    return loss


def generator_loss(fake_logits: Tensor, form: str = "non-saturating") -> Tensor:
    """The generator's loss on its samples: -E log D(G(z)) (non-saturating) or E log(1 - D(G(z)))."""
    if form == "non-saturating":
        return real_loss(fake_logits).mean()
    if form == "minimax":
        return -fake_loss(fake_logits).mean()
    raise ValueError(f"unknown generator loss {form!r}; choose one of {list(GENERATOR_FORMS)}")


def class_discriminator_loss(real_logits: Tensor, real_labels: Tensor | None, real_labelled: Tensor | None, *fake_logits: Tensor) -> Tensor:
    """The K + 1-class discriminator's loss.

    ``real_logits`` ``[B, K + 1]``; rows with ``real_labelled`` True must be their class
    (cross-entropy), the others any real class: -log sum_{k<K} p(k|x). Each of ``fake_logits``
    ``[B_f, K + 1]`` must be class K: -E log p(K | x_f), one mean per kind of fake (prior
    samples; reconstructions too where Larsen et al. show D those), as in `discriminator_loss`.
    """
    log_p = torch.log_softmax(real_logits, dim=-1)  # [B, K+1]
    log_p_real = torch.logsumexp(log_p[..., :-1], dim=-1)  # [B]: log (1 - p(fake | x))
    if real_labels is not None and real_labelled is not None and bool(real_labelled.any()):
        labels = torch.where(real_labelled, real_labels, torch.zeros_like(real_labels))
        log_p_class = log_p.gather(-1, labels[:, None]).squeeze(-1)  # [B]
        per_example = torch.where(real_labelled, log_p_class, log_p_real)
    else:
        per_example = log_p_real
    loss = -per_example.mean()
    for logits in fake_logits:
        loss = loss - torch.log_softmax(logits, dim=-1)[..., -1].mean()  # -E log p(fake | x_f)
    return loss


def class_generator_loss(fake_logits: Tensor, labels: Tensor) -> Tensor:
    """The generator asks the K + 1-class discriminator to see its sample of class y as a real
    y: -E log p(y | G(z, y))."""
    return F.cross_entropy(fake_logits, labels)


def feature_reconstruction(features_real: Tensor, features_fake: Tensor, log_var: Tensor | None = None) -> Tensor:
    """L_llike^Dis_l of Larsen et al. (eq. 6) per example: -log N(Dis_l(x) | Dis_l(x~), I) =
    0.5 ||Dis_l(x) - Dis_l(x~)||^2 + (F / 2) log 2 pi, ``[..., B]`` from features ``[..., B, F]``.
    ``log_var`` ``[F]``: the diagonal Gaussian N(Dis_l(x) | Dis_l(x~), diag exp(log_var)) instead
    of the identity (a learned scale per feature, not in Larsen et al.)."""
    if log_var is None:
        squared = (features_real - features_fake).pow(2).sum(-1)
        return 0.5 * squared + 0.5 * features_real.shape[-1] * math.log(2 * math.pi)
    elements = (features_real - features_fake).pow(2) * torch.exp(-log_var) + log_var + math.log(2 * math.pi)  # [..., B, F]
    return 0.5 * elements.sum(-1)


def equilibrium_gates(real_bce: float, fake_bce: float, equilibrium: float = 0.68, margin: float = 0.35) -> tuple[bool, bool]:
    """``(train_discriminator, train_decoder)`` from the discriminator's mean cross-entropies on
    real and fake images (the balancing rule of Larsen et al.'s code).

    D pauses while it wins too clearly (either loss below ``equilibrium - margin``), the decoder
    while it loses too clearly (either loss above ``equilibrium + margin``); never both.
    """
    train_discriminator = not (real_bce < equilibrium - margin or fake_bce < equilibrium - margin)
    train_decoder = not (real_bce > equilibrium + margin or fake_bce > equilibrium + margin)
    if not train_discriminator and not train_decoder:
        return True, True
    return train_discriminator, train_decoder


def joint_generator_loss(encoder_logits: Tensor, decoder_logits: Tensor, form: str = "non-saturating") -> Tensor:
    """ALI's and HALI's generator loss (Dumoulin et al. 2016; HALI, Algorithm 1): the encoder's
    joint (x, z^) and the decoder's joint (x~, z) each try to pass for the other.

    ``encoder_logits`` are D's logits on (x, z^_1..L) (the side D calls real), ``decoder_logits``
    on (x~, z_1..L). Non-saturating (Algorithm 1): -E log(1 - D(x, z^)) - E log D(x~, z);
    minimax: minus the discriminator's loss.
    """
    if form == "non-saturating":
        return fake_loss(encoder_logits).mean() + real_loss(decoder_logits).mean()
    if form == "minimax":
        return -discriminator_loss(encoder_logits, decoder_logits)
    raise ValueError(f"unknown generator loss {form!r}; choose one of {list(GENERATOR_FORMS)}")


__all__ = [
    "GENERATOR_FORMS",
    "class_discriminator_loss",
    "class_generator_loss",
    "discriminator_loss",
    "equilibrium_gates",
    "fake_loss",
    "feature_reconstruction",
    "generator_loss",
    "joint_generator_loss",
    "real_loss",
]

