"""Figures: image grids of samples, each written as a PNG."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile ``[N, C, H, W]`` (or ``[N, H, W]``) images in [0, 1] into one ``[H', W']`` or ``[H', W', 3]`` array."""
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects [N, 1 or 3, H, W] or [N, H, W], got {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.ones((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i].clamp(0, 1).numpy()
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write an image grid as a PNG (grey levels for one channel); ``scale`` enlarges each pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images, nrow)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    plt.imsave(path, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0)
    return path


def write_samples(run, path: Path, n: int = 64, y: int | None = None, per_class: bool = False, scale: int = 1) -> Path:
    """A PNG grid of samples; ``per_class`` gives one row per class."""
    shape = run.data.train.x["x"].shape[1:]
    num_classes = getattr(run.model.config, "num_classes", None)
    if (per_class or y is not None) and not num_classes:
        raise ValueError(f"{run.config['model']} has no classes to condition on; drop --y / --per-class")
    if y is not None and not 0 <= y < num_classes:
        raise ValueError(f"--y must be a class in [0, {num_classes}), got {y}")
    if per_class:
        per_row = max(1, n // num_classes)
        labels = torch.arange(num_classes).repeat_interleave(per_row)
        images = run.model.sample(len(labels), labels)
        return save_image_grid(images.reshape(len(labels), *shape), path, nrow=per_row, scale=scale)
    images = run.model.sample(n, y)
    return save_image_grid(images.reshape(n, *shape), path, scale=scale)
