"""Any user ``.npz`` file: key ``x`` (required, ``[N, ...]``, NaN = missing) and ``y`` (optional).

``y`` holds class labels ``[N]`` (integers, -1 or NaN = unlabelled) or continuous labels ``[N, D]``.
If the file has ``x_test`` (and ``y_test``) those form the test set, and ``x_valid`` / ``y_valid``
the validation set; otherwise rows are split at random (seeded) into 80 % / 10 % / 10 %.
Files are opened with ``allow_pickle=False``.

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
from pathlib import Path

import numpy as np
import torch

from pogm.data.dataset import PartialDataset, _from_arrays, agree_on_classes
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
    name: str | None = None,
) -> DataSplits:
    """Load a user ``.npz`` and split it.

    Args:
        path: the file.
        seed: seed of the random split (unused for parts the file provides).
        valid_fraction, test_fraction: fractions of ``x`` held out when the file has no
            ``x_valid`` / ``x_test``; a part that would be empty becomes None (valid) or is an error (test).
        num_classes: number of classes (inferred from all labels in the file if not given).
        binarize: treat values in [0, 1] as Bernoulli probabilities (dynamic binarisation).
        name: dataset name (default: the file's stem).

    Raises:
        FileNotFoundError: no such file.
        ValueError: missing ``x``, wrong shapes, out-of-range labels, bad fractions.
    """
    path = Path(path).expanduser()
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    check_fractions(valid_fraction, test_fraction)
    if name is not None and not isinstance(name, str):
        raise ValueError(f"name must be a string, got {name!r}")
    arrays = read_npz(path)
    name = name or path.stem
    if "x" not in arrays:
        raise ValueError(f"{path} has keys {sorted(arrays)} but needs 'x' (and optionally 'y', 'x_test', 'y_test')")
    for part in ("", "_valid", "_test"):
        if f"y{part}" in arrays and f"x{part}" not in arrays:
            raise ValueError(f"{path} has 'y{part}' but no 'x{part}'")
        if f"x{part}" in arrays and ("y" in arrays) != (f"y{part}" in arrays):
            raise ValueError(f"{path}: give labels for every part or none ('y' and 'y{part}' must both be present)")
    x_shape = arrays["x"].shape[1:]
    for part in ("_valid", "_test"):
        if f"x{part}" in arrays and arrays[f"x{part}"].shape[1:] != x_shape:
            raise ValueError(
                f"{path}: 'x{part}' rows have shape {arrays[f'x{part}'].shape[1:]} but 'x' rows have {x_shape}"
            )

    # Validate everything (and fix num_classes) on the whole file before splitting, so that a
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
            raise ValueError(f"{path}: {err}") from None
    full = parts.pop("")
    extra = parts
    if full.y is not None:
        every = [full, *extra.values()]
        if len({d.y.dim() for d in every}) > 1:
            raise ValueError(f"{path}: some parts have class labels [N] and others continuous labels [N, D]; use one kind for 'y', 'y_valid', 'y_test'")
        if full.y.dim() == 2 and len({tuple(d.y.shape[1:]) for d in every}) > 1:
            raise ValueError(f"{path}: the continuous labels of the parts have different widths {sorted({d.y.shape[1] for d in every})}")
        if full.y.dim() == 1:
            # Class labels, inferred per array (or checked against num_classes): the parts agree on the largest.
            agree_on_classes(every, str(path), inferred=num_classes is None)

    train_idx, valid_idx, test_idx = held_out_split(len(full), seed, valid_fraction, test_fraction, "_valid" in extra, "_test" in extra, str(path))
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
            "source": "npz",
            "path": str(path),
            "seed": seed,
            "num_classes": train.num_classes,
            "groups": {k: list(v.shape[1:]) for k, v in train.x.items()},
            "binarize": binarize,
        },
    )
