"""``mnist-quadrants``: MNIST digits cut into four 14x14 quadrant groups q0..q3.

Built on `pogm.data.sources.mnist.load_mnist` (same file lookup, same 50,000 / 10,000 / 10,000
split, pixels in [0, 1]): each 28x28 image becomes four groups, flattened row-major to float32
``[N, 196]``: q0 top-left, q1 top-right, q2 bottom-left, q3 bottom-right (the layout of ``bars``;
`pogm.data.sources.bars.assemble_quadrants` puts them back together). Labels ``y`` (10 classes) are
kept; ``binarize=True`` marks the pixels as Bernoulli probabilities so streams binarise them anew
each epoch.

``missing > 0`` removes training quadrants at random as in ``bars`` (each independently with that
probability, never all four of an image; zero-filled, per-row mask ``[N, 1]`` False); validation
and test are fully observed. The suggested likelihood is Bernoulli for both settings of
``binarize``, since the pixels stay in [0, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits
from pogm.data.sources.bars import (
    QUADRANTS,
    _check_int,
    _check_prob,
    drop_groups,
    quadrant_layout,
    split_quadrants,
)
from pogm.data.sources.mnist import load_mnist


def load_mnist_quadrants(binarize: bool = True, n_valid: int = 10000, missing: float = 0.0, seed: int = 0, download: bool = True) -> DataSplits:
    """MNIST as four quadrant groups (see the module docstring).

    Args:
        binarize: dynamic binarisation (True) or grey levels in [0, 1] (False).
        n_valid: last training images held out for validation (0: ``valid=None``).
        missing: probability that a training quadrant is missing, in [0, 1).
        seed: seeds the choice of missing quadrants.
        download: allow downloading mnist.npz into ``~/.cache/pogm`` when no local copy is found.
    """
    missing = _check_prob("missing", missing, closed_high=False)
    seed = _check_int("seed", seed, 0)
    if not isinstance(binarize, (bool, np.bool_)):
        raise ValueError(f"binarize must be True or False, got {binarize!r}")  # noqa: TRY004 (an option error)
    base = load_mnist(binarize=bool(binarize), n_valid=n_valid, download=download)
    layout = quadrant_layout(28, 28)
    path = base.info["path"]

    def convert(part: str, data: PartialDataset | None) -> PartialDataset | None:
        if data is None:
            return None
        x = split_quadrants(data.x["x"], layout)
        if part == "train":
            x, masks = drop_groups(x, missing, np.random.default_rng([seed, 0]))
        else:
            masks = {q: torch.ones(1, 1, dtype=torch.bool) for q in x}
        return PartialDataset(
            x=x, x_mask=masks, y=data.y, y_mask=data.y_mask, num_classes=data.num_classes, binarize=data.binarize, name=f"mnist-quadrants-{part}"
        )

    train = convert("train", base.train)
    valid = convert("valid", base.valid)
    test = convert("test", base.test)
    del base  # the image tensors are no longer needed
    return DataSplits(
        train=train,
        valid=valid,
        test=test,
        info={
            "source": "mnist-quadrants",
            "path": path,
            "groups": list(QUADRANTS),
            "group_dims": {q: 196 for q in QUADRANTS},
            "likelihood": "bernoulli",
            "layout": layout,
            "image_shape": layout["image_shape"],
            "num_classes": 10,
            "binarize": bool(binarize),
            "n_valid": n_valid,
            "missing": missing,
            "seed": seed,
            "model_defaults": {"likelihood": "bernoulli"},
            "train_defaults": {"epochs": 50, "batch_size": 100},
        },
    )


__all__ = ["load_mnist_quadrants"]
