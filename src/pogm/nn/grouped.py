"""Networks for grouped data (one network per group of the observation). Plain modules: no
likelihoods, no objectives.

* `GroupExpert`: one group's inference network, giving the mean and the diagonal precision of a
  Gaussian expert, ``Lambda_g = diag(|V_g phi_g(x_g)|)`` (Ainsworth et al. 2018, sec. 2).
* `GroupGenerator`: one group's generator fed by ``W_g z`` (the oi-VAE of Ainsworth et al. 2018a,
  eq. 5): ``W_g`` is a bias-free ``[p, K]`` map whose column j links latent dimension j to the group.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pogm.nn.mlp import MLP, activation


class GroupExpert(nn.Module):
    """``x_g [.., D_g] -> (mu_g [.., K], Lambda_g [.., K])`` with ``Lambda_g = |V_g phi_g(x_g)|``.

    ``V_g`` (``[K, H]``, no bias) is a parameter of its own so that the group-lasso step can shrink
    its row j together with column j of the generator's ``W_g``: a zero row means the group has no
    opinion on latent dimension j (zero precision, infinite variance).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], features: int, z_dim: int, act: str = "tanh") -> None:
        super().__init__()
        # phi_g ends in a linear layer: with a bounded phi (tanh) the precision could only grow
        # through V_g, whose norm the group lasso charges for, so sharp posteriors would be taxed.
        self.phi = MLP(in_dim, hidden, features, act)  # phi_g(x_g): [.., H]
        self.mean = nn.Linear(features, z_dim)
        self.V = nn.Parameter(torch.empty(z_dim, features).uniform_(-1.0 / math.sqrt(features), 1.0 / math.sqrt(features)))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.phi(x)  # [.., H]
        precision = torch.abs(features @ self.V.T)  # [.., K]
        return self.mean(features), precision


class GroupGenerator(nn.Module):
    """``z [.., K] -> likelihood parameters of x_g``: ``f_g(W_g z)``.

    ``f_g`` applies the activation to ``W_g z`` and then an MLP, so that ``W_g`` is the only map
    from z into the group (a zero column of ``W_g`` cuts latent dimension j off the group).
    """

    def __init__(self, z_dim: int, group_input_dim: int, hidden: Sequence[int], out_dim: int, act: str = "tanh") -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(group_input_dim, z_dim).uniform_(-1.0 / math.sqrt(z_dim), 1.0 / math.sqrt(z_dim)))
        # theta_g; with no hidden layers f_g is act -> linear, the oi-VAE's mocap generator
        head = MLP(group_input_dim, hidden, out_dim, act) if hidden else nn.Linear(group_input_dim, out_dim)
        self.f = nn.Sequential(activation(act), head)

    def forward(self, z: Tensor) -> Tensor:
        return self.f(z @ self.W.T)  # [.., p] -> [.., out]
