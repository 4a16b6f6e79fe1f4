"""What every model shares: a frozen config dataclass and the helpers that read a `Batch`."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from pogm.data.batch import Batch
from pogm.models.support import DataSupport, model_support
from pogm.objectives import ObjectiveWeights, chunked_importance_weighted_bound, objective_weights


def config_from_dict(config_cls: type, values: dict[str, Any]) -> Any:
    """Build a frozen config dataclass; unknown keys and values of the wrong type (``z_dim=abc``)
    are a one-line ValueError naming the key and what it takes."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown config keys for {config_cls.__qualname__}: {unknown}; known keys: {sorted(names)}")
    hints = typing.get_type_hints(config_cls)
    converted = {}
    for f in dataclasses.fields(config_cls):
        if f.name in values:
            converted[f.name] = _typed_value(config_cls, f.name, values[f.name], hints.get(f.name, Any))
    return config_cls(**converted)


def _typed_value(config_cls: type, name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the field's type hint (lists become tuples: configs are frozen and
    hashable; a whole float such as ``1e4`` is an int where an int is wanted)."""
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, float) and value.is_integer() and _accepts(hint, int) and not _accepts(hint, float):
        value = int(value)
    if not _matches(value, hint):
        raise ValueError(f"{config_cls.__qualname__}.{name} must be {_describe(hint)}, got {value!r}")
    return value


def _accepts(hint: Any, kind: type) -> bool:
    """Whether the hint is ``kind`` or a union containing it."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return kind in typing.get_args(hint)
    return hint is kind


def _matches(value: Any, hint: Any) -> bool:
    """A shallow check of ``value`` against a config field's type hint (unknown hints pass)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_matches(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is tuple:
        if not isinstance(value, tuple):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_matches(v, a) for v, a in zip(value, args)))
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _describe(hint: Any) -> str:
    """A type hint in words: ``int | None`` -> "an integer or null"."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(hint))
    if typing.get_origin(hint) is tuple:
        return "a list, e.g. [500, 500]"
    words = {bool: "true or false", int: "an integer", float: "a number", str: "a string", type(None): "null", dict: "a mapping"}
    return words.get(hint, words.get(typing.get_origin(hint), str(hint)))


def config_to_dict(config: Any) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}


# What a model can offer beyond ``loss``: a model offers a capability by defining the method of
# that name (see `Model`); `Model.offers` is the one place that looks.
CAPABILITIES = (
    "classify", "predict_labels", "sample", "sample_joint", "encode", "decode", "reconstruct", "impute", "interpolate",
    "transfer_style", "log_likelihood", "log_weights", "conditional_log_likelihood", "sparsity_pattern",
    "encode_auxiliary", "canvas_sequence", "innovate", "importance_parts",
)
# The capabilities that `pogm models` lists.
LISTED_CAPABILITIES = (
    "classify", "predict_labels", "sample", "sample_joint", "encode", "reconstruct", "impute", "interpolate",
    "transfer_style", "log_likelihood", "conditional_log_likelihood", "sparsity_pattern",
)


class Model(nn.Module):
    """The model interface: what every pogm model is, declares and may offer.

    Every model has a frozen ``Config`` dataclass, builds itself from it, and defines
    ``loss(batch, kl_weight=1.0, step=0) -> {"loss": ..., other terms}`` (one loss, or one
    ``"loss/<group>"`` per parameter group). What it reads from the data is declared in class
    settings (``uses_labels``, ``label_kind``, ``uses_unlabelled``, ``multi_group``,
    ``data_defaults``, ``likelihood_field``, ``sigmoid_images``) and `data_fields`.

    **Capabilities** (`CAPABILITIES`) are methods a model defines when it can: ``classify(batch) ->
    logits [B, K]``, ``predict_labels``, ``sample(n, y=None)``, ``sample_joint(n)``, ``encode``,
    ``decode``, ``reconstruct``, ``impute``, ``interpolate``, ``transfer_style``,
    ``log_likelihood(batch, k)``, ``log_weights(batch, k)``, ``conditional_log_likelihood``,
    ``sparsity_pattern()``, ``encode_auxiliary``, ``canvas_sequence``, ``innovate``,
    ``importance_parts(batch) -> (q(z | x), z -> log p(x, z))`` (what an estimator of log p(x) with
    a proposal of its own needs, `pogm.evaluate.refined`). Callers ask `offers` and never probe.

    **Hooks** have defaults here and are overridden where a model needs them: the Trainer calls
    `parameter_groups` / ``discriminator_groups`` (several optimisers), `proximal_parameters` /
    `proximal_lr` / `proximal_step` (a proximal step after each gradient step),
    `validation_metrics` and `evaluation_metrics`; the figures and the report call `figures` and
    `sampled_classes`.
    """

    Config: ClassVar[type]
    registry_name: ClassVar[str]
    group: ClassVar[str] = "x"
    # Whether loss() reads labels; semi-supervised models need y and y_mask.
    uses_labels: ClassVar[bool] = False
    # The labels loss() reads: "class" (int [B]) or "continuous" (float [B, D]).
    label_kind: ClassVar[str] = "class"
    # Whether loss() learns from unlabelled rows (False: streams draw labelled minibatches only).
    uses_unlabelled: ClassVar[bool] = True
    # The config field naming the likelihood of x (`pogm.likelihoods.make_likelihood`), if any,
    # and whether the model's images are sigmoids in [0, 1] (GAN generators, DRAW): what
    # `data_support` reads.
    likelihood_field: ClassVar[str] = "likelihood"
    sigmoid_images: ClassVar[bool] = False
    # Data options the model prefers where the source has them (the GAN models: grey levels,
    # since a discriminator tells binarised real images from grey reconstructions at a glance);
    # the recipe and --set data.* win.
    data_defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.config = config

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        """Config values that come from the data (dimensions, class count, default alpha).

        ``num_train`` is the size of the unlabelled pool, ``train`` the training `PartialDataset`
        (for shapes that a flat ``x_dim`` does not tell, such as images and continuous labels).
        """
        return {"x_dim": x_dim}

    # ------------------------------------------------------------------ the declared interface
    # A model whose loss is over several parameter groups names, in the alternating schedule, the
    # groups that take the discriminator's steps.
    discriminator_groups: ClassVar[tuple[str, ...]] = ()
    # Multi-group data (factVAE and its baselines): x holds several named groups, any may be missing.
    multi_group: ClassVar[bool] = False
    # Whether the model conditions on partly observed images (the CVAE's completions).
    uses_partial: ClassVar[bool] = False

    @classmethod
    def offers(cls, capability: str) -> bool:
        """Whether the model offers ``capability`` (one of `CAPABILITIES`): it defines that method."""
        if capability not in CAPABILITIES:
            raise ValueError(f"unknown capability {capability!r}; the capabilities are {', '.join(CAPABILITIES)}")
        return callable(getattr(cls, capability, None))

    def parameter_groups(self) -> dict[str, list[nn.Parameter]] | None:
        """``{name: parameters}`` for a model trained by several optimisers, each on its own loss
        ``terms["loss/<name>"]`` (the adversarial models); None (the default): one optimiser on ``loss``."""
        return None

    def proximal_parameters(self) -> list[nn.Parameter]:
        """Parameters that take plain gradient steps of size `proximal_lr` followed by
        `proximal_step` (the factVAE's group lasso, Ainsworth et al. 2018, Algorithm 1); none by default."""
        return []

    @property
    def proximal_lr(self) -> float:
        """The step size of the `proximal_parameters`."""
        return 0.0

    def proximal_step(self, scale: float = 1.0) -> None:
        """The proximal operator, applied after each gradient step of the `proximal_parameters`;
        ``scale`` is the step's KL weight, which the model may use or ignore."""

    def validation_metrics(self, dataset: Any) -> dict[str, float]:
        """Extra numbers the Trainer logs at every evaluation on the validation split (logged as ``valid_<name>``)."""
        return {}

    def evaluation_metrics(self, dataset: Any) -> dict[str, float]:
        """Extra numbers the Trainer logs at every evaluation on the validation and the test split
        (logged as ``valid_<name>`` and ``test_<name>``)."""
        return {}

    def sampled_classes(self) -> int:
        """How many classes ``sample(n, labels)`` draws from: 0 (the default) when samples take no label."""
        return 0

    def figures(self, data: Any, out: Path, labelled_index: Tensor | None = None, run_dir: Path | None = None) -> list[Path] | None:
        """The model family's own figures of ``data``, written to ``out``; None (the default): the
        standard figures (`pogm.models.figures.standard_figures`: samples, reconstructions,
        completions and interpolations of images, decision regions of 2-D data, the auxiliary
        latent space)."""
        return None

    def data_support(self) -> DataSupport:
        """The values of x this model can fit (`pogm.models.support.check_data_support` refuses
        other data before training): [0, 1] for sigmoid images, else the support of the
        likelihood named in the config field ``likelihood_field`` (unbounded when there is none)."""
        return model_support(self)

    def flat_x(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """The main group as ``[B, D]`` with its mask as ``[B, D]``, ``[B, 1]``, or None when fully observed."""
        if self.group not in batch.x:
            raise KeyError(f"{type(self).__name__} reads group {self.group!r}; the batch has {sorted(batch.x)}")
        x = batch.x[self.group]
        mask = batch.x_mask[self.group]
        x = x.reshape(x.shape[0], -1)  # [B, D]
        if x.shape[1] != self.config.x_dim:
            raise ValueError(f"{type(self).__name__} was built for x_dim={self.config.x_dim} but the batch has {x.shape[1]} features per example")
        mask = flat_mask(mask, x.shape[1])
        if self.group in batch.observed or (mask.shape[1] == 1 and bool(mask.all())):
            return x, None  # fully observed: skip the masking work (known without reading the mask, or read)
        # Zero-fill again here so that a mask always removes the information, whatever the caller left there.
        return zero_fill(x, mask), mask

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device


class ImputesByReconstruction:
    """``impute`` for models with ``reconstruct``: unobserved entries take the reconstruction's
    mean, observed entries stay bit for bit."""

    @torch.no_grad()
    def impute(self, batch: Batch) -> Tensor:
        x = batch.x[self.group]
        return torch.where(batch.x_mask[self.group], x, self.reconstruct(batch))


class ImportanceWeighted:
    """``log_likelihood`` for models with ``log_weights(batch, k)`` (``[k, B]`` values of
    log p(x, h) - log q(h | x)): the importance-weighted bound of Burda et al. (2015), drawn
    ``chunk_size`` samples at a time so that k = 5000 fits in memory."""

    @torch.no_grad()
    def log_likelihood(self, batch: Batch, k: int = 5000, chunk_size: int = 500, progress: bool = False) -> Tensor:
        return chunked_importance_weighted_bound(lambda n: self.log_weights(batch, n), k, chunk_size, progress)


class SemiSupervised:
    """What the semi-supervised models (M2, ADGM, SDGM) share: class labels from the data, the
    objective's weights (``weighting``, ``alpha`` and the data set's sizes in the config), range-checked one-hot labels, and the split of a batch into its labelled and
    unlabelled rows."""

    uses_labels: ClassVar[bool] = True

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        if not num_classes:
            raise ValueError(f"{cls.__name__} needs class labels; the data set has none")
        return {"x_dim": x_dim, "num_classes": num_classes, "num_labelled": num_labelled, "num_unlabelled": num_train}

    @property
    def objective_weights(self) -> ObjectiveWeights:
        """The weights of the labelled bound, the unlabelled bound and the classifier in a step's
        loss, under the config's ``weighting`` (`pogm.objectives.objective_weights`)."""
        c = self.config
        return objective_weights(c.weighting, c.num_labelled, c.num_unlabelled, c.alpha)

    def sampled_classes(self) -> int:
        return self.config.num_classes

    def one_hot(self, y: Tensor) -> Tensor:
        """``[..., K]`` one-hot labels in the model's float dtype; labels outside [0, K) are an error."""
        return one_hot_labels(y, self.config.num_classes, self.every_class.dtype)

    @staticmethod
    def labelled_rows(batch: Batch, device: torch.device) -> tuple[Rows, Rows, Tensor]:
        """``(labelled rows, unlabelled rows, labels of the labelled rows [B_l])``; the rows are
        slices when the batch says its labelled rows come first (no host sync), else bool masks."""
        if batch.y is None:
            return slice(0, 0), slice(0, None), torch.zeros(0, dtype=torch.long, device=device)
        if batch.labelled_first is not None:
            n = batch.labelled_first
            return slice(0, n), slice(n, None), batch.y[:n]
        return batch.y_mask, ~batch.y_mask, batch.y[batch.y_mask]


def check_class_labels(y: Tensor, num_classes: int) -> None:
    """Class labels must be integers in [0, K): a clear error names the dtype and range found."""
    if y.dtype.is_floating_point or (y.numel() and (y.min() < 0 or y.max() >= num_classes)):
        low, high = (y.min().item(), y.max().item()) if y.numel() else ("-", "-")
        raise ValueError(f"labels must be integers in [0, {num_classes}); got dtype {y.dtype}, range [{low}, {high}]")


def one_hot_labels(y: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``[..., K]`` one-hot labels of ``dtype``; labels outside [0, K) are an error.

    The range is checked on the device (``torch._assert_async``): a GPU step does not wait for
    it; the CPU raises at once, and `check_class_labels` then names the range found."""
    if y.dtype.is_floating_point:
        check_class_labels(y, num_classes)
    try:
        torch._assert_async(((y >= 0) & (y < num_classes)).all(), f"labels must be integers in [0, {num_classes})")
    except RuntimeError:
        check_class_labels(y, num_classes)
        raise
    return (y.unsqueeze(-1) == torch.arange(num_classes, device=y.device)).to(dtype)  # [..., K]


def image_fields(cls: type, x_dim: int, train: Any) -> dict[str, Any]:
    """``{"x_dim", "image_shape"}`` from the training images ``[N, C, H, W]``; flat data is a clear error."""
    image_shape = train.shapes.get("x", ()) if train is not None else ()
    if len(image_shape) != 3:
        raise ValueError(
            f"{cls.__name__} needs images [N, C, H, W]; the data has x of shape [N, {', '.join(map(str, image_shape))}] "
            "(for images stored another way, say their shape: --set data.image_shape=[C,H,W], e.g. [1,28,28])"
        )
    return {"x_dim": x_dim, "image_shape": image_shape}


def flat_x_shape_fields(x_dim: int, train: Any) -> dict[str, Any]:
    """``{"image_shape"}``: the training images' ``[C, H, W]``, or ``(1, 1, x_dim)`` for flat data
    (enough for fully connected networks; convolutional ones then give a clear error)."""
    shape = train.shapes.get("x", ()) if train is not None else ()
    return {"image_shape": shape if len(shape) == 3 else (1, 1, x_dim)}


def flat_mask(mask: Tensor, dim: int) -> Tensor:
    """A group's mask as ``[B, D]`` (one flag per entry) or ``[B, 1]`` (one flag per row)."""
    if mask.numel() // max(mask.shape[0], 1) == dim:
        return mask.reshape(mask.shape[0], -1)
    return mask.reshape(mask.shape[0], 1)


def zero_fill(x: Tensor, mask: Tensor) -> Tensor:
    """``x`` with its unobserved entries set to zero."""
    return torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))


Rows = Tensor | slice  # a bool mask over the batch, or a slice of it


def rows(mask: Tensor | None, index: Rows) -> Tensor | None:
    """Select rows of a mask (None = fully observed stays None)."""
    return None if mask is None else mask[index]


def as_batch(x: Tensor | Batch, group: str = "x") -> Batch:
    return x if isinstance(x, Batch) else Batch(x={group: x})
