"""Training a run: `train` makes a new run directory and trains into it, or resumes one exactly.

This is the Python API behind ``pogm train``::

    import pogm
    run = pogm.train("m2", data="mnist", labels=10, epochs=50, out="runs/m2")
    run.model.classify(run.data.test.x["x"][:5]).argmax(-1)   # best validation weights
    run.metrics["test_error"]                                  # the last evaluation record
    run = pogm.load_run("runs/m2")                             # the same run, read back

    # in-memory arrays (NaN or -1 = unlabelled), settings as nested dicts
    run = pogm.train("m2", data={"x": x, "y": y, "x_test": xt, "y_test": yt}, labels=5,
                     out="runs/mine", config={"train": {"max_steps": 500}})

Under torchrun (``WORLD_SIZE`` > 1) `train` trains data-parallel in every process: each process
builds the same data, model and stream, trains on its shard of every batch, and only rank 0 writes
the run directory (see `pogm.train.distributed`). ``config.yaml`` then records ``world_size``,
and ``--resume`` needs the same number of processes.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pogm import checkpoint
from pogm.data.sources import DataSplits
from pogm.data.sources import npz as npz_source
from pogm.data.splits import save_split
from pogm.data.streams import SemiSupervisedStream
from pogm.models import model_entry
from pogm.models.base import config_from_dict, config_to_dict
from pogm.recipes import load_recipe
from pogm.runs import (
    ARRAYS_FILE,
    SECTIONS,
    Run,
    choose_labels,
    choose_unlabelled,
    config_sections,
    data_options,
    load_data,
    merge_dicts,
    merge_sections,
    rebuild_run,
    size_model,
)
from pogm.train.distributed import (
    SINGLE,
    Distributed,
    WorldSizeMismatch,
    process_group,
    rank_seed,
)
from pogm.train.trainer import TrainConfig, Trainer, TrainingInterrupted
from pogm.version import __version__


def train(
    model: str | None = None,
    data: str | os.PathLike | Mapping[str, Any] | None = None,
    labels: int | None = None,
    epochs: int | None = None,
    out: str | Path | None = None,
    unlabelled: int | None = None,
    seed: int | None = None,
    config: Mapping[str, Any] | list[str] | str | None = None,
    recipe: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | list[str] | None = None,
    label_seed: int | None = None,
) -> Run:
    """Train ``model`` on ``data`` with ``labels`` labelled examples per class; returns the `Run`
    (its ``.model`` holds the best validation weights; ``.data``, ``.dir``, ``.metrics``).

    Args:
        model: a registered model (``pogm models``); optional with a recipe that names one.
        data: a source name (``digits``, ``mnist``, ... ``pogm train --help`` lists them), a path to
            a ``.npz`` file, or in-memory arrays: a mapping with the npz keys ``x`` (required),
            ``y``, ``x_valid``, ``y_valid``, ``x_test``, ``y_test`` holding NumPy arrays or torch
            tensors (NaN or -1 = missing label; NaN in ``x`` = missing value). Arrays are saved in
            the run directory (``data.npz``) so that the run can be resumed and loaded. Default:
            the recipe's source, else digits.
        labels: labelled examples per class (continuous labels: the total number); None = every label.
        epochs: the epoch limit (on resume: a new limit that replaces the old stopping rule).
        out: the run directory (default ``runs/<model>-<data>-<time>``).
        unlabelled: restrict the unlabelled pool to this many training examples outside the
            labelled ones (the m of H-VAE(n, m)); None = every training example.
        seed: the seed of the label split, the data split and the model (default 0).
        label_seed: draw the labelled examples (and the unlabelled pool) with this seed instead of
            ``seed``, so that one label draw can be trained from several initialisations, or one
            initialisation on several label draws; None = ``seed``. Recorded in config.yaml.
        config: settings, as nested sections (``{"model": {"z_dim": 32}, "train": {"lr": 1e-3},
            "data": {...}}``), dotted keys (``{"z_dim": 32, "train.lr": 1e-3}``) or ``--set``
            strings (``["z_dim=32"]``); they win over the recipe's.
        recipe: a packaged recipe name (``pogm recipes``) or a YAML path (``config_file`` is an
            older name for it).
        resume: continue the run in ``out`` exactly from its last checkpoint. Anything else that
            is named must match the run (a different model, data, labels, seed or setting is a
            ValueError saying what differs), except its stopping rule: ``epochs``, or
            ``train.cpu_budget_seconds`` / ``train.max_steps`` in ``config``, replace it, so that a
            finished run can be continued for longer.
        overrides: an older name for ``config``.

    Raises `TrainingInterrupted` after saving a checkpoint when SIGINT (Ctrl-C) or SIGTERM
    arrives, and FloatingPointError when a loss or gradient is not finite (``train.on_nonfinite``).
    A new run that fails before its first checkpoint leaves no run directory behind.

    Launched by torchrun with several processes, every process calls this with the same
    arguments (see `pogm.train.distributed`); the process group is joined here unless the caller
    already did.
    """
    recipe = load_recipe(recipe if recipe is not None else config_file)
    sets = merge_sections(config_sections(overrides), config_sections(config))
    if resume:
        if out is None:
            raise ValueError("--resume needs the run directory (--out DIR)")
        run_config = checkpoint.read_config(Path(out))
        check_resume_request(Path(out), run_config, model, data, labels, unlabelled, seed, recipe, sets, label_seed)
        stop = {key: value for key, value in sets.get("train", {}).items() if key in STOPPING_RULE}
        with process_group(str(run_config["train"].get("device") or "cpu")) as dist:
            return _resume(Path(out), epochs, progress, dist, stop)
    device = str(merge_dicts(recipe.get("train"), sets.get("train")).get("device") or "cpu")
    with process_group(device) as dist:
        return _train_new(model, data, labels, epochs, out, unlabelled, 0 if seed is None else seed, recipe, sets, progress, dist, label_seed)


# Training settings that a resume may change: they decide speed and output, not the numbers.
RESUMABLE_TRAIN_SETTINGS = frozenset({"progress", "threads"})
# Training settings that a resume may set explicitly (``config``/``--set``, not a recipe): they
# decide when the run stops, not what it computes up to there.
STOPPING_RULE = frozenset({"cpu_budget_seconds", "max_steps"})


def check_resume_request(
    run_dir: Path, config: dict[str, Any], model, data, labels, unlabelled, seed, recipe: dict[str, Any], sets: dict[str, dict[str, Any]], label_seed: int | None = None
) -> None:
    """A resume continues the run as it was: a ValueError, on one line, names everything the
    request names that differs from the run (model, data, labels, unlabelled pool, seed, settings)."""
    recorded = config["data"]
    differences = []

    def differs(what: str, asked: Any, was: Any) -> None:
        if asked is not None and _plain(asked) != _plain(was):
            differences.append(f"{what} {_plain(asked)!r} (the run's: {_plain(was)!r})")

    differs("model", model or recipe.get("model_name"), config["model"])
    asked_data = data if data is not None else recipe.get("source")
    if isinstance(asked_data, Mapping):
        if not _same_arrays(run_dir, recorded, asked_data):
            differences.append("data: arrays that differ from the run's data.npz")
    elif asked_data is not None and not _same_source(str(asked_data), str(recorded["name"])):
        differences.append(f"data {str(asked_data)!r} (the run's: {recorded['name']!r})")
    differs("labels", labels if labels is not None else recipe.get("labels"), recorded.get("labels_per_class"))
    differs("unlabelled", unlabelled, recorded.get("unlabelled"))
    differs("seed", seed, config["seed"])
    differs("label seed", label_seed, recorded.get("label_seed", config["seed"]))
    requested = merge_sections({k: recipe.get(k) or {} for k in SECTIONS}, sets)
    recorded_sections = {"model": config["model_config"], "train": config["train"], "data": recorded.get("options") or {}}
    for section, values in requested.items():
        for key, value in values.items():
            if section == "train" and (key in RESUMABLE_TRAIN_SETTINGS or (key in STOPPING_RULE and key in sets.get("train", {}))):
                continue
            differs(f"{section}.{key}" if section != "model" else key, value, recorded_sections[section].get(key))
    if differences:
        raise ValueError(
            f"{run_dir} holds a {config['model']} run on {recorded['name']}; --resume continues it as it was, but this asks for "
            f"{'; '.join(differences)}. Drop those to continue the run, or train a new run with another --out"
        )


def _plain(value: Any) -> Any:
    """A value as config.yaml stores it (tuples as lists, numbers as floats), for comparison."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return value


def _same_source(asked: str, recorded: str) -> bool:
    """The same source name, or two spellings of the same file."""
    if asked == recorded:
        return True
    a, b = Path(asked).expanduser(), Path(recorded).expanduser()
    return a.exists() and b.exists() and a.resolve() == b.resolve()


def _same_arrays(run_dir: Path, recorded: dict[str, Any], arrays: Mapping[str, Any]) -> bool:
    """Whether ``arrays`` equal the run's saved ``data.npz`` (NaN equal to NaN)."""
    if not recorded.get("file"):
        return False
    saved = npz_source.read_npz(run_dir / recorded["file"])
    given = {k: _as_numpy(v) for k, v in arrays.items()}
    return set(saved) == set(given) and all(
        saved[k].shape == given[k].shape and np.array_equal(saved[k], given[k], equal_nan=saved[k].dtype.kind == "f") for k in saved
    )


def _as_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def save_arrays(path: Path, arrays: Mapping[str, Any]) -> None:
    """Write in-memory data arrays to ``path`` (an uncompressed ``.npz``, atomically)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(f, **{k: _as_numpy(v) for k, v in arrays.items()})

    checkpoint.atomic_write(path, write)


def _train_new(
    model, data, labels, epochs, out, unlabelled, seed: int, recipe: dict[str, Any], sets: dict[str, dict[str, Any]], progress: bool, dist: Distributed, label_seed: int | None = None
) -> Run:
    """`train` of a new run, in this process of ``dist``."""
    model = model or recipe.get("model_name")
    if model is None:
        raise ValueError("name a model (`pogm models` lists them) or give a recipe that names one (`pogm recipes`)")
    data = data if data is not None else (recipe.get("source") or "digits")
    in_memory = isinstance(data, Mapping)
    data_name = "arrays" if in_memory else str(data)
    if labels is None:
        labels = recipe.get("labels")
    model_overrides = merge_dicts(recipe.get("model"), sets.get("model"))

    # Everything that can be wrong is checked before the run directory is made.
    entry = model_entry(model)
    accepted = data_options(data)
    data_kwargs = merge_dicts({k: v for k, v in entry.cls.data_defaults.items() if k in accepted}, recipe.get("data"), sets.get("data"))

    run_dir = Path(out) if out is not None else Path("runs") / f"{model}-{Path(data_name).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    if (run_dir / "config.yaml").exists():
        raise FileExistsError(f"{run_dir} already holds a run; pass --resume to continue it or choose another --out")
    dist.barrier()  # every process has looked before rank 0 writes

    torch.manual_seed(seed)
    splits = load_data(data, data_kwargs)
    # A source's suggested training settings (small sets need more epochs), then the recipe, then --set.
    train_values = merge_dicts(splits.info.get("train_defaults"), recipe.get("train"), sets.get("train"))
    if epochs is not None:
        train_values["epochs"] = epochs
    train_values.setdefault("progress", progress)
    train_config = config_from_dict(TrainConfig, train_values)
    _check_device(train_config)
    draw_seed = seed if label_seed is None else label_seed  # which examples carry labels
    labelled_index = choose_labels(splits, labels, draw_seed, entry.cls.uses_labels)
    unlabelled_index = choose_unlabelled(splits, unlabelled, labelled_index, draw_seed) if entry.cls.uses_unlabelled else None
    if unlabelled is not None and not entry.cls.uses_unlabelled:
        raise ValueError(f"{model} learns from labelled examples only; drop --unlabelled")
    num_unlabelled = None if unlabelled_index is None else len(unlabelled_index)
    net = size_model(model, splits, 0 if labelled_index is None else len(labelled_index), model_overrides, num_unlabelled)
    data_record = {"name": data_name, "options": data_kwargs, "labels_per_class": labels, "unlabelled": unlabelled}
    if label_seed is not None:
        data_record["label_seed"] = label_seed
    if in_memory:
        data_record["file"] = ARRAYS_FILE
    config = {
        "pogm_version": __version__,
        "model": model,
        "model_config": config_to_dict(net.config),
        "data": data_record,
        "seed": seed,
        "train": config_to_dict(train_config),
    }
    if dist.active:
        config["world_size"] = dist.world_size
    created = not run_dir.exists()
    try:
        if dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            if in_memory:
                save_arrays(run_dir / ARRAYS_FILE, data)
            if labelled_index is not None:
                save_split(run_dir / "labelled_index.json", labelled_index)
            if unlabelled_index is not None:
                save_split(run_dir / "unlabelled_index.json", unlabelled_index)
            checkpoint.write_config(run_dir, config)
            checkpoint.write_manifest(run_dir, [])  # no checkpoint yet: `--resume` starts again from step 0
        trainer = _make_trainer(net, splits, labelled_index, train_config, seed, run_dir, unlabelled_index, dist)
        dist.barrier()  # the run directory exists before any process trains
        trainer.fit()
    except Exception as error:
        # A run that failed before its first checkpoint has nothing to resume: remove it, so that
        # the same command can run again once the problem is fixed (a stop signal always saves one).
        if dist.is_main and not isinstance(error, TrainingInterrupted) and not checkpoint.has_checkpoint(run_dir):
            _remove_unstarted_run(run_dir, created)
        raise
    return _finished(run_dir, config, net, splits, labelled_index, unlabelled_index)


def _remove_unstarted_run(run_dir: Path, created: bool) -> None:
    """Delete the files `train` wrote into ``run_dir`` before its first checkpoint (and the
    directory itself if `train` made it and nothing else is in it)."""
    for name in ("config.yaml", checkpoint.MANIFEST, "labelled_index.json", "unlabelled_index.json", "metrics.jsonl", ARRAYS_FILE):
        (run_dir / name).unlink(missing_ok=True)
    if created and run_dir.is_dir() and not any(run_dir.iterdir()):
        run_dir.rmdir()


def _finished(run_dir: Path, config: dict[str, Any], net: torch.nn.Module, splits: DataSplits, labelled_index, unlabelled_index) -> Run:
    """The `Run` of a run that has just trained, holding its best validation weights (the latest
    where it has no selection score)."""
    best = run_dir / "best.safetensors"
    if best.is_file():
        checkpoint.load_weights(best, net)
    net.eval()
    return Run(run_dir=run_dir, config=config, model=net, data=splits, labelled_index=labelled_index, unlabelled_index=unlabelled_index, weights="best" if best.is_file() else "latest")


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


def _resume(run_dir: Path, epochs: int | None, progress: bool, dist: Distributed = SINGLE, stop: Mapping[str, Any] | None = None) -> Run:
    """Continue the run in ``run_dir`` from its newest usable checkpoint; a run stopped before its
    first checkpoint starts again from step 0, seeded as `train` seeded it. ``epochs`` or ``stop``
    (``cpu_budget_seconds``, ``max_steps``) replace the run's stopping rule, and the new rule is
    written to its config. Refuses (`WorldSizeMismatch`) a number of processes other than the run's."""
    trained = int(checkpoint.read_config(run_dir).get("world_size", 1))
    if trained != dist.world_size:
        raise WorldSizeMismatch(run_dir, trained, dist.world_size)
    torch.manual_seed(checkpoint.read_config(run_dir)["seed"])
    config, net, splits, labelled_index, unlabelled_index = rebuild_run(run_dir)
    train_values = dict(config["train"])
    # A new limit replaces the old stopping rule, whatever it was (--epochs clears the others).
    new_limit = ({"epochs": epochs, "max_steps": None, "cpu_budget_seconds": None} if epochs is not None else {}) | dict(stop or {})
    if new_limit:
        train_values.update(new_limit)
        if dist.is_main:
            checkpoint.write_config(run_dir, {**{k: v for k, v in config.items() if k != "format"}, "train": {**train_values, "progress": config["train"].get("progress", True)}})
    train_values["progress"] = progress
    train_config = config_from_dict(TrainConfig, train_values)
    _check_device(train_config)
    trainer = _make_trainer(net, splits, labelled_index, train_config, config["seed"], run_dir, unlabelled_index, dist)
    trainer.resume()
    trainer.fit()
    return _finished(run_dir, checkpoint.read_config(run_dir), net, splits, labelled_index, unlabelled_index)
