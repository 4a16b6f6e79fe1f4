"""A run's figures: `write_run_figures` draws every figure its model and data allow (the model
family's own, `pogm.models.base.Model.figures`, else `pogm.models.figures.standard_figures`), and
`write_samples` writes a grid of samples for ``pogm sample``."""

from __future__ import annotations

from pathlib import Path

import torch

from pogm.models.figures import standard_figures
from pogm.plotting import image_shape_of, save_image_grid


def write_samples(run, path: Path, n: int = 64, y: int | None = None, per_class: bool = False, scale: int = 1) -> Path:
    """A PNG grid of samples; ``per_class`` gives one row per class.

    Raises:
        ValueError: the run's data are not images (`image_shape_of`), or ``y`` / ``per_class``
            for a model without classes.
    """
    shape = image_shape_of(run.data)
    if shape is None:
        raise ValueError(
            f"{run.config['model']} on this data draws no images: x has rows of shape {list(run.data.train.shapes.get('x', ()))}, "
            "not [C, H, W] with 1 or 3 channels; train on images (say their shape with --set data.image_shape=[C,H,W])"
        )
    num_classes = run.model.sampled_classes()
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


def write_run_figures(run, out: Path | None = None) -> list[Path]:
    """Every figure the run's model and data allow, written to ``out`` (default ``RUN/figures``):
    the model family's own figures (factVAE, CVAE, DRAW, HALI, hybrid VAEs), else the standard
    ones (`pogm.models.figures.standard_figures`)."""
    out = Path(out) if out else Path(run.run_dir) / "figures"
    run.model.eval()
    paths = run.model.figures(run.data, out, labelled_index=run.labelled_index, run_dir=run.run_dir)
    if paths is None:
        paths = standard_figures(run.model, run.data, out, run.labelled_index)
    return paths
