"""The sync-free training step (``train.sync_free``; `pogm.train.sync_free`): no host
synchronisation inside a step, and the same training as the synchronous step, bit for bit.

`NoHostSync` catches on the CPU the operations that would make a GPU step wait for the device
(tests/test_cuda.py checks the same on a GPU with ``torch.cuda.set_sync_debug_mode``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pogm
from pogm import checkpoint
from pogm.models.semi_supervised.m2 import M2
from pogm.train.host_sync import HostSync, NoHostSync
from pogm.train.trainer import TrainConfig, Trainer
from tests.test_train import fresh_trainer

SMALL = {"hidden": [16], "z_dim": 4, "a_dim": 4}
TIMING = {"train_cpu_seconds", "train_wall_seconds"}


def train(name: str, out: Path, steps: int, sync_free: bool, **train_options):
    model = {k: v for k, v in SMALL.items() if k != "a_dim" or name != "m2"}
    options = {"max_steps": steps, "sync_free": sync_free, "sync_every": 4, "labelled_batch_size": 30, "lr": 1e-3, **train_options}  # sync_every may be overridden
    return pogm.train(name, data="digits", labels=10, out=out, seed=0, overrides={"model": model, "train": options}, progress=False)


def weights(run_dir: Path) -> dict[str, bytes]:
    return {k: v.numpy().tobytes() for k, v in load_file(str(run_dir / "model.safetensors")).items()}


def records(run_dir: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in checkpoint.read_metrics(run_dir)]


def test_no_host_sync_catches_what_would_stall_a_gpu():
    x = torch.randn(6)
    with NoHostSync():
        x[torch.arange(3)] * 2  # gathers by index: fine
        for read in (lambda: x.sum().item(), lambda: bool((x > 0).any()), lambda: x[x > 0], lambda: x.nonzero()):
            with pytest.raises(HostSync):
                read()


@pytest.mark.parametrize("name", ["m2", "adgm", "sdgm"])
def test_the_sync_free_step_never_reads_the_device(name, tmp_path, monkeypatch):
    """Drawing the batch and the step, from the second step on (the first one reads once what it
    caches, such as whether the data have missing values), with reads every 1000 steps."""
    original = Trainer._timed_step
    checked = []

    def step_without_sync(self):
        if self.step == 0:
            return original(self)
        with NoHostSync():
            original(self)
        checked.append(self.step)

    monkeypatch.setattr(Trainer, "_timed_step", step_without_sync)
    train(name, tmp_path / name, steps=5, sync_free=True, sync_every=1000)
    assert checked == [2, 3, 4, 5]


@pytest.mark.parametrize("name", ["m2", "sdgm"])
def test_sync_free_training_equals_synchronous_training_bit_for_bit(name, tmp_path):
    # 25 steps over 3 epochs of 11 steps with reads every 4: reads and epoch ends do not coincide
    synchronous = train(name, tmp_path / "sync", steps=25, sync_free=False, epochs=3).dir
    sync_free = train(name, tmp_path / "free", steps=25, sync_free=True, epochs=3).dir
    assert weights(sync_free) == weights(synchronous)
    assert records(sync_free) == records(synchronous)  # train terms, errors, ELBOs, lr
    assert len(records(synchronous)) == 3  # evaluations at steps 11, 22 and the end


def plant_nan(monkeypatch, at_step: int) -> None:
    original = M2.loss

    def loss(self, batch, kl_weight=1.0, step=0):
        terms = original(self, batch, kl_weight, step)
        if step == at_step:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(M2, "loss", loss)


def test_a_non_finite_step_makes_no_update_and_counts_as_skipped(tmp_path, monkeypatch):
    plant_nan(monkeypatch, at_step=5)
    skipped = train("m2", tmp_path / "skipped", steps=6, sync_free=True, on_nonfinite="skip").dir  # step 5 is bad
    monkeypatch.undo()
    five = train("m2", tmp_path / "five", steps=5, sync_free=True).dir
    assert records(skipped)[-1]["skipped_batches"] == 1
    assert weights(skipped) == weights(five)  # the bad step changed no weight
    adam_steps = [torch.load(run / "state.pt", weights_only=True)["optimizers"]["model"]["state"][0]["step"] for run in (skipped, five)]
    assert adam_steps[0] == adam_steps[1] == 5  # nor Adam's moments and step count


def test_a_non_finite_step_stops_the_run_at_the_next_read_naming_its_step(tmp_path, monkeypatch):
    plant_nan(monkeypatch, at_step=5)  # read at step 8 (sync_every=4)
    with pytest.raises(FloatingPointError, match=r"non-finite at step 5 \(non-finite: loss=nan; noticed 3 steps later"):
        train("m2", tmp_path / "free", steps=14, sync_free=True)


def test_resume_of_a_sync_free_run_is_exact(tmp_path):
    continuous = train("m2", tmp_path / "continuous", steps=20, sync_free=True).dir
    stopped = train("m2", tmp_path / "stopped", steps=7, sync_free=True).dir  # 7: between two reads
    trainer = fresh_trainer(stopped, max_steps=20)
    trainer.fit()
    assert trainer.step == 20
    assert weights(stopped) == weights(continuous)
    assert records(stopped)[-1] == records(continuous)[-1]


def test_sync_free_is_refused_where_a_step_must_read_the_device(tmp_path):
    with pytest.raises(ValueError, match="train.sync_free=true is not possible here: .*several parameter groups"):
        pogm.train("vaegan", data="digits", out=tmp_path / "gan", overrides={"train": {"max_steps": 1, "sync_free": True}}, progress=False)


def test_sync_free_is_on_for_cuda_only_by_default():
    assert TrainConfig().sync_free is None  # resolved by the Trainer: CUDA and a single fused-Adam group
