"""DRAW's figures: the canvas over its T steps (Gregor et al. 2015, Fig. 7), with the image
figures of every model (samples per class, reconstructions, completions)."""

from __future__ import annotations

from pathlib import Path

import torch

from pogm.models.figures import image_figures
from pogm.plotting import image_grid, pyplot, save_figure


@torch.no_grad()
def draw_sequence(model, image_shape, path: str | Path, n: int = 8, columns: int | None = None, y=None, seed: int = 0) -> Path:
    """The DRAW sequence: one row per sample, the canvas sigmoid(c_t) after every step t, left to
    right (or after ``columns`` evenly spaced steps, always ending with the last); conditional DRAW
    draws the classes in turn unless ``y`` is given."""
    model.eval()
    torch.manual_seed(seed)
    canvases = model.canvas_sequence(n, y)  # [T, n, D]
    T = canvases.shape[0]
    columns = T if columns is None else columns
    steps = sorted({round(i * (T - 1) / max(columns - 1, 1)) for i in range(min(columns, T))})
    frames = canvases[steps].transpose(0, 1).reshape(n * len(steps), *image_shape)  # row = sample, column = step
    plt = pyplot()
    grid = image_grid(frames, nrow=len(steps))
    cell_inches = 0.55 if len(steps) <= 20 else 0.3
    fig, ax = plt.subplots(figsize=(cell_inches * len(steps) + 0.8, cell_inches * n + 0.6))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0)
    cell = image_shape[-1] + 1
    ticks = range(0, len(steps), 1 if len(steps) <= 20 else 4)  # every step labelled, or every fourth
    ax.set_xticks([cell * i + cell / 2 for i in ticks], [f"t={steps[i] + 1}" for i in ticks], fontsize=6, rotation=90)
    labels = model.sample_labels(n, y) if model.conditional else None
    if labels is not None:
        ax.set_yticks([cell * i + cell / 2 for i in range(n)], [f"y={int(k)}" for k in labels.argmax(-1)], fontsize=6)
    else:
        ax.set_yticks([])
    ax.set_title(f"canvas over {T} steps", fontsize=8)
    return save_figure(fig, path)


def draw_figures(model, data, out: Path) -> list[Path]:
    """DRAW's figures: the canvas sequence (``draw-sequence.png``, one sequence per class for
    conditional DRAW), samples (per class), reconstructions and completions."""
    shape = data.train.shapes["x"]
    num_classes = model.sampled_classes()
    paths = [draw_sequence(model, shape, Path(out) / "draw-sequence.png", n=num_classes or 8)]
    return paths + image_figures(model, data, out)
