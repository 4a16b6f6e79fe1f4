"""Multi-process data-parallel training (`pogm.train.distributed`): torchrun with 2 CPU processes
(gloo) against one process, on the bundled digits with tiny networks without batch norm.

One torchrun launch (module fixture `launched`) runs every multi-process job in a row through a
small driver script; the single-process references run in this process. The models' own noise
(z ~ q, the GAN's z_p) is switched off in the equivalence jobs (`deterministic`: samples are
the means, z_p = 0): with noise, each process draws its own, and 2 processes agree with 1 only
in distribution. What the equivalence then checks exactly is the sharding of the batches and the
averaging of the gradients (and of the logged training terms).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as torch_dist
from safetensors.torch import load_file

import pogm
import pogm.latents
from pogm.cli import _without_nproc
from pogm.cli import main as cli_main
from pogm.data import load_source
from pogm.data.streams import SemiSupervisedStream
from pogm import checkpoint
from pogm.train.distributed import WorldSizeMismatch, torchrun_command

pytestmark = pytest.mark.skipif(
    not torch_dist.is_available() or not torch_dist.is_gloo_available(), reason="needs torch.distributed with the gloo backend"
)

WORLD = 2
TORCHRUN_TIMEOUT = 300  # seconds; the launch takes ~25 s on a quiet 2-core machine

M2 = ["train", "m2", "--data", "digits", "--labels", "10", "--set", "hidden=[16]", "--set", "z_dim=4"]
VAEGAN = ["train", "vaegan", "--data", "digits", "--set", "hidden=[16]", "--set", "discriminator_hidden=[16]", "--set", "z_dim=4"]
SMALL_STEPS = ["--set", "train.batch_size=20", "--set", "train.labelled_batch_size=20", "--set", "train.threads=1", "--set", "train.progress=false"]
RESUME_STEPS = ["--set", "train.batch_size=40", "--set", "train.labelled_batch_size=40", "--set", "train.threads=1", "--set", "train.progress=false"]
ALTERNATING = ["--set", "train.schedule=alternating", "--set", "train.discriminator_steps=2"]
SIGTERM_AT_STEP = 7

# Runs the jobs of a JSON file in every process, under one process group, and writes what each
# process did (exit codes, and every file it wrote under the runs directory, seen by an audit hook).
DRIVER = r'''
import importlib, json, os, signal, sys
importlib.import_module("torch._dynamo")  # before the process group (see pogm.train.distributed)
import torch
import torch.distributed as dist
import pogm.latents as latents
from pogm.cli import main
from pogm.train.trainer import Trainer

jobs_file, runs_root, results_dir = sys.argv[1:4]
rank = int(os.environ["RANK"])
writes = []

def audit(event, args):
    paths = []
    if event == "open":
        path, mode, flags = (list(args) + [None, None, None])[:3]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing:
            paths = [path]
    elif event in ("os.rename", "os.mkdir", "os.remove", "os.link", "os.truncate", "os.rmdir", "os.symlink", "os.utime", "os.chmod"):
        paths = list(args[:2])
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)) and os.fsdecode(path).startswith(runs_root):
            writes.append(f"{event} {os.fsdecode(path)}")

sys.addaudithook(audit)
dist.init_process_group("gloo")  # shared by every job: pogm.train uses it and leaves it alone

noisy_rsample, noisy_randn_like, real_step = latents.DiagonalGaussian.rsample, torch.randn_like, Trainer.train_step

def mean_sample(self, n=None):
    return self.mean if n is None else self.mean.expand(n, *self.mean.shape)

codes = []
for job in json.load(open(jobs_file)):
    deterministic = job.get("deterministic", False)
    latents.DiagonalGaussian.rsample = mean_sample if deterministic else noisy_rsample
    torch.randn_like = (lambda t, **kw: torch.zeros_like(t, **kw)) if deterministic else noisy_randn_like
    Trainer.train_step = real_step
    if job.get("sigterm_rank") == rank:
        def step_then_signal(self, batch, _at=job["sigterm_step"]):
            terms = real_step(self, batch)
            if self.step == _at:
                os.kill(os.getpid(), signal.SIGTERM)  # only this process is signalled
            return terms
        Trainer.train_step = step_then_signal
    codes.append(main(job["argv"]))
dist.barrier()
dist.destroy_process_group()
with open(os.path.join(results_dir, f"rank{rank}.json"), "w") as f:
    json.dump({"codes": codes, "writes": writes}, f)
'''


def _mean_sample(self, n=None):
    return self.mean if n is None else self.mean.expand(n, *self.mean.shape)


def _train_in_process(argv: list[str]) -> int:
    """One process, in this process (the reference), with the models' noise switched off."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pogm.latents.DiagonalGaussian, "rsample", _mean_sample)
        mp.setattr(torch, "randn_like", lambda t, **kw: torch.zeros_like(t, **kw))
        for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
            mp.delenv(name, raising=False)
        return cli_main(argv)


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """The single-process references (here) and every 2-process job (one torchrun launch)."""
    root = tmp_path_factory.mktemp("ddp")
    runs, results = root / "runs", root / "results"
    runs.mkdir()
    results.mkdir()
    threads = torch.get_num_threads()
    try:
        for name, argv in (("m2", M2 + SMALL_STEPS + ["--set", "train.max_steps=6"]),
                           ("vaegan", VAEGAN + SMALL_STEPS + ["--set", "train.max_steps=5"]),
                           ("vaegan-alternating", VAEGAN + SMALL_STEPS + ALTERNATING + ["--set", "train.max_steps=4"])):
            assert _train_in_process([*argv, "--out", str(runs / f"{name}-1")]) == 0
    finally:
        torch.set_num_threads(threads)

    def out(name: str) -> list[str]:
        return ["--out", str(runs / name)]

    jobs = [
        {"deterministic": True, "argv": M2 + SMALL_STEPS + ["--set", "train.max_steps=6"] + out("m2-2")},
        {"deterministic": True, "argv": VAEGAN + SMALL_STEPS + ["--set", "train.max_steps=5"] + out("vaegan-2")},
        {"deterministic": True, "argv": VAEGAN + SMALL_STEPS + ALTERNATING + ["--set", "train.max_steps=4"] + out("vaegan-alternating-2")},
        # Exact resume with the models' noise on: one epoch (29 steps) straight, ...
        {"argv": M2 + RESUME_STEPS + ["--epochs", "1"] + out("full")},
        # ... stopped by max_steps (an evaluation mid-epoch) and resumed, ...
        {"argv": M2 + RESUME_STEPS + ["--epochs", "1", "--set", "train.max_steps=10"] + out("stopped")},
        {"argv": ["train", "--resume", "--epochs", "1"] + out("stopped")},
        # ... and stopped by SIGTERM sent to rank 1 only, then resumed.
        {"argv": M2 + RESUME_STEPS + ["--epochs", "1"] + out("signalled"), "sigterm_rank": 1, "sigterm_step": SIGTERM_AT_STEP},
        {"argv": ["train", "--resume", "--epochs", "1"] + out("signalled")},
        # A single-process run resumed by 2 processes: refused.
        {"argv": ["train", "--resume"] + out("m2-1")},
        # Batch norm: per-process statistics, running statistics broadcast from rank 0.
        {"argv": M2 + SMALL_STEPS + ["--set", "batch_norm=true", "--set", "train.max_steps=3"] + out("batch-norm")},
    ]
    jobs_file = root / "jobs.json"
    jobs_file.write_text(json.dumps(jobs))
    (root / "driver.py").write_text(DRIVER)
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={WORLD}", str(root / "driver.py"), str(jobs_file), str(runs), str(results)]
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=TORCHRUN_TIMEOUT, check=False)
    assert proc.returncode == 0, f"torchrun failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    ranks = [json.loads((results / f"rank{r}.json").read_text()) for r in range(WORLD)]
    return {"runs": runs, "ranks": ranks, "stderr": proc.stderr, "jobs": jobs}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "model.safetensors"))


def _assert_same_parameters(one: Path, two: Path) -> None:
    a, b = _weights(one), _weights(two)
    assert sorted(a) == sorted(b)
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-5, atol=1e-6, msg=lambda m, name=name: f"{name}: {m}")
    # Adam's steps do not change when every gradient is scaled by one constant, but its moments
    # do: equal moments show that the gradients were averaged (not summed) over the processes.
    opt_a, opt_b = checkpoint.load_state(one / "state.pt")["optimizers"], checkpoint.load_state(two / "state.pt")["optimizers"]
    assert sorted(opt_a) == sorted(opt_b)
    for group in opt_a:
        states_a, states_b = opt_a[group]["state"], opt_b[group]["state"]
        assert sorted(states_a) == sorted(states_b) and states_a
        for i in states_a:
            for moment, atol in (("exp_avg", 1e-7), ("exp_avg_sq", 1e-10)):
                torch.testing.assert_close(states_b[i][moment], states_a[i][moment], rtol=1e-5, atol=atol, msg=lambda m, g=group, i=i, k=moment: f"{g} {k} {i}: {m}")


def _without_timing(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in ("train_cpu_seconds", "train_wall_seconds", "best")}


# ---------------------------------------------------------------- equivalence with one process


def test_two_processes_with_half_batches_match_one_process(launched):
    runs = launched["runs"]
    assert all(code == 0 for code in (launched["ranks"][r]["codes"][0] for r in range(WORLD)))
    _assert_same_parameters(runs / "m2-1", runs / "m2-2")
    one, two = checkpoint.read_metrics(runs / "m2-1")[-1], checkpoint.read_metrics(runs / "m2-2")[-1]
    assert two["processes"] == WORLD and "processes" not in one
    assert one["step"] == two["step"] == 6
    # The logged training terms are means over both processes' shards: the whole batches' means.
    for name in ("train_loss", "train_bound_labelled", "train_bound_unlabelled", "train_classification", "valid_elbo"):
        assert two[name] == pytest.approx(one[name], rel=1e-5), name
    assert two["valid_error"] == one["valid_error"]


@pytest.mark.parametrize("name", ["vaegan", "vaegan-alternating"])
def test_adversarial_model_with_three_optimizers_matches_one_process(launched, name):
    runs = launched["runs"]
    index = 1 if name == "vaegan" else 2
    assert [launched["ranks"][r]["codes"][index] for r in range(WORLD)] == [0, 0]
    _assert_same_parameters(runs / f"{name}-1", runs / f"{name}-2")
    one, two = checkpoint.read_metrics(runs / f"{name}-1")[-1], checkpoint.read_metrics(runs / f"{name}-2")[-1]
    for term in ("train_loss/encoder", "train_loss/decoder", "train_loss/discriminator"):
        assert two[term] == pytest.approx(one[term], rel=1e-5), term


# ---------------------------------------------------------------- files, resume, signals


def test_only_rank_0_writes_files(launched):
    rank0, rank1 = (launched["ranks"][r]["writes"] for r in range(WORLD))
    assert rank1 == []
    written = " ".join(rank0)
    for name in ("config.yaml", "metrics.jsonl", "checkpoint.json", "state.pt", "labelled_index.json"):
        assert name in written  # the audit hook does see rank 0's writes
    config = checkpoint.read_config(launched["runs"] / "m2-2")
    assert config["world_size"] == WORLD


def test_resume_after_max_steps_and_after_sigterm_is_exact(launched):
    runs, ranks = launched["runs"], launched["ranks"]
    for r in range(WORLD):
        assert ranks[r]["codes"][3:8] == [0, 0, 0, 143, 0]  # SIGTERM to rank 1 stops both, exit 128 + 15
    assert f"stopped by SIGTERM at step {SIGTERM_AT_STEP};" in launched["stderr"]  # both stop after the step rank 1 was signalled in
    assert "torchrun --standalone --nproc_per_node 2" in launched["stderr"]  # the hint to resume names the process count
    full = _weights(runs / "full")
    for name in ("stopped", "signalled"):
        resumed = _weights(runs / name)
        for key in full:
            assert torch.equal(full[key], resumed[key]), f"{name}: {key} differs from the uninterrupted run"
        assert _without_timing(checkpoint.read_metrics(runs / name)[-1]) == _without_timing(checkpoint.read_metrics(runs / "full")[-1])


def test_resume_refuses_another_number_of_processes(launched, capsys):
    # 1 process trained, 2 resume: refused by both processes, naming both numbers.
    assert [launched["ranks"][r]["codes"][8] for r in range(WORLD)] == [2, 2]
    assert "trained by 1 process (world size 1), but this resume runs 2 (world size 2)" in launched["stderr"]
    # 2 processes trained, 1 resumes.
    with pytest.raises(WorldSizeMismatch, match=r"trained by 2 processes \(world size 2\), but this resume runs 1 \(world size 1\)"):
        pogm.train(out=launched["runs"] / "m2-2", resume=True, progress=False)
    assert cli_main(["train", "--resume", "--out", str(launched["runs"] / "m2-2")]) == 2
    assert "--nproc_per_node 2" in capsys.readouterr().err


def test_batch_norm_model_trains_in_two_processes(launched):
    assert [launched["ranks"][r]["codes"][9] for r in range(WORLD)] == [0, 0]
    weights = _weights(launched["runs"] / "batch-norm")
    tracked = [name for name in weights if name.endswith("num_batches_tracked")]
    assert tracked and all(int(weights[name]) > 0 for name in tracked)


# ---------------------------------------------------------------- sharding (in this process)


@pytest.fixture(scope="module")
def digits():
    return load_source("digits")


def test_shards_of_a_step_make_up_the_single_process_batch(digits):
    world, labelled = 3, torch.arange(0, 300, 2)
    kwargs = {"batch_size": 24, "labelled_batch_size": 12, "seed": 5}
    one = SemiSupervisedStream(digits.train, labelled, **kwargs)
    shards = [SemiSupervisedStream(digits.train, labelled, rank=r, world_size=world, **kwargs) for r in range(world)]
    assert all(s.steps_per_epoch == one.steps_per_epoch for s in shards)
    for _ in range(one.steps_per_epoch + 3):  # across an epoch boundary
        full = one.next_batch()
        parts = [s.next_batch() for s in shards]
        for r, part in enumerate(parts):
            rows = torch.cat([torch.arange(12)[r::world], 12 + torch.arange(24)[r::world]])
            expected = full.select(rows)
            assert len(part) == 12
            assert torch.equal(part.x["x"], expected.x["x"]) and torch.equal(part.y, expected.y) and torch.equal(part.y_mask, expected.y_mask)
        # disjoint shards whose union is the batch (labelled rows first in each)
        assert sum(int(p.y_mask.sum()) for p in parts) == 12
    assert all(s.epoch == one.epoch and s._pos == one._pos for s in shards)
    assert all(torch.equal(s.generator.get_state(), one.generator.get_state()) for s in shards)


def test_batch_sizes_must_divide_among_the_processes(digits):
    with pytest.raises(ValueError, match="labelled_batch_size=10 .* not a multiple of the 4 processes"):
        SemiSupervisedStream(digits.train, torch.arange(10), batch_size=20, labelled_batch_size=100, rank=0, world_size=4)
    with pytest.raises(ValueError, match="batch_size=30 is not a multiple of the 4 processes"):
        SemiSupervisedStream(digits.train, torch.arange(20), batch_size=30, labelled_batch_size=20, rank=1, world_size=4)
    with pytest.raises(ValueError, match="rank < world_size"):
        SemiSupervisedStream(digits.train, None, batch_size=20, rank=2, world_size=2)


# ---------------------------------------------------------------- the launcher


def test_nproc_runs_the_same_command_under_torchrun(monkeypatch):
    argv = ["train", "m2", "--nproc", "2", "--data", "digits", "--nproc=2", "--out", "runs/x"]
    assert _without_nproc(argv) == ["train", "m2", "--data", "digits", "--out", "runs/x"]
    command = torchrun_command(2, _without_nproc(argv))
    assert command[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert command[5:] == ["-m", "pogm.cli", "train", "m2", "--data", "digits", "--out", "runs/x"]
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli_main(["train", "m2", "--nproc", "2"]) == 2  # already under torchrun: refused


def test_cpu_only_machine_refuses_cuda_before_making_the_run(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert cli_main(["train", "m2", "--data", "digits", "--device", "cuda", "--precision", "bf16", "--out", str(tmp_path / "run")]) == 2
    assert "sees no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
