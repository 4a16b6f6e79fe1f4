"""Any user ``.npz`` file: key ``x`` (required, ``[N, ...]``, NaN = missing) and ``y`` (optional);
`load_arrays` does the same for arrays held in memory (a mapping with the same keys).

``y`` holds class labels ``[N]`` (integers, -1 or NaN = unlabelled) or continuous labels ``[N, D]``.
If the file has ``x_test`` (and ``y_test``) those form the test set, and ``x_valid`` / ``y_valid``
the validation set; otherwise rows are split at random (seeded) into 80 % / 10 % / 10 %.
Files are opened with ``allow_pickle=False``.

uint8 values k of ``x`` (8-bit images as they ship) are read as k / 255, in [0, 1]. Images are
recognised whatever layout they were saved in and given as ``[N, C, H, W]``: ``[N, H, W]`` becomes
``[N, 1, H, W]``, flat ``[N, s * s]`` pixels in [0, 1] (s >= 8) become ``[N, 1, s, s]``; the option
``image_shape`` forces a shape (``--set data.image_shape=[1,28,28]``) or, set to false, keeps flat
vectors (`pogm.data.layout`).

Hostile or damaged files give a `ValueError` that starts with the file's path and names the
problem, never a traceback from inside numpy or torch: not a zip archive (random bytes, a pickle, a
single-array ``.npy``), unknown keys, damaged or truncated members (each ``.npy`` header is checked
against the bytes the archive holds before anything is allocated), object, string, complex or record
arrays, empty arrays, ``x`` and ``y`` of different lengths, inf, non-integer or negative class
labels, classes with no example when ``num_classes`` is inferred (e.g. 1-based labels).
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pogm.data.dataset import PartialDataset, _from_arrays, agree_on_classes
from pogm.data.layout import image_layout, parse_image_shape, unit_interval
from pogm.data.sources import DataSplits
from pogm.data.splits import check_fractions, held_out_split

KEYS = ("x", "y", "x_valid", "y_valid", "x_test", "y_test")
# Deflate cannot shrink data more than about 1032 times: a member whose header promises more is a lie
# (a corrupt file or a "zip bomb"), refused before any memory is allocated for it.
_MAX_DEFLATE_RATIO = 1100


def _problem(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path}: {problem}")


def _check_member(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo, key: str) -> None:
    """Read the ``.npy`` header of one member and check it before the array is read: a plain numeric
    dtype (no pickled objects) and a size that matches the bytes the archive holds."""
    with zf.open(info) as fp:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise _problem(path, f"array {key!r} uses .npy format version {version[0]}.{version[1]}, which holds records; save plain numeric arrays")
        header = fp.tell()
    if dtype.hasobject:
        raise _problem(path, f"array {key!r} holds Python objects (dtype {dtype}), which would need unpickling; pogm never unpickles data files: save plain numeric arrays")
    if dtype.kind not in "biufc" or dtype.itemsize == 0:
        raise _problem(path, f"array {key!r} has dtype {dtype}; save plain numeric arrays (float, integer or bool)")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != info.file_size - header:
        raise _problem(
            path,
            f"array {key!r} is truncated or corrupt: its header says shape {tuple(shape)} of {dtype} "
            f"({nbytes} bytes) but the archive holds {info.file_size - header} bytes of data",
        )
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > _MAX_DEFLATE_RATIO * info.compress_size + 4096:
        raise _problem(path, f"array {key!r} claims {info.file_size} bytes from {info.compress_size} compressed bytes; the file is corrupt")


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of a user ``.npz`` file, read without unpickling anything.

    Only the keys of `KEYS` are accepted. Every failure (not a zip archive, a single-array ``.npy``,
    a pickle, a damaged or truncated member, an object or string array) is a `ValueError` that starts
    with the path.

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything wrong with the file's content.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no such .npz file: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        with open(path, "rb") as f:
            head = f.read(8)
        if not head:
            raise _problem(path, "the file is empty; an .npz file is a zip archive written by np.savez(path, x=x, y=y)")
        if head.startswith(b"\x93NUMPY"):
            raise _problem(path, "this is a single-array .npy file, not an .npz; save it with np.savez(path, x=x) (and y=y for labels)")
        if head[:1] == b"\x80":
            raise _problem(path, "this looks like a pickle, not an .npz; pogm never unpickles data files: save arrays with np.savez(path, x=x, y=y)")
        if not zipfile.is_zipfile(path):
            if head.startswith(b"PK"):
                raise _problem(path, "a damaged or truncated zip archive (its table of contents is missing); the .npz is incomplete: copy or save it again")
            raise _problem(path, f"not an .npz file (not a zip archive; it starts with {head!r}); save arrays with np.savez(path, x=x, y=y)")
        arrays: dict[str, np.ndarray] = {}
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            names = [i.filename for i in infos]
            keys = [n.removesuffix(".npy") for n in names]
            if "x" not in keys:
                raise _problem(path, f"has keys {sorted(keys)} but needs 'x' (and optionally 'y', 'x_test', 'y_test', 'x_valid', 'y_valid')")
            unknown = sorted({k for k in keys if k not in KEYS})
            if unknown:
                raise _problem(path, f"unknown key(s) {unknown}; an .npz data file has 'x' and optionally {', '.join(repr(k) for k in KEYS[1:])}")
            if len(set(keys)) != len(keys):
                raise _problem(path, f"the archive lists a key twice ({names}); the file is corrupt")
            if any(not n.endswith(".npy") for n in names):
                raise _problem(path, f"archive members {[n for n in names if not n.endswith('.npy')]} are not .npy arrays")
            for info, key in zip(infos, keys):
                _check_member(path, zf, info, key)
            for info, key in zip(infos, keys):
                with zf.open(info) as fp:
                    arrays[key] = np.lib.format.read_array(fp, allow_pickle=False)
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise _problem(path, f"cannot read it as an .npz of numeric arrays ({err})") from err
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, NotImplementedError, RuntimeError) as err:
        raise _problem(path, f"the file is damaged or not an .npz written by np.savez ({type(err).__name__}: {err})") from err
    except MemoryError as err:
        raise _problem(path, "an array is too large to load into memory") from err
    return arrays


def load_npz(
    path: str | os.PathLike,
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    num_classes: int | None = None,
    binarize: bool = False,
    image_shape: list[int] | bool | None = None,
    name: str | None = None,
) -> DataSplits:
    """Load a user ``.npz`` and split it: `read_npz`, then `load_arrays` on its arrays.

    Args:
        path: the file.
        seed: seed of the random split (unused for parts the file provides).
        valid_fraction, test_fraction: fractions of ``x`` held out when the file has no
            ``x_valid`` / ``x_test``; a part that would be empty becomes None (valid) or is an error (test).
        num_classes: number of classes (inferred from all labels in the file if not given).
        binarize: treat values in [0, 1] as Bernoulli probabilities (dynamic binarisation).
        image_shape: how ``x`` is laid out (`pogm.data.layout`): None recognises images
            (``[N, H, W]`` and flat ``[N, s * s]`` pixels in [0, 1] become ``[N, 1, H, W]``);
            ``[C, H, W]`` or ``[H, W]`` forces that shape; False or ``[]`` keeps flat vectors.
        name: dataset name (default: the file's stem).

    uint8 values k of ``x`` are read as k / 255. ``info`` records ``source="npz"`` and the ``path``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing ``x``, wrong shapes, out-of-range labels, bad fractions; the message
            starts with the path.
    """
    path = Path(path).expanduser()
    _check_options(seed, valid_fraction, test_fraction, image_shape, name)
    splits = _split_arrays(read_npz(path), str(path), seed, valid_fraction, test_fraction, num_classes, binarize, image_shape, name or path.stem)
    splits.info = {"source": "npz", "path": str(path), **splits.info}
    return splits


def load_arrays(
    arrays: Mapping[str, Any],
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    num_classes: int | None = None,
    binarize: bool = False,
    image_shape: list[int] | bool | None = None,
    name: str = "arrays",
) -> DataSplits:
    """In-memory arrays as `DataSplits`, exactly as `load_npz` treats the arrays of a file.

    Args:
        arrays: ``x`` (required, ``[N, ...]``, NaN = missing) and optionally ``y``, ``x_valid``,
            ``y_valid``, ``x_test``, ``y_test`` (the keys of `KEYS`); NumPy arrays, torch tensors
            (read on the CPU) or nested lists. Class labels ``[N]`` use -1 or NaN for unlabelled rows;
            continuous labels are ``[N, D]`` floats.
        seed, valid_fraction, test_fraction, num_classes, binarize, image_shape: as for `load_npz`.
        name: dataset name.

    uint8 values k of ``x`` are read as k / 255. ``info["source"]`` is ``"arrays"``.

    Raises:
        ValueError: not a mapping, unknown keys (the message lists the accepted ones), no ``x``,
            and every problem `load_npz` finds in a file's arrays; messages start with "arrays".
    """
    _check_options(seed, valid_fraction, test_fraction, image_shape, name)
    splits = _split_arrays(_read_mapping(arrays), "arrays", seed, valid_fraction, test_fraction, num_classes, binarize, image_shape, name)
    splits.info = {"source": "arrays", **splits.info}
    return splits


def _check_options(seed: Any, valid_fraction: Any, test_fraction: Any, image_shape: Any, name: Any) -> None:
    """The options `load_npz` and `load_arrays` check before reading any data."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    check_fractions(valid_fraction, test_fraction)
    parse_image_shape(image_shape)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")


def _read_mapping(arrays: Any) -> dict[str, Any]:
    """The arrays of a mapping, keys checked against `KEYS`: tensors moved to the CPU, other
    values as NumPy arrays."""
    if not isinstance(arrays, Mapping):
        raise ValueError(f"arrays must be a mapping of names to arrays such as {{'x': x, 'y': y}}, got {type(arrays).__name__}")
    unknown = sorted(str(k) for k in arrays if k not in KEYS)
    if unknown:
        raise ValueError(f"arrays: unknown key(s) {unknown}; the accepted keys are {', '.join(repr(k) for k in KEYS)}")
    out: dict[str, Any] = {}
    for key, value in arrays.items():
        if isinstance(value, torch.Tensor):
            out[key] = value.detach().cpu()
            continue
        try:
            out[key] = np.asarray(value)
        except (TypeError, ValueError, OverflowError) as err:
            raise ValueError(f"arrays: {key!r} could not be converted to a numeric array: {err}") from None
    return out


def _split_arrays(
    arrays: Mapping[str, Any], where: str, seed: int, valid_fraction: float, test_fraction: float,
    num_classes: int | None, binarize: bool, image_shape: Any, name: str,
) -> DataSplits:
    """What `load_npz` and `load_arrays` share: check the arrays, lay out ``x`` (`pogm.data.layout`)
    and split them. ``where`` (a path, or "arrays") starts the messages."""
    if "x" not in arrays:
        raise ValueError(f"{where} has keys {sorted(arrays)} but needs 'x' (and optionally 'y', 'x_test', 'y_test')")
    for part in ("", "_valid", "_test"):
        if f"y{part}" in arrays and f"x{part}" not in arrays:
            raise ValueError(f"{where} has 'y{part}' but no 'x{part}'")
        if f"x{part}" in arrays and ("y" in arrays) != (f"y{part}" in arrays):
            raise ValueError(f"{where}: give labels for every part or none ('y' and 'y{part}' must both be present)")
    x_shape = tuple(arrays["x"].shape[1:])
    for part in ("_valid", "_test"):
        if f"x{part}" in arrays and tuple(arrays[f"x{part}"].shape[1:]) != x_shape:
            raise ValueError(f"{where}: 'x{part}' rows have shape {tuple(arrays[f'x{part}'].shape[1:])} but 'x' rows have {x_shape}")

    # Validate everything (and fix num_classes) on all the arrays before splitting, so that a
    # class absent from one split does not change num_classes.
    rows = sum(len(a) for k, a in arrays.items() if k.startswith("x") and a.ndim)
    parts: dict[str, PartialDataset] = {}
    for part in ("", "_valid", "_test"):
        if f"x{part}" not in arrays:
            continue
        try:
            parts[part] = _from_arrays(
                PartialDataset,
                arrays[f"x{part}"],
                arrays.get(f"y{part}"),
                num_classes=num_classes,
                binarize=binarize,
                name=name,
                x_names={"x": f"array 'x{part}'"},
                y_name=f"array 'y{part}'",
                max_inferred_classes=rows,
                require_labelled=False,
            )
        except ValueError as err:
            raise ValueError(f"{where}: {err}") from None
    row_shape = image_layout(x_shape, image_shape, lambda: all(unit_interval(d.observed_range()) for d in parts.values()), where)
    parts = {k: d.with_row_shape(row_shape) for k, d in parts.items()}
    full = parts.pop("")
    extra = parts
    if full.y is not None:
        every = [full, *extra.values()]
        if len({d.y.dim() for d in every}) > 1:
            raise ValueError(f"{where}: some parts have class labels [N] and others continuous labels [N, D]; use one kind for 'y', 'y_valid', 'y_test'")
        if full.y.dim() == 2 and len({tuple(d.y.shape[1:]) for d in every}) > 1:
            raise ValueError(f"{where}: the continuous labels of the parts have different widths {sorted({d.y.shape[1] for d in every})}")
        if full.y.dim() == 1:
            # Class labels, inferred per array (or checked against num_classes): the parts agree on the largest.
            agree_on_classes(every, where, inferred=num_classes is None)

    train_idx, valid_idx, test_idx = held_out_split(len(full), seed, valid_fraction, test_fraction, "_valid" in extra, "_test" in extra, where)
    n_valid = len(valid_idx)

    def part(d: PartialDataset, idx: torch.Tensor | None, suffix: str) -> PartialDataset:
        d = d if idx is None else d.subset(idx)
        d.name = f"{name}-{suffix}"
        return d

    train = part(full, train_idx, "train")
    test = part(extra["_test"], None, "test") if "_test" in extra else part(full, test_idx, "test")
    if "_valid" in extra:
        valid = part(extra["_valid"], None, "valid")
    else:
        valid = part(full, valid_idx, "valid") if n_valid else None
    return DataSplits(
        train=train,
        valid=valid,
        test=test,
        info={
            "seed": seed,
            "num_classes": train.num_classes,
            "groups": {k: list(v.shape[1:]) for k, v in train.x.items()},
            "image_shape": list(row_shape) if len(row_shape) == 3 else None,
            "x_dtype": str(arrays["x"].dtype).removeprefix("torch."),
            "binarize": binarize,
        },
    )
