"""What a group-sparse model learned and how it fills in missing groups (Ainsworth et al. 2018):

* `latent_sharing`: how much two groups share latent dimensions, from the column norms of Phi.
* `sparsity_heatmap`: the latent-dimension by group heat map of Figs. 2 and 4.
* `hide_groups` / `imputation_errors`: conditional reconstruction of the groups left out of a
  chosen observed subset, scored against the truth and against the training mean.
* `quadrant_completions` (bars, MNIST quadrants) and `pose_completions` (motion capture, Fig. 3).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.plotting import pyplot, save_figure


def latent_sharing(pattern: Tensor) -> Tensor:
    """``[G, G]`` overlap of the groups' latent dimensions, from the ``[G, K]`` column norms.

    Each group's norms are scaled by their largest; the overlap of groups a and b is
    ``sum_j min(n_aj, n_bj) / sum_j max(n_aj, n_bj)``: 1 when both use the same dimensions equally,
    0 when no dimension reaches both. A group with no dimension at all shares nothing.
    """
    peak = pattern.max(dim=1, keepdim=True).values  # [G, 1]
    scaled = torch.where(peak > 0, pattern / torch.where(peak > 0, peak, torch.ones_like(peak)), torch.zeros_like(pattern))  # [G, K]
    low = torch.minimum(scaled[:, None, :], scaled[None, :, :]).sum(-1)  # [G, G]
    high = torch.maximum(scaled[:, None, :], scaled[None, :, :]).sum(-1)
    return torch.where(high > 0, low / torch.where(high > 0, high, torch.ones_like(high)), torch.zeros_like(high))


def sparsity_heatmap(model, path: str | Path, title: str | None = None) -> Path:
    """The heat map of ``model.sparsity_pattern()``: groups down, latent dimensions across, each
    cell ||Phi^(g)_{:, j}|| scaled by the largest; exact zeros are marked with a dot."""
    pattern = model.sparsity_pattern().cpu()  # [G, K]
    scaled = (pattern / pattern.max().clamp_min(torch.finfo(pattern.dtype).tiny)).numpy()
    groups = list(model.config.group_names)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(0.35 * scaled.shape[1] + 2.0, 0.4 * len(groups) + 1.4))
    image = ax.imshow(scaled, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    rows, cols = np.nonzero(pattern.numpy() == 0)
    ax.scatter(cols, rows, s=6, c="white", marker="o", label="exactly zero")
    ax.set_yticks(range(len(groups)), groups)
    ax.set_xticks(range(scaled.shape[1]), [str(j + 1) for j in range(scaled.shape[1])], fontsize=7)
    ax.set_xlabel("latent dimension j")
    lam = model.config.sparsity  # every factVAE-family config has the lambda of eq. 9
    ax.set_title(title or f"{type(model).__name__}: column norms of Phi (lambda = {lam:g})", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    return save_figure(fig, path)


def hide_groups(batch: Batch, observed: Sequence[str]) -> Batch:
    """The batch with every group not in ``observed`` marked missing (and zero-filled)."""
    unknown = sorted(set(observed) - set(batch.x))
    if unknown:
        raise ValueError(f"unknown group(s) {unknown}; the data's groups are {list(batch.x)}")
    x, masks = {}, {}
    for g, value in batch.x.items():
        keep = batch.x_mask[g].expand(len(batch), *batch.x_mask[g].shape[1:])
        if g not in observed:
            keep = torch.zeros_like(keep)
        x[g] = torch.where(keep, value, torch.zeros((), dtype=value.dtype, device=value.device))
        masks[g] = keep
    return Batch(x=x, x_mask=masks, y=batch.y, y_mask=batch.y_mask)


@torch.no_grad()
def observed_means(dataset, groups: Sequence[str], chunk_size: int = 4096) -> dict[str, Tensor]:
    """Per group, the mean ``[1, ...]`` of the training values over the entries that are observed
    (the guess without the model; 0 where an entry is never observed), read in chunks so that a
    memory-mapped training set works."""
    from pogm.data.streams import iterate_batches

    totals: dict[str, Tensor] = {}
    counts: dict[str, Tensor] = {}
    for batch in iterate_batches(dataset, chunk_size):
        for g in groups:
            observed = batch.x_mask[g].expand_as(batch.x[g])  # [B, ...]
            totals[g] = totals.get(g, 0) + torch.where(observed, batch.x[g], 0.0).sum(0, keepdim=True)  # [1, ...]
            counts[g] = counts.get(g, 0) + observed.sum(0, keepdim=True)  # [1, ...]
    return {g: totals[g] / counts[g].clamp(min=1) for g in groups}


@torch.no_grad()
def imputation_errors(model, batch: Batch, observed: Sequence[str], train_mean: dict[str, Tensor] | None = None) -> dict[str, dict[str, float]]:
    """Mean squared error per hidden group of the model's conditional reconstruction from the
    ``observed`` groups, beside the error of the training mean (the guess without the model)."""
    filled = model.impute(hide_groups(batch, observed))
    errors = {}
    for g in batch.x:
        if g in observed:
            continue
        truth = batch.x[g]
        errors[g] = {"model_mse": float(((filled[g] - truth) ** 2).mean())}
        if train_mean is not None:
            errors[g]["mean_mse"] = float(((train_mean[g].to(truth) - truth) ** 2).mean())
    return errors


@torch.no_grad()
def quadrant_completions(model, data, observed_sets: Sequence[Sequence[str]], path: str | Path, n: int = 8) -> Path:
    """For each observed subset: the true images, what the model is given (missing quadrants grey),
    and its completion (observed quadrants kept), as the paper's Fig. 2 (left)."""
    from pogm.data.sources.bars import assemble_quadrants
    from pogm.data.dataset import evaluation_view

    layout = data.info["layout"]
    test = evaluation_view(data.test)
    batch = test.batch(torch.arange(min(n, len(test)))).to(model.device)
    rows, labels = [assemble_quadrants(batch.x, layout)], ["truth"]
    for observed in observed_sets:
        hidden = hide_groups(batch, observed)
        rows.append(assemble_quadrants(hidden.x, layout, hidden.x_mask, fill=0.5))
        rows.append(assemble_quadrants(model.impute(hidden), layout))
        labels += [f"given {'+'.join(observed)}", "completed"]
    plt = pyplot()
    count = rows[0].shape[0]
    fig, axes = plt.subplots(len(rows), count, figsize=(0.9 * count + 1.6, 0.9 * len(rows)), squeeze=False)
    for r, (images, label) in enumerate(zip(rows, labels)):
        for c in range(count):
            ax = axes[r, c]
            ax.imshow(images[c, 0].cpu().numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    return save_figure(fig, path)


@torch.no_grad()
def pose_completions(model, data, observed: Sequence[str], path: str | Path, n: int = 6) -> Path:
    """Motion capture poses reconstructed from the ``observed`` groups only (the paper's Fig. 3):
    ``n`` frames spread over the test trial."""
    from pogm.data.sources.mocap import load_skeleton
    from pogm.models.factvae.mocap_figures import pose_figure

    test = data.test
    index = torch.linspace(0, len(test) - 1, n).round().long()
    batch = test.batch(index).to(model.device)
    filled = model.impute(hide_groups(batch, observed))
    inputs = [{g: v[i].cpu() for g, v in batch.x.items()} for i in range(len(index))]
    outputs = [{g: v[i].cpu() for g, v in filled.items()} for i in range(len(index))]
    titles = [f"frame {int(i)}" for i in index]
    return pose_figure(load_skeleton(data.info), data.info, inputs, outputs, list(observed), path, titles=titles)


def default_observed_sets(info: dict) -> list[list[str]]:
    """The subsets the figures condition on: the left half and one quadrant for images, the core
    for motion capture (Fig. 3), else the first group."""
    kind = (info.get("layout") or {}).get("kind")
    groups = list(info.get("groups") or [])
    if kind == "quadrants":
        return [["q0", "q2"], ["q0"], ["q0", "q1", "q2"]]
    if kind == "skeleton":
        return [["core"]]
    return [groups[:1]] if groups else []


def completion_figure(model, data, observed_sets: Sequence[Sequence[str]], out: Path) -> Path | None:
    """The completions figure the data's layout allows (quadrant images or skeleton poses, the
    latter from the first observed subset), or None for data without a layout."""
    kind = (data.info.get("layout") or {}).get("kind")
    if kind == "quadrants":
        return quadrant_completions(model, data, observed_sets, Path(out) / "completions.png")
    if kind == "skeleton":
        return pose_completions(model, data, observed_sets[0], Path(out) / f"poses-from-{'+'.join(observed_sets[0])}.png")
    return None


def factvae_figures(model, data, out: Path) -> list[Path]:
    """The heat map and the completions that the data's layout allows."""
    model.eval()
    paths = [sparsity_heatmap(model, Path(out) / "sparsity-heatmap.png")]
    completions = completion_figure(model, data, default_observed_sets(data.info), out)
    return paths if completions is None else paths + [completions]
