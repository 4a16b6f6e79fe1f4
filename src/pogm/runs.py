"""Runs: a run directory read back (`Run`, `load_run`), and how a run is built from its settings
(`build_model`, `load_data`, the label split, settings given as nested dicts or ``key=value``).

A run directory holds ``config.yaml`` (the model name and its full config, the data source and its
options, the labels per class, the seed and the training config), ``labelled_index.json`` (the
labelled rows), the checkpoints and ``metrics.jsonl`` (`pogm.checkpoint`), so that ``--resume``
and ``pogm eval`` rebuild exactly the same run. Training runs live in `pogm.train`; this module
only reads and builds, so that everything that reads a run stays below the trainer.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from pogm import checkpoint
from pogm.data.sources import DataSplits, load_source, source_options
from pogm.data.sources import npz as npz_source
from pogm.data.splits import balanced_label_split, load_split
from pogm.models import model_entry
from pogm.models.base import config_from_dict
from pogm.models.support import check_data_support


@dataclass
class Run:
    """A run directory loaded back: its model (best validation weights unless asked otherwise),
    data splits, config and metric records.

    ``pogm.train`` returns one; ``pogm.load_run`` reads one from disk. A `Run` is path-like
    (``os.fspath(run)`` is its directory), so it can stand wherever a run directory is expected.
    """

    run_dir: Path
    config: dict[str, Any]
    model: torch.nn.Module
    data: DataSplits
    labelled_index: torch.Tensor | None
    unlabelled_index: torch.Tensor | None = None
    weights: str = "best"  # the weights in ``model``: "best" (best.safetensors) or "latest" (model.safetensors)

    @property
    def dir(self) -> Path:
        """The run directory."""
        return self.run_dir

    @property
    def history(self) -> list[dict[str, Any]]:
        """Every evaluation record of ``metrics.jsonl``, oldest first."""
        return checkpoint.read_metrics(self.run_dir)

    @property
    def metrics(self) -> dict[str, Any]:
        """The last evaluation record (``{"step", "epoch", "valid_error", "test_error", ...}``); empty before the first."""
        records = self.history
        return records[-1] if records else {}

    def __fspath__(self) -> str:
        return str(self.run_dir)


SECTIONS = ("model", "train", "data")


def parse_overrides(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["z_dim=32", "train.lr=1e-3", "data.binarize=false"]`` -> ``{"model": {...}, "train": {...}, "data": {...}}``.

    Keys without a section prefix go to the model config; values are parsed as YAML scalars.
    """
    sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for pair in pairs or []:
        if not isinstance(pair, str) or "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        _put(sections, key, parse_value(value), f"--set {key}")
    return sections


def config_sections(config: Mapping[str, Any] | list[str] | str | None) -> dict[str, dict[str, Any]]:
    """Settings in any of the forms the Python API takes, as ``{"model": {...}, "train": {...}, "data": {...}}``:

    * nested sections: ``{"model": {"z_dim": 32}, "train": {"lr": 1e-3}}``;
    * dotted keys: ``{"z_dim": 32, "train.lr": 1e-3}`` (no prefix = the model's config);
    * ``--set`` strings: ``["z_dim=32", "train.lr=1e-3"]`` or one such string.

    Values in mappings are used as they are; strings after ``=`` are parsed as YAML scalars.
    """
    if config is None:
        return {name: {} for name in SECTIONS}
    if isinstance(config, str):
        return parse_overrides([config])
    if isinstance(config, Mapping):
        sections: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
        for key, value in config.items():
            if key in SECTIONS and isinstance(value, Mapping):
                for name, item in value.items():
                    _put(sections, f"{key}.{name}", item, f"config[{key!r}][{name!r}]")
            elif key in SECTIONS:
                raise ValueError(f"config[{key!r}] must be a mapping of settings, e.g. {{{key!r}: {{...}}}}; got {value!r}")
            else:
                _put(sections, str(key), value, f"config[{key!r}]")
        return sections
    if isinstance(config, (list, tuple)):
        return parse_overrides(list(config))
    raise ValueError(f"config must be a mapping ({{'train': {{'lr': 1e-3}}}}) or a list of 'key=value' strings, got {type(config).__name__}")


def _put(sections: dict[str, dict[str, Any]], key: str, value: Any, where: str) -> None:
    """Store ``value`` under the dotted ``key`` (``train.lr``; no prefix = model)."""
    section, _, name = key.rpartition(".")
    section = section or "model"
    if section not in sections:
        raise ValueError(f"{where}: the section must be one of model., train., data. (or none for model)")
    sections[section][name] = value


def merge_sections(*parts: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {name: merge_dicts(*(p.get(name) for p in parts)) for name in SECTIONS}


class _ValueLoader(yaml.SafeLoader):
    """YAML with YAML 1.2's numbers: ``3e-4`` is a float, while ``07_10`` (a mocap trial) or
    ``0755`` stay strings, where YAML 1.1 would read them as the integers 456 and 493."""


_ValueLoader.yaml_implicit_resolvers = {
    key: [(tag, regexp) for tag, regexp in resolvers if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_ValueLoader.add_implicit_resolver("tag:yaml.org,2002:int", re.compile(r"^[-+]?(0|[1-9][0-9]*)$"), list("-+0123456789"))
_ValueLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^[-+]?\.(inf|Inf|INF)$|^\.(nan|NaN|NAN)$"), list("-+0123456789.")
)


def parse_value(text: str) -> Any:
    """A YAML scalar or list, with YAML 1.2 numbers (see `_ValueLoader`)."""
    return yaml.load(text, Loader=_ValueLoader)  # a SafeLoader subclass: no objects are built


def merge_dicts(*dicts: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for d in dicts:
        out.update(d or {})
    return out


def choose_labels(data: DataSplits, labels_per_class: int | None, seed: int, uses_labels: bool) -> torch.Tensor | None:
    """Indices of the training examples whose labels the model may see (None = unsupervised).

    For class labels ``labels_per_class`` counts per class; for continuous labels (``y`` of
    ``[N, D]``, no classes) it is the total number n of labelled examples, drawn at random.
    """
    train = data.train
    if not uses_labels or train.y is None:
        return None
    if labels_per_class is None:
        return train.labelled_index()
    if isinstance(labels_per_class, bool) or not isinstance(labels_per_class, (int, np.integer)) or labels_per_class < 1:
        per = "examples per class" if train.num_classes is not None else "examples"
        raise ValueError(f"--labels {labels_per_class!r}: choose a whole number >= 1 of labelled {per} (or leave --labels out to use every label)")
    if train.num_classes is None:
        candidates = train.labelled_index()
        if not 0 < labels_per_class <= len(candidates):
            raise ValueError(f"--labels {labels_per_class}: the training set has {len(candidates)} labelled examples; choose 1..{len(candidates)}")
        g = torch.Generator().manual_seed(int(seed))
        return torch.sort(candidates[torch.randperm(len(candidates), generator=g)[:labels_per_class]]).values
    if data.label_split is not None:
        return data.label_split(labels_per_class, seed)
    return balanced_label_split(train.y, labels_per_class, train.num_classes, seed, y_mask=train.y_mask)


def choose_unlabelled(data: DataSplits, count: int | None, labelled_index: torch.Tensor | None, seed: int) -> torch.Tensor | None:
    """Rows of the unlabelled pool: ``count`` training rows outside ``labelled_index``, drawn with
    ``seed`` (the m of H-VAE(n, m)); None = every training row (labels hidden), the default."""
    if count is None:
        return None
    n = len(data.train)
    free = torch.ones(n, dtype=torch.bool)
    if labelled_index is not None:
        free[labelled_index] = False
    candidates = free.nonzero().squeeze(1)
    if not 0 < count <= len(candidates):
        raise ValueError(f"--unlabelled {count}: the training set has {len(candidates)} examples outside the labelled ones; choose 1..{len(candidates)}")
    g = torch.Generator().manual_seed(int(seed) + 1)
    return torch.sort(candidates[torch.randperm(len(candidates), generator=g)[:count]]).values


def size_model(name: str, data: DataSplits, num_labelled: int, overrides: dict[str, Any] | None = None, num_unlabelled: int | None = None) -> torch.nn.Module:
    """The model ``name`` sized for ``data``; ``overrides`` win over values taken from the data.

    A source may suggest model settings in ``info["model_defaults"]`` (the two moons: a Gaussian
    likelihood with the data's noise level, a one-dimensional z, small networks); each is used by
    models that have that option unless ``overrides`` set it.
    """
    entry = model_entry(name)
    train = data.train
    x_dim = sum(math.prod(shape) for shape in train.shapes.values())  # one group "x", or all groups of multi-group data
    pool = len(train) if num_unlabelled is None else num_unlabelled
    fields = entry.cls.data_fields(x_dim, train.num_classes, pool, num_labelled, train)
    options = {f.name for f in dataclasses.fields(entry.cls.Config)}
    fields.update({k: v for k, v in (data.info.get("model_defaults") or {}).items() if k in options})
    config = config_from_dict(entry.cls.Config, merge_dicts(fields, overrides))
    model = entry.cls(config)
    check_data_support(model, data)  # data outside the likelihood's support: a clear error before any step
    return model


def load_data(data: str | os.PathLike | Mapping[str, Any], options: dict[str, Any] | None = None) -> DataSplits:
    """The splits of ``data``: a source name (``digits``, ``mnist``, ...), a ``.npz`` path, or an
    in-memory mapping with the npz keys (``x``, ``y``, ``x_valid``, ``y_valid``, ``x_test``,
    ``y_test``) holding NumPy arrays or torch tensors; ``options`` are the source's options."""
    if isinstance(data, Mapping):
        return npz_source.load_arrays(data, **(options or {}))
    return load_source(str(data), **(options or {}))


def data_options(data: str | os.PathLike | Mapping[str, Any]) -> set[str]:
    """The options that ``data`` (a source, a path or arrays) accepts."""
    if isinstance(data, Mapping):
        return {n for n in inspect.signature(npz_source.load_arrays).parameters if n != "arrays"}
    return source_options(str(data))


def build_model(
    name: str,
    data: str | os.PathLike | Mapping[str, Any] | DataSplits,
    config: Mapping[str, Any] | list[str] | str | None = None,
    labels: int | None = None,
    unlabelled: int | None = None,
    seed: int = 0,
) -> torch.nn.Module:
    """The model ``name`` built as ``pogm.train`` builds it, untrained: sized for ``data`` (a source
    name, a ``.npz`` path, arrays as `load_data` takes them, or loaded `DataSplits`), with the
    settings taken from the data (dimensions, classes, the alpha of ``labels`` per class) and then
    ``config`` (nested ``{"model": {...}}``, dotted keys or ``key=value`` strings, as in `train`)."""
    entry = model_entry(name)
    sections = config_sections(config)
    if isinstance(data, DataSplits):
        splits = data
    else:
        splits = load_data(data, merge_dicts({k: v for k, v in entry.cls.data_defaults.items() if k in data_options(data)}, sections["data"]))
    labelled_index = choose_labels(splits, labels, seed, entry.cls.uses_labels)
    unlabelled_index = choose_unlabelled(splits, unlabelled, labelled_index, seed) if entry.cls.uses_unlabelled else None
    return size_model(name, splits, 0 if labelled_index is None else len(labelled_index), sections["model"], None if unlabelled_index is None else len(unlabelled_index))


ARRAYS_FILE = "data.npz"  # in-memory arrays given to `train`, saved in the run directory


def rebuild_run(run_dir: Path) -> tuple[dict[str, Any], torch.nn.Module, DataSplits, torch.Tensor | None, torch.Tensor | None]:
    config = checkpoint.read_config(run_dir)
    entry = model_entry(config["model"])
    # The data, then the model: the order in which `train` draws from the seeded RNG.
    recorded = config["data"]
    options = recorded.get("options") or {}
    if recorded.get("file"):  # in-memory arrays given to `train`, saved with the run
        splits = npz_source.load_arrays(npz_source.read_npz(run_dir / recorded["file"]), **options)
    else:
        splits = load_source(recorded["name"], **options)
    net = _build_from_config(run_dir, config, entry)
    index_file = run_dir / "labelled_index.json"
    labelled_index = load_split(index_file, size=len(splits.train)) if index_file.is_file() else None
    pool_file = run_dir / "unlabelled_index.json"
    unlabelled_index = load_split(pool_file, size=len(splits.train)) if pool_file.is_file() else None
    return config, net, splits, labelled_index, unlabelled_index


def _build_from_config(run_dir: Path, config: dict[str, Any], entry: Any) -> torch.nn.Module:
    """The run's model from its config.yaml; settings of the wrong type are a CheckpointError
    naming the file, not a traceback from deep inside torch."""
    try:
        return entry.cls(config_from_dict(entry.cls.Config, config["model_config"]))
    except (TypeError, AttributeError, RuntimeError, ValueError, IndexError, OverflowError) as error:
        reason = " ".join(str(error).split())
        raise checkpoint.CheckpointError(
            f"{run_dir / 'config.yaml'}: model_config does not build a {config['model']} model ({type(error).__name__}: {reason}); "
            "fix the setting or train a new run"
        ) from error


def load_run(run_dir: str | os.PathLike, weights: str = "best", device: str = "cpu") -> Run:
    """Load a run directory (or a `Run`'s); ``weights`` is ``"best"`` (best validation score) or
    ``"latest"``. A run without a selection score has no best weights: it loads the latest, and
    ``Run.weights`` says which were loaded."""
    if weights not in ("best", "latest"):
        raise ValueError(f"weights must be 'best' or 'latest', got {weights!r}")
    run_dir = Path(os.fspath(run_dir))
    config, net, splits, labelled_index, unlabelled_index = rebuild_run(run_dir)
    best = run_dir / "best.safetensors"
    loaded = "best" if weights == "best" and best.is_file() else "latest"
    checkpoint.load_weights(best if loaded == "best" else run_dir / "model.safetensors", net)
    net.to(device).eval()
    return Run(run_dir=run_dir, config=config, model=net, data=splits, labelled_index=labelled_index, unlabelled_index=unlabelled_index, weights=loaded)
