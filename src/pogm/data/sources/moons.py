"""Two interleaving half-moons (scikit-learn's ``make_moons``): a 2-D, 2-class toy set.

Features are standardised with the training set's mean and standard deviation; shapes [N, 2].

Labelled points: with ``label_placement="spread"`` (the default) ``--labels n`` labels n points
per class spread evenly along each moon, at arc angles i pi / (n - 1) (for n = 3: both ends and
the middle), as the ADGM paper's experiment places its 6 labels (left, middle, right of each moon);
``"random"`` draws them class-balanced at random like every other source. Where the labels sit
matters: with 3 random labels per class the auxiliary models' accuracy depends on the draw.
"""

from __future__ import annotations

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits


def load_moons(
    n_samples: int = 1000,
    n_valid: int = 500,
    n_test: int = 1000,
    noise: float = 0.1,
    seed: int = 0,
    label_placement: str = "spread",
) -> DataSplits:
    """Draw ``n_samples`` training, ``n_valid`` validation and ``n_test`` test points with ``seed``.

    ``n_valid=0`` gives ``valid=None``.
    """
    from sklearn.datasets import make_moons

    if label_placement not in ("spread", "random"):
        raise ValueError(f"label_placement must be 'spread' or 'random', got {label_placement!r}")
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

    arc = _arc_angle(x[:n_samples] * std + mean, y[:n_samples])
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
            # Settings suited to 2-D points with 1,000 examples, used unless a recipe or --set says
            # otherwise: a Gaussian likelihood with the generating noise (in standardised units of
            # the wider axis) and a one-dimensional z, so that each class is a curve and the classes
            # must come from y; small networks; enough epochs for ~1,000 steps.
            "model_defaults": {"likelihood": f"gaussian:{noise / float(std.max()):.3g}", "z_dim": 1, "a_dim": 2, "hidden": [100, 100]},
            "train_defaults": {"epochs": max(10, 100_000 // n_samples), "lr": 1e-3},
            "label_placement": label_placement,
        },
        label_split=(lambda n, seed: spread_labels(arc, y[:n_samples], n)) if label_placement == "spread" else None,
    )


def _arc_angle(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Position of each (unstandardised) point along its moon, an angle in about [0, pi]:
    moon 0 is (cos t, sin t), moon 1 is (1 - cos t, 1/2 - sin t) (scikit-learn's make_moons)."""
    t = np.where(y == 0, np.arctan2(x[:, 1], x[:, 0]), np.arctan2(0.5 - x[:, 1], 1.0 - x[:, 0]))
    return np.where(t < -np.pi / 2, t + 2 * np.pi, t)  # noise below the axis at the t = pi end


def spread_labels(arc: np.ndarray, y: np.ndarray, n_per_class: int) -> torch.Tensor:
    """Indices of ``n_per_class`` points per moon nearest to the arc angles i pi / (n - 1) (pi / 2 for n = 1)."""
    if n_per_class < 0:
        raise ValueError(f"labels per class must be >= 0, got {n_per_class}")
    chosen: list[int] = []
    for moon in (0, 1):
        rows = np.flatnonzero(y == moon)
        if len(rows) < n_per_class:
            raise ValueError(f"moon {moon} has {len(rows)} training points, fewer than the {n_per_class} labels asked for")
        free = np.ones(len(rows), dtype=bool)
        for i in range(n_per_class):
            target = np.pi * i / (n_per_class - 1) if n_per_class > 1 else np.pi / 2
            distance = np.abs(arc[rows] - target)
            distance[~free] = np.inf
            best = int(distance.argmin())
            free[best] = False
            chosen.append(int(rows[best]))
    return torch.tensor(sorted(chosen), dtype=torch.long)
