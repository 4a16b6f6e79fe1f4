"""Label splits: which training rows keep their labels in a semi-supervised run.

Kingma et al. (2014) keep a fixed number of labels per class (e.g. 10 per class = 100 labels on
MNIST) and hide the rest. `balanced_label_split` chooses them reproducibly from a seed;
`save_split` / `load_split` store the exact choice in a run directory (JSON list of row indices),
so a run can be rebuilt even if the sampling code changes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor


def balanced_label_split(
    y: Tensor | np.ndarray,
    n_per_class: int,
    num_classes: int,
    seed: int,
    y_mask: Tensor | np.ndarray | None = None,
) -> Tensor:
    """Indices of ``n_per_class`` rows of each class, chosen with a generator seeded by ``seed``.

    Args:
        y: int class labels ``[N]``.
        n_per_class: how many labelled rows to keep per class (>= 0).
        num_classes: number of classes; every class ``0..num_classes-1`` must have enough rows.
        seed: seed of the `torch.Generator` that draws the rows.
        y_mask: optional bool ``[N]``; only rows with True (labelled) are candidates.

    Returns:
        LongTensor ``[n_per_class * num_classes]`` of row indices, sorted ascending.

    Raises:
        ValueError: if a class has fewer than ``n_per_class`` candidate rows.
    """
    y = torch.as_tensor(y).detach().cpu()
    if y.dim() != 1:
        raise ValueError(f"balanced_label_split needs class labels [N], got shape {tuple(y.shape)}")
    if n_per_class < 0:
        raise ValueError(f"n_per_class must be >= 0, got {n_per_class}")
    candidates = torch.ones_like(y, dtype=torch.bool)
    if y_mask is not None:
        candidates = torch.as_tensor(y_mask).detach().cpu().to(torch.bool)
    g = torch.Generator().manual_seed(int(seed))
    chosen = []
    for c in range(num_classes):
        rows = ((y == c) & candidates).nonzero().squeeze(1)
        if rows.numel() < n_per_class:
            raise ValueError(
                f"class {c} has only {rows.numel()} labelled examples but n_per_class={n_per_class} were "
                f"requested; lower the number of labels per class (or the total --labels)"
            )
        chosen.append(rows[torch.randperm(rows.numel(), generator=g)[:n_per_class]])
    if not chosen:
        return torch.zeros(0, dtype=torch.long)
    return torch.sort(torch.cat(chosen)).values


def check_fractions(valid_fraction: object, test_fraction: object) -> None:
    """A `ValueError` unless both are numbers in [0, 1) whose sum is below 1."""
    for option, value in (("valid_fraction", valid_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) or not math.isfinite(value):
            raise ValueError(f"{option} must be a number in [0, 1), got {value!r}")
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):  # type: ignore[operator]
        raise ValueError(f"need 0 <= valid_fraction, test_fraction and their sum < 1; got {valid_fraction}, {test_fraction}")


def held_out_split(
    n: int, seed: int, valid_fraction: float, test_fraction: float, has_valid: bool = False, has_test: bool = False, what: str = "the data"
) -> tuple[Tensor, Tensor, Tensor]:
    """Row indices (each ascending) of the train, valid and test parts of ``n`` rows.

    One seeded permutation: its first ``round(test_fraction * n)`` rows are the test part, the next
    ``round(valid_fraction * n)`` the validation part, the rest the training part. A part the data
    brings itself (``has_valid`` / ``has_test``) is not cut (its indices are empty). The ``.npz`` and
    ``memmap`` sources share this rule, so the same arrays give the same parts in either form.

    Raises:
        ValueError: a test part that would be empty, or no training rows left (``what`` names the data).
    """
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_test = 0 if has_test else round(test_fraction * n)
    n_valid = 0 if has_valid else round(valid_fraction * n)
    if not has_test and n_test == 0:
        raise ValueError(f"{what}: {n} rows are too few for a test split of {test_fraction}; give a separate test set or more rows")
    if n - n_test - n_valid < 1:
        raise ValueError(f"{what}: {n} rows leave no training rows after the valid / test split")
    test, valid, train = perm[:n_test], perm[n_test : n_test + n_valid], perm[n_test + n_valid :]
    return torch.sort(train).values, torch.sort(valid).values, torch.sort(test).values


def save_split(path: str | os.PathLike, index: Tensor | np.ndarray | list[int]) -> None:
    """Write row indices to ``path`` atomically: a JSON list, or a ``.npy`` file if the name ends so."""
    path = Path(path)
    values = np.asarray(torch.as_tensor(index).detach().cpu().numpy(), dtype=np.int64).reshape(-1)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if path.suffix == ".npy":
                np.save(f, values)
            else:
                f.write(json.dumps(values.tolist()).encode())
        os.chmod(tmp, 0o644)  # mkstemp makes the file private; a split is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_split(path: str | os.PathLike, size: int | None = None) -> Tensor:
    """Read row indices written by `save_split` as a LongTensor.

    ``size``, when given, is the number of rows the indices point into: each must be in
    ``[0, size)``. Indices must be non-negative integers.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a file that is not a list of row indices (the message starts with the path).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such index file: {path}")
    try:
        if path.suffix == ".npy":
            values = np.load(path, allow_pickle=False)
            if not isinstance(values, np.ndarray) or values.dtype.kind not in "iu":
                raise ValueError(f"holds {getattr(values, 'dtype', type(values).__name__)}, not integer row indices")
        else:
            values = json.loads(path.read_bytes().decode("utf-8"))
            if not isinstance(values, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise ValueError("must hold a JSON list of integer row indices")
        values = np.asarray(values).reshape(-1)
        if values.size and (values.min() < 0 or values.max() > np.iinfo(np.int64).max):
            raise ValueError(f"holds the row index {values.min() if values.min() < 0 else values.max()}; row indices are in [0, number of rows)")
        values = values.astype(np.int64)
    except (ValueError, OSError, EOFError, RecursionError, OverflowError) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: not a list of row indices written by pogm ({err})") from None
    if size is not None and values.size and values.max() >= size:
        raise ValueError(f"{path}: the row index {values.max()} is out of range for a data set of {size} rows; the index file belongs to another data set")
    return torch.as_tensor(values)
