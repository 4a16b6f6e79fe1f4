"""The group-lasso penalty and its proximal operator (Ainsworth et al. 2018, eqs. 7-9 and
Algorithm 1; Parikh & Boyd 2013, sec. 6.5.4).

The penalty is ``lambda * sum_j ||Phi[:, j]||_2`` over the columns of a matrix ``Phi``. It is not
differentiable at zero, so it is never put in the loss: the optimizer steps on the rest of the
objective and then the proximal operator of the penalty, a group soft-threshold, shrinks every
column and sets the short ones exactly to zero.
"""

from __future__ import annotations

import torch
from torch import Tensor


def column_norms(matrix: Tensor, dim: int = 0) -> Tensor:
    """Euclidean norms of the groups of ``matrix`` taken along ``dim`` (dim 0: the columns)."""
    return torch.linalg.vector_norm(matrix, dim=dim)


def group_lasso_penalty(matrix: Tensor, strength: float, dim: int = 0) -> Tensor:
    """``strength * sum_j ||matrix[:, j]||_2`` (columns for ``dim=0``)."""
    return strength * column_norms(matrix, dim).sum()


def group_soft_threshold(matrix: Tensor, threshold: float, dim: int = 0) -> Tensor:
    """The proximal operator of ``threshold * sum_j ||matrix[:, j]||``:

        Phi[:, j] <- Phi[:, j] / ||Phi[:, j]|| * (||Phi[:, j]|| - threshold)_+      (Algorithm 1)

    A column whose norm is at most ``threshold`` becomes exactly zero; the others shrink towards zero
    by ``threshold`` in norm, keeping their direction. A zero column stays zero (no division by zero).
    """
    if threshold < 0:
        raise ValueError(f"the soft-threshold must be >= 0, got {threshold}")
    norms = column_norms(matrix, dim).unsqueeze(dim)  # broadcastable to matrix
    shrink = torch.clamp(norms - threshold, min=0.0) / torch.where(norms > 0, norms, torch.ones_like(norms))
    return matrix * shrink
