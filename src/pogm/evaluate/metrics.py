"""Evaluation metrics: each a function of (model, dataset) -> numbers.

Data sets that are dynamically binarised for training are evaluated on one fixed, seeded
binarisation (``PartialDataset.binarized``), so numbers are comparable between runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset, evaluation_view  # noqa: F401  (evaluation_view: re-exported for callers of this module)
from pogm.data.streams import iterate_batches

def count_errors(predicted: torch.Tensor, y: torch.Tensor, y_mask: torch.Tensor | None) -> tuple[int, int]:
    """``(errors, labelled)``: how many labelled rows a predicted class ``[B]`` gets wrong, and how
    many labelled rows there are. Unlabelled rows (``y_mask`` False; their ``y`` holds a placeholder
    0) are not scored: counting them against class 0 would make the error rate wrong."""
    if y_mask is None:
        return int((predicted != y).sum()), len(y)
    return int(((predicted != y) & y_mask).sum()), int(y_mask.sum())


@dataclass(frozen=True)
class ErrorRate:
    """A classification error rate and the number of labelled rows it was measured on."""

    error: float
    labelled: int


@torch.no_grad()
def classification_error_rate(model: torch.nn.Module, dataset: PartialDataset, batch_size: int = 1000) -> ErrorRate:
    """The error of the arg-max class of ``model.classify`` on the labelled rows of ``dataset``,
    with how many rows that is; rows without a label are left out.

    Raises:
        ValueError: the data set has no labels, or none of its rows is labelled.
    """
    if dataset.y is None or dataset.num_labelled == 0:
        raise ValueError(f"classification error needs labelled rows; {dataset.name!r} has none")
    errors, labelled = 0, 0
    for batch in iterate_batches(evaluation_view(dataset), batch_size, model.device):
        wrong, counted = count_errors(model.classify(batch).argmax(-1), batch.y, batch.y_mask)  # [B] classes
        errors, labelled = errors + wrong, labelled + counted
    return ErrorRate(errors / labelled, labelled)


def classification_error(model: torch.nn.Module, dataset: PartialDataset, batch_size: int = 1000) -> float:
    """Fraction of the labelled rows whose arg-max class under ``model.classify`` differs from the
    label (see `classification_error_rate`, which also says how many rows were scored)."""
    return classification_error_rate(model, dataset, batch_size).error


@torch.no_grad()
def mean_elbo(model: torch.nn.Module, dataset: PartialDataset, batch_size: int = 1000, limit: int | None = None) -> float:
    """Mean single-sample ELBO (the importance-weighted bound with k = 1), in nats per example."""
    return mean_log_likelihood(model, dataset, k=1, batch_size=batch_size, limit=limit)


@torch.no_grad()
def mean_log_likelihood(
    model: torch.nn.Module,
    dataset: PartialDataset,
    k: int = 5000,
    batch_size: int = 100,
    chunk_size: int = 500,
    limit: int | None = None,
    progress: bool = False,
) -> float:
    """Mean importance-weighted bound on log p(x) with ``k`` samples (Burda et al. 2015)."""
    return mean_per_example(lambda batch: model.log_likelihood(batch, k=k, chunk_size=chunk_size), dataset, model.device, batch_size, limit,
                            desc=f"log p(x), k={k}", progress=progress)


def mean_per_example(score: Callable[[Batch], torch.Tensor], dataset: PartialDataset, device: torch.device, batch_size: int = 100,
                     limit: int | None = None, desc: str = "", progress: bool = False) -> float:
    """The mean of ``score(batch) -> [B]`` over the examples of ``dataset`` (its first ``limit``)."""
    view = evaluation_view(dataset)
    if limit is not None and limit < len(view):
        view = view.subset(torch.arange(limit))
    total, count = 0.0, 0
    batches = iterate_batches(view, batch_size, device)
    for batch in tqdm(batches, total=-(-len(view) // batch_size), desc=desc, disable=not progress, leave=False):
        total += score(batch).sum().item()
        count += len(batch)
    return total / count


def task_errors(predicted: torch.Tensor, target: torch.Tensor, spec: dict) -> torch.Tensor:
    """Per-example task loss of predicted continuous labels ``[B, D]`` against the truth, as a
    source's ``info["task_loss"]`` describes it (Tulyakov et al., sec. 4.3):

    * ``{"kind": "point_to_point", "num_points": P, "normaliser": [i, j]}``: h holds P 2-D points
      ``[x_1, y_1, ..., x_P, y_P]``; the mean Euclidean distance between predicted and true points,
      divided by the true distance between points i and j (the inter-ocular normalisation);
    * ``{"kind": "l2"}``: the Euclidean distance between the predicted and the true vector.
    """
    kind = spec.get("kind")
    if kind == "l2":
        return (predicted - target).norm(dim=-1)
    if kind == "point_to_point":
        points = int(spec["num_points"])
        if target.shape[-1] != 2 * points:
            raise ValueError(f"point_to_point task loss with {points} points needs labels of {2 * points} values, got {target.shape[-1]}")
        p, t = predicted.reshape(-1, points, 2), target.reshape(-1, points, 2)  # [B, P, 2]
        i, j = spec.get("normaliser", (0, 1))
        scale = (t[:, i] - t[:, j]).norm(dim=-1)  # [B]
        return (p - t).norm(dim=-1).mean(-1) / scale
    raise ValueError(f"unknown task loss kind {kind!r}; expected 'point_to_point' or 'l2'")


@dataclass(frozen=True)
class TaskLoss:
    """A mean task loss and the number of labelled rows it was averaged over."""

    loss: float
    labelled: int


@torch.no_grad()
def task_loss_rate(model: torch.nn.Module, dataset: PartialDataset, spec: dict, batch_size: int = 500, limit: int | None = None) -> TaskLoss:
    """Mean task loss of ``model.predict_labels`` (the mean of q(h|d)) over the labelled rows (of
    the first ``limit`` rows), with how many rows that is; rows without a label are left out."""
    if dataset.y is None or dataset.y.dim() != 2:
        raise ValueError("the task loss needs continuous labels [N, D]")
    view = evaluation_view(dataset)
    if limit is not None and limit < len(view):
        view = view.subset(torch.arange(limit))
    total, count = 0.0, 0
    for batch in iterate_batches(view, batch_size, model.device):
        labelled = batch.y_mask
        if not labelled.any():
            continue
        errors = task_errors(model.predict_labels(batch)[labelled], batch.y[labelled], spec)  # [B_l]
        total += errors.sum().item()
        count += int(labelled.sum())
    if count == 0:
        raise ValueError("the task loss needs labelled examples; this split has none")
    return TaskLoss(total / count, count)


def task_loss(model: torch.nn.Module, dataset: PartialDataset, spec: dict, batch_size: int = 500, limit: int | None = None) -> float:
    """Mean task loss over the labelled rows (see `task_loss_rate`)."""
    return task_loss_rate(model, dataset, spec, batch_size, limit).loss
