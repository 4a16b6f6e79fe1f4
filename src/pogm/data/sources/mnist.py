"""MNIST (LeCun, Cortes & Burges) in the keras ``mnist.npz`` layout.

The file is looked for, in order, in each folder of ``$POGM_DATA`` (``os.pathsep``-separated; a path
to the file itself also works), then in ``~/.cache/pogm``; if absent it is downloaded from the
keras mirror into ``~/.cache/pogm`` (``download=False`` forbids that). Every file is checked against
its sha256 once per process.

Split (Kingma et al. 2014; Maaløe et al. 2016): the first 50,000 training images for training, the
last 10,000 for validation, the 10,000 test images for testing. Pixels are scaled to [0, 1] as
float32 ``[N, 1, 28, 28]``; ``binarize=True`` (default) marks them as Bernoulli probabilities for
dynamic binarisation.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits

URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
SHA256 = "06af5dfe73b70e3bc1c36439982b18a8d76803db9b544f6fdf838a37fbb01b64"
FILENAME = "mnist.npz"

# (resolved path, size, mtime) -> sha256, so each file is hashed once per process.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def cache_dir() -> Path:
    """The download cache, ``~/.cache/pogm``."""
    return Path.home() / ".cache" / "pogm"


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, expected: str = SHA256) -> None:
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_of(path)
    if _VERIFIED[key] != expected:
        raise ValueError(
            f"{path} has sha256 {_VERIFIED[key]}, expected {expected} (the keras mnist.npz); the file is corrupt "
            f"or a different data set: replace it, or delete it to download it again"
        )


def candidate_paths() -> list[Path]:
    """Where `find_mnist` looks, in order."""
    paths = []
    for entry in os.environ.get("POGM_DATA", "").split(os.pathsep):
        if entry:
            p = Path(entry).expanduser()
            paths.append(p if p.suffix == ".npz" else p / FILENAME)
    paths.append(cache_dir() / FILENAME)
    return paths


def download(dest: Path, url: str = URL, expected: str = SHA256, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` through a temporary file, checking its sha256 before the rename."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
            for chunk in iter(lambda: response.read(1 << 20), b""):
                h.update(chunk)
                f.write(chunk)
        if h.hexdigest() != expected:
            raise ValueError(f"download of {url} has sha256 {h.hexdigest()}, expected {expected}; not saved")
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def find_mnist(download_if_missing: bool = True) -> Path:
    """The path of a verified ``mnist.npz``: found locally, or downloaded into the cache.

    Raises:
        FileNotFoundError: if no file is found and downloading is off or fails.
    """
    candidates = candidate_paths()
    for p in candidates:
        if p.is_file():
            _verify(p)
            return p
    looked = ", ".join(str(p) for p in candidates)
    hint = "set POGM_DATA to a folder holding the keras mnist.npz"
    if not download_if_missing:
        raise FileNotFoundError(f"mnist.npz not found (looked in {looked}) and download=False; {hint}")
    dest = cache_dir() / FILENAME
    try:
        download(dest)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        raise FileNotFoundError(
            f"mnist.npz not found (looked in {looked}) and downloading {URL} failed ({err}); "
            f"if this machine is offline, {hint}"
        ) from err
    _verify(dest)
    return dest


def load_mnist(binarize: bool = True, n_valid: int = 10000, download: bool = True) -> DataSplits:
    """Load MNIST: 50,000 train / 10,000 valid / 10,000 test (with the default ``n_valid``).

    Args:
        binarize: True (default) for dynamic binarisation; False keeps grey levels in [0, 1].
        n_valid: how many of the last training images to hold out for validation (0: ``valid=None``).
        download: allow downloading into ``~/.cache/pogm`` when no local file is found.
    """
    path = find_mnist(download_if_missing=download)
    with np.load(path, allow_pickle=False) as f:
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    if not 0 <= n_valid < len(x_train):
        raise ValueError(f"n_valid must be in [0, {len(x_train)}), got {n_valid}")

    def make(x: np.ndarray, y: np.ndarray, part: str) -> PartialDataset:
        x = (x.astype(np.float32) / np.float32(255.0))[:, None]
        return PartialDataset.from_arrays(x, y.astype(np.int64), num_classes=10, binarize=binarize, name=f"mnist-{part}")

    n_train = len(x_train) - n_valid
    return DataSplits(
        train=make(x_train[:n_train], y_train[:n_train], "train"),
        valid=make(x_train[n_train:], y_train[n_train:], "valid") if n_valid else None,
        test=make(x_test, y_test, "test"),
        info={
            "source": "mnist",
            "path": str(path),
            "sha256": SHA256,
            "binarize": binarize,
            "n_valid": n_valid,
            "image_shape": [1, 28, 28],
            "num_classes": 10,
        },
    )
