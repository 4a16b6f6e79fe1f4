"""What the benchmark scripts share: the command line of a train / evaluate / summarise benchmark.

Budgeted training runs that resume, the machine record, the process pool and writing a result as
JSON plus a Markdown table live in the package (`pogm.reproduce.runs`, also behind
`pogm reproduce`); they are re-exported here for the scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from pogm.reproduce.runs import (
    finished,
    machine,
    run_in_pool,
    train_for_budget,
    write_report,
)

__all__ = ["finished", "m2_speed_command", "machine", "run_in_pool", "stage_parser", "timed_training", "train_for_budget", "write_report"]


def stage_parser(description: str, names: list[str], default_budget: float, budget_help: str, runs: Path, out: Path) -> argparse.ArgumentParser:
    """The command line of a train / evaluate / summarise benchmark; the script adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["train", "evaluate", "summarise"])
    parser.add_argument("--names", nargs="+", default=list(names), choices=list(names))
    parser.add_argument("--budget-minutes", type=float, default=default_budget, help=budget_help)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=str(runs))
    parser.add_argument("--out", default=str(out))
    return parser


def m2_speed_command(out: Path, steps: int, threads: int, data: Sequence[str], extra: Sequence[str] = ()) -> list[str]:
    """`pogm train m2` at the settings of the speed benchmarks (hidden 500, z 50, no batch norm,
    100 labels, 100 labelled + 100 unlabelled a step) for ``steps`` steps, on ``data`` (the
    ``--data`` arguments); ``extra`` arguments come last."""
    return [
        sys.executable, "-m", "pogm.cli", "train", "m2", *data, "--labels", "10", "--out", str(out),
        "--set", "hidden=[500]", "--set", "z_dim=50", "--set", "batch_norm=false",
        "--set", "train.batch_size=100", "--set", "train.labelled_batch_size=100",
        "--set", f"train.max_steps={steps}", "--set", f"train.threads={threads}", "--set", "train.progress=false",
        "--set", "train.eval_elbo_limit=100",  # keep the one evaluation at the end short
        *extra,
    ]


def timed_training(command: list[str], out: Path, steps: int, threads: int) -> tuple[dict, dict, os.struct_rusage]:
    """Run a training ``command`` that writes the run ``out``; its speed from the run's own last
    record (``train_wall_seconds``: training steps only, no start-up or evaluation), that record,
    and the process's resource usage."""
    load_before = os.getloadavg()
    start = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise RuntimeError(f"{' '.join(command)}: training failed with exit code {os.waitstatus_to_exitcode(status)}")
    elapsed = time.perf_counter() - start
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    if record["step"] != steps:
        raise RuntimeError(f"{out}: the run stopped at step {record['step']}, not {steps}")
    train_wall = record["train_wall_seconds"]
    row = {
        "steps": steps,
        "train_wall_seconds": train_wall,
        "steps_per_second": round(steps / train_wall, 3),
        "unlabelled_per_second": round(100 * steps / train_wall, 1),
        "command_seconds": round(elapsed, 1),
        "train_loss": round(record["train_loss"], 4),
        "load_average_before": [round(v, 2) for v in load_before],
    }
    return row, record, usage


def adversarial_setup(model: str, model_options: dict, train_options: dict, seed: int, labels_per_class: int | None):
    """What a hand-driven run of a two-player model needs, as the Trainer builds it: ``(splits,
    net, config, stream, groups, optimizers, labelled)`` for ``model`` on grey-level MNIST, one thread,
    ``labels_per_class`` labels (None: unsupervised), one optimiser per parameter group."""
    import torch

    from pogm.data.streams import SemiSupervisedStream
    from pogm.models.base import config_from_dict
    from pogm.runs import choose_labels, load_data, size_model
    from pogm.train.config import TrainConfig
    from pogm.train.optimizers import group_optimizers, parameter_groups

    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    torch.manual_seed(seed)
    splits = load_data("mnist", {"binarize": False})
    labelled = choose_labels(splits, labels_per_class, seed, True) if labels_per_class else None
    net = size_model(model, splits, 0 if labelled is None else len(labelled), model_options)
    config = config_from_dict(TrainConfig, train_options)
    stream = SemiSupervisedStream(splits.train, labelled, None, batch_size=config.batch_size, labelled_batch_size=config.labelled_batch_size, seed=seed)
    groups = parameter_groups(net, set())
    return splits, net, config, stream, groups, group_optimizers(groups, config), labelled


def group_step(groups: dict, optimizers: dict, terms: dict) -> None:
    """One optimizer step per parameter group, each on its own loss ``terms["loss/<group>"]``, as
    the Trainer takes it (every gradient computed before any group moves)."""
    import torch

    grads = {g: torch.autograd.grad(terms[f"loss/{g}"], params, allow_unused=True, retain_graph=True) for g, params in groups.items()}
    for g, params in groups.items():
        for p, grad in zip(params, grads[g]):
            p.grad = grad
        optimizers[g].step()
