"""Figures of the semi-supervised models: decision regions of q(y|x) on 2-D data and the
auxiliary latent space of the ADGM / SDGM (Maaløe et al. 2016, Figs. 1 and 2)."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pogm.plotting import pyplot, save_figure


@torch.no_grad()
def decision_regions(model, train, labelled_index: torch.Tensor | None, path: str | Path, resolution: int = 200) -> Path:
    """The classifier's regions over a 2-D input space with the training points (the poster's
    Fig. 1C): colour = q(y|x) of class 1 (two classes) or the arg-max class, unlabelled points
    small, labelled points large and outlined."""
    plt = pyplot()
    if math.prod(train.shapes["x"]) != 2:
        raise ValueError(f"decision regions need 2-D inputs; this data has {math.prod(train.shapes['x'])} features")
    x = train.batch(torch.arange(len(train))).x["x"].reshape(len(train), -1).float()  # [N, 2]
    if x.shape[1] != 2:
        raise ValueError(f"decision regions need 2-D inputs; this data has {x.shape[1]} features")
    low, high = x.min(0).values - 0.5, x.max(0).values + 0.5
    g0, g1 = torch.meshgrid(torch.linspace(low[0], high[0], resolution), torch.linspace(low[1], high[1], resolution), indexing="xy")
    grid = torch.stack([g0.reshape(-1), g1.reshape(-1)], -1).to(model.device)  # [R*R, 2]
    probs = torch.softmax(model.classify(grid), -1).cpu()  # [R*R, K]
    num_classes = probs.shape[1]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if num_classes == 2:
        ax.contourf(g0, g1, probs[:, 1].reshape(resolution, resolution), levels=20, cmap="coolwarm", alpha=0.6, vmin=0, vmax=1)
    else:
        ax.contourf(g0, g1, probs.argmax(-1).reshape(resolution, resolution), levels=num_classes, cmap="tab10", alpha=0.4)
    ax.scatter(x[:, 0], x[:, 1], s=3, c="k", alpha=0.4, label="unlabelled")
    if labelled_index is not None and train.y is not None:
        xl, yl = x[labelled_index], train.y[labelled_index]
        ax.scatter(xl[:, 0], xl[:, 1], s=90, c=yl, cmap="coolwarm" if num_classes == 2 else "tab10", edgecolors="k", linewidths=1.5, label="labelled")
    ax.set_title("decision regions of q(y|x)")
    ax.legend(loc="lower left", fontsize=8)
    return save_figure(fig, path)


@torch.no_grad()
def auxiliary_latent_space(model, data, path: str | Path, limit: int = 5000) -> Path:
    """Means of q(a|x) of labelled examples, coloured by class (the poster's Fig. 1D and Fig. 2):
    the two leading principal components when a has more than two dimensions."""
    plt = pyplot()
    n = min(len(data), limit)
    x = data.x["x"][:n].to(model.device)
    a = model.encode_auxiliary(x).float().cpu()  # [N, A]
    if a.shape[1] > 2:
        centred = a - a.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        a, xlabel, ylabel = centred @ v[:2].T, "1st principal component", "2nd principal component"
    else:
        xlabel, ylabel = "a_1", "a_2" if a.shape[1] == 2 else ""
        a = a if a.shape[1] == 2 else torch.cat([a, torch.zeros_like(a)], 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    colours = data.y[:n] if data.y is not None else None
    points = ax.scatter(a[:, 0], a[:, 1], s=4, c=colours, cmap="tab10" if colours is not None and int(colours.max()) > 1 else "coolwarm")
    if colours is not None:
        fig.colorbar(points, ax=ax, label="class")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("auxiliary latent space: E[a|x]")
    return save_figure(fig, path)
