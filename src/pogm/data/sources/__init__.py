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
  left_arm, right_arm, left_leg, right_leg (ASF/AMC parsing in `pogm.data.mocap`).

Files are found by `pogm.data.sources.files` (``$POGM_DATA``, ``~/.cache/pogm``, else a checked
download). Each source lives in its own module and is imported only when first loaded. New sources
register with `register_source(name, "module:function")` (or by decorating a loader with
`@register_source("name")`).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pogm.data.dataset import PartialDataset


@dataclass
class DataSplits:
    """The train / valid / test datasets of one source, plus JSON-friendly ``info`` about it.

    ``valid`` may be None for sets too small to hold one out. ``label_split(n_per_class, seed)``,
    when a source sets it, chooses the labelled training examples the way its paper does (the
    half-moons: spread along each moon); otherwise they are drawn class-balanced at random.
    """

    train: PartialDataset
    valid: PartialDataset | None
    test: PartialDataset
    info: dict[str, Any] = field(default_factory=dict)
    label_split: Callable[[int, int], Any] | None = None


_SOURCES: dict[str, str | Callable[..., DataSplits]] = {
    "bars": "pogm.data.sources.bars:load_bars",
    "depth": "pogm.data.sources.depth:load_depth",
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
        ValueError: for an unknown name (the message lists the known ones).
    """
    if str(name).endswith(".npz"):
        return _resolve("npz")(path=name, **kwargs)
    if name not in _SOURCES:
        raise ValueError(
            f"unknown data source {name!r}; known sources: {', '.join(list_sources())} "
            f"(or give the path of a .npz file with keys x and optionally y)"
        )
    return _resolve(name)(**kwargs)


def source_options(name: str) -> set[str]:
    """The keyword options that the source ``name`` (or a ``.npz`` path) accepts."""
    import inspect

    loader = _resolve("npz") if str(name).endswith(".npz") else _resolve(name) if name in _SOURCES else None
    return set() if loader is None else set(inspect.signature(loader).parameters)


__all__ = ["DataSplits", "list_sources", "load_source", "register_source", "source_options"]
