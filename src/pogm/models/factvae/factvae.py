"""factVAE (Ainsworth, Foti & Fox 2018, "Disentangled VAE Representations for Multi-Aspect and
Missing Data") and its two baselines, JMVAE+ and the oi-VAE, on data split into groups
``x = [x^(1), ..., x^(G)]`` of which any subset O may be observed.

Generative model (eqs. 4-5, shared by all three):

    z ~ N(0, I_K),      x^(g) | z ~ p(x^(g) | f_g(W^(g) z))  for g = 1..G,      theta_g ~ N(0, I)

``W^(g)`` is ``[p, K]``; its column j is zero when latent dimension j does not reach group g.

Inference models:

* factVAE (eq. 6, footnote 2): a product of Gaussian experts, one per observed group, with the prior:
      q(z | x_O) = p(z) prod_{g in O} q_g(z | x^(g)),  q_g = N(mu_g(x^(g)), Lambda_g^{-1}),
      Lambda_g = diag(|V^(g) phi_g(x^(g))|),  so  Lambda = I + sum_g Lambda_g,  mu = Lambda^{-1} sum_g Lambda_g mu_g.
  The group lasso acts on the columns of Phi^(g) = [W^(g)T, V^(g)]^T (eqs. 7-8): column j joins
  W^(g)'s column j and V^(g)'s row j, so a latent dimension is cut from a group on both sides at once.
* JMVAE+ (sec. 3; Suzuki et al. 2016 as read by Vedantam et al. 2017): a uniform mixture of the
  observed groups' posteriors, q(z | x_O) = 1/|O| sum_{g in O} q_g(z | x^(g)). The paper's
  components are free Gaussians, q_g = N(mu_g(x^(g)), diag exp(log_var_g(x^(g)))), one encoder per
  group (``components="free"``, the default). ``components="prior-expert"`` (pogm's former model)
  makes each the single-group factVAE posterior p(z) q_g(z | x^(g)) instead, whose variance cannot
  exceed 1.
* oi-VAE (Ainsworth et al. 2018a): one joint Gaussian encoder q(z | x) over the concatenation of all
  groups. It cannot tell a missing group from a group of zeros: missing groups are zero-filled
  before the encoder (the only way it can take them), and only the likelihood skips them.

Objective (eq. 9, Algorithm 1): per example
    L = E_q[log p(x_O | z)] - KL(q(z | x_I) || p(z)) + w_theta log p(theta) - lambda sum_{g,j} ||Phi^(g)_{:,j}||,
where the likelihood is evaluated on every observed group O but the encoder sees a random subset
I of them during training (group dropout, sec. 2.1). The penalty is not differentiated: Phi is
updated by plain gradient steps of size eta and then by the group soft-threshold with eta * lambda
(`pogm.objectives.group_lasso`); the Trainer does this through ``proximal_parameters`` /
``proximal_step``. lambda = 0 gives the unpenalised factorised model.

Three readings of eq. 9 and Algorithm 1, each a setting:

* The scale of the priors (``prior_scale``). Phi's group lasso and theta's N(0, I) are priors on
  parameters that all examples share: in log p(x_1..N) = log int prod_i p(x_i | z_i, Phi, theta)
  p(z_i) dz p(Phi) p(theta) they appear once, against N likelihood terms, and eq. 9, written for
  one x, is the case N = 1. pogm's loss is a per-example mean, so ``"data-set"`` (the default)
  divides lambda and log p(theta) by N = ``num_train``: each step shrinks Phi by eta * lambda / N.
  Table 1 agrees: the gain of lambda = 1 falls as trials are added and turns into a small loss at
  10 trials, as a prior's weight falls against more data; a per-example penalty would weigh the
  same at every size. ``"per-example"`` is Algorithm 1 read literally (shrink by eta * lambda per
  example step), as Ainsworth et al.'s published oi-VAE code does. The paper's two experiments do
  not agree on one reading with our data: on motion capture (`benchmarks/factvae_lasso.py`) the
  per-example reading cuts all 80 columns of Phi and its N(0, I) prior on the encoders collapses z
  (held-out 11.9 nats a frame against 39.9 at the data-set scale), while on Fig. 2's bars (2,000
  images) lambda / N cuts nothing in a run of minutes and only the per-example lambda = 1 finds the
  bars' structure (`tests/test_factvae_learning.py`). The default is the data-set reading, whose
  strength does not depend on how the data happen to be scaled against the prior.
  ``"lasso-per-example"`` sits between: the shrinkage is eta * lambda at every step, as Algorithm 1
  writes it, while log p(theta) counts once per data set (the prior whose per-example weight
  collapses z). On motion capture lambda then shrinks Phi within a run of minutes; the validation
  walks choose lambda = 0.1 there, since the paper's 1 cuts most columns (`benchmarks/factvae_variants.py`).
* The shrinkage is eta * lambda at every step (``lasso_warmup=False``, Algorithm 1).
  ``lasso_warmup=True`` (pogm's former default) multiplies it by the KL warm-up weight.
* theta, the weights with the N(0, I) prior, are every network weight that is not in Phi: the
  encoders (q_theta in eq. 9) and the generators (``theta_prior_covers="networks"``, the paper's).
  ``"generators"`` puts the prior on the f_g only, as Ainsworth et al.'s published oi-VAE code
  does. The likelihoods' learned scales are not network weights and have no prior.
* Phi starts as ``phi_init`` says (`pogm.nn.grouped.PHI_INITS`): ``"unit"`` N(0, 1) entries, the
  authors' published choice, so that early shrinkage does not cut columns that carry no signal yet.

JMVAE+'s KL to the prior has no closed form (sec. 3). ``kl_estimate="bound"`` (the default, the
paper's "additional lower bound") uses convexity, KL(sum_g w_g q_g || p) <= sum_g w_g KL(q_g || p),
which makes the objective the average of the single-group ELBOs. ``"stratified"`` is the exact
mixture ELBO, sum_g w_g E_{q_g}[log p(x|z) + log p(z) - log q(z|x)], one reparameterised sample per
component (stratified sampling, Shi et al. 2019). Both are lower bounds on log p(x_O).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import Tensor, nn

from pogm.data.batch import Batch
from pogm.latents import (
    DiagonalGaussian,
    GaussianMixture,
    product_of_experts,
    standard_normal_log_prob,
)
from pogm.likelihoods import make_likelihood
from pogm.models.base import ImportanceWeighted, Model, flat_mask, zero_fill
from pogm.models.registry import register_model
from pogm.nn import MLP, GaussianHead
from pogm.nn.grouped import PHI_INITS, GaussianGroupExpert, GroupExpert, GroupGenerator
from pogm.objectives import column_norms, elbo, group_soft_threshold

THETA_PRIOR_COVERS = ("networks", "generators")
PRIOR_SCALES = ("data-set", "per-example", "lasso-per-example")
JMVAE_COMPONENTS = ("free", "prior-expert")


@dataclass(frozen=True)
class GroupedVAEConfig:
    group_names: tuple[str, ...] = ("x",)
    group_dims: tuple[int, ...] = (16,)
    z_dim: int = 16  # K
    group_input_dim: int = 8  # p: rows of each W^(g)
    decoder_hidden: tuple[int, ...] = (64,)  # f_g after W^(g) z
    encoder_hidden: tuple[int, ...] = (64,)
    activation: str = "tanh"
    likelihood: str = "gaussian-learned"  # every group's p(x^(g) | .); `make_likelihood` names
    sparsity: float = 1.0  # lambda of the group lasso (eq. 9), against the per-example objective; 0 = none
    prox_lr: float = 1e-4  # eta: plain gradient step on Phi, then the soft-threshold eta * lambda (Algorithm 1)
    lasso_warmup: bool = False  # True: scale eta * lambda by the KL warm-up weight (pogm's former departure)
    phi_init: str = "unit"  # "unit": N(0, 1) entries of W and V (the authors' code); "fan-in": U(+-1/sqrt(fan_in))
    theta_prior: float = 1.0  # weight of log p(theta) = log N(theta; 0, I) (eq. 9), scaled as prior_scale says
    theta_prior_covers: str = "networks"  # "networks": every encoder and generator weight outside Phi (eq. 9); "generators": the f_g only
    prior_scale: str = "data-set"  # "data-set": lambda and log p(theta) count once per data set (/ num_train per example); "per-example"; "lasso-per-example": lambda per example, log p(theta) per data set
    num_train: int | None = None  # N, the training examples (filled from the data)
    group_dropout: float = 0.25  # chance that the encoder does not see an observed group during training


@dataclass(frozen=True)
class FactVAEConfig(GroupedVAEConfig):
    encoder_features: int = 32  # H: columns of V^(g)


@dataclass(frozen=True)
class JMVAEPlusConfig(FactVAEConfig):
    sparsity: float = 0.0
    kl_estimate: str = "bound"  # "bound" (convexity, the paper's) or "stratified" (exact mixture ELBO)
    components: str = "free"  # "free": q_g = N(mu_g, exp(log_var_g)) (the paper's); "prior-expert": p(z) q_g (variance <= 1)


@dataclass(frozen=True)
class OIVAEConfig(GroupedVAEConfig):
    encoder_hidden: tuple[int, ...] = (128,)
    group_dropout: float = 0.0  # the oi-VAE trains on complete data; dropping a group zero-fills it


class GroupedVAE(ImportanceWeighted, Model):
    """What the three models share: the factorised generator with its group-sparse W^(g), the
    masked likelihood over observed groups, the proximal step, and imputation of missing groups.
    Subclasses define ``posterior(x, observed)``, their inference model."""

    def figures(self, data, out, labelled_index=None, run_dir=None):
        """Sparsity heat maps of W and V, completions of missing groups, latent sharing (`pogm.models.factvae.figures`)."""
        from pogm.models.factvae.figures import factvae_figures

        return factvae_figures(self, data, out)


    multi_group: ClassVar[bool] = True

    def __init__(self, config: GroupedVAEConfig) -> None:
        super().__init__(config)
        c = config
        if len(c.group_names) != len(c.group_dims) or not c.group_names:
            raise ValueError(f"group_names {c.group_names} and group_dims {c.group_dims} must be non-empty and of equal length")
        if c.sparsity < 0 or c.prox_lr <= 0 or not 0 <= c.group_dropout < 1:
            raise ValueError(f"need sparsity >= 0, prox_lr > 0 and 0 <= group_dropout < 1; got {c.sparsity}, {c.prox_lr}, {c.group_dropout}")
        if c.phi_init not in PHI_INITS:
            raise ValueError(f"phi_init must be one of {list(PHI_INITS)}, got {c.phi_init!r}")
        if c.prior_scale not in PRIOR_SCALES:
            raise ValueError(f"prior_scale must be one of {list(PRIOR_SCALES)}, got {c.prior_scale!r}")
        if c.prior_scale != "per-example" and not (c.num_train or 0) >= 1:
            raise ValueError(f"prior_scale={c.prior_scale!r} divides log p(theta) by the number of training examples: set num_train (got {c.num_train}) or use prior_scale='per-example'")
        if c.theta_prior_covers not in THETA_PRIOR_COVERS:
            raise ValueError(f"theta_prior_covers must be one of {list(THETA_PRIOR_COVERS)}, got {c.theta_prior_covers!r}")
        self.p_x = nn.ModuleDict({g: make_likelihood(c.likelihood, d) for g, d in zip(c.group_names, c.group_dims)})
        self.generators = nn.ModuleDict(
            {g: GroupGenerator(c.z_dim, c.group_input_dim, c.decoder_hidden, self.p_x[g].num_params(d), c.activation, c.phi_init) for g, d in zip(c.group_names, c.group_dims)}
        )

    @classmethod
    def data_fields(cls, x_dim: int, num_classes: int | None, num_train: int, num_labelled: int, train: Any = None) -> dict[str, Any]:
        if train is None:
            raise ValueError(f"{cls.__name__} needs the training set to read its groups")
        shapes = train.shapes
        return {"group_names": tuple(shapes), "group_dims": tuple(math.prod(shape) for shape in shapes.values()), "num_train": num_train}

    # ------------------------------------------------------------------ reading a batch
    def groups(self, batch: Batch) -> tuple[dict[str, Tensor], dict[str, Tensor], Tensor]:
        """``(x, masks, observed)``: each group flat and zero-filled ``[B, D_g]``, its mask ``[B, D_g]``
        or ``[B, 1]``, and ``observed [B, G]`` (a group counts as observed in a row if any entry is)."""
        c = self.config
        missing = [g for g in c.group_names if g not in batch.x]
        if missing:
            raise KeyError(f"{type(self).__name__} was built for groups {list(c.group_names)}; the batch lacks {missing} (it has {sorted(batch.x)})")
        xs, masks, observed = {}, {}, []
        for g, d in zip(c.group_names, c.group_dims):
            x = batch.x[g].reshape(len(batch), -1)  # [B, D_g]
            if x.shape[1] != d:
                raise ValueError(f"group {g!r} has {x.shape[1]} features per example; the model was built for {d}")
            mask = flat_mask(batch.x_mask[g], d).expand(len(batch), -1)  # [B, D_g] or [B, 1]
            xs[g] = zero_fill(x, mask)
            masks[g] = mask
            observed.append(mask.any(-1))
        return xs, masks, torch.stack(observed, -1)  # [B, G]

    def drop_groups(self, observed: Tensor) -> Tensor:
        """The subset I of the observed groups O that the encoder sees in training (Algorithm 1):
        each observed group is dropped with probability ``group_dropout``, but a row keeps at least
        one (a random one of its observed groups)."""
        if not self.training or self.config.group_dropout == 0:
            return observed
        keep = observed & (torch.rand(observed.shape, device=observed.device) >= self.config.group_dropout)  # [B, G]
        empty = ~keep.any(-1) & observed.any(-1)  # [B]
        scores = torch.where(observed, torch.rand(observed.shape, device=observed.device), torch.full((), -1.0, device=observed.device))
        rescue = torch.nn.functional.one_hot(scores.argmax(-1), observed.shape[1]).bool() & empty[:, None]
        return keep | rescue

    # ------------------------------------------------------------------ generative side
    def log_p_x_z(self, z: Tensor, x: dict[str, Tensor], masks: dict[str, Tensor]) -> Tensor:
        """log p(x_O | z) summed over the observed entries of every group: ``z [.., B, K] -> [.., B]``
        (leading sample dims broadcast against the batch)."""
        total = 0.0
        for g in self.config.group_names:
            total = total + self.p_x[g].log_prob(self.generators[g](z), x[g], masks[g])
        return total

    def decode(self, z: Tensor) -> dict[str, Tensor]:
        """The mean of every group under p(x | z): ``{g: [.., D_g]}``."""
        return {g: self.p_x[g].mean(self.generators[g](z)) for g in self.config.group_names}

    def log_p_theta(self) -> Tensor:
        """log N(theta; 0, I) up to its constant, over the weights ``theta_prior_covers`` names:
        every network weight outside Phi (the group lasso is Phi's prior), or the generators' f_g
        only. The likelihoods' scales are not network weights and have none."""
        return -0.5 * sum((p**2).sum() for p in self.theta_parameters())

    def theta_parameters(self) -> list[nn.Parameter]:
        """The weights under the N(0, I) prior of eq. 9 (see `log_p_theta`)."""
        generators = [p for gen in self.generators.values() for p in gen.f.parameters()]
        if self.config.theta_prior_covers == "generators":
            return generators
        return generators + self.encoder_parameters()

    def encoder_parameters(self) -> list[nn.Parameter]:
        """The inference networks' weights outside Phi (q_theta of eq. 9): every parameter that is
        neither a generator's, nor Phi, nor a likelihood's scale."""
        skip = {id(p) for p in [*self.proximal_parameters(), *self.generators.parameters(), *self.p_x.parameters()]}
        return [p for p in self.parameters() if id(p) not in skip]

    # ------------------------------------------------------------------ group sparsity
    def sparse_blocks(self, g: str) -> list[Tensor]:
        """The matrices whose column j forms column j of Phi^(g), each laid out ``[rows, K]``; they
        are the parameters or views of them, so the proximal step writes through them."""
        return [self.generators[g].W]

    def phi(self, g: str) -> Tensor:
        """Phi^(g) as ``[rows, K]``: column j holds every weight linking latent dimension j to group g."""
        return torch.cat(self.sparse_blocks(g), dim=0)

    def sparsity_pattern(self) -> Tensor:
        """``[G, K]`` column norms ||Phi^(g)_{:, j}||: the heat maps of the paper's Figs. 2 and 4."""
        with torch.no_grad():
            return torch.stack([column_norms(self.phi(g)) for g in self.config.group_names])

    @property
    def prior_weight(self) -> float:
        """What theta's N(0, I) prior weighs per example: 1 / N, or 1 with ``prior_scale="per-example"``."""
        return 1.0 if self.config.prior_scale == "per-example" else 1.0 / self.config.num_train

    @property
    def lasso_weight(self) -> float:
        """What Phi's group lasso weighs per example: 1 / N with ``prior_scale="data-set"``, else 1."""
        return 1.0 / self.config.num_train if self.config.prior_scale == "data-set" else 1.0

    def group_lasso(self) -> Tensor:
        """lambda * sum_{g,j} ||Phi^(g)_{:, j}||, per example (for reporting; never differentiated)."""
        return self.lasso_weight * self.config.sparsity * self.sparsity_pattern().sum()

    def proximal_parameters(self) -> list[nn.Parameter]:
        """Phi's parameters: stepped by plain gradient descent with ``prox_lr`` (Algorithm 1)."""
        return [p for g in self.config.group_names for p in self._phi_parameters(g)]

    def _phi_parameters(self, g: str) -> list[nn.Parameter]:
        return [self.generators[g].W]

    @property
    def proximal_lr(self) -> float:
        return self.config.prox_lr

    @torch.no_grad()
    def proximal_step(self, scale: float = 1.0) -> None:
        """Phi^(g)_{:,j} <- Phi^(g)_{:,j} / ||.|| (||.|| - eta lambda)_+ for every group and column
        (Algorithm 1), eta = ``prox_lr``, the step size of Phi's own gradient step, and lambda per
        example (divided by N with ``prior_scale="data-set"``, `lasso_weight`).

        ``scale`` is the step's KL weight (the Trainer passes it); it multiplies lambda only with
        ``lasso_warmup=True``, a departure from Algorithm 1 that lets the group lasso come in with
        the KL during warm-up. A zero column is a trap: with V^(g)'s row at zero the group says
        nothing about z_j, so W^(g)'s column gets no signal to grow back.
        """
        threshold = self.config.prox_lr * self.config.sparsity * self.lasso_weight * (scale if self.config.lasso_warmup else 1.0)
        if threshold == 0:
            return
        for g in self.config.group_names:
            blocks = self.sparse_blocks(g)
            shrunk = group_soft_threshold(torch.cat(blocks, dim=0), threshold).split([b.shape[0] for b in blocks], dim=0)
            for block, new in zip(blocks, shrunk):
                block.copy_(new)  # V^(g).T is a view: this writes V^(g)

    # ------------------------------------------------------------------ objective and evaluation
    # Each model defines ``posterior(x, observed)``: q(z | x_O) from the zero-filled groups ``{g: [B, D_g]}``
    # and the ``[B, G]`` flags of the groups the encoder may use.
    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, masks, observed = self.groups(batch)
        q_z = self.posterior(x, self.drop_groups(observed))
        z = q_z.rsample()  # [B, K]
        log_p_x_z = self.log_p_x_z(z, x, masks)  # [B]
        kl = q_z.kl_standard_normal()  # [B]
        return self._terms(elbo(log_p_x_z, kl, kl_weight), elbo(log_p_x_z, kl), kl)

    def _terms(self, bound: Tensor, reported: Tensor, kl: Tensor) -> dict[str, Tensor]:
        log_p_theta = self.log_p_theta()
        return {
            "loss": -bound.mean() - self.prior_weight * self.config.theta_prior * log_p_theta,
            "elbo": reported.mean().detach(),
            "kl": kl.mean().detach(),
            "log_p_theta": log_p_theta.detach(),
            "group_lasso": self.group_lasso(),
        }

    def importance_parts(self, batch: Batch) -> tuple[DiagonalGaussian | GaussianMixture, Callable[[Tensor], Tensor]]:
        """The proposal q(z | x_O), every observed group used, and ``z [n, B, K] -> log p(x_O, z) [n, B]``."""
        x, masks, observed = self.groups(batch)
        return self.posterior(x, observed), lambda z: self.log_p_x_z(z, x, masks) + standard_normal_log_prob(z)

    def log_weights(self, batch: Batch, k: int) -> Tensor:
        """log p(x_O, z_k) - log q(z_k | x_O) for ``k`` samples, every observed group used: ``[k, B]``."""
        q_z, log_joint = self.importance_parts(batch)
        z = q_z.sample(k)  # [k, B, K]
        return log_joint(z) - q_z.log_prob(z)

    # ------------------------------------------------------------------ using a trained model
    @torch.no_grad()
    def encode(self, batch: Batch) -> Tensor:
        """The posterior mean of z given the observed groups: ``[B, K]``."""
        x, _, observed = self.groups(batch)
        return _mean(self.posterior(x, observed))

    @torch.no_grad()
    def reconstruct(self, batch: Batch) -> dict[str, Tensor]:
        """Every group (observed or not) decoded from the posterior mean given the observed groups:
        the conditional reconstruction of Fig. 3. ``{g: [B, ...]}`` in the batch's group shapes."""
        means = self.decode(self.encode(batch))
        return {g: means[g].reshape(batch.x[g].shape) for g in self.config.group_names}

    @torch.no_grad()
    def impute(self, batch: Batch) -> dict[str, Tensor]:
        """The batch with its unobserved entries (whole groups or single entries) filled in by
        `reconstruct`; observed entries are kept bit for bit."""
        filled = self.reconstruct(batch)
        return {g: torch.where(batch.x_mask[g], batch.x[g], filled[g]) for g in self.config.group_names}

    @torch.no_grad()
    def sample(self, n: int, y: Tensor | None = None) -> dict[str, Tensor]:
        """``n`` draws of every group's mean under p(x | z), z ~ N(0, I): ``{g: [n, D_g]}``."""
        return self.decode(torch.randn(n, self.config.z_dim, device=self.device))


def _mean(q_z: DiagonalGaussian | GaussianMixture) -> Tensor:
    if isinstance(q_z, DiagonalGaussian):
        return q_z.mean
    weights = torch.softmax(q_z.log_weights, dim=-1)  # [B, G]
    return (weights.unsqueeze(-1) * q_z.components.mean).sum(-2)  # [B, K]


class _ExpertEncoders(GroupedVAE):
    """Models whose inference side is one Gaussian expert per group (factVAE, JMVAE+): with a
    precision expert (`GroupExpert`), V^(g) joins W^(g) in Phi^(g)."""

    def __init__(self, config: FactVAEConfig) -> None:
        super().__init__(config)
        self.experts = nn.ModuleDict({g: self.make_expert(d) for g, d in zip(config.group_names, config.group_dims)})

    def make_expert(self, dim: int) -> nn.Module:
        """One group's expert: mean and diagonal precision, Lambda_g = |V^(g) phi_g(x^(g))| (sec. 2)."""
        c = self.config
        return GroupExpert(dim, c.encoder_hidden, c.encoder_features, c.z_dim, c.activation, c.phi_init)

    def expert_parameters(self, x: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """Every group's expert's two outputs, stacked: ``(mu [B, G, K], Lambda or log_var [B, G, K])``
        (unobserved groups included; the aggregation leaves them out)."""
        outputs = [self.experts[g](x[g]) for g in self.config.group_names]
        return torch.stack([m for m, _ in outputs], -2), torch.stack([p for _, p in outputs], -2)

    def sparse_blocks(self, g: str) -> list[Tensor]:
        return [self.generators[g].W, self.experts[g].V.T]  # [p, K] over [H, K]: Phi^(g) of sec. 2

    def _phi_parameters(self, g: str) -> list[nn.Parameter]:
        return [self.generators[g].W, self.experts[g].V]


@register_model("factvae", paper="Ainsworth, Foti & Fox 2018 (factVAE)", summary="factVAE: product of group experts, group-sparse W and V, missing groups")
class FactVAE(_ExpertEncoders):
    """factVAE: product of Gaussian group experts with the prior; group-lasso on Phi^(g) = [W^(g)T, V^(g)]^T."""

    Config = FactVAEConfig

    def posterior(self, x: dict[str, Tensor], observed: Tensor) -> DiagonalGaussian:
        mu, precision = self.expert_parameters(x)  # [B, G, K]
        return product_of_experts(mu, precision, observed)  # eq. (6), footnote 2


@register_model("jmvae-plus", paper="Ainsworth, Foti & Fox 2018 sec. 3 (JMVAE+ of Suzuki et al. 2016)", summary="JMVAE+: uniform mixture of the observed groups' posteriors")
class JMVAEPlus(_ExpertEncoders):
    """JMVAE+: q(z | x_O) a uniform mixture of the single-group posteriors of the observed groups."""

    Config = JMVAEPlusConfig

    def __init__(self, config: JMVAEPlusConfig) -> None:
        if config.kl_estimate not in ("bound", "stratified"):
            raise ValueError(f"kl_estimate must be 'bound' or 'stratified', got {config.kl_estimate!r}")
        if config.components not in JMVAE_COMPONENTS:
            raise ValueError(f"components must be one of {list(JMVAE_COMPONENTS)}, got {config.components!r}")
        super().__init__(config)

    def make_expert(self, dim: int) -> nn.Module:
        """A free Gaussian q_g(z | x^(g)) per group (the paper's), or the factVAE's precision expert."""
        c = self.config
        if c.components == "free":
            return GaussianGroupExpert(dim, c.encoder_hidden, c.encoder_features, c.z_dim, c.activation)
        return super().make_expert(dim)

    def sparse_blocks(self, g: str) -> list[Tensor]:
        return [self.generators[g].W] if self.config.components == "free" else super().sparse_blocks(g)  # free experts have no V

    def _phi_parameters(self, g: str) -> list[nn.Parameter]:
        return [self.generators[g].W] if self.config.components == "free" else super()._phi_parameters(g)

    def posterior(self, x: dict[str, Tensor], observed: Tensor) -> GaussianMixture:
        """The uniform mixture of the observed groups' posteriors; a row with no observed group
        gets the prior p(z) (as the factVAE's product of no experts does), in the first
        component's place, so that its loss and log-likelihood are those of observing nothing."""
        mu, second = self.expert_parameters(x)  # [B, G, K]
        if self.config.components == "free":
            single = DiagonalGaussian(mu, second)  # [B, G, K]: q_g(z | x^(g)), second = log_var
        else:
            alone = torch.ones(*mu.shape[:-1], 1, dtype=torch.bool, device=mu.device)  # [B, G, 1]
            single = product_of_experts(mu.unsqueeze(-2), second.unsqueeze(-2), alone)  # [B, G, K]: p(z) q_g(z | x^(g)), second = Lambda
        prior = ~observed.any(-1, keepdim=True) & (torch.arange(observed.shape[-1], device=observed.device) == 0)  # [B, G]
        zero = torch.zeros((), dtype=mu.dtype, device=mu.device)
        components = DiagonalGaussian(torch.where(prior[..., None], zero, single.mean), torch.where(prior[..., None], zero, single.log_var))
        return GaussianMixture.uniform(components, observed | prior)

    def loss(self, batch: Batch, kl_weight: float = 1.0, step: int = 0) -> dict[str, Tensor]:
        x, masks, observed = self.groups(batch)
        q_z = self.posterior(x, self.drop_groups(observed))
        components = q_z.components
        z = components.rsample().transpose(0, 1)  # [G, B, K]: one draw per component (stratified), strata leading
        log_p_x_z = self.log_p_x_z(z, x, masks).T  # [B, G]
        if self.config.kl_estimate == "bound":
            kl = components.kl_standard_normal()  # [B, G]: KL(q_g || p), averaged below (an upper bound on the mixture's KL)
        else:
            kl = (q_z.log_prob(z) - standard_normal_log_prob(z)).T  # [B, G]: one-sample estimate of KL(q || p) per stratum
        weights = torch.exp(q_z.log_weights)  # [B, G], zero for absent components
        log_p_x_z, kl = (weights * log_p_x_z).sum(-1), (weights * kl).sum(-1)  # [B]: E over the mixture, by strata
        return self._terms(elbo(log_p_x_z, kl, kl_weight), elbo(log_p_x_z, kl), kl)


@register_model("oivae", paper="Ainsworth, Foti, Lee & Fox 2018 (oi-VAE), baseline of Ainsworth, Foti & Fox 2018", summary="oi-VAE: joint encoder, group-sparse factorised generator")
class OIVAE(GroupedVAE):
    """oi-VAE: one joint encoder over all groups (missing groups zero-filled), group-sparse W^(g)."""

    Config = OIVAEConfig

    def __init__(self, config: OIVAEConfig) -> None:
        super().__init__(config)
        c = config
        self.q_z_x = GaussianHead(MLP(sum(c.group_dims), c.encoder_hidden, 2 * c.z_dim, c.activation))

    def posterior(self, x: dict[str, Tensor], observed: Tensor) -> DiagonalGaussian:
        hidden = [torch.where(observed[:, i : i + 1], x[g], torch.zeros((), dtype=x[g].dtype, device=x[g].device)) for i, g in enumerate(self.config.group_names)]
        joint = torch.cat(hidden, dim=-1)  # [B, D]: groups the encoder may not see are zero-filled
        return DiagonalGaussian(*self.q_z_x(joint))
