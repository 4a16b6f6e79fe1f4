"""The refined importance-sampling estimate of log p(x) (`pogm.evaluate.refined`): on a linear
Gaussian model, whose log p(x) is known in closed form, it closes the gap a bad proposal leaves
in the plain importance-weighted bound, with a Gaussian or a mixture as the encoder's q."""

from __future__ import annotations

import math

import pytest
import torch

from pogm.evaluate.refined import mean_refined_log_likelihood, refined_log_likelihood
from pogm.evaluate import mean_log_likelihood
from pogm.latents import DiagonalGaussian, GaussianMixture, standard_normal_log_prob
from pogm.objectives.bounds import importance_weighted_bound

from tests.test_factvae import build, grouped_data

K, D, SIGMA = 3, 6, 0.3


def linear_gaussian(seed: int = 0):
    """z ~ N(0, I_K), x | z ~ N(W z + b, sigma^2 I_D) with orthogonal columns of W (so p(z | x)
    is a diagonal Gaussian); returns (x [B, D], log_joint, exact log p(x) [B], exact p(z | x))."""
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(D, K, generator=g, dtype=torch.float64))
    W = basis * torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)  # [D, K], W^T W diagonal
    b = torch.randn(D, generator=g, dtype=torch.float64)
    z = torch.randn(8, K, generator=g, dtype=torch.float64)
    x = z @ W.T + b + SIGMA * torch.randn(8, D, generator=g, dtype=torch.float64)  # [B, D]

    def log_joint(z: torch.Tensor) -> torch.Tensor:  # [n, B, K] -> [n, B]
        mean = z @ W.T + b  # [n, B, D]
        return (-0.5 * (math.log(2 * math.pi * SIGMA**2) + (x - mean) ** 2 / SIGMA**2)).sum(-1) + standard_normal_log_prob(z)

    exact = torch.distributions.MultivariateNormal(b, W @ W.T + SIGMA**2 * torch.eye(D, dtype=torch.float64)).log_prob(x)  # [B]
    precision = 1 + (W**2).sum(0) / SIGMA**2  # [K]
    posterior = DiagonalGaussian(((x - b) @ W) / SIGMA**2 / precision, (-torch.log(precision)).expand(8, K))
    return x, log_joint, exact, posterior


def close(estimate: torch.Tensor, exact: torch.Tensor) -> bool:
    """Within sampling noise of the truth: every row within 0.15 nats, on average within 0.05."""
    return bool((estimate - exact).abs().max() < 0.15 and (estimate - exact).mean().abs() < 0.05)


def plain_bound(log_joint, q, k: int) -> torch.Tensor:
    z = q.sample(k)
    return importance_weighted_bound(log_joint(z) - q.log_prob(z))


def test_the_refined_estimate_closes_the_gap_that_a_bad_proposal_leaves():
    torch.manual_seed(0)
    _, log_joint, exact, posterior = linear_gaussian()
    bad = DiagonalGaussian(posterior.mean + 3 * torch.exp(0.5 * posterior.log_var), posterior.log_var - math.log(20))  # 3 sd off, 20x too narrow
    plain = plain_bound(log_joint, bad, 500)
    refined = refined_log_likelihood(log_joint, bad, k=500, steps=300)
    assert (exact - plain).mean() > 5.0  # the plain bound is far below log p(x)
    assert close(refined, exact)  # the refined one is on it, up to sampling noise
    # with the exact posterior as q the plain bound is exact already, and refining keeps it so
    assert torch.allclose(plain_bound(log_joint, posterior, 50), exact, atol=1e-6)
    assert close(refined_log_likelihood(log_joint, posterior, k=200, steps=50), exact)


def test_without_refinement_steps_the_defensive_mixture_alone_is_a_lower_bound_that_can_be_loose():
    torch.manual_seed(0)
    _, log_joint, exact, posterior = linear_gaussian(1)
    bad = DiagonalGaussian(posterior.mean + 3 * torch.exp(0.5 * posterior.log_var), posterior.log_var - math.log(20))
    unrefined = refined_log_likelihood(log_joint, bad, k=500, steps=0)
    refined = refined_log_likelihood(log_joint, bad, k=500, steps=300)
    assert (unrefined < exact + 0.05).all() and (exact - unrefined).mean() > 0.5  # the fit, not the mixture, closes the gap
    assert (refined - unrefined).mean() > 0.5


def test_a_mixture_proposal_is_refined_from_its_moments():
    torch.manual_seed(0)
    _, log_joint, exact, posterior = linear_gaussian(2)
    sd = torch.exp(0.5 * posterior.log_var)
    components = DiagonalGaussian(torch.stack([posterior.mean - 2 * sd, posterior.mean + 2 * sd], 1), (posterior.log_var - math.log(10)).unsqueeze(1).expand(-1, 2, -1))  # [B, 2, K]
    mixture = GaussianMixture.uniform(components, torch.ones(8, 2, dtype=torch.bool))
    assert (exact - plain_bound(log_joint, mixture, 500)).mean() > 1.0
    assert close(refined_log_likelihood(log_joint, mixture, k=500, steps=300), exact)


@pytest.mark.parametrize("name", ["factvae", "jmvae-plus"])
def test_the_grouped_models_refined_estimate_is_finite_and_not_below_their_own_bound(name):
    model = build(name).eval()
    data = grouped_data(missing={"b": torch.tensor([0, 3])})  # some rows lack a group
    torch.manual_seed(0)
    own = mean_log_likelihood(model, data, k=200)
    refined = mean_refined_log_likelihood(model, data, k=200, steps=100)
    assert math.isfinite(refined) and refined > own - 0.05
    assert all(p.grad is None for p in model.parameters())  # the fit steps the proposal only


def test_a_model_without_importance_parts_is_refused_with_the_reason():
    from pogm.models import model_entry
    from pogm.models.base import config_from_dict

    cls = model_entry("vae").cls
    model = cls(config_from_dict(cls.Config, cls.data_fields(12, None, 12, 0, None)))
    with pytest.raises(ValueError, match="importance_parts"):
        mean_refined_log_likelihood(model, grouped_data(), k=10)
