"""Tests of pogm.train: exact resume, run directories, checkpoints, failure modes and schedules.

Everything trains on the bundled 8x8 digits (1,197 training images, 11 steps per epoch) with
tiny networks, in one thread: a second thread only adds contention on a shared 2-core machine.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

import pogm
from pogm.data import load_source
from pogm.models.base import config_from_dict
from pogm.models.semi_supervised.vae import VAE
from pogm import checkpoint
from pogm.checkpoint import CheckpointError
from pogm.runs import choose_labels, parse_overrides, rebuild_run, size_model
from pogm.train.launch import _make_trainer
from pogm.train.trainer import TrainConfig, Trainer

SMALL = {"hidden": [32], "z_dim": 4}
TIMING_KEYS = {"train_cpu_seconds", "train_wall_seconds"}


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


@pytest.fixture(scope="module")
def steps_per_epoch(digits):
    return len(digits.train) // TrainConfig().batch_size  # 1197 // 100 = 11


def overrides(train: dict | None = None, model: dict | None = None, data: dict | None = None) -> dict:
    return {"model": {**SMALL, **(model or {})}, "train": dict(train or {}), "data": dict(data or {})}


def tensors_bitwise_equal(path_a: Path, path_b: Path) -> None:
    a, b = load_file(str(path_a)), load_file(str(path_b))
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].numpy().tobytes() == b[name].numpy().tobytes(), f"tensor {name} differs"


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def fresh_trainer(run_dir: Path, resume: bool = True, **train) -> Trainer:
    """What `pogm train --resume` builds, stopped before fit(); ``train`` overrides the stored
    settings (e.g. a higher ``max_steps``, which `resume` itself keeps as stored)."""
    config, net, splits, labelled_index, _ = rebuild_run(run_dir)
    train_config = config_from_dict(TrainConfig, {**config["train"], "progress": False, **train})
    trainer = _make_trainer(net, splits, labelled_index, train_config, config["seed"], run_dir)
    if resume:
        trainer.resume()
    return trainer


# ---------------------------------------------------------------------------------------- resume

# A labelled minibatch smaller than the pool (so the labelled permutation carries over epochs),
# a KL warm-up longer than the first run (so the step count matters) and a decaying learning rate
# (so the scheduler state matters): each must be restored for the resumed run to match.
RESUME_TRAIN = {"labelled_batch_size": 30, "kl_warmup_steps": 30, "lr": 1e-3, "lr_decay": 0.9}


def test_resume_continues_exactly(tmp_path, monkeypatch, steps_per_epoch):
    losses: list[float] = []
    original_step = Trainer.train_step

    def recording_step(self, batch):
        terms = original_step(self, batch)
        losses.append(terms["loss"])
        return terms

    # A: 4 epochs in one go, recording every step's loss.
    monkeypatch.setattr(Trainer, "train_step", recording_step)
    run_a = pogm.train("m2", data="digits", labels=10, epochs=4, out=tmp_path / "a", overrides=overrides(RESUME_TRAIN), progress=False).dir
    monkeypatch.undo()
    assert len(losses) == 4 * steps_per_epoch

    # B: 2 epochs, a copy of its checkpoint, then resumed to 4 epochs.
    run_b = pogm.train("m2", data="digits", labels=10, epochs=2, out=tmp_path / "b", overrides=overrides(RESUME_TRAIN), progress=False).dir
    shutil.copytree(run_b, tmp_path / "b-at-2")
    assert [r["step"] for r in checkpoint.read_metrics(run_b)] == [steps_per_epoch, 2 * steps_per_epoch]
    pogm.train("m2", out=run_b, resume=True, epochs=4, progress=False)

    tensors_bitwise_equal(run_a / "model.safetensors", run_b / "model.safetensors")
    tensors_bitwise_equal(run_a / "best.safetensors", run_b / "best.safetensors")
    records_a, records_b = checkpoint.read_metrics(run_a), checkpoint.read_metrics(run_b)
    assert [r["step"] for r in records_b] == [steps_per_epoch * e for e in (1, 2, 3, 4)]
    assert records_b[-1]["train_loss"] == records_a[-1]["train_loss"]
    assert without_timing(records_b) == without_timing(records_a)  # losses, errors, ELBOs, lr, best flags
    state_a = torch.load(run_a / "state.pt", weights_only=True)
    state_b = torch.load(run_b / "state.pt", weights_only=True)
    assert state_a["step"] == state_b["step"] == 4 * steps_per_epoch
    assert state_a["stream"]["epoch"] == state_b["stream"]["epoch"] == 4

    # The next step after the 2-epoch checkpoint, taken by a fresh Trainer, has the loss of step
    # 2 * steps_per_epoch + 1 of the continuous run.
    next_index = 2 * steps_per_epoch  # 0-based index of that step in `losses`
    trainer = fresh_trainer(tmp_path / "b-at-2")
    assert trainer.step == next_index
    assert trainer.kl_weight() == pytest.approx((next_index + 1) / RESUME_TRAIN["kl_warmup_steps"])
    loss = trainer.train_step(trainer.stream.next_batch())["loss"]
    assert loss == losses[next_index]
    assert losses[next_index] != losses[next_index - 1]  # the equality is not a constant

    # Control: the same weights without the training state give another loss, so the test above
    # really depends on what state.pt restores.
    control = fresh_trainer(tmp_path / "b-at-2", resume=False)
    checkpoint.load_weights(tmp_path / "b-at-2" / "model.safetensors", control.model)
    assert control.train_step(control.stream.next_batch())["loss"] != losses[next_index]


def test_resume_from_a_mid_epoch_checkpoint_is_exact(tmp_path):
    def run(name: str, max_steps: int) -> Path:
        return pogm.train("m2", data="digits", labels=10, out=tmp_path / name, overrides=overrides({"max_steps": max_steps}), progress=False).dir

    continuous, stopped = run("continuous", 20), run("stopped", 7)
    # `resume` keeps the stored max_steps, so continue with a Trainer whose limit is raised.
    trainer = fresh_trainer(stopped, max_steps=20)
    trainer.fit()
    assert trainer.step == 20
    tensors_bitwise_equal(continuous / "model.safetensors", stopped / "model.safetensors")


def test_a_finished_run_resumed_with_a_longer_limit_ends_as_one_long_run(tmp_path):
    # A run that stopped at its max_steps (or CPU budget) continues when the resume names a new
    # limit (`--resume --set train.max_steps=20`), to the very weights of a run that went straight
    # there; the new limit is written to the run's config.
    def run(name: str, max_steps: int) -> Path:
        return pogm.train("m2", data="digits", labels=10, out=tmp_path / name, overrides=overrides({**RESUME_TRAIN, "max_steps": max_steps}), progress=False).dir

    continuous, stopped = run("continuous", 20), run("stopped", 7)
    pogm.train(out=stopped, resume=True, config={"train.max_steps": 20}, progress=False)
    tensors_bitwise_equal(continuous / "model.safetensors", stopped / "model.safetensors")

    def records(run_dir: Path) -> list[dict]:  # "best" depends on the evaluations before: the stopped run has one more
        return [{k: v for k, v in r.items() if k != "best"} for r in without_timing(checkpoint.read_metrics(run_dir))]

    at_stop, *after = records(stopped)  # the first run's final evaluation, then the long run's
    assert at_stop["step"] == 7 and after == records(continuous)
    assert checkpoint.read_config(stopped)["train"]["max_steps"] == 20
    with pytest.raises(ValueError, match=r"train\.lr"):  # any other setting still has to match the run
        pogm.train(out=stopped, resume=True, config={"train.max_steps": 30, "train.lr": 0.5}, progress=False)


def test_eval_every_steps_evaluates_mid_epoch_and_resumes_exactly(tmp_path, steps_per_epoch):
    # 11 steps an epoch, an evaluation every 4 steps: records at 4, 8, 12, ... wherever the epoch
    # stands, and a run stopped at one of them resumes to the weights of the uninterrupted run.
    train = {**RESUME_TRAIN, "eval_every_steps": 4}
    continuous = pogm.train("m2", data="digits", labels=10, out=tmp_path / "c", overrides=overrides({**train, "max_steps": 26}), progress=False).dir
    steps = [r["step"] for r in checkpoint.read_metrics(continuous)]
    assert steps == [4, 8, 12, 16, 20, 24, 26] and steps_per_epoch % 4 != 0
    assert [r["epoch"] for r in checkpoint.read_metrics(continuous)][:3] == [0, 0, 1]  # mid-epoch evaluations
    stopped = pogm.train("m2", data="digits", labels=10, out=tmp_path / "s", overrides=overrides({**train, "max_steps": 8}), progress=False).dir
    trainer = fresh_trainer(stopped, max_steps=26)
    trainer.fit()
    tensors_bitwise_equal(continuous / "model.safetensors", stopped / "model.safetensors")
    tensors_bitwise_equal(continuous / "best.safetensors", stopped / "best.safetensors")
    assert without_timing(checkpoint.read_metrics(stopped)) == without_timing(checkpoint.read_metrics(continuous))


@pytest.mark.parametrize("setting, value", [("eval_every", 0), ("eval_every_steps", 0)])
def test_a_non_positive_evaluation_interval_is_a_clear_error(tmp_path, setting, value):
    with pytest.raises(ValueError, match=f"train.{setting} must be >= 1"):
        pogm.train("m2", data="digits", labels=10, epochs=1, out=tmp_path / "x", overrides=overrides({setting: value}), progress=False)


def test_resume_needs_out_and_a_run(tmp_path):
    with pytest.raises(ValueError, match="--resume"):
        pogm.train("vae", resume=True, progress=False)
    with pytest.raises(CheckpointError):
        pogm.train("vae", out=tmp_path / "nothing", resume=True, progress=False)


# ---------------------------------------------------------------------------------------- run directory


def test_config_yaml_records_the_run(tmp_path, digits):
    run = pogm.train("m2", data="digits", labels=10, seed=3, out=tmp_path / "run", overrides=overrides({"max_steps": 1, "lr": 1e-3}), progress=False).dir
    text = (run / "config.yaml").read_text()
    config = yaml.safe_load(text)
    assert config["format"] == checkpoint.FORMAT
    assert config["pogm_version"] == pogm.__version__
    assert config["model"] == "m2"
    model_config = config["model_config"]
    assert model_config["x_dim"] == 64 and model_config["num_classes"] == 10
    assert model_config["hidden"] == [32] and model_config["z_dim"] == 4
    assert model_config["num_labelled"] == 100 and model_config["num_unlabelled"] == len(digits.train)  # N_l and N_u of eq. 9
    assert model_config["weighting"] == "data-set" and model_config["alpha"] is None  # Kingma et al.'s alpha = 0.1 N
    assert config["data"] == {"name": "digits", "options": {}, "labels_per_class": 10, "unlabelled": None}
    assert config["seed"] == 3
    train = config["train"]
    assert train["lr"] == 1e-3 and train["max_steps"] == 1 and train["batch_size"] == 100
    assert set(train) == {f.name for f in TrainConfig.__dataclass_fields__.values()}

    # load_run rebuilds exactly that model and data.
    loaded = pogm.load_run(run)
    assert loaded.config == config
    assert loaded.model.config.hidden == (32,) and loaded.model.config.z_dim == 4
    assert len(loaded.data.train) == len(digits.train)
    assert loaded.labelled_index.tolist() == json.loads((run / "labelled_index.json").read_text())


def test_data_options_are_recorded_and_rebuilt(tmp_path):
    run = pogm.train("vae", data="digits", out=tmp_path / "run", overrides=overrides({"max_steps": 1}, data={"binarize": False}), progress=False).dir
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["options"] == {"binarize": False}
    assert config["data"]["labels_per_class"] is None
    assert not (run / "labelled_index.json").exists()  # a VAE sees no labels
    loaded = pogm.load_run(run)
    assert loaded.data.train.binarize is False and loaded.labelled_index is None


def test_labelled_index_is_balanced_and_seeded(tmp_path, digits):
    def index(name: str, seed: int) -> list[int]:
        run = pogm.train("m2", data="digits", labels=10, seed=seed, out=tmp_path / name, overrides=overrides({"max_steps": 1}), progress=False).dir
        return json.loads((run / "labelled_index.json").read_text())

    first, again, other = index("s0", 0), index("s0-again", 0), index("s1", 1)
    assert first == again
    assert first != other
    for rows in (first, other):
        assert len(rows) == len(set(rows)) == 100 and rows == sorted(rows)
        assert all(isinstance(i, int) and 0 <= i < len(digits.train) for i in rows)
        counts = torch.bincount(digits.train.y[torch.tensor(rows)], minlength=10)
        assert counts.tolist() == [10] * 10


def test_label_seed_draws_the_labels_apart_from_the_initialisation(tmp_path):
    # One label draw under several initialisations: --label-seed picks the labelled rows, --seed the
    # rest. With lr = 0 the saved weights are the initial ones.
    def run(name: str, seed: int, label_seed: int | None = None) -> Path:
        return pogm.train(
            "m2", data="digits", labels=10, seed=seed, label_seed=label_seed, out=tmp_path / name,
            overrides=overrides({"max_steps": 1, "lr": 0.0}), progress=False,
        ).dir

    def labelled(run_dir: Path) -> list[int]:
        return json.loads((run_dir / "labelled_index.json").read_text())

    seed0, seed1, swapped = run("s0", 0), run("s1", 1), run("init1-labels0", 1, label_seed=0)
    assert labelled(swapped) == labelled(seed0) != labelled(seed1)
    tensors_bitwise_equal(swapped / "model.safetensors", seed1 / "model.safetensors")
    init0, init1 = load_file(str(seed0 / "model.safetensors")), load_file(str(seed1 / "model.safetensors"))
    assert any(not torch.equal(init0[k], init1[k]) for k in init0)
    config = yaml.safe_load((swapped / "config.yaml").read_text())
    assert config["seed"] == 1 and config["data"]["label_seed"] == 0
    assert pogm.load_run(swapped).labelled_index.tolist() == labelled(seed0)
    assert "label_seed" not in yaml.safe_load((seed1 / "config.yaml").read_text())["data"]
    # A resume asking for another label draw is refused by name; the run's own is accepted.
    with pytest.raises(ValueError, match="label seed 1"):
        pogm.train(out=swapped, resume=True, label_seed=1, progress=False)
    pogm.train(out=swapped, resume=True, label_seed=0, progress=False)


def test_parse_overrides_sections_and_values():
    sets = parse_overrides(["z_dim=32", "hidden=[64, 32]", "train.lr=3e-4", "train.grad_clip=null", "data.binarize=false", "model.activation=relu"])
    assert sets["model"] == {"z_dim": 32, "hidden": [64, 32], "activation": "relu"}
    assert sets["train"] == {"lr": 3e-4, "grad_clip": None}
    assert isinstance(sets["train"]["lr"], float)
    assert sets["data"] == {"binarize": False}
    with pytest.raises(ValueError, match="key=value"):
        parse_overrides(["train.lr"])
    with pytest.raises(ValueError, match="section"):
        parse_overrides(["optim.lr=1"])


def test_list_and_dict_overrides_agree(tmp_path):
    run_list = pogm.train("vae", out=tmp_path / "list", overrides=["hidden=[32]", "z_dim=4", "train.max_steps=2", "train.lr=1e-3"], progress=False).dir
    run_dict = pogm.train("vae", out=tmp_path / "dict", overrides=overrides({"max_steps": 2, "lr": 1e-3}), progress=False).dir
    config_list = yaml.safe_load((run_list / "config.yaml").read_text())
    config_dict = yaml.safe_load((run_dict / "config.yaml").read_text())
    assert config_list["model_config"] == config_dict["model_config"]
    assert config_list["train"] == config_dict["train"]
    tensors_bitwise_equal(run_list / "model.safetensors", run_dict / "model.safetensors")  # same seed, same run


# ---------------------------------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    """A finished 1-epoch VAE run; tests copy it before damaging it."""
    return pogm.train("vae", data="digits", epochs=1, out=tmp_path_factory.mktemp("vae") / "run", overrides=overrides(), progress=False).dir


@pytest.fixture
def run_copy(vae_run, tmp_path) -> Path:
    return Path(shutil.copytree(vae_run, tmp_path / "run"))


def test_finished_run_loads(run_copy, steps_per_epoch):
    run = pogm.load_run(run_copy)
    assert not run.model.training
    assert run.model.sample(3).shape == (3, 64)
    state = torch.load(run_copy / "state.pt", weights_only=True)  # no arbitrary unpickling needed
    assert state["step"] == steps_per_epoch
    assert {"optimizers", "schedulers", "stream", "torch_rng", "best_score"} <= set(state)


@pytest.mark.parametrize("weights,filename", [("latest", "model.safetensors"), ("best", "best.safetensors")])
@pytest.mark.parametrize("damage", ["random", "empty", "truncated"])
def test_corrupt_weights_raise_checkpoint_error_naming_the_file(run_copy, weights, filename, damage):
    path = run_copy / filename
    content = path.read_bytes()
    path.write_bytes({"random": os.urandom(2000), "empty": b"", "truncated": content[: len(content) // 2]}[damage])
    with pytest.raises(CheckpointError) as info:
        pogm.load_run(run_copy, weights=weights)
    assert str(path) in str(info.value)


def test_weights_of_another_model_raise_checkpoint_error(run_copy, tmp_path):
    other = pogm.train("vae", out=tmp_path / "other", overrides=overrides({"max_steps": 1}, model={"z_dim": 6}), progress=False).dir
    shutil.copy(other / "model.safetensors", run_copy / "model.safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        pogm.load_run(run_copy, weights="latest")


def test_config_without_format_marker_is_refused(run_copy):
    config = yaml.safe_load((run_copy / "config.yaml").read_text())
    del config["format"]
    (run_copy / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError, match="not written by pogm"):
        pogm.load_run(run_copy)


def test_config_that_is_not_yaml_is_refused(run_copy):
    (run_copy / "config.yaml").write_text("model: [unclosed\n  : :")
    with pytest.raises(CheckpointError, match="config.yaml"):
        pogm.load_run(run_copy)


def test_missing_run_directory_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="not a pogm run directory"):
        pogm.load_run(tmp_path / "does-not-exist")
    with pytest.raises(CheckpointError):
        pogm.load_run(tmp_path)  # exists, but holds no run


def test_corrupt_training_state_is_refused_on_resume(run_copy):
    (run_copy / "state.pt").write_bytes(b"not a torch file")
    with pytest.raises(CheckpointError, match="state.pt"):
        pogm.train("vae", out=run_copy, resume=True, epochs=2, progress=False)


def test_training_into_an_existing_run_needs_resume(run_copy):
    before = {p.name: p.read_bytes() for p in run_copy.iterdir()}
    with pytest.raises(FileExistsError, match="--resume"):
        pogm.train("vae", data="digits", epochs=1, out=run_copy, overrides=overrides(), progress=False)
    assert {p.name: p.read_bytes() for p in run_copy.iterdir()} == before  # nothing touched


# ---------------------------------------------------------------------------------------- atomic writes


def test_training_leaves_no_temporary_files(tmp_path):
    run = pogm.train("m2", data="digits", labels=10, epochs=2, out=tmp_path / "run", overrides=overrides(), progress=False).dir
    names = sorted(p.name for p in run.iterdir())
    # Two checkpoint generations (the previous one kept as *.prev.*) and the manifest that names them.
    assert names == [
        "best.safetensors", "checkpoint.json", "config.yaml", "labelled_index.json", "metrics.jsonl",
        "model.prev.safetensors", "model.safetensors", "state.prev.pt", "state.pt",
    ]
    for name in ("best.safetensors", "checkpoint.json", "config.yaml", "labelled_index.json", "model.safetensors", "model.prev.safetensors", "state.pt", "state.prev.pt"):
        assert (run / name).stat().st_mode & 0o777 == 0o644, name  # atomic writes: shared, not mkstemp-private
    assert list(tmp_path.iterdir()) == [run]


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("previous")

    def half_write(tmp: str) -> None:
        Path(tmp).write_text("half of the new con")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        checkpoint.atomic_write(target, half_write)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["file.txt"]


def test_failed_weights_save_keeps_the_previous_checkpoint(run_copy, monkeypatch):
    before = (run_copy / "model.safetensors").read_bytes()

    def crashing_save(state, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(checkpoint, "save_file", crashing_save)
    run = pogm.load_run(run_copy, weights="latest")
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_weights(run_copy / "model.safetensors", run.model)
    assert (run_copy / "model.safetensors").read_bytes() == before
    assert not [p for p in run_copy.iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------- NaN


def test_diverging_loss_raises_and_names_the_learning_rate(tmp_path):
    with pytest.raises(FloatingPointError) as info:
        pogm.train("vae", data="digits", epochs=3, out=tmp_path / "run", overrides=overrides({"lr": 1e6}), progress=False)
    message = str(info.value)
    assert "learning rate" in message and "train.lr" in message


def test_nan_keeps_the_previous_checkpoint(tmp_path, monkeypatch, steps_per_epoch):
    run = tmp_path / "run"
    nan_step = steps_per_epoch + 2  # in the second epoch, after the first checkpoint
    seen: dict[str, bytes] = {}
    original_loss = VAE.loss

    def loss(self, batch, kl_weight=1.0, step=0):
        terms = original_loss(self, batch, kl_weight, step)
        if step == nan_step:
            seen["weights"] = (run / "model.safetensors").read_bytes()
            seen["state"] = (run / "state.pt").read_bytes()
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(VAE, "loss", loss)
    with pytest.raises(FloatingPointError, match=f"step {nan_step}"):
        pogm.train("vae", data="digits", epochs=3, out=run, overrides=overrides(), progress=False)
    monkeypatch.undo()

    assert (run / "model.safetensors").read_bytes() == seen["weights"]
    assert (run / "state.pt").read_bytes() == seen["state"]
    assert [r["step"] for r in checkpoint.read_metrics(run)] == [steps_per_epoch]
    loaded = pogm.load_run(run, weights="latest")
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())
    assert torch.load(run / "state.pt", weights_only=True)["step"] == steps_per_epoch
    # And the run resumes from there once the cause is gone.
    pogm.train("vae", out=run, resume=True, progress=False)
    assert [r["step"] for r in checkpoint.read_metrics(run)] == [steps_per_epoch * e for e in (1, 2, 3)]


# ---------------------------------------------------------------------------------------- config errors


def test_unknown_model_key_lists_the_known_keys(tmp_path):
    with pytest.raises(ValueError) as info:
        pogm.train("m2", data="digits", labels=10, out=tmp_path / "run", overrides=["nonsense=1"], progress=False)
    message = str(info.value)
    assert "nonsense" in message and "known keys" in message
    for key in ("z_dim", "hidden", "alpha"):
        assert key in message
    assert not (tmp_path / "run" / "config.yaml").exists()


def test_unknown_train_key_lists_the_known_keys(tmp_path):
    with pytest.raises(ValueError) as info:
        pogm.train("vae", out=tmp_path / "run", overrides=["train.nonsense=1"], progress=False)
    message = str(info.value)
    assert "nonsense" in message and "lr" in message and "kl_warmup_steps" in message


def test_too_many_labels_names_the_short_class(tmp_path, digits):
    counts = torch.bincount(digits.train.y, minlength=10)
    smallest = int(counts.min())
    short = int((counts < smallest + 1).nonzero()[0])  # the first class that cannot supply the labels
    with pytest.raises(ValueError) as info:
        pogm.train("m2", data="digits", labels=smallest + 1, out=tmp_path / "run", overrides=overrides(), progress=False)
    message = str(info.value)
    assert re.search(rf"\bclass {short}\b", message), message
    assert str(smallest) in message
    # One fewer is fine.
    assert choose_labels(digits, smallest, 0, True).numel() == 10 * smallest


# ---------------------------------------------------------------------------------------- schedules and budgets


def small_trainer(digits, run_dir: Path, **train) -> Trainer:
    net = size_model("vae", digits, 0, SMALL)
    config = TrainConfig(progress=False, **train)
    return _make_trainer(net, digits, None, config, 0, run_dir)


def test_kl_weight_rises_linearly_to_one(digits, tmp_path):
    warmup = 8
    trainer = small_trainer(digits, tmp_path, kl_warmup_steps=warmup)
    weights = []
    for step in range(warmup + 5):
        trainer.step = step
        weights.append(trainer.kl_weight())
    assert 0 <= weights[0] <= 1 / warmup
    rising = [w for w in weights if w < 1]
    assert len(rising) in (warmup - 1, warmup)  # reaches 1 at step warmup - 1 or warmup
    steps = [b - a for a, b in zip(weights, weights[1:len(rising) + 1])]
    assert steps == pytest.approx([1 / warmup] * len(steps))  # linear, slope 1 / warmup
    assert weights[warmup:] == [1.0] * 5
    assert small_trainer(digits, tmp_path, kl_warmup_steps=0).kl_weight() == 1.0


def test_trainer_passes_the_kl_weight_to_the_model(digits, tmp_path, monkeypatch):
    warmup, steps = 6, 9
    trainer = small_trainer(digits, tmp_path, kl_warmup_steps=warmup, max_steps=steps)
    passed = []
    original_loss = trainer.model.loss

    def loss(batch, kl_weight=1.0, step=0):
        passed.append((step, kl_weight))
        return original_loss(batch, kl_weight, step)

    monkeypatch.setattr(trainer.model, "loss", loss)
    trainer.fit()
    assert [s for s, _ in passed] == list(range(steps))
    for step, weight in passed:
        trainer.step = step
        assert weight == trainer.kl_weight()
    weights = [w for _, w in passed]
    assert weights == sorted(weights) and weights[0] < 1 and weights[-1] == 1.0


def test_cpu_budget_stops_training_early(tmp_path, steps_per_epoch):
    budget = 0.5
    start = time.perf_counter()
    run = pogm.train("vae", data="digits", epochs=1000, out=tmp_path / "run", overrides=overrides({"cpu_budget_seconds": budget}), progress=False).dir
    assert time.perf_counter() - start < 30
    records = checkpoint.read_metrics(run)
    last = records[-1]
    assert last["train_cpu_seconds"] >= budget
    assert last["epoch"] < 1000 and last["step"] < 1000 * steps_per_epoch
    assert math.isfinite(last["train_loss"])
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == last["step"]  # the final record has its checkpoint
    pogm.load_run(run, weights="latest")


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)` before")
def test_learning_rate_steps_down_every_n_epochs_to_a_floor(digits, tmp_path):
    trainer = small_trainer(digits, tmp_path, lr=1e-3, lr_decay=0.5, lr_decay_every=2, lr_min=2e-4)
    lrs = []
    for _ in range(8):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.schedulers["model"].step()
    assert lrs == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 2e-4, 2e-4])
    with pytest.raises(ValueError, match="lr_decay"):
        small_trainer(digits, tmp_path, lr_decay=1.5)


def test_the_step_decay_keeps_its_floor_and_a_zero_learning_rate_is_frozen_weights_not_an_error():
    from pogm.train.optimizers import lr_factor

    assert lr_factor(TrainConfig(lr=1e-3, lr_decay=0.5, lr_min=2e-4), 1) == 0.5
    assert lr_factor(TrainConfig(lr=1e-3, lr_decay=0.5, lr_min=2e-4), 5) == pytest.approx(0.2)  # 1/32 is below the floor
    assert lr_factor(TrainConfig(lr=0.0, lr_decay=0.5), 3) == 0.125  # was a ZeroDivisionError
