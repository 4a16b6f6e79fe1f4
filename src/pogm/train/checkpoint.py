"""Run directories and atomic checkpoints.

A run directory holds ``config.yaml`` (everything needed to rebuild the run), ``model.safetensors``
(latest weights), ``best.safetensors`` (weights at the best validation score), ``state.pt``
(optimizer, stream, RNG states and step: enough for an exact resume) and ``metrics.jsonl``.
Every file is written to a temporary name and renamed, so a crash leaves the previous
checkpoint intact. Loading never unpickles arbitrary objects (``weights_only=True``).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FORMAT = "pogm-run-v1"


class CheckpointError(RuntimeError):
    """A run directory or checkpoint that cannot be used (missing, corrupt or not pogm's)."""


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` and rename the result onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; run directories are meant to be shared
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    config = {"format": FORMAT, **config}

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    atomic_write(Path(run_dir) / "config.yaml", write)


def read_config(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a pogm run directory: {path.name} is missing (train one with `pogm train`)")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise CheckpointError(f"{path} is not valid YAML ({error}); the run directory is corrupt") from error
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise CheckpointError(f"{path} was not written by pogm (expected format: {FORMAT}); point at a directory made by `pogm train`")
    return config


def save_weights(path: Path, model: torch.nn.Module) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))


def load_weights(path: Path, model: torch.nn.Module) -> None:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing; was training interrupted before the first checkpoint?")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({error}); retrain or restore it") from error
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match this model (missing {missing[:5]}, unexpected {unexpected[:5]}); it comes from a different model or config")
    for name, value in state.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(value.shape)}, the model expects {tuple(expected[name].shape)}")
    model.load_state_dict(state)


def save_state(path: Path, state: dict[str, Any]) -> None:
    atomic_write(Path(path), lambda tmp: torch.save(state, tmp))


def load_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: nothing to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign pickles
        raise CheckpointError(f"{path} is corrupt or not a pogm training state ({type(error).__name__}: {error})") from error


def append_metrics(run_dir: Path, record: dict[str, Any]) -> None:
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
