"""MNIST (LeCun, Cortes & Burges) in the keras ``mnist.npz`` layout.

The file is looked for, in order, in each folder of ``$POGM_DATA`` (``os.pathsep``-separated; a path
to the file itself also works), then in ``~/.cache/pogm``; if absent it is downloaded from the
keras mirror into ``~/.cache/pogm`` (``download=False`` forbids that). Every file is checked against
its sha256 once per process. The lookup itself lives in `pogm.data.sources.files`.

Split (Kingma et al. 2014; Maaløe et al. 2016): the first 50,000 training images for training, the
last 10,000 for validation, the 10,000 test images for testing. Pixels are scaled to [0, 1] as
float32 ``[N, 1, 28, 28]``; ``binarize=True`` (default) marks them as Bernoulli probabilities for
dynamic binarisation.

``unlabelled_valid=True`` adds the validation images to the training set as unlabelled rows (their
labels hidden), so that a semi-supervised model learns from 60,000 unlabelled images: the protocol
of Maaløe et al.'s published training code for the ADGM and SDGM. Labelled examples are still drawn
from the first 50,000 only, and the validation split still scores the same 10,000 images, whose
labels the model never sees (it has seen the images, unlabelled, so the validation error is then a
transductive score; the test images stay unseen).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits, files
from pogm.data.sources.files import cache_dir, sha256_of

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
FILENAME = "mnist.npz"
WHAT = "the keras mnist.npz"


def candidate_paths() -> list[Path]:
    """Where `find_mnist` looks, in order."""
    return files.candidate_paths(FILENAME)


def download(dest: Path, url: str = URL, expected: str = SHA256, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through a temporary file, checking its sha256 before the rename."""
    return files.download(Path(dest), url, expected, timeout=timeout)


def find_mnist(download_if_missing: bool = True) -> Path:
    """The path of a verified ``mnist.npz``: found locally, or downloaded into the cache.

    Raises:
        FileNotFoundError: if no file is found and downloading is off or fails.
        ValueError: if the file found has another sha256.
    """
    return files.find_file(FILENAME, SHA256, what=WHAT, url=URL, download_if_missing=download_if_missing)


def load_mnist(binarize: bool = True, n_valid: int = 10000, download: bool = True, unlabelled_valid: bool = False) -> DataSplits:
    """Load MNIST: 50,000 train / 10,000 valid / 10,000 test (with the default ``n_valid``).

    Args:
        binarize: True (default) for dynamic binarisation; False keeps grey levels in [0, 1].
        n_valid: how many of the last training images to hold out for validation (0: ``valid=None``).
        download: allow downloading into ``~/.cache/pogm`` when no local file is found.
        unlabelled_valid: also train on the validation images, unlabelled (Maaløe et al.'s code:
            60,000 unlabelled images); the validation split is unchanged.
    """
    path = find_mnist(download_if_missing=download)
    with np.load(path, allow_pickle=False) as f:
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    if not 0 <= n_valid < len(x_train):
        raise ValueError(f"n_valid must be in [0, {len(x_train)}), got {n_valid}")
    if unlabelled_valid and not n_valid:
        raise ValueError("unlabelled_valid=true adds the validation images to the training set, but n_valid=0 holds none out; set n_valid > 0 or drop unlabelled_valid")

    def make(x: np.ndarray, y: np.ndarray, part: str) -> PartialDataset:
        x = (x.astype(np.float32) / np.float32(255.0))[:, None]
        return PartialDataset.from_arrays(x, y.astype(np.int64), num_classes=10, binarize=binarize, name=f"mnist-{part}")

    n_train = len(x_train) - n_valid
    y_pool = y_train[:n_train].astype(np.int64)
    if unlabelled_valid:
        y_pool = np.concatenate([y_pool, np.full(n_valid, -1, dtype=np.int64)])  # -1: unlabelled row
    return DataSplits(
        train=make(x_train if unlabelled_valid else x_train[:n_train], y_pool, "train"),
        valid=make(x_train[n_train:], y_train[n_train:], "valid") if n_valid else None,
        test=make(x_test, y_test, "test"),
        info={
            "source": "mnist",
            "path": str(path),
            "sha256": SHA256,
            "binarize": binarize,
            "n_valid": n_valid,
            "unlabelled_valid": unlabelled_valid,
            "image_shape": [1, 28, 28],
            "num_classes": 10,
        },
    )


__all__ = ["FILENAME", "SHA256", "URL", "cache_dir", "candidate_paths", "download", "find_mnist", "load_mnist", "sha256_of"]
