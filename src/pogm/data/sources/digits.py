"""scikit-learn's bundled 8x8 handwritten digits: the embedded default, no download needed.

1797 images of 8x8 pixels with 17 grey levels (0..16), scaled to [0, 1] and shaped [N, 1, 8, 8];
10 classes. Split (stratified, seeded) into 1197 train / 300 valid / 300 test by default.
Source: UCI "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak, 1998).
"""

from __future__ import annotations

import numpy as np

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits


def load_digits(seed: int = 0, binarize: bool = True, n_valid: int = 300, n_test: int = 300) -> DataSplits:
    """Load the digits, split stratified by class with ``seed``.

    Args:
        seed: seed of the train / valid / test split.
        binarize: True (default) marks the grey levels as Bernoulli probabilities for dynamic
            binarisation; False keeps grey levels.
        n_valid: validation rows (0 gives ``valid=None``).
        n_test: test rows.
    """
    from sklearn.datasets import load_digits as sk_load_digits
    from sklearn.model_selection import train_test_split

    raw = sk_load_digits()
    x = (raw.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    y = raw.target.astype(np.int64)
    n = len(y)
    if n_test <= 0 or n_valid < 0 or n_valid + n_test >= n:
        raise ValueError(f"need n_test >= 1, n_valid >= 0 and n_valid + n_test < {n}; got {n_valid}, {n_test}")
    idx = np.arange(n)
    rest, test = train_test_split(idx, test_size=n_test, stratify=y, random_state=seed)
    if n_valid:
        train, valid = train_test_split(rest, test_size=n_valid, stratify=y[rest], random_state=seed)
    else:
        train, valid = rest, None

    def make(rows: np.ndarray, part: str) -> PartialDataset:
        rows = np.sort(rows)
        return PartialDataset.from_arrays(x[rows], y[rows], num_classes=10, binarize=binarize, name=f"digits-{part}")

    return DataSplits(
        train=make(train, "train"),
        valid=None if valid is None else make(valid, "valid"),
        test=make(test, "test"),
        info={"source": "digits", "seed": seed, "binarize": binarize, "image_shape": [1, 8, 8], "num_classes": 10},
    )
