"""A data set larger than memory: the ``memmap`` source over memory-mapped ``.npy`` stores.

    pogm train m2 --data memmap --set data.path=/data/big-store --labels 10

``path`` is either

* one store (``x.npy`` and optionally ``y.npy``, see `pogm.data.memmap`): its rows are split into
  train / valid / test parts by the same seeded rule as a ``.npz`` file
  (`pogm.data.splits.held_out_split`), so the same arrays give the same parts, batches and
  training in either form; or
* a directory with a ``train/`` store and optionally ``valid/`` and ``test/`` stores; a part that
  is missing is cut from ``train/`` by that rule.

The training part stays on disk (a `MemmapDataset`, or a row view of one) and training reads only
the rows of each minibatch. The validation and test parts are read into memory: evaluation code
works on whole held-out sets. For a store larger than memory, give small ``valid/`` and ``test/``
stores or small fractions.

``num_classes``, when not given, is inferred from the labels of every part, and every class must
have a labelled example somewhere (as for ``.npz`` files).

As for ``.npz`` files, uint8 values k are read as k / 255 (per batch: the store stays uint8 on
disk) and images are recognised from the stored rows (`pogm.data.layout`: ``[H, W]`` and flat
``[s * s]`` pixel rows are read as ``[1, H, W]`` / ``[1, s, s]``; ``image_shape`` forces a shape,
``image_shape=false`` keeps vectors). Whether flat rows hold pixel values in [0, 1] is judged from
the dtype (uint8, bool) or from a bounded sample of rows of the training store
(`MemmapDataset.observed_range`), never from a pass over the whole store.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from pogm.data.dataset import PartialDataset, agree_on_classes
from pogm.data.layout import image_layout, unit_interval
from pogm.data.memmap import MemmapDataset
from pogm.data.sources import DataSplits
from pogm.data.splits import check_fractions, held_out_split

PARTS = ("train", "valid", "test")


def _open_parts(root: Path, num_classes: int | None, binarize: bool, dequantize: int, name: str) -> dict[str, MemmapDataset]:
    """The stores under ``root``: ``{"": store}`` for a single store, else ``{"train": ..., ...}``."""
    def open_store(directory: Path, part: str) -> MemmapDataset:
        return MemmapDataset(directory, num_classes=num_classes, binarize=binarize, dequantize=dequantize, name=f"{name}-{part}")

    if (root / "x.npy").is_file():
        present = [p for p in PARTS if (root / p).is_dir()]
        if present:
            raise ValueError(f"{root}: holds both x.npy and the part directories {present}; keep one layout (a single store, or train/ valid/ test/)")
        return {"": open_store(root, "all")}
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"{root}: no memmap store here; it needs x.npy (one store, split at random) or a train/ store (and optionally valid/ and test/)")
    return {p: open_store(root / p, p) for p in PARTS if (root / p).is_dir()}


def _agree_on_labels(parts: dict[str, MemmapDataset], root: Path, num_classes: int | None) -> None:
    """The parts carry the same kind of labels; inferred class counts are unified (largest) and
    every class needs a labelled example."""
    kinds = {p: (None if d.y is None else ("classes" if d.y.dim() == 1 else f"continuous [N, {d.y.shape[1]}]")) for p, d in parts.items()}
    if len(set(kinds.values())) > 1:
        raise ValueError(f"{root}: the parts have different labels {kinds}; give every part the same kind of y.npy (or none)")
    labelled = [d for d in parts.values() if d.y is not None and d.y.dim() == 1]
    if not labelled:
        return
    agree_on_classes(labelled, str(root), inferred=num_classes is None)


def load_memmap(
    path: str | os.PathLike = "",
    seed: int = 0,
    valid_fraction: float = 0.1,
    test_fraction: float = 0.1,
    num_classes: int | None = None,
    binarize: bool = False,
    dequantize: int = 0,
    image_shape: list[int] | bool | None = None,
    name: str | None = None,
) -> DataSplits:
    """Open a memmap store (or a directory of train / valid / test stores) as `DataSplits`.

    Args:
        path: the store directory (see the module docstring for the two layouts).
        seed: seed of the random split (unused for parts given as stores).
        valid_fraction, test_fraction: fractions of the rows held out when there is a single store
            (or no ``valid/`` / ``test/``); an empty validation part becomes None.
        num_classes: number of classes (inferred from every part's labels when not given).
        binarize: the values are Bernoulli probabilities in [0, 1] (dynamic binarisation).
        dequantize: grey levels of quantised data (uniform noise within a level at every draw), or 0.
        image_shape: None recognises images (see the module docstring); ``[C, H, W]`` or ``[H, W]``
            reads every row in that shape; False or ``[]`` reads flat vectors.
        name: dataset name (default: the directory's name).

    Returns:
        `DataSplits` whose ``train`` is a `MemmapDataset` (on disk) and whose ``valid`` / ``test``
        are in-memory `PartialDataset`s.

    Raises:
        FileNotFoundError: no store at ``path``.
        ValueError: damaged or non-numeric files, mismatched parts, bad labels or fractions, an
            ``image_shape`` whose size differs from the rows'.
    """
    if not str(path):
        raise ValueError("the memmap source needs the store directory: --set data.path=DIR (write one with pogm.data.memmap.write_memmap_store)")
    root = Path(path).expanduser()
    check_fractions(valid_fraction, test_fraction)
    name = name or root.name
    parts = _open_parts(root, num_classes, binarize, dequantize, name)
    _agree_on_labels(parts, root, num_classes)
    shapes = {p: d.shapes for p, d in parts.items()}
    if len({tuple(s.values()) for s in shapes.values()}) > 1:
        raise ValueError(f"{root}: the parts have rows of different shapes {shapes}; every part needs the same row shape")

    main = "" if "" in parts else "train"
    row_shape = image_layout(parts[main].stored_shape, image_shape, lambda: unit_interval(parts[main].observed_range()), str(root))
    parts = {p: d.with_row_shape(row_shape) for p, d in parts.items()}
    source = parts[main]
    train_idx, valid_idx, test_idx = held_out_split(len(source), seed, valid_fraction, test_fraction, "valid" in parts, "test" in parts, str(root))
    train = source.subset(train_idx, name=f"{name}-train")

    def held_out(part: str, index: torch.Tensor) -> PartialDataset | None:
        if part in parts:
            return parts[part].to_memory()
        return source.subset(index, name=f"{name}-{part}").to_memory() if len(index) else None

    test = held_out("test", test_idx)
    assert test is not None
    return DataSplits(
        train=train,
        valid=held_out("valid", valid_idx),
        test=test,
        info={
            "source": "memmap",
            "path": str(root),
            "seed": seed,
            "num_classes": train.num_classes,
            "groups": {k: list(v) for k, v in train.shapes.items()},
            "binarize": binarize,
            "storage": str(source.x_array.dtype),
            "image_shape": list(row_shape) if len(row_shape) == 3 else None,
        },
    )
