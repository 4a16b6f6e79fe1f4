"""The model contract, save/load, exact resume and the sync-free step on a CUDA GPU.

Skipped where PyTorch sees no GPU (CI has none); benchmarks/gpu_check.sh runs them on one. Set
``CUBLAS_WORKSPACE_CONFIG=:4096:8`` for bitwise-reproducible matrix products (the script does)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import pogm
from pogm.checkpoint import load_weights, save_weights
from pogm.models import list_models
from pogm.train.trainer import Trainer
from tests.test_contract import build, make_batch, phases
from tests.test_sync_free import records, weights
from tests.test_train import fresh_trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU; PyTorch sees none here")
CUDA = torch.device("cuda")
SMALL = {"hidden": [32], "z_dim": 4}


@pytest.mark.parametrize("name", list_models())
def test_every_model_gives_a_finite_loss_and_gradients_on_cuda(name):
    model = build(name).to(CUDA)
    for step in phases(model):
        model.zero_grad()
        terms = model.loss(make_batch(name).to(CUDA), kl_weight=0.5, step=step)
        assert terms["loss"].device.type == "cuda" and torch.isfinite(terms["loss"])
        terms["loss"].backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_save_on_cuda_and_load_give_identical_outputs(name, tmp_path):
    model = build(name, seed=0).to(CUDA)
    save_weights(tmp_path / "m.safetensors", model)
    other = build(name, seed=1).to(CUDA)
    load_weights(tmp_path / "m.safetensors", other)
    for step in phases(model):
        torch.manual_seed(3)
        a = model.loss(make_batch(name).to(CUDA), step=step)["loss"]
        torch.manual_seed(3)
        b = other.loss(make_batch(name).to(CUDA), step=step)["loss"]
        assert torch.equal(a, b)


def train_on_cuda(name: str, out: Path, steps: int, **train) -> Path:
    options = {"max_steps": steps, "device": "cuda", "labelled_batch_size": 30, "lr": 1e-3, "sync_every": 4, **train}
    return pogm.train(name, data="digits", labels=10, out=out, seed=0, overrides={"model": SMALL, "train": options}, progress=False).dir


@pytest.mark.parametrize("name", ["m2", "adgm"])
def test_a_cuda_run_resumes_exactly(name, tmp_path):
    continuous = train_on_cuda(name, tmp_path / "continuous", 20)
    stopped = train_on_cuda(name, tmp_path / "stopped", 7)
    trainer = fresh_trainer(stopped, max_steps=20)
    assert trainer.sync_free  # the default on CUDA
    trainer.fit()
    assert weights(stopped) == weights(continuous)
    assert records(stopped)[-1] == records(continuous)[-1]


def test_sync_free_on_cuda_equals_the_synchronous_step(tmp_path):
    free = train_on_cuda("m2", tmp_path / "free", 25, epochs=3)
    synchronous = train_on_cuda("m2", tmp_path / "sync", 25, epochs=3, sync_free=False)
    assert weights(free) == weights(synchronous)
    assert records(free) == records(synchronous)


@pytest.mark.parametrize("name", ["m2", "adgm", "sdgm"])
def test_a_cuda_training_step_never_waits_for_the_device(name, tmp_path, monkeypatch):
    original = Trainer._timed_step
    checked = []

    def step_without_sync(self):
        if self.step == 0:  # the first step creates Adam's state and caches facts about the data
            return original(self)
        torch.cuda.set_sync_debug_mode("error")
        try:
            original(self)
        finally:
            torch.cuda.set_sync_debug_mode("default")
        checked.append(self.step)

    monkeypatch.setattr(Trainer, "_timed_step", step_without_sync)
    train_on_cuda(name, tmp_path / name, 6, sync_every=1000)
    assert checked == [2, 3, 4, 5, 6]
