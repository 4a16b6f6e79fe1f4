"""Adversarial training: the objectives' math, losses that reach only their own parameter group,
the trainer's optimizers and schedules, and the equilibrium gate."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset
from pogm.data.streams import SemiSupervisedStream
from pogm.models import model_entry, list_models
from pogm.models.vae_gan.vaegan import VAEGAN, VAEGANConfig
from pogm.nn import call_frozen
from pogm.objectives.adversarial import (
    class_discriminator_loss,
    class_generator_loss,
    discriminator_loss,
    equilibrium_gates,
    feature_reconstruction,
    generator_loss,
)
from pogm.train.trainer import TrainConfig, Trainer
from tests.test_contract import build, make_batch

ADVERSARIAL = [n for n in list_models() if model_entry(n).cls.discriminator_groups]  # several optimisers: a discriminator and the rest


def test_there_are_adversarial_models():
    assert {"vaegan", "m2-gan", "cvae-gan"} <= set(ADVERSARIAL)


# ---------------------------------------------------------------- objectives


def test_gan_losses_match_their_probability_form():
    real, fake = torch.randn(7, dtype=torch.float64), torch.randn(7, dtype=torch.float64)
    d_real, d_fake = torch.sigmoid(real), torch.sigmoid(fake)
    expected = -(torch.log(d_real).mean() + torch.log(1 - d_fake).mean())
    assert torch.allclose(discriminator_loss(real, fake), expected)
    assert torch.allclose(generator_loss(fake), -torch.log(d_fake).mean())
    assert torch.allclose(generator_loss(fake, "minimax"), torch.log(1 - d_fake).mean())
    with pytest.raises(ValueError, match="non-saturating"):
        generator_loss(fake, "wasserstein")


def test_saturated_discriminator_gives_finite_losses_and_gradients():
    logits = torch.tensor([80.0, -80.0], requires_grad=True)
    loss = discriminator_loss(logits, -logits) + generator_loss(logits)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_class_discriminator_loss_matches_softmax_probabilities():
    K = 4
    real, fake = torch.randn(6, K + 1, dtype=torch.float64), torch.randn(5, K + 1, dtype=torch.float64)
    labels = torch.tensor([2, 0, 3, 0, 0, 1])
    labelled = torch.tensor([True, True, True, False, False, True])
    p_real, p_fake = real.softmax(-1), fake.softmax(-1)
    per_row = torch.where(labelled, p_real[torch.arange(6), labels].log(), (1 - p_real[:, K]).log())
    expected = -per_row.mean() - p_fake[:, K].log().mean()
    assert torch.allclose(class_discriminator_loss(real, labels, labelled, fake), expected)
    assert torch.allclose(class_generator_loss(fake, labels[:5]), -p_fake[torch.arange(5), labels[:5]].log().mean())


def test_feature_reconstruction_is_a_unit_gaussian_negative_log_density():
    real, fake = torch.randn(3, 8), torch.randn(3, 8)
    expected = -torch.distributions.Normal(fake, 1.0).log_prob(real).sum(-1)
    assert torch.allclose(feature_reconstruction(real, fake), expected, atol=1e-5)


@pytest.mark.parametrize(
    "real, fake, expected",
    [
        (0.69, 0.69, (True, True)),  # balanced: both train
        (0.1, 0.7, (False, True)),  # D wins on real images: D pauses
        (0.7, 1.5, (True, False)),  # D loses on fakes: the decoder pauses
        (0.1, 1.5, (True, True)),  # both rules fire: neither pauses
    ],
)
def test_equilibrium_gates(real, fake, expected):
    assert equilibrium_gates(real, fake, 0.68, 0.35) == expected


def test_call_frozen_passes_gradients_to_inputs_but_not_parameters():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    x = torch.randn(5, 3, requires_grad=True)
    out = call_frozen(net, x)
    assert torch.allclose(out, net(x))
    out.sum().backward()
    assert x.grad is not None and all(p.grad is None for p in net.parameters())


# ---------------------------------------------------------------- every adversarial model


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_each_loss_reaches_only_its_own_parameter_group(name):
    model = build(name)
    groups = model.parameter_groups()
    assert set(groups) >= set(model.discriminator_groups)
    ids = [id(p) for params in groups.values() for p in params]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in model.parameters()}  # a partition
    terms = model.loss(make_batch(name))
    params = list(model.parameters())
    for group, own in groups.items():
        own_ids = {id(p) for p in own}
        grads = torch.autograd.grad(terms[f"loss/{group}"], params, retain_graph=True, allow_unused=True)
        reached = {id(p) for p, g in zip(params, grads) if g is not None and bool(g.abs().sum() > 0)}
        assert reached <= own_ids, f"loss/{group} reaches {len(reached - own_ids)} parameters of other groups"
        assert reached, f"loss/{group} reaches none of its own parameters"


def test_vaegan_gamma_moves_the_decoder_but_the_gan_never_reaches_the_encoder():
    """gamma weighs feature reconstruction against the GAN in the decoder's loss only; the
    encoder's gradient is the same whatever gamma and the GAN's form."""
    batch = Batch(x={"x": torch.rand(6, 1, 8, 8)})

    def gradients(**changes):
        torch.manual_seed(0)
        model = VAEGAN(VAEGANConfig(x_dim=64, image_shape=(1, 8, 8), z_dim=3, hidden=(16,), discriminator_hidden=(12,), **changes))
        torch.manual_seed(1)
        terms = model.loss(batch)
        enc = torch.autograd.grad(terms["loss/encoder"], list(model.q_z_x.parameters()), retain_graph=True)
        dec = torch.autograd.grad(terms["loss/decoder"], list(model.p_x_z.parameters()))
        return enc, dec

    enc_1, dec_1 = gradients(gamma=1.0)
    enc_0, dec_0 = gradients(gamma=0.0)
    enc_m, _ = gradients(gamma=1.0, gan_loss="minimax")
    assert all(torch.equal(a, b) for a, b in zip(enc_1, enc_0)) and all(torch.equal(a, b) for a, b in zip(enc_1, enc_m))
    assert not all(torch.allclose(a, b) for a, b in zip(dec_1, dec_0))
    assert any(bool(g.abs().sum() > 0) for g in dec_0)  # gamma = 0: the GAN alone still trains the decoder


# ---------------------------------------------------------------- the trainer


def _trainer(model, tmp_path, **train):
    data = PartialDataset.from_arrays(torch.rand(40, 1, 4, 4), torch.randint(3, (40,)), num_classes=3)
    stream = SemiSupervisedStream(data, torch.arange(12), batch_size=8, labelled_batch_size=4, seed=0)
    config = TrainConfig(progress=False, **{"lr": 1e-2, **train})
    return Trainer(model, stream, config, tmp_path)


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_each_optimizer_steps_on_its_own_loss_only(name, tmp_path):
    """After one step, every group moved exactly as its own Adam on its own loss's gradient: a
    replay with one optimizer per group built here gives the same parameters."""
    model = build(name)
    trainer = _trainer(model, tmp_path)
    replay = build(name)
    replay.load_state_dict(model.state_dict())
    state = torch.random.get_rng_state()
    batch = trainer.stream.next_batch()
    torch.random.set_rng_state(state)
    trainer.train_step(batch)

    torch.random.set_rng_state(state)
    terms = replay.loss(batch)
    groups = replay.parameter_groups()
    grads = {g: torch.autograd.grad(terms[f"loss/{g}"], groups[g], retain_graph=True, allow_unused=True) for g in groups}
    for g, params in groups.items():
        for p, grad in zip(params, grads[g]):
            p.grad = grad
        torch.optim.Adam(params, lr=1e-2).step()
    for (name_a, a), (_, b) in zip(model.named_parameters(), replay.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), name_a
    # and summing the losses into one backward pass would have given other updates
    assert len(groups) > 1


def test_a_gated_group_does_not_move(tmp_path):
    model = VAEGAN(VAEGANConfig(x_dim=16, image_shape=(1, 4, 4), z_dim=3, hidden=(16,), discriminator_hidden=(8,), equilibrium=0.68, equilibrium_margin=1e-4))
    trainer = _trainer(model, tmp_path)
    for _ in range(5):
        before = {n: p.detach().clone() for n, p in model.named_parameters()}
        terms = trainer.train_step(trainer.stream.next_batch())
        moved = {group: any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n.startswith(prefix)) for group, prefix in (("discriminator", "discriminator."), ("decoder", "p_x_z."))}
        train_d, train_dec = equilibrium_gates(terms["d_real_bce"], terms["d_fake_bce"], 0.68, 1e-4)
        assert moved["discriminator"] == train_d == bool(terms["train_discriminator"])
        assert moved["decoder"] == train_dec == bool(terms["train_decoder"])


def test_alternating_schedule_gives_the_discriminator_its_steps(tmp_path):
    model = build("vaegan")
    trainer = _trainer(model, tmp_path, schedule="alternating", discriminator_steps=3)
    for _ in range(2):
        trainer.train_step(trainer.stream.next_batch())
    steps = {g: max(int(s["step"]) for s in opt.state_dict()["state"].values()) for g, opt in trainer.optimizers.items()}
    assert steps == {"encoder": 2, "decoder": 2, "discriminator": 6}


def test_group_learning_rates_and_bad_schedules(tmp_path):
    model = build("vaegan")
    trainer = _trainer(model, tmp_path, group_lr={"discriminator": 2e-4})
    assert trainer.optimizers["discriminator"].param_groups[0]["lr"] == 2e-4 and trainer.optimizers["encoder"].param_groups[0]["lr"] == 1e-2
    with pytest.raises(ValueError, match="parameter groups"):
        _trainer(model, tmp_path, group_lr={"critic": 1e-3})
    with pytest.raises(ValueError, match="schedule"):
        _trainer(model, tmp_path, schedule="round-robin")
    with pytest.raises(ValueError, match="needs a model with a discriminator"):
        _trainer(build("vae"), tmp_path, schedule="alternating")


@pytest.mark.parametrize("name", ADVERSARIAL)
def test_resume_restores_every_optimizer(name, tmp_path):
    model = build(name)
    trainer = _trainer(model, tmp_path)
    for _ in range(3):
        trainer.train_step(trainer.stream.next_batch())
    trainer.save()
    resumed = _trainer(build(name, seed=4), tmp_path)
    resumed.resume()
    assert set(resumed.optimizers) == set(model.parameter_groups())
    for g in resumed.optimizers:
        a, b = trainer.optimizers[g].state_dict()["state"], resumed.optimizers[g].state_dict()["state"]
        assert all(torch.equal(a[i]["exp_avg"], b[i]["exp_avg"]) for i in a)


def test_a_non_finite_group_loss_names_the_group(tmp_path):
    model = build("vaegan")
    trainer = _trainer(model, tmp_path)
    with torch.no_grad():
        model.discriminator.out.bias.fill_(math.nan)
    with pytest.raises(FloatingPointError, match="group 'encoder'|group 'decoder'|group 'discriminator'"):
        trainer.train_step(trainer.stream.next_batch())


def test_gan_models_prefer_grey_levels_where_the_source_has_them():
    from pogm.data.sources import source_options

    assert model_entry("vaegan").cls.data_defaults == {"binarize": False}
    assert "binarize" in source_options("mnist") and "binarize" not in source_options("bars")


@pytest.mark.parametrize("name", [n for n in ADVERSARIAL if "architecture" in {f.name for f in dataclasses.fields(model_entry(n).cls.Config)}])
def test_dcgan_networks_on_28x28_images_keep_the_losses_apart(name):
    """``architecture=dcgan`` swaps in convolutional networks for MNIST-sized images; the losses
    stay on their own networks."""
    from pogm.models.base import config_from_dict

    cls = model_entry(name).cls
    train = PartialDataset.from_arrays(torch.rand(8, 1, 28, 28), torch.randint(3, (8,)), num_classes=3)
    values = cls.data_fields(784, 3, 8, 8, train)
    small = {"architecture": "dcgan", "channels": (4, 8), "hidden": (16,), "z_dim": 3, "discriminator_hidden": (16,), "steps": 2, "lstm_units": 8}
    options = {f.name for f in dataclasses.fields(cls.Config)}
    values.update({k: v for k, v in small.items() if k in options})
    model = cls(config_from_dict(cls.Config, values))
    assert any(isinstance(m, torch.nn.Conv2d) for m in model.discriminator.modules())
    batch = Batch(x={"x": train.x["x"]}, y=train.y, y_mask=torch.ones(8, dtype=torch.bool))
    terms = model.loss(batch)
    params = list(model.parameters())
    for group, own in model.parameter_groups().items():
        grads = torch.autograd.grad(terms[f"loss/{group}"], params, retain_graph=True, allow_unused=True)
        assert {id(p) for p, g in zip(params, grads) if g is not None} <= {id(p) for p in own}, group
    assert model.sample(2).shape == (2, 784)
