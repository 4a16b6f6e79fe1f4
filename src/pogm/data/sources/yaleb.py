"""Cropped Extended Yale Face Database B at 64x64, with the light direction as a continuous label.

The data: 2,414 grey face images of 38 people (59-64 each), each lit by one point light source.
h = the light direction, (azimuth, elevation), scaled to [0, 1]:
``y = [(azimuth + 130) / 260, (elevation + 40) / 130]`` (azimuth -130..130 degrees, elevation
-40..90 degrees, 64 distinct directions; ``info["y_ranges_deg"]`` gives the ranges to undo it).
Real face images with a continuous label, the kind of data the Hybrid VAE (Tulyakov et al.) is
about; its own face sets (MultiPIE, CelebA) are not obtainable here.

Source: the ``CroppedYale/`` folder of the original distribution, as committed in the public
repository Uranium2/recognition at commit 55008b5f2ab707eb7ae4464daa727d30b858d488 (the folder is
gone from the repository's later commits, and the next commit holds partly downscaled copies).

How the file was made (`build_yaleb_npz` repeats it): each 168x192 (w x h) ``yaleBxx_P00A{az}E{el}.pgm``
was centre-cropped to 168x168 (rows 12..179) and resized to 64x64 with PIL's Lanczos filter; the
light direction comes from the file name. Excluded: the 38 ``*_Ambient.pgm`` images (no light
direction, uncropped) and the 18 files the distribution itself marks ``*.pgm.bad``. Rows are in
sorted file-name order. The file ``extended_yaleb_cropped_64.npz`` holds images uint8 [2414, 64, 64],
labels float32 [2414, 2], azimuth_deg and elevation_deg float32 [2414], subject int16 [2414],
subject_names [38] and filenames [2414].

Finding the file: ``$POGM_DATA`` (folders or file paths), then ``~/.cache/pogm``; there is no
public download of the prepared file, so on a machine without it the loader downloads the
repository archive at that commit and rebuilds the file into the cache, checking that the rebuilt
``images`` and ``labels`` arrays are byte-for-byte the reference ones (sha256 of their bytes).

Pixels: float32 ``uint8 / 255`` as ``[N, 1, 64, 64]``, marked ``dequantize=256`` (8-bit grey levels).

Split (``split_seed``, independent of any run seed): ``split="random"`` shuffles all images and
takes ``n_test`` for test, the next ``n_valid`` for validation and the rest for training, as the
paper shuffles its sets (default 314 / 200 / 1,900); ``split="subject"`` holds out whole people
instead, adding subjects in a seeded random order until at least ``n_test`` (then ``n_valid``)
images are held out, so those sizes are rounded up to whole subjects.

Task loss: the Euclidean distance between the predicted and the true h (the paper's hand-pose task
loss), ``{"kind": "l2"}``.

Licence and citation: the repository states no licence for this data. The Extended Yale Face
Database B is distributed by its authors for research use only: do not redistribute it (nor the
prepared file). Its authors ask users to cite
A. S. Georghiades, P. N. Belhumeur, D. J. Kriegman, "From Few to Many: Illumination Cone Models for
Face Recognition under Variable Lighting and Pose", IEEE TPAMI 23(6), 2001; and
K. C. Lee, J. Ho, D. Kriegman, "Acquiring Linear Subspaces for Face Recognition under Variable
Lighting", IEEE TPAMI 27(5), 2005.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
import tempfile
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits, files

FILENAME = "extended_yaleb_cropped_64.npz"
SHA256 = "b8e09499ce34c945f7969a9d46d0316aefb8e5ddacfecd1d96d6f6404144daf6"
WHAT = "the cropped Extended Yale B faces at 64x64"
COMMIT = "55008b5f2ab707eb7ae4464daa727d30b858d488"
ARCHIVE_URL = f"https://codeload.github.com/Uranium2/recognition/tar.gz/{COMMIT}"
# sha256 of the bytes of the reference arrays (C order): images uint8 [2414, 64, 64] and labels
# float32 [2414, 2]. The sha256 of the archive itself is unknown (it could not be fetched where this
# was written, and GitHub's generated archives are not guaranteed byte-stable), so a rebuild is
# checked by the arrays it yields instead.
IMAGES_SHA256 = "751f7e4bd91c49b65babc40706cca426ed7c2c7c2c574bd16d27df1bc4577389"
LABELS_SHA256 = "160b390757c2aa86ec232a97a7979a1d9aac9eaf6c176460587d60f5d2d28279"
N_IMAGES = 2414
IMAGE_SIZE = 64
Y_NAMES = ["light_azimuth", "light_elevation"]
AZIMUTH_RANGE = (-130.0, 130.0)
ELEVATION_RANGE = (-40.0, 90.0)

_NAME = re.compile(r"^(yaleB\d\d)_P00A([+-]\d{3})E([+-]\d{2})\.pgm$")


def array_sha256(a: np.ndarray) -> str:
    """sha256 of an array's bytes in C order."""
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _content_ok(path: Path) -> bool:
    """True if the npz at ``path`` holds the reference ``images`` and ``labels`` arrays."""
    with np.load(path, allow_pickle=False) as f:
        images, labels = f["images"], f["labels"]
    return (
        images.dtype == np.uint8
        and images.shape == (N_IMAGES, IMAGE_SIZE, IMAGE_SIZE)
        and labels.dtype == np.float32
        and labels.shape == (N_IMAGES, 2)
        and array_sha256(images) == IMAGES_SHA256
        and array_sha256(labels) == LABELS_SHA256
    )


def _preprocess(data: bytes, name: str) -> np.ndarray:
    """One original 168x192 pgm -> uint8 [64, 64]: crop rows 12..179, Lanczos resize."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        if im.size != (168, 192):
            raise ValueError(f"{name} is {im.size[0]}x{im.size[1]} (w x h); the cropped Yale B images are 168x192")
        im = im.convert("L") if im.mode != "L" else im
        out = im.crop((0, 12, 168, 180)).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
        return np.asarray(out, dtype=np.uint8)


def _arrays_from_archive(fileobj, source: str) -> dict[str, np.ndarray]:
    """Read the ``CroppedYale/`` images of a (streamed) ``.tar.gz`` into the file's arrays."""
    found: dict[str, np.ndarray] = {}
    try:
        with tarfile.open(fileobj=fileobj, mode="r|gz") as tar:
            for member in tar:
                parts = PurePosixPath(member.name).parts
                if not member.isfile() or "CroppedYale" not in parts[:-1] or not _NAME.match(parts[-1]):
                    continue  # also skips *_Ambient.pgm and *.pgm.bad
                f = tar.extractfile(member)
                if f is None:
                    continue
                if parts[-1] in found:
                    raise ValueError(f"{source} holds {parts[-1]} twice")
                found[parts[-1]] = _preprocess(f.read(), parts[-1])
    except (tarfile.TarError, zlib.error, EOFError) as err:
        raise ValueError(f"{source} could not be read as a .tar.gz archive ({err}); the download was cut off or is not that archive") from err
    if not found:
        raise ValueError(f"{source} holds no CroppedYale/yaleBxx/yaleBxx_P00A...E....pgm images")
    names = sorted(found)
    parsed = [_NAME.match(n) for n in names]
    subject_names = sorted({m.group(1) for m in parsed})
    index = {s: i for i, s in enumerate(subject_names)}
    azimuth = np.array([float(m.group(2)) for m in parsed], dtype=np.float32)
    elevation = np.array([float(m.group(3)) for m in parsed], dtype=np.float32)
    lo_a, hi_a = np.float32(AZIMUTH_RANGE[0]), np.float32(AZIMUTH_RANGE[1] - AZIMUTH_RANGE[0])
    lo_e, hi_e = np.float32(ELEVATION_RANGE[0]), np.float32(ELEVATION_RANGE[1] - ELEVATION_RANGE[0])
    labels = np.stack([(azimuth - lo_a) / hi_a, (elevation - lo_e) / hi_e], axis=1).astype(np.float32)
    return {
        "images": np.stack([found[n] for n in names]).astype(np.uint8),
        "labels": labels,
        "azimuth_deg": azimuth,
        "elevation_deg": elevation,
        "subject": np.array([index[m.group(1)] for m in parsed], dtype=np.int16),
        "subject_names": np.array(subject_names),
        "filenames": np.array(names),
    }


def build_yaleb_npz(
    dest: str | os.PathLike,
    archive: str | os.PathLike | None = None,
    url: str = ARCHIVE_URL,
    images_sha256: str = IMAGES_SHA256,
    labels_sha256: str = LABELS_SHA256,
    timeout: float = 120.0,
) -> Path:
    """Rebuild ``extended_yaleb_cropped_64.npz`` at ``dest`` from the original distribution.

    Streams the GitHub archive of Uranium2/recognition at commit 55008b5f (or reads a local
    ``archive``), preprocesses ``CroppedYale/`` as the module docstring describes, and saves the
    arrays only if the sha256 of the ``images`` and ``labels`` bytes are the reference ones.

    Raises:
        ValueError: if the archive is unreadable or the arrays differ from the reference ones (then
            nothing is saved).
        urllib.error.URLError, OSError, TimeoutError: if the download fails (e.g. offline).
    """
    dest = Path(dest)
    if archive is not None:
        with open(archive, "rb") as f:
            arrays = _arrays_from_archive(f, str(archive))
    else:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            arrays = _arrays_from_archive(response, url)
    got = {"images": array_sha256(arrays["images"]), "labels": array_sha256(arrays["labels"])}
    want = {"images": images_sha256, "labels": labels_sha256}
    bad = [k for k in got if got[k] != want[k]]
    if bad:
        shapes = ", ".join(f"{k} {arrays[k].dtype} {list(arrays[k].shape)} sha256 {got[k]} (expected {want[k]})" for k in bad)
        raise ValueError(
            f"the Yale B arrays rebuilt from {archive or url} differ from the reference ones: {shapes}; the "
            f"archive is not the expected CroppedYale/ folder (or PIL's Lanczos resampling changed); "
            f"{dest} was not written"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **arrays)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return dest


def find_yaleb(download_if_missing: bool = True) -> Path:
    """The path of a verified ``extended_yaleb_cropped_64.npz``: found locally, or rebuilt into the cache.

    A file is accepted if it is the reference file (sha256) or holds the reference arrays (a rebuild).

    Raises:
        FileNotFoundError: if no file is found and rebuilding is off or fails (e.g. offline).
        ValueError: if the file found is not the data set, or a rebuild gives other arrays.
    """
    return files.find_file(
        FILENAME,
        SHA256,
        what=WHAT,
        build=build_yaleb_npz,
        content_ok=_content_ok,
        download_if_missing=download_if_missing,
    )


def _subject_split(subject: np.ndarray, n_test: int, n_valid: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    order = rng.permutation(int(subject.max()) + 1)
    counts = np.bincount(subject, minlength=len(order))
    held: list[list[int]] = [[], []]
    k = 0
    for part, need in enumerate((n_test, n_valid)):
        total = 0
        while total < need:
            if k >= len(order):
                raise ValueError(f"split='subject' ran out of subjects holding out n_test={n_test}, n_valid={n_valid} images")
            held[part].append(int(order[k]))
            total += int(counts[order[k]])
            k += 1
    test = np.flatnonzero(np.isin(subject, held[0]))
    valid = np.flatnonzero(np.isin(subject, held[1]))
    train = np.flatnonzero(~np.isin(subject, held[0] + held[1]))
    return train, valid, test


def load_yaleb(
    n_test: int = 314,
    n_valid: int = 200,
    split_seed: int = 0,
    split: str = "random",
    download: bool = True,
) -> DataSplits:
    """Load the cropped Extended Yale B faces with light-direction labels (see the module docstring).

    Args:
        n_test: images held out for testing (rounded up to whole subjects with ``split="subject"``).
        n_valid: images held out for validation (0: ``valid=None``).
        split_seed: seed of the split, independent of any run seed.
        split: ``"random"`` (shuffle images) or ``"subject"`` (hold out whole people).
        download: allow rebuilding the file into ``~/.cache/pogm`` from the original distribution.
    """
    if split not in ("random", "subject"):
        raise ValueError(f"split must be 'random' or 'subject', got {split!r}")
    for name, v, lo in (("n_test", n_test, 1), ("n_valid", n_valid, 0), ("split_seed", split_seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if n_test + n_valid >= N_IMAGES:
        raise ValueError(
            f"need n_test >= 1, n_valid >= 0 and n_test + n_valid < {N_IMAGES} (the number of images) to leave "
            f"training images; got n_test={n_test}, n_valid={n_valid}"
        )
    path = find_yaleb(download_if_missing=download)
    with np.load(path, allow_pickle=False) as f:
        images, labels, subject = f["images"], f["labels"], f["subject"].astype(np.int64)
        subject_names = [str(s) for s in f["subject_names"]]
    rng = np.random.default_rng(split_seed)
    if split == "random":
        order = rng.permutation(len(images))
        test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    else:
        train, valid, test = _subject_split(subject, n_test, n_valid, rng)
        if len(train) == 0:
            raise ValueError(f"split='subject' with n_test={n_test}, n_valid={n_valid} leaves no training subjects")
    x_all = torch.from_numpy(images[:, None].astype(np.float32) / np.float32(255.0))
    y_all = torch.from_numpy(labels.astype(np.float32))

    def make(index: np.ndarray, part: str) -> PartialDataset:
        index = torch.from_numpy(np.sort(index))
        return PartialDataset(x={"x": x_all[index].contiguous()}, y=y_all[index].contiguous(), dequantize=256, name=f"yaleb-{part}")

    def names(index: np.ndarray) -> list[str]:
        return [subject_names[i] for i in np.unique(subject[index])]

    info = {
        "source": "yaleb",
        "path": str(path),
        "sha256": SHA256,
        "image_shape": [1, IMAGE_SIZE, IMAGE_SIZE],
        "y_dim": 2,
        "y_names": list(Y_NAMES),
        "y_ranges_deg": {"light_azimuth": list(AZIMUTH_RANGE), "light_elevation": list(ELEVATION_RANGE)},
        "num_classes": None,
        "dequantize": 256,
        "task_loss": {"kind": "l2"},
        "split": split,
        "split_seed": int(split_seed),
        "n_train": len(train),
        "n_valid": len(valid),
        "n_test": len(test),
        "model_defaults": {"likelihood": "gaussian:0.1"},  # a fixed variance: see the docstring of pogm.models.hybrid.hybrid
    }
    if split == "subject":
        info["test_subjects"] = names(test)
        info["valid_subjects"] = names(valid)
    return DataSplits(
        train=make(train, "train"),
        valid=make(valid, "valid") if len(valid) else None,
        test=make(test, "test"),
        info=info,
    )
