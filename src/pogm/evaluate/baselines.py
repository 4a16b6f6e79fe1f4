"""Supervised baselines trained on the labelled examples alone (what semi-supervision must beat)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F

from pogm.data.dataset import PartialDataset
from pogm.evaluate.metrics import count_errors, evaluation_view
from pogm.nn import MLP


def labels_only_classifier(
    train: PartialDataset,
    labelled_index: torch.Tensor,
    valid: PartialDataset | None,
    hidden: tuple[int, ...] = (500,),
    activation: str = "softplus",
    steps: int = 2000,
    lr: float = 3e-4,
    seed: int = 0,
) -> tuple[MLP, float | None]:
    """An MLP shaped like M2's q(y|x), trained with cross-entropy on the labelled rows only.

    Uses the same dynamic binarisation as the generative models when the data set asks for it,
    and keeps the weights with the lowest validation error (checked every 100 steps).
    Returns the network and its validation error.
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    x = train.batch(labelled_index).x["x"].reshape(len(labelled_index), -1)  # [L, D]
    y = train.y[labelled_index]
    net = MLP(x.shape[1], hidden, train.num_classes, activation)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    valid_view = evaluation_view(valid) if valid is not None else None
    best, best_error = copy.deepcopy(net.state_dict()), None
    for step in range(steps):
        inputs = torch.bernoulli(x, generator=generator) if train.binarize else x
        loss = F.cross_entropy(net(inputs), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if valid_view is not None and (step + 1) % 100 == 0:
            with torch.no_grad():
                error = error_of(net, valid_view)
            if best_error is None or error < best_error:
                best, best_error = copy.deepcopy(net.state_dict()), error
    if valid_view is not None:
        net.load_state_dict(best)
    return net, best_error


@torch.no_grad()
def error_of(net: torch.nn.Module, dataset: PartialDataset) -> float:
    """The classifier's error on the labelled rows of ``dataset`` (unlabelled rows are not scored)."""
    view = evaluation_view(dataset)
    errors, labelled = count_errors(net(view.x["x"].reshape(len(view), -1)).argmax(-1), view.y, view.y_mask)  # [N] classes
    if labelled == 0:
        raise ValueError(f"the error needs labelled rows; {dataset.name!r} has none")
    return errors / labelled
