"""Crash safety: exact resume after SIGKILL at random moments, checksummed checkpoint generations,
SIGTERM / Ctrl-C checkpoints, and non-finite losses and gradients.

Everything trains a tiny M2 (or VAE) on the bundled 8x8 digits (11 steps per epoch) in one
thread. The reference run is trained once per module, in this process; the killed runs are
`python -m pogm.cli train` subprocesses.
"""

from __future__ import annotations

import math
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import pogm
from pogm.cli import main as cli_main
from pogm.data import load_source
from pogm.models import model_entry
from pogm.models.semi_supervised.vae import VAE
from pogm import checkpoint
from pogm.train import TrainingInterrupted
from pogm.checkpoint import CheckpointError
from pogm.runs import size_model
from pogm.train.launch import _make_trainer
from pogm.train.trainer import TrainConfig

EPOCHS = 20
STEPS_PER_EPOCH = 11
# Settings under which every piece of the training state matters for the result: a labelled
# permutation carried over epochs, a KL warm-up by step and a decaying learning rate.
SETS = [
    "hidden=[32]", "z_dim=4", "train.labelled_batch_size=30", "train.kl_warmup_steps=30", "train.lr=1e-3",
    "train.lr_decay=0.9", "train.threads=1", "train.progress=false",
]
SMALL = {"hidden": [32], "z_dim": 4}  # the VAE of the non-finite tests
TIMING_KEYS = {"train_cpu_seconds", "train_wall_seconds"}
KILLS = 3


def train_args(out: Path, epochs: int = EPOCHS) -> list[str]:
    args = ["train", "m2", "--data", "digits", "--labels", "10", "--epochs", str(epochs), "--out", str(out), "--seed", "0"]
    for item in SETS:
        args += ["--set", item]
    return args


def resume_args(out: Path) -> list[str]:
    return ["train", "--resume", "--out", str(out)]


def start(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m pogm.cli ARGS` in a subprocess, output appended to ``log``."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "pogm.cli", *args], stdout=out, stderr=subprocess.STDOUT, env=env)


def manifest_text(run: Path) -> str | None:
    try:
        return (run / checkpoint.MANIFEST).read_text()
    except OSError:
        return None


def without_timing(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in records]


def assert_same_run(run: Path, reference: Path) -> None:
    """Bit-for-bit the same final weights, best weights and metric records (timing aside)."""
    for name in ("model.safetensors", "best.safetensors"):
        a, b = load_file(str(run / name)), load_file(str(reference / name))
        assert sorted(a) == sorted(b), name
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: tensor {key} differs"
    assert without_timing(checkpoint.read_metrics(run)) == without_timing(checkpoint.read_metrics(reference))
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")], "temporary files left behind"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run every interrupted one must reproduce."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert cli_main(train_args(out)) == 0
    steps = [r["step"] for r in checkpoint.read_metrics(out)]
    assert steps == [STEPS_PER_EPOCH * e for e in range(1, EPOCHS + 1)]
    return out


# ---------------------------------------------------------------------------------------- SIGKILL


def test_sigkill_at_random_moments_then_resume_is_bit_exact(reference, tmp_path):
    run, log = tmp_path / "run", tmp_path / "log.txt"
    rng = random.Random(20240501)
    started = time.perf_counter()
    kills = 0
    proc = start(train_args(run), log)
    while kills < KILLS:
        # Wait until this process has committed something (a checkpoint; for a fresh run, the
        # empty manifest at its start), then kill it at a random moment of what follows.
        before = manifest_text(run) if kills else None
        while proc.poll() is None and manifest_text(run) == before:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.25))
        if proc.poll() is not None:
            break  # finished before the kill
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        kills += 1
        proc = start(resume_args(run), log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-3000:]
    print(f"\nsurvived {kills} SIGKILLs in {time.perf_counter() - started:.1f} s")
    assert kills >= 3, f"the run ended after {kills} kills; make it longer"
    assert_same_run(run, reference)


# ---------------------------------------------------------------------------------------- SIGTERM and Ctrl-C


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_signal_saves_a_mid_epoch_checkpoint_and_the_run_resumes_exactly(reference, tmp_path, monkeypatch, capsys, signum):
    """The signal really is delivered to this process (by os.kill) in the middle of a step; the
    step finishes, a checkpoint holding the epoch's running sums is written, and `pogm train`
    exits with 128 + the signal number and says how to resume."""
    run = tmp_path / "run"
    stop_at = 3 * STEPS_PER_EPOCH + 4  # inside the fourth epoch: its running sums must survive
    m2 = model_entry("m2").cls
    original = m2.loss

    def loss(self, batch, kl_weight=1.0, step=0):
        if step == stop_at:
            os.kill(os.getpid(), signum)
        return original(self, batch, kl_weight=kl_weight, step=step)

    monkeypatch.setattr(m2, "loss", loss)
    handler = signal.getsignal(signum)
    assert cli_main(train_args(run)) == 128 + signum
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert signal.Signals(signum).name in err and f"at step {stop_at + 1}" in err
    assert f"pogm train --resume --out {run}" in err
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == stop_at + 1 and state["epoch_count"] == 5
    assert signal.getsignal(signum) is handler  # the Trainer's handler is gone again
    assert cli_main(resume_args(run)) == 0
    assert_same_run(run, reference)


def test_a_signal_on_an_epochs_last_step_resumes_exactly(reference, tmp_path, monkeypatch):
    """A stop signal that lands on the last step of an epoch: the checkpoint is written after that
    epoch's learning-rate step and evaluation (they used to be skipped: the learning rate then ran
    one epoch late, a metrics record was lost and the final weights differed)."""
    run = tmp_path / "run"
    stop_at = 3 * STEPS_PER_EPOCH - 1  # the last step of the third epoch
    m2 = model_entry("m2").cls
    original = m2.loss

    def loss(self, batch, kl_weight=1.0, step=0):
        if step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)
        return original(self, batch, kl_weight=kl_weight, step=step)

    monkeypatch.setattr(m2, "loss", loss)
    assert cli_main(train_args(run)) == 128 + signal.SIGTERM
    monkeypatch.undo()
    state = torch.load(run / "state.pt", weights_only=True)
    assert state["step"] == stop_at + 1 and state["epoch_count"] == 0
    assert [r["step"] for r in checkpoint.read_metrics(run)] == [STEPS_PER_EPOCH * e for e in (1, 2, 3)]
    assert cli_main(resume_args(run)) == 0
    assert_same_run(run, reference)


def test_the_python_api_raises_training_interrupted(tmp_path, monkeypatch):
    calls = {"n": 0}
    original = VAE.loss

    def loss(self, batch, kl_weight=1.0, step=0):
        calls["n"] += 1
        if calls["n"] == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch, kl_weight, step)

    monkeypatch.setattr(VAE, "loss", loss)
    with pytest.raises(TrainingInterrupted) as info:
        pogm.train("vae", data="digits", epochs=1, out=tmp_path / "run", overrides={"model": SMALL, "train": {"threads": 1}}, progress=False)
    assert info.value.exit_code == 130 and info.value.step == 3 and "--resume" in str(info.value)


def test_a_run_killed_before_its_first_checkpoint_starts_again(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference, run)
    for name in ("model.safetensors", "model.prev.safetensors", "state.pt", "state.prev.pt", "best.safetensors"):
        (run / name).unlink()
    checkpoint.write_manifest(run, [])  # as `train` leaves it before the first checkpoint
    (run / ".state.pt.x1y2z3").write_bytes(b"half a file")  # a killed writer's temporary
    assert cli_main(resume_args(run)) == 0  # metrics.jsonl still holds lines of the killed run
    err = capsys.readouterr().err
    assert "no checkpoint yet" in err and "step 0" in err and ".state.pt.x1y2z3" in err
    assert_same_run(run, reference)


# ---------------------------------------------------------------------------------------- torn checkpoints


@pytest.fixture(scope="module")
def short_runs(tmp_path_factory) -> tuple[Path, Path]:
    """A 3-epoch reference and the same run as it stood after 2 epochs plus a third checkpoint
    whose files we damage (two generations on disk: steps 22 and 33)."""
    base = tmp_path_factory.mktemp("short")
    done = base / "done"
    assert cli_main(train_args(done, epochs=3)) == 0
    return done, base


def damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    else:  # flip bytes in the middle: the same length, still parseable for all we know
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :])


@pytest.mark.parametrize("name,how", [("model.safetensors", "truncate"), ("state.pt", "flip")])
def test_a_torn_newest_checkpoint_falls_back_to_the_previous_generation(short_runs, tmp_path, capsys, name, how):
    done, _ = short_runs
    run = Path(shutil.copytree(done, tmp_path / "run"))
    damage(run / name, how)
    # The metric line of step 33 is in metrics.jsonl; resuming from step 22 must not repeat it.
    assert cli_main(resume_args(run)) == 0
    err = capsys.readouterr().err
    assert str(run / name) in err and "corrupt" in err and "previous checkpoint" in err
    assert_same_run(run, done)


def test_both_generations_corrupt_is_a_clear_error(short_runs, tmp_path, capsys):
    done, _ = short_runs
    run = Path(shutil.copytree(done, tmp_path / "run"))
    damage(run / "state.pt", "flip")
    damage(run / "model.prev.safetensors", "truncate")
    with pytest.raises(CheckpointError) as info:
        pogm.train(out=run, resume=True, progress=False)
    message = str(info.value)
    assert str(run / "state.pt") in message and str(run / "model.prev.safetensors") in message
    assert "no usable checkpoint" in message and "Restore" in message and "another --out" in message
    assert cli_main(resume_args(run)) == 2
    assert "no usable checkpoint" in capsys.readouterr().err


def test_a_run_written_before_manifests_still_resumes_exactly(short_runs, tmp_path):
    """A checkpoint of an older pogm (no checkpoint.json, no *.prev.*, a state without the new
    keys) resumes as before: metric records after its step are dropped."""
    done, _ = short_runs
    run = Path(shutil.copytree(done, tmp_path / "run"))
    (run / "model.prev.safetensors").replace(run / "model.safetensors")
    state = torch.load(run / "state.prev.pt", weights_only=True)
    for key in ("epoch_sums", "epoch_count", "skipped_batches", "consecutive_skips", "metrics_bytes"):
        del state[key]
    torch.save(state, run / "state.pt")
    (run / "state.prev.pt").unlink()
    (run / checkpoint.MANIFEST).unlink()
    assert [r["step"] for r in checkpoint.read_metrics(run)] == [11, 22, 33]  # step 33 is not in the checkpoint
    pogm.train(out=run, resume=True, progress=False)
    assert_same_run(run, done)
    assert checkpoint.read_manifest(run)[0].step == 33  # and from now on it has a manifest


def test_a_kill_at_every_point_of_a_checkpoint_write_leaves_a_consistent_generation(tmp_path, monkeypatch):
    """Crash the commit at each of its file-system operations in turn: the newest generation the
    run can load is always the old or the new one, whole; and the next commit starts from it."""

    class Crash(BaseException):
        pass

    def blobs(step: int) -> dict[str, bytes]:
        return {checkpoint.WEIGHTS: f"weights {step}".encode() * 50, checkpoint.STATE: f"state {step}".encode() * 70}

    def committed(run: Path) -> checkpoint.Generation:
        current = None
        for step in (1, 2):
            current = checkpoint.commit_generation(run, blobs(step), step, step * 10, current)
        return current

    real_replace, real_link = os.replace, os.link
    crash_at, seen = 0, []
    while True:
        run = tmp_path / f"run{crash_at}"
        run.mkdir()
        current = committed(run)
        calls = {"n": 0}

        def counted(real, calls=calls, crash_at=crash_at):
            def call(*args, **kwargs):
                if calls["n"] == crash_at:
                    raise Crash
                calls["n"] += 1
                return real(*args, **kwargs)

            return call

        monkeypatch.setattr(checkpoint.os, "replace", counted(real_replace))
        monkeypatch.setattr(checkpoint.os, "link", counted(real_link))
        try:
            checkpoint.commit_generation(run, blobs(3), 3, 30, current)
            finished = True
        except Crash:
            finished = False
        monkeypatch.undo()
        loaded, problems = checkpoint.load_latest_generation(run)
        assert problems == [] and loaded.step in (2, 3) and loaded.data == blobs(loaded.step), crash_at
        assert loaded.step == 3 or not finished
        seen.append(loaded.step)
        # The next checkpoint keeps the loaded one as its previous generation.
        checkpoint.commit_generation(run, blobs(4), 4, 40, loaded)
        (run / checkpoint.WEIGHTS).write_bytes(b"torn")
        fallback, problems = checkpoint.load_latest_generation(run)
        assert fallback.step == loaded.step and fallback.data == blobs(loaded.step) and len(problems) == 1
        if finished:
            break
        crash_at += 1
    assert seen[0] == 2 and seen[-1] == 3 and crash_at >= 4


# ---------------------------------------------------------------------------------------- non-finite steps


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def vae_trainer(digits, run_dir: Path, **train):
    torch.manual_seed(0)
    net = size_model("vae", digits, 0, SMALL)
    return _make_trainer(net, digits, None, TrainConfig(progress=False, **train), 0, run_dir)


def nan_loss_at(monkeypatch, bad_calls: set[int]) -> dict[str, int]:
    """Make VAE.loss return a NaN loss (and KL) on the given calls (0-based); returns the counter."""
    original = VAE.loss
    calls = {"n": 0}

    def loss(self, batch, kl_weight=1.0, step=0):
        terms = original(self, batch, kl_weight, step)
        if calls["n"] in bad_calls:
            terms["loss"] = terms["loss"] * math.nan
            terms["kl"] = terms["kl"] * math.inf
        calls["n"] += 1
        return terms

    monkeypatch.setattr(VAE, "loss", loss)
    return calls


def parameters(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_stop_names_the_terms_and_keeps_a_finite_checkpoint(tmp_path, monkeypatch):
    run = tmp_path / "run"
    bad = STEPS_PER_EPOCH + 3
    nan_loss_at(monkeypatch, {bad})
    with pytest.raises(FloatingPointError) as info:
        pogm.train("vae", data="digits", epochs=3, out=run, overrides={"model": SMALL, "train": {"threads": 1}}, progress=False)
    monkeypatch.undo()
    message = str(info.value)
    assert f"at step {bad}" in message and "loss=nan" in message and "kl=inf" in message and "elbo" not in message
    assert "no update was made" in message and "train.on_nonfinite=skip" in message and f"step {STEPS_PER_EPOCH}" in message
    generation, problems = checkpoint.load_latest_generation(run)
    assert problems == [] and generation.step == STEPS_PER_EPOCH
    loaded = pogm.load_run(run, weights="latest")
    assert all(torch.isfinite(p).all() for p in loaded.model.parameters())


def test_a_non_finite_gradient_names_the_parameter(digits, tmp_path):
    trainer = vae_trainer(digits, tmp_path)
    name, param = next(iter(trainer.model.named_parameters()))
    handle = param.register_hook(lambda grad: grad * math.nan)
    before = parameters(trainer.model)
    with pytest.raises(FloatingPointError) as info:
        trainer.train_step(trainer.stream.next_batch())
    handle.remove()
    assert "gradient" in str(info.value) and name in str(info.value) and "step 0" in str(info.value)
    after = parameters(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)  # no parameter moved, not even the finite ones
    assert trainer.step == 0 and not trainer.optimizer.state


def test_skip_makes_no_update_and_training_continues(digits, tmp_path, monkeypatch):
    trainer = vae_trainer(digits, tmp_path, on_nonfinite="skip", max_steps=6)
    nan_loss_at(monkeypatch, {2})
    for _ in range(2):
        trainer._timed_step()
    before, adam_step = parameters(trainer.model), trainer.optimizer.state_dict()["state"][0]["step"].item()
    trainer._timed_step()  # the bad batch
    after = parameters(trainer.model)
    assert all(torch.equal(before[n], after[n]) for n in before)
    assert trainer.optimizer.state_dict()["state"][0]["step"].item() == adam_step and trainer.step == 2
    assert trainer.skipped_batches == 1 and trainer.consecutive_skips == 1
    trainer._timed_step()  # a good one: training goes on and the run of skips is over
    assert any(not torch.equal(after[n], p) for n, p in trainer.model.named_parameters())
    assert trainer.step == 3 and trainer.consecutive_skips == 0
    record = trainer.fit()
    assert record["skipped_batches"] == 1 and record["step"] == 6 and math.isfinite(record["train_loss"])


def test_too_many_skips_in_a_row_stop_the_run(tmp_path, monkeypatch, capsys):
    limit, first_bad = 3, STEPS_PER_EPOCH + 2
    calls = nan_loss_at(monkeypatch, set(range(first_bad, 10**6)))
    train = {"threads": 1, "on_nonfinite": "skip", "max_nonfinite_skips": limit}
    with pytest.raises(FloatingPointError) as info:
        pogm.train("vae", data="digits", epochs=3, out=tmp_path / "run", overrides={"model": SMALL, "train": train}, progress=False)
    message = str(info.value)
    assert f"{limit} batches in a row" in message and f"train.max_nonfinite_skips={limit}" in message and "loss=nan" in message
    assert calls["n"] == first_bad + limit
    assert capsys.readouterr().err.count("skipped a batch") == limit - 1
    assert checkpoint.load_latest_generation(tmp_path / "run")[0].step == STEPS_PER_EPOCH


def test_non_finite_weights_are_never_checkpointed(digits, tmp_path):
    trainer = vae_trainer(digits, tmp_path)
    trainer.train_step(trainer.stream.next_batch())
    trainer.save()
    saved = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    name, param = next(iter(trainer.model.named_parameters()))
    with torch.no_grad():
        param[0] = math.inf
    with pytest.raises(FloatingPointError, match=f"refusing to write a checkpoint.*{name}"):
        trainer.save()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == saved


def test_bad_non_finite_options_are_refused(digits, tmp_path):
    with pytest.raises(ValueError, match="on_nonfinite"):
        vae_trainer(digits, tmp_path, on_nonfinite="ignore")
    with pytest.raises(ValueError, match="max_nonfinite_skips"):
        vae_trainer(digits, tmp_path, max_nonfinite_skips=0)
