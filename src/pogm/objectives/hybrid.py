"""Objectives of the Hybrid VAE (Tulyakov, Fitzgibbon & Nowozin), in bound orientation.

``L_F(d, h)`` (eq. 2) bounds log p(d, h) of a labelled pair; ``L_P(d)`` (eq. 6) bounds log p(d) of
an image alone by drawing h from the discriminative q(h|d). Losses are negated bounds.
"""

from __future__ import annotations

from torch import Tensor

WEIGHTINGS = ("balanced", "sum")


def full_bound(log_p_d_h_z: Tensor, kl_z: Tensor, kl_weight: float = 1.0) -> Tensor:
    """L_F = E_q(z|d,h)[log p(d, h | z)] - KL(q(z|d,h) || p(z))  (eq. 2).

    ``log_p_d_h_z`` is ``[S, B]`` for S samples of z (averaged: the paper's unbiased estimate),
    ``kl_z`` is ``[B]``. Returns ``[B]``.
    """
    return log_p_d_h_z.mean(0) - kl_weight * kl_z


def partial_bound(log_p_d_h_z: Tensor, kl_z: Tensor, entropy_h: Tensor, kl_weight: float = 1.0) -> Tensor:
    """L_P = E_q(h|d)[E_q(z|d,h)[log p(d, h | z)] - KL(q(z|d,h) || p(z))] + H(q(h|d))  (eq. 6).

    ``log_p_d_h_z`` is ``[S_z, S_h, B]`` (S_z samples of z for each of S_h samples of h),
    ``kl_z`` is ``[S_h, B]`` (one KL per sampled h), ``entropy_h`` is ``[B]`` in closed form.
    Returns ``[B]``.
    """
    return log_p_d_h_z.mean((0, 1)) - kl_weight * kl_z.mean(0) + entropy_h


def hybrid_loss(bound_full: Tensor, bound_partial: Tensor, weighting: str = "balanced", num_labelled: int = 1, num_unlabelled: int = 1) -> Tensor:
    """The negated training objective from one labelled and one unlabelled minibatch.

    * ``"balanced"`` (eq. 8): (1/n) sum L_F + (1/m) sum L_P, estimated by the two minibatch means,
      so the labelled and the unlabelled average weigh the same whatever n and m are.
    * ``"sum"`` (eq. 7): sum L_F + sum L_P, estimated by n mean L_F + m mean L_P and divided by
      n + m so that the learning rate means the same as for (8).

    An empty part contributes zero.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"objective must be one of {WEIGHTINGS}, got {weighting!r}")
    zero = bound_full.new_zeros(())
    mean_full = bound_full.mean() if bound_full.numel() else zero
    mean_partial = bound_partial.mean() if bound_partial.numel() else zero
    if weighting == "balanced":
        return -(mean_full + mean_partial)
    n, m = float(num_labelled), float(num_unlabelled)
    return -(n * mean_full + m * mean_partial) / max(n + m, 1.0)
