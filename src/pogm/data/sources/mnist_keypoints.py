"""MNIST digits under random affine warps, labelled with where 5 reference points land ("keypoints").

A stand-in for face images with landmarks (the Hybrid VAE's MultiPIE and CelebA, not obtainable
here): real images whose continuous label h is a set of 2-D points that move with the image.

How it is made: each MNIST digit (keras ``mnist.npz``, found like ``"mnist"``: ``$POGM_DATA``,
``~/.cache/pogm``, else downloaded) is padded with 2 zero pixels on each side to 32x32 (the
canonical frame) and warped by its own random affine map about the canvas centre,
``p -> c + R(rotation) Shear(shear) diag(sx, sy) (p - c) + t``, with rotation uniform in
``+-rotation`` degrees, sx and sy independently uniform in ``[scale_min, scale_max]``, a horizontal
shear uniform in ``+-shear`` and a translation uniform in ``+-translate`` pixels on each axis. The
warp is applied with ``torch.nn.functional.grid_sample`` (bilinear, zeros outside,
``align_corners=False``) and the result is re-quantised to 8 bits (``k / 255``), as if the warped
images had been saved as 8-bit images; the datasets are marked ``dequantize=256``. The warps come
from a generator seeded by ``split_seed`` (one stream for the 60,000 training images, one for the
10,000 test images), so the data set is fixed whatever the run seed. With the defaults the warps
keep a digit inside the canvas: the median digit loses none of its ink, 99% lose under 1.5%, the
worst about 5%.

Labels h: the warped positions of 5 fixed reference points of the canonical frame, chosen like the
5 face landmarks of CelebA (two eyes, nose, two mouth corners): the centres of the four corner
pixels of the central 20x20 box (the box that holds an MNIST digit), pixels (row, col) (6, 6),
(6, 25), (25, 6) and (25, 25), and the canvas centre (16, 16 in pixel units), ordered
``p0`` top-left, ``p1`` top-right, ``p2`` centre, ``p3`` bottom-left, ``p4`` bottom-right. Coordinates
are normalised by the image size, x = column, y = row, with pixel (row i, col j) centred at
``((j + 0.5) / 32, (i + 0.5) / 32)``; h is laid out ``[x_0, y_0, x_1, y_1, ..., x_4, y_4]`` (D = 10).
A corner point may land slightly outside the canvas under a strong warp (with the defaults h
stays within about [-0.08, 1.08]).

Split: the first 50,000 training images train, the last ``n_valid`` (10,000) validate, the 10,000
test images test.

Task loss: ``{"kind": "point_to_point", "num_points": 5, "normaliser": [0, 1]}``: the mean over
the points of the Euclidean distance between predicted and true point, divided by the true
distance between p0 and p1 (the two "eyes"; the analogue of the inter-ocular normalisation).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits
from pogm.data.sources.files import torch_threads
from pogm.data.sources.mnist import find_mnist

PAD = 2
SIZE = 28 + 2 * PAD
# Reference points in pixel units (x = column, y = row; pixel j spans [j, j + 1], centre j + 0.5).
REFERENCE_POINTS_PX = np.array(
    [[6.5, 6.5], [25.5, 6.5], [16.0, 16.0], [6.5, 25.5], [25.5, 25.5]], dtype=np.float64
)
POINT_NAMES = ["top_left", "top_right", "centre", "bottom_left", "bottom_right"]
NUM_POINTS = len(REFERENCE_POINTS_PX)
Y_NAMES = [f"p{i}_{c}" for i in range(NUM_POINTS) for c in ("x", "y")]


def reference_points() -> np.ndarray:
    """The reference points normalised by the image size, ``[P, 2]`` as (x, y) in [0, 1]."""
    return REFERENCE_POINTS_PX / SIZE


def sample_warps(
    n: int,
    generator: torch.Generator,
    rotation: float = 25.0,
    scale_min: float = 0.8,
    scale_max: float = 1.15,
    shear: float = 0.2,
    translate: float = 2.5,
    size: int = SIZE,
) -> torch.Tensor:
    """``n`` random forward maps canonical -> warped, as float64 ``[n, 2, 3]`` in normalised coordinates.

    Normalised coordinates are those of ``affine_grid`` with ``align_corners=False``: ``u = 2 p - 1``
    for a position p in [0, 1] (image size units), so the canvas centre is 0. A forward map is
    ``u -> B u + b``.
    """
    u = torch.rand(n, 6, generator=generator, dtype=torch.float64)
    angle = (2 * u[:, 0] - 1) * math.radians(rotation)
    sx = scale_min + (scale_max - scale_min) * u[:, 1]
    sy = scale_min + (scale_max - scale_min) * u[:, 2]
    sh = (2 * u[:, 3] - 1) * shear
    t = (2 * u[:, 4:6] - 1) * translate * 2.0 / size  # pixels -> normalised units (2 per image width)
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shear_m = torch.zeros(n, 2, 2, dtype=torch.float64)
    shear_m[:, 0, 0] = 1
    shear_m[:, 1, 1] = 1
    shear_m[:, 0, 1] = sh
    scale = torch.diag_embed(torch.stack([sx, sy], -1))
    b = rot @ shear_m @ scale
    return torch.cat([b, t[:, :, None]], dim=2)


def warp_points(forward: torch.Tensor, points: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Where points ``[P, 2]`` (x, y in [0, 1]) of the canonical frame land under ``forward`` ``[n, 2, 3]``.

    Returns ``[n, P, 2]`` in [0, 1] image-size units.
    """
    p = torch.as_tensor(points, dtype=torch.float64) * 2 - 1
    u = torch.einsum("nij,pj->npi", forward[:, :, :2], p) + forward[:, None, :, 2]
    return (u + 1) / 2


def _theta(forward: torch.Tensor) -> torch.Tensor:
    b_inv = torch.linalg.inv(forward[:, :, :2])
    return torch.cat([b_inv, -(b_inv @ forward[:, :, 2:])], dim=2)


def _warp_chunk(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def make_keypoint_images(
    digits: np.ndarray, generator: torch.Generator, chunk: int = 1024, **warp: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 digits ``[n, 28, 28]`` -> (warped images float32 ``[n, 1, 32, 32]`` on the k/255 grid, h ``[n, 10]``)."""
    n = len(digits)
    forward = sample_warps(n, generator, **warp)
    theta = _theta(forward).to(torch.float32)
    src = torch.from_numpy(np.ascontiguousarray(digits))
    out = torch.empty(n, 1, SIZE, SIZE, dtype=torch.float32)
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        x = F.pad(src[sl].to(torch.float32), (PAD, PAD, PAD, PAD))[:, None].div_(255.0)
        out[sl] = _warp_chunk(x, theta[sl]).clamp_(0, 1).mul_(255.0).round_().div_(255.0)
    h = warp_points(forward, reference_points()).reshape(n, -1).to(torch.float32)
    return out, h


def _seed(split_seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([split_seed, stream]).generate_state(1)[0])


def load_mnist_keypoints(
    n_valid: int = 10000,
    split_seed: int = 0,
    rotation: float = 25.0,
    scale_min: float = 0.8,
    scale_max: float = 1.15,
    shear: float = 0.2,
    translate: float = 2.5,
    download: bool = True,
) -> DataSplits:
    """Load warped MNIST digits with 5 keypoints as continuous labels (see the module docstring).

    Args:
        n_valid: how many of the last training images validate (0: ``valid=None``).
        split_seed: seed of the warps (the data set), independent of any run seed.
        rotation: maximum absolute rotation, degrees (0 to 90).
        scale_min, scale_max: range of the scale factors along x and y (0 < min <= max <= 2).
        shear: maximum absolute horizontal shear (0 to 1).
        translate: maximum absolute translation per axis, pixels (0 to 8).
        download: allow downloading MNIST into ``~/.cache/pogm``.
    """
    for name, v in (("n_valid", n_valid), ("split_seed", split_seed)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
            raise ValueError(f"{name} must be an integer >= 0, got {v!r}")
    for name, v, lo, hi in (("rotation", rotation, 0, 90), ("shear", shear, 0, 1), ("translate", translate, 0, 8)):
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not lo <= v <= hi:
            raise ValueError(f"{name} must be a number in [{lo}, {hi}], got {v!r}")
    if not (isinstance(scale_min, (int, float)) and isinstance(scale_max, (int, float)) and 0 < scale_min <= scale_max <= 2):
        raise ValueError(f"need 0 < scale_min <= scale_max <= 2, got scale_min={scale_min!r}, scale_max={scale_max!r}")
    warp = {"rotation": float(rotation), "scale_min": float(scale_min), "scale_max": float(scale_max), "shear": float(shear), "translate": float(translate)}
    path = find_mnist(download_if_missing=download)
    with np.load(path, allow_pickle=False) as f:
        x_train, x_test = f["x_train"], f["x_test"]
    if n_valid >= len(x_train):
        raise ValueError(f"n_valid must be < {len(x_train)} (the training images), got {n_valid}")
    with torch_threads(1):
        xs_train, h_train = make_keypoint_images(x_train, torch.Generator().manual_seed(_seed(split_seed, 0)), **warp)
        xs_test, h_test = make_keypoint_images(x_test, torch.Generator().manual_seed(_seed(split_seed, 1)), **warp)
    n_train = len(x_train) - n_valid

    def make(x: torch.Tensor, h: torch.Tensor, part: str) -> PartialDataset:
        return PartialDataset(x={"x": x.contiguous()}, y=h.contiguous(), dequantize=256, name=f"mnist-keypoints-{part}")

    return DataSplits(
        train=make(xs_train[:n_train], h_train[:n_train], "train"),
        valid=make(xs_train[n_train:], h_train[n_train:], "valid") if n_valid else None,
        test=make(xs_test, h_test, "test"),
        info={
            "source": "mnist-keypoints",
            "path": str(path),
            "image_shape": [1, SIZE, SIZE],
            "y_dim": 2 * NUM_POINTS,
            "y_names": list(Y_NAMES),
            "point_names": list(POINT_NAMES),
            "reference_points": reference_points().tolist(),
            "num_classes": None,
            "dequantize": 256,
            "task_loss": {"kind": "point_to_point", "num_points": NUM_POINTS, "normaliser": [0, 1]},
            "warp": warp,
            "split_seed": int(split_seed),
            "n_train": n_train,
            "n_valid": int(n_valid),
            "n_test": len(x_test),
            "model_defaults": {"likelihood": "gaussian:0.1"},  # a fixed variance: see the docstring of pogm.models.hybrid.hybrid
        },
    )
