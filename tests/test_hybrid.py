"""F-VAE and H-VAE (Tulyakov et al.): the bounds against log p(d) and log p(d, h) computed by
quadrature, the depth likelihood's normalisation, what labelled and unlabelled minibatches train,
and the label and pool splits of a hybrid run."""

from __future__ import annotations

import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits
from pogm.data.streams import SemiSupervisedStream
from pogm.evaluate.metrics import task_errors
from pogm.latents import standard_normal_log_prob
from pogm.likelihoods import ObservedOrNot
from pogm.models.hybrid.hybrid import FVAE, HVAE, FVAEConfig, HVAEConfig
from pogm.objectives.hybrid import hybrid_loss
from pogm.runs import choose_labels, choose_unlabelled

# ---------------------------------------------------------------- the depth likelihood (sec. 3.1)


def test_depth_likelihood_sums_to_one_over_observed_and_unobserved():
    """Per pixel: P(unobserved) + integral of p(observed, d) over d = 1."""
    likelihood = ObservedOrNot(scale="predicted")
    params = torch.tensor([[1.3, 0.4, math.log(0.3**2)]], dtype=torch.float64)  # logit, mean, log-variance
    grid = torch.linspace(-5, 6, 20001, dtype=torch.float64)[:, None]  # [G, 1] values of d
    density = likelihood.log_prob(params, grid, torch.ones_like(grid, dtype=torch.bool)).exp()  # [G]
    observed_mass = torch.trapezoid(density, grid[:, 0])
    unobserved = likelihood.log_prob(params, torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.bool)).exp()
    assert observed_mass.item() == pytest.approx(torch.sigmoid(torch.tensor(1.3)).item(), abs=1e-6)
    assert (observed_mass + unobserved).item() == pytest.approx(1.0, abs=1e-6)


def test_depth_likelihood_matches_a_brute_force_sum_over_every_observation_pattern():
    """Two pixels: the per-pattern log densities equal Bernoulli x Gaussian written out by hand,
    and the four patterns, each integrated over its observed values, sum to one."""
    likelihood = ObservedOrNot(scale="predicted")
    logits = torch.tensor([0.7, -1.1], dtype=torch.float64)
    means = torch.tensor([0.2, -0.5], dtype=torch.float64)
    log_vars = torch.tensor([math.log(0.5**2), math.log(0.8**2)], dtype=torch.float64)
    params = torch.cat([logits, means, log_vars])[None]  # [1, 3 * 2]
    values = torch.tensor([[0.9, -1.4]], dtype=torch.float64)
    axis = torch.linspace(-6, 6, 1201, dtype=torch.float64)
    total = 0.0
    for pattern in ([0, 0], [0, 1], [1, 0], [1, 1]):
        observed = torch.tensor([pattern], dtype=torch.bool)
        by_hand = sum(
            (torch.log(torch.sigmoid(logits[u])) + torch.distributions.Normal(means[u], (0.5 * log_vars[u]).exp()).log_prob(values[0, u]))
            if pattern[u]
            else torch.log(torch.sigmoid(-logits[u]))
            for u in range(2)
        )
        assert likelihood.log_prob(params, values, observed).item() == pytest.approx(by_hand.item(), abs=1e-10)
        # integrate over the observed pixels' values on a grid (unobserved ones have no value)
        d0, d1 = torch.meshgrid(axis, axis, indexing="ij")
        grid = torch.stack([d0.reshape(-1), d1.reshape(-1)], -1)  # [G * G, 2]
        density = likelihood.log_prob(params, grid, observed.expand(len(grid), 2)).exp().reshape(len(axis), len(axis))
        if pattern == [1, 1]:
            mass = torch.trapezoid(torch.trapezoid(density, axis, dim=1), axis)
        elif pattern == [1, 0]:
            mass = torch.trapezoid(density[:, 0], axis)  # constant along the unobserved pixel's value
        elif pattern == [0, 1]:
            mass = torch.trapezoid(density[0, :], axis)
        else:
            mass = density[0, 0]
        total += mass.item()
    assert total == pytest.approx(1.0, abs=1e-6)


def test_depth_likelihood_scores_the_observation_map_and_ignores_unobserved_values():
    likelihood = ObservedOrNot(scale="predicted")
    params = torch.randn(3, 12, requires_grad=True)  # 4 pixels
    mask = torch.tensor([[True, False, True, False]] * 3)
    x = torch.rand(3, 4)
    garbage = torch.where(mask, x, torch.full_like(x, 1e6))
    a, b = likelihood.log_prob(params, x, mask), likelihood.log_prob(params, garbage, mask)
    assert torch.equal(a, b)
    b.sum().backward()
    mean_grad = params.grad[:, 4:8]
    assert torch.equal(mean_grad[~mask], torch.zeros_like(mean_grad[~mask]))  # unobserved values carry no gradient
    assert (params.grad[:, :4] != 0).all()  # but every pixel's observation logit does


# ---------------------------------------------------------------- the bounds against quadrature


def tiny_hvae(seed: int = 0) -> HVAE:
    """d is 2 x 2 pixels, h and z one-dimensional: small enough to integrate over (h, z)."""
    torch.manual_seed(seed)
    config = HVAEConfig(image_shape=(1, 2, 2), x_dim=4, y_dim=1, z_dim=1, channels=(2,), fc_units=8, z_samples=1, h_samples=1)
    model = HVAE(config).double()
    with torch.no_grad():  # larger weights than the default initialisation: a posterior worth bounding
        for p in model.parameters():
            p.mul_(2.0)
        # Proposals wider than the posterior keep the importance weights light-tailed, so that
        # 20,000 samples estimate log p(d) reliably (a narrow q(h|d) gives heavy-tailed weights).
        model.q_h_d.net.out.bias[config.y_dim :] += 2.0  # log-variances of q(h|d)
        model.q_z_dh.net.out.bias[config.z_dim :] += 2.0  # log-variances of q(z|d,h)
    return model.eval()


def quadrature(model: HVAE, d: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
    """log p(d) (h is None) or log p(d, h) of one image, by the trapezoid rule over z (and h).

    For each z the h grid spans p(h|z)'s mean +- 12 standard deviations, so narrow and wide
    conditionals are resolved alike."""
    z = torch.linspace(-9, 9, 18001, dtype=torch.float64)[:, None]  # [G_z, 1]
    params_d, params_h = model.decode(z)
    log_p_d_z = model.p_d.log_prob(params_d, d.reshape(1, -1))  # [G_z]
    mean_h, log_var_h = model.p_h.split(params_h)  # [G_z, 1]
    std_h = (0.5 * log_var_h).exp()
    h_grid = mean_h + std_h * torch.linspace(-12, 12, 2401, dtype=torch.float64) if h is None else h.reshape(1, 1).expand(len(z), 1)  # [G_z, G_h]
    log_p_h_z = -0.5 * (math.log(2 * math.pi) + log_var_h + (h_grid - mean_h) ** 2 * (-log_var_h).exp())  # [G_z, G_h]
    log_joint = log_p_d_z[:, None] + log_p_h_z + standard_normal_log_prob(z)[:, None]
    shift = log_joint.max()
    joint = (log_joint - shift).exp()
    over_h = torch.trapezoid(joint, h_grid, dim=1) if h is None else joint[:, 0]  # [G_z]
    return torch.trapezoid(over_h, z[:, 0]).log() + shift


@pytest.mark.parametrize("seed", [0, 1])
def test_partial_bound_is_a_lower_bound_of_log_p_d_and_importance_sampling_reaches_it(seed):
    model = tiny_hvae(seed)
    g = torch.Generator().manual_seed(seed)
    d = torch.rand(1, 1, 2, 2, generator=g, dtype=torch.float64)
    batch = Batch(x={"x": d}, y=torch.zeros(1, 1, dtype=torch.float64), y_mask=torch.zeros(1, dtype=torch.bool))
    log_p_d = quadrature(model, d).item()
    torch.manual_seed(0)
    with torch.no_grad():
        _, mask, inputs = model.image(batch)
        # L_P of eq. (6) as the model trains on it (entropy and KL in closed form), averaged over draws
        draws = torch.stack([model.partial_bounds(d.reshape(1, -1), mask, inputs) for _ in range(4000)])[:, 0]
        weights = model.log_weights(batch, 20000)[:, 0]  # log p(d, h, z) - log q(h|d) - log q(z|d,h)
    l_p, l_p_error = draws.mean().item(), draws.std().item() / math.sqrt(len(draws))
    sampled, sampled_error = weights.mean().item(), weights.std().item() / math.sqrt(len(weights))
    iw = (torch.logsumexp(weights, 0) - math.log(len(weights))).item()
    assert l_p < log_p_d - 0.05  # a strict bound: q is not the posterior
    assert abs(l_p - sampled) < 4 * (l_p_error + sampled_error)  # closed-form terms = their sampled values
    assert l_p < iw < log_p_d + 0.02  # importance sampling tightens the bound ...
    assert iw == pytest.approx(log_p_d, abs=0.1)  # ... up to log p(d)


def test_full_bound_and_importance_sampling_against_log_p_d_h():
    model = tiny_hvae(3)
    g = torch.Generator().manual_seed(3)
    d, h = torch.rand(1, 1, 2, 2, generator=g, dtype=torch.float64), torch.randn(1, 1, generator=g, dtype=torch.float64)
    batch = Batch(x={"x": d}, y=h)
    log_p_d_h = quadrature(model, d, h).item()
    torch.manual_seed(0)
    with torch.no_grad():
        _, mask, inputs = model.image(batch)
        l_f = torch.stack([model.full_bounds(d.reshape(1, -1), mask, inputs, h) for _ in range(4000)]).mean().item()
        weights = model.log_weights(batch, 20000)[:, 0]
    iw = (torch.logsumexp(weights, 0) - math.log(len(weights))).item()
    assert l_f < iw < log_p_d_h + 0.02
    assert iw == pytest.approx(log_p_d_h, abs=0.05)


def test_a_proposal_refined_per_pair_reaches_log_p_d_h_where_a_bad_q_leaves_the_bound_loose():
    from pogm.evaluate.refined import refined_log_likelihood

    model = tiny_hvae(3)
    with torch.no_grad():  # q(z | d, h) 2 units off and its log-variance 8 lower: an encoder that missed this pair
        model.q_z_dh.net.out.bias[: model.config.z_dim] += 2.0
        model.q_z_dh.net.out.bias[model.config.z_dim :] -= 8.0
    g = torch.Generator().manual_seed(3)
    d, h = torch.rand(1, 1, 2, 2, generator=g, dtype=torch.float64), torch.randn(1, 1, generator=g, dtype=torch.float64)
    batch = Batch(x={"x": d}, y=h)
    log_p_d_h = quadrature(model, d, h).item()
    torch.manual_seed(0)
    q, log_joint = model.importance_parts(batch)
    with torch.no_grad():
        plain = (torch.logsumexp(model.log_weights(batch, 2000)[:, 0], 0) - math.log(2000)).item()
    refined = refined_log_likelihood(log_joint, q, k=2000, steps=300).item()
    assert plain < log_p_d_h - 1.0  # the encoder's q leaves the bound far below
    assert refined == pytest.approx(log_p_d_h, abs=0.05)
    unlabelled = Batch(x={"x": d}, y=h, y_mask=torch.zeros(1, dtype=torch.bool))
    with pytest.raises(ValueError, match="labelled pairs"):
        model.importance_parts(unlabelled)


# ---------------------------------------------------------------- what each minibatch trains


def small(cls, **extra):
    config = cls.Config(image_shape=(1, 8, 8), x_dim=64, y_dim=2, z_dim=3, channels=(4, 8), fc_units=16, z_samples=2, **extra)
    torch.manual_seed(0)
    return cls(config)


def image_batch(labelled: bool, rows: int = 6) -> Batch:
    g = torch.Generator().manual_seed(1)
    return Batch(x={"x": torch.rand(rows, 1, 8, 8, generator=g)}, y=torch.rand(rows, 2, generator=g), y_mask=torch.full((rows,), labelled))


def changed_after_one_step(model, batch: Batch) -> dict[str, bool]:
    """Which top-level modules an Adam step on ``batch``'s loss changes."""
    before = {name: [p.detach().clone() for p in module.parameters()] for name, module in model.named_children() if list(module.parameters())}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    optimizer.zero_grad()
    loss = model.loss(batch)["loss"]
    if loss.requires_grad:
        loss.backward()
    optimizer.step()
    return {name: any(not torch.equal(a, b) for a, b in zip(old, getattr(model, name).parameters())) for name, old in before.items()}


def test_a_labelled_minibatch_trains_the_joint_model_but_not_q_h_d():
    changed = changed_after_one_step(small(HVAE), image_batch(labelled=True))
    assert changed["encoder_d"] and changed["encoder_h"] and changed["q_z_dh"]  # q(z|d,h)
    assert changed["decoder_z"] and changed["p_d_z"] and changed["p_h_z"]  # p(d,h|z)
    assert not changed["discriminative_d"] and not changed["q_h_d"]  # eq. (2) has no q(h|d)


def test_an_unlabelled_minibatch_trains_q_h_d_and_the_joint_model():
    changed = changed_after_one_step(small(HVAE), image_batch(labelled=False))
    assert changed["discriminative_d"] and changed["q_h_d"]  # L_P trains q(h|d)
    assert all(changed[name] for name in ("encoder_d", "encoder_h", "q_z_dh", "decoder_z", "p_d_z", "p_h_z"))


def test_alpha_lets_labelled_pairs_train_q_h_d_too():
    changed = changed_after_one_step(small(HVAE, alpha=1.0), image_batch(labelled=True))
    assert changed["discriminative_d"] and changed["q_h_d"]


def test_the_f_vae_learns_nothing_from_images_without_labels():
    model = small(FVAE)
    assert not any(changed_after_one_step(model, image_batch(labelled=False)).values())
    assert all(changed_after_one_step(model, image_batch(labelled=True)).values())


def test_unobserved_pixels_remove_information_from_the_hybrid_loss():
    model = small(HVAE)
    batch = image_batch(labelled=False)
    batch.y_mask[:3] = True
    mask = torch.rand(6, 1, 8, 8, generator=torch.Generator().manual_seed(2)) > 0.3
    clean = Batch(x={"x": torch.where(mask, batch.x["x"], 0.0)}, x_mask={"x": mask}, y=batch.y, y_mask=batch.y_mask)
    dirty = Batch(x={"x": torch.where(mask, batch.x["x"], 7.0)}, x_mask={"x": mask}, y=batch.y, y_mask=batch.y_mask)
    torch.manual_seed(4)
    a = model.loss(clean)["loss"]
    torch.manual_seed(4)
    b = model.loss(dirty)["loss"]
    assert torch.equal(a, b)


def test_objectives_seven_and_eight_weight_the_two_averages_as_the_paper_says():
    full, partial = torch.tensor([-10.0, -12.0]), torch.tensor([-20.0, -22.0, -24.0])
    assert hybrid_loss(full, partial, "balanced").item() == pytest.approx(11.0 + 22.0)  # eq. (8)
    assert hybrid_loss(full, partial, "sum", num_labelled=100, num_unlabelled=900).item() == pytest.approx((100 * 11.0 + 900 * 22.0) / 1000)  # eq. (7) / (n + m)
    assert hybrid_loss(full, partial[:0], "balanced").item() == pytest.approx(11.0)
    with pytest.raises(ValueError, match="objective must be one of"):
        hybrid_loss(full, partial, "mean")


def test_task_errors_follow_the_point_to_point_and_l2_definitions():
    truth = torch.tensor([[0.0, 0.0, 2.0, 0.0]])  # two points 2 apart: the normaliser
    predicted = torch.tensor([[0.0, 1.0, 2.0, 0.0]])  # the first point 1 off, the second exact
    assert task_errors(predicted, truth, {"kind": "point_to_point", "num_points": 2, "normaliser": [0, 1]}).item() == pytest.approx(0.5 / 2)
    assert task_errors(predicted, truth, {"kind": "l2"}).item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="needs labels of 6 values"):
        task_errors(predicted, truth, {"kind": "point_to_point", "num_points": 3})


# ---------------------------------------------------------------- splits of a hybrid run


def continuous_splits(n: int = 40) -> DataSplits:
    data = PartialDataset.from_arrays(torch.rand(n, 1, 4, 4), torch.rand(n, 2))
    return DataSplits(train=data, valid=None, test=data)


def test_labels_count_examples_for_continuous_labels_and_the_pool_is_apart_from_them():
    splits = continuous_splits()
    labelled = choose_labels(splits, 7, seed=3, uses_labels=True)
    assert labelled.numel() == 7 and len(set(labelled.tolist())) == 7
    pool = choose_unlabelled(splits, 20, labelled, seed=3)
    assert pool.numel() == 20 and not set(pool.tolist()) & set(labelled.tolist())
    assert torch.equal(pool, choose_unlabelled(splits, 20, labelled, seed=3))  # reproducible
    with pytest.raises(ValueError, match="examples outside the labelled ones"):
        choose_unlabelled(splits, 34, labelled, seed=3)
    with pytest.raises(ValueError, match="labelled examples; choose 1..40"):
        choose_labels(splits, 41, seed=3, uses_labels=True)


def test_a_stream_draws_unlabelled_rows_from_its_pool_only():
    splits = continuous_splits()
    pool = torch.arange(10, 30)
    marked = splits.train.x["x"].clone()
    marked[:, 0, 0, 0] = torch.arange(40, dtype=torch.float32)  # row ids written into the images
    data = PartialDataset(x={"x": marked}, y=splits.train.y)
    stream = SemiSupervisedStream(data, torch.tensor([0, 1, 2]), pool, batch_size=5, labelled_batch_size=3)
    assert stream.steps_per_epoch == 4
    seen = set()
    for batch in stream:
        rows = batch.x["x"][~batch.y_mask][:, 0, 0, 0].long().tolist()
        seen.update(rows)
    assert seen == set(range(10, 30))  # one epoch = one pass over the pool, nothing else


# ---------------------------------------------------------------- end to end


def test_hvae_trains_evaluates_and_draws_its_figures_from_the_command_line(tmp_path, capsys):
    """A tiny H-VAE(20, 100) on synthetic depth images: train, eval (NLL of the labelled test
    pairs, task loss of q(h|d)), figures (samples of (d, h), interpolations); F-VAE rejects a pool."""
    import json

    from pogm.cli import main

    run = tmp_path / "hvae"
    data = ["--set", "data.n_train=200", "--set", "data.n_valid=20", "--set", "data.n_test=20", "--set", "data.size=16"]
    small = ["--set", "channels=[4, 8]", "--set", "fc_units=16", "--set", "z_dim=4", "--set", "train.batch_size=20",
             "--set", "train.labelled_batch_size=10", "--set", "train.max_steps=6", "--set", "train.progress=false"]
    assert main(["train", "hvae", "--data", "depth", "--labels", "20", "--unlabelled", "100", "--out", str(run), *data, *small]) == 0
    assert len(json.loads((run / "labelled_index.json").read_text())) == 20
    assert len(set(json.loads((run / "unlabelled_index.json").read_text())) & set(json.loads((run / "labelled_index.json").read_text()))) == 0
    assert main(["eval", str(run), "--iw-samples", "5"]) == 0
    results = json.loads((run / "eval.json").read_text())
    assert results["task_loss_kind"] == "l2" and results["task_loss"] > 0
    assert math.isfinite(results["iw_log_likelihood"]) and math.isfinite(results["elbo"])
    assert main(["figures", str(run)]) == 0
    assert (run / "figures" / "samples-dh.png").is_file() and (run / "figures" / "interpolations.png").is_file()
    capsys.readouterr()
    assert main(["train", "fvae", "--data", "depth", "--labels", "20", "--unlabelled", "100", "--out", str(tmp_path / "f"), *data, *small]) == 2
    assert "drop --unlabelled" in capsys.readouterr().err
