"""Data sources: a small registry mapping a name to a loader that returns `DataSplits`.

    from pogm.data import load_source
    splits = load_source("mnist")               # looks in $POGM_DATA, ~/.cache/pogm, then downloads
    splits = load_source("digits", binarize=False)
    splits = load_source("my_data.npz")         # any user file with keys x (and optionally y)

Sources with continuous labels h (images ``[N, 1, H, W]``, y float32 ``[N, D]``, for hybrid models
of p(x, h)); their ``info`` gives ``y_names`` and a ``task_loss`` spec for scoring predictions of h:

* ``"yaleb"``: cropped Extended Yale B faces at 64x64, h = light direction (azimuth, elevation).
* ``"mnist-keypoints"``: MNIST digits warped by random affine maps, h = where 5 reference points
  of the 32x32 canvas land (point-to-point task loss normalised like an inter-ocular distance).
* ``"depth"``: synthetic depth maps of an articulated hand with sensor-like holes (out of range,
  silhouette edges, speckle), h = finger curls, yaw and pitch.

Multi-group sources (flat float32 groups ``[N, D_g]`` with per-row masks ``[N, 1]``, True = the
group is observed, or ``[1, 1]`` when always observed; ``info`` gives ``groups`` in order,
``group_dims``, the suggested ``likelihood`` and a drawing ``layout``), for factVAE-style models:

* ``"bars"``: synthetic horizontal-bar images cut into four quadrant groups q0..q3, training
  quadrants missing at random.
* ``"mnist-quadrants"``: MNIST digits cut into four 14x14 quadrant groups q0..q3.
* ``"mocap"``: CMU motion capture (subject 07, walking), joint angles in five groups: core,
  left_arm, right_arm, left_leg, right_leg (ASF/AMC parsing in `pogm.data.asf_amc`).

A data set larger than memory: ``"memmap"`` reads memory-mapped ``.npy`` stores (``x.npy``, ``y.npy``)
from ``path``; training reads only each minibatch's rows (`pogm.data.sources.memmap`).

A user's own data (``.npz`` files, arrays in memory through `pogm.data.sources.npz.load_arrays`,
memmap stores): uint8 values k are read as k / 255, and images come as ``[N, C, H, W]`` whatever
layout they were saved in (``[N, H, W]``, flat ``[N, s * s]`` pixels); the option ``image_shape``
forces a shape (``--set data.image_shape=[1,28,28]``) or, set to false, keeps flat vectors
(`pogm.data.layout`). ``info["image_shape"]`` records the result.

Files are found by `pogm.data.sources.files` (``$POGM_DATA``, ``~/.cache/pogm``, else a checked
download). Each source lives in its own module and is imported only when first loaded. New sources
register with `register_source(name, "module:function")` (or by decorating a loader with
`@register_source("name")`).
"""

from __future__ import annotations

import importlib
import inspect
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pogm.data.dataset import PartialDataset

if TYPE_CHECKING:
    from pogm.data.memmap import MemmapDataset


@dataclass
class DataSplits:
    """The train / valid / test datasets of one source, plus JSON-friendly ``info`` about it.

    ``valid`` may be None for sets too small to hold one out. ``label_split(n_per_class, seed)``,
    when a source sets it, chooses the labelled training examples the way its paper does (the
    half-moons: spread along each moon); otherwise they are drawn class-balanced at random.
    """

    train: PartialDataset | MemmapDataset  # on disk for the memmap source
    valid: PartialDataset | None
    test: PartialDataset
    info: dict[str, Any] = field(default_factory=dict)
    label_split: Callable[[int, int], Any] | None = None


_SOURCES: dict[str, str | Callable[..., DataSplits]] = {
    "bars": "pogm.data.sources.bars:load_bars",
    "depth": "pogm.data.sources.depth:load_depth",
    "memmap": "pogm.data.sources.memmap:load_memmap",
    "digits": "pogm.data.sources.digits:load_digits",
    "mnist": "pogm.data.sources.mnist:load_mnist",
    "mnist-keypoints": "pogm.data.sources.mnist_keypoints:load_mnist_keypoints",
    "mnist-quadrants": "pogm.data.sources.mnist_quadrants:load_mnist_quadrants",
    "mocap": "pogm.data.sources.mocap:load_mocap",
    "moons": "pogm.data.sources.moons:load_moons",
    "npz": "pogm.data.sources.npz:load_npz",
    "yaleb": "pogm.data.sources.yaleb:load_yaleb",
}


def register_source(name: str, loader: str | Callable[..., DataSplits] | None = None):
    """Register ``loader`` (a callable or a lazy ``"module:function"`` string) under ``name``.

    Without ``loader`` this returns a decorator.
    """
    if loader is None:

        def decorate(fn: Callable[..., DataSplits]) -> Callable[..., DataSplits]:
            _SOURCES[name] = fn
            return fn

        return decorate
    _SOURCES[name] = loader
    return loader


def list_sources() -> list[str]:
    """The registered source names, sorted."""
    return sorted(_SOURCES)


def _resolve(name: str) -> Callable[..., DataSplits]:
    loader = _SOURCES[name]
    if isinstance(loader, str):
        module, _, attr = loader.partition(":")
        loader = getattr(importlib.import_module(module), attr)
        _SOURCES[name] = loader
    return loader


def load_source(name: str, **kwargs: Any) -> DataSplits:
    """Load the source ``name`` with loader options ``kwargs``.

    A name ending in ``.npz`` is read as a user file (same as ``load_source("npz", path=name)``).

    Raises:
        ValueError: for an unknown name (the message lists the known ones) or an option the source
            does not take (the message lists those it takes).
    """
    if not isinstance(name, (str, os.PathLike)):
        raise ValueError(f"a data source is a name or a .npz path, got {type(name).__name__} {name!r}")
    if str(name).endswith(".npz"):
        loader, kwargs = _resolve("npz"), {"path": name, **kwargs}
        what = f"the .npz source {name}"
    elif name not in _SOURCES:
        raise ValueError(
            f"unknown data source {name!r}; known sources: {', '.join(list_sources())} "
            f"(or give the path of a .npz file with keys x and optionally y)"
        )
    else:
        loader, what = _resolve(name), f"data source {name!r}"
    _check_options(loader, kwargs, what)
    return loader(**kwargs)


def _check_options(loader: Callable[..., DataSplits], kwargs: dict[str, Any], what: str) -> None:
    """A `ValueError` listing the accepted options if ``kwargs`` has one ``loader`` does not take."""
    try:
        params = inspect.signature(loader).parameters
    except (TypeError, ValueError):  # a builtin or C callable: let the call itself complain
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    accepted = [n for n, p in params.items() if p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]
    unknown = sorted(map(str, set(kwargs) - set(accepted)))
    if unknown:
        raise ValueError(f"{what} has no option(s) {', '.join(unknown)}; its options are {', '.join(accepted) or 'none'}")
    for option, value in kwargs.items():
        _check_type(option, value, params[option].default, what)


def _check_type(option: str, value: Any, default: Any, what: str) -> None:
    """A `ValueError` when ``value`` is not of the kind of the option's default (an int option given
    a string, a flag given a number): options come from YAML files and ``--set``, so a loader would
    otherwise fail deep inside with a TypeError."""
    is_bool = isinstance(value, bool) or type(value).__name__ == "bool_"
    if default is None or default is inspect.Parameter.empty:
        return
    if isinstance(default, bool):
        ok, kind = is_bool, "True or False"
    elif isinstance(default, int):
        ok, kind = isinstance(value, numbers.Integral) and not is_bool, "a whole number"
    elif isinstance(default, float):
        ok, kind = isinstance(value, numbers.Real) and not is_bool, "a number"
    elif isinstance(default, str):
        ok, kind = isinstance(value, (str, os.PathLike)), "a string"
    elif isinstance(default, (tuple, list)):
        ok, kind = isinstance(value, (str, list, tuple)), "a list (or a comma-separated string)"
    else:
        return
    if not ok:
        raise ValueError(f"{what}: option {option} must be {kind} (like its default {default!r}), got {type(value).__name__} {value!r}")


def source_options(name: str) -> set[str]:
    """The keyword options that the source ``name`` (or a ``.npz`` path) accepts."""
    if not isinstance(name, (str, os.PathLike)):
        return set()
    loader = _resolve("npz") if str(name).endswith(".npz") else _resolve(name) if name in _SOURCES else None
    return set() if loader is None else set(inspect.signature(loader).parameters)


__all__ = ["DataSplits", "list_sources", "load_source", "register_source", "source_options"]
