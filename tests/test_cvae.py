"""Conditional VAE (Sohn et al. 2015; poster 002): completion keeps what is observed and fills the
rest, masks remove information, the conditional log-likelihood estimator matches a closed form,
and the label CVAE transfers style."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits
from pogm.models.vae_gan.completion import (
    completion_log_likelihoods,
    cvae_figures,
    left_half_mask,
    pattern_masks,
    quadrant_masks,
)
from pogm.latents import DiagonalGaussian
from pogm.models import model_entry
from pogm.models.base import config_from_dict
from pogm.models.vae_gan.cvae import CVAE, CVAEConfig

IMAGE = (1, 4, 4)
D, K = 16, 3


def images(n: int = 12, seed: int = 0, num_classes: int | None = K) -> PartialDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(K, (n,), generator=g) if num_classes else None
    return PartialDataset.from_arrays(torch.rand(n, *IMAGE, generator=g), y, num_classes=num_classes)


def build(condition: str = "partial", seed: int = 0, num_classes: int | None = K, **overrides) -> CVAE:
    cls = model_entry("cvae").cls
    values = cls.data_fields(D, num_classes, 12, 6, images(num_classes=num_classes))
    values.update({"hidden": (16,), "z_dim": 3, "condition": condition, **overrides})
    torch.manual_seed(seed)
    return cls(config_from_dict(cls.Config, values)).eval()


def make_batch(seed: int = 0, p_missing: float = 0.3, labelled: int = 12) -> Batch:
    g = torch.Generator().manual_seed(seed)
    x = torch.bernoulli(torch.full((12, *IMAGE), 0.4), generator=g)
    mask = torch.rand(12, *IMAGE, generator=g) > p_missing
    y = torch.randint(K, (12,), generator=g)
    y_mask = torch.arange(12) < labelled
    return Batch(x={"x": torch.where(mask, x, 0.0)}, x_mask={"x": mask}, y=torch.where(y_mask, y, 0), y_mask=y_mask)


# ---------------------------------------------------------------- completion
@pytest.mark.parametrize("condition", ["partial", "both"])
def test_completion_keeps_observed_pixels_bit_for_bit_and_fills_the_hidden_ones(condition):
    model = build(condition)
    batch = make_batch()
    mask, x = batch.x_mask["x"], batch.x["x"]
    filled = model.impute(batch)
    assert filled.shape == x.shape
    assert torch.equal(filled[mask], x[mask])
    assert ((filled[~mask] > 0) & (filled[~mask] < 1)).all()  # generator means, not the zero fill
    completions = model.complete(batch, samples=3)
    assert completions.shape == (3, *x.shape)
    assert all(torch.equal(c[mask], x[mask]) for c in completions)
    assert not torch.equal(completions[0][~mask], completions[1][~mask])  # z ~ p(z|c) differs between samples
    assert torch.equal(model.impute(Batch(x={"x": x}, y=batch.y, y_mask=batch.y_mask)), x)  # nothing missing: unchanged


def test_completion_with_a_per_row_mask():
    model = build()
    g = torch.Generator().manual_seed(1)
    x = torch.bernoulli(torch.full((6, *IMAGE), 0.5), generator=g)
    rows = torch.tensor([True, False, True, False, False, True]).view(6, 1, 1, 1)
    batch = Batch(x={"x": torch.where(rows, x, 0.0)}, x_mask={"x": rows})
    filled = model.impute(batch)
    assert torch.equal(filled[rows.squeeze()], x[rows.squeeze()])  # observed rows untouched
    hidden = filled[~rows.squeeze()]
    assert ((hidden > 0) & (hidden < 1)).all()
    # A row with nothing observed is completed from the empty condition: every such row alike.
    assert torch.equal(hidden[0], hidden[1]) and torch.equal(hidden[1], hidden[2])
    assert model.complete(batch, samples=2).shape == (2, 6, *IMAGE)


def test_hidden_pixel_values_change_neither_the_completion_nor_the_loss():
    model = build().train()
    batch = make_batch()
    mask = batch.x_mask["x"]
    noisy = Batch(x={"x": torch.where(mask, batch.x["x"], torch.rand(12, *IMAGE) + 0.5)}, x_mask={"x": mask}, y=batch.y, y_mask=batch.y_mask)
    assert torch.equal(model.impute(batch), model.impute(noisy))  # hidden pixels filled alike, observed ones identical
    torch.manual_seed(3)
    a = model.loss(batch)["loss"]
    torch.manual_seed(3)
    b = model.loss(noisy)["loss"]
    assert torch.equal(a, b)
    torch.manual_seed(4)
    other = model.loss(batch)["loss"]
    assert not torch.equal(a, other)  # the seed matters: another pattern and z, another loss


def test_the_training_condition_sees_only_shown_pixels_from_the_masks():
    """The partial condition (x * m_c, m_c) that p(z|c) reads: m_c is a union of quadrants inside
    the data mask (never derived from pixel values), and changing the target pixels (observed in
    the data, hidden from c) leaves it unchanged while the loss changes."""
    model = build().train()
    seen = []
    hook = model.p_z_c.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].detach().clone()))
    batch = make_batch()
    x, mask = batch.x["x"], batch.x_mask["x"]
    torch.manual_seed(5)
    loss_a = model.loss(batch)["loss"]
    condition = seen[-1].reshape(12, 2, 4, 4)
    shown = condition[:, 1:].bool()  # [B, 1, H, W]
    assert torch.equal(condition[:, :1], torch.where(shown, x, 0.0))
    assert not (shown & ~mask).any()  # never a pixel missing in the data
    quadrants = quadrant_masks(IMAGE, ["q0"]), quadrant_masks(IMAGE, ["q1"]), quadrant_masks(IMAGE, ["q2"]), quadrant_masks(IMAGE, ["q3"])
    for r in range(12):
        used = [q for q in quadrants if (shown[r] & q[0]).any()]
        union = torch.stack(used).any(0)[0] if used else torch.zeros_like(mask[r])
        assert torch.equal(shown[r], union & mask[r])  # the pattern, cut by the data mask
    assert shown.any() and (mask & ~shown).any()
    target = mask & ~shown
    changed = Batch(x={"x": torch.where(target, 1.0 - x, x)}, x_mask={"x": mask}, y=batch.y, y_mask=batch.y_mask)
    torch.manual_seed(5)
    loss_b = model.loss(changed)["loss"]
    hook.remove()
    assert torch.equal(seen[-1], seen[-2])  # the condition did not see the target pixels
    assert not torch.equal(loss_a, loss_b)  # but the likelihood scored them
    # and the prior network, called directly, ignores whatever lies outside `shown`
    prior_a = model.prior(x, shown)
    prior_b = model.prior(torch.where(shown, x, torch.rand_like(x)), shown)
    assert torch.equal(prior_a.mean, prior_b.mean) and torch.equal(prior_a.log_var, prior_b.log_var)


def test_the_likelihood_scores_only_the_target_pixels():
    """In training, log p(x | c, z) sums over the pixels observed in the data and hidden from c."""
    model = build().train()
    conditions, likelihood_masks = [], []
    model.p_z_c.register_forward_hook(lambda module, inputs, output: conditions.append(inputs[0].detach().clone()))
    log_prob = model.p_x.log_prob

    def recording(params, x, mask=None):
        likelihood_masks.append(mask)
        return log_prob(params, x, mask)

    model.p_x.log_prob = recording
    batch = make_batch()
    model.loss(batch)
    shown = conditions[-1].reshape(12, 2, *IMAGE[1:])[:, 1:].bool()
    assert torch.equal(likelihood_masks[-1].reshape(12, *IMAGE), batch.x_mask["x"] & ~shown)


@pytest.mark.parametrize("condition,counts", [("partial", (1, 2, 3)), ("partial", (2,)), ("both", (1, 3))])
def test_training_patterns_show_the_configured_numbers_of_quadrants(condition, counts):
    model = build(condition, observed_quadrants=counts)
    torch.manual_seed(0)
    patterns = model.random_patterns(3000)  # [B, 1, H, W]
    shown = torch.stack([(patterns & q).flatten(1).any(-1) for q in pattern_masks(IMAGE).values()][:4], -1)  # [B, 4] per quadrant
    assert torch.equal(patterns, (shown[:, :, None, None, None] & torch.cat([quadrant_masks(IMAGE, [f"q{i}"]) for i in range(4)])).any(1))
    expected = sorted(set(counts) | ({0} if condition == "both" else set()))  # "both" also trains p(x | y) alone
    numbers = shown.sum(-1)
    assert sorted(numbers.unique().tolist()) == expected
    for n in expected:
        assert abs((numbers == n).float().mean().item() - 1 / len(expected)) < 0.04
    two = shown[numbers == 2]
    if len(two):
        assert len(two.unique(dim=0)) == 6  # every pair of quadrants occurs


# ---------------------------------------------------------------- the conditional log-likelihood
class LinearGenerator(nn.Module):
    """p(x | c, z) = N(W z + b, sigma^2 I): linear in z, ignores c."""

    def __init__(self, W: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.W, self.b = nn.Parameter(W), nn.Parameter(b)

    def forward(self, z: torch.Tensor, *c: torch.Tensor) -> torch.Tensor:
        return z @ self.W.T + self.b


@pytest.mark.parametrize("prior", [(0.0, 0.0), (0.3, -0.4)])
def test_conditional_log_likelihood_matches_the_linear_gaussian_closed_form(prior):
    """With p(z|c) = N(mu, diag(s^2)) and p(x|c,z) = N(W z + b, sigma^2 I), x_T given c is
    N(b_T + W_T mu, W_T diag(s^2) W_T^T + sigma^2 I); q(z|x,c) is a fixed Gaussian (not the posterior)."""
    sigma, Z, B = 0.5, 2, 16
    model = build(num_classes=None, z_dim=Z, hidden=(8,), likelihood=f"gaussian:{sigma}")
    g = torch.Generator().manual_seed(1)
    W, b = 0.25 * torch.randn(D, Z, generator=g), 0.2 * torch.randn(D, generator=g)
    model.p_x_cz = LinearGenerator(W, b)
    mu, log_var = torch.full((Z,), prior[0]), torch.full((Z,), prior[1])
    with torch.no_grad():  # the last layers: outputs that do not depend on the inputs
        model.p_z_c.net.head.out.weight.zero_()
        model.p_z_c.net.head.out.bias.copy_(torch.cat([mu, log_var]))
        model.q_z_xc.net.head.out.weight.zero_()
        model.q_z_xc.net.head.out.bias.copy_(torch.cat([mu + 0.1, log_var + 0.3]))
    z = mu + torch.exp(0.5 * log_var) * torch.randn(B, Z, generator=g)
    x = z @ W.T + b + sigma * torch.randn(B, D, generator=g)
    mask = torch.rand(B, D, generator=g) > 0.15  # a few pixels missing in the data too
    batch = Batch(x={"x": torch.where(mask, x, 0.0).reshape(B, *IMAGE)}, x_mask={"x": mask.reshape(B, *IMAGE)})
    observed = left_half_mask(IMAGE)
    exact = []
    for i in range(B):
        T = mask[i] & ~observed.reshape(-1)  # observed in the data, outside the condition
        cov = W[T] @ torch.diag(torch.exp(log_var)) @ W[T].T + sigma**2 * torch.eye(int(T.sum()))
        exact.append(torch.distributions.MultivariateNormal((b[T] + W[T] @ mu).double(), cov.double()).log_prob(x[i][T].double()))
    exact = torch.stack(exact).float()

    torch.manual_seed(2)
    estimate = model.conditional_log_likelihood(batch, observed, k=2000, chunk_size=500)
    assert estimate.shape == (B,)
    error = estimate - exact
    assert error.abs().mean() < 0.05 and error.abs().max() < 0.15 and abs(error.mean()) < 0.03, error
    elbo = torch.stack([model.conditional_elbo(batch, observed) for _ in range(100)]).mean(0)
    assert (elbo < exact - 0.1).all()  # the bound is below, with a gap since q is not the posterior
    single = torch.stack([model.conditional_log_likelihood(batch, observed, k=1) for _ in range(100)]).mean(0)
    assert single.mean() < estimate.mean() - 0.5
    # the same observed pattern given per row gives the same answer
    torch.manual_seed(2)
    per_row = model.conditional_log_likelihood(batch, observed.expand(B, *IMAGE), k=2000, chunk_size=500)
    assert torch.equal(per_row, estimate)


def test_kl_between_diagonal_gaussians_matches_torch():
    g = torch.Generator().manual_seed(0)
    q = DiagonalGaussian(torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g))
    p = DiagonalGaussian(torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g))

    def torch_normal(d: DiagonalGaussian):
        return torch.distributions.Independent(torch.distributions.Normal(d.mean, torch.exp(0.5 * d.log_var)), 1)

    torch.testing.assert_close(q.kl(p), torch.distributions.kl_divergence(torch_normal(q), torch_normal(p)))
    assert torch.allclose(q.kl(q), torch.zeros(5), atol=1e-6)


# ---------------------------------------------------------------- labels and style
def test_style_transfer_decodes_each_style_with_every_label():
    model = build("label")
    batch = make_batch()
    styled = model.transfer_style(batch)
    assert styled.shape == (12, K, D)
    assert not torch.allclose(styled[:, 0], styled[:, 1])  # the label changes the image
    assert not torch.allclose(styled[0], styled[1])  # the style (z of q(z|x,y)) changes it too
    picked = model.transfer_style(batch, labels=torch.tensor([2, 0]))
    assert picked.shape == (12, 2, D)
    torch.testing.assert_close(picked[:, 0], styled[:, 2])
    assert model.sample(4, torch.tensor([0, 1, 2, 0])).shape == (4, D)
    assert model.sample(3, 1).shape == (3, D)
    assert build("both").transfer_style(batch).shape == (12, K, D)


def test_label_conditioning_errors_are_clear():
    with pytest.raises(ValueError, match="transfer_style needs a CVAE conditioned on labels"):
        build("partial").transfer_style(make_batch())
    with pytest.raises(ValueError, match="not labels"):
        build("partial").sample(3, 1)
    with pytest.raises(ValueError, match="needs class labels; the data set has none"):
        build("label", num_classes=None)
    with pytest.raises(ValueError, match="needs the label of every row"):
        build("label").transfer_style(make_batch(labelled=6))
    bad = make_batch()
    bad.y[0] = K + 1
    for condition in ("partial", "label"):
        with pytest.raises(ValueError, match="labels must be integers"):
            build(condition).loss(bad)
    flat = PartialDataset.from_arrays(torch.rand(12, D))
    with pytest.raises(ValueError, match=r"\[N, C, H, W\].*reshape"):
        CVAE.data_fields(D, None, 12, 0, flat)


def test_label_cvae_skips_unlabelled_rows():
    model = build("label").train()
    batch = make_batch(labelled=6)
    changed = Batch(x={"x": torch.where(torch.arange(12).view(12, 1, 1, 1) >= 6, 1.0 - batch.x["x"], batch.x["x"])}, x_mask=batch.x_mask, y=batch.y, y_mask=batch.y_mask)
    torch.manual_seed(0)
    a = model.loss(batch)["loss"]
    torch.manual_seed(0)
    assert torch.equal(a, model.loss(changed)["loss"])  # unlabelled rows do not enter
    none = make_batch(labelled=0)
    terms = model.loss(none)
    assert terms["loss"].item() == 0.0
    terms["loss"].backward()  # still connected to the parameters


# ---------------------------------------------------------------- evaluation helpers
def test_quadrant_geometry():
    q0 = quadrant_masks(IMAGE, ["q0"])[0, 0]
    assert q0.shape == (4, 4) and q0[:2, :2].all() and q0.sum() == 4
    assert quadrant_masks(IMAGE, ["q3"])[0, 0][2:, 2:].all()
    left = left_half_mask(IMAGE)[0, 0]
    assert left[:, :2].all() and not left[:, 2:].any()
    patterns = pattern_masks(IMAGE)
    assert len(patterns) == 4 + 6 + 4 + 1 and torch.equal(patterns["left half"], patterns["q0+q2"])
    assert patterns["q0+q1+q3"].sum() == 12
    with pytest.raises(ValueError, match="unknown quadrant"):
        quadrant_masks(IMAGE, ["q4"])


class RecordingModel(nn.Module):
    """Scores each image by minus its number of target pixels, and records the masks it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(()))
        self.config = CVAEConfig(x_dim=D, image_shape=IMAGE)
        self.seen = []

    @property
    def device(self):
        return self.weight.device

    @staticmethod
    def missing(batch, observed):
        return (batch.x_mask["x"].expand(batch.x["x"].shape) & ~observed).flatten(1).sum(-1).float()

    def conditional_log_likelihood(self, batch, observed, k=1000, chunk_size=250):
        self.seen.append(observed)
        return -self.missing(batch, observed)

    def conditional_elbo(self, batch, observed):
        return -2 * self.missing(batch, observed)


def test_completion_log_likelihoods_cycle_the_patterns_and_count_missing_pixels():
    model = RecordingModel()
    data = images(10, num_classes=None)
    results = completion_log_likelihoods(model, data, k=5, limit=9, batch_size=4)
    for setting, missing in (("1 quadrant", 12), ("2 quadrants", 8), ("3 quadrants", 4), ("left half", 8)):
        r = results[setting]
        assert r["nats_per_image"] == -missing and r["missing_pixels_per_image"] == missing
        assert r["nats_per_missing_pixel"] == -1.0 and r["elbo_per_missing_pixel"] == -2.0
    assert results["images"] == 9
    one = torch.cat(model.seen[:3])  # the 9 images of the 1-quadrant setting
    assert all(torch.equal(one[i], quadrant_masks(IMAGE, [f"q{i % 4}"])[0]) for i in range(9))
    two = torch.cat(model.seen[3:6])
    # combinations in order: q0+q1, q0+q2, q0+q3, q1+q2, q1+q3, q2+q3; image 7 gets 7 mod 6 = 1, image 4 gets q1+q3
    assert torch.equal(two[7], quadrant_masks(IMAGE, ["q0", "q2"])[0]) and torch.equal(two[4], quadrant_masks(IMAGE, ["q1", "q3"])[0])
    assert len(results["2 quadrants"]["patterns"]) == 6 and len(results["3 quadrants"]["patterns"]) == 4


def test_completion_log_likelihoods_and_figures_with_a_tiny_cvae(tmp_path):
    data = DataSplits(train=images(12), valid=None, test=images(8, seed=1), info={})
    model = build("both")
    results = completion_log_likelihoods(model, data, k=20, limit=6)
    for setting in ("1 quadrant", "2 quadrants", "3 quadrants", "left half"):
        assert math.isfinite(results[setting]["nats_per_image"]) and results[setting]["nats_per_image"] < 0
    paths = cvae_figures(model, data, tmp_path)
    assert sorted(p.name for p in paths) == ["completions.png", "samples-per-class.png", "style-transfer.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    assert [p.name for p in cvae_figures(build("partial"), data, tmp_path / "p")] == ["completions.png"]
