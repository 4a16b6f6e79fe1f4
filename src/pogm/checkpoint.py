"""Run directories and crash-safe checkpoints.

A run directory holds ``config.yaml`` (everything needed to rebuild the run), ``model.safetensors``
(latest weights), ``best.safetensors`` (weights at the best validation score), ``state.pt``
(optimizer, stream, RNG states and step: enough for an exact resume) and ``metrics.jsonl``.
Every file is written to a temporary name, flushed to disk and renamed, so a crash leaves the
previous version intact. Loading never unpickles arbitrary objects (``weights_only=True``).

A checkpoint is a *generation*: ``model.safetensors`` and ``state.pt`` written together. The
previous generation is kept as ``model.prev.safetensors`` and ``state.prev.pt`` (hard links, so
keeping it costs no copy), and ``checkpoint.json`` (the manifest, written last and atomically)
names the files of each generation with their sha256. The manifest is the commit point: a run
killed at any moment leaves either the old or the new manifest, and each names files that exist
with those exact contents (looked up under both names, as a kill can fall between the renames).
Resuming verifies the checksums, so a torn or damaged file is detected and the previous
generation used instead.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import reprlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors_bytes
from safetensors.torch import load_file, save_file
from safetensors.torch import save as save_safetensors_bytes

FORMAT = "pogm-run-v1"
MANIFEST = "checkpoint.json"
MANIFEST_FORMAT = "pogm-checkpoints-v1"
WEIGHTS, STATE = "model.safetensors", "state.pt"
GENERATION_FILES = (WEIGHTS, STATE)


class CheckpointError(RuntimeError):
    """A run directory or checkpoint that cannot be used (missing, corrupt or not pogm's)."""


# ---------------------------------------------------------------------------------------- atomic writes


def _fsync_path(path: str | Path, directory: bool = False) -> None:
    """Flush a file's (or a directory's entries') data to disk; a no-op where the OS cannot."""
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems (and Windows directories) refuse fsync
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)``, flush the result to disk and rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; run directories are meant to be shared
        _fsync_path(tmp)  # the data reaches the disk before the name does
        os.replace(tmp, path)
        _fsync_path(path.parent, directory=True)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def remove_stale_temporaries(run_dir: Path) -> list[str]:
    """Delete the temporary files (``.NAME.xxxx``) that a killed writer left in ``run_dir``;
    returns their names. Only call this when no other process writes to the run."""
    removed = []
    for path in Path(run_dir).glob(".*"):
        if path.is_file() and any(path.name.startswith(f".{name}.") for name in _RUN_FILES):
            path.unlink()
            removed.append(path.name)
    return removed


# ---------------------------------------------------------------------------------------- config


def write_config(run_dir: Path, config: dict[str, Any]) -> None:
    """Write ``config.yaml`` (stamped with ``FORMAT``) atomically."""
    config = {"format": FORMAT, **config}

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    atomic_write(Path(run_dir) / "config.yaml", write)


def _one_line(error: BaseException) -> str:
    """An exception's message on one line (YAML and torch errors span several)."""
    return " ".join(str(error).split())


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlevel = 40, 40, 2


def _short(value: Any) -> str:
    """A value from a damaged file, shown briefly on one line."""
    return _SHORT.repr(value)


def _parse_config(path: Path) -> Any:
    """The YAML document in ``path``, parsed safely (no Python objects are built); CheckpointError
    naming the file when it is not UTF-8, not YAML or nested too deeply to parse."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise CheckpointError(f"{path} is not UTF-8 text (byte {error.start}); the run directory is corrupt") from error
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        detail = _one_line(error).replace(' in "<unicode string>",', "")  # the path is named already
        raise CheckpointError(f"{path} is not valid YAML ({detail}); the run directory is corrupt") from error
    except RecursionError as error:
        raise CheckpointError(f"{path} is nested too deeply to parse; the run directory is corrupt") from error


def _check_format(path: Path, config: Any) -> None:
    """CheckpointError unless ``config`` is a mapping of format ``FORMAT``; a newer pogm's format
    (``pogm-run-vN``) is told apart from a file pogm did not write."""
    found = config.get("format") if isinstance(config, dict) else None
    if found == FORMAT:
        return
    if isinstance(found, str) and found.startswith("pogm-run-v"):
        version = _short(config.get("pogm_version", "of an unknown version")).strip("'")
        raise CheckpointError(f"{path} has format {_short(found)} (written by pogm {version}); this pogm reads {FORMAT}: upgrade pogm to load it")
    raise CheckpointError(f"{path} was not written by pogm (expected format: {FORMAT}); point at a directory made by `pogm train`")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# field -> (check, what it should be); "data.x" is a field of the ``data`` mapping.
_CONFIG_FIELDS: dict[str, tuple[Any, str]] = {
    "model": (lambda v: isinstance(v, str), "a model name (a string)"),
    "model_config": (lambda v: isinstance(v, dict), "a mapping of model settings"),
    "data": (lambda v: isinstance(v, dict), "a mapping with the data source's name and options"),
    "data.name": (lambda v: isinstance(v, str), "a data source name (a string)"),
    "data.options": (lambda v: v is None or isinstance(v, dict), "a mapping of source options, or null"),
    "seed": (_is_int, "an integer"),
    "train": (lambda v: isinstance(v, dict), "a mapping of training settings"),
}
_OPTIONAL_FIELDS = {"data.options"}


def _check_fields(path: Path, config: dict[str, Any]) -> None:
    """CheckpointError naming ``path`` and the field when a field pogm needs to rebuild the run is
    missing or of the wrong type."""
    for name, (check, expected) in _CONFIG_FIELDS.items():
        node, key = (config["data"], name[5:]) if name.startswith("data.") else (config, name)
        if key not in node:
            if name in _OPTIONAL_FIELDS:
                continue
            raise CheckpointError(f"{path} has no field {name!r} ({expected}); the run directory is corrupt")
        if not check(node[key]):
            raise CheckpointError(f"{path}: field {name!r} is {_short(node[key])}, expected {expected}; the run directory is corrupt")


def read_config(run_dir: Path) -> dict[str, Any]:
    """The config of the run in ``run_dir``, checked: written by this pogm's format, with the fields
    needed to rebuild the run of the right types. CheckpointError naming ``config.yaml`` otherwise."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir} is not a pogm run directory: {path.name} is missing (train one with `pogm train`)")
    config = _parse_config(path)
    _check_format(path, config)
    _check_fields(path, config)
    return config


# ---------------------------------------------------------------------------------------- weights and state


def weights_to_bytes(model: torch.nn.Module) -> bytes:
    """The model's state dict as safetensors bytes (on the CPU)."""
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    return save_safetensors_bytes(state, metadata={"format": FORMAT})


def state_to_bytes(state: dict[str, Any]) -> bytes:
    """A training state as ``torch.save`` bytes."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def save_weights(path: Path, model: torch.nn.Module) -> None:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={"format": FORMAT}))


def _apply_weights(path: Path, state: dict[str, torch.Tensor], model: torch.nn.Module) -> None:
    """Load ``state`` (read from ``path``) into ``model`` after checking names and shapes."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path} does not match this model (missing {missing[:5]}, unexpected {unexpected[:5]}); it comes from a different model or config")
    for name, value in state.items():
        if value.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name} has shape {tuple(value.shape)}, the model expects {tuple(expected[name].shape)}")
    model.load_state_dict(state)


def load_weights(path: Path, model: torch.nn.Module) -> None:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {path} is missing; was training interrupted before the first checkpoint?")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({error}); retrain or restore it") from error
    _apply_weights(path, state, model)


def load_weights_bytes(path: Path, data: bytes, model: torch.nn.Module) -> None:
    """Load safetensors ``data`` (the contents of ``path``) into ``model``."""
    try:
        state = load_safetensors_bytes(data)
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path} is corrupt or not a safetensors file ({error}); retrain or restore it") from error
    _apply_weights(path, state, model)


def load_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: nothing to resume from")
    return load_state_bytes(path, path.read_bytes())


# Lines of torch's weights-only error that are boilerplate, not the reason (the first advises
# loading with weights_only=False, which would run any code in the file: not advice to pass on).
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def _torch_reason(error: BaseException) -> str:
    """The one line of a ``torch.load`` error that says what failed (torch's message runs to
    several paragraphs); its first line when no other is left."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reasons = [line for line in lines if not line.startswith(_TORCH_BOILERPLATE)]
    return (reasons or lines or ["no message"])[0]


def load_state_bytes(path: Path, data: bytes) -> dict[str, Any]:
    """A training state from ``data`` (the contents of ``path``), without arbitrary unpickling:
    a dict with ``"step"``, else CheckpointError naming ``path``."""
    if not data:
        raise CheckpointError(f"{path} is empty: not a pogm training state (a write that never finished, or damage on disk)")
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt or foreign pickles
        raise CheckpointError(f"{path} is corrupt or not a pogm training state ({type(error).__name__}: {_torch_reason(error)})") from error
    if not isinstance(state, dict) or "step" not in state:
        found = "a dict without 'step'" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CheckpointError(f"{path} is not a pogm training state: it holds {found}, not a dict with 'step'")
    return state


# ---------------------------------------------------------------------------------------- generations


def previous_name(name: str) -> str:
    """``model.safetensors`` -> ``model.prev.safetensors``: where the previous generation lives."""
    stem, _, suffix = name.partition(".")
    return f"{stem}.prev.{suffix}"


def _other_name(name: str) -> str:
    """The other of a file's two names (current <-> previous)."""
    for current in GENERATION_FILES:
        if name == current:
            return previous_name(current)
        if name == previous_name(current):
            return current
    return name


_RUN_FILES = (*GENERATION_FILES, *(previous_name(n) for n in GENERATION_FILES), MANIFEST, "metrics.jsonl", "best.safetensors", "config.yaml")


@dataclass
class Generation:
    """One checkpoint: its step, the length of ``metrics.jsonl`` when it was written, and for
    each logical file (``model.safetensors``, ``state.pt``) where it is and its sha256."""

    step: int
    metrics_bytes: int | None
    files: dict[str, dict[str, Any]]  # logical name -> {"path": file name, "sha256": hex, "bytes": n}
    data: dict[str, bytes] = field(default_factory=dict, repr=False)  # verified contents, when loaded

    def to_json(self) -> dict[str, Any]:
        return {"step": self.step, "metrics_bytes": self.metrics_bytes, "files": self.files}

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> Generation:
        return cls(step=int(entry["step"]), metrics_bytes=entry.get("metrics_bytes"), files=dict(entry["files"]))

    def describe(self) -> str:
        return f"step {self.step}: {', '.join(f['path'] for f in self.files.values())}"


def read_manifest(run_dir: Path) -> list[Generation] | None:
    """The generations named by ``checkpoint.json``, newest first; None when there is no manifest
    (a run written before manifests existed)."""
    path = Path(run_dir) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"format is {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        return [Generation.from_json(entry) for entry in manifest["generations"]]
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError, RecursionError) as error:
        raise CheckpointError(
            f"{path} is corrupt ({_one_line(error)}); it names the consistent checkpoint files. Restore it, or delete it to resume "
            f"from {WEIGHTS} and {STATE} without checksum verification"
        ) from error


def has_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a checkpoint to resume from (a damaged manifest counts: it may)."""
    try:
        generations = read_manifest(run_dir)
    except CheckpointError:
        return True
    return bool(generations) or (Path(run_dir) / STATE).exists()


def write_manifest(run_dir: Path, generations: list[Generation]) -> None:
    """Write ``checkpoint.json`` atomically: the commit point of a checkpoint."""
    manifest = {"format": MANIFEST_FORMAT, "generations": [g.to_json() for g in generations]}
    atomic_write_bytes(Path(run_dir) / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def _keep_as_previous(run_dir: Path, name: str) -> str:
    """Give the file ``name`` its previous-generation name (a hard link, else a copy, renamed into
    place atomically) and return that name; the current name is left alone."""
    target = previous_name(name) if name in GENERATION_FILES else name
    if target == name:
        return name
    source, tmp = run_dir / name, run_dir / f".{target}.link"
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:  # a file system without hard links
        tmp.write_bytes(source.read_bytes())
        _fsync_path(tmp)
    os.replace(tmp, run_dir / target)
    return target


def commit_generation(run_dir: Path, blobs: dict[str, bytes], step: int, metrics_bytes: int | None, current: Generation | None) -> Generation:
    """Write a new generation (``blobs``: logical name -> contents) and commit it in the manifest,
    keeping ``current`` (the last committed generation, or None) as the previous one."""
    run_dir = Path(run_dir)
    generations = []
    if current is not None:
        files = {}
        for logical, entry in current.files.items():
            files[logical] = {**entry, "path": _keep_as_previous(run_dir, entry["path"])}
        previous = Generation(current.step, current.metrics_bytes, files)
    new = Generation(step, metrics_bytes, {})
    for logical, data in blobs.items():
        atomic_write_bytes(run_dir / logical, data)
        new.files[logical] = {"path": logical, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    generations = [new] + ([previous] if current is not None else [])
    write_manifest(run_dir, generations)
    return new


def _read_verified(run_dir: Path, entry: dict[str, Any]) -> tuple[str, bytes]:
    """``(file name, contents)`` of a generation's file, looked up under its recorded name and then
    its other name; raises CheckpointError saying what is wrong with it."""
    name = entry["path"]
    problem = f"{run_dir / name} is missing"
    for candidate in (name, _other_name(name)):
        path = run_dir / candidate
        if not path.is_file():
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() == entry["sha256"]:
            return candidate, data
        if candidate == name:
            problem = (
                f"{path} is corrupt: its sha256 does not match {MANIFEST} ({len(data)} bytes, {entry.get('bytes', '?')} expected; "
                f"a torn or truncated write, or damage on disk)"
            )
    raise CheckpointError(problem)


def _verify_generation(run_dir: Path, generation: Generation) -> Generation:
    """The generation with its files located and read; CheckpointError if one is missing or corrupt."""
    files, data = {}, {}
    for logical, entry in generation.files.items():
        name, data[logical] = _read_verified(run_dir, entry)
        files[logical] = {**entry, "path": name}
    return Generation(generation.step, generation.metrics_bytes, files, data)


def _legacy_generation(run_dir: Path) -> Generation | None:
    """A run without a manifest: its current files, unverified (None when it has no state yet)."""
    if not (run_dir / STATE).is_file():
        return None
    data = {}
    for name in GENERATION_FILES:
        if not (run_dir / name).is_file():
            raise CheckpointError(f"{run_dir / name} is missing: the checkpoint is incomplete; restore it or train again into a new --out")
        data[name] = (run_dir / name).read_bytes()
    files = {name: {"path": name, "sha256": hashlib.sha256(blob).hexdigest(), "bytes": len(blob)} for name, blob in data.items()}
    return Generation(step=-1, metrics_bytes=None, files=files, data=data)


def load_latest_generation(run_dir: Path) -> tuple[Generation | None, list[str]]:
    """The newest usable checkpoint of ``run_dir`` with its verified contents, and the problems
    met on the way (one line per generation skipped). ``(None, [])``: no checkpoint was written yet.
    Raises CheckpointError, naming every bad file and the fix, when no generation is usable."""
    run_dir = Path(run_dir)
    generations = read_manifest(run_dir)
    if generations is None:
        return _legacy_generation(run_dir), []
    problems = []
    for generation in generations:
        try:
            return _verify_generation(run_dir, generation), problems
        except CheckpointError as error:
            problems.append(f"the checkpoint at step {generation.step} is unusable: {error}")
    if not generations:
        return None, []
    raise CheckpointError(
        f"no usable checkpoint in {run_dir}: " + "; ".join(problems) + ". Restore these files from a backup, or train "
        f"again from the start (delete {run_dir} or choose another --out)"
    )


# ---------------------------------------------------------------------------------------- metrics


def append_metrics(run_dir: Path, record: dict[str, Any]) -> int:
    """Append one record to ``metrics.jsonl`` (flushed to disk); returns the file's new length."""
    with open(Path(run_dir) / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())
        return f.tell()


def metrics_size(run_dir: Path) -> int:
    """The length of ``metrics.jsonl`` in bytes (0 when there is none)."""
    path = Path(run_dir) / "metrics.jsonl"
    return path.stat().st_size if path.is_file() else 0


def truncate_metrics(run_dir: Path, length: int) -> int:
    """Cut ``metrics.jsonl`` back to its first ``length`` bytes (the records written up to a
    checkpoint), atomically; returns the number of bytes dropped (negative: the file is shorter)."""
    path = Path(run_dir) / "metrics.jsonl"
    data = path.read_bytes() if path.is_file() else b""
    if len(data) > length:
        atomic_write_bytes(path, data[:length])
    return len(data) - length


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The records of ``metrics.jsonl``; an unfinished last line (a writer killed mid-line, before
    the run was resumed) is left out."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    text = path.read_text()
    lines = text.splitlines()
    if lines and not text.endswith("\n"):
        try:
            json.loads(lines[-1])
        except json.JSONDecodeError:
            lines = lines[:-1]
    return [json.loads(line) for line in lines if line.strip()]
