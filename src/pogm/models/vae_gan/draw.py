"""DRAW: a recurrent VAE that draws an image on a canvas over T steps (Gregor, Danihelka, Graves,
Rezende & Wierstra 2015, "DRAW: A Recurrent Neural Network For Image Generation"; Chen, Fang & Ju 2016,
"DRAW", with its "Generalization 1": conditional DRAW).

Inference (the encoder reads the image and the error of the canvas so far), for t = 1..T:
    x^_t    = x - sigmoid(c_{t-1})                                                  (eq. 3)
    r_t     = read(x, x^_t, h^dec_{t-1})                                            (eq. 4)
    h^enc_t = LSTM^enc(h^enc_{t-1}, [r_t, h^dec_{t-1}, y])                           (eq. 5)
    z_t     ~ Q(Z_t | h^enc_t) = N(mu(h^enc_t), diag(sigma^2(h^enc_t)))        (eqs. 1-2, 6)
Generation (the decoder writes onto the canvas):
    h^dec_t = LSTM^dec(h^dec_{t-1}, [z_t, y])                                        (eq. 7)
    c_t     = c_{t-1} + write(h^dec_t)                                               (eq. 8)
    p(x | z_{1:T}) = Bernoulli(sigmoid(c_T)),   p(z_t) = N(0, I)                      (eq. 9)
Loss: L = L^x + L^z = -log p(x | z_{1:T}) + sum_t KL(Q(Z_t | h^enc_t) || N(0, I))  (eqs. 9-12)

``attention=False`` reads the whole image and error image and writes the whole canvas
(eqs. 17-18); ``attention=True`` reads an N x N glimpse of each and writes an N x N patch through
a grid of Gaussian filters (eqs. 19-29, `pogm.nn.attention`). The label y of conditional DRAW
(``cdraw``) enters both LSTMs at every step; unconditional DRAW has no y. The initial canvas and
LSTM states are learned. Pixels that the Batch marks missing are left out of L^x (the
likelihood's mask) and have a zero error image, so the encoder never sees them.

The bound -L is estimated with one sample of z_{1:T}; `log_likelihood` tightens it with
importance sampling over whole sequences (Burda et al. 2015).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian, standard_normal_log_prob
from pogm.likelihoods import make_likelihood
from pogm.models.base import (
    ImportanceWeighted,
    ImputesByReconstruction,
    Model,
    as_batch,
    flat_x_shape_fields,
    image_fields,
    one_hot_labels,
    zero_fill,
)
from pogm.models.registry import register_model
from pogm.nn import GaussianHead
from pogm.nn.attention import AttentionRead, AttentionWrite, FullRead, FullWrite
from pogm.objectives import elbo


@dataclass(frozen=True)
class DRAWConfig:
    x_dim: int = 784
    image_shape: tuple[int, ...] = (1, 28, 28)
    num_classes: int = 0  # > 0: conditional DRAW, the one-hot label enters both LSTMs at every step
    steps: int = 64  # T; Gregor et al., Table 3 (MNIST)
    z_dim: int = 100  # per step
    lstm_units: int = 256
    attention: bool = True
    read_size: int = 2  # N of the read glimpse (Table 3: 2 x 2)
    write_size: int = 5  # N of the write patch (Table 3: 5 x 5)


@dataclass
class Unrolled:
    """One pass of the encoder and decoder over T steps, per example."""

    canvas: Tensor  # [B, D] logits of p(x | z_{1:T}), c_T
    kl: Tensor  # [B] sum over steps of KL(Q(Z_t | h^enc_t) || N(0, I)), L^z
    log_prior_minus_q: Tensor  # [B] sum over steps of log N(z_t; 0, I) - log Q(z_t | h^enc_t)
    canvases: list[Tensor] = field(default_factory=list)  # c_1..c_T if asked for


@register_model("draw", paper="Gregor et al. 2015, DRAW: A Recurrent Neural Network For Image Generation; Chen, Fang & Ju 2016", summary="DRAW: recurrent VAE writing a canvas over T steps, with or without attention")
class DRAW(ImportanceWeighted, ImputesByReconstruction, Model):
    """DRAW with LSTM encoder and decoder, attention-free or with selective attention."""

    def figures(self, data, out, labelled_index=None, run_dir=None):
        """The canvas sequence, samples (per class), reconstructions and completions (`pogm.models.vae_gan.draw_figures`)."""
        from pogm.models.vae_gan.draw_figures import draw_figures

        return draw_figures(self, data, out)

    def sampled_classes(self) -> int:
        return self.config.num_classes if self.conditional else 0


    Config = DRAWConfig
    conditional: ClassVar[bool] = False
    sigmoid_images: ClassVar[bool] = True  # real images must lie in [0, 1] (`Model.data_support`)

    def __init__(self, config: DRAWConfig) -> None:
        super().__init__(config)
        c = config
        if math.prod(c.image_shape) != c.x_dim:
            raise ValueError(f"image_shape {tuple(c.image_shape)} has {math.prod(c.image_shape)} values but x_dim={c.x_dim}")
        if c.steps < 1:
            raise ValueError(f"steps (T) must be at least 1, got {c.steps}")
        if self.conditional and c.num_classes < 2:
            raise ValueError(f"{type(self).__name__} needs class labels (num_classes >= 2), got num_classes={c.num_classes}")
        if c.attention and len(c.image_shape) != 3:
            raise ValueError(f"attention needs images [C, H, W]; image_shape is {tuple(c.image_shape)} (use --set model.attention=false)")
        label_dim = c.num_classes if self.conditional else 0
        if c.attention:
            self.read = AttentionRead(c.lstm_units, c.image_shape, c.read_size)
            self.write = AttentionWrite(c.lstm_units, c.image_shape, c.write_size)
        else:
            self.read = FullRead(c.lstm_units, c.image_shape)
            self.write = FullWrite(c.lstm_units, c.image_shape)
        self.encoder = nn.LSTMCell(self.read.out_dim + c.lstm_units + label_dim, c.lstm_units)
        self.q_z = GaussianHead(nn.Linear(c.lstm_units, 2 * c.z_dim))
        self.decoder = nn.LSTMCell(c.z_dim + label_dim, c.lstm_units)
        self.initial_canvas = nn.Parameter(torch.zeros(c.x_dim))
        self.initial_h_enc = nn.Parameter(torch.zeros(c.lstm_units))
        self.initial_h_dec = nn.Parameter(torch.zeros(c.lstm_units))
        self.p_x = make_likelihood("bernoulli", c.x_dim)

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        fields = {"x_dim": x_dim, **flat_x_shape_fields(x_dim, train)}
        if cls.conditional:
            fields = image_fields(cls, x_dim, train)
            if not num_classes:
                raise ValueError(f"{cls.__name__} draws a given class and needs class labels; the data set has none (use `draw`)")
            fields["num_classes"] = num_classes
        return fields

    # ----- the recurrence -------------------------------------------------------------------

    def initial_states(self, n: int) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor], Tensor]:
        """Learned (h^enc_0, cell), (h^dec_0, cell) and c_0 for ``n`` rows."""
        zeros = torch.zeros(n, self.config.lstm_units, dtype=self.initial_canvas.dtype, device=self.initial_canvas.device)
        return (
            (self.initial_h_enc.expand(n, -1), zeros),
            (self.initial_h_dec.expand(n, -1), zeros),
            self.initial_canvas.expand(n, -1),
        )

    def unroll(self, x: Tensor, mask: Tensor | None, y_one_hot: Tensor | None, keep_canvases: bool = False) -> Unrolled:
        """Encode and decode ``x`` ``[B, D]`` (zero-filled where ``mask`` is False) over T steps."""
        B = x.shape[0]
        (h_enc, cell_enc), (h_dec, cell_dec), canvas = self.initial_states(B)
        labels = [] if y_one_hot is None else [y_one_hot]
        kl = x.new_zeros(B)
        log_prior_minus_q = x.new_zeros(B)
        canvases = []
        for _ in range(self.config.steps):
            error = x - torch.sigmoid(canvas)  # [B, D], x^_t (eq. 3)
            if mask is not None:
                error = zero_fill(error, mask)  # a missing pixel has no error to show
            r = self.read(x, error, h_dec)  # [B, R] (eq. 4)
            h_enc, cell_enc = self.encoder(torch.cat([r, h_dec, *labels], -1), (h_enc, cell_enc))  # eq. 5
            q_z_t = DiagonalGaussian(*self.q_z(h_enc))  # [B, Z] (eq. 6)
            z_t = q_z_t.rsample()  # [B, Z]
            kl = kl + q_z_t.kl_standard_normal()  # eq. 11, one step
            log_prior_minus_q = log_prior_minus_q + standard_normal_log_prob(z_t) - q_z_t.log_prob(z_t)
            h_dec, cell_dec = self.decoder(torch.cat([z_t, *labels], -1), (h_dec, cell_dec))  # eq. 7
            canvas = canvas + self.write(h_dec)  # [B, D] (eq. 8)
            if keep_canvases:
                canvases.append(canvas)
        return Unrolled(canvas=canvas, kl=kl, log_prior_minus_q=log_prior_minus_q, canvases=canvases)

    def generate(self, n: int, y_one_hot: Tensor | None = None, keep_canvases: bool = False) -> tuple[Tensor, list[Tensor]]:
        """Canvas logits ``[n, D]`` of a draw from p(x | z_{1:T}), z_t ~ N(0, I), run through the
        decoder only; differentiable (the GAN's generator), and the T canvases if asked for."""
        (_, _), (h_dec, cell_dec), canvas = self.initial_states(n)
        labels = [] if y_one_hot is None else [y_one_hot]
        canvases = []
        for _ in range(self.config.steps):
            z_t = torch.randn(n, self.config.z_dim, dtype=canvas.dtype, device=canvas.device)  # [n, Z]
            h_dec, cell_dec = self.decoder(torch.cat([z_t, *labels], -1), (h_dec, cell_dec))
            canvas = canvas + self.write(h_dec)  # [n, D]
            if keep_canvases:
                canvases.append(canvas)
        return canvas, canvases

    # ----- labels ---------------------------------------------------------------------------

    def one_hot(self, y: Tensor) -> Tensor:
        """``[..., K]`` one-hot labels; labels outside [0, K) are an error."""
        return one_hot_labels(y, self.config.num_classes, self.initial_canvas.dtype)

    def rows_and_labels(self, batch: Batch) -> tuple[Tensor, Tensor | None, Tensor | None, Tensor | None]:
        """``(x [B, D], mask, one-hot y or None, labels or None)``; conditional DRAW keeps the labelled rows only."""
        x, mask = self.flat_x(batch)
        if not self.conditional:
            return x, mask, None, None
        if batch.y is None:
            raise ValueError(f"{type(self).__name__} needs the label of every row it learns from; the batch has no labels")
        keep = batch.y_mask
        labels = batch.y[keep]
        return x[keep], None if mask is None else mask[keep], self.one_hot(labels), labels

    def sample_labels(self, n: int, y: Tensor | int | None) -> Tensor | None:
        """One-hot labels ``[n, K]`` for sampling: ``y`` (one label or ``n``), or the classes in turn."""
        if not self.conditional:
            if y is not None:
                raise ValueError(f"{type(self).__name__} is unconditional and cannot sample a given label; train `cdraw` for that")
            return None
        if y is None:
            y = torch.arange(n, device=self.device) % self.config.num_classes
        y = torch.as_tensor(y, device=self.device).long()
        return self.one_hot(y.expand(n) if y.dim() == 0 else y)

    # ----- objectives -----------------------------------------------------------------------

    def reconstruction_log_prob(self, params: Tensor, x: Tensor, mask: Tensor | None, y_one_hot: Tensor | None = None) -> Tensor:
        """The reconstruction term of the bound that `loss` trains, ``[B]``: log p(x | z_{1:T}) of the
        pixel likelihood, -L^x (a GAN variant may score it on a discriminator's features, `ConditionalGAN`)."""
        return self.p_x.log_prob(params, x, mask)

    def bound_terms(self, batch: Batch, kl_weight: float = 1.0) -> tuple[Tensor, dict[str, Tensor], Tensor, Tensor | None, Tensor | None, Tensor]:
        """``(-bound per row [B'], logged terms, x [B', D], its mask, labels, canvas logits c_T [B', D])``
        on the rows the model learns from."""
        x, mask, y_one_hot, labels = self.rows_and_labels(batch)
        unrolled = self.unroll(x, mask, y_one_hot)
        log_p_x_z = self.reconstruction_log_prob(unrolled.canvas, x, mask, y_one_hot)  # [B'], -L^x (eq. 9)
        terms = {"elbo": elbo(log_p_x_z, unrolled.kl).mean().detach(), "kl": unrolled.kl.mean().detach(), "reconstruction": -log_p_x_z.mean().detach()}
        return -elbo(log_p_x_z, unrolled.kl, kl_weight), terms, x, mask, labels, unrolled.canvas

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        negative_bound, terms, *_ = self.bound_terms(batch, kl_weight)
        if negative_bound.numel() == 0:  # conditional DRAW on a batch without labelled rows
            return {"loss": self.initial_canvas.sum() * 0.0}
        return {"loss": negative_bound.mean(), **terms}

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x, z_{1:T}) - log Q(z_{1:T} | x) for ``k`` sampled sequences: ``[k, B]``."""
        x, mask, y_one_hot, _ = self.rows_and_labels(batch)
        B = x.shape[0]

        def repeat(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.repeat(k, *([1] * (t.dim() - 1)))  # [k B, ...], sample-major

        x_k, mask_k = repeat(x), repeat(mask)
        unrolled = self.unroll(x_k, mask_k, repeat(y_one_hot))
        log_p_x_z = self.p_x.log_prob(unrolled.canvas, x_k, mask_k)  # [k B]
        return (log_p_x_z + unrolled.log_prior_minus_q).reshape(k, B)

    # ----- what the model offers ------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, batch: Batch | Tensor) -> Tensor:
        """The final canvas's mean for each row (one sample of z_{1:T} from Q)."""
        batch = as_batch(batch)
        x, mask = self.flat_x(batch)
        y_one_hot = None
        if self.conditional:
            if batch.y is None:
                raise ValueError(f"{type(self).__name__} reconstructs an image given its label; the batch has no labels")
            y_one_hot = self.one_hot(batch.y)
        return torch.sigmoid(self.unroll(x, mask, y_one_hot).canvas).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """Means of p(x | z_{1:T}) for z_t ~ N(0, I): ``[n, D]`` (conditional DRAW: of class ``y``)."""
        canvas, _ = self.generate(n, self.sample_labels(n, y))
        return torch.sigmoid(canvas)

    @torch.no_grad()
    def canvas_sequence(self, n: int, y: Tensor | int | None = None) -> Tensor:
        """The canvas ``sigmoid(c_t)`` after every step for ``n`` samples: ``[T, n, D]`` (the DRAW sequence)."""
        _, canvases = self.generate(n, self.sample_labels(n, y), keep_canvases=True)
        return torch.sigmoid(torch.stack(canvases))


@register_model("cdraw", paper="Gregor et al. 2015 (DRAW); Chen, Fang & Ju 2016, Generalization 1", summary="Conditional DRAW: the label enters encoder and decoder at every step")
class ConditionalDRAW(DRAW):
    """Conditional DRAW: samples a given class."""

    conditional: ClassVar[bool] = True
    uses_labels: ClassVar[bool] = True
    uses_unlabelled: ClassVar[bool] = False


__all__ = ["DRAW", "ConditionalDRAW", "DRAWConfig", "Unrolled"]
