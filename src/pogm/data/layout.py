"""Image layouts of user data: which row shape the group ``x`` of a user's data takes.

The sources that load a user's own data (``.npz`` files, in-memory arrays, memmap stores) give
``x`` as images ``[N, C, H, W]`` whenever it holds images, so that every figure and every
convolutional model works whatever layout the arrays were saved in. `image_layout` decides the row
shape from the stored one and the data option ``image_shape``:

* ``image_shape`` unset (None): recognise images automatically. Rows ``[H, W]`` become one-channel
  images ``[1, H, W]``; flat rows ``[D]`` become ``[1, s, s]`` when D = s * s with s >= 8 and every
  observed value lies in [0, 1] (pixel intensities; other flat data, such as features on any
  scale, stay vectors); rows ``[C, H, W]`` (and any other shape) stay as they are.
* ``image_shape=[C, H, W]`` (or ``[H, W]`` for ``[1, H, W]``): rows are reshaped to it in C
  (row-major) order; C * H * W must equal the number of values per row. On the command line:
  ``--set data.image_shape=[1,28,28]``.
* ``image_shape=false`` (or ``[]``): not images; rows are flattened to vectors ``[D]``.

Masks are reshaped with their rows (`reshape_mask`), broadcast masks included.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

# Flat rows of s * s values are recognised as images from this side length up (8x8 digits).
MIN_AUTO_SIDE = 8

_FORMS = (
    "image_shape must be [C, H, W] or [H, W] (e.g. [1, 28, 28]), false or [] for flat vectors, "
    "or unset to recognise images automatically"
)


def parse_image_shape(option: Any) -> tuple[int, ...] | None:
    """The option ``image_shape`` as a row shape: None = recognise automatically, ``()`` = flat
    vectors, else ``(C, H, W)`` (``[H, W]`` becomes ``(1, H, W)``; ``[D]`` means flat vectors of D).

    Accepts None, False, a list or tuple of whole numbers >= 1, or a string such as ``"1,28,28"``.

    Raises:
        ValueError: any other value (the message lists the accepted forms).
    """
    if option is None:
        return None
    if option is False or (isinstance(option, (str, list, tuple)) and len(option) == 0):
        return ()
    values = option.replace("x", ",").split(",") if isinstance(option, str) else option
    if isinstance(option, bool) or not isinstance(values, (list, tuple)) or not 1 <= len(values) <= 3:
        raise ValueError(f"{_FORMS}; got {option!r}")
    shape = []
    for value in values:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{_FORMS}, each a whole number >= 1; got {option!r}")
        shape.append(int(value))
    return (1, *shape) if len(shape) == 2 else tuple(shape)


def image_layout(row_shape: Sequence[int], image_shape: Any, in_unit_interval: Callable[[], bool], what: str) -> tuple[int, ...]:
    """The row shape that ``x`` with stored rows ``row_shape`` takes under the option
    ``image_shape`` (the rules of this module's docstring).

    ``in_unit_interval`` tells whether every observed value lies in [0, 1]; it is called only for
    flat rows whose length is a square, the one case that needs it. ``what`` (a path, or
    ``"arrays"``) starts the error messages.

    Raises:
        ValueError: an ``image_shape`` that is not a shape, or whose size differs from the rows'.
    """
    row_shape = tuple(int(s) for s in row_shape)
    size = math.prod(row_shape)
    forced = parse_image_shape(image_shape)
    if forced is None:
        return _recognised(row_shape, in_unit_interval)
    if not forced or len(forced) == 1:
        forced = (size,)
    if math.prod(forced) != size:
        raise ValueError(
            f"{what}: image_shape={list(forced)} holds {math.prod(forced)} values per row but the rows of x have shape "
            f"{list(row_shape)} ({size} values); give a shape whose product is {size}, or image_shape=false for flat vectors"
        )
    return forced


def _recognised(row_shape: tuple[int, ...], in_unit_interval: Callable[[], bool]) -> tuple[int, ...]:
    """The automatic rule: ``[H, W] -> [1, H, W]``, ``[s * s] -> [1, s, s]`` for pixel values."""
    if len(row_shape) == 2:
        return (1, *row_shape)
    if len(row_shape) == 1:
        side = math.isqrt(row_shape[0])
        if side >= MIN_AUTO_SIDE and side * side == row_shape[0] and in_unit_interval():
            return (1, side, side)
    return row_shape


def reshape_mask(mask: Tensor, row_shape: Sequence[int], new_row_shape: Sequence[int]) -> Tensor:
    """A group's mask (leading dimension N or 1, each other dimension the group's or 1) for rows
    reshaped from ``row_shape`` to ``new_row_shape``: a mask with one flag per row keeps its size
    (``[N|1, 1, ..., 1]``); any other is expanded to whole rows and reshaped with them."""
    lead = mask.shape[0]
    if all(s == 1 for s in mask.shape[1:]):
        return mask.reshape(lead, *([1] * len(new_row_shape)))
    return mask.expand(lead, *row_shape).reshape(lead, *new_row_shape)


def unit_interval(bounds: tuple[float, float] | None) -> bool:
    """Whether observed values with ``bounds`` (None: nothing observed) lie in [0, 1]."""
    return bounds is None or (bounds[0] >= 0.0 and bounds[1] <= 1.0)


def observed_range(x: Tensor, mask: Tensor, chunk_rows: int = 4096) -> tuple[float, float] | None:
    """``(min, max)`` of the entries of ``x`` ``[N, ...]`` that ``mask`` (broadcastable, True =
    observed) marks observed; None when none is. Rows are visited ``chunk_rows`` at a time, so
    partly observed data costs no full-size copy."""
    if x.numel() == 0:
        return None
    if bool(mask.all()):
        return float(x.min()), float(x.max())
    low, high = math.inf, -math.inf
    for start in range(0, x.shape[0], chunk_rows):
        rows = x[start : start + chunk_rows]
        flags = mask if mask.shape[0] == 1 else mask[start : start + chunk_rows]
        seen = rows[flags.expand(rows.shape)]
        if seen.numel():
            low, high = min(low, float(seen.min())), max(high, float(seen.max()))
    return None if low > high else (low, high)


__all__ = ["MIN_AUTO_SIDE", "image_layout", "observed_range", "parse_image_shape", "reshape_mask", "unit_interval"]
