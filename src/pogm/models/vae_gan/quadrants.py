"""Image quadrants: what the CVAE conditions on and what its completions show (Chen, Fang & Ju 2016)."""

from __future__ import annotations

import torch
from torch import Tensor

QUADRANT_NAMES = ("q0", "q1", "q2", "q3")


def quadrant_grid(image_shape: tuple[int, ...] | list[int]) -> Tensor:
    """Bool ``[4, H, W]``: the pixels of quadrants q0 (top-left), q1 (top-right), q2 (bottom-left)
    and q3 (bottom-right). The top and left halves take ``H // 2`` rows and ``W // 2`` columns."""
    height, width = int(image_shape[-2]), int(image_shape[-1])
    top = (torch.arange(height) < height // 2)[:, None]  # [H, 1]
    left = (torch.arange(width) < width // 2)[None, :]  # [1, W]
    return torch.stack([top & left, top & ~left, ~top & left, ~top & ~left])  # [4, H, W]
