"""ALI and hierarchical ALI (Dumoulin et al. 2016, "Adversarially Learned Inference"; "Hierarchical
Adversarially Learned Inference", Belghazi et al. 2018), and semi-supervised HALI (its section 7.2).

With L latent levels (``z_dims``; L = 1 is ALI, L = 2 HALI's default), both directions are Markov
chains of conditional Gaussians (eqs. 1-4):
    encoder  q(x, z_1..L) = q(x) q(z_1 | x) prod_{l=2..L} q(z_l | z_{l-1})                 (eq. 3)
    decoder  p(x, z_1..L) = p(z_L) prod_{l=2..L} p(z_{l-1} | z_l) p(x | z_1),  p(z_L) = N(0, I) (eq. 4)
p(x | z_1) is the generator's image G_x(z_1) (a sigmoid image, as GANs use), the other kernels
are reparameterised diagonal Gaussians. The decoder of z_{l-1} reads z_l only.

A discriminator D(x, z_1, ..., z_L) tells the two joints apart (Algorithm 1):
    L_d = -E log D(x, z^_1..L) - E log(1 - D(x~, z_1..L))
    L_g = -E log(1 - D(x, z^_1..L)) - E log D(x~, z_1..L)     (or the minimax -L_d)
L_g trains encoder and decoder together (group "generator"), L_d the discriminator (group
"discriminator"); each loss reaches its own group only (D frozen in L_g, inputs detached in L_d).

Two layouts of z_1 (``architecture``):

* ``"spatial"`` (the default on images): Table 4's network (`pogm.nn.spatial`). z_1 is a feature
  map ``z1_shape`` = C x h x w, z_2, ..., z_L are vectors (``z_dims[1:]``; ``z_dims[0]`` is not
  read). q(z_1 | x) = G_{z_1}(x) and G_x(z_1) are residual blocks with batch norm, stride-2
  convolutions going down and bilinear upsampling going up; q(z_2 | z_1) and p(z_1 | z_2) go
  between the map and the vector (stride-2 convolutions, a residual block and a valid
  convolution; a linear map to 4 x 4, a residual block and bilinear upsamplings). D(x, z_1, z_2)
  convolves x, joins z_1 along the channel axis, convolves down to 1 x 1, joins z_2 and ends in
  fully connected layers. Scaled to MNIST: Table 4 maps 32 x 32 SVHN and CIFAR-10 images to z_1 of
  64 x 16 x 16 (one halving; 128 x 128 images to 32 x 32, two); the 28 x 28 digits get one
  halving too, z_1 = 16 x 14 x 14 (16 channels instead of 64: a 1-channel image needs less, and
  3,136 values already exceed the 784 pixels), and widths of 16-128 instead of 32-512
  (``spatial_width``) so that a step fits a CPU. Section 4's regularisers as the text places
  them: Gaussian noise of std ``input_noise`` on the encoder's input and on D's data input (not on
  its latent inputs, unless ``spatial_latent_noise``), and dropout after every 3rd layer of D
  keeping units with probability 0.2 (``spatial_dropout_every``, ``spatial_retention``; Table 4's
  per-layer column of 0.2 and 0.5 reads as drop probabilities after every layer instead, which
  these two settings also express approximately), weight normalisation of D's convolutions
  (``spatial_weight_norm``).
* ``"mlp"`` or ``"dcgan"``: z_1 a vector of ``z_dims[0]``, every kernel a fully connected
  network (``hidden``) or, with ``"dcgan"``, convolutional q(z_1 | x), G_x(z_1) and D(x)
  (`pogm.nn.joint.JointDiscriminator`: noise on every input of D, dropout
  ``discriminator_dropout`` after every layer, optional weight normalisation ``weight_norm``).
  This is pogm's earlier HALI, built exactly as before.

Semi-supervised HALI (section 7.2, eqs. 9-10): x -> z -> y with z inferred from the noisy input
and q(y | z) a softmax on it (on the flattened, or with ``classifier_pooling="mean"`` channel-averaged,
feature map of a spatial z_1); its cross-entropy on the labelled rows joins the generator's loss.
The paper leaves open which level is "z" (here every level, joined, unless ``classifier_levels``),
sigma (here the adversarial pass's ``input_noise``, or ``classifier_noise`` for the supervised path
alone), the weight (``supervised_weight``, 1: eq. 10 added as it stands) and the batches (the
Trainer's: all 100 labelled images and 100 unlabelled ones a step). With those defaults this is
the paper's version. On MNIST with 100 labels (flat z, benchmarks/hali_mnist.py ``diagnose``, 2.5
CPU-minutes a setting, results in benchmarks/results/hali_ssl_diagnosis.json) the softmax
memorises the labelled images within about 100 steps, and the validation error is lowest
(23%) within the first 300 steps and then climbs as the adversarial features drift. Neither the
weight, sigma, the level, the learning rates nor fewer labelled images a step moved the best
validation error below 22%. Two settings depart from the paper and use the unlabelled rows:
``consistency_weight`` (the cross-entropy of q(y | z^), z^ from the noisy input, to q(y | z) on
the clean input's means, held fixed: a Pi-model-like consistency under the noise eq. 9 already
adds) halved the test errors (2,481 -> 1,280); ``entropy_weight`` (the entropy of q(y | z^),
Grandvalet and Bengio 2005) alone stopped the climb but helped little (2,268); both together, weight
1 each, gave 963 after 4 CPU-minutes, still falling. A longer run of those two (the Trainer, 15
CPU-minutes) turned after about 3,000 steps: validation error 8.3%, then 15.9% at step 6,000 and
24.6% at 9,000, the consistency target (the model's own q(y | z)) drifting with the features while
the entropy cost confirms its mistakes. ``teacher_decay`` takes the target from a mean teacher
instead (Tarvainen & Valpola 2017): an average theta' <- d theta' + (1 - d) theta of the encoder and
softmax, updated once a training step. With d = 0.99 the turn comes later but still comes:
validation error 6.8% at step 6,000, lowest 5.85% at step 8,500 (681 test errors, 10 CPU-minutes),
then 9.6% at 13,000, 17% at 20,000 and 34% at 46,000 (60 CPU-minutes; benchmarks/hali_mnist.py
diagnose, seed 0). The hali-mnist100 table's second HALI row trains consistency (to the mean
teacher) and entropy, and keeps the weights of the lowest validation error.
``classify_with="teacher"`` makes `classify` read the mean teacher's encoder and softmax (the
average Tarvainen & Valpola report); on the convolutional row it was no better at its lowest
validation error (3.86% against the student's 3.48%, seed 0; docs/hali.md).
``balance_weight`` (the KL divergence of the batch's mean q(y | z^) from uniform, CatGAN's marginal
entropy) did not move the turn (744 test errors; the classes stayed in balance, the cost near 0.04
nats throughout: benchmarks/results/hali_ssl_balance.json).
``vat_weight`` adds virtual adversarial training (Miyato et al. 2018) on the unlabelled rows:
KL(q(y | x) || q(y | x + r_adv)) on the encoder's means, r_adv of norm ``vat_epsilon`` where one
power iteration finds q(y | x) most sensitive. It changes no image (HALI's Table 3 compares methods
without data augmentation); it makes the softmax smooth around each unlabelled image. On the
convolutional row's weakest seed it lowered the validation error at step 1,250 from 11.7% to 7.6%
(epsilon 0.5; epsilon 2 diverged; benchmarks/results/hali_ssl_vat.json).
``unlabelled_rampup_steps`` raises the weights of all these unlabelled-row costs from e^-5 of their
values to their values over that many steps, as exp(-5 (1 - t)^2) (Laine & Aila 2017's ramp-up,
which Tarvainen & Valpola keep), so that the labelled rows shape q(y | z) before the costs make
it confident around its own predictions.
``supervised_gradient="classifier"`` keeps eq. 10 away from the encoder (a probe of the adversarial
features: about 50% error, since the features move under the softmax).

What the hierarchy offers (sections 3.2, 6): reconstructions through each level
x^_l ~ T_{x|z_l} o T_{z_l|x} (eq. 5) with their Euclidean and discriminator-feature errors
(eq. 8), inpainting from the top level down, traversals of single coordinates (of a spatial z_1:
whole feature maps, as section 6.2 varies them) and the latent semantic innovation of section 6.3
on draws of the kernels (``innovation="sample"``, the paper's) or their means.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian
from pogm.models.base import Model, as_batch, check_class_labels, flat_x_shape_fields
from pogm.models.registry import register_model
from pogm.nn import MLP, GaussianHead, ImageDecoder, ImageEncoder, LinearOutput, call_frozen
from pogm.nn.images import check_architecture
from pogm.nn.joint import JointDiscriminator
from pogm.nn.spatial import (
    ChannelGaussianHead, MapToVector, SpatialEncoder, SpatialImageDecoder, SpatialJointDiscriminator, VectorToMap, halvings,
)
from pogm.objectives.adversarial import discriminator_loss, joint_generator_loss
from pogm.objectives.semi_supervised import classification_loss, rampup, virtual_adversarial_cost

ARCHITECTURES = ("spatial", "mlp", "dcgan")  # "spatial": z_1 a feature map (Table 4); the others: z_1 a vector
INNOVATIONS = ("sample", "mean")
POOLINGS = ("flatten", "mean")
SUPERVISED_GRADIENTS = ("encoder", "classifier")


@dataclass(frozen=True)
class HALIConfig:
    x_dim: int = 784
    image_shape: tuple[int, ...] = (1, 28, 28)
    z_dims: tuple[int, ...] = (64, 32)  # z_1, ..., z_L (with architecture="spatial", z_1 is z1_shape and z_dims[0] is not read)
    architecture: str = "spatial"  # "spatial" (Table 4: z_1 a feature map), or z_1 a vector: "mlp" kernels, "dcgan" convolutions
    # architecture="spatial":
    z1_shape: tuple[int, ...] = (16, 14, 14)  # z_1's C x h x w, h x w the image halved k >= 0 times (Table 4: 64 x 16 x 16 on 32 x 32 images)
    spatial_width: int = 16  # channels at the image's resolution, doubled with every stride-2 step (Table 4: 32-512)
    spatial_retention: float = 0.2  # D's dropout keeps a unit with this probability (section 4) ...
    spatial_dropout_every: int = 3  # ... after every 3rd layer of D (section 4)
    spatial_weight_norm: bool = True  # weight normalisation of D's convolutions (Table 4)
    spatial_latent_noise: bool = False  # input_noise on D's latent inputs too, not only on x
    latent_init_std: float | None = None  # start every latent kernel's predicted std near this (log-variance bias 2 log s); None: the layers' default init (std near 1)
    # architecture="mlp" / "dcgan":
    hidden: tuple[int, ...] = (500, 500)  # every kernel's MLP
    channels: tuple[int, ...] = (64, 128)  # the convolutions of "dcgan"
    activation: str = "leaky_relu"
    batch_norm: bool = True  # in the encoder's and decoder's kernels (HALI, section 4)
    discriminator_hidden: tuple[int, ...] = (500,)  # D(x) stage (flat z_1)
    discriminator_joint_hidden: tuple[int, ...] = (500,)  # each stage where a vector level joins (spatial: z_2, ..., z_L)
    discriminator_dropout: float = 0.2  # drop probability after every layer of D (flat z_1)
    weight_norm: bool = False  # of D (flat z_1)
    input_noise: float = 0.2  # std of the noise on the encoder's and D's inputs (section 4)
    gan_loss: str = "non-saturating"  # Algorithm 1; or "minimax"
    innovation: str = "sample"  # section 6.3 on draws of the kernels, as the paper writes it; or "mean"
    num_classes: int = 0  # semi-supervised HALI: the classes of the softmax on z
    supervised_weight: float = 1.0  # weight of eq. 10's cost in the generator's loss
    classifier_levels: tuple[int, ...] = ()  # levels whose z the softmax reads; () = all
    classifier_pooling: str = "flatten"  # a spatial z_1 as the softmax reads it: every value, or "mean" per channel
    # Departures from section 7.2 (all off by default: the paper's semi-supervised HALI):
    classifier_noise: float | None = None  # eq. 9's sigma for the supervised path alone (a second encoder pass); None: the adversarial pass's z^ (input_noise)
    supervised_gradient: str = "encoder"  # "encoder": eq. 10 trains encoder and softmax (the paper); "classifier": the softmax only (a probe of the adversarial features)
    consistency_weight: float = 0.0  # unlabelled rows: cross-entropy of q(y | z^ of the noisy input) to q(y | z of the clean input's means), held fixed
    entropy_weight: float = 0.0  # unlabelled rows: entropy of q(y | z^ of the noisy input)
    balance_weight: float = 0.0  # unlabelled rows: KL(batch mean of q(y | z^) || uniform), which keeps the classes in use (CatGAN's marginal entropy)
    vat_weight: float = 0.0  # unlabelled rows: virtual adversarial cost KL(q(y | x) || q(y | x + r_adv)) on the encoder's means (Miyato et al. 2018)
    unlabelled_rampup_steps: int = 0  # > 0: the unlabelled-row costs' weights rise as exp(-5 (1 - t)^2), t = step / this, to full weight (Laine & Aila 2017); 0: full weight from the start
    vat_epsilon: float = 0.5  # L2 norm of r_adv per image, [0, 1] pixels (the convolutional MNIST row's; 2 diverged there. Miyato et al.'s MNIST runs: 0.3 semi-supervised, 2.1 supervised)
    teacher_decay: float = 0.0  # > 0: the consistency target comes from a mean teacher, an average of the encoder and softmax with this decay per step (Tarvainen & Valpola 2017); 0: from the model itself
    classify_with: str = "student"  # whose q(y | z) `classify` returns: the trained encoder and softmax, or "teacher": the mean teacher's (Tarvainen & Valpola 2017 report the average's)


def _gaussian_kernel(in_dim: int, out_dim: int, c: HALIConfig) -> GaussianHead:
    return GaussianHead(MLP(in_dim, c.hidden, 2 * out_dim, c.activation, c.batch_norm))


def _image_kernel(c: HALIConfig) -> GaussianHead:
    """q(z_1 | x) of a vector z_1: on the image, fully connected or convolutional."""
    if c.architecture == "mlp":
        return _gaussian_kernel(c.x_dim, c.z_dims[0], c)
    return GaussianHead(ImageEncoder(c.architecture, c.image_shape, (), c.hidden, 2 * c.z_dims[0], c.channels, c.activation, c.batch_norm))


def _image_generator(c: HALIConfig) -> nn.Module:
    """G_x(z_1) of a vector z_1: image logits ``[..., D]``."""
    hidden = tuple(reversed(c.hidden))
    if c.architecture == "mlp":
        return MLP(c.z_dims[0], hidden, c.x_dim, c.activation, c.batch_norm)
    return ImageDecoder(c.architecture, (c.z_dims[0],), c.image_shape, 1, hidden, c.channels, c.activation, c.batch_norm)


def _spatial_networks(c: HALIConfig) -> tuple[nn.ModuleList, nn.ModuleList, nn.Module, nn.Module]:
    """Table 4's encoder kernels, decoder kernels, G_x(z_1) and D(x, z_1, ..., z_L) for a feature map z_1."""
    C = c.z1_shape[0]
    steps = halvings(c.image_shape[1:], c.z1_shape[1:])
    latent_width = c.spatial_width * 2 ** (steps + 1)  # q(z_2 | z_1) and p(z_1 | z_2) work one halving below z_1
    vectors = tuple(c.z_dims[1:])
    encoder = [ChannelGaussianHead(SpatialEncoder(c.image_shape, c.z1_shape[1:], 2 * C, c.spatial_width, c.batch_norm))]  # q(z_1 | x)
    decoder = []
    if vectors:
        encoder.append(GaussianHead(MapToVector(c.z1_shape, 2 * vectors[0], latent_width, c.batch_norm)))  # q(z_2 | z_1)
        decoder.append(ChannelGaussianHead(VectorToMap(vectors[0], c.z1_shape, 2 * C, latent_width, c.batch_norm)))  # p(z_1 | z_2)
        encoder += [_gaussian_kernel(d_in, d_out, c) for d_in, d_out in zip(vectors[:-1], vectors[1:])]
        decoder += [_gaussian_kernel(d_out, d_in, c) for d_in, d_out in zip(vectors[:-1], vectors[1:])]
    generator = SpatialImageDecoder(c.z1_shape, c.image_shape, c.spatial_width, c.batch_norm)
    discriminator = SpatialJointDiscriminator(
        c.image_shape, c.z1_shape, vectors, c.spatial_width, c.discriminator_joint_hidden, c.spatial_retention, c.spatial_dropout_every,
        c.input_noise, c.spatial_weight_norm, c.spatial_latent_noise,
    )
    return nn.ModuleList(encoder), nn.ModuleList(decoder), generator, discriminator


def image_like(shape) -> bool:
    """Whether ``image_shape`` describes images a convolution can read (flat data come as ``(1, 1, D)``)."""
    return len(shape) == 3 and min(int(s) for s in shape[1:]) >= 2


class HierarchicalALI(Model):
    """ALI with a Markov hierarchy of latent levels, trained by Algorithm 1."""

    def figures(self, data, out, labelled_index=None, run_dir=None):
        """Reconstructions from each level, inpainting, innovation and samples (`pogm.models.hali.figures`)."""
        from pogm.models.hali.figures import hali_figures

        return hali_figures(self, data, out, run_dir)


    Config = HALIConfig
    discriminator_groups: ClassVar[tuple[str, ...]] = ("discriminator",)
    data_defaults: ClassVar[dict[str, Any]] = {"binarize": False}
    sigmoid_images: ClassVar[bool] = True  # real images must lie in [0, 1] (`Model.data_support`)

    def __init__(self, config: HALIConfig) -> None:
        super().__init__(config)
        c = config
        if not c.z_dims:
            raise ValueError("z_dims must list at least one latent level")
        if math.prod(c.image_shape) != c.x_dim:
            raise ValueError(f"image_shape {tuple(c.image_shape)} has {math.prod(c.image_shape)} values but x_dim={c.x_dim}")
        if c.architecture not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {c.architecture!r}; choose one of {list(ARCHITECTURES)}")
        for name, value, choices in (
            ("innovation", c.innovation, INNOVATIONS), ("classifier_pooling", c.classifier_pooling, POOLINGS), ("supervised_gradient", c.supervised_gradient, SUPERVISED_GRADIENTS),
        ):
            if value not in choices:
                raise ValueError(f"unknown {name} {value!r}; choose one of {list(choices)}")
        L = len(c.z_dims)
        bad = [level for level in c.classifier_levels if not 1 <= level <= L]
        if bad:
            raise ValueError(f"classifier_levels must be in 1..{L}, got {bad}")
        if c.architecture == "spatial":
            if not image_like(c.image_shape):
                raise ValueError(
                    f"architecture='spatial' needs images [C, H, W], but x holds flat vectors (image_shape {tuple(c.image_shape)}); "
                    "use architecture='mlp', or give the images' shape with --set data.image_shape=[C,H,W]"
                )
            if len(c.z1_shape) != 3:
                raise ValueError(f"z1_shape must be [C, h, w], got {list(c.z1_shape)}")
            self.encoder, self.decoder, self.generator, self.discriminator = _spatial_networks(c)
        else:
            check_architecture(c.architecture)
            self.encoder = nn.ModuleList(
                [_image_kernel(c), *(_gaussian_kernel(d_in, d_out, c) for d_in, d_out in zip(c.z_dims[:-1], c.z_dims[1:]))]
            )  # q(z_1 | x), then q(z_l | z_{l-1})
            self.decoder = nn.ModuleList(_gaussian_kernel(c.z_dims[l], c.z_dims[l - 1], c) for l in range(1, L))  # p(z_l | z_{l+1}), [l-1]
            self.generator = _image_generator(c)  # G_x(z_1): logits
            self.discriminator = JointDiscriminator(
                c.x_dim, c.z_dims, c.discriminator_hidden, c.discriminator_joint_hidden, c.discriminator_dropout, c.input_noise, c.weight_norm,
                c.architecture, c.image_shape, c.channels,
            )
        if c.latent_init_std is not None:
            for kernel in (*self.encoder, *self.decoder):
                kernel.start_std(c.latent_init_std)
        self.classifier = LinearOutput(sum(self.classifier_width(level) for level in self.classifier_levels), c.num_classes) if c.num_classes else None
        self.teacher = self._mean_teacher(c)
        self._check_classify_with(c)
        if c.unlabelled_rampup_steps < 0:
            raise ValueError(f"unlabelled_rampup_steps must be >= 0 (0: the unlabelled-row costs at full weight from the start), got {c.unlabelled_rampup_steps}")
        if c.vat_weight and (self.classifier is None or not c.vat_epsilon > 0):
            raise ValueError(f"vat_weight needs a semi-supervised HALI (hali-ssl) and vat_epsilon > 0, got vat_epsilon={c.vat_epsilon}")

    def _mean_teacher(self, c: HALIConfig) -> nn.ModuleDict | None:
        """A frozen copy of the encoder and softmax that `update_teacher` averages, or None."""
        if not c.teacher_decay:
            return None
        if not 0 < c.teacher_decay < 1:
            raise ValueError(f"teacher_decay must lie in (0, 1) (0 turns the mean teacher off), got {c.teacher_decay}")
        if self.classifier is None or not c.consistency_weight:
            raise ValueError("teacher_decay gives the consistency cost its target: set consistency_weight > 0 on a semi-supervised HALI (hali-ssl)")
        return nn.ModuleDict({"encoder": copy.deepcopy(self.encoder), "classifier": copy.deepcopy(self.classifier)}).requires_grad_(False)

    def _check_classify_with(self, c: HALIConfig) -> None:
        if c.classify_with not in ("student", "teacher"):
            raise ValueError(f"classify_with must be 'student' or 'teacher', got {c.classify_with!r}")
        if c.classify_with == "teacher" and self.teacher is None:
            raise ValueError("classify_with='teacher' needs a mean teacher: set teacher_decay (and consistency_weight) > 0")

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        """The images' shape; on images a spatial z_1 of the default channels at half the image's
        height and width (Table 4 on 32 x 32 images), on flat vectors a vector z_1 ("mlp")."""
        fields = {"x_dim": x_dim, **flat_x_shape_fields(x_dim, train)}
        shape = fields["image_shape"]
        if not image_like(shape):
            return {**fields, "architecture": "mlp"}
        return {**fields, "z1_shape": (cls.Config.z1_shape[0], (int(shape[1]) + 1) // 2, (int(shape[2]) + 1) // 2)}

    @property
    def levels(self) -> int:
        return len(self.config.z_dims)

    @property
    def z_shapes(self) -> list[tuple[int, ...]]:
        """Each level's shape without the batch: ``[(C, h, w), (d_2,), ...]`` (spatial) or ``[(d_1,), ...]``."""
        c = self.config
        if c.architecture == "spatial":
            return [tuple(int(s) for s in c.z1_shape), *((int(d),) for d in c.z_dims[1:])]
        return [(int(d),) for d in c.z_dims]

    @property
    def classifier_levels(self) -> tuple[int, ...]:
        return tuple(self.config.classifier_levels) or tuple(range(1, self.levels + 1))

    def classifier_width(self, level: int) -> int:
        """How many values of z_level the softmax reads: all of them, or one per channel of a pooled feature map."""
        shape = self.z_shapes[level - 1]
        return shape[0] if len(shape) == 3 and self.config.classifier_pooling == "mean" else math.prod(shape)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """The discriminator, and every other trained parameter (the mean teacher's are averaged, not trained)."""
        discriminator = list(self.discriminator.parameters())
        own = {id(p) for p in discriminator}
        return {"generator": [p for p in self.parameters() if id(p) not in own and p.requires_grad], "discriminator": discriminator}

    # ----- the two chains -------------------------------------------------------------------

    def noisy(self, x: Tensor) -> Tensor:
        """The encoder's input: x plus Gaussian noise in training (section 4; eq. 9's x + sigma eps)."""
        if self.training and self.config.input_noise > 0:
            return x + self.config.input_noise * torch.randn_like(x)
        return x

    def encode_chain(self, x: Tensor, levels: int | None = None, sample: bool = True, encoder: nn.ModuleList | None = None) -> list[Tensor]:
        """``[z^_1, ..., z^_l]`` from q(z_1 | x) then q(z_l | z_{l-1}) (eq. 1), each ``[B, *z_shapes[l]]``;
        ``sample=False`` follows the means; ``encoder`` another set of kernels (the mean teacher's)."""
        zs, h = [], x
        for kernel in (self.encoder if encoder is None else encoder)[: levels or self.levels]:
            q = DiagonalGaussian(*kernel(h))
            h = q.rsample() if sample else q.mean
            zs.append(h)
        return zs

    def decode_from(self, z: Tensor, level: int, sample: bool = True) -> tuple[Tensor, list[Tensor]]:
        """From z_level down: ``(x~ logits [B, D], [z_1, ..., z_level])`` through p(z_{l-1} | z_l) (eq. 2)."""
        zs = [z]
        for kernel in reversed(self.decoder[: level - 1]):
            p = DiagonalGaussian(*kernel(zs[0]))
            zs.insert(0, p.rsample() if sample else p.mean)
        return self.generator(zs[0]), zs

    def prior_chain(self, n: int) -> tuple[Tensor, list[Tensor]]:
        """``(x~ logits, [z_1, ..., z_L])`` with z_L ~ N(0, I) (eq. 4)."""
        z_top = torch.randn(n, *self.z_shapes[-1], device=self.device)  # [n, *z_shapes[L]]
        return self.decode_from(z_top, self.levels)

    # ----- Algorithm 1 ----------------------------------------------------------------------

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, mask = self.flat_x(batch)  # [B, D]
        B = x.shape[0]
        z_hat = self.encode_chain(self.noisy(x))  # encoder's joint: (x, z^_1..L)
        logits_tilde, z = self.prior_chain(B)  # decoder's joint: (x~, z_1..L)
        x_tilde = torch.sigmoid(logits_tilde)  # [B, D]
        if mask is not None:  # holes show the decoder's values, so a hole never tells D which joint it sees
            x = torch.where(mask, x, x_tilde.detach())

        logits_q, _ = self.discriminator(x, [v.detach() for v in z_hat])  # [B]
        logits_p, _ = self.discriminator(x_tilde.detach(), [v.detach() for v in z])
        loss_d = discriminator_loss(logits_q, logits_p)

        logits_q_g, _ = call_frozen(self.discriminator, x, z_hat)
        logits_p_g, _ = call_frozen(self.discriminator, x_tilde, z)
        loss_g = joint_generator_loss(logits_q_g, logits_p_g, self.config.gan_loss)

        terms: dict[str, Tensor] = {}
        if self.teacher is not None and self.training:
            self.update_teacher()
        if self.classifier is not None:
            supervised = self.supervised_cost(batch, z_hat, x)
            loss_g = loss_g + self.config.supervised_weight * supervised
            terms["supervised"] = supervised.detach()
            weights = {"consistency": self.config.consistency_weight, "entropy": self.config.entropy_weight, "balance": self.config.balance_weight,
                       "virtual_adversarial": self.config.vat_weight}
            asked = tuple(name for name, weight in weights.items() if weight)
            if asked:
                ramp = rampup(step, self.config.unlabelled_rampup_steps) if self.training else 1.0
                for name, cost in self.unlabelled_costs(asked, batch, z_hat, x).items():
                    loss_g = loss_g + ramp * weights[name] * cost
                    terms[name] = cost.detach()
        with torch.no_grad():
            terms["d_encoder_accuracy"] = (logits_q > 0).float().mean()  # how often D calls the encoder's joint real
            terms["d_decoder_accuracy"] = (logits_p < 0).float().mean()
        return {"loss": loss_g + loss_d, "loss/generator": loss_g, "loss/discriminator": loss_d, **terms}

    # ----- semi-supervised HALI (section 7.2) ------------------------------------------------

    def classifier_input(self, zs: list[Tensor]) -> Tensor:
        """The levels the softmax reads, each flattened (or a spatial one averaged per channel), joined: ``[B, sum d_l]``."""
        parts = []
        for level in self.classifier_levels:
            z = zs[level - 1]
            parts.append(z.mean((-2, -1)) if z.dim() == 4 and self.config.classifier_pooling == "mean" else z.flatten(1))  # [B, d_l]
        return torch.cat(parts, -1)

    def supervised_cost(self, batch: Batch, z_hat: list[Tensor], x: Tensor | None = None) -> Tensor:
        """Eq. 10: the cross-entropy of q(y | z) on the labelled rows, z from the noisy input: the
        adversarial pass's z^ (noise ``input_noise``), or with ``classifier_noise`` a pass of its own
        from x + classifier_noise * eps (``x`` ``[B, D]``, the clean images). With
        ``supervised_gradient="classifier"`` the cost reaches the softmax only."""
        if batch.y is None or not bool(batch.y_mask.any()):
            return self.classifier.weight.sum() * 0.0
        labelled = batch.y_mask
        y = batch.y[labelled]
        check_class_labels(y, self.config.num_classes)
        sigma = self.config.classifier_noise
        if sigma is not None and x is not None:
            x_l = x[labelled]
            zs = self.encode_chain(x_l + sigma * torch.randn_like(x_l) if self.training else x_l)
        else:
            zs = [z[labelled] for z in z_hat]
        features = self.classifier_input(zs)  # [B_l, sum d_l]
        if self.config.supervised_gradient == "classifier":
            features = features.detach()
        return classification_loss(self.classifier(features), y).mean()

    def unlabelled_costs(self, names: tuple[str, ...], batch: Batch, z_hat: list[Tensor], x: Tensor) -> dict[str, Tensor]:
        """Costs of q(y | z) on the unlabelled rows (all rows when the batch has no labels), a
        departure from section 7.2, which trains the softmax on labelled rows only; ``names`` from
        ``"consistency"``: the cross-entropy of q(y | z^) (z^ from the noisy input, as the
        adversarial pass draws it) to the distribution of the clean input's means, held fixed;
        ``"entropy"``: the entropy of q(y | z^) (Grandvalet and Bengio 2005); ``"balance"``: the KL
        divergence of the batch's mean q(y | z^) from the uniform distribution, log K - H(mean q),
        whose minimum keeps every class in use (the marginal entropy of Springenberg 2015's CatGAN,
        which the conditional entropy alone lets collapse); ``"virtual_adversarial"``: Miyato et
        al. (2018)'s KL(q(y | x) || q(y | x + r_adv)) on the encoder's means, r_adv of norm
        ``vat_epsilon`` in the direction that moves q(y | x) most (no noise: its own encoder passes).
        q(y | z^) is computed once for the first three."""
        rows = ~batch.y_mask if batch.y is not None else torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        if not bool(rows.any()):
            return {name: self.classifier.weight.sum() * 0.0 for name in names}
        log_q = F.log_softmax(self.classifier(self.classifier_input([z[rows] for z in z_hat])), -1)  # [B_u, K]
        costs = {}
        for name in names:
            if name == "entropy":
                costs[name] = -(log_q.exp() * log_q).sum(-1).mean()
            elif name == "virtual_adversarial":
                costs[name] = virtual_adversarial_cost(self.class_logits, x[rows], self.config.vat_epsilon).mean()
            elif name == "balance":
                log_mean = torch.logsumexp(log_q, 0) - math.log(log_q.shape[0])  # [K], log of the batch's mean q(y | z^)
                costs[name] = (log_mean.exp() * log_mean).sum() + math.log(log_q.shape[-1])  # KL(mean q || uniform)
            else:
                costs[name] = -(self.consistency_target(x[rows]) * log_q).sum(-1).mean()
        return costs

    @torch.no_grad()
    def consistency_target(self, x: Tensor) -> Tensor:
        """q(y | z) on the clean input's means ``[B, K]``, by the model itself or its mean teacher."""
        return F.softmax(self.class_logits(x, teacher=self.teacher is not None), -1)

    def class_logits(self, x: Tensor, teacher: bool = False) -> Tensor:
        """The softmax's logits ``[B, K]`` on the encoder's means of ``x`` ``[B, D]``: the trained
        encoder and softmax, or with ``teacher`` the mean teacher's."""
        if teacher and self.teacher is None:
            raise ValueError("this model has no mean teacher to classify with: set teacher_decay (and consistency_weight) > 0")
        encoder, classifier = (self.teacher["encoder"], self.teacher["classifier"]) if teacher else (self.encoder, self.classifier)
        return classifier(self.classifier_input(self.encode_chain(x, sample=False, encoder=encoder)))

    @torch.no_grad()
    def update_teacher(self) -> None:
        """theta' <- d theta' + (1 - d) theta for the mean teacher's encoder and softmax (d =
        ``teacher_decay``; its batch-norm statistics are copied). `loss` calls it once a training
        step, before the step's costs: the teacher averages the weights up to the previous step."""
        d = self.config.teacher_decay
        for name, student in (("encoder", self.encoder), ("classifier", self.classifier)):
            teacher = self.teacher[name]
            for p_t, p in zip(teacher.parameters(), student.parameters()):
                p_t.lerp_(p, 1.0 - d)
            for b_t, b in zip(teacher.buffers(), student.buffers()):
                b_t.copy_(b)

    # ----- what the model offers ------------------------------------------------------------

    @torch.no_grad()
    def encode(self, batch: Batch | Tensor, level: int | None = None) -> Tensor:
        """The encoder's means: every level flattened and concatenated ``[B, sum d_l]``, or one
        ``level`` in its own shape (``[B, C, h, w]`` for a spatial z_1)."""
        x, _ = self.flat_x(as_batch(batch))
        zs = self.encode_chain(x, sample=False)
        return torch.cat([z.flatten(1) for z in zs], -1) if level is None else zs[level - 1]

    @torch.no_grad()
    def reconstruct(self, batch: Batch | Tensor, level: int = 1, sample: bool = True) -> Tensor:
        """x^_l ~ T_{x|z_l} o T_{z_l|x} (section 3.2): up to level ``level`` and back down."""
        batch = as_batch(batch)
        x, _ = self.flat_x(batch)
        return self.reconstruct_flat(x, level, sample).reshape(batch.x[self.group].shape)

    @torch.no_grad()
    def reconstruct_flat(self, x: Tensor, level: int, sample: bool = True) -> Tensor:
        """``[B, D]`` images in, their level-``level`` reconstructions out."""
        if not 1 <= level <= self.levels:
            raise ValueError(f"level must be in 1..{self.levels}, got {level}")
        z = self.encode_chain(x, level, sample)[-1]
        return torch.sigmoid(self.decode_from(z, level, sample)[0])  # [B, D]

    @torch.no_grad()
    def reconstruction_errors(self, x: Tensor) -> dict[str, float]:
        """Per level l: the mean Euclidean distance ||x - x^_l|| and the discriminator-embedded
        distance d_c(x, x^_l) = ||D-bar(x, z^(x)) - D-bar(x^_l, z^(x^_l))|| (eq. 8), over the rows of ``x`` ``[B, D]``."""
        was_training = self.training
        self.eval()
        features_x = self.discriminator(x, self.encode_chain(x, sample=False))[1]  # [B, F]
        errors = {}
        for level in range(1, self.levels + 1):
            x_hat = self.reconstruct_flat(x, level)
            features_hat = self.discriminator(x_hat, self.encode_chain(x_hat, sample=False))[1]
            errors[f"reconstruction_l{level}_euclidean"] = float((x - x_hat).norm(dim=-1).mean())
            errors[f"reconstruction_l{level}_discriminator"] = float((features_x - features_hat).norm(dim=-1).mean())
        self.train(was_training)
        return errors

    def validation_metrics(self, dataset: Any, limit: int = 1000) -> dict[str, float]:
        """What the Trainer logs at every evaluation: the per-level reconstruction errors (the paper's Fig. 3)."""
        from pogm.data.dataset import evaluation_view

        x = evaluation_view(dataset).x[self.group][:limit]
        return self.reconstruction_errors(x.reshape(len(x), -1).to(self.device))

    @torch.no_grad()
    def impute(self, batch: Batch, sweeps: int = 2) -> Tensor:
        """Inpainting (section 6.1): the missing pixels from the top level's reconstruction first,
        then refined by each lower level in turn (``sweeps`` passes per level); observed pixels kept."""
        x_full = batch.x[self.group]
        x, mask = self.flat_x(batch)
        if mask is None:
            return x_full.clone()
        current = x
        for level in range(self.levels, 0, -1):
            for _ in range(sweeps):
                current = torch.where(mask, x, self.reconstruct_flat(current, level))
        return torch.where(batch.x_mask[self.group], x_full, current.reshape(x_full.shape))

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> Tensor:
        """Images G_x(z_1) of the decoder's chain from z_L ~ N(0, I): ``[n, D]``."""
        if y is not None:
            raise ValueError(f"{type(self).__name__} is not conditioned on labels; drop --y")
        return torch.sigmoid(self.prior_chain(n)[0])

    @torch.no_grad()
    def traverse(self, level: int, coordinate: int, scales: Tensor, n: int = 4, sample: bool = False) -> Tensor:
        """Section 6.2: draw ``n`` codes of z_level from the prior chain, multiply one ``coordinate``
        by each scale in ``scales`` and decode: ``[len(scales), n, D]``. A coordinate of a spatial
        z_1 is a whole feature map (a channel), as the paper varies them."""
        if not 1 <= level <= self.levels or not 0 <= coordinate < self.coordinates(level):
            raise ValueError(f"level must be in 1..{self.levels} and coordinate in [0, d_level); got level {level}, coordinate {coordinate}")
        _, zs = self.prior_chain(n)
        z = zs[level - 1]  # [n, d_l] or [n, C, h, w]
        images = []
        for scale in scales:
            edited = z.clone()
            edited[:, coordinate] = edited[:, coordinate] * scale
            images.append(torch.sigmoid(self.decode_from(edited, level, sample)[0]))
        return torch.stack(images)

    def coordinates(self, level: int) -> int:
        """What `traverse` varies one at a time: the entries of a vector level, the channels of a spatial one."""
        return self.z_shapes[level - 1][0]

    @torch.no_grad()
    def innovate(self, batch: Batch | Tensor, coordinate: int, alpha: float, sample: bool | None = None) -> Tensor:
        """Latent semantic innovation (section 6.3): encode x to z^_{L-1}, z^_L; scale entry
        ``coordinate`` of z^_L by ``alpha``; decode both z^_L and the scaled one to z~_{L-1} and
        z~^alpha_{L-1}; subtract the innovation tensor eta = z~_{L-1} - z~^alpha_{L-1} from z^_{L-1}
        and decode that to an image ``[B, ...]``.

        ``sample`` (default: the ``innovation`` setting): True draws every z as the paper writes it
        (z^ ~ T_{z|x}, z~ ~ T_{z_{L-1}|z_L}), the two decodings of z^_L and of its scaled copy with one
        shared noise draw, so that eta holds the change alpha makes and no noise of its own (alpha = 1:
        eta = 0); False follows every kernel's mean."""
        if self.levels < 2:
            raise ValueError("latent innovation needs at least two levels (HALI); ALI has one")
        sample = self.config.innovation == "sample" if sample is None else sample
        batch = as_batch(batch)
        x, _ = self.flat_x(batch)
        zs = self.encode_chain(x, sample=sample)
        z_top, z_below = zs[-1], zs[-2]  # [B, d_L], [B, *z_shapes[L-1]]
        edited = z_top.clone()
        edited[:, coordinate] = edited[:, coordinate] * alpha
        below_kernel = self.decoder[self.levels - 2]
        p, p_alpha = DiagonalGaussian(*below_kernel(z_top)), DiagonalGaussian(*below_kernel(edited))
        if sample:
            eps = torch.randn_like(p.mean)  # one draw for both decodings
            eta = (p.mean + torch.exp(0.5 * p.log_var) * eps) - (p_alpha.mean + torch.exp(0.5 * p_alpha.log_var) * eps)
        else:
            eta = p.mean - p_alpha.mean  # the innovation tensor, [B, *z_shapes[L-1]]
        logits, _ = self.decode_from(z_below - eta, self.levels - 1, sample=sample)
        return torch.sigmoid(logits).reshape(batch.x[self.group].shape)


@register_model("ali", paper="Dumoulin et al. 2016, Adversarially Learned Inference", summary="ALI: encoder and decoder matched by a discriminator on (x, z)")
class ALI(HierarchicalALI):
    """ALI: one latent level."""

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        """A vector z of 64 (Dumoulin et al.'s ALI), whatever the data; ``architecture=spatial`` gives it a feature map."""
        return {**super().data_fields(x_dim, num_classes, num_train, num_labelled, train), "z_dims": (64,), "architecture": "mlp"}


@register_model("hali", paper="Hierarchical Adversarially Learned Inference (Belghazi et al. 2018)", summary="HALI: Markov hierarchy x -> z1 -> z2 matched adversarially (Algorithm 1)")
class HALI(HierarchicalALI):
    """HALI with L levels (two by default)."""


@register_model("hali-ssl", paper="Hierarchical Adversarially Learned Inference (Belghazi et al. 2018), section 7.2", summary="Semi-supervised HALI: a softmax on z from noisy input, its cost in the generator's loss")
class SemiSupervisedHALI(HierarchicalALI):
    """Semi-supervised HALI: q(y | z) classifies."""

    uses_labels: ClassVar[bool] = True

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        if not num_classes:
            raise ValueError(f"{cls.__name__} needs class labels; the data set has none")
        return {**super().data_fields(x_dim, num_classes, num_train, num_labelled, train), "num_classes": num_classes}

    @torch.no_grad()
    def classify(self, batch: Batch | Tensor, teacher: bool | None = None) -> Tensor:
        """Log-probabilities of q(y | z) with z the encoder's means of the clean input: ``[B, K]``;
        by the mean teacher's encoder and softmax when ``teacher`` (None: as ``classify_with`` says)."""
        x, _ = self.flat_x(as_batch(batch))
        if teacher is None:
            teacher = self.config.classify_with == "teacher"
        return F.log_softmax(self.class_logits(x, teacher), -1)  # [B, K]


__all__ = ["ALI", "HALI", "HALIConfig", "HierarchicalALI", "SemiSupervisedHALI"]
