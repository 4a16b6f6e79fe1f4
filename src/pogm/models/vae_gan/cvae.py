"""Conditional VAE (Sohn, Lee & Yan 2015; Chen, Fang & Ju's (2016) "CVAE", "CVAE for image completion" and
"CVAE for style transfer").

Everything is conditioned on side information c: a class label y, a partial image, or both.

Generative model:   p(z | c) = N(mu_theta(c), diag(sigma^2_theta(c)))       (the prior network)
                    p(x | c, z) = f(x; c, z, theta)                            (the generator)
Inference model:    q(z | x, c) = N(mu_phi(x, c), diag(sigma^2_phi(x, c)))    (the recognition network)

Objective (the poster's CVAE bound, Sohn et al. eq. 4):
    log p(x | c) >= E_q(z|x,c)[log p(x | c, z)] - KL(q(z | x, c) || p(z | c)),
with the KL between the two diagonal Gaussians in closed form and one reparameterised z.

The condition c (``condition`` in the config):

* ``"label"``: c = y, one-hot, a side input of every network. The target x is every observed
  pixel; rows without a label are skipped.
* ``"partial"``: c = (x * m_c, m_c), the shown part of the image and its per-pixel mask m_c,
  stacked as channels. In training every row draws a quadrant pattern (the number of quadrants
  uniform over ``observed_quadrants``, then a uniformly random subset; quadrants q0 top-left,
  q1 top-right, q2 bottom-left, q3 bottom-right, the left half = q0 + q2), intersected with the
  row's own observation mask. The target is the pixels observed in the data but hidden from c,
  and only they enter log p(x | c, z). Every row is used, labelled or not.
* ``"both"``: c = (y, x * m_c, m_c); labelled rows only. The empty pattern (no quadrant shown)
  is drawn too, so that p(x | y) alone (sampling per class, style transfer) is trained.

Masks always come from the `Batch` (or explicit bool tensors), never from pixel values. The
recognition network q(z | x, c) sees x zero-filled where the data is missing, the data mask, and c.

Importance-sampled conditional likelihood (Burda et al. 2015 with the CVAE's prior network):
    log p(x_T | c) ~= log (1/k) sum_k p(x_T | c, z_k) p(z_k | c) / q(z_k | x, c),   z_k ~ q(z | x, c),
for a target set T of pixels outside the condition (`conditional_log_likelihood`).
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
from pogm.models.base import Model, SemiSupervised, as_batch
from pogm.models.registry import register_model
from pogm.nn import MLP, GaussianHead, ImageDecoder, ImageEncoder
from pogm.nn.images import check_architecture
from pogm.models.vae_gan.quadrants import QUADRANT_NAMES, quadrant_grid
from pogm.objectives import chunked_importance_weighted_bound

CONDITIONS = ("partial", "label", "both")
@dataclass(frozen=True)
class CVAEConfig:
    x_dim: int = 784  # C * H * W, filled in from the data
    image_shape: tuple[int, ...] = (1, 28, 28)  # the training images' shape, filled in from the data
    num_classes: int = 0  # 0 if the data has no classes
    condition: str = "partial"  # "partial" | "label" | "both"
    z_dim: int = 32
    hidden: tuple[int, ...] = (500, 500)
    architecture: str = "mlp"  # "mlp" | "dcgan" (pogm.nn.images)
    channels: tuple[int, ...] = (64, 128)  # dcgan: one stride-2 convolution per entry
    activation: str = "relu"
    likelihood: str = "bernoulli"
    observed_quadrants: tuple[int, ...] = (1, 2, 3)  # how many of the 4 quadrants a training condition shows


@register_model(
    "cvae",
    paper="Sohn et al. 2015, Learning structured output representation using deep conditional generative models; Chen, Fang & Ju 2016",
    summary="Conditional VAE: image completion from partial images and label-conditioned style transfer",
)
class CVAE(SemiSupervised, Model):
    """Conditional VAE with a prior network p(z|c), conditioned on a label, a partial image or both."""

    def figures(self, data, out, labelled_index=None, run_dir=None):
        """Completions from shown quadrants, style transfer and samples per class (`pogm.models.vae_gan.completion`)."""
        from pogm.models.vae_gan.completion import cvae_figures

        return cvae_figures(self, data, out)

    def sampled_classes(self) -> int:
        return self.config.num_classes if self.conditions_on_label else 0


    Config = CVAEConfig
    uses_labels: ClassVar[bool] = True
    uses_unlabelled: ClassVar[bool] = True  # the partial CVAE learns from every row, the label CVAE skips unlabelled ones

    def __init__(self, config: CVAEConfig) -> None:
        super().__init__(config)
        c = config
        if c.condition not in CONDITIONS:
            raise ValueError(f"unknown condition {c.condition!r}; choose one of {list(CONDITIONS)}")
        check_architecture(c.architecture)
        if len(c.image_shape) != 3 or math.prod(c.image_shape) != c.x_dim:
            raise ValueError(f"image_shape {tuple(c.image_shape)} must be (C, H, W) with C * H * W = x_dim = {c.x_dim}")
        K = int(c.num_classes)
        if self.conditions_on_label and K < 1:
            raise ValueError(f"condition={c.condition!r} needs class labels; the data set has none (num_classes=0); use condition='partial'")
        counts = tuple(int(n) for n in c.observed_quadrants)
        if not counts or any(not 0 <= n <= 3 for n in counts):
            raise ValueError(f"observed_quadrants must list how many of the 4 quadrants a condition shows, each in 0..3; got {tuple(c.observed_quadrants)}")
        if c.likelihood.startswith("depth"):
            raise ValueError("the CVAE's likelihood masks out the pixels that are not its target; a 'depth' likelihood treats the mask as data; use bernoulli or gaussian*")
        channels, height, width = (int(s) for s in c.image_shape)
        D, Z = c.x_dim, c.z_dim
        self.p_x = make_likelihood(c.likelihood, D)
        params_per_pixel = self.p_x.num_params(D) // D
        label_dims = [K] if self.conditions_on_label else []
        partial_dims = [2 * D] if self.uses_partial else []
        # q(z | x, c): the image x (zero-filled), its data mask and, for a partial condition, c's two channels.
        q_channels = 2 * channels + (2 * channels if self.uses_partial else 0)
        self.q_z_xc = GaussianHead(ImageEncoder(c.architecture, (q_channels, height, width), label_dims, c.hidden, 2 * Z, c.channels, c.activation))
        # p(z | c): a network of the condition only.
        if self.uses_partial:
            self.p_z_c = GaussianHead(ImageEncoder(c.architecture, (2 * channels, height, width), label_dims, c.hidden, 2 * Z, c.channels, c.activation))
        else:
            self.p_z_c = GaussianHead(MLP(K, c.hidden, 2 * Z, c.activation))
        # p(x | c, z): z, then the flat condition (partial image channels, one-hot label).
        self.p_x_cz = ImageDecoder(c.architecture, [Z, *partial_dims, *label_dims], c.image_shape, params_per_pixel, tuple(reversed(c.hidden)), c.channels, c.activation)
        self.register_buffer("every_class", torch.eye(K).unsqueeze(1), persistent=False)  # [K, 1, K]
        self.register_buffer("quadrants", quadrant_grid(c.image_shape).unsqueeze(1), persistent=False)  # [4, 1, H, W]
        # "both" also trains the empty pattern: p(x | y) alone, for sampling per class and style transfer.
        counts = sorted(set(counts) | ({0} if c.condition == "both" else set()))
        self.register_buffer("pattern_counts", torch.tensor(counts), persistent=False)

    # ------------------------------------------------------------------ data
    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        if train is None or "x" not in train.shapes:
            raise ValueError(f"{cls.__name__} needs the training images (group 'x') to know their shape")
        shape = train.shapes["x"]
        if len(shape) == 2:
            shape = (1, *shape)  # [N, H, W]: one channel
        if len(shape) != 3:
            raise ValueError(
                f"{cls.__name__} conditions on parts of images and needs x of shape [N, C, H, W]; the data has x of shape "
                f"[N, {', '.join(map(str, shape))}]; store the images as [N, C, H, W] (e.g. x.reshape(-1, 1, 28, 28)) "
                f"or use an image source such as mnist or digits"
            )
        return {"x_dim": x_dim, "image_shape": shape, "num_classes": int(num_classes or 0)}

    @property
    def conditions_on_label(self) -> bool:
        return self.config.condition in ("label", "both")

    @property
    def uses_partial(self) -> bool:
        return self.config.condition in ("partial", "both")

    def image(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """``(x [B, C, H, W] zero-filled where missing, observed [B, C, H, W] bool)`` from the Batch's mask."""
        x, mask = self.flat_x(batch)  # [B, D], [B, D] / [B, 1] / None
        shape = (x.shape[0], *self.config.image_shape)
        if mask is None:
            mask = torch.ones((), dtype=torch.bool, device=x.device)
        return x.reshape(shape), mask.expand(x.shape).reshape(shape)

    def shown_mask(self, observed: Tensor, batch_size: int) -> Tensor:
        """An explicit bool mask of what the condition sees, as ``[B, C, H, W]``: accepts the image
        shape ``[C, H, W]`` / ``[1, C, H, W]`` / ``[B, C, H, W]``, ``[H, W]`` (every channel), or ``[B, 1]`` (whole rows)."""
        if observed.dtype != torch.bool:
            raise ValueError(f"observed must be a bool mask (True = the condition sees the pixel), got dtype {observed.dtype}")
        shape = tuple(self.config.image_shape)
        observed = observed.to(self.device)
        if tuple(observed.shape) in (shape, shape[1:]):
            observed = observed.reshape(1, *([1] * (3 - observed.dim())), *observed.shape)
        elif observed.dim() == 4 and tuple(observed.shape[1:]) == shape and observed.shape[0] in (1, batch_size):
            pass
        elif observed.dim() == 2 and observed.shape[1] == 1 and observed.shape[0] in (1, batch_size):
            observed = observed.reshape(-1, 1, 1, 1)
        else:
            raise ValueError(f"observed has shape {tuple(observed.shape)}; give {list(shape)}, [B, {', '.join(map(str, shape))}] or [B, 1] (whole rows)")
        return observed.expand(batch_size, *shape)

    def labels(self, batch: Batch, every_row: bool) -> tuple[Tensor | None, Tensor]:
        """``(one-hot labels [B, K] or None, labelled [B] bool)``; labels of labelled rows outside
        [0, K) are an error whatever the condition. ``every_row``: every row must carry a label."""
        B = len(batch)
        if batch.y is None or not self.config.num_classes:
            if every_row and self.conditions_on_label:
                raise ValueError(f"condition={self.config.condition!r} needs the label of every row; the batch has no labels")
            return None, torch.zeros(B, dtype=torch.bool, device=self.device)
        labelled = batch.y_mask.to(self.device)
        if every_row and self.conditions_on_label and not bool(labelled.all()):
            raise ValueError(f"condition={self.config.condition!r} needs the label of every row; {int((~labelled).sum())} of {B} rows are unlabelled")
        y = batch.y.to(self.device)
        self.one_hot(y[labelled])  # range check of the labels that are there (floats are an error too)
        return self.one_hot(torch.where(labelled, y, torch.zeros((), dtype=y.dtype, device=y.device))), labelled

    # ------------------------------------------------------------------ networks
    def condition_inputs(self, x: Tensor, shown: Tensor, y_one_hot: Tensor | None) -> list[Tensor]:
        """The flat side inputs of the networks for the condition c: ``[(x * m_c, m_c) [B, 2D]]`` for
        a partial image (pixels outside ``shown`` removed with torch.where), then ``[y [B, K]]``."""
        inputs = []
        if self.uses_partial:
            kept = torch.where(shown, x, torch.zeros((), dtype=x.dtype, device=x.device))  # [B, C, H, W]
            inputs.append(torch.cat([kept, shown.to(x.dtype)], dim=1).reshape(x.shape[0], -1))  # [B, 2D]
        if self.conditions_on_label:
            if y_one_hot is None:
                raise ValueError(f"condition={self.config.condition!r} needs labels")
            inputs.append(y_one_hot)
        return inputs

    def prior(self, x: Tensor, shown: Tensor, y_one_hot: Tensor | None = None) -> DiagonalGaussian:
        """p(z | c) for images ``x`` ``[B, C, H, W]`` shown where ``shown`` (bool) and labels ``y_one_hot``."""
        return DiagonalGaussian(*self.p_z_c(*self.condition_inputs(x, shown, y_one_hot)))

    def posterior(self, x: Tensor, observed: Tensor, c: list[Tensor]) -> DiagonalGaussian:
        """q(z | x, c): ``x`` zero-filled where unobserved, the data mask ``observed`` and the condition inputs ``c``."""
        B = x.shape[0]
        x = torch.where(observed, x, torch.zeros((), dtype=x.dtype, device=x.device))
        image = [x.reshape(B, -1), observed.to(x.dtype).reshape(B, -1)]  # [B, D] each
        if self.uses_partial:
            image.append(c[0])  # [B, 2D]
        side = c[1:] if self.uses_partial else c  # the label, if any
        return DiagonalGaussian(*self.q_z_xc(torch.cat(image, -1), *side))

    def generator(self, z: Tensor, c: list[Tensor]) -> Tensor:
        """Parameters of p(x | c, z): ``z`` ``[..., B, Z]`` -> ``[..., B, P * D]``."""
        return self.p_x_cz(z, *c)

    def random_patterns(self, batch_size: int) -> Tensor:
        """Bool ``[B, 1, H, W]``: per row, a random subset of the quadrants whose size is uniform over the pattern counts."""
        counts = self.pattern_counts[torch.randint(len(self.pattern_counts), (batch_size,), device=self.device)]  # [B]
        rank = torch.rand(batch_size, 4, device=self.device).argsort(-1).argsort(-1)  # [B, 4]: a random order of the quadrants
        chosen = rank < counts[:, None]  # [B, 4]
        return (chosen[:, :, None, None, None] & self.quadrants).any(1)  # [B, 1, H, W]

    # ------------------------------------------------------------------ objective
    def reconstruction_log_prob(self, params: Tensor, x: Tensor, mask: Tensor | None, y_one_hot: Tensor | None = None) -> Tensor:
        """The reconstruction term of the bound that `loss` trains, ``[..., B]``: log p(x_T | c, z)
        of the pixel likelihood (a GAN variant may score it on a discriminator's features, `ConditionalGAN`)."""
        return self.p_x.log_prob(params, x, mask)

    def _bound(self, x: Tensor, observed: Tensor, shown: Tensor, target: Tensor, y_one_hot: Tensor | None, pixels: bool = False) -> tuple[Tensor, Tensor]:
        """``(log p(x_T | c, z) [B], KL(q(z|x,c) || p(z|c)) [B])`` with one z ~ q(z | x, c): the
        condition sees ``shown`` (and the label), q sees x where ``observed``, T = ``target`` (all
        ``[B, C, H, W]`` bool). The first term is the trained reconstruction term
        (`reconstruction_log_prob`), or the pixel likelihood whatever the model trains (``pixels``)."""
        B = x.shape[0]
        c = self.condition_inputs(x, shown, y_one_hot)
        p_z_c = DiagonalGaussian(*self.p_z_c(*c))
        q_z_xc = self.posterior(x, observed, c)
        z = q_z_xc.rsample()  # [B, Z]
        params, x_flat, target_flat = self.generator(z, c), x.reshape(B, -1), target.reshape(B, -1)  # [B, P * D], [B, D], [B, D]
        if pixels:
            log_p_x_cz = self.p_x.log_prob(params, x_flat, target_flat)  # [B]
        else:
            log_p_x_cz = self.reconstruction_log_prob(params, x_flat, target_flat, y_one_hot)  # [B]
        return log_p_x_cz, q_z_xc.kl(p_z_c)

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, observed = self.image(batch)  # [B, C, H, W]
        y_one_hot, labelled = self.labels(batch, every_row=False)
        if self.conditions_on_label:  # rows without a label have no condition: skipped
            x, observed, y_one_hot = x[labelled], observed[labelled], None if y_one_hot is None else y_one_hot[labelled]
            if x.shape[0] == 0:
                zero = sum(p.sum() for p in self.parameters()) * 0.0  # no labelled row: a zero that backward accepts
                return {"loss": zero, "elbo": zero.detach(), "kl": zero.detach(), "log_p_x": zero.detach()}
        if self.uses_partial:
            shown = observed & self.random_patterns(x.shape[0])  # [B, C, H, W]
            target = observed & ~shown  # observed in the data, hidden from the condition
        else:
            shown, target = torch.zeros_like(observed), observed
        log_p_x_cz, kl = self._bound(x, observed, shown, target, y_one_hot)
        bound = log_p_x_cz - kl_weight * kl
        return {
            "loss": -bound.mean(),
            "elbo": (log_p_x_cz - kl).mean().detach(),
            "kl": kl.mean().detach(),
            "log_p_x": log_p_x_cz.mean().detach(),
            "target_pixels": target.flatten(1).sum(-1).to(x.dtype).mean(),
        }

    # ------------------------------------------------------------------ evaluation
    def conditional_split(self, batch: Batch, observed: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor | None]:
        """``(x, data mask, shown, target, one-hot labels)`` for a condition that sees the batch's
        observed pixels inside ``observed`` (a partial condition; a label-only one sees no pixel);
        the target is the batch's observed pixels outside ``observed``."""
        x, data_mask = self.image(batch)
        y_one_hot, _ = self.labels(batch, every_row=True)
        inside = self.shown_mask(observed, x.shape[0])  # [B, C, H, W]
        shown = data_mask & inside if self.uses_partial else torch.zeros_like(data_mask)
        return x, data_mask, shown, data_mask & ~inside, y_one_hot

    def conditional_log_weights(self, batch: Batch, observed: Tensor, k: int) -> Tensor:
        """``[k, B]``: log p(x_T | c, z_k) + log p(z_k | c) - log q(z_k | x, c), z_k ~ q(z | x, c)."""
        x, data_mask, shown, target, y_one_hot = self.conditional_split(batch, observed)
        B = x.shape[0]
        c = self.condition_inputs(x, shown, y_one_hot)
        p_z_c = DiagonalGaussian(*self.p_z_c(*c))
        q_z_xc = self.posterior(x, data_mask, c)
        z = q_z_xc.rsample(k)  # [k, B, Z]
        log_p_x_cz = self.p_x.log_prob(self.generator(z, c), x.reshape(B, -1), target.reshape(B, -1))  # [k, B]
        return log_p_x_cz + p_z_c.log_prob(z) - q_z_xc.log_prob(z)

    @torch.no_grad()
    def conditional_log_likelihood(self, batch: Batch, observed: Tensor, k: int = 1000, chunk_size: int = 250, progress: bool = False) -> Tensor:
        """``[B]`` importance-sampled estimate of log p(x_T | c) with ``k`` samples of q(z | x, c)
        (a stochastic lower bound that tightens as k grows; log-sum-exp, ``chunk_size`` at a time).

        ``observed`` (bool; the image shape, ``[B, C, H, W]`` or ``[B, 1]``) says which pixels the
        condition sees; the target T is the batch's observed pixels outside it. A label-only CVAE
        conditions on the batch's labels alone, so it estimates log p(x_T | y).
        """
        return chunked_importance_weighted_bound(lambda n: self.conditional_log_weights(batch, observed, n), k, chunk_size, progress)

    @torch.no_grad()
    def conditional_elbo(self, batch: Batch, observed: Tensor) -> Tensor:
        """``[B]`` one-sample ELBO of log p(x_T | c) (analytic KL), with ``observed`` as in `conditional_log_likelihood`."""
        x, data_mask, shown, target, y_one_hot = self.conditional_split(batch, observed)
        log_p_x_cz, kl = self._bound(x, data_mask, shown, target, y_one_hot, pixels=True)
        return log_p_x_cz - kl

    # ------------------------------------------------------------------ completion and sampling
    def _completion_latents(self, batch: Batch, samples: int | None) -> tuple[Tensor, list[Tensor]]:
        """z for completing ``batch`` from its observed pixels: the mean (``samples=None``, ``[B, Z]``)
        or ``samples`` draws (``[n, B, Z]``) of p(z | c); for a label-only CVAE, of q(z | x_observed, y)."""
        x, observed = self.image(batch)
        y_one_hot, _ = self.labels(batch, every_row=True)
        c = self.condition_inputs(x, observed, y_one_hot)
        dist = DiagonalGaussian(*self.p_z_c(*c)) if self.uses_partial else self.posterior(x, observed, c)
        return (dist.mean if samples is None else dist.rsample(samples)), c

    @torch.no_grad()
    def impute(self, batch: Batch) -> Tensor:
        """The batch's images with unobserved pixels filled by the generator's mean at z = the mean
        of p(z | c), c = the observed pixels (per-pixel or per-row masks); observed pixels bit for bit."""
        x = batch.x[self.group]
        z, c = self._completion_latents(batch, None)
        mean = self.p_x.mean(self.generator(z, c)).reshape(x.shape)
        return torch.where(batch.x_mask[self.group].to(x.device), x, mean)

    @torch.no_grad()
    def complete(self, batch: Batch, samples: int = 1) -> Tensor:
        """``[samples, B, ...]`` completions with z ~ p(z | c) (the generator's mean in the unobserved pixels; observed ones kept)."""
        x = batch.x[self.group]
        z, c = self._completion_latents(batch, samples)  # [n, B, Z]
        mean = self.p_x.mean(self.generator(z, c)).reshape(samples, *x.shape)
        return torch.where(batch.x_mask[self.group].to(x.device), x, mean)

    def _label_tensor(self, n: int, y: Tensor | int | None) -> Tensor:
        if y is None:
            return torch.randint(self.config.num_classes, (n,), device=self.device)
        if isinstance(y, int):
            return torch.full((n,), y, dtype=torch.long, device=self.device)
        return torch.as_tensor(y, device=self.device)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """``[n, D]`` mean images of p(x | c, z), z ~ p(z | c), with nothing of the image shown:
        c = y for a label CVAE (an int, ``[n]`` labels, or random), the empty partial image otherwise."""
        c_dims = tuple(int(s) for s in self.config.image_shape)
        if not self.conditions_on_label and y is not None:
            raise ValueError("this CVAE is conditioned on partial images, not labels (condition='partial'); sample without y")
        y_one_hot = self.one_hot(self._label_tensor(n, y)) if self.conditions_on_label else None
        empty = torch.zeros(n, *c_dims, device=self.device)
        c = self.condition_inputs(empty, empty.bool(), y_one_hot)
        z = DiagonalGaussian(*self.p_z_c(*c)).rsample()  # [n, Z]
        return self.p_x.mean(self.generator(z, c))  # [n, D]

    @torch.no_grad()
    def transfer_style(self, batch: Batch, labels: Tensor | None = None) -> Tensor:
        """``[B, L, D]``: each image's style z = the mean of q(z | x, y_true) decoded with every label
        (or the ``L`` given ``labels``): the poster's style-transfer grid. Needs condition 'label' or
        'both' (the latter with nothing of the image shown) and the label of every row."""
        if not self.conditions_on_label:
            raise ValueError("transfer_style needs a CVAE conditioned on labels (condition='label' or 'both'); this one has condition='partial'")
        batch = as_batch(batch)
        x, observed = self.image(batch)
        y_one_hot, _ = self.labels(batch, every_row=True)
        nothing = torch.zeros_like(observed)
        z = self.posterior(x, observed, self.condition_inputs(x, nothing, y_one_hot)).mean  # [B, Z]
        targets = self.every_class if labels is None else self.one_hot(torch.as_tensor(labels, device=self.device)).unsqueeze(1)  # [L, 1, K]
        c = self.condition_inputs(x, nothing, y_one_hot)
        c[-1] = targets  # the label input: every target label, broadcast over the batch
        mean = self.p_x.mean(self.generator(z, c))  # [L, B, D]
        return mean.transpose(0, 1)


__all__ = ["CONDITIONS", "CVAE", "QUADRANT_NAMES", "CVAEConfig", "quadrant_grid"]
