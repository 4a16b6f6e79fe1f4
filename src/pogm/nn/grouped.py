"""Networks for grouped data (one network per group of the observation). Plain modules: no
likelihoods, no objectives.

* `GroupExpert`: one group's inference network, giving the mean and the diagonal precision of a
  Gaussian expert, ``Lambda_g = diag(|V_g phi_g(x_g)|)`` (Ainsworth et al. 2018, sec. 2).
* `GaussianGroupExpert`: one group's inference network giving a free Gaussian, mean and
  log-variance (the single-modality encoders of Suzuki et al. 2016's JMVAE).
* `GroupGenerator`: one group's generator fed by ``W_g z`` (the oi-VAE of Ainsworth et al. 2018a,
  eq. 5): ``W_g`` is a bias-free ``[p, K]`` map whose column j links latent dimension j to the group.

``W_g`` and ``V_g`` are the group-sparse weights (Phi of Ainsworth, Foti & Fox 2018). `PHI_INITS`
names how they start: ``"unit"`` draws N(0, 1) entries, as Ainsworth et al.'s published oi-VAE code
does so that the proximal step does not cut columns before they carry signal; ``"fan-in"`` draws
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's linear-layer scale (columns of norm about 0.4-0.7).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pogm.nn.mlp import MLP, activation, full_precision

PHI_INITS = ("unit", "fan-in")


def phi_init(shape: tuple[int, int], fan_in: int, init: str) -> Tensor:
    """A new group-sparse weight of ``shape`` drawn as `PHI_INITS` names (see the module docstring)."""
    if init == "unit":
        return torch.randn(shape)
    if init == "fan-in":
        return torch.empty(shape).uniform_(-1.0 / math.sqrt(fan_in), 1.0 / math.sqrt(fan_in))
    raise ValueError(f"phi_init must be one of {list(PHI_INITS)}, got {init!r}")


class GroupExpert(nn.Module):
    """``x_g [.., D_g] -> (mu_g [.., K], Lambda_g [.., K])`` with ``Lambda_g = |V_g phi_g(x_g)|``.

    ``V_g`` (``[K, H]``, no bias) is a parameter of its own so that the group-lasso step can shrink
    its row j together with column j of the generator's ``W_g``: a zero row means the group has no
    opinion on latent dimension j (zero precision, infinite variance).
    """

    def __init__(self, in_dim: int, hidden: Sequence[int], features: int, z_dim: int, act: str = "tanh", init: str = "fan-in") -> None:
        super().__init__()
        # phi_g ends in a linear layer: with a bounded phi (tanh) the precision could only grow
        # through V_g, whose norm the group lasso charges for, so sharp posteriors would be taxed.
        self.phi = MLP(in_dim, hidden, features, act)  # phi_g(x_g): [.., H]
        self.mean = nn.Linear(features, z_dim)
        self.V = nn.Parameter(phi_init((z_dim, features), features, init))

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.phi(x)  # [.., H]
        precision = torch.abs(features @ self.V.T)  # [.., K]
        return full_precision(self.mean(features)), full_precision(precision)


class GaussianGroupExpert(nn.Module):
    """``x_g [.., D_g] -> (mu_g [.., K], log_var_g [.., K])``: a free diagonal Gaussian q_g(z | x_g),
    from the same feature network as `GroupExpert` (``phi_g``, then a linear map to both)."""

    def __init__(self, in_dim: int, hidden: Sequence[int], features: int, z_dim: int, act: str = "tanh") -> None:
        super().__init__()
        self.phi = MLP(in_dim, hidden, features, act)  # phi_g(x_g): [.., H]
        self.mean = nn.Linear(features, z_dim)
        self.log_var = nn.Linear(features, z_dim)  # unconstrained: any variance, above 1 included

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        features = self.phi(x)  # [.., H]
        return full_precision(self.mean(features)), full_precision(self.log_var(features))


class GroupGenerator(nn.Module):
    """``z [.., K] -> likelihood parameters of x_g``: ``f_g(W_g z)``.

    ``f_g`` applies the activation to ``W_g z`` and then an MLP, so that ``W_g`` is the only map
    from z into the group (a zero column of ``W_g`` cuts latent dimension j off the group).
    """

    def __init__(self, z_dim: int, group_input_dim: int, hidden: Sequence[int], out_dim: int, act: str = "tanh", init: str = "fan-in") -> None:
        super().__init__()
        self.W = nn.Parameter(phi_init((group_input_dim, z_dim), z_dim, init))
        # theta_g; with no hidden layers f_g is act -> linear, the oi-VAE's mocap generator
        head = MLP(group_input_dim, hidden, out_dim, act) if hidden else nn.Linear(group_input_dim, out_dim)
        self.f = nn.Sequential(activation(act), head)

    def forward(self, z: Tensor) -> Tensor:
        return full_precision(self.f(z @ self.W.T))  # [.., p] -> [.., out]
