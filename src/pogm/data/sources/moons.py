"""Two interleaving half-moons (scikit-learn's ``make_moons``): a 2-D, 2-class toy set.

Features are standardised with the training set's mean and standard deviation; shapes [N, 2].
"""

from __future__ import annotations

import numpy as np

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits


def load_moons(
    n_samples: int = 1000, n_valid: int = 500, n_test: int = 1000, noise: float = 0.1, seed: int = 0
) -> DataSplits:
    """Draw ``n_samples`` training, ``n_valid`` validation and ``n_test`` test points with ``seed``.

    ``n_valid=0`` gives ``valid=None``.
    """
    from sklearn.datasets import make_moons

    if n_samples < 2 or n_test < 1 or n_valid < 0:
        raise ValueError(f"need n_samples >= 2, n_test >= 1, n_valid >= 0; got {n_samples}, {n_test}, {n_valid}")
    x, y = make_moons(n_samples=n_samples + n_valid + n_test, noise=noise, random_state=seed)
    # make_moons orders the points by moon; shuffle before splitting so every part has both classes.
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order].astype(np.int64)
    mean, std = x[:n_samples].mean(0), x[:n_samples].std(0)
    x = (x - mean) / std

    def make(a: int, b: int, part: str) -> PartialDataset:
        return PartialDataset.from_arrays(x[a:b], y[a:b], num_classes=2, name=f"moons-{part}")

    return DataSplits(
        train=make(0, n_samples, "train"),
        valid=make(n_samples, n_samples + n_valid, "valid") if n_valid else None,
        test=make(n_samples + n_valid, len(y), "test"),
        info={
            "source": "moons",
            "n_samples": n_samples,
            "noise": noise,
            "seed": seed,
            "mean": mean.tolist(),
            "std": std.tolist(),
            "num_classes": 2,
            "likelihood": "gaussian-learned",  # real-valued points: models with a likelihood option use a Gaussian
        },
    )
