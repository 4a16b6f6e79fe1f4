"""train.ema_decay: the Trainer evaluates, selects and saves an exponential moving average of the
weights (pogm.train.averaging), and a resumed run continues the same average."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from pogm.train.averaging import WeightAverage
from tests.test_sync_free import records, train, weights
from tests.test_train import fresh_trainer


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(3, 2)
        self.norm = torch.nn.BatchNorm1d(2)  # float running statistics and an integer counter
        self.register_buffer("active", torch.zeros(2, dtype=torch.bool))


def test_the_average_after_n_steps_toward_fixed_weights_is_the_geometric_closed_form():
    net = _Net()
    w0 = net.linear.weight.detach().clone()
    average = WeightAverage(net, decay=0.9)
    with torch.no_grad():
        net.linear.weight.fill_(2.0)
        net.norm.running_mean.fill_(1.0)
        net.norm.num_batches_tracked.fill_(7)
        net.active[0] = True
    for _ in range(5):
        average.update(net)
    expected = 2.0 + (w0 - 2.0) * 0.9**5  # w_n = c + (w_0 - c) d^n
    torch.testing.assert_close(average.module.linear.weight, expected)
    torch.testing.assert_close(average.module.norm.running_mean, torch.full((2,), 1.0 - 0.9**5))
    assert int(average.module.norm.num_batches_tracked) == 7  # integers and booleans are copied, not averaged
    assert average.module.active.tolist() == [True, False]
    assert not any(p.requires_grad for p in average.module.parameters())


def test_a_decay_outside_zero_one_is_a_one_line_error():
    for decay in (0.0, 1.0, 1.5):
        with pytest.raises(ValueError, match="train.ema_decay must be in \\(0, 1\\)"):
            WeightAverage(_Net(), decay)


def test_evaluation_and_best_weights_are_the_average_and_a_resumed_run_continues_it(tmp_path):
    options = {"ema_decay": 0.9, "eval_every_steps": 5}
    continuous = train("m2", tmp_path / "continuous", steps=20, sync_free=False, **options).dir
    stopped = train("m2", tmp_path / "stopped", steps=7, sync_free=False, **options).dir
    fresh_trainer(stopped, max_steps=20).fit()
    assert weights(stopped) == weights(continuous)
    assert records(stopped)[-1] == records(continuous)[-1]  # the evaluations scored the same average
    best = load_file(str(continuous / "best.safetensors"))
    assert all(torch.equal(best[k], v) for k, v in load_file(str(stopped / "best.safetensors")).items())
    assert any(not torch.equal(best[k], v) for k, v in load_file(str(continuous / "model.safetensors")).items() if v.is_floating_point())

    trainer = fresh_trainer(continuous)  # the average as the last checkpoint holds it
    plain = fresh_trainer(continuous, ema_decay=None)
    averaged_metrics = trainer.evaluate()
    assert averaged_metrics != plain.evaluate()  # the weights that train score differently ...
    plain.model.load_state_dict(trainer.averaged.module.state_dict())
    assert plain.evaluate() == averaged_metrics  # ... and the evaluation is that of the averaged weights


def test_an_update_never_reads_the_device():
    from pogm.train.host_sync import NoHostSync

    net, other = _Net(), _Net()
    average = WeightAverage(net, decay=0.99)
    with NoHostSync():  # the sync-free CUDA step updates the average at every step
        average.update(other)
