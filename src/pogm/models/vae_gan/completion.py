"""Image completion with a conditional model (Chen, Fang & Ju's (2016) "CVAE for image completion" and
"CVAE for style transfer"; Sohn et al. 2015, sec. 5):

* `quadrant_masks`, `left_half_mask`, `pattern_masks`: which pixels a condition shows, as bool
  ``[1, C, H, W]`` masks (quadrants q0 top-left, q1 top-right, q2 bottom-left, q3 bottom-right).
* `completion_log_likelihoods`: the importance-sampled conditional log-likelihood of the missing
  pixels given 1, 2 or 3 quadrants and given the left half, beside the conditional ELBO.
* `completion_grid`, `style_grid`, `cvae_figures`: the figures (hidden pixels drawn grey, 0.5).

Every function reads the model through `conditional_log_likelihood`, `conditional_elbo`,
`complete`, `transfer_style` and `sample`; masks are explicit bool tensors, never pixel values.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from pogm.data.batch import Batch
from pogm.data.sources import DataSplits
from pogm.plotting import HIDDEN_GREY, draw_rows, pyplot, save_figure, show_image
from pogm.models.vae_gan.quadrants import QUADRANT_NAMES, quadrant_grid

SETTINGS = ("1 quadrant", "2 quadrants", "3 quadrants", "left half")


def quadrant_masks(image_shape: Sequence[int], observed_quadrants: Sequence[str]) -> Tensor:
    """Bool ``[1, C, H, W]``: True on the pixels of the named quadrants (``"q0"`` .. ``"q3"``)."""
    unknown = sorted(set(observed_quadrants) - set(QUADRANT_NAMES))
    if unknown:
        raise ValueError(f"unknown quadrant(s) {unknown}; the quadrants are {list(QUADRANT_NAMES)} (top-left, top-right, bottom-left, bottom-right)")
    grid = quadrant_grid(image_shape)  # [4, H, W]
    chosen = torch.tensor([name in observed_quadrants for name in QUADRANT_NAMES])
    mask = grid[chosen].any(0) if chosen.any() else torch.zeros_like(grid[0])  # [H, W]
    channels = int(image_shape[0]) if len(image_shape) == 3 else 1
    return mask.expand(1, channels, *mask.shape).clone()


def left_half_mask(image_shape: Sequence[int]) -> Tensor:
    """Bool ``[1, C, H, W]``: the left half, q0 + q2."""
    return quadrant_masks(image_shape, ("q0", "q2"))


def patterns_of(count: int) -> list[tuple[str, ...]]:
    """The C(4, count) subsets of ``count`` quadrants, in a fixed order."""
    return list(itertools.combinations(QUADRANT_NAMES, count))


def pattern_masks(image_shape: Sequence[int]) -> dict[str, Tensor]:
    """The standard evaluation patterns: every subset of 1, 2 and 3 quadrants, named like
    ``"q0"`` or ``"q0+q2"``, then ``"left half"`` (the same pixels as ``"q0+q2"``)."""
    masks = {"+".join(p): quadrant_masks(image_shape, p) for n in (1, 2, 3) for p in patterns_of(n)}
    masks["left half"] = left_half_mask(image_shape)
    return masks


def setting_patterns(setting: str) -> list[tuple[str, ...]]:
    """The patterns a setting of `SETTINGS` cycles through."""
    if setting == "left half":
        return [("q0", "q2")]
    return patterns_of(int(setting.split()[0]))


def cycled_masks(image_shape: Sequence[int], setting: str, index: Tensor) -> Tensor:
    """Bool ``[B, C, H, W]``: image ``i`` (``index``) gets pattern ``i mod C(4, n)`` of the setting."""
    masks = torch.cat([quadrant_masks(image_shape, p) for p in setting_patterns(setting)])  # [P, C, H, W]
    return masks[index.cpu() % len(masks)]


def _test_split(data):
    """The evaluated images: the test split of `DataSplits` (or a dataset), binarised the way
    `pogm.evaluate.metrics.evaluation_view` does."""
    from pogm.data.dataset import evaluation_view

    return evaluation_view(data.test if isinstance(data, DataSplits) else data)


@torch.no_grad()
def completion_log_likelihoods(model, dataset, k: int = 1000, limit: int = 1000, batch_size: int = 250, progress: bool = False) -> dict:
    """The conditional log-likelihood of the missing pixels given part of each image.

    For each number n of observed quadrants (1, 2, 3), image i of the first ``limit`` test images
    shows pattern ``i mod C(4, n)`` (`patterns_of`); then every image shows its left half. For each
    setting: the mean importance-sampled log p(x_missing | x_shown) with ``k`` samples
    (``model.conditional_log_likelihood``) and the one-sample conditional ELBO, in nats per image
    and per missing pixel (total nats over total missing pixels). Test images are binarised the
    way `evaluation_view` does; pixels missing in the data are neither shown nor scored.
    """
    view = _test_split(dataset)
    if limit is not None and limit < len(view):
        view = view.subset(torch.arange(limit))
    n = len(view)
    image_shape = tuple(view.x["x"].shape[1:])
    pixels = math.prod(image_shape)
    # Memory: one chunk of samples holds [chunk, B, D] likelihood parameters; keep it near 8M values.
    chunk = max(1, min(k, 8_000_000 // max(1, min(batch_size, n) * pixels)))
    model.eval()
    results: dict = {"k": k, "images": n, "condition": model.config.condition}
    for setting in SETTINGS:
        sums = {"ll": 0.0, "elbo": 0.0, "missing": 0.0}
        starts = range(0, n, batch_size)
        for start in tqdm(starts, desc=f"log p(missing | {setting}), k={k}", disable=not progress, leave=False):
            index = torch.arange(start, min(start + batch_size, n))
            batch = view.batch(index).to(model.device)
            observed = cycled_masks(image_shape, setting, index).to(model.device)  # [B, C, H, W]
            data_mask = batch.x_mask["x"].expand(batch.x["x"].shape)
            sums["missing"] += float((data_mask & ~observed).sum())
            sums["ll"] += float(model.conditional_log_likelihood(batch, observed, k=k, chunk_size=chunk).sum())
            sums["elbo"] += float(model.conditional_elbo(batch, observed).sum())
        missing = max(sums["missing"], 1.0)
        results[setting] = {
            "patterns": ["+".join(p) for p in setting_patterns(setting)],
            "nats_per_image": sums["ll"] / n,
            "nats_per_missing_pixel": sums["ll"] / missing,
            "elbo_per_image": sums["elbo"] / n,
            "elbo_per_missing_pixel": sums["elbo"] / missing,
            "missing_pixels_per_image": sums["missing"] / n,
        }
    return results


@torch.no_grad()
def completion_grid(model, data, path: str | Path, n: int = 8, samples: int = 2) -> Path:
    """Completions of ``n`` test images: the truth, then for 1, 2 and 3 observed quadrants (image i
    shows pattern ``i mod C(4, n)``) and the left half, what the model is given (hidden pixels grey)
    and ``samples`` completions with z ~ p(z | c) (observed pixels kept)."""
    test = _test_split(data)
    index = torch.arange(min(n, len(test)))
    batch = test.batch(index).to(model.device)
    x, data_mask = batch.x["x"], batch.x_mask["x"].expand(batch.x["x"].shape)
    image_shape = tuple(x.shape[1:])
    grey = torch.full((), HIDDEN_GREY, dtype=x.dtype, device=x.device)
    rows, labels = [torch.where(data_mask, x, grey)], ["truth"]
    for setting in SETTINGS:
        shown = data_mask & cycled_masks(image_shape, setting, index).to(x.device)  # [B, C, H, W]
        given = Batch(x={"x": torch.where(shown, x, torch.zeros((), dtype=x.dtype, device=x.device))}, x_mask={"x": shown}, y=batch.y, y_mask=batch.y_mask)
        rows.append(torch.where(shown, x, grey))
        labels.append(f"given {setting}")
        completions = model.complete(given, samples=samples)  # [S, B, C, H, W]
        rows += list(completions)
        labels += ["completed"] * samples
    return draw_rows(rows, labels, path)


@torch.no_grad()
def style_grid(model, data, path: str | Path, n: int = 8) -> Path:
    """The poster's style transfer: the first column holds ``n`` test digits, then one column per
    label, each the digit's style z (the mean of q(z | x, y)) decoded with that label."""
    test = _test_split(data)
    batch = test.batch(torch.arange(min(n, len(test)))).to(model.device)
    x = batch.x["x"]
    styled = model.transfer_style(batch)  # [B, K, D]
    K = styled.shape[1]
    plt = pyplot()
    fig, axes = plt.subplots(len(x), K + 1, figsize=(0.8 * (K + 1) + 0.4, 0.8 * len(x) + 0.4), squeeze=False)
    for r in range(len(x)):
        show_image(axes[r, 0], x[r])
        for c in range(K):
            show_image(axes[r, c + 1], styled[r, c].reshape(x.shape[1:]))
    axes[0, 0].set_title("input", fontsize=7)
    for c in range(K):
        axes[0, c + 1].set_title(f"y={c}", fontsize=7)
    return save_figure(fig, path)


@torch.no_grad()
def samples_per_class(model, data, path: str | Path, per_class: int = 8) -> Path:
    """One row of samples of p(x | y) per class y (nothing of the image shown)."""
    K = int(model.config.num_classes)
    image_shape = tuple(int(s) for s in model.config.image_shape)
    labels = torch.arange(K, device=model.device).repeat_interleave(per_class)
    images = model.sample(len(labels), labels).reshape(K, per_class, *image_shape)
    return draw_rows(list(images), [f"y={y}" for y in range(K)], path)


def cvae_figures(model, data, out_dir: str | Path) -> list[Path]:
    """The figures the model's condition allows: ``completions.png`` (partial images: "partial",
    "both"), ``style-transfer.png`` and ``samples-per-class.png`` (labels: "label", "both")."""
    model.eval()
    out_dir = Path(out_dir)
    condition = model.config.condition
    paths = []
    if condition in ("partial", "both"):
        paths.append(completion_grid(model, data, out_dir / "completions.png"))
    if condition in ("label", "both"):
        paths.append(style_grid(model, data, out_dir / "style-transfer.png"))
        paths.append(samples_per_class(model, data, out_dir / "samples-per-class.png"))
    return paths


__all__ = [
    "SETTINGS", "completion_grid", "draw_rows", "completion_log_likelihoods", "cvae_figures", "cycled_masks", "left_half_mask",
    "pattern_masks", "patterns_of", "quadrant_masks", "samples_per_class", "style_grid",
]
