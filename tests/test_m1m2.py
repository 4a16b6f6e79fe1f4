"""M1+M2's feature settings: what M2 sees of the M1 features, and what M1 learns from."""

from __future__ import annotations

import pytest
import torch

from pogm.data import load_source
from pogm.data.batch import Batch
from pogm.models.semi_supervised.m1m2 import M1M2, M1M2Config


@pytest.fixture(scope="module")
def images():
    train = load_source("digits", binarize=False).train
    return train.x["x"].reshape(len(train), -1)[:60].float(), train.y[:60]


def build(**fields) -> M1M2:
    torch.manual_seed(0)
    return M1M2(M1M2Config(x_dim=64, m1_z_dim=8, m1_hidden=(16,), z_dim=4, hidden=(16,), m1_steps=5, **fields))


def batch(images, labelled: int = 20) -> Batch:
    x, y = images
    y_mask = torch.arange(len(x)) < labelled
    return Batch(x={"x": x}, y=y * y_mask, y_mask=y_mask)


def test_active_threshold_keeps_only_the_units_that_vary(images):
    model = build(active_threshold=0.0)
    std = model.m1.posterior(images[0]).mean.std(0)
    threshold = float(std.detach().median())
    model = build(active_threshold=threshold)
    assert model.active.all() and not model.active_chosen  # every unit until M2 starts
    model.loss(batch(images), step=5)  # M2's first step chooses the units
    assert model.active_chosen
    assert torch.equal(model.active, std > threshold)
    assert 0 < int(model.active.sum()) < 8


def test_m2_ignores_the_inactive_units(images):
    model = build(active_threshold=0.05)
    model.loss(batch(images), step=5)
    model.active.copy_(torch.tensor([True, False] * 4))  # half the units, whatever M1 learned
    features = model.features(batch(images))
    assert torch.equal(features.x_mask["x"], model.active.expand(len(images[0]), 8))
    changed = features.x["x"].clone()
    changed[:, ~model.active] += 5.0  # what M2 must not see
    other = Batch(x={"x": changed}, x_mask=features.x_mask, y=features.y, y_mask=features.y_mask)
    torch.manual_seed(1)
    loss = model.m2.loss(features)["loss"]
    torch.manual_seed(1)
    assert torch.equal(model.m2.loss(other)["loss"], loss)
    assert torch.equal(model.m2.classify(other), model.m2.classify(features))
    assert torch.isfinite(model.log_weights(batch(images), 3)).all()


def test_threshold_zero_keeps_every_unit_unmasked(images):
    model = build(active_threshold=0.0)
    model.loss(batch(images), step=5)
    assert model.active.all()
    assert model.features(batch(images)).x_mask["x"].all()


@pytest.mark.parametrize("binarize", [True, False])
def test_m1_binarize_trains_m1_on_a_bernoulli_sample_of_grey_images(images, binarize):
    model = build(m1_binarize=binarize)
    x = images[0]
    assert 0 < float(((x > 0) & (x < 1)).float().mean())  # grey levels in the data
    torch.manual_seed(2)
    loss = model.loss(batch(images), step=0)["loss"]
    torch.manual_seed(2)
    seen = torch.bernoulli(x) if binarize else x
    assert torch.equal(model.m1.loss(Batch(x={"x": seen}))["loss"], loss)


@pytest.mark.parametrize("features", ["sample", "mean"])
def test_features_setting_gives_m2_samples_or_means(images, features):
    model = build(features=features, active_threshold=0.0)
    b = batch(images)
    mean = model.m1.posterior(images[0]).mean
    torch.manual_seed(3)
    loss = model.loss(b, step=5)["loss"]
    torch.manual_seed(3)
    z1 = model.m1.posterior(images[0]).rsample() if features == "sample" else mean
    expected = model.m2.loss(Batch(x={"x": z1}, y=b.y, y_mask=b.y_mask))["loss"]
    assert torch.allclose(loss, expected)
    torch.manual_seed(3)
    assert torch.equal(model.classify(b), model.m2.classify(Batch(x={"x": mean})))  # classification: always the mean


def test_unknown_features_is_an_error():
    with pytest.raises(ValueError, match="features"):
        build(features="median")

def trainer_for(images, tmp_path, **train):
    """A Trainer of `build()` (M1 for 5 steps, then M2) on the images, 20 of them labelled."""
    from pogm.data.dataset import PartialDataset
    from pogm.data.streams import SemiSupervisedStream
    from pogm.train.trainer import TrainConfig, Trainer

    x, y = images
    stream = SemiSupervisedStream(PartialDataset.from_arrays(x, y, num_classes=10), torch.arange(20), batch_size=20, labelled_batch_size=10, seed=0)
    return Trainer(build(), stream, TrainConfig(progress=False, lr=1e-3, **train), tmp_path)


def test_each_phase_steps_only_its_own_network_at_its_own_learning_rate(images, tmp_path):
    """M1 and M2 are parameter groups: in M1's phase only M1 moves, in M2's only M2, and
    ``train.group_lr`` sets M2's rate apart from M1's (Kingma et al.'s M2 learns at Adam 3e-4)."""
    trainer = trainer_for(images, tmp_path, group_lr={"m2": 3e-4})
    model, stream = trainer.model, trainer.stream
    assert trainer.optimizers["m1"].param_groups[0]["lr"] == 1e-3 and trainer.optimizers["m2"].param_groups[0]["lr"] == 3e-4
    assert trainer.learning_rates() == {"lr": 1e-3, "lr/m1": 1e-3, "lr/m2": 3e-4}  # what metrics.jsonl logs

    def snapshot(net):
        return [p.detach().clone() for p in net.parameters()]

    def moved(before, net):
        return any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))

    m1, m2 = snapshot(model.m1), snapshot(model.m2)
    for _ in range(5):  # M1's phase
        trainer.train_step(stream.next_batch())
    assert moved(m1, model.m1) and not moved(m2, model.m2)
    m1, m2 = snapshot(model.m1), snapshot(model.m2)
    for _ in range(3):  # M2's phase
        trainer.train_step(stream.next_batch())
    assert moved(m2, model.m2) and not moved(m1, model.m1)


def test_a_new_epoch_in_m1s_phase_steps_m2s_schedule_without_a_warning(images, tmp_path):
    """M2's optimiser has not stepped during M1's phase; its schedule still counts the epoch, and
    PyTorch's warning about a scheduler stepping first (meant for misordered code) is not shown."""
    import warnings

    trainer = trainer_for(images, tmp_path, lr_decay=0.5)
    trainer.train_step(trainer.stream.next_batch())  # M1 only
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer._step_schedules()
    assert not [w for w in caught if "lr_scheduler.step()" in str(w.message)]
    assert trainer.optimizers["m2"].param_groups[0]["lr"] == 5e-4 and trainer.optimizers["m1"].param_groups[0]["lr"] == 5e-4
