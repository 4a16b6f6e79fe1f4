"""The poster's GAN generalisations (Chen, Fang & Ju 2016, "adding GANs" and "SSL with GANs"):
reconstruction on the discriminator's features (Larsen et al. 2016, eq. 6) in `cvae-gan`,
`m2-gan` and `draw-gan`, and the choice of classifier of `m2-gan` (encoder, discriminator, or
their ensemble)."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.data.streams import SemiSupervisedStream
from pogm.evaluate.metrics import classification_error_rate
from pogm.models import model_entry
from pogm.models.vae_gan.conditional_gan import fill_holes
from pogm.objectives.adversarial import class_discriminator_loss, feature_reconstruction
from pogm.train.trainer import TrainConfig, Trainer
from tests.test_contract import K, X_DIM, build, make_batch

GAN_VAES = ["cvae-gan", "m2-gan", "draw-gan", "cdraw-gan"]
# (model, config changes): every model, and the discriminators that read labels or convolve
SETTINGS = [(name, {}) for name in GAN_VAES] + [
    ("cvae-gan", {"discriminator": "pair"}),
    ("m2-gan", {"discriminator": "pair"}),
    ("m2-gan", {"architecture": "dcgan"}),
    ("cvae-gan", {"condition": "both"}),
]


def build_with(name: str, seed: int = 0, **changes):
    """`build(name)` with config ``changes``, the same initial weights for the same seed."""
    config = dataclasses.replace(build(name).config, **changes)
    torch.manual_seed(seed)
    return model_entry(name).cls(config)


def by_hand(model, x_tilde: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """log N(Dis_l(x) | Dis_l(x~), I) with x's holes filled from x~, written out: ``[..., B]``."""
    shown = x if mask is None else torch.where(mask, x, x_tilde)
    label = [torch.eye(K)[torch.zeros(x.shape[0], dtype=torch.long)]] if model.config.discriminator == "pair" else []
    f_real = model.discriminator(shown, *label)[1]
    f_tilde = model.discriminator(x_tilde, *label)[1]
    F = f_real.shape[-1]
    return -0.5 * (f_real - f_tilde).pow(2).sum(-1) - 0.5 * F * math.log(2 * math.pi)


# ---------------------------------------------------------------- reconstruction on features


@pytest.mark.parametrize("name", GAN_VAES)
def test_features_mode_never_reads_the_pixel_likelihood(name, monkeypatch):
    """With reconstruction=features the loss has no log p(x | ...) left: the pixel likelihood's
    log_prob is never called (with pixels it is)."""
    calls = []
    for reconstruction, expected in (("pixels", True), ("features", False)):
        model = build_with(name, reconstruction=reconstruction)
        calls.clear()
        original = model.p_x.log_prob
        monkeypatch.setattr(model.p_x, "log_prob", lambda *a, **k: calls.append(1) or original(*a, **k))
        terms = model.loss(make_batch(name))
        assert torch.isfinite(terms["loss"])
        assert bool(calls) == expected, reconstruction


@pytest.mark.parametrize("name, changes", SETTINGS)
def test_the_feature_term_is_larsen_et_al_eq_6_with_holes_filled(name, changes):
    model = build_with(name, reconstruction="features", **changes)
    g = torch.Generator().manual_seed(3)
    params = torch.randn(5, model.p_x.num_params(X_DIM), generator=g)
    x = torch.rand(5, X_DIM, generator=g)
    mask = torch.rand(5, X_DIM, generator=g) > 0.3
    x = torch.where(mask, x, 0.0)
    y_one_hot = torch.eye(K)[torch.zeros(5, dtype=torch.long)]
    got = model.reconstruction_log_prob(params, x, mask, y_one_hot)  # [5]
    expected = by_hand(model, model.p_x.mean(params), x, mask)
    assert got.shape == (5,) and torch.allclose(got, expected, atol=1e-5)
    # the pixels mode of the same model is the pixel likelihood
    pixels = build_with(name, reconstruction="pixels", **changes)
    assert torch.allclose(pixels.reconstruction_log_prob(params, x, mask, y_one_hot), pixels.p_x.log_prob(params, x, mask))


def test_m2_gan_scores_every_enumerated_class_on_features():
    """The unlabelled bound enumerates y: reconstructions ``[K, B, D]`` against one real image each."""
    model = build_with("m2-gan", reconstruction="features")
    x = torch.rand(4, X_DIM)
    params = model.p_x_yz(torch.randn(K, 4, model.config.z_dim), model.every_class)  # [K, 4, P D]
    got = model.reconstruction_log_prob(params, x, None, model.every_class)  # [K, 4]
    expected = torch.stack([by_hand(model, model.p_x.mean(params[k]), x, None) for k in range(K)])
    assert got.shape == (K, 4) and torch.allclose(got, expected, atol=1e-5)


def test_draw_gan_vae_loss_equals_the_feature_bound_by_hand():
    """gan_weight=0: DRAW's loss with features is -(log N(Dis_l(x) | Dis_l(sigmoid(c_T)), I) - KL), mean over rows."""
    model = build_with("draw-gan", reconstruction="features", gan_weight=0.0)
    batch = make_batch("draw-gan")
    torch.manual_seed(5)
    terms = model.loss(batch)
    torch.manual_seed(5)
    _, bound_terms, x, mask, _, canvas = model.bound_terms(batch)
    feature_term = by_hand(model, torch.sigmoid(canvas), x, mask)  # [B]
    expected = -(feature_term.mean() - bound_terms["kl"])
    assert torch.allclose(terms["loss/vae"], expected, atol=1e-4)
    assert torch.allclose(terms["reconstruction"], -feature_term.mean(), atol=1e-4)


def test_a_row_with_every_pixel_missing_costs_only_the_constant():
    """D reads the real image with the reconstruction's values in its holes, never zeros: a row
    with no observed pixel is reconstructed perfectly in feature space."""
    model = build_with("draw-gan", reconstruction="features")
    params = torch.randn(3, X_DIM)
    x = torch.rand(3, X_DIM)
    mask = torch.ones(3, X_DIM, dtype=torch.bool)
    mask[1] = False
    x = torch.where(mask, x, 0.0)
    got = model.reconstruction_log_prob(params, x, mask)
    F = model.discriminator.feature_dim
    assert torch.allclose(got[1], torch.tensor(-0.5 * F * math.log(2 * math.pi)))
    assert bool((got[[0, 2]] < got[1]).all())


@pytest.mark.parametrize("name", GAN_VAES)
def test_hidden_pixel_values_change_nothing(name):
    """Two batches that differ only in their missing pixels give the same losses and gradients."""
    batch = make_batch(name)
    mask = batch.x_mask["x"]
    noisy = Batch(x={"x": torch.where(mask, batch.x["x"], torch.rand_like(batch.x["x"]))}, x_mask=batch.x_mask, y=batch.y, y_mask=batch.y_mask)
    results = []
    for b in (batch, noisy):
        model = build_with(name, reconstruction="features")
        torch.manual_seed(7)
        terms = model.loss(b)
        grads = torch.autograd.grad(terms["loss"], list(model.parameters()), allow_unused=True)
        results.append((terms, grads))
    (t1, g1), (t2, g2) = results
    assert all(torch.equal(t1[k], t2[k]) for k in t1)
    assert all((a is None and b is None) or torch.equal(a, b) for a, b in zip(g1, g2))


@pytest.mark.parametrize("name, changes", SETTINGS)
def test_the_vae_loss_never_trains_the_discriminator(name, changes):
    """The feature term calls D frozen: loss/vae (here without the GAN term) has no gradient on D,
    and loss/discriminator none on the VAE."""
    model = build_with(name, reconstruction="features", gan_weight=0.0, **changes)
    terms = model.loss(make_batch(name))
    groups = model.parameter_groups()
    params = list(model.parameters())
    for group, own in groups.items():
        own_ids = {id(p) for p in own}
        grads = torch.autograd.grad(terms[f"loss/{group}"], params, retain_graph=True, allow_unused=True)
        reached = {id(p) for p, g in zip(params, grads) if g is not None and bool(g.abs().sum() > 0)}
        assert reached and reached <= own_ids, group


def test_the_discriminator_also_sees_reconstructions_as_fakes():
    """Passing reconstructions adds -E log p(fake | x~) to D's loss (Larsen et al. eq. 8) and leaves the generator's loss alone."""
    model = build_with("m2-gan")
    g = torch.Generator().manual_seed(1)
    x_real, x_fake, x_tilde = (torch.rand(6, X_DIM, generator=g) for _ in range(3))
    labels, labelled = torch.randint(K, (6,), generator=g), torch.arange(6) < 3
    d_0, g_0 = model.conditional_gan_losses(x_real, labels, labelled, x_fake, labels)
    d_1, g_1 = model.conditional_gan_losses(x_real, labels, labelled, x_fake, labels, x_tilde, labels)
    extra = -torch.log_softmax(model.discriminator(x_tilde)[0], -1)[:, -1].mean()
    assert torch.allclose(d_1 - d_0, extra, atol=1e-6) and torch.equal(g_0, g_1)
    logits = [model.discriminator(x)[0] for x in (x_real, x_fake, x_tilde)]
    assert torch.allclose(d_1, class_discriminator_loss(logits[0], labels, labelled, logits[1], logits[2]))


def test_fill_holes_and_feature_reconstruction():
    x, fake = torch.ones(2, 3), torch.zeros(2, 3, requires_grad=True)
    mask = torch.tensor([[True, False, True], [False, False, False]])
    shown = fill_holes(x, mask, fake)
    assert torch.equal(shown, mask.float()) and not shown.requires_grad
    assert fill_holes(x, None, fake) is x
    assert torch.allclose(feature_reconstruction(torch.zeros(1, 4), torch.zeros(1, 4)), torch.tensor([2 * math.log(2 * math.pi)]))


# ---------------------------------------------------------------- the classifier of m2-gan


def _dataset(n: int = 30) -> PartialDataset:
    g = torch.Generator().manual_seed(4)
    return PartialDataset.from_arrays(torch.rand(n, 1, 4, 4, generator=g), torch.randint(K, (n,), generator=g), num_classes=K)


def test_each_classifier_reads_what_it_says():
    models = {c: build_with("m2-gan", classifier=c) for c in ("encoder", "discriminator", "ensemble")}
    for model in models.values():
        model.load_state_dict(models["encoder"].state_dict())
        model.eval()
    x = torch.rand(20, X_DIM)
    encoder = torch.softmax(models["encoder"].q_y_x(x), -1)  # [B, K]
    discriminator = torch.softmax(models["encoder"].discriminator(x)[0][:, :K], -1)  # [B, K], p_D(y | x, real)
    got = {c: torch.exp(m.classify(x)) for c, m in models.items()}
    assert torch.allclose(got["encoder"], encoder, atol=1e-6)
    assert torch.allclose(got["discriminator"], discriminator, atol=1e-6)
    assert torch.allclose(got["ensemble"], (encoder + discriminator) / 2, atol=1e-6)
    # the choice changes the predictions: the untrained encoder and discriminator disagree somewhere
    assert not torch.equal(got["encoder"].argmax(-1), got["discriminator"].argmax(-1))


def test_every_classifier_error_is_reported_and_selection_uses_the_chosen_one(tmp_path):
    data = _dataset()
    errors = {}
    for classifier in ("encoder", "discriminator", "ensemble"):
        model = build_with("m2-gan", classifier=classifier).eval()
        errors[classifier] = classification_error_rate(model, data).error
    metrics = build_with("m2-gan").eval().evaluation_metrics(data)
    assert metrics == pytest.approx({f"error_{c}": e for c, e in errors.items()})
    assert build_with("m2-gan", discriminator="pair").evaluation_metrics(data) == {}  # one classifier: valid_error is all there is

    # the Trainer logs all three on the validation and the test split; valid_error is the chosen classifier's
    model = build_with("m2-gan", classifier="ensemble")
    stream = SemiSupervisedStream(_dataset(40), torch.arange(12), batch_size=8, labelled_batch_size=4, seed=0)
    trainer = Trainer(model, stream, TrainConfig(progress=False, eval_elbo_limit=10), tmp_path, valid=data, test=data)
    record = trainer.evaluate()
    for split in ("valid", "test"):
        assert {f"{split}_error_{c}" for c in errors} <= set(record)
        assert record[f"{split}_error"] == record[f"{split}_error_ensemble"]


# ---------------------------------------------------------------- bad settings


@pytest.mark.parametrize("name", GAN_VAES)
def test_an_unknown_reconstruction_is_a_clear_error(name):
    with pytest.raises(ValueError, match=r"unknown reconstruction 'feature'; choose one of \['pixels', 'features'\]"):
        build_with(name, reconstruction="feature")


@pytest.mark.parametrize("classifier", ["discriminator", "ensemble"])
def test_a_discriminator_classifier_needs_the_class_discriminator(classifier):
    with pytest.raises(ValueError, match=f"classifier='{classifier}' reads the class logits .* set discriminator='classes' \\(this one is 'pair'\\)"):
        build_with("m2-gan", classifier=classifier, discriminator="pair")
    with pytest.raises(ValueError, match=r"unknown classifier 'vote'; choose one of \['encoder', 'discriminator', 'ensemble'\]"):
        build_with("m2-gan", classifier="vote")


@pytest.mark.parametrize("name", GAN_VAES)
def test_a_learned_feature_scale_is_a_diagonal_gaussian_the_vae_owns(name):
    """feature_scale=learned: log N(Dis_l(x) | Dis_l(x~), diag exp(s)) with s a VAE parameter (not
    D's) that the VAE loss trains; at s = 0 it is Larsen et al.'s term, elsewhere it is not."""
    model = build_with(name, reconstruction="features", feature_scale="learned")
    log_var = model.feature_log_var
    assert log_var.shape == (model.discriminator.feature_dim,)
    groups = model.parameter_groups()
    assert any(p is log_var for p in groups["vae"]) and not any(p is log_var for p in groups["discriminator"])
    g = torch.Generator().manual_seed(4)
    params = torch.randn(5, model.p_x.num_params(X_DIM), generator=g)
    x = torch.rand(5, X_DIM, generator=g)
    mask = torch.ones(5, X_DIM, dtype=torch.bool)
    y_one_hot = torch.eye(K)[torch.zeros(5, dtype=torch.long)]
    at_zero = model.reconstruction_log_prob(params, x, mask, y_one_hot)  # [5]
    assert torch.allclose(at_zero, by_hand(model, model.p_x.mean(params), x, mask), atol=1e-5)
    with torch.no_grad():
        log_var.copy_(torch.linspace(-2.0, 2.0, log_var.numel()))
    got = model.reconstruction_log_prob(params, x, mask, y_one_hot)
    f_real = model.discriminator(x, *([y_one_hot] if model.config.discriminator == "pair" else []))[1]
    f_tilde = model.discriminator(model.p_x.mean(params), *([y_one_hot] if model.config.discriminator == "pair" else []))[1]
    expected = torch.distributions.Normal(f_tilde, torch.exp(0.5 * log_var)).log_prob(f_real).sum(-1)
    assert torch.allclose(got, expected, atol=1e-4) and not torch.allclose(got, at_zero, atol=1e-2)
    grad = torch.autograd.grad(model.loss(make_batch(name))["loss/vae"], log_var, allow_unused=True)[0]
    assert grad is not None and bool(grad.abs().sum() > 0)
    assert build_with(name, reconstruction="features").feature_log_var is None  # unit: Larsen et al.'s I, no parameter


def test_an_unknown_feature_scale_is_a_clear_error():
    with pytest.raises(ValueError, match=r"unknown feature_scale 'fixed'; choose one of \['unit', 'learned'\]"):
        build_with("m2-gan", reconstruction="features", feature_scale="fixed")
