"""The optimiser a paper uses, as a setting: Adam or SGD with momentum (``train.optimizer``,
``train.momentum``), also per parameter group (``train.group_optimizer``)."""

from __future__ import annotations

import pytest
import torch

from pogm.train.config import TrainConfig
from pogm.train.optimizers import make_optimizer
from tests.test_adversarial import _trainer, build
from tests.test_sync_free import records, train, weights
from tests.test_train import fresh_trainer


def test_sgd_with_momentum_follows_the_heavy_ball_rule():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    optimizer = make_optimizer("sgd", [p], 0.01, TrainConfig(optimizer="sgd", momentum=0.9))
    g1, g2 = torch.tensor([0.5, 1.0]), torch.tensor([-1.0, 2.0])
    p.grad = g1.clone()
    optimizer.step()
    p.grad = g2.clone()
    optimizer.step()
    v1 = g1  # the first step's velocity is the gradient
    v2 = 0.9 * v1 + g2
    expected = torch.tensor([1.0, -2.0]) - 0.01 * v1 - 0.01 * v2
    torch.testing.assert_close(p.detach(), expected)


def test_unknown_optimizer_and_bad_momentum_are_one_line_errors():
    p = [torch.nn.Parameter(torch.zeros(2))]
    with pytest.raises(ValueError, match="unknown optimizer 'rmsprop'; choose one of \\['adam', 'sgd'\\]"):
        make_optimizer("rmsprop", p, 0.1, TrainConfig())
    with pytest.raises(ValueError, match="train.momentum must be in \\[0, 1\\)"):
        make_optimizer("sgd", p, 0.1, TrainConfig(momentum=1.5))


@pytest.mark.parametrize("kind", ["adam", "sgd"])
def test_weight_decay_shrinks_weights_that_get_no_gradient(kind):
    """``train.weight_decay``: Adam's is decoupled (AdamW), so a weight with a zero gradient shrinks by
    exactly lr * weight_decay of itself a step; SGD's adds weight_decay * w to the gradient, the same
    shrinkage without momentum. Without it the weight does not move."""
    for decay, factor in ((0.5, 1 - 0.01 * 0.5), (0.0, 1.0)):
        p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
        optimizer = make_optimizer(kind, [p], 0.01, TrainConfig(optimizer=kind, weight_decay=decay))
        for _ in range(3):
            p.grad = torch.zeros(2)
            optimizer.step()
        torch.testing.assert_close(p.detach(), torch.tensor([1.0, -2.0]) * factor**3)


def test_weight_decay_is_decoupled_from_adams_normalisation():
    """AdamW, not Adam with L2: with a constant gradient Adam's step is lr * sign(g) whatever the
    weight's size, and the decay adds lr * weight_decay * w on top (L2 inside Adam would be
    normalised away with the gradient)."""
    p = torch.nn.Parameter(torch.tensor([10.0]))
    optimizer = make_optimizer("adam", [p], 0.01, TrainConfig(weight_decay=0.1))
    p.grad = torch.tensor([1.0])
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.tensor([10.0 * (1 - 0.01 * 0.1) - 0.01]))


def test_negative_weight_decay_is_a_one_line_error():
    with pytest.raises(ValueError, match="train.weight_decay must be >= 0"):
        make_optimizer("adam", [torch.nn.Parameter(torch.zeros(2))], 0.1, TrainConfig(weight_decay=-1.0))


def test_each_parameter_group_gets_its_own_optimizer(tmp_path):
    trainer = _trainer(build("vaegan"), tmp_path, group_optimizer={"discriminator": "sgd"}, momentum=0.9)
    kinds = {g: type(opt).__name__ for g, opt in trainer.optimizers.items()}
    assert kinds == {"encoder": "Adam", "decoder": "Adam", "discriminator": "SGD"}
    assert trainer.optimizers["discriminator"].param_groups[0]["momentum"] == 0.9
    before = [p.detach().clone() for p in trainer.groups["discriminator"]]
    trainer.train_step(trainer.stream.next_batch())
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.groups["discriminator"]))  # SGD stepped it
    with pytest.raises(ValueError, match="group_optimizer names \\['critic'\\]"):
        _trainer(build("vaegan"), tmp_path, group_optimizer={"critic": "sgd"})


def test_a_run_with_sgd_resumes_exactly(tmp_path):
    options = {"optimizer": "sgd", "momentum": 0.9, "lr": 0.01}
    continuous = train("m2", tmp_path / "continuous", steps=20, sync_free=False, **options).dir
    stopped = train("m2", tmp_path / "stopped", steps=7, sync_free=False, **options).dir
    trainer = fresh_trainer(stopped, max_steps=20)  # resumed: the momentum buffers come back
    assert type(trainer.optimizer).__name__ == "SGD"
    trainer.fit()
    assert weights(stopped) == weights(continuous)
    assert records(stopped)[-1] == records(continuous)[-1]
