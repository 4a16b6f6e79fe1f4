"""The auxiliary models (auxiliary VAE, ADGM, SDGM; Maaløe et al. 2016) against exact answers.

With a one-dimensional z (and a), log p(x) of a small model is a sum over classes of an integral
that quadrature computes to many digits, so the bounds can be checked against the truth:
the ELBO stays below log p(x), the importance-weighted bound approaches it, and the training
objective has the same expectation as the k = 1 importance weight.
"""

from __future__ import annotations

import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.latents import DiagonalGaussian, standard_normal_log_prob
from pogm.models.semi_supervised.adgm import ADGM, SDGM, ADGMConfig
from pogm.models.semi_supervised.avae import AuxiliaryVAE, AuxiliaryVAEConfig

D, K = 6, 2
GRID = torch.linspace(-9, 9, 1801, dtype=torch.float64)  # quadrature nodes for z and a
STEP = float(GRID[1] - GRID[0])
GRID_2D = torch.linspace(-9, 9, 601, dtype=torch.float64)  # per axis of a 2-D integral (SDGM: a and z)
STEP_2D = float(GRID_2D[1] - GRID_2D[0])


def _x(n: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.bernoulli(torch.full((n, D), 0.5), generator=torch.Generator().manual_seed(seed)).double()


def _double(model):
    return model.double().eval()


def exact_log_p_x_avae(model: AuxiliaryVAE, x: torch.Tensor) -> torch.Tensor:
    """log int p(x|z1) p(z1) dz1 (one layer) or log int int p(x|z1) p(z1|z2) p(z2) (two) by quadrature."""
    z = GRID.reshape(-1, 1, 1)  # [G, 1, 1]
    log_p_x_z = model.p_x.log_prob(model.p_x_z(z), x, None)  # [G, B]
    if not model.config.z2_dim:
        return torch.logsumexp(log_p_x_z + standard_normal_log_prob(z), 0) + math.log(STEP)
    z2 = GRID.reshape(-1, 1)  # [G2, 1]
    log_p_z1_z2 = DiagonalGaussian(*model.p_z1_z2(z2)).log_prob(GRID.reshape(-1, 1, 1))  # [G1, G2]: z1 x z2
    log_p_z1 = torch.logsumexp(log_p_z1_z2 + standard_normal_log_prob(z2), 1) + math.log(STEP)  # [G1]
    return torch.logsumexp(log_p_x_z + log_p_z1.unsqueeze(1), 0) + math.log(STEP)


def exact_log_p_x_ssl(model: ADGM, x: torch.Tensor) -> torch.Tensor:
    """log sum_y p(y) int p(x|y,z) p(z) dz (ADGM: a drops out) or, for the SDGM,
    log sum_y p(y) int int p(x|a,y,z) p(a|y,z) p(z) da dz, by quadrature."""
    per_class = []
    for y in range(K):
        y_one_hot = torch.nn.functional.one_hot(torch.tensor(y), K).double()
        if model.skip:
            grid, step = GRID_2D, STEP_2D
            z = grid.reshape(-1, 1, 1, 1)  # [Gz, 1, 1, 1]
            a = grid.reshape(1, -1, 1, 1)  # [1, Ga, 1, 1]
            log_p_x = model.p_x.log_prob(model.p_x_ayz(z.expand(-1, a.shape[1], 1, 1), y_one_hot, a.expand(z.shape[0], -1, 1, 1)), x, None)  # [Gz, Ga, B]
            log_p_a = DiagonalGaussian(*model.p_a_yz(z, y_one_hot)).log_prob(a)  # [Gz, Ga, 1]
            inner = torch.logsumexp(log_p_x + log_p_a, 1) + math.log(step)  # [Gz, B]
        else:
            grid, step = GRID, STEP
            inner = model.p_x.log_prob(model.p_x_yz(grid.reshape(-1, 1, 1), y_one_hot), x, None)  # [Gz, B]
        log_p_z = standard_normal_log_prob(grid.reshape(-1, 1, 1))  # [Gz, 1]
        per_class.append(torch.logsumexp(inner + log_p_z, 0) + math.log(step) - math.log(K))
    return torch.logsumexp(torch.stack(per_class), 0)


def _models():
    torch.manual_seed(0)
    yield "avae", _double(AuxiliaryVAE(AuxiliaryVAEConfig(x_dim=D, a_dim=1, z_dim=1, hidden=(8,), activation="tanh"))), exact_log_p_x_avae
    yield "avae-2-layers", _double(AuxiliaryVAE(AuxiliaryVAEConfig(x_dim=D, a_dim=1, z_dim=1, z2_dim=1, hidden=(8,), top_hidden=(4,), activation="tanh"))), exact_log_p_x_avae
    for cls in (ADGM, SDGM):
        yield cls.__name__, _double(cls(ADGMConfig(x_dim=D, num_classes=K, a_dim=1, z_dim=1, hidden=(8,), activation="tanh"))), exact_log_p_x_ssl


@pytest.mark.parametrize("name,model,exact", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_bounds_against_the_exact_log_likelihood(name, model, exact):
    x = _x()
    batch = Batch(x={"x": x})
    log_p_x = exact(model, x)  # [B]
    torch.manual_seed(1)
    with torch.no_grad():
        log_w = model.log_weights(batch, 20000)  # [k, B], k = 1 weights
        elbo, se = log_w.mean(0), log_w.std(0) / math.sqrt(log_w.shape[0])
        iw = model.log_likelihood(batch, k=5000, chunk_size=1000)
    assert torch.all(elbo + 4 * se < log_p_x), (elbo, log_p_x)  # a lower bound, and a strict one here
    assert torch.all(iw <= log_p_x + 0.05), (iw, log_p_x)  # up to Monte Carlo noise
    assert torch.all(log_p_x - iw < 0.25 * (log_p_x - elbo)), (iw, elbo, log_p_x)  # IW closes most of the gap
    assert torch.allclose(iw, log_p_x, atol=0.15)


def _replicated(x: torch.Tensor, n: int, labelled: bool) -> Batch:
    rows = x[:1].expand(n, -1).clone()
    return Batch(x={"x": rows}, y=torch.zeros(n, dtype=torch.long), y_mask=torch.full((n,), labelled))


@pytest.mark.parametrize("cls", [ADGM, SDGM])
def test_the_unlabelled_objective_is_the_k1_importance_weight_in_expectation(cls):
    """-U(x) (y summed exactly, analytic KL and entropy) and E_q[log w] with y, a, z all sampled
    estimate the same number: a wrong constant or a missing term would separate them."""
    torch.manual_seed(0)
    model = _double(cls(ADGMConfig(x_dim=D, num_classes=K, a_dim=2, z_dim=2, hidden=(8,), a_samples=2)))
    x = _x(1)
    with torch.no_grad():
        bounds = torch.stack([model.loss(_replicated(x, 4000, labelled=False))["bound_unlabelled"] for _ in range(5)])
        log_w = model.log_weights(Batch(x={"x": x}), 40000)[:, 0]
    se = math.sqrt(log_w.var() / log_w.numel() + bounds.var() / bounds.numel())
    assert abs(bounds.mean() - log_w.mean()) < 4 * se + 1e-3


def test_avae_training_bound_is_the_k1_importance_weight_in_expectation():
    torch.manual_seed(0)
    for z2 in (0, 2):
        model = _double(AuxiliaryVAE(AuxiliaryVAEConfig(x_dim=D, a_dim=2, z_dim=2, z2_dim=z2, hidden=(8,), top_hidden=(4,))))
        x = _x(1)
        with torch.no_grad():
            elbos = torch.stack([model.loss(Batch(x={"x": x[:1].expand(4000, -1)}))["elbo"] for _ in range(5)])
            log_w = model.log_weights(Batch(x={"x": x}), 40000)[:, 0]
        se = math.sqrt(log_w.var() / log_w.numel() + elbos.var() / elbos.numel())
        assert abs(elbos.mean() - log_w.mean()) < 4 * se + 1e-3


@pytest.mark.parametrize("cls", [ADGM, SDGM])
def test_each_sample_of_a_is_drawn_once_and_shared_by_every_class_and_the_classifier(cls):
    model = cls(ADGMConfig(x_dim=D, num_classes=3, a_dim=2, z_dim=2, hidden=(8,), a_samples=4))
    seen: dict[str, list] = {"q_y_ax": [], "q_z_axy": []}
    model.q_y_ax.register_forward_hook(lambda m, args, out: seen["q_y_ax"].append(args[1]))
    model.q_z_axy.register_forward_hook(lambda m, args, out: seen["q_z_axy"].append((args[1], args[2])))
    draws = []
    original = DiagonalGaussian.rsample

    def counting_rsample(self, n=None):
        value = original(self, n)
        draws.append(value.shape)
        return value

    batch = Batch(x={"x": _x(5).float()}, y=torch.tensor([0, 1, 2, 0, 1]), y_mask=torch.tensor([True, True, False, False, False]))
    DiagonalGaussian.rsample = counting_rsample
    try:
        model.loss(batch)
    finally:
        DiagonalGaussian.rsample = original
    (a,) = seen["q_y_ax"]  # one classifier pass over all rows and all samples of a
    assert a.shape == (4, 5, 2)
    (a_l, y_l), (a_u, y_u) = seen["q_z_axy"]
    assert torch.equal(a_l, a[:, :2]) and torch.equal(a_u, a[:, 2:])  # the classifier's a, not a new draw
    assert y_u.shape == (3, 1, 1, 3)  # every class broadcast against the same a: [K, 1, 1, K] x [S, B, A]
    assert draws.count((4, 5, 2)) == 1  # a drawn once, for all rows


def test_classification_averages_q_y_given_a_over_samples_of_a():
    torch.manual_seed(0)
    model = ADGM(ADGMConfig(x_dim=D, num_classes=3, a_dim=2, z_dim=2, hidden=(8,), classify_a_samples=50)).eval()
    x = _x(4).float()
    torch.manual_seed(5)
    log_q_y_x = model.classify(x)
    torch.manual_seed(5)
    q_a = DiagonalGaussian(*model.q_a_x(x))
    a = q_a.rsample(50)
    expected = torch.softmax(model.q_y_ax(x, a), -1).mean(0)
    assert torch.allclose(log_q_y_x.exp(), expected, atol=1e-6)
    assert torch.allclose(log_q_y_x.exp().sum(-1), torch.ones(4), atol=1e-6)
    deterministic = ADGM(ADGMConfig(x_dim=D, num_classes=3, a_dim=2, z_dim=2, hidden=(8,), classify_a_samples=0))
    deterministic.load_state_dict(model.state_dict())
    assert torch.allclose(deterministic.eval().classify(x), torch.log_softmax(model.q_y_ax(x, q_a.mean), -1), atol=1e-6)


def test_sdgm_generates_through_a_and_adgm_does_not():
    sdgm = SDGM(ADGMConfig(x_dim=D, num_classes=K, a_dim=2, z_dim=2, hidden=(8,)))
    adgm = ADGM(ADGMConfig(x_dim=D, num_classes=K, a_dim=2, z_dim=2, hidden=(8,)))
    assert hasattr(sdgm, "p_x_ayz") and hasattr(sdgm, "p_a_yz") and not hasattr(sdgm, "p_a_xyz")
    assert hasattr(adgm, "p_x_yz") and hasattr(adgm, "p_a_xyz")
    # the SDGM's p(x|a,y,z) reads a: changing a changes the image
    z, y = torch.zeros(1, 2), torch.tensor([[1.0, 0.0]])
    assert not torch.allclose(sdgm.p_x_ayz(z, y, torch.zeros(1, 2)), sdgm.p_x_ayz(z, y, torch.ones(1, 2)))
