"""The Hybrid VAE's image likelihood and training settings: the floor under the predicted variance
(``gaussian-predicted:MIN_STD``, ``depth-predicted:MIN_STD``), the paper's SGD as a setting of the
table's runs, and equal CPU budgets for the F-VAE and H-VAE runs that a row compares."""

from __future__ import annotations

import math

import pytest
import torch

from pogm.likelihoods import Gaussian, ObservedOrNot, make_likelihood
from pogm.models.hybrid.paper_table import HYBRID_GRID, HYBRID_MODEL_SETTINGS, HYBRID_VAE, hybrid_overrides


def normal_log_density(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return -0.5 * (math.log(2 * math.pi) + torch.log(var) + (x - mean) ** 2 / var)


# ---------------------------------------------------------------- the floor under the predicted variance


def test_the_floor_bounds_the_variance_and_the_density_matches_a_hand_computation():
    likelihood = make_likelihood("gaussian-predicted:0.05", 3)
    assert isinstance(likelihood, Gaussian) and likelihood.scale == "predicted" and likelihood.min_std == 0.05
    mean = torch.tensor([[0.1, 0.5, 0.9]], dtype=torch.float64)
    raw = torch.tensor([[-40.0, math.log(0.05**2), 1.0]], dtype=torch.float64)  # tiny, at the floor, large
    x = torch.tensor([[0.1, 0.6, -0.3]], dtype=torch.float64)
    params = torch.cat([mean, raw], -1)
    _, log_var = likelihood.split(params)
    var = raw.exp() + 0.05**2  # the variance is exp(s) + min_std^2
    torch.testing.assert_close(log_var.exp(), var)
    assert (log_var.exp() >= 0.05**2).all()
    assert log_var[0, 1].exp().item() == pytest.approx(2 * 0.05**2)
    by_hand = normal_log_density(x, mean, var).sum(-1)
    torch.testing.assert_close(likelihood.log_prob(params, x), by_hand)
    # a pixel at its mean can gain at most -log(min_std sqrt(2 pi)) nats, however small exp(s) gets
    at_mean = likelihood.log_prob(torch.cat([mean, torch.full_like(raw, -80.0)], -1), mean)
    assert at_mean.item() == pytest.approx(3 * -math.log(0.05 * math.sqrt(2 * math.pi)), rel=1e-9)
    # the mean, sample and the (mean, log_var) pair see the floored variance too
    torch.testing.assert_close(likelihood.mean(params), mean)
    torch.testing.assert_close(likelihood.split((mean, raw))[1], log_var)


def test_without_a_floor_the_predicted_variance_is_unchanged():
    likelihood = make_likelihood("gaussian-predicted", 2)
    assert likelihood.min_std == 0.0
    mean, raw, x = torch.tensor([[0.0, 1.0]]), torch.tensor([[-30.0, 0.5]]), torch.tensor([[0.001, 0.2]])
    torch.testing.assert_close(likelihood.log_prob(torch.cat([mean, raw], -1), x), normal_log_density(x, mean, raw.exp()).sum(-1))


def test_the_floor_keeps_a_gradient_for_the_predicted_variance():
    """A smooth floor, not a clamp: the variance output still learns just above the floor."""
    likelihood = make_likelihood("gaussian-predicted:0.1", 1)
    raw = torch.tensor([[math.log(0.1**2)]], requires_grad=True)
    likelihood.log_prob(torch.cat([torch.zeros(1, 1), raw], -1), torch.tensor([[0.5]])).sum().backward()
    assert raw.grad.abs().item() > 1.0


def test_the_depth_likelihood_with_a_floor_is_normalised_and_bounded():
    likelihood = make_likelihood("depth-predicted:0.1", 1)
    assert isinstance(likelihood, ObservedOrNot) and likelihood.value.min_std == 0.1
    params = torch.tensor([[0.8, 0.3, -50.0]], dtype=torch.float64)  # logit, mean, raw log-variance far below the floor
    grid = torch.linspace(-2, 3, 50001, dtype=torch.float64)[:, None]
    density = likelihood.log_prob(params, grid, torch.ones_like(grid, dtype=torch.bool)).exp()
    observed_mass = torch.trapezoid(density, grid[:, 0])
    unobserved = likelihood.log_prob(params, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.bool)).exp()
    assert (observed_mass + unobserved).item() == pytest.approx(1.0, abs=1e-6)
    f64 = {"dtype": torch.float64}
    by_hand = torch.log(torch.sigmoid(torch.tensor(0.8, **f64))) + normal_log_density(torch.tensor(0.35, **f64), torch.tensor(0.3, **f64), torch.tensor(math.exp(-50.0) + 0.01, **f64))
    value = likelihood.log_prob(params, torch.tensor([[0.35]], dtype=torch.float64), torch.ones(1, 1, dtype=torch.bool))
    assert value.item() == pytest.approx(by_hand.item(), rel=1e-9)


@pytest.mark.parametrize("name", ["gaussian-predicted:0", "gaussian-predicted:-0.1", "gaussian-predicted:abc", "gaussian-predicted:inf", "depth-predicted:0"])
def test_a_floor_must_be_a_positive_number(name):
    with pytest.raises(ValueError, match="floor under the predicted standard deviation"):
        make_likelihood(name, 4)


def test_a_floor_needs_the_predicted_scale():
    with pytest.raises(ValueError, match="needs scale='predicted'"):
        Gaussian(4, scale="fixed", min_std=0.1)


# ---------------------------------------------------------------- the table's settings


def test_the_table_trains_mnist_keypoints_with_the_floored_predicted_variance():
    assert HYBRID_MODEL_SETTINGS["mnist-keypoints"]["likelihood"] == "gaussian-predicted:0.05"
    for source in HYBRID_GRID:
        for model in ("fvae", "hvae"):
            make_likelihood(hybrid_overrides(source, model, 500, 1000)["model"].get("likelihood", "gaussian"), 16)  # a valid name
    specs = {run.name: run for run in HYBRID_VAE.runs}
    assert specs["mnist-keypoints-fvae-n5000"].model_options["likelihood"] == "gaussian-predicted:0.05"


def test_runs_compared_in_a_row_get_equal_cpu_budgets():
    budgets = HYBRID_VAE.budgets(HYBRID_VAE.default_budget)
    for row in HYBRID_VAE.rows:
        assert len({budgets[run] for run in row.ours.runs}) == 1, row.name
    assert len(set(budgets.values())) == 1  # and so every F-VAE run of a source, whatever its n


def test_every_hybrid_run_evaluates_about_every_250_steps_whatever_its_pool():
    # A run over a long pool (F-VAE(50000): 1,562 steps an epoch) must choose its best weights among
    # as many evaluations as a short one, not once an epoch.
    def steps_between_evaluations(model, n, m):
        train = hybrid_overrides("mnist-keypoints", model, n, m)["train"]
        if "eval_every_steps" in train:
            return train["eval_every_steps"]
        return train["eval_every"] * ((m if model == "hvae" else n) // train["batch_size"])

    for model, n, m in [("fvae", 500, None), ("fvae", 5000, None), ("fvae", 50000, None), ("hvae", 500, 49500), ("hvae", 5000, 45000), ("hvae", 500, 5000)]:
        assert 125 <= steps_between_evaluations(model, n, m) <= 250, (model, n, m)
    assert hybrid_overrides("mnist-keypoints", "fvae", 5000, None)["train"]["eval_every"] == 1  # 156 steps an epoch
    assert "eval_every_steps" not in hybrid_overrides("mnist-keypoints", "fvae", 500, None)["train"]  # short pools: as before


def test_the_papers_sgd_is_a_setting_of_the_hybrid_runs():
    adam = hybrid_overrides("mnist-keypoints", "hvae", 500, 5000)["train"]
    assert adam["optimizer"] == "adam" and adam["lr"] == 1e-3
    paper = hybrid_overrides("mnist-keypoints", "hvae", 500, 5000, optimizer="paper")["train"]
    assert (paper["optimizer"], paper["lr"], paper["momentum"]) == ("sgd", 0.01, 0.9)
    assert {k: v for k, v in paper.items() if k not in ("optimizer", "lr", "momentum")} == {k: v for k, v in adam.items() if k not in ("optimizer", "lr")}
    with pytest.raises(ValueError, match="optimizer must be one of"):
        hybrid_overrides("mnist-keypoints", "fvae", 500, None, optimizer="rmsprop")


def test_the_papers_sgd_reaches_the_optimizer_of_a_run(tmp_path):
    import pogm
    from tests.test_train import fresh_trainer

    train = hybrid_overrides("depth", "fvae", 20, None, optimizer="paper")["train"]
    train.update(max_steps=2, batch_size=10, labelled_batch_size=10, eval_every=1, progress=False)
    model = {"channels": [4, 8], "fc_units": 16, "z_dim": 4, "z_samples": 1, "likelihood": "depth-predicted:0.05"}
    data = {"n_train": 60, "n_valid": 10, "n_test": 10, "size": 16}
    run = pogm.train("fvae", data="depth", labels=20, out=tmp_path / "fvae", seed=0, overrides={"model": model, "train": train, "data": data}, progress=False)
    assert run.model.p_d.value.min_std == 0.05
    trainer = fresh_trainer(run.dir)
    optimizer = trainer.optimizer
    assert type(optimizer).__name__ == "SGD"
    assert optimizer.param_groups[0]["lr"] == 0.01 and optimizer.param_groups[0]["momentum"] == 0.9


@pytest.mark.parametrize("likelihood", ["gaussian-predicted", "depth", "depth-predicted:0.003"])
def test_init_std_starts_the_predicted_standard_deviation_there(likelihood):
    # The log-variance outputs start at 2 log init_std; the default (None) leaves PyTorch's
    # initialisation, a variance near 1, and the other outputs are untouched.
    from pogm.models.hybrid.hybrid import FVAE, FVAEConfig

    def predicted_std(init_std):
        torch.manual_seed(0)
        model = FVAE(FVAEConfig(image_shape=(1, 8, 8), x_dim=64, y_dim=2, z_dim=4, channels=(4, 8), fc_units=16, likelihood=likelihood, init_std=init_std))
        params_d, _ = model.decode(torch.randn(50, 4))  # [50, P * 64]
        gaussian = model.p_d.value if isinstance(model.p_d, ObservedOrNot) else model.p_d
        value = model.p_d.split(params_d)[1] if isinstance(model.p_d, ObservedOrNot) else params_d
        return torch.exp(0.5 * gaussian.split(value)[1]).median().item(), params_d

    std, started = predicted_std(0.1)
    default, plain = predicted_std(None)
    assert 0.09 < std < 0.11 and 0.5 < default < 2.0
    n = 64  # the channels before the log-variances (means, and for depth the observation logits) are the same
    assert torch.equal(started[:, : started.shape[1] - n], plain[:, : plain.shape[1] - n])


def test_init_std_needs_a_predicted_variance():
    from pogm.models.hybrid.hybrid import FVAE, FVAEConfig

    with pytest.raises(ValueError, match="init_std sets the start of a predicted variance; likelihood 'gaussian:0.1' predicts none"):
        FVAE(FVAEConfig(image_shape=(1, 8, 8), x_dim=64, y_dim=2, z_dim=4, channels=(4, 8), fc_units=16, likelihood="gaussian:0.1", init_std=0.1))
