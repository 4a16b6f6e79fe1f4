"""Plotting helpers shared by every figure: image grids, saving a PNG, the display scale of small
images. Nothing here knows about models; each model family draws its own figures with these."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

HIDDEN_GREY = 0.5  # hidden (unobserved) pixels are drawn in this grey


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


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    pyplot().close(fig)
    return path


def image_shape_of(data) -> tuple[int, ...] | None:
    """``(C, H, W)`` of the data's main group ``x`` when it holds images (one or three channels), else None."""
    shape = data.train.shapes.get("x")
    if shape is None or len(shape) != 3 or shape[0] not in (1, 3):
        return None
    return shape


def display_scale(image_shape) -> int:
    """How many screen pixels per image pixel a grid gets: 4 for 8x8 digits, 2 from 16x16 up."""
    return max(2, 32 // int(image_shape[-1]))


def show_image(ax, image: Tensor) -> None:
    """One ``[C, H, W]`` image in [0, 1] on ``ax`` (grey levels for one channel)."""
    image = image.detach().float().cpu().clamp(0, 1)
    if image.shape[0] == 1:
        ax.imshow(image[0].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    else:
        ax.imshow(image.permute(1, 2, 0).numpy())
    ax.set_xticks([]), ax.set_yticks([])


def draw_rows(rows: list[Tensor], labels: list[str], path: str | Path, column_titles: list[str] | None = None) -> Path:
    """A grid of images: ``rows[r]`` is ``[N, C, H, W]``, labelled on the left."""
    plt = pyplot()
    count = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), count, figsize=(0.9 * count + 1.6, 0.9 * len(rows) + (0.3 if column_titles else 0)), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(count):
            show_image(axes[r, c], images[c])
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    for c, title in enumerate(column_titles or []):
        axes[0, c].set_title(title, fontsize=7)
    return save_figure(fig, path)
