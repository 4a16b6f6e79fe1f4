"""Semi-supervised objectives of Kingma et al. (2014), section 3.1.2, in bound orientation.

``L(x, y)`` below is the *lower bound* on log p(x, y) (Kingma's -L(x, y)); losses are negated
bounds. The unlabelled bound enumerates every class in one vectorised pass: the caller computes
``bound_x_y`` for all classes at once as ``[B, K]``.

Two weightings of the objective J^alpha are offered (`WEIGHTINGS`), the ``weighting`` setting of
M2, M1+M2, ADGM and SDGM:

* ``"data-set"``, Kingma et al. (2014), eq. 9, which sums over the data set:
      J^alpha = sum_l L(x, y) + sum_u U(x) + alpha * E_l[-log q(y|x)],   alpha = 0.1 * N.
  Divided by N = N_l + N_u (the step size is then per example), a step's estimate is
      (N_l / N) mean_l L + (N_u / N) mean_u U + (alpha / N) mean_l CE,
  so the labelled bound weighs N_l / N (0.002 with 100 of 50,000 labels) and the classifier 0.1.
* ``"per-batch"``, the weighting of Maaløe et al.'s (2016) published training code: one labelled
  and one unlabelled minibatch per step, each averaged, weighted equally,
      mean_l L + mean_u U + alpha * mean_l CE,   alpha = 0.1 * N / N_l,
  i.e. the labelled part about N / N_l times heavier against U than in eq. 9 (ADGM, SDGM).

`virtual_adversarial_cost` is Miyato et al.'s (2018) smoothness cost on unlabelled inputs, which
semi-supervised HALI can add (``vat_weight``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

WEIGHTINGS = ("per-batch", "data-set")


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


def categorical_kl(log_p: Tensor, log_q: Tensor) -> Tensor:
    """KL(p || q) of two categorical distributions given as log-probabilities ``[B, K]``; ``[B]``."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


def rampup(step: int, length: int) -> float:
    """exp(-5 (1 - t)^2) with t = min(step / length, 1): the weight the unlabelled-row costs of
    Laine & Aila (2017) and Tarvainen & Valpola (2017) rise by over their first ``length`` steps,
    from e^-5 to 1; 1 throughout when ``length`` is 0."""
    if length <= 0:
        return 1.0
    t = min(max(step, 0) / length, 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


def virtual_adversarial_cost(logits: Callable[[Tensor], Tensor], x: Tensor, epsilon: float, xi: float = 1e-3) -> Tensor:
    """Virtual adversarial training (Miyato et al. 2018), its adversarial direction by one power iteration:
    KL(q(y | x) || q(y | x + r_adv)) with q(y | x) held fixed, where r_adv = epsilon * g / ||g|| and
    g is the gradient in r of KL(q(y | x) || q(y | x + r)) at r = xi * d, d a random unit direction.

    ``logits`` maps inputs ``[B, D]`` to class logits ``[B, K]``; ``x`` ``[B, D]``; epsilon and xi
    are L2 norms per row (xi only has to be small: the gradient at xi * d approximates the
    Hessian's leading direction). No labels are read. Returns ``[B]``.
    """
    with torch.no_grad():
        log_q = F.log_softmax(logits(x), -1)  # [B, K], the fixed target
    d = (xi * F.normalize(torch.randn_like(x), dim=-1)).requires_grad_(True)  # [B, D]
    (g,) = torch.autograd.grad(categorical_kl(log_q, F.log_softmax(logits(x + d), -1)).sum(), d)
    r_adv = epsilon * F.normalize(g, dim=-1)  # [B, D], the direction that changes q(y | x) most
    return categorical_kl(log_q, F.log_softmax(logits(x + r_adv), -1))


def default_alpha(num_total: int, num_labelled: int, weighting: str = "per-batch") -> float:
    """The papers' alpha: 0.1 * N for eq. 9's ``data-set`` weighting (Kingma et al. 2014), 0.1 * N / N_l
    for the ``per-batch`` weighting (Maaløe et al. 2016), whose terms are per-example means."""
    check_weighting(weighting)
    if num_labelled <= 0:
        raise ValueError("alpha needs at least one labelled example")
    return 0.1 * num_total if weighting == "data-set" else 0.1 * num_total / num_labelled


def check_weighting(weighting: str) -> None:
    if weighting not in WEIGHTINGS:
        raise ValueError(f"unknown weighting {weighting!r}; choose one of {list(WEIGHTINGS)} (data-set: Kingma et al. 2014, eq. 9; per-batch: Maaløe et al. 2016)")


@dataclass(frozen=True)
class ObjectiveWeights:
    """The weights of -mean_l L, -mean_u U and mean_l CE in one step's loss."""

    labelled: float
    unlabelled: float
    classification: float


def objective_weights(weighting: str, num_labelled: int, num_unlabelled: int, alpha: float | None = None) -> ObjectiveWeights:
    """The weights of a step's three means under ``weighting`` (see the module docstring).

    ``num_labelled`` (N_l) and ``num_unlabelled`` (N_u, the unlabelled pool) are the data set's
    sizes; ``alpha`` None takes the paper's default (`default_alpha`, with N = N_u as the data
    set's size for ``per-batch``, N = N_l + N_u for ``data-set``).
    """
    check_weighting(weighting)
    if weighting == "per-batch":
        if alpha is None:
            alpha = default_alpha(num_unlabelled, num_labelled) if num_labelled > 0 else 0.0
        return ObjectiveWeights(1.0, 1.0, float(alpha))
    n = num_labelled + num_unlabelled
    if n <= 0:
        raise ValueError("the data-set weighting needs the data set's size: num_labelled + num_unlabelled > 0")
    if alpha is None:
        alpha = default_alpha(n, num_labelled, "data-set") if num_labelled > 0 else 0.0
    return ObjectiveWeights(num_labelled / n, num_unlabelled / n, float(alpha) / n)


def semi_supervised_loss(
    labelled_bound: Tensor,
    unlabelled_bound_: Tensor,
    classification: Tensor,
    weights: ObjectiveWeights,
) -> dict[str, Tensor]:
    """J^alpha for one step: -w_l mean L(x_l, y_l) - w_u mean U(x_u) + w_c mean CE(x_l, y_l).

    ``weights`` come from `objective_weights`. Empty parts contribute zero.
    """
    zero = labelled_bound.new_zeros(())
    mean_l = labelled_bound.mean() if labelled_bound.numel() else zero
    mean_u = unlabelled_bound_.mean() if unlabelled_bound_.numel() else zero
    mean_ce = classification.mean() if classification.numel() else zero
    loss = -weights.labelled * mean_l - weights.unlabelled * mean_u + weights.classification * mean_ce
    return {"loss": loss, "bound_labelled": mean_l.detach(), "bound_unlabelled": mean_u.detach(), "classification": mean_ce.detach()}
