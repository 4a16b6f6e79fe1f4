"""Runs: build a model and its data from a config, train into a run directory, load it back.

This is the Python API behind ``pogm train`` / ``pogm eval``::

    from pogm import train, load_run
    run_dir = train("m2", data="mnist", labels=10, epochs=50, out="runs/m2")
    run = load_run(run_dir)
    run.model.classify(run.data.test.x["x"][:5]).argmax(-1)

``config.yaml`` records the model name and its full config, the data source and its options,
the labels per class and the seed (the labelled indices themselves are saved in
``labelled_index.json``), and the training config, so that ``--resume`` and ``pogm eval``
rebuild exactly the same run.

Under torchrun (``WORLD_SIZE`` > 1) `train` trains data-parallel in every process: each process
builds the same data, model and stream, trains on its shard of every batch, and only rank 0 writes
the run directory (see `pogm.train.distributed`). ``config.yaml`` then records ``world_size``,
and ``--resume`` needs the same number of processes.
"""

from __future__ import annotations

import dataclasses
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

import pogm
from pogm.data.sources import DataSplits, load_source, source_options
from pogm.data.splits import balanced_label_split, load_split, save_split
from pogm.data.streams import SemiSupervisedStream
from pogm.models import get_model
from pogm.models.base import config_from_dict, config_to_dict
from pogm.recipes import load_recipe
from pogm.train import checkpoint
from pogm.train.distributed import (
    SINGLE,
    Distributed,
    WorldSizeMismatch,
    process_group,
    rank_seed,
)
from pogm.train.trainer import TrainConfig, Trainer


@dataclass
class Run:
    """A trained run loaded back: its model (best validation weights), data and config."""

    run_dir: Path
    config: dict[str, Any]
    model: torch.nn.Module
    data: DataSplits
    labelled_index: torch.Tensor | None
    unlabelled_index: torch.Tensor | None = None


def parse_overrides(pairs: list[str] | None) -> dict[str, dict[str, Any]]:
    """``["z_dim=32", "train.lr=1e-3", "data.binarize=false"]`` -> ``{"model": {...}, "train": {...}, "data": {...}}``.

    Keys without a section prefix go to the model config; values are parsed as YAML scalars.
    """
    sections: dict[str, dict[str, Any]] = {"model": {}, "train": {}, "data": {}}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        section, _, name = key.rpartition(".")
        section = section or "model"
        if section not in sections:
            raise ValueError(f"--set {key}: the section must be one of model., train., data. (or none for model)")
        sections[section][name] = parse_value(value)
    return sections


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


def _merge(*dicts: dict[str, Any] | None) -> dict[str, Any]:
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


def build_model(name: str, data: DataSplits, num_labelled: int, overrides: dict[str, Any] | None = None, num_unlabelled: int | None = None) -> torch.nn.Module:
    """The model ``name`` sized for ``data``; ``overrides`` win over values taken from the data.

    A source may suggest model settings in ``info["model_defaults"]`` (the two moons: a Gaussian
    likelihood with the data's noise level, a one-dimensional z, small networks); each is used by
    models that have that option unless ``overrides`` set it.
    """
    entry = get_model(name)
    train = data.train
    x_dim = sum(math.prod(shape) for shape in train.shapes.values())  # one group "x", or all groups of multi-group data
    pool = len(train) if num_unlabelled is None else num_unlabelled
    fields = entry.cls.data_fields(x_dim, train.num_classes, pool, num_labelled, train)
    options = {f.name for f in dataclasses.fields(entry.cls.Config)}
    fields.update({k: v for k, v in (data.info.get("model_defaults") or {}).items() if k in options})
    config = config_from_dict(entry.cls.Config, _merge(fields, overrides))
    return entry.cls(config)


def train(
    model: str | None = None,
    data: str | None = None,
    labels: int | None = None,
    epochs: int | None = None,
    out: str | Path | None = None,
    unlabelled: int | None = None,
    seed: int = 0,
    config_file: str | Path | None = None,
    overrides: list[str] | dict[str, dict[str, Any]] | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Train ``model`` on the source ``data`` with ``labels`` labelled examples per class.

    ``config_file`` is a recipe: a packaged name (``pogm recipes``) or a YAML path; the model
    and data it names are used when ``model`` / ``data`` are not given (data defaults to digits).

    ``unlabelled`` restricts the unlabelled pool to that many training examples outside the
    labelled ones (the m of H-VAE(n, m)); by default every training example is in it.

    Returns the run directory (``runs/<model>-<data>-<time>`` unless ``out`` is given).
    With ``resume=True`` the run in ``out`` continues exactly from its last checkpoint, and
    ``epochs`` may raise its epoch limit.

    Raises `TrainingInterrupted` after saving a checkpoint when SIGINT (Ctrl-C) or SIGTERM
    arrives, and FloatingPointError when a loss or gradient is not finite (``train.on_nonfinite``).

    Launched by torchrun with several processes, every process calls this with the same
    arguments (see `pogm.train.distributed`); the process group is joined here unless the caller
    already did.
    """
    if resume:
        if out is None:
            raise ValueError("--resume needs the run directory (--out DIR)")
        config = checkpoint.read_config(Path(out))
        with process_group(str(config["train"].get("device") or "cpu")) as dist:
            return _resume(Path(out), epochs, progress, dist)
    recipe = load_recipe(config_file)
    sets = overrides if isinstance(overrides, dict) else parse_overrides(overrides)
    device = str(_merge(recipe.get("train"), sets.get("train")).get("device") or "cpu")
    with process_group(device) as dist:
        return _train_new(model, data, labels, epochs, out, unlabelled, seed, recipe, sets, progress, dist)


def _train_new(model, data, labels, epochs, out, unlabelled, seed: int, recipe: dict[str, Any], sets: dict[str, dict[str, Any]], progress: bool, dist: Distributed) -> Path:
    """`train` of a new run, in this process of ``dist``."""
    model = model or recipe.get("model_name")
    if model is None:
        raise ValueError("name a model (`pogm models` lists them) or give a recipe that names one (`pogm recipes`)")
    data = data or recipe.get("source") or "digits"
    if labels is None:
        labels = recipe.get("labels")
    model_overrides = _merge(recipe.get("model"), sets.get("model"))

    # Everything that can be wrong is checked before the run directory is made.
    entry = get_model(model)
    accepted = source_options(data)
    data_kwargs = _merge({k: v for k, v in entry.cls.data_defaults.items() if k in accepted}, recipe.get("data"), sets.get("data"))

    run_dir = Path(out) if out is not None else Path("runs") / f"{model}-{Path(data).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "config.yaml").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    dist.barrier()  # every process has looked before rank 0 writes

    torch.manual_seed(seed)
    splits = load_source(data, **data_kwargs)
    # A source's suggested training settings (small sets need more epochs), then the recipe, then --set.
    train_values = _merge(splits.info.get("train_defaults"), recipe.get("train"), sets.get("train"))
    if epochs is not None:
        train_values["epochs"] = epochs
    train_values.setdefault("progress", progress)
    train_config = config_from_dict(TrainConfig, train_values)
    _check_device(train_config)
    labelled_index = choose_labels(splits, labels, seed, entry.cls.uses_labels)
    unlabelled_index = choose_unlabelled(splits, unlabelled, labelled_index, seed) if entry.cls.uses_unlabelled else None
    if unlabelled is not None and not entry.cls.uses_unlabelled:
        raise ValueError(f"{model} learns from labelled examples only; drop --unlabelled")
    num_unlabelled = None if unlabelled_index is None else len(unlabelled_index)
    net = build_model(model, splits, 0 if labelled_index is None else len(labelled_index), model_overrides, num_unlabelled)
    config = {
        "pogm_version": pogm.__version__,
        "model": model,
        "model_config": config_to_dict(net.config),
        "data": {"name": str(data), "options": data_kwargs, "labels_per_class": labels, "unlabelled": unlabelled},
        "seed": seed,
        "train": config_to_dict(train_config),
    }
    if dist.active:
        config["world_size"] = dist.world_size
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        if labelled_index is not None:
            save_split(run_dir / "labelled_index.json", labelled_index)
        if unlabelled_index is not None:
            save_split(run_dir / "unlabelled_index.json", unlabelled_index)
        checkpoint.write_config(run_dir, config)
        checkpoint.write_manifest(run_dir, [])  # no checkpoint yet: `--resume` starts again from step 0
    trainer = _make_trainer(net, splits, labelled_index, train_config, seed, run_dir, unlabelled_index, dist)
    dist.barrier()  # the run directory exists before any process trains
    trainer.fit()
    return run_dir


def _check_device(train_config: TrainConfig) -> None:
    """A clear error, before anything is written, for a GPU run where PyTorch sees no GPU."""
    device = torch.device(train_config.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={train_config.device}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); use --device cpu")
    if device.type == "cuda" and train_config.precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ValueError("train.precision=bf16: this GPU does not support bfloat16; use fp32")


def _make_trainer(net, splits: DataSplits, labelled_index, train_config: TrainConfig, seed: int, run_dir: Path, unlabelled_index=None, dist: Distributed = SINGLE) -> Trainer:
    """The Trainer of process ``dist`` (its shard of the stream, its own device and noise)."""
    if train_config.threads:
        torch.set_num_threads(train_config.threads)
    if dist.active:
        train_config = dataclasses.replace(train_config, device=dist.device)  # cuda -> this process's GPU
        if dist.rank > 0:  # independent model noise (z samples, fakes) in every process; rank 0 keeps the run's
            torch.manual_seed(rank_seed(seed, dist.rank))
    net.to(train_config.device)
    stream = SemiSupervisedStream(
        splits.train,
        labelled_index,
        unlabelled_index,
        # A model that learns from labelled examples only (the F-VAE) gets no unlabelled minibatch.
        batch_size=train_config.batch_size if type(net).uses_unlabelled else 0,
        labelled_batch_size=train_config.labelled_batch_size,
        seed=seed,
        device=train_config.device,
        rank=dist.rank,
        world_size=dist.world_size,
        shuffle_window=train_config.shuffle_window,
    )
    return Trainer(net, stream, train_config, run_dir, valid=splits.valid, test=splits.test, task_loss=splits.info.get("task_loss"), dist=dist)


def _rebuild(run_dir: Path) -> tuple[dict[str, Any], torch.nn.Module, DataSplits, torch.Tensor | None, torch.Tensor | None]:
    config = checkpoint.read_config(run_dir)
    entry = get_model(config["model"])
    # The data, then the model: the order in which `train` draws from the seeded RNG.
    splits = load_source(config["data"]["name"], **(config["data"].get("options") or {}))
    net = _build_from_config(run_dir, config, entry)
    index_file = run_dir / "labelled_index.json"
    labelled_index = load_split(index_file, size=len(splits.train)) if index_file.is_file() else None
    pool_file = run_dir / "unlabelled_index.json"
    unlabelled_index = load_split(pool_file, size=len(splits.train)) if pool_file.is_file() else None
    return config, net, splits, labelled_index, unlabelled_index


def _build_from_config(run_dir: Path, config: dict[str, Any], entry: Any) -> torch.nn.Module:
    """The run's model from its config.yaml; settings of the wrong type are a CheckpointError
    naming the file, not a traceback from deep inside torch."""
    model_config = config_from_dict(entry.cls.Config, config["model_config"])  # unknown keys: its own clear error
    try:
        return entry.cls(model_config)
    except (TypeError, AttributeError, RuntimeError, ValueError, IndexError, OverflowError) as error:
        reason = " ".join(str(error).split())
        raise checkpoint.CheckpointError(
            f"{run_dir / 'config.yaml'}: model_config does not build a {config['model']} model ({type(error).__name__}: {reason}); "
            "fix the setting or train a new run"
        ) from error


def _resume(run_dir: Path, epochs: int | None, progress: bool, dist: Distributed = SINGLE) -> Path:
    """Continue the run in ``run_dir`` from its newest usable checkpoint; a run stopped before its
    first checkpoint starts again from step 0, seeded as `train` seeded it. Refuses (`WorldSizeMismatch`)
    a number of processes other than the run's."""
    trained = int(checkpoint.read_config(run_dir).get("world_size", 1))
    if trained != dist.world_size:
        raise WorldSizeMismatch(run_dir, trained, dist.world_size)
    torch.manual_seed(checkpoint.read_config(run_dir)["seed"])
    config, net, splits, labelled_index, unlabelled_index = _rebuild(run_dir)
    train_values = dict(config["train"])
    if epochs is not None:
        # A new epoch limit replaces the old stopping rule, whatever it was.
        train_values.update(epochs=epochs, max_steps=None, cpu_budget_seconds=None)
        if dist.is_main:
            checkpoint.write_config(run_dir, {**{k: v for k, v in config.items() if k != "format"}, "train": {**train_values, "progress": config["train"].get("progress", True)}})
    train_values["progress"] = progress
    train_config = config_from_dict(TrainConfig, train_values)
    _check_device(train_config)
    trainer = _make_trainer(net, splits, labelled_index, train_config, config["seed"], run_dir, unlabelled_index, dist)
    trainer.resume()
    trainer.fit()
    return run_dir


def load_run(run_dir: str | Path, weights: str = "best", device: str = "cpu") -> Run:
    """Load a run directory; ``weights`` is ``"best"`` (best validation score) or ``"latest"``."""
    run_dir = Path(run_dir)
    config, net, splits, labelled_index, unlabelled_index = _rebuild(run_dir)
    path = run_dir / ("best.safetensors" if weights == "best" else "model.safetensors")
    if weights == "best" and not path.is_file():
        path = run_dir / "model.safetensors"
    checkpoint.load_weights(path, net)
    net.to(device).eval()
    return Run(run_dir=run_dir, config=config, model=net, data=splits, labelled_index=labelled_index, unlabelled_index=unlabelled_index)
