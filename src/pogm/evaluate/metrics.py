"""Evaluation metrics: each a function of (model, dataset) -> numbers.

Data sets that are dynamically binarised for training are evaluated on one fixed, seeded
binarisation (``PartialDataset.binarized``), so numbers are comparable between runs.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from pogm.data.dataset import PartialDataset
from pogm.data.streams import iterate_batches

EVAL_BINARIZATION_SEED = 1234


def evaluation_view(dataset: PartialDataset) -> PartialDataset:
    """The data set as evaluated: a fixed seeded binarisation (or dequantisation) if it is
    binarised (dequantised) in training."""
    if dataset.binarize:
        return dataset.binarized(EVAL_BINARIZATION_SEED)
    return dataset.dequantized(EVAL_BINARIZATION_SEED)


@torch.no_grad()
def classification_error(model: torch.nn.Module, dataset: PartialDataset, batch_size: int = 1000) -> float:
    """Fraction of examples whose arg-max class under ``model.classify`` differs from the label."""
    if dataset.y is None:
        raise ValueError("classification error needs a labelled data set")
    errors, total = 0, 0
    for batch in iterate_batches(evaluation_view(dataset), batch_size, model.device):
        predicted = model.classify(batch).argmax(-1)
        errors += (predicted != batch.y).sum().item()
        total += len(batch)
    return errors / total


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
    view = evaluation_view(dataset)
    if limit is not None and limit < len(view):
        view = view.subset(torch.arange(limit))
    total, count = 0.0, 0
    batches = iterate_batches(view, batch_size, model.device)
    for batch in tqdm(batches, total=-(-len(view) // batch_size), desc=f"log p(x), k={k}", disable=not progress, leave=False):
        total += model.log_likelihood(batch, k=k, chunk_size=chunk_size).sum().item()
        count += len(batch)
    return total / count
