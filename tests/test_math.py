"""Math identities: likelihoods, KL, bounds, masks, exact enumeration."""

from __future__ import annotations

import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian, standard_normal_log_prob
from pogm.likelihoods import Bernoulli, Categorical, Gaussian
from pogm.models.semi_supervised.m2 import M2, M2Config
from pogm.models.semi_supervised.vae import VAE, VAEConfig
from pogm.objectives import (
    categorical_kl,
    chunked_importance_weighted_bound,
    importance_weighted_bound,
    unlabelled_bound,
    virtual_adversarial_cost,
)


def test_bernoulli_and_gaussian_match_torch_distributions():
    torch.manual_seed(0)
    logits, x = torch.randn(5, 7) * 3, torch.bernoulli(torch.full((5, 7), 0.4))
    expected = torch.distributions.Bernoulli(logits=logits).log_prob(x).sum(-1)
    torch.testing.assert_close(Bernoulli().log_prob(logits, x), expected)

    mean, log_var, x = torch.randn(5, 7), torch.randn(5, 7), torch.randn(5, 7)
    expected = torch.distributions.Normal(mean, torch.exp(0.5 * log_var)).log_prob(x).sum(-1)
    torch.testing.assert_close(Gaussian(scale="predicted").log_prob((mean, log_var), x), expected)
    fixed = torch.distributions.Normal(mean, 1.0).log_prob(x).sum(-1)
    torch.testing.assert_close(Gaussian(7).log_prob(mean, x), fixed)

    logits, y = torch.randn(5, 4), torch.randint(4, (5,))
    torch.testing.assert_close(Categorical().log_prob(logits, y), torch.distributions.Categorical(logits=logits).log_prob(y))


def test_bernoulli_logits_stay_finite_where_probabilities_saturate():
    logits = torch.tensor([[-200.0, 200.0]])
    assert torch.isfinite(Bernoulli().log_prob(logits, torch.tensor([[1.0, 0.0]]))).all()


@pytest.mark.parametrize("likelihood,params", [(Bernoulli(), "logits"), (Gaussian(scale="predicted"), "pair")])
def test_masked_entries_have_zero_value_and_zero_gradient(likelihood, params):
    torch.manual_seed(0)
    x = torch.bernoulli(torch.full((4, 6), 0.5))
    mask = torch.rand(4, 6) > 0.5
    raw = torch.randn(4, 6, requires_grad=True)
    p = raw if params == "logits" else (raw, torch.zeros(4, 6))
    total = likelihood.log_prob(p, x, mask).sum()
    total.backward()
    assert (raw.grad[~mask] == 0).all()
    assert (raw.grad[mask] != 0).all()
    # changing x where it is unobserved changes nothing
    x_changed = torch.where(mask, x, torch.full_like(x, 123.0))
    torch.testing.assert_close(likelihood.log_prob(p, x_changed, mask), likelihood.log_prob(p, x, mask))


def test_masked_out_infinite_density_gives_no_nan():
    # a Gaussian with tiny variance far from an unobserved value: masked by `where`, not multiplied
    lp = Gaussian(scale="predicted").log_prob((torch.zeros(1, 2), torch.full((1, 2), -50.0)), torch.tensor([[0.0, 1e30]]), torch.tensor([[True, False]]))
    assert torch.isfinite(lp).all()


def test_model_loss_ignores_unobserved_pixels_and_sends_them_no_gradient():
    torch.manual_seed(0)
    model = VAE(VAEConfig(x_dim=12, z_dim=3, hidden=(16,)))
    x = torch.bernoulli(torch.full((8, 12), 0.5))
    mask = torch.rand(8, 12) > 0.3
    garbage = torch.where(mask, x, torch.randn(8, 12) * 100).requires_grad_(True)
    torch.manual_seed(1)
    clean = model.loss(Batch(x={"x": torch.where(mask, x, 0.0)}, x_mask={"x": mask}))["loss"]
    torch.manual_seed(1)
    dirty = model.loss(Batch(x={"x": garbage}, x_mask={"x": mask}))["loss"]
    torch.testing.assert_close(clean, dirty)
    dirty.backward()
    assert (garbage.grad[~mask] == 0).all()


def test_analytic_kl_matches_monte_carlo():
    torch.manual_seed(0)
    q = DiagonalGaussian(torch.randn(3, 4), torch.randn(3, 4) * 0.5)
    p = DiagonalGaussian(torch.randn(3, 4), torch.randn(3, 4) * 0.5)
    z = q.rsample(200_000)  # [S, 3, 4]
    mc_std = (q.log_prob(z) - standard_normal_log_prob(z)).mean(0)
    mc_pq = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(q.kl_standard_normal(), mc_std, atol=0.03, rtol=0.01)
    torch.testing.assert_close(q.kl(p), mc_pq, atol=0.03, rtol=0.01)
    torch.testing.assert_close(q.kl(DiagonalGaussian(torch.zeros(3, 4), torch.zeros(3, 4))), q.kl_standard_normal())
    entropy_mc = -q.log_prob(z).mean(0)
    torch.testing.assert_close(q.entropy(), entropy_mc, atol=0.03, rtol=0.01)


class LinearGaussian:
    """p(z) = N(0, I_2), p(x|z) = N(W z + b, s^2 I_3): log p(x) is known in closed form.

    The proposal q(z|x) is deliberately not the exact posterior, so the ELBO is strictly loose.
    """

    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.W = torch.randn(3, 2, generator=g, dtype=torch.float64)
        self.b = torch.randn(3, generator=g, dtype=torch.float64)
        self.s2 = 0.5
        self.x = torch.randn(4, 3, generator=g, dtype=torch.float64) * 2

    def log_p_x(self):
        cov = self.W @ self.W.T + self.s2 * torch.eye(3, dtype=torch.float64)
        return torch.distributions.MultivariateNormal(self.b, cov).log_prob(self.x)

    def log_weights(self, k):
        q = DiagonalGaussian(torch.zeros(4, 2, dtype=torch.float64) + 0.3, torch.zeros(4, 2, dtype=torch.float64))
        z = q.rsample(k)  # [k, 4, 2]
        mean = z @ self.W.T + self.b
        log_p_x_z = torch.distributions.Normal(mean, math.sqrt(self.s2)).log_prob(self.x).sum(-1)
        return log_p_x_z + standard_normal_log_prob(z) - q.log_prob(z)  # [k, 4]


def test_importance_weighted_bound_grows_with_k_and_approaches_log_p_x():
    torch.manual_seed(0)
    model = LinearGaussian()
    exact = model.log_p_x()
    averages = []
    for k in (1, 10, 100, 1000):
        estimates = torch.stack([importance_weighted_bound(model.log_weights(k)) for _ in range(200)])
        averages.append(estimates.mean(0))
    elbo = averages[0]
    for smaller, larger in zip(averages, averages[1:]):
        assert (larger >= smaller - 1e-3).all()  # non-decreasing in k (Burda et al. 2015, theorem 1)
    assert (elbo < exact - 0.1).all()  # the ELBO is genuinely loose here
    assert (averages[-1] <= exact + 0.02).all()
    assert (exact - averages[-1]).abs().max() < 0.05


def test_chunked_bound_equals_unchunked_and_is_stable_for_large_weights():
    log_w = torch.randn(1000, 5, dtype=torch.float64) * 5 - 1e4  # exp() would underflow to 0
    chunks = iter(log_w.split(300))
    chunked = chunked_importance_weighted_bound(lambda n: next(chunks)[:n], 1000, chunk_size=300)
    torch.testing.assert_close(chunked, importance_weighted_bound(log_w))
    assert torch.isfinite(chunked).all()


def test_vae_iw_log_likelihood_is_above_its_elbo():
    torch.manual_seed(0)
    model = VAE(VAEConfig(x_dim=10, z_dim=2, hidden=(8,)))
    batch = Batch(x={"x": torch.bernoulli(torch.full((6, 10), 0.5))})
    elbo = model.log_weights(batch, 2000).mean(0)  # a precise estimate of the ELBO per example
    iw = model.log_likelihood(batch, k=2000, chunk_size=300)
    assert (iw > elbo).all()


def test_unlabelled_bound_enumeration_equals_explicit_sum_over_classes(monkeypatch):
    torch.manual_seed(0)
    K = 4
    model = M2(M2Config(x_dim=9, num_classes=K, z_dim=3, hidden=(11,), weighting="per-batch"))
    # one fixed latent value per (class, example), so the vectorised and the looped passes see the same z
    monkeypatch.setattr(DiagonalGaussian, "rsample", lambda self, n=None: self.mean + 0.1 * torch.ones_like(self.mean))
    x = torch.bernoulli(torch.full((5, 9), 0.5))
    enumerated = model.labelled_bound(x, None, model.every_class)  # [K, B] in one pass
    explicit = torch.stack([model.labelled_bound(x, None, torch.nn.functional.one_hot(torch.full((5,), k), K).float()) for k in range(K)])
    torch.testing.assert_close(enumerated, explicit)

    log_q_y_x = torch.log_softmax(model.q_y_x(x), -1)
    vectorised = unlabelled_bound(log_q_y_x, enumerated.T)
    looped = torch.zeros(5)
    for k in range(K):
        q_k = log_q_y_x[:, k].exp()
        looped = looped + q_k * explicit[k] - q_k * log_q_y_x[:, k]
    torch.testing.assert_close(vectorised, looped)
    # and the model's loss uses exactly this bound for unlabelled rows
    batch = Batch(x={"x": x}, y=torch.zeros(5, dtype=torch.long), y_mask=torch.zeros(5, dtype=torch.bool))
    torch.testing.assert_close(model.loss(batch)["loss"], -looped.mean())


def test_unlabelled_bound_is_a_lower_bound_on_the_labelled_log_sum():
    # sum_y q(y) L_y + H(q) <= log sum_y exp(L_y), with equality at q = softmax(L)
    bounds = torch.randn(3, 5) * 4
    for log_q in (torch.log_softmax(torch.randn(3, 5), -1), torch.log_softmax(bounds, -1)):
        assert (unlabelled_bound(log_q, bounds) <= torch.logsumexp(bounds, -1) + 1e-5).all()
    torch.testing.assert_close(unlabelled_bound(torch.log_softmax(bounds, -1), bounds), torch.logsumexp(bounds, -1))


def test_gaussian_with_a_fixed_standard_deviation_by_name():
    from pogm.likelihoods import make_likelihood

    x, mean = torch.randn(4, 3), torch.randn(4, 3)
    expected = torch.distributions.Normal(mean, 0.25).log_prob(x).sum(-1)
    assert torch.allclose(make_likelihood("gaussian:0.25", 3).log_prob(mean, x, None), expected, atol=1e-5)
    for bad in ("gaussian:0", "gaussian:-1", "gaussian:wide"):
        with pytest.raises(ValueError, match="standard deviation"):
            make_likelihood(bad, 3)


def test_virtual_adversarial_direction_is_the_kl_hessian_times_a_random_direction():
    """Miyato et al. (2018): one power iteration from d gives r_adv along H d, H the Hessian
    of KL(q(y | x) || q(y | x + r)) at r = 0; the cost is the KL at x + r_adv, and it beats random
    directions of the same norm (a cost built from a random or zero direction would not)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.Tanh(), torch.nn.Linear(5, 4)).double()
    x = torch.randn(1, 6, dtype=torch.float64)
    log_q = torch.log_softmax(net(x), -1).detach()

    def kl_at(r):  # [6] -> scalar
        return categorical_kl(log_q, torch.log_softmax(net(x + r), -1)).sum()

    hessian = torch.autograd.functional.hessian(kl_at, torch.zeros(6, dtype=torch.float64))  # [6, 6]
    torch.manual_seed(5)
    d = torch.nn.functional.normalize(torch.randn_like(x), dim=-1)[0]  # the draw virtual_adversarial_cost makes
    expected_direction = torch.nn.functional.normalize(hessian @ d, dim=0)  # [6]
    eps = 0.5
    torch.manual_seed(5)
    cost = virtual_adversarial_cost(net, x, eps, xi=1e-4)
    torch.testing.assert_close(cost, kl_at(eps * expected_direction).reshape(1), rtol=1e-4, atol=1e-9)
    random_costs = torch.stack([kl_at(eps * torch.nn.functional.normalize(torch.randn(6, dtype=torch.float64), dim=0)) for _ in range(50)])
    assert cost.item() > random_costs.median().item()
    # The target is held fixed: the cost's gradient reaches the parameters through q(y | x + r_adv) only.
    assert cost.requires_grad and torch.autograd.grad(cost.sum(), net[0].weight)[0].abs().sum() > 0
