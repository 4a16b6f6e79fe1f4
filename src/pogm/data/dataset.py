"""`PartialDataset`: a whole data set held in memory as tensors, with observation masks.

A dataset is what a source (``pogm.data.sources``) returns and what a stream
(``pogm.data.streams``) draws minibatches from. It follows the `Batch` conventions:

* ``x`` maps group names to float32 tensors ``[N, ...]`` (images ``[N, C, H, W]``, vectors ``[N, D]``).
  Raw uint8 values k (8-bit images as they ship) are read as k / 255, in [0, 1].
* ``x_mask`` has the same keys; bool tensors, ``True`` = observed. A mask may have a leading
  dimension of 1 (and size-1 trailing dimensions) when it is the same for every row: a fully
  observed group stores a single all-True ``[1, 1, ...]`` mask and costs no memory.
  ``batch(index)`` always returns masks with ``B`` rows, broadcastable to the group.
* ``y`` holds int64 class labels ``[N]`` or float32 continuous labels ``[N, D]``, or is None;
  ``y_mask`` is bool ``[N]``, ``True`` = labelled. Unlabelled rows of ``y`` hold 0.
* ``dequantize = L`` marks grey levels ``k / (L - 1)`` (e.g. 8-bit images /255) as quantised:
  streams add uniform noise within each level, ``x -> (k + u) / L`` with ``u ~ U[0, 1)``, so a
  continuous density on ``x`` cannot collapse onto a single grey level (Theis et al. 2016).

NaN in raw data is turned into masks once, in `PartialDataset.from_arrays`; after that no tensor
held here contains NaN.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Union

import numpy as np
import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.data.layout import observed_range, reshape_mask

ArrayLike = Union[np.ndarray, Tensor]
# How a user passes the number of classes, for messages that ask for it.
NUM_CLASSES_HINT = "pass it (--set data.num_classes=K, or num_classes=K in Python)"


_FLOAT32_MAX = float(np.finfo(np.float32).max)
# numpy dtype kinds that hold numbers: bool, signed and unsigned integers, floats.
_NUMERIC_KINDS = "biuf"
_KIND_NAMES = {"U": "strings", "S": "byte strings", "V": "records or raw bytes", "M": "dates", "m": "time spans", "O": "Python objects", "c": "complex numbers"}
_TORCH_NUMERIC = {torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64}
_TORCH_WIDE_UNSIGNED = {d for d in (getattr(torch, f"uint{b}", None) for b in (16, 32, 64)) if d is not None}


def _as_tensor(a: Any, what: str) -> Tensor:
    """A torch tensor of a real numeric dtype sharing memory with ``a`` where possible.

    ``a`` may be a numpy array, a torch tensor or nested lists. Strings, objects, complex numbers,
    dates and records are refused with a `ValueError` naming ``what``; numpy arrays in a foreign
    byte order (big-endian files) and unsigned or extended-precision types torch lacks are converted.
    """
    if isinstance(a, Tensor):
        if a.layout != torch.strided:
            raise ValueError(f"{what} is a {a.layout} tensor; pass a dense tensor (call .to_dense())")
        if a.is_complex():
            raise ValueError(f"{what} has dtype {a.dtype}; pass a real float or integer array")
        if a.dtype in _TORCH_WIDE_UNSIGNED:
            return a.detach().to(torch.float64)  # torch supports few operations on these
        if not (a.is_floating_point() or a.dtype in _TORCH_NUMERIC):
            raise ValueError(f"{what} has dtype {a.dtype}; pass a float, integer or bool tensor")
        return a.detach()
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"{what} could not be converted to a numeric array: {err}") from err
    dtype = a.dtype
    if dtype.kind not in _NUMERIC_KINDS or dtype.hasobject:
        kind = _KIND_NAMES.get(dtype.kind, "non-numeric values")
        if dtype.kind == "c":
            raise ValueError(f"{what} has dtype {dtype} ({kind}); pass a real float or integer array")
        raise ValueError(f"{what} has dtype {dtype} ({kind}); pass a numeric array (float, integer or bool)")
    if not dtype.isnative:
        a = a.astype(dtype.newbyteorder("="))  # e.g. '>f4' from a big-endian file: torch needs native order
    if dtype.kind == "f" and dtype.itemsize > 8:
        a = a.astype(np.float64)  # long double: torch has no such type
    elif dtype.kind == "u" and dtype.itemsize > 1:
        if dtype.itemsize == 8 and a.size and a.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{what} holds the value {a.max()}, beyond the range of int64; pass smaller numbers or floats")
        a = a.astype(np.int64)  # torch's uint16/32/64 support few operations
    return torch.from_numpy(np.ascontiguousarray(a))


def _to_float32(t: Tensor, what: str) -> Tensor:
    """``t`` as float32; a `ValueError` if finite values overflow float32 (they would become inf)."""
    out = t.to(torch.float32)
    if t.is_floating_point() and t.dtype != torch.float32:
        overflow = torch.isinf(out)
        if overflow.any() and not torch.isinf(t[overflow]).all():
            raise ValueError(f"{what} holds values beyond the float32 range (+-{_FLOAT32_MAX:.3g}); rescale the data")
    return out


def _full_mask(n: int, dim: int, device: torch.device | str = "cpu") -> Tensor:
    """An all-True mask ``[n, 1, ..., 1]`` with ``dim`` dimensions."""
    return torch.ones(n, *([1] * (dim - 1)), dtype=torch.bool, device=device)


def _check_num_classes(num_classes: Any) -> int | None:
    if num_classes is None:
        return None
    if isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, (int, np.integer)):
        raise ValueError(f"num_classes must be a whole number >= 1 (or None to infer it), got {num_classes!r}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    return int(num_classes)


def _group_from_array(name: str, a: ArrayLike, what: str | None = None) -> tuple[Tensor, Tensor]:
    """Convert one raw group to (float32 values zero-filled at NaN, bool mask).

    uint8 values k (8-bit images) are read as k / 255, in [0, 1]; other integer and bool values
    are converted as they are. ``what`` names the array in messages (default ``x['name']``).
    """
    what = what or f"x[{name!r}]"
    t = _as_tensor(a, what)
    if t.dim() < 2:
        raise ValueError(
            f"{what} has shape {tuple(t.shape)}; it must be at least 2-D, [N, D] for vectors or "
            f"[N, C, H, W] for images (reshape a single vector with x[None] or a 1-D feature with x[:, None])"
        )
    if t.shape[0] == 0:
        raise ValueError(f"{what} has shape {tuple(t.shape)}: no rows; a data set needs at least one example")
    if any(s == 0 for s in t.shape[1:]):
        raise ValueError(f"{what} has shape {tuple(t.shape)}: each row is empty; every example needs at least one value")
    t = _pixels(t) if t.dtype == torch.uint8 else _to_float32(t, what)
    nan = torch.isnan(t)
    if torch.isinf(t).any():
        raise ValueError(f"{what} contains +-inf; mark missing entries with NaN instead, or clip the values")
    if nan.any():
        mask = ~nan
        t = torch.where(nan, torch.zeros((), dtype=t.dtype), t)
    else:
        mask = _full_mask(1, t.dim())
    return t.contiguous(), mask


def _pixels(t: Tensor) -> Tensor:
    """uint8 values k as float32 k / 255 (one new tensor, divided in place)."""
    return t.to(torch.float32).div_(255.0)


def _mask_from_array(m: Any, x: Tensor, what: str) -> Tensor:
    """A user mask (bool, or integers 0 / 1; True = observed) checked to broadcast to ``x``."""
    t = _as_tensor(m, what)
    if t.dtype != torch.bool:
        if t.is_floating_point():
            raise ValueError(f"{what} has dtype {t.dtype}; masks are bool (or integers 0 / 1), True = observed (NaN in x also marks missing entries)")
        if t.numel() and ((t != 0) & (t != 1)).any():
            raise ValueError(f"{what} holds values other than 0 and 1; masks are bool, True = observed")
        t = t != 0
    n = x.shape[0]
    if t.dim() != x.dim() or t.shape[0] not in (1, n) or any(ms not in (1, xs) for ms, xs in zip(t.shape[1:], x.shape[1:])):
        raise ValueError(
            f"{what} has shape {tuple(t.shape)}, not broadcastable to the data {tuple(x.shape)}: it needs "
            f"{x.dim()} dimensions, a leading dimension of {n} or 1, and each other dimension equal to the data's or 1"
        )
    return t.contiguous()


def _labels_from_array(
    y: ArrayLike,
    n: int,
    num_classes: int | None,
    what: str = "y",
    max_inferred_classes: int | None = None,
    require_labelled: bool = True,
) -> tuple[Tensor, Tensor, int | None]:
    """Convert raw labels to (y, y_mask, num_classes).

    1-D labels (or ``[N, 1]`` integer labels) are class labels: integers in ``[0, num_classes)``, with
    -1 or NaN meaning unlabelled. 2-D float labels ``[N, D]`` are continuous; a row with any NaN is
    unlabelled. ``what`` names the labels in messages.

    An inferred number of classes may not exceed ``max_inferred_classes`` (default: the number of
    rows), since some class would then have no example. With ``require_labelled=False`` class labels
    without any labelled row give ``num_classes=None`` instead of an error (a caller that infers the
    number of classes from several arrays).
    """
    t = _as_tensor(y, what)
    if t.dim() == 0 or t.shape[0] != n:
        raise ValueError(
            f"{what} has shape {tuple(t.shape)} but x has {n} rows; {what} needs one label per row of x "
            f"(use -1 or NaN for unlabelled rows)"
        )
    if t.dim() == 2 and t.shape[1] == 1 and (not t.is_floating_point() or num_classes is not None):
        t = t[:, 0]
    if t.dim() == 2 and num_classes is None:
        # Continuous labels (e.g. landmarks, light direction).
        if t.shape[1] == 0:
            raise ValueError(f"{what} has shape {tuple(t.shape)}: continuous labels [N, D] need at least one column")
        t = _to_float32(t, what)
        if torch.isinf(t).any():
            raise ValueError(f"{what} contains +-inf; mark unlabelled rows with NaN instead")
        nan = torch.isnan(t)
        y_mask = ~nan.any(dim=1)
        t = torch.where(y_mask[:, None], t, torch.zeros((), dtype=t.dtype))
        return t.contiguous(), y_mask, None
    if t.dim() != 1:
        raise ValueError(
            f"{what} has shape {tuple(t.shape)}; class labels must be [N] (or [N, 1]), continuous labels "
            f"[N, D] float without num_classes"
        )
    if t.dtype == torch.bool:
        t = t.to(torch.int64)
    if t.is_floating_point():
        t = t.to(torch.float64)
        unlabelled = torch.isnan(t) | (t == -1)
        vals = torch.where(unlabelled, torch.zeros((), dtype=t.dtype), t)
        bad_mask = torch.isinf(vals) | (vals != torch.round(vals))
        if bad_mask.any():
            bad = vals[bad_mask][0].item()
            raise ValueError(
                f"{what} contains the non-integer class label {bad}; class labels must be whole numbers in "
                f"[0, num_classes) with -1 or NaN for unlabelled rows (for continuous labels pass {what} as [N, D])"
            )
        if vals.numel() and vals.abs().max() >= 2.0**62:
            raise ValueError(f"{what} contains the class label {vals[vals.abs().argmax()].item():g}, far beyond any number of classes")
        t = vals.to(torch.int64)
    else:
        t = t.to(torch.int64)
        unlabelled = t == -1
        t = torch.where(unlabelled, torch.zeros((), dtype=t.dtype), t)
    y_mask = ~unlabelled
    labelled = t[y_mask]
    if labelled.numel() and labelled.min() < 0:
        raise ValueError(
            f"{what} contains the negative class label {labelled.min().item()}; class labels must be in "
            f"[0, num_classes), and only -1 (or NaN) means unlabelled"
        )
    if num_classes is None:
        if labelled.numel() == 0:
            if not require_labelled:
                return t.contiguous(), y_mask, None
            raise ValueError(f"{what} has no labelled rows, so num_classes cannot be inferred; {NUM_CLASSES_HINT}")
        top = int(labelled.max().item())
        limit = n if max_inferred_classes is None else max_inferred_classes
        if top + 1 > limit:
            raise ValueError(
                f"{what}'s largest class label is {top}, so num_classes would be {top + 1}, but there are only {limit} rows: "
                f"at least {top + 1 - limit} classes would have no example; relabel the classes as 0..K-1 or pass num_classes (--set data.num_classes=K)"
            )
        num_classes = top + 1
    elif labelled.numel() and labelled.max() >= num_classes:
        raise ValueError(
            f"{what} contains the class label {labelled.max().item()} but num_classes={num_classes}; labels must "
            f"be in [0, {num_classes}) (raise num_classes, or relabel the classes as 0..K-1)"
        )
    return t.contiguous(), y_mask, int(num_classes)


def agree_on_classes(parts: list[Any], where: str, inferred: bool) -> None:
    """The class-labelled parts of one data set (train / valid / test) take the largest number of
    classes among them; when that number was inferred from the labels (``inferred``), every class
    needs a labelled example in some part. ``where`` (a path) starts the messages."""
    k = max(d.num_classes or 0 for d in parts)
    if k == 0:
        raise ValueError(f"{where}: the labels have no labelled rows (all -1 or NaN), so num_classes cannot be inferred; {NUM_CLASSES_HINT}")
    for d in parts:
        d.num_classes = k
    if not inferred:
        return
    present = torch.zeros(k, dtype=torch.bool)
    for d in parts:
        present[d.y[d.y_mask]] = True
    empty = (~present).nonzero().squeeze(1).tolist()
    if empty:
        hint = " (are the labels 1-based? class labels start at 0)" if empty == [0] else ""
        raise ValueError(
            f"{where}: class(es) {empty[:10]} of 0..{k - 1} have no labelled example{hint}; relabel the classes "
            f"as 0..K-1 with every class present, or pass num_classes to allow empty classes (--set data.num_classes=K)"
        )


def _from_arrays(
    cls: type,
    x: Any,
    y: Any,
    *,
    group: str = "x",
    num_classes: Any = None,
    binarize: Any = False,
    name: str = "arrays",
    x_mask: Any = None,
    x_names: Mapping[str, str] | None = None,
    y_name: str = "y",
    max_inferred_classes: int | None = None,
    require_labelled: bool = True,
) -> "PartialDataset":
    """`PartialDataset.from_arrays`, with the names that messages give the arrays (``x_names`` by
    group, ``y_name``): a file loader passes e.g. ``{"x": "'x_test'"}`` and ``"'y_test'"``."""
    num_classes = _check_num_classes(num_classes)
    if not isinstance(binarize, (bool, np.bool_)):
        raise ValueError(f"binarize must be True or False, got {binarize!r}")
    if isinstance(x, Mapping):
        groups = dict(x)
        if not groups:
            raise ValueError("x is an empty dict; give at least one group name -> array")
    else:
        groups = {group: x}
    bad_names = [k for k in groups if not isinstance(k, str) or not k]
    if bad_names:
        raise ValueError(f"group names must be non-empty strings, got {bad_names[:3]}")
    names = {k: (x_names or {}).get(k) or f"x[{k!r}]" for k in groups}
    xs: dict[str, Tensor] = {}
    masks: dict[str, Tensor] = {}
    for k, a in groups.items():
        xs[k], masks[k] = _group_from_array(k, a, names[k])
    sizes = {names[k]: v.shape[0] for k, v in xs.items()}
    n = next(iter(sizes.values()))
    if any(s != n for s in sizes.values()):
        raise ValueError(f"every group of x needs the same number of rows, got {sizes}")
    if x_mask is not None:
        if isinstance(x_mask, Mapping):
            given = dict(x_mask)
        elif len(groups) == 1:
            given = {next(iter(groups)): x_mask}
        else:
            raise ValueError(f"x has the groups {sorted(groups)}: give x_mask as a dict by group name")
        unknown = sorted(map(str, set(given) - set(groups)))
        if unknown:
            raise ValueError(f"x_mask has groups {unknown} that x does not have (x has {sorted(groups)})")
        for k, m in given.items():
            user = _mask_from_array(m, xs[k], f"x_mask[{k!r}]")
            combined = masks[k] & user
            xs[k] = torch.where(combined, xs[k], torch.zeros((), dtype=xs[k].dtype))
            masks[k] = combined
    if binarize:
        for k, v in xs.items():
            if v.numel() and (v.min() < 0 or v.max() > 1):
                raise ValueError(
                    f"binarize=True needs values in [0, 1] (Bernoulli probabilities) but {names[k]} spans "
                    f"[{v.min().item():g}, {v.max().item():g}]; scale the data (e.g. /255) or pass binarize=False"
                )
    y_t = y_mask = None
    if y is not None:
        y_t, y_mask, num_classes = _labels_from_array(y, n, num_classes, y_name, max_inferred_classes, require_labelled)
    return cls(x=xs, x_mask=masks, y=y_t, y_mask=y_mask, num_classes=num_classes, binarize=bool(binarize), name=name)


def add_dequantization_noise(x: Tensor, levels: int, generator: torch.Generator | None = None) -> Tensor:
    """``k / (L - 1) -> (k + u) / L`` with ``u ~ U[0, 1)``: grey level k spread over its bin."""
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return (x * (levels - 1) + u) / levels


class LabelledRows:
    """Which rows of a data set carry a label, from its ``y_mask`` ``[N]`` (True = labelled; None =
    no labels): shared by `PartialDataset` and the memory-mapped `pogm.data.memmap.MemmapDataset`."""

    y_mask: Tensor | None

    @property
    def num_labelled(self) -> int:
        """How many rows carry a label."""
        return 0 if self.y_mask is None else int(self.y_mask.sum().item())

    def labelled_index(self) -> Tensor:
        """Indices (LongTensor, ascending) of the labelled rows."""
        if self.y_mask is None:
            return torch.zeros(0, dtype=torch.long)
        return self.y_mask.nonzero().squeeze(1)


@dataclass
class PartialDataset(LabelledRows):
    """An in-memory data set of named groups with observation masks and (partial) labels.

    Attributes:
        x: group name -> float32 tensor ``[N, ...]``; zero at unobserved entries.
        x_mask: group name -> bool tensor broadcastable to the group, leading dimension N or 1.
        y: int64 ``[N]`` class labels, float32 ``[N, D]`` continuous labels, or None.
        y_mask: bool ``[N]``, True = labelled (None when ``y`` is None).
        num_classes: number of classes for class labels, else None.
        binarize: True if values in [0, 1] are Bernoulli probabilities to be re-sampled each epoch
            (dynamic binarisation); streams honour it by default.
        dequantize: number of grey levels L of quantised values in [0, 1] (0 = continuous data);
            streams add fresh uniform noise within each level at every draw.
        name: a short name for logs and run directories.
    """

    x: dict[str, Tensor]
    x_mask: dict[str, Tensor] = field(default_factory=dict)
    y: Tensor | None = None
    y_mask: Tensor | None = None
    num_classes: int | None = None
    binarize: bool = False
    dequantize: int = 0
    name: str = "dataset"

    def __post_init__(self) -> None:
        # Cheap structural checks only (no pass over the values): this runs on every subset and copy.
        if not isinstance(self.x, Mapping) or not self.x:
            raise ValueError(f"PartialDataset needs x as a dict of at least one group name -> tensor, got {type(self.x).__name__}")
        if not isinstance(self.x_mask, Mapping):
            raise ValueError(f"x_mask must be a dict group name -> bool tensor, got {type(self.x_mask).__name__}")
        for k, v in self.x.items():
            if not isinstance(v, Tensor):
                raise ValueError(f"x[{k!r}] is a {type(v).__name__}, not a torch tensor; build datasets from arrays with PartialDataset.from_arrays")
            if v.dim() < 1 or not v.is_floating_point():
                raise ValueError(f"x[{k!r}] must be a float tensor [N, ...], got {v.dtype} of shape {tuple(v.shape)} (PartialDataset.from_arrays converts arrays)")
        sizes = {k: v.shape[0] for k, v in self.x.items()}
        n = next(iter(sizes.values()))
        if any(s != n for s in sizes.values()):
            raise ValueError(f"every group of x needs the same number of rows, got {sizes}")
        if not isinstance(self.x_mask, dict):
            self.x_mask = dict(self.x_mask)
        for k, v in self.x.items():
            if k not in self.x_mask:
                self.x_mask[k] = _full_mask(1, v.dim(), v.device)
            m = self.x_mask[k]
            if not isinstance(m, Tensor):
                raise ValueError(f"x_mask[{k!r}] is a {type(m).__name__}, not a torch bool tensor (True = observed)")
            if m.dtype != torch.bool:
                raise ValueError(f"x_mask[{k!r}] has dtype {m.dtype}; masks are bool, True = observed")
            if m.dim() != v.dim() or m.shape[0] not in (1, n) or any(
                ms not in (1, vs) for ms, vs in zip(m.shape[1:], v.shape[1:])
            ):
                raise ValueError(
                    f"x_mask[{k!r}] has shape {tuple(m.shape)}, not broadcastable to x[{k!r}] {tuple(v.shape)} "
                    f"with a leading dimension of {n} or 1"
                )
        extra = set(self.x_mask) - set(self.x)
        if extra:
            raise ValueError(f"x_mask has groups {sorted(extra)} that x does not have")
        if self.y is not None:
            if not isinstance(self.y, Tensor):
                raise ValueError(f"y is a {type(self.y).__name__}, not a torch tensor; build datasets from arrays with PartialDataset.from_arrays")
            if self.y.dim() not in (1, 2):
                raise ValueError(f"y must be int64 [N] class labels or float [N, D] continuous labels, got shape {tuple(self.y.shape)}")
            if self.y.shape[0] != n:
                raise ValueError(f"y has {self.y.shape[0]} rows but x has {n}")
            if self.y_mask is None:
                self.y_mask = torch.ones(n, dtype=torch.bool, device=self.y.device)
            if not isinstance(self.y_mask, Tensor):
                raise ValueError(f"y_mask is a {type(self.y_mask).__name__}, not a torch bool tensor [{n}] (True = labelled)")
            if self.y_mask.shape != (n,) or self.y_mask.dtype != torch.bool:
                raise ValueError(f"y_mask must be bool [{n}], got {self.y_mask.dtype} {tuple(self.y_mask.shape)}")
        elif self.y_mask is not None:
            raise ValueError("y_mask given without y")
        if self.num_classes is not None:
            _check_num_classes(self.num_classes)
        if self.dequantize and (self.binarize or self.dequantize < 2):
            raise ValueError(f"dequantize must be a number of grey levels >= 2 and cannot be combined with binarize; got {self.dequantize}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        x: ArrayLike | Mapping[str, ArrayLike],
        y: ArrayLike | None = None,
        group: str = "x",
        num_classes: int | None = None,
        binarize: bool = False,
        name: str = "arrays",
        x_mask: ArrayLike | Mapping[str, ArrayLike] | None = None,
    ) -> "PartialDataset":
        """Build a dataset from numpy or torch arrays; NaN entries become unobserved.

        Args:
            x: an array ``[N, ...]`` (stored as group ``group``) or a dict of such arrays, one per group.
                uint8 values k are read as k / 255 (8-bit images as they ship, in [0, 1]); other
                integer and bool arrays are converted to float32 as they are (no scaling). NaN entries
                get mask False and value 0. A float32 array without NaN is used without a copy (it
                shares memory with the caller's array).
            y: optional labels with N rows: class labels ``[N]`` (integers; -1 or NaN = unlabelled), or
                continuous labels ``[N, D]`` float (a row with NaN = unlabelled).
            group: the group name when ``x`` is a single array.
            num_classes: number of classes; inferred as ``max(y) + 1`` when not given.
            binarize: mark the values as Bernoulli probabilities for dynamic binarisation
                (they must then lie in [0, 1]).
            name: the dataset's name.
            x_mask: optional observation masks (an array for a single ``x``, else a dict by group; groups
                left out are fully observed): bool, or integers 0 / 1, True = observed, broadcastable to
                the group (same number of dimensions, each of size 1 or the group's). An entry is
                observed if its mask is True and its value is not NaN; unobserved values are zeroed.

        Raises:
            ValueError: on arrays of the wrong dimension or dtype (strings, objects, complex), empty
                arrays, row counts that differ, inf values, non-integer or out-of-range class labels,
                masks of the wrong shape or dtype.
        """
        return _from_arrays(cls, x, y, group=group, num_classes=num_classes, binarize=binarize, name=name, x_mask=x_mask)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return next(iter(self.x.values())).shape[0]

    @property
    def groups(self) -> list[str]:
        """The group names, in order."""
        return list(self.x)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one row of each group, e.g. ``{"x": (1, 28, 28)}``."""
        return {k: tuple(int(s) for s in v.shape[1:]) for k, v in self.x.items()}

    @property
    def device(self) -> torch.device:
        return next(iter(self.x.values())).device

    def observed_range(self, group: str = "x") -> tuple[float, float] | None:
        """``(min, max)`` over the observed entries of ``group`` (None when none is observed)."""
        return observed_range(self.x[group], self.x_mask[group])

    def _mask_rows(self, m: Tensor, index: Tensor, b: int) -> Tensor:
        if m.shape[0] == 1 and len(self) != 1:
            return m.expand(b, *m.shape[1:]).clone()
        return m[index]

    def batch(self, index: Tensor) -> Batch:
        """The rows ``index`` (LongTensor or bool mask) as a `Batch`; masks have B rows."""
        x = {k: v[index] for k, v in self.x.items()}
        b = next(iter(x.values())).shape[0]
        x_mask = {k: self._mask_rows(m, index, b) for k, m in self.x_mask.items()}
        observed = self.fully_observed_groups
        if self.y is None:
            return Batch(x=x, x_mask=x_mask, observed=observed)
        return Batch(x=x, x_mask=x_mask, y=self.y[index], y_mask=self.y_mask[index], observed=observed)

    @cached_property
    def fully_observed_groups(self) -> frozenset[str]:
        """The groups whose mask is one shared row of True (every value observed), read once."""
        return frozenset(k for k, m in self.x_mask.items() if m.shape[0] == 1 and bool(m.all()))

    # ------------------------------------------------------------------ derived datasets
    def subset(self, index: Tensor) -> "PartialDataset":
        """A new dataset holding the rows ``index`` (LongTensor or bool mask), same metadata."""
        index = torch.as_tensor(index)

        def rows(m: Tensor) -> Tensor:
            return m if m.shape[0] == 1 and len(self) != 1 else m[index]

        return replace(
            self,
            x={k: v[index] for k, v in self.x.items()},
            x_mask={k: rows(m) for k, m in self.x_mask.items()},
            y=None if self.y is None else self.y[index],
            y_mask=None if self.y_mask is None else self.y_mask[index],
        )

    def with_row_shape(self, row_shape: tuple[int, ...], group: str = "x") -> "PartialDataset":
        """A copy whose ``group`` rows have shape ``row_shape`` (same values in C order; e.g.
        ``[N, 784] -> [N, 1, 28, 28]``), its mask reshaped with them; views, no copy of the data."""
        v = self.x[group]
        row_shape, old = tuple(int(s) for s in row_shape), tuple(v.shape[1:])
        if row_shape == old:
            return self
        if math.prod(row_shape) != math.prod(old):
            raise ValueError(f"cannot reshape rows of x[{group!r}] {list(old)} to {list(row_shape)}: the number of values differs")
        mask = reshape_mask(self.x_mask[group], old, row_shape)
        return replace(self, x={**self.x, group: v.reshape(v.shape[0], *row_shape)}, x_mask={**self.x_mask, group: mask})

    def with_labels_hidden(self, keep_index: Tensor | None) -> "PartialDataset":
        """A copy whose labels are kept only at rows ``keep_index`` (others: y_mask False, y zeroed).

        Rows in ``keep_index`` that were unlabelled stay unlabelled. ``None`` or an empty index hides
        every label.
        """
        if self.y is None:
            raise ValueError(f"dataset {self.name!r} has no labels to hide")
        keep = torch.zeros(len(self), dtype=torch.bool, device=self.y_mask.device)
        if keep_index is not None:
            keep_index = torch.as_tensor(keep_index, device=keep.device)
            if keep_index.numel():
                if keep_index.dtype != torch.bool and (keep_index.min() < 0 or keep_index.max() >= len(self)):
                    raise ValueError(f"keep_index has entries outside [0, {len(self)})")
                keep[keep_index] = True
        y_mask = self.y_mask & keep
        shape = (-1,) + (1,) * (self.y.dim() - 1)
        y = torch.where(y_mask.view(shape), self.y, torch.zeros((), dtype=self.y.dtype, device=self.y.device))
        return replace(self, x=dict(self.x), x_mask=dict(self.x_mask), y=y, y_mask=y_mask)

    def binarized(self, seed: int) -> "PartialDataset":
        """A copy with every group replaced by one fixed Bernoulli draw (seeded), for evaluation.

        Values must lie in [0, 1]. The copy has ``binarize=False`` so streams do not re-sample it.
        Unobserved entries (zero-filled) stay 0.
        """
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        x = {}
        for k, v in self.x.items():
            if v.numel() and (v.min() < 0 or v.max() > 1):
                raise ValueError(
                    f"binarized() needs values in [0, 1] but x[{k!r}] of {self.name!r} spans "
                    f"[{v.min().item():g}, {v.max().item():g}]"
                )
            x[k] = torch.bernoulli(v, generator=g)
        return replace(self, x=x, x_mask=dict(self.x_mask), binarize=False)

    def dequantized(self, seed: int) -> "PartialDataset":
        """A copy with one fixed, seeded draw of the dequantisation noise, for evaluation.

        The copy has ``dequantize=0`` so streams do not add noise again. Unobserved entries stay 0.
        """
        if not self.dequantize:
            return self
        g = torch.Generator(device=self.device).manual_seed(int(seed))
        x = {}
        for k, v in self.x.items():
            noisy = add_dequantization_noise(v, self.dequantize, g)
            x[k] = torch.where(self.x_mask[k], noisy, torch.zeros((), dtype=v.dtype, device=v.device))
        return replace(self, x=x, x_mask=dict(self.x_mask), dequantize=0)

    def to(self, device: torch.device | str) -> "PartialDataset":
        """The same dataset with every tensor on ``device``."""
        return replace(
            self,
            x={k: v.to(device) for k, v in self.x.items()},
            x_mask={k: m.to(device) for k, m in self.x_mask.items()},
            y=None if self.y is None else self.y.to(device),
            y_mask=None if self.y_mask is None else self.y_mask.to(device),
        )

    def __repr__(self) -> str:
        groups = ", ".join(f"{k}: {tuple(v.shape[1:])}" for k, v in self.x.items())
        labels = "no labels" if self.y is None else f"{self.num_labelled} labelled"
        return f"PartialDataset({self.name!r}, n={len(self)}, {{{groups}}}, {labels}, binarize={self.binarize})"


EVAL_BINARIZATION_SEED = 1234


def evaluation_view(dataset: PartialDataset) -> PartialDataset:
    """The data set as evaluated: one fixed, seeded binarisation (or dequantisation) when it is
    binarised (dequantised) in training, so that numbers are comparable between runs; the data
    set itself otherwise (and for a view that is already one)."""
    if dataset.binarize:
        return dataset.binarized(EVAL_BINARIZATION_SEED)
    return dataset.dequantized(EVAL_BINARIZATION_SEED)
