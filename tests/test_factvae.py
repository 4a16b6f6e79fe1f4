"""factVAE, JMVAE+ and oi-VAE: the product of experts, the proximal step, what a missing group
may and may not change, and the mixture's KL estimates (Ainsworth, Foti & Fox 2018)."""

from __future__ import annotations

import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.latents import (
    DiagonalGaussian,
    GaussianMixture,
    product_of_experts,
    standard_normal_log_prob,
)
from pogm.models import model_entry
from pogm.models.base import config_from_dict
from pogm.objectives import group_soft_threshold

GROUPS = {"a": 5, "b": 3, "c": 4}


def grouped_data(n: int = 12, seed: int = 0, missing: dict[str, torch.Tensor] | None = None) -> PartialDataset:
    g = torch.Generator().manual_seed(seed)
    x = {name: torch.rand(n, d, generator=g) for name, d in GROUPS.items()}
    masks = {name: torch.ones(n, 1, dtype=torch.bool) for name in GROUPS}
    for name, rows in (missing or {}).items():
        masks[name][rows] = False
        x[name][rows] = 0.0
    return PartialDataset(x=x, x_mask=masks)


def build(name: str, seed: int = 0, **overrides):
    cls = model_entry(name).cls
    values = cls.data_fields(12, None, 12, 0, grouped_data())
    values.update({"z_dim": 4, **overrides})
    torch.manual_seed(seed)
    return cls(config_from_dict(cls.Config, values))


# ---------------------------------------------------------------- product of experts
def test_product_of_experts_is_the_normalised_product_of_the_densities():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(3, 2, generator=g, dtype=torch.float64)  # [G, K]
    precision = torch.rand(3, 2, generator=g, dtype=torch.float64) * 3
    observed = torch.tensor([True, False, True])
    q = product_of_experts(mu, precision, observed)
    # log q(z) - [log p(z) + sum_{g in O} log N(z; mu_g, 1/Lambda_g)] must not depend on z.
    z = torch.randn(50, 2, generator=g, dtype=torch.float64)
    experts = DiagonalGaussian(mu[observed], -torch.log(precision[observed]))  # [2, K]
    unnormalised = standard_normal_log_prob(z) + experts.log_prob(z[:, None, :]).sum(-1)
    gap = q.log_prob(z) - unnormalised
    assert torch.allclose(gap, gap[0].expand_as(gap), atol=1e-10)
    # and the footnote's formulas, written out
    total = 1 + precision[0] + precision[2]
    assert torch.allclose(q.mean, (precision[0] * mu[0] + precision[2] * mu[2]) / total)
    assert torch.allclose(torch.exp(q.log_var), 1 / total)


def test_adding_a_group_never_increases_the_entropy():
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(8, 4, 6, generator=g)  # [B, G, K]
    precision = torch.rand(8, 4, 6, generator=g) * torch.bernoulli(torch.full((8, 4, 6), 0.5), generator=g)  # some zero: no opinion
    observed = torch.zeros(8, 4, dtype=torch.bool)
    entropies = [product_of_experts(mu, precision, observed).entropy()]
    for group in range(4):
        observed[:, group] = True
        entropies.append(product_of_experts(mu, precision, observed).entropy())
    for before, after in zip(entropies, entropies[1:]):
        assert (after <= before + 1e-6).all()
    assert torch.allclose(entropies[0], torch.full((8,), 0.5 * 6 * (1 + math.log(2 * math.pi))))  # nothing observed: the prior
    # a mixture, by contrast, can become less certain as groups are added (sec. 3)
    far = DiagonalGaussian(torch.tensor([[-3.0], [3.0]]), torch.zeros(2, 1))
    one = GaussianMixture.uniform(far, torch.tensor([True, False])).entropy_estimate(20000)
    two = GaussianMixture.uniform(far, torch.tensor([True, True])).entropy_estimate(20000)
    assert two > one + 0.5


# ---------------------------------------------------------------- the proximal step
def test_group_soft_threshold_shrinks_columns_and_zeroes_the_short_ones():
    phi = torch.tensor([[3.0, 0.1, 0.0], [4.0, 0.1, 0.0]])  # column norms 5, 0.141, 0
    out = group_soft_threshold(phi, threshold=0.5)
    assert torch.allclose(out[:, 0], phi[:, 0] * (5 - 0.5) / 5)  # same direction, norm reduced by eta * lambda
    assert torch.equal(out[:, 1], torch.zeros(2))  # norm below eta * lambda: exactly zero
    assert torch.equal(out[:, 2], torch.zeros(2))  # a zero column stays zero, no NaN
    with pytest.raises(ValueError, match=">= 0"):
        group_soft_threshold(phi, -1.0)


@pytest.mark.parametrize("features", [32, 4])  # 4 = z_dim: V^(g) is square, W and V must not be mixed up
def test_the_models_proximal_step_thresholds_w_columns_and_v_rows_together(features):
    model = build("factvae", sparsity=2.0, prox_lr=0.1, encoder_features=features, prior_scale="per-example")  # threshold eta * lambda = 0.2
    with torch.no_grad():
        W, V = model.generators["a"].W, model.experts["a"].V  # [p, K], [K, H]
        W.normal_()
        V.normal_()
        W[:, 1] = 0.05
        V[1, :] = 0.01  # column 1 of Phi^(a) is short
    norms = torch.sqrt((W**2).sum(0) + (V**2).sum(1))  # [K]: ||[W_:,j; V_j,:]||
    expected_W = W * torch.clamp(norms - 0.2, min=0) / norms
    expected_V = V * (torch.clamp(norms - 0.2, min=0) / norms)[:, None]
    model.proximal_step()
    assert torch.allclose(W, expected_W) and torch.allclose(V, expected_V)
    assert torch.equal(W[:, 1], torch.zeros_like(W[:, 1])) and torch.equal(V[1], torch.zeros_like(V[1]))
    assert model.sparsity_pattern()[0, 1] == 0
    unpenalised = build("factvae", sparsity=0.0)
    before = [p.clone() for p in unpenalised.proximal_parameters()]
    unpenalised.proximal_step()
    assert all(torch.equal(a, b) for a, b in zip(before, unpenalised.proximal_parameters()))


def test_the_shrinkage_is_eta_lambda_whatever_the_kl_warmup_unless_asked():
    algorithm_1 = build("factvae", sparsity=2.0, prox_lr=0.1, prior_scale="per-example")  # eta * lambda = 0.2
    warmed = build("factvae", sparsity=2.0, prox_lr=0.1, lasso_warmup=True, prior_scale="per-example")
    warmed.load_state_dict(algorithm_1.state_dict())
    norms = algorithm_1.sparsity_pattern()  # [G, K]
    algorithm_1.proximal_step(0.0)  # the Trainer passes the KL weight: 0 at the start of a warm-up
    warmed.proximal_step(0.0)
    assert torch.allclose(algorithm_1.sparsity_pattern(), torch.clamp(norms - 0.2, min=0), atol=1e-6)
    assert torch.allclose(warmed.sparsity_pattern(), norms)  # scaled by the KL weight: no shrinkage yet
    warmed.proximal_step(0.5)
    assert torch.allclose(warmed.sparsity_pattern(), torch.clamp(norms - 0.1, min=0), atol=1e-6)


def _losses_of_one_draw(first, second):
    """Both models' losses on the 12 rows of `grouped_data`, ``second`` holding ``first``'s weights
    and the same random draws."""
    second.load_state_dict(first.state_dict())
    batch = grouped_data().batch(torch.arange(12))
    torch.manual_seed(1)
    a = first.loss(batch)
    torch.manual_seed(1)
    return a, second.loss(batch)


def test_the_data_set_scale_counts_both_priors_once_per_data_set():
    per_example = build("factvae", sparsity=2.4, prox_lr=0.1, prior_scale="per-example")
    data_set = build("factvae", sparsity=2.4, prox_lr=0.1)  # the default; N = 12 training rows
    assert data_set.config.num_train == 12
    a, b = _losses_of_one_draw(per_example, data_set)
    log_p_theta = per_example.log_p_theta().detach()
    assert torch.allclose(a["loss"] - b["loss"], -(1 - 1 / 12) * log_p_theta, atol=1e-4)  # log p(theta) / N per example
    assert torch.allclose(b["group_lasso"], a["group_lasso"] / 12)
    norms = data_set.sparsity_pattern()
    data_set.proximal_step()
    assert torch.allclose(data_set.sparsity_pattern(), torch.clamp(norms - 0.1 * 2.4 / 12, min=0), atol=1e-6)  # eta * lambda / N
    with pytest.raises(ValueError, match="num_train"):
        build("factvae", num_train=None)


def test_lasso_per_example_shrinks_by_eta_lambda_and_keeps_theta_prior_once_per_data_set():
    data_set = build("factvae", sparsity=2.4, prox_lr=0.1)  # N = 12 training rows
    mixed = build("factvae", sparsity=2.4, prox_lr=0.1, prior_scale="lasso-per-example")
    a, b = _losses_of_one_draw(data_set, mixed)
    assert torch.allclose(a["loss"], b["loss"])  # log p(theta) / N in both
    assert torch.allclose(b["group_lasso"], a["group_lasso"] * 12)  # lambda counts per example
    norms = mixed.sparsity_pattern()
    mixed.proximal_step()
    assert torch.allclose(mixed.sparsity_pattern(), torch.clamp(norms - 0.1 * 2.4, min=0), atol=1e-6)  # eta * lambda
    with pytest.raises(ValueError, match="num_train"):
        build("factvae", num_train=None, prior_scale="lasso-per-example")


def test_phi_starts_with_unit_variance_entries_unless_fan_in_is_asked():
    torch.manual_seed(0)
    unit = build("factvae", z_dim=16, group_input_dim=64, encoder_features=64)
    fan_in = build("factvae", z_dim=16, group_input_dim=64, encoder_features=64, phi_init="fan-in")
    rows = 64 + 64  # W's rows and V's columns make up a column of Phi
    assert unit.sparsity_pattern().mean() == pytest.approx(math.sqrt(rows), rel=0.1)  # N(0, 1) entries
    assert fan_in.sparsity_pattern().mean() < 0.5 * math.sqrt(rows) / math.sqrt(3)  # U(+-1/sqrt(fan_in)): far shorter
    with pytest.raises(ValueError, match="phi_init"):
        build("factvae", phi_init="xavier")


@pytest.mark.parametrize("name", ["factvae", "jmvae-plus", "oivae"])
def test_the_theta_prior_covers_encoders_and_generators_but_not_phi(name):
    model = build(name)
    generators_only = build(name, theta_prior_covers="generators")
    generators_only.load_state_dict(model.state_dict())
    before, before_gen = model.log_p_theta(), generators_only.log_p_theta()
    with torch.no_grad():
        for m in (model, generators_only):
            m.encoder_parameters()[0].add_(1.0)  # an encoder weight moves away from 0
    assert model.log_p_theta() < before - 1.0  # eq. 9's theta: the prior charges the encoder too
    assert torch.equal(generators_only.log_p_theta(), before_gen)  # the oi-VAE code's prior: generators only
    with torch.no_grad():
        moved = model.log_p_theta()
        for p in model.proximal_parameters():
            p.mul_(10.0)
    assert torch.equal(model.log_p_theta(), moved)  # Phi has the group lasso, not the Gaussian prior
    theta = {id(p) for p in model.theta_parameters()}
    assert not theta & {id(p) for p in model.p_x.parameters()}  # nor have the likelihoods' scales
    assert theta | {id(p) for p in model.proximal_parameters()} | {id(p) for p in model.p_x.parameters()} == {id(p) for p in model.parameters()}


def test_the_oivae_penalises_w_only():
    model = build("oivae")
    assert [tuple(p.shape) for p in model.proximal_parameters()] == [(8, 4)] * 3
    assert len(build("factvae").proximal_parameters()) == 6  # W and V per group


# ---------------------------------------------------------------- missing groups
@pytest.mark.parametrize("name", ["factvae", "jmvae-plus", "oivae"])
def test_an_all_missing_group_changes_neither_the_posterior_nor_the_loss(name):
    model = build(name)
    model.eval()  # no group dropout: the comparison is exact
    rows = torch.arange(12)
    data = grouped_data(missing={"b": rows})
    batch = data.batch(rows)
    garbage = Batch(x={**batch.x, "b": torch.randn(12, 3) * 100}, x_mask=dict(batch.x_mask))  # the hidden values differ
    torch.manual_seed(0)
    first = model.loss(batch)
    torch.manual_seed(0)
    second = model.loss(garbage)
    assert torch.equal(first["loss"], second["loss"])
    assert torch.equal(model.encode(batch), model.encode(garbage))
    # the generator of b gets no gradient from the likelihood (only the theta prior reaches it)
    model.zero_grad()
    x, masks, _ = model.groups(batch)
    z = torch.randn(12, 4)
    model.log_p_x_z(z, x, masks).sum().backward()
    assert all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in model.generators["b"].parameters())


def test_factvae_posterior_ignores_exactly_the_missing_groups_row_by_row():
    model = build("factvae")
    missing = {"a": torch.tensor([0, 3]), "b": torch.tensor([1, 3, 5]), "c": torch.tensor([2])}
    data = grouped_data(missing=missing)
    batch = data.batch(torch.arange(12))
    x, _, observed = model.groups(batch)
    q = model.posterior(x, observed)
    mu, precision = model.expert_parameters(x)
    for row in range(12):
        keep = [g for g in range(3) if bool(observed[row, g])]
        total = 1 + precision[row, keep].sum(0)
        assert torch.allclose(q.mean[row], (precision[row, keep] * mu[row, keep]).sum(0) / total, atol=1e-6)
        alone = model.posterior({k: v[row : row + 1] for k, v in x.items()}, observed[row : row + 1])
        assert torch.allclose(alone.mean[0], q.mean[row], atol=1e-6) and torch.allclose(alone.log_var[0], q.log_var[row], atol=1e-6)
    assert observed.sum().item() == 36 - 6


def test_group_dropout_hides_only_observed_groups_and_keeps_at_least_one():
    model = build("factvae", group_dropout=0.5)
    model.train()
    observed = torch.rand(4000, 3, generator=torch.Generator().manual_seed(0)) > 0.3
    observed[:, 0] |= ~observed.any(-1)
    torch.manual_seed(0)
    seen = model.drop_groups(observed)
    assert not (seen & ~observed).any()  # never shows the encoder a group that is not there
    assert seen.any(-1).all()  # at least one group per row
    every = torch.ones(4000, 3, dtype=torch.bool)
    kept = model.drop_groups(every).float().mean().item()
    assert 0.52 < kept < 0.56  # half dropped, plus one of three back in the 1/8 of rows left empty: 0.5417
    model.eval()
    assert torch.equal(model.drop_groups(observed), observed)


def test_oivae_cannot_tell_a_missing_group_from_a_group_of_zeros():
    model = build("oivae")
    rows = torch.arange(12)
    missing = grouped_data(missing={"b": rows}).batch(rows)
    zeros = Batch(x=dict(missing.x), x_mask={k: torch.ones(12, 1, dtype=torch.bool) for k in GROUPS})
    assert torch.equal(model.encode(missing), model.encode(zeros))  # the documented limitation
    factvae = build("factvae")
    assert not torch.equal(factvae.encode(missing), factvae.encode(zeros))


# ---------------------------------------------------------------- JMVAE+
def test_jmvae_kl_bound_lies_below_the_stratified_mixture_elbo_on_average():
    torch.manual_seed(0)
    bound = build("jmvae-plus", kl_estimate="bound")
    exact = build("jmvae-plus", kl_estimate="stratified")
    exact.load_state_dict(bound.state_dict())
    bound.eval(), exact.eval()
    batch = grouped_data().batch(torch.arange(12))
    with torch.no_grad():
        a = torch.stack([bound.loss(batch)["elbo"] for _ in range(400)]).mean()
        b = torch.stack([exact.loss(batch)["elbo"] for _ in range(400)]).mean()
    assert a < b  # KL(mixture || p) <= the average KL of its components
    ll = exact.log_likelihood(batch, k=2000).mean()
    assert b <= ll + 0.05  # and both lie below log p(x)


def test_jmvae_prior_expert_components_are_the_single_group_factvae_posteriors():
    model = build("jmvae-plus", components="prior-expert")
    batch = grouped_data().batch(torch.arange(12))
    x, _, observed = model.groups(batch)
    q = model.posterior(x, observed)
    for g in range(3):
        only = torch.zeros_like(observed)
        only[:, g] = True
        single = build("factvae")
        single.load_state_dict(model.state_dict())
        alone = single.posterior(x, only)
        assert torch.allclose(q.components.mean[:, g], alone.mean, atol=1e-6)
    assert torch.allclose(torch.exp(q.log_weights), torch.full((12, 3), 1 / 3))


def test_jmvae_free_components_are_each_groups_own_gaussian_and_may_be_wider_than_the_prior():
    model = build("jmvae-plus")  # components="free", the paper's
    assert not any("V" in name.split(".")[-1] for name, _ in model.named_parameters())  # no precision weights
    batch = grouped_data().batch(torch.arange(12))
    x, _, observed = model.groups(batch)
    with torch.no_grad():
        model.experts["b"].log_var.bias.fill_(3.0)  # group b is unsure: variance about e^3
        model.experts["b"].log_var.weight.zero_()
    q = model.posterior(x, observed)
    mu_b, log_var_b = model.experts["b"](x["b"])  # [B, K] each
    assert torch.allclose(q.components.mean[:, 1], mu_b) and torch.allclose(q.components.log_var[:, 1], log_var_b)
    assert (q.components.log_var[:, 1] > 2.9).all()  # above the prior's variance: a prior x expert component cannot be
    capped = build("jmvae-plus", components="prior-expert")
    assert (capped.posterior(x, observed).components.log_var <= 1e-6).all()
    with pytest.raises(ValueError, match="components"):
        build("jmvae-plus", components="mixture")


@pytest.mark.parametrize("kl_estimate", ["bound", "stratified"])
def test_jmvae_row_with_no_observed_group_gets_the_prior_a_finite_loss_and_log_likelihood(kl_estimate):
    model = build("jmvae-plus", kl_estimate=kl_estimate)
    model.eval()
    rows = torch.arange(12)
    nothing = torch.tensor([4, 7])  # rows 4 and 7 observe no group at all
    batch = grouped_data(missing={g: nothing for g in GROUPS}).batch(rows)
    x, _, observed = model.groups(batch)
    q = model.posterior(x, observed)
    for row in nothing.tolist():  # the prior: one component N(0, I) of weight 1
        assert torch.equal(q.log_weights[row], torch.tensor([0.0, -math.inf, -math.inf]))
        assert torch.equal(q.components.mean[row, 0], torch.zeros(4)) and torch.equal(q.components.log_var[row, 0], torch.zeros(4))
    terms = model.loss(batch)
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    ll = model.log_likelihood(batch, k=50)
    assert torch.isfinite(ll).all()
    assert torch.allclose(ll[nothing], torch.zeros(2), atol=1e-5)  # log p(nothing observed) = 0
    # and the other rows are what they are without the empty rows
    full = model.log_likelihood(grouped_data().batch(rows), k=50)
    assert not torch.allclose(full[nothing], torch.zeros(2), atol=1e-3)  # the prior is not what observed rows get
