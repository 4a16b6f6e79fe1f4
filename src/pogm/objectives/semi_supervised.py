"""Semi-supervised objectives of Kingma et al. (2014), section 3.1.2, in bound orientation.

``L(x, y)`` below is the *lower bound* on log p(x, y) (Kingma's -L(x, y)); losses are negated
bounds. The unlabelled bound enumerates every class in one vectorised pass: the caller computes
``bound_x_y`` for all classes at once as ``[B, K]``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def unlabelled_bound(log_q_y_x: Tensor, bound_x_y: Tensor) -> Tensor:
    """-U(x) = sum_y q(y|x) (-L(x, y)) + H(q(y|x))  (Kingma et al. 2014, eq. 7).

    ``log_q_y_x`` are log-probabilities ``[B, K]`` (from log-softmax), ``bound_x_y`` the labelled
    bounds ``[B, K]`` for every class. Returns ``[B]``.
    """
    q_y_x = log_q_y_x.exp()
    entropy = -(q_y_x * log_q_y_x).sum(-1)
    return (q_y_x * bound_x_y).sum(-1) + entropy


def classification_loss(logits_y: Tensor, y: Tensor) -> Tensor:
    """E[-log q(y|x)] over labelled rows (the alpha-weighted term of Kingma et al. 2014, eq. 9)."""
    return F.cross_entropy(logits_y, y, reduction="none")


def default_alpha(num_total: int, num_labelled: int) -> float:
    """alpha = 0.1 * N / N_labelled: Kingma et al.'s 0.1 * N with per-example averaged terms."""
    if num_labelled <= 0:
        raise ValueError("alpha needs at least one labelled example")
    return 0.1 * num_total / num_labelled


def semi_supervised_loss(
    labelled_bound: Tensor,
    unlabelled_bound_: Tensor,
    classification: Tensor,
    alpha: float,
) -> dict[str, Tensor]:
    """J^alpha per example: -mean L(x_l, y_l) - mean U(x_u) + alpha * mean CE(x_l, y_l).

    The labelled and unlabelled averages are weighted equally, as when one labelled and one
    unlabelled minibatch are drawn per step. Empty parts contribute zero.
    """
    zero = labelled_bound.new_zeros(())
    mean_l = labelled_bound.mean() if labelled_bound.numel() else zero
    mean_u = unlabelled_bound_.mean() if unlabelled_bound_.numel() else zero
    mean_ce = classification.mean() if classification.numel() else zero
    loss = -mean_l - mean_u + alpha * mean_ce
    return {"loss": loss, "bound_labelled": mean_l.detach(), "bound_unlabelled": mean_u.detach(), "classification": mean_ce.detach()}
