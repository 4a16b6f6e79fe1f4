"""``bars``: synthetic images of horizontal bars split into four quadrant groups (factVAE, sec. 4.1).

Each image is ``size x size`` (``size`` even). Every ROW of pixels is switched on independently with
probability ``p_on`` (value 1, else 0), then Gaussian noise of std ``noise`` is added. The image is
cut into its four quadrants, each one a group, flattened row-major to ``[N, (size/2)^2]``:

    q0 | q1        q0 = top-left,    q1 = top-right
    ---+---        q2 = bottom-left, q3 = bottom-right
    q2 | q3

All activity is horizontal, so q0 and q1 share their rows (and q2 and q3), while the left and right
halves share nothing beyond that: a model should find latent components shared by the top two
quadrants and by the bottom two, none linking only left with right.

In the TRAINING split each quadrant is missing independently with probability ``missing`` (never all
four of a row: one is then put back at random), so the actual fraction missing is slightly below
``missing`` (by ``missing^4 / 4``). Missing quadrants are zero-filled and their mask is False. The
validation and test splits are fully observed.

Groups are flat float32 ``[N, D_g]`` with per-row masks ``[N, 1]`` (``[1, 1]`` all-True when always
observed). ``info["layout"]`` says how to put the quadrants back together (`assemble_quadrants`).
The quadrant helpers here are shared with ``mnist-quadrants``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits

QUADRANTS = ("q0", "q1", "q2", "q3")


def quadrant_layout(height: int, width: int, channels: int = 1) -> dict[str, Any]:
    """The JSON layout of four quadrant groups of a ``channels x height x width`` image."""
    if height % 2 or width % 2:
        raise ValueError(f"quadrants need an even height and width, got {height}x{width}")
    h, w = height // 2, width // 2
    return {
        "kind": "quadrants",
        "image_shape": [channels, height, width],
        "quadrants": {"q0": [0, 0, h, w], "q1": [0, w, h, w], "q2": [h, 0, h, w], "q3": [h, w, h, w]},
    }


def split_quadrants(images: Tensor | np.ndarray, layout: Mapping[str, Any]) -> dict[str, Tensor]:
    """Images ``[N, C, H, W]`` (or ``[N, H, W]``) -> ``{q: float32 [N, C*h*w]}``, each quadrant
    flattened row-major (channel, row, column)."""
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x[:, None]
    out = {}
    for q, (r, c, h, w) in layout["quadrants"].items():
        out[q] = x[:, :, r : r + h, c : c + w].reshape(len(x), -1).to(torch.float32).contiguous()
    return out


def assemble_quadrants(
    values: Mapping[str, Tensor | None], layout: Mapping[str, Any], masks: Mapping[str, Tensor] | None = None, fill: float = 0.0
) -> Tensor:
    """The inverse of `split_quadrants`: ``{q: [N, D_q]}`` -> images ``[N, C, H, W]``.

    A quadrant that is absent or None, and rows whose mask (``[N, 1]`` or ``[1, 1]``) is False, are
    filled with ``fill`` (e.g. 0.5 to show missing quadrants as grey).
    """
    c, hh, ww = layout["image_shape"]
    present = [v for v in values.values() if v is not None]
    if not present:
        raise ValueError("assemble_quadrants needs at least one quadrant")
    n = present[0].shape[0]
    ref = present[0]
    out = torch.full((n, c, hh, ww), float(fill), dtype=ref.dtype, device=ref.device)
    for q, (r, col, h, w) in layout["quadrants"].items():
        v = values.get(q)
        if v is None:
            continue
        block = v.reshape(n, c, h, w)
        if masks is not None and q in masks:
            m = masks[q].reshape(-1, 1, 1, 1).to(torch.bool)
            block = torch.where(m, block, torch.full((), float(fill), dtype=block.dtype, device=block.device))
        out[:, :, r : r + h, col : col + w] = block
    return out


def drop_groups(x: dict[str, Tensor], missing: float, rng: np.random.Generator) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Make each group of each row missing with probability ``missing``, never all groups of a row.

    Returns zero-filled copies of the groups and per-row bool masks ``[N, 1]`` (True = observed); with
    ``missing == 0`` the groups are returned as they are with ``[1, 1]`` all-True masks.
    """
    names = list(x)
    n = next(iter(x.values())).shape[0]
    if missing == 0:
        return dict(x), {k: torch.ones(1, 1, dtype=torch.bool) for k in names}
    gone = rng.random((n, len(names))) < missing
    # Rows with every group missing get one group back, chosen uniformly.
    all_gone = np.flatnonzero(gone.all(axis=1))
    gone[all_gone, rng.integers(0, len(names), size=len(all_gone))] = False
    observed = torch.from_numpy(~gone)
    xs, masks = {}, {}
    for g, k in enumerate(names):
        m = observed[:, g : g + 1].contiguous()
        xs[k] = torch.where(m, x[k], torch.zeros((), dtype=x[k].dtype))
        masks[k] = m
    return xs, masks


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _check_prob(name: str, value: Any, closed_high: bool = True) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1{']' if closed_high else ')'}, got {value!r}") from None
    if not (0.0 <= v <= 1.0) or (not closed_high and v >= 1.0):
        hint = "; 1 would leave nothing observed" if not closed_high else ""
        raise ValueError(f"{name} must be in [0, 1{']' if closed_high else ')'}, got {value!r}{hint}")
    return v


def bars_images(n: int, size: int, p_on: float, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` noisy bar images float32 ``[n, 1, size, size]`` and their row activations bool ``[n, size]``."""
    rows = rng.random((n, size)) < p_on
    images = np.repeat(rows[:, :, None].astype(np.float32), size, axis=2)
    if noise > 0:
        images += (noise * rng.standard_normal((n, size, size))).astype(np.float32)
    return images[:, None], rows


def load_bars(
    size: int = 8,
    n_train: int = 2000,
    n_valid: int = 500,
    n_test: int = 500,
    p_on: float = 0.3,
    noise: float = 0.1,
    missing: float = 0.25,
    seed: int = 0,
) -> DataSplits:
    """Synthetic horizontal-bar images as four quadrant groups q0..q3 (see the module docstring).

    Args:
        size: image side (even, >= 2).
        n_train, n_valid, n_test: split sizes (``n_valid=0``: ``valid=None``).
        p_on: probability that a row of pixels is on.
        noise: std of the additive Gaussian noise (>= 0); also the std of the suggested likelihood
            (floored at 0.01 so that ``noise=0`` still gives a proper density).
        missing: probability that a training quadrant is missing, in [0, 1).
        seed: the splits are a deterministic function of ``seed`` (and each split's own size: the
            test set does not change with ``n_train``).
    """
    size = _check_int("size", size, 2)
    if size % 2:
        raise ValueError(f"size must be even (the image is cut into four equal quadrants), got {size}")
    n_train = _check_int("n_train", n_train, 1)
    n_valid = _check_int("n_valid", n_valid, 0)
    n_test = _check_int("n_test", n_test, 1)
    p_on = _check_prob("p_on", p_on)
    missing = _check_prob("missing", missing, closed_high=False)
    try:
        noise = float(noise)
    except (TypeError, ValueError):
        raise ValueError(f"noise must be a number >= 0 (a standard deviation), got {noise!r}") from None
    if not noise >= 0 or noise == float("inf"):
        raise ValueError(f"noise must be a finite number >= 0 (a standard deviation), got {noise!r}")
    seed = _check_int("seed", seed, 0)

    layout = quadrant_layout(size, size)

    def make(part: str, n: int, k: int) -> PartialDataset:
        # One independent stream per split, so each split depends on the seed and its own size only.
        rng = np.random.default_rng([seed, k])
        images, _ = bars_images(n, size, p_on, noise, rng)
        x = split_quadrants(images, layout)
        if part == "train":
            x, masks = drop_groups(x, missing, rng)
        else:
            masks = {q: torch.ones(1, 1, dtype=torch.bool) for q in x}
        return PartialDataset(x=x, x_mask=masks, name=f"bars-{part}")

    dim = (size // 2) ** 2
    likelihood = f"gaussian:{max(noise, 0.01):g}"
    return DataSplits(
        train=make("train", n_train, 0),
        valid=make("valid", n_valid, 1) if n_valid else None,
        test=make("test", n_test, 2),
        info={
            "source": "bars",
            "groups": list(QUADRANTS),
            "group_dims": {q: dim for q in QUADRANTS},
            "likelihood": likelihood,
            "layout": layout,
            "image_shape": layout["image_shape"],
            "num_classes": None,
            "size": size,
            "n_train": n_train,
            "n_valid": n_valid,
            "n_test": n_test,
            "p_on": p_on,
            "noise": noise,
            "missing": missing,
            "seed": seed,
            "model_defaults": {"likelihood": likelihood},
            "train_defaults": {"epochs": max(20, 400_000 // n_train), "batch_size": 100},
        },
    )


__all__ = ["QUADRANTS", "assemble_quadrants", "bars_images", "drop_groups", "load_bars", "quadrant_layout", "split_quadrants"]
