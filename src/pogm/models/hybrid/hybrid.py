"""F-VAE and H-VAE: joint models of images and continuous labels (Tulyakov, Fitzgibbon & Nowozin,
"Hybrid VAE: Improving Deep Generative Models using Partial Observations").

Generative model (eq. 1), shared by both:

    p(z) = N(0, I),   p(d, h | z) = p(d | z) p(h | z),
    p(d | z) = N(d; mu_d(z), diag sigma_d^2(z))   (or `ObservedOrNot` for depth images, sec. 3.1),
    p(h | z) = N(h; mu_h(z), diag sigma_h^2(z)).

Inference model:

    q(z | d, h) = N(mu(d, h), diag sigma^2(d, h))                         (F-VAE and H-VAE)
    q(h | d)    = N(mu(d), diag sigma^2(d))     the discriminative network  (H-VAE only)

Bounds:

    L_F(d, h) = E_q(z|d,h)[log p(d, h | z)] - KL(q(z|d,h) || p(z))                        (eq. 2)
    L_P(d)    = E_q(h|d)[E_q(z|d,h)[log p(d, h | z)] - KL(q(z|d,h) || p(z))] + H(q(h|d))  (eq. 6)

F-VAE(n) maximises the mean of L_F over n labelled pairs. H-VAE(n, m) maximises objective (8),
(1/n) sum_i L_F(d_i, h_i) + (1/m) sum_j L_P(d_j), from one labelled and one unlabelled minibatch per
step, or the plain sum (7) with ``objective="sum"``. As in the paper, q(h|d) is trained by L_P
alone; ``alpha > 0`` adds alpha * E[-log q(h|d)] on the labelled pairs (not in the paper).

Networks (sec. 4.1, Figs. 2 and 3c): q(z|d,h) passes d through a convolutional stack (channels
double as the resolution halves) and h through a three-layer fully connected network, and maps
both to the Gaussian over z with another fully connected network; p(d, h | z) passes z through a
fully connected network, then splits into a deconvolutional head for d and a fully connected head
for h; q(h|d) is a convolutional stack and a fully connected Gaussian head. ReLU throughout,
``hidden`` = 256 units per fully connected layer, three samples per stochastic layer.

Choices the paper leaves open, made here: the image encoders see the zero-filled image and its
observation mask as a second channel; z has ``z_dim`` = 32 dimensions; with ``h_samples`` samples
of h and ``z_samples`` of z per h, L_P averages ``h_samples * z_samples`` decoder passes.

The image likelihood. The paper's p(d|z) predicts a variance per pixel (``gaussian-predicted``,
the config default; ``depth`` for depth maps). On mnist-keypoints that collapses z: the variance of
the always-dark background shrinks, which buys more likelihood than using z. A floor under the
predicted standard deviation (``gaussian-predicted:MIN_STD``: variance exp(s) + MIN_STD^2, see
`pogm.likelihoods.Gaussian`) keeps z in use. Measured with F-VAE(5000), seed 0, 32 pairs a step,
one sample of z, 2,000 steps (1.0-1.2 CPU-minutes each), best validation weights; on the first 500
test pairs: the KL of q(z|d,h), the units of z whose posterior mean varies across them (variance
> 0.01), the squared error per pixel of the reconstruction (mean of p(d|z) at the mean of q(z|d,h);
the training mean image has 0.044) and -log p(d,h) by importance sampling (k = 50):

    mnist-keypoints                                KL    units  error   -log p(d,h)
    gaussian:0.1 (fixed), Adam 1e-3               67.3    32    0.011      -850
    gaussian-predicted (the paper's), Adam        1.8     0    0.044     -1,170   valid bound swings 141..971
    gaussian-predicted, KL warm-up 1,000 steps    26.1    14    0.044     -1,069   valid bound swings 462..1,051
    gaussian-predicted:0.02, Adam                 38.9    32    0.029     -2,060
    gaussian-predicted:0.05, Adam                 38.1    32    0.019     -1,587   the table's
    gaussian-predicted(:0.05), SGD 0.01, m 0.9     -      -      -         -      loss NaN at step 3-4
    gaussian-predicted:0.05, SGD, grad clip 10    0.02     0    0.049      -690

    depth (error over observed pixels; mean image 0.044)
    depth:0.05 (fixed), Adam                      10.4    29    0.00046    -148.3
    depth (the paper's), Adam                     17.1    27    0.0010     -158.6   the table's
    depth-predicted:0.05, Adam                    6.5     9    0.00055     -96.6

On depth the paper's ``depth`` has an unbounded density: 799 of the 3.0 million observed training
values sit exactly at 0 (the sensor clips at its near range), so a predicted variance can shrink
without limit. Longer runs show it: F-VAE(500), seed 1, overfits until its gradient is not finite
(step 11,243; validation bound 143 at step 5,280, -2,000 at 11,040), and H-VAE(500, 19500), seed 2,
stays on a plateau (validation bound -129 from step 600 to 4,861), where seed 0 reaches 196. With
a floor of 0.003 under the predicted standard deviation (``depth-predicted:0.003``; the sensor's
noise is 3 mm over a 0.6 m range, 0.005) the same H-VAE seed leaves the plateau by step 1,218
(bound 91; 88 with a floor of 0.01), and a density bounded by 1 / (0.003 sqrt(2 pi)) per pixel
cannot diverge. The floor sits below the data's own noise, so it limits no model that fits the
data; the table's depth runs use it.

The floor does not remove the plateau itself: with it, H-VAE(500, 19500) seed 1 stays at a
validation bound near -135 (then falls to -2,128 by step 4,608) and F-VAE(20000) seed 2 at -128
for 5,287 steps. On the plateau the predicted standard deviation is still near its initial 1 (the
bound of a unit Gaussian on the ~150 observed pixels is about -138), while the depth residuals are
a few hundredths. ``init_std`` starts the log-variance outputs' bias at 2 log init_std. With
``init_std=0.1`` (and the floor, 250-step evaluations) the same two seeds leave the plateau at once:
H-VAE(500, 19500) seed 1 reaches 162 by step 1,250 and F-VAE(20000) seed 2 179 by step 3,000
(2 CPU-minutes each). The paper does not state its initialisation; the table's depth runs start at 0.1.

So `pogm reproduce hybrid-vae` (`pogm.models.hybrid.paper_table`) trains mnist-keypoints with
``gaussian-predicted:0.05``, the paper's model with a floor at 0.05: floors of 0.02 and 0.05 both
keep z in use, and 0.05 reconstructs better (error 0.019 against 0.029) with the wider margin
against the collapse. Depth uses the paper's likelihood with a floor below the sensor's noise
(``depth-predicted:0.003``, above). KL warm-up alone does
not stop the collapse, nor (600 steps, earlier) one learned variance per pixel
(``gaussian-learned``: 0.75 nats of KL). The sources' own suggestion stays a fixed variance (``gaussian:0.1``, ``depth:0.05``) for other models;
`--set likelihood=...` chooses any of them. The paper's SGD (learning rate 0.01, momentum 0.9)
diverges on this objective (log-densities summed over the pixels; gradient norms 500 to 8,000), and
with the gradient norm clipped to 10 it collapses z, so the table trains with Adam at 1e-3.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian, standard_normal_log_prob
from pogm.likelihoods import Gaussian, ObservedOrNot, make_likelihood
from pogm.models.base import ImportanceWeighted, ImputesByReconstruction, Model, as_batch
from pogm.models.registry import register_model
from pogm.nn import MLP, ConvEncoder, DeconvDecoder, GaussianHead, MultiInputMLP
from pogm.nn.mlp import activation
from pogm.objectives.hybrid import WEIGHTINGS, full_bound, hybrid_loss, partial_bound


@dataclass(frozen=True)
class FVAEConfig:
    image_shape: tuple[int, ...] = (1, 32, 32)
    x_dim: int = 1024  # C * H * W, filled in from the data
    y_dim: int = 10  # dimensions of the continuous label h, filled in from the data
    z_dim: int = 32
    channels: tuple[int, ...] = (32, 64, 128)  # one stride-2 convolution per entry (sec. 4.1)
    fc_units: int = 256  # units of every fully connected hidden layer (sec. 4.1)
    likelihood: str = "gaussian-predicted"  # p(d|z): a diagonal Gaussian (sec. 2); "depth" for sec. 3.1; ":MIN_STD" floors the variance
    # Predicted-variance likelihoods: the standard deviation the network starts from (the bias of its
    # log-variance outputs); None: PyTorch's default initialisation, a variance near 1 (the paper
    # does not say).
    init_std: float | None = None
    z_samples: int = 3  # samples of z averaged in each bound (sec. 4.1: three per stochastic layer)
    batch_norm: bool = False


@dataclass(frozen=True)
class HVAEConfig(FVAEConfig):
    h_samples: int = 3  # samples of h ~ q(h|d) averaged in L_P (sec. 4.1)
    objective: str = "balanced"  # "balanced": eq. (8); "sum": eq. (7)
    alpha: float = 0.0  # weight of E[-log q(h|d)] on labelled pairs; 0 = the paper's objective
    num_labelled: int = 1  # n and m of eq. (7), filled in from the data
    num_unlabelled: int = 1


class FVAE(ImportanceWeighted, ImputesByReconstruction, Model):
    """F-VAE: a joint VAE of images d and continuous labels h, trained on labelled pairs (eq. 2)."""

    def figures(self, data, out, labelled_index=None, run_dir=None):
        """Samples (d, h) drawn together and interpolations between test images (`pogm.models.hybrid.figures`)."""
        from pogm.models.hybrid.figures import hybrid_figures

        return hybrid_figures(self, data, out)


    Config = FVAEConfig
    uses_labels: ClassVar[bool] = True
    label_kind: ClassVar[str] = "continuous"
    uses_unlabelled: ClassVar[bool] = False  # trains on the labelled pairs only

    def __init__(self, config: FVAEConfig) -> None:
        super().__init__(config)
        c = config
        channels, height, width = c.image_shape
        if channels * height * width != c.x_dim:
            raise ValueError(f"image_shape {tuple(c.image_shape)} has {channels * height * width} values but x_dim={c.x_dim}")
        self.p_d = make_likelihood(c.likelihood, c.x_dim)
        self.p_h = Gaussian(c.y_dim, scale="predicted")
        encoder_shape = (channels + 1, height, width)  # the image and its observation mask
        # q(z | d, h): conv(d) and a three-layer FC network on h, joined by another FC network.
        self.encoder_d = ConvEncoder(encoder_shape, c.channels, "relu", c.batch_norm)
        self.encoder_h = nn.Sequential(MLP(c.y_dim, (c.fc_units, c.fc_units), c.fc_units, "relu"), activation("relu"))
        self.q_z_dh = GaussianHead(MultiInputMLP([self.encoder_d.out_dim, c.fc_units], (c.fc_units,), 2 * c.z_dim, "relu", c.batch_norm))
        # p(d, h | z): a shared FC trunk, then a deconvolutional head for d and an FC head for h.
        self.decoder_z = nn.Sequential(MLP(c.z_dim, (c.fc_units,), c.fc_units, "relu", c.batch_norm), activation("relu"))
        self.p_d_z = DeconvDecoder(c.fc_units, c.image_shape, c.channels, self.p_d.num_params(channels), "relu", c.batch_norm)
        self.p_h_z = MLP(c.fc_units, (c.fc_units,), self.p_h.num_params(c.y_dim), "relu")
        if c.init_std is not None:
            self._start_std(c.init_std, channels)

    def _start_std(self, std: float, channels: int) -> None:
        """Start p(d|z)'s predicted standard deviation near ``std``: the log-variance outputs (the
        last ``channels`` output channels of the deconvolutional head) get the bias 2 log std."""
        gaussian = self.p_d.value if isinstance(self.p_d, ObservedOrNot) else self.p_d
        if not isinstance(gaussian, Gaussian) or gaussian.scale != "predicted":
            raise ValueError(f"init_std sets the start of a predicted variance; likelihood {self.config.likelihood!r} predicts none (use gaussian-predicted or depth)")
        if not (std > 0 and math.isfinite(std)):
            raise ValueError(f"init_std must be a positive number, got {std}")
        last = self.p_d_z.net[-1]  # the ConvTranspose2d that emits [P * C] channels
        with torch.no_grad():
            last.bias[-channels:] = 2.0 * math.log(std)

    # ------------------------------------------------------------------ data
    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train=None) -> dict[str, Any]:
        if train is None or train.y is None or train.y.dim() != 2 or not train.y.is_floating_point():
            raise ValueError(f"{cls.__name__} needs continuous labels h (y of shape [N, D], float); use a source such as yaleb, mnist-keypoints or depth")
        image_shape = train.shapes["x"]
        if len(image_shape) != 3:
            raise ValueError(f"{cls.__name__} needs images [N, C, H, W]; the data has x of shape [N, {', '.join(map(str, image_shape))}]")
        return {"x_dim": x_dim, "image_shape": image_shape, "y_dim": int(train.y.shape[1])}

    def labels(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """``(h [B, D] float, labelled [B] bool)``; clear errors for class labels or the wrong D."""
        if batch.y is None:
            return torch.zeros(len(batch), self.config.y_dim, device=self.device), torch.zeros(len(batch), dtype=torch.bool, device=self.device)
        h = batch.y
        if not h.is_floating_point() or h.dim() != 2 or h.shape[1] != self.config.y_dim:
            raise ValueError(
                f"{type(self).__name__} needs continuous labels h of shape [B, {self.config.y_dim}] (float); got {h.dtype} {tuple(h.shape)}"
            )
        labelled = batch.y_mask
        if labelled.any() and not torch.isfinite(h[labelled]).all():
            raise ValueError("labels h contain NaN or inf in labelled rows; mark unlabelled rows with y_mask=False instead")
        return h, labelled

    def image(self, batch: Batch) -> tuple[Tensor, Tensor | None, Tensor]:
        """``(d [B, D] zero-filled, mask [B, D] / [B, 1] / None, encoder input [B, C + 1, H, W])``."""
        d, mask = self.flat_x(batch)
        shape = (d.shape[0], *self.config.image_shape)
        observed = torch.ones(shape, dtype=d.dtype, device=d.device) if mask is None else mask.to(d.dtype).expand(d.shape).reshape(shape)
        return d, mask, torch.cat([d.reshape(shape), observed], dim=-3)

    # ------------------------------------------------------------------ the model's pieces
    def q_z(self, features_d: Tensor, h: Tensor) -> DiagonalGaussian:
        """q(z | d, h) from the image features ``[B, F]`` and labels ``[..., B, D]``."""
        return DiagonalGaussian(*self.q_z_dh(features_d, self.encoder_h(h)))

    def decode(self, z: Tensor) -> tuple[Tensor, Tensor]:
        """Parameters of p(d | z) ``[..., P * C * H * W]`` and p(h | z) ``[..., 2 D]``."""
        features = self.decoder_z(z)  # [..., hidden]
        params_d = self.p_d_z(features)  # [..., P * C, H, W]
        return params_d.reshape(*params_d.shape[:-3], -1), self.p_h_z(features)

    def log_p_d_h_z(self, z: Tensor, d: Tensor, mask: Tensor | None, h: Tensor) -> Tensor:
        """log p(d | z) + log p(h | z) for samples ``z [..., B, Z]``: ``[..., B]``."""
        params_d, params_h = self.decode(z)
        # h may carry its own sample dimension ([S_h, B, D] inside L_P), so its density sums over
        # the last dimension only.
        log_p_h_z = DiagonalGaussian(*self.p_h.split(params_h)).log_prob(h)  # [..., B]
        return self.p_d.log_prob(params_d, d, mask) + log_p_h_z

    def full_bounds(self, d: Tensor, mask: Tensor | None, inputs: Tensor, h: Tensor, kl_weight: float = 1.0) -> Tensor:
        """L_F(d, h) of eq. (2) with ``z_samples`` samples of z: ``[B]``."""
        q_z_dh = self.q_z(self.encoder_d(inputs), h)
        z = q_z_dh.rsample(self.config.z_samples)  # [S, B, Z]
        return full_bound(self.log_p_d_h_z(z, d, mask, h), q_z_dh.kl_standard_normal(), kl_weight)

    # ------------------------------------------------------------------ training
    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        d, mask, inputs = self.image(batch)
        h, labelled = self.labels(batch)
        rows = labelled.nonzero().squeeze(1)
        # An empty part is skipped (a stream may draw only labelled or only unlabelled rows).
        bound_full = self.full_bounds(d[rows], None if mask is None else mask[rows], inputs[rows], h[rows], kl_weight) if rows.numel() else d.new_zeros(0)
        loss = hybrid_loss(bound_full, bound_full.new_zeros(0))
        terms = {"loss": loss, "bound_full": (bound_full.mean() if rows.numel() else loss.new_zeros(())).detach()}
        return terms

    # ------------------------------------------------------------------ evaluation
    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(d, h, z) - log q(z | d, h) for ``k`` samples of z: ``[k, B]``; its mean is L_F
        and its log-mean-exp the importance-weighted estimate of log p(d, h) (eq. 2)."""
        d, mask, inputs = self.image(batch)
        h = self.pair_labels(batch)
        return self.joint_log_weights(d, mask, self.encoder_d(inputs), h, k)

    def importance_parts(self, batch: Batch) -> tuple[DiagonalGaussian, Callable[[Tensor], Tensor]]:
        """q(z | d, h) of labelled pairs and ``z [n, B, Z] -> log p(d, h, z) [n, B]``: what an
        estimator of log p(d, h) with a proposal of its own needs (`pogm.evaluate.refined`)."""
        d, mask, inputs = self.image(batch)
        h = self.pair_labels(batch)
        return self.q_z(self.encoder_d(inputs), h), self.log_joint(d, mask, h)

    def pair_labels(self, batch: Batch) -> Tensor:
        """The labels ``[B, D]`` of a batch of labelled pairs; a batch with unlabelled images is refused."""
        h, labelled = self.labels(batch)
        if not labelled.all():
            raise ValueError(f"{type(self).__name__} scores labelled pairs (d, h) only; it has no q(h|d) for images without labels")
        return h

    def log_joint(self, d: Tensor, mask: Tensor | None, h: Tensor) -> Callable[[Tensor], Tensor]:
        """``z [..., B, Z] -> log p(d | z) + log p(h | z) + log p(z)  [..., B]``."""
        return lambda z: self.log_p_d_h_z(z, d, mask, h) + standard_normal_log_prob(z)

    def joint_log_weights(self, d: Tensor, mask: Tensor | None, features_d: Tensor, h: Tensor, k: int) -> Tensor:
        q_z_dh = self.q_z(features_d, h)
        z = q_z_dh.rsample(k)  # [k, B, Z]
        return self.log_joint(d, mask, h)(z) - q_z_dh.log_prob(z)

    @torch.no_grad()
    def encode(self, batch: Batch | Tensor) -> Tensor:
        """The mean of q(z | d, h) ``[B, Z]`` (H-VAE: h from the mean of q(h|d) where unlabelled)."""
        batch = as_batch(batch)
        _, _, inputs = self.image(batch)
        return self.q_z(self.encoder_d(inputs), self.labels_or_predictions(batch, inputs)).mean

    def labels_or_predictions(self, batch: Batch, inputs: Tensor) -> Tensor:
        h, labelled = self.labels(batch)
        if not labelled.all():
            raise ValueError(f"{type(self).__name__} needs the label h of every image to encode it (it has no q(h|d)); use hvae for images without labels")
        return h

    @torch.no_grad()
    def reconstruct(self, batch: Batch | Tensor) -> Tensor:
        """The mean of p(d | z) at the mean of q(z | d, h), shaped like the batch's images."""
        batch = as_batch(batch)
        params_d, _ = self.decode(self.encode(batch))
        return self.p_d.mean(params_d).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def sample_joint(self, n: int) -> dict[str, Tensor]:
        """``n`` pairs (d, h) drawn together (the paper's Fig. 1): the means of p(d|z) and p(h|z) for
        z ~ p(z), ``{"d": [n, C, H, W], "h": [n, D]}``, and for depth images the probability that
        each pixel is observed, ``"observed": [n, C, H, W]``."""
        z = torch.randn(n, self.config.z_dim, device=self.device)
        return self.decode_pairs(z)

    def decode_pairs(self, z: Tensor) -> dict[str, Tensor]:
        params_d, params_h = self.decode(z)
        shape = (*z.shape[:-1], *self.config.image_shape)
        pairs = {"d": self.p_d.mean(params_d).reshape(shape), "h": self.p_h.mean(params_h)}
        if isinstance(self.p_d, ObservedOrNot):
            pairs["observed"] = self.p_d.observed_probability(params_d).reshape(shape)
        return pairs

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """``n`` images ``[n, C * H * W]`` (the means of p(d|z), z ~ p(z)); `sample_joint` gives h too."""
        if y is not None:
            raise ValueError(f"{type(self).__name__} samples (d, h) jointly and cannot condition on h; use sample_joint")
        return self.sample_joint(n)["d"].reshape(n, -1)

    @torch.no_grad()
    def interpolate(self, source: Batch, target: Batch, steps: int = 7) -> dict[str, Tensor]:
        """Decode the straight line from the source's to the target's mean of q(z|...) (Fig. 4):
        ``{"d": [R, steps, C, H, W], "h": [R, steps, D]}`` for R source/target pairs."""
        z_source, z_target = self.encode(source), self.encode(target)  # [R, Z]
        t = torch.linspace(0.0, 1.0, steps, device=z_source.device)[None, :, None]  # [1, S, 1]
        z = (1 - t) * z_source[:, None] + t * z_target[:, None]  # [R, S, Z]
        return self.decode_pairs(z)


class HVAE(FVAE):
    """H-VAE: the F-VAE plus a discriminative q(h|d), trained on labelled and unlabelled images (eq. 8)."""

    Config = HVAEConfig
    uses_unlabelled: ClassVar[bool] = True

    def __init__(self, config: HVAEConfig) -> None:
        super().__init__(config)
        c = config
        if c.objective not in WEIGHTINGS:
            raise ValueError(f"objective must be one of {WEIGHTINGS}, got {c.objective!r}")
        if c.h_samples < 1 or c.z_samples < 1:
            raise ValueError(f"h_samples and z_samples must be >= 1, got {c.h_samples} and {c.z_samples}")
        channels, height, width = c.image_shape
        # q(h | d): its own convolutional stack and a fully connected Gaussian head (Fig. 3c).
        self.discriminative_d = ConvEncoder((channels + 1, height, width), c.channels, "relu", c.batch_norm)
        self.q_h_d = GaussianHead(MLP(self.discriminative_d.out_dim, (c.fc_units,), 2 * c.y_dim, "relu", c.batch_norm))

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train=None) -> dict[str, Any]:
        return {**super().data_fields(x_dim, num_classes, num_train, num_labelled, train), "num_labelled": max(num_labelled, 1), "num_unlabelled": max(num_train, 1)}

    def q_h(self, inputs: Tensor) -> DiagonalGaussian:
        """The discriminative q(h | d) from the encoder input ``[B, C + 1, H, W]``."""
        return DiagonalGaussian(*self.q_h_d(self.discriminative_d(inputs)))

    def partial_bounds(self, d: Tensor, mask: Tensor | None, inputs: Tensor, kl_weight: float = 1.0) -> Tensor:
        """L_P(d) of eq. (6): ``h_samples`` samples of h, ``z_samples`` of z for each: ``[B]``."""
        q_h_d = self.q_h(inputs)
        h = q_h_d.rsample(self.config.h_samples)  # [S_h, B, D]
        q_z_dh = self.q_z(self.encoder_d(inputs), h)  # [S_h, B, Z]
        z = q_z_dh.rsample(self.config.z_samples)  # [S_z, S_h, B, Z]
        log_p = self.log_p_d_h_z(z, d, mask, h)  # [S_z, S_h, B]
        return partial_bound(log_p, q_z_dh.kl_standard_normal(), q_h_d.entropy(), kl_weight)

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        c = self.config
        d, mask, inputs = self.image(batch)
        h, labelled = self.labels(batch)
        lab, unl = labelled.nonzero().squeeze(1), (~labelled).nonzero().squeeze(1)

        def part(index: Tensor) -> tuple[Tensor, Tensor | None, Tensor]:
            return d[index], None if mask is None else mask[index], inputs[index]

        bound_full = self.full_bounds(*part(lab), h[lab], kl_weight) if lab.numel() else d.new_zeros(0)  # [B_l]
        bound_partial = self.partial_bounds(*part(unl), kl_weight) if unl.numel() else d.new_zeros(0)  # [B_u]
        loss = hybrid_loss(bound_full, bound_partial, c.objective, c.num_labelled, c.num_unlabelled)
        terms = {
            "bound_full": bound_full.mean().detach() if lab.numel() else loss.new_zeros(()),
            "bound_partial": bound_partial.mean().detach() if unl.numel() else loss.new_zeros(()),
        }
        if c.alpha > 0 and lab.numel():
            log_q_h = self.q_h(inputs[lab]).log_prob(h[lab])  # [B_l]
            loss = loss - c.alpha * log_q_h.mean()
            terms["log_q_h_d"] = log_q_h.mean().detach()
        return {"loss": loss, **terms}

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """``[k, B]`` log weights: labelled rows as the F-VAE (their log-mean-exp estimates
        log p(d, h)); unlabelled rows draw h ~ q(h|d) too, log p(d, h, z) - log q(h|d) - log q(z|d,h)
        (their mean is L_P, their log-mean-exp estimates log p(d))."""
        d, mask, inputs = self.image(batch)
        h, labelled = self.labels(batch)
        features_d = self.encoder_d(inputs)
        weights = d.new_empty(k, len(batch))
        lab, unl = labelled.nonzero().squeeze(1), (~labelled).nonzero().squeeze(1)
        if lab.numel():
            weights[:, lab] = self.joint_log_weights(d[lab], None if mask is None else mask[lab], features_d[lab], h[lab], k)
        if unl.numel():
            q_h_d = self.q_h(inputs[unl])
            h_samples = q_h_d.rsample(k)  # [k, B_u, D]
            log_weights_z = self.joint_log_weights(d[unl], None if mask is None else mask[unl], features_d[unl], h_samples, 1)  # [1, k, B_u]
            weights[:, unl] = log_weights_z[0] - q_h_d.log_prob(h_samples)
        return weights

    def labels_or_predictions(self, batch: Batch, inputs: Tensor) -> Tensor:
        h, labelled = self.labels(batch)
        if labelled.all():
            return h
        return torch.where(labelled[:, None], h, self.q_h(inputs).mean)

    @torch.no_grad()
    def predict_labels(self, batch: Batch | Tensor) -> Tensor:
        """The mean of q(h | d) ``[B, D]``: the prediction scored by the task loss (sec. 4.3)."""
        _, _, inputs = self.image(as_batch(batch))
        return self.q_h(inputs).mean


register_model("fvae", paper="Tulyakov et al., Hybrid VAE, eq. 2", summary="F-VAE: joint VAE of images and continuous labels, labelled pairs only")(FVAE)
register_model("hvae", paper="Tulyakov et al., Hybrid VAE, eqs. 6-8", summary="H-VAE: F-VAE plus q(h|d), learns from images without labels")(HVAE)
