"""Any user ``.npz`` file: key ``x`` (required, ``[N, ...]``, NaN = missing) and ``y`` (optional).

``y`` holds class labels ``[N]`` (integers, -1 or NaN = unlabelled) or continuous labels ``[N, D]``.
If the file has ``x_test`` (and ``y_test``) those form the test set, and ``x_valid`` / ``y_valid``
the validation set; otherwise rows are split at random (seeded) into 80 % / 10 % / 10 %.
Files are opened with ``allow_pickle=False``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits


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
    if not path.is_file():
        raise FileNotFoundError(f"no such .npz file: {path}")
    name = name or path.stem
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as err:
        raise ValueError(f"{path}: cannot read without unpickling ({err}); save plain numeric arrays") from err
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
    if not (0 <= valid_fraction < 1 and 0 <= test_fraction < 1 and valid_fraction + test_fraction < 1):
        raise ValueError(f"need 0 <= valid_fraction, test_fraction and their sum < 1; got {valid_fraction}, {test_fraction}")

    # Validate everything (and fix num_classes) on the whole file before splitting, so that a
    # class absent from one split does not change num_classes.
    full = PartialDataset.from_arrays(arrays["x"], arrays.get("y"), num_classes=num_classes, binarize=binarize, name=name)
    extra = {}
    for part in ("_valid", "_test"):
        if f"x{part}" in arrays:
            extra[part] = PartialDataset.from_arrays(
                arrays[f"x{part}"], arrays.get(f"y{part}"), num_classes=num_classes, binarize=binarize, name=name
            )
    if full.num_classes is not None:
        # Inferred per array: the parts must agree on the largest (every label is below it).
        k = max([full.num_classes] + [d.num_classes or 0 for d in extra.values()])
        for d in [full, *extra.values()]:
            d.num_classes = k

    n = len(full)
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    n_test = 0 if "_test" in extra else int(round(test_fraction * n))
    n_valid = 0 if "_valid" in extra else int(round(valid_fraction * n))
    if "_test" not in extra and n_test == 0:
        raise ValueError(f"{path}: {n} rows are too few for a test split of {test_fraction}; add x_test or more rows")
    if n - n_test - n_valid < 1:
        raise ValueError(f"{path}: {n} rows leave no training rows after the valid / test split")
    test_idx, valid_idx, train_idx = perm[:n_test], perm[n_test : n_test + n_valid], perm[n_test + n_valid :]

    def part(d: PartialDataset, idx: torch.Tensor | None, suffix: str) -> PartialDataset:
        d = d if idx is None else d.subset(torch.sort(idx).values)
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
