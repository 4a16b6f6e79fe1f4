"""Speed-up of multi-process data-parallel training (torchrun, gloo) over one process, on this machine.

Trains M2 on MNIST with the standard MLP sizes (one hidden layer of 500, z 50, no batch norm) and
the standard batch (100 labelled + 100 unlabelled per step, the whole step's batch whatever the
number of processes) for a fixed number of optimizer steps, with 100 labels, in:

  1 process  x 1 thread    the baseline
  2 processes x 1 thread   `pogm train ... --nproc 2` (each process takes 50 + 50 rows of every step)
  1 process  x 2 threads   the other way to use two cores (intra-op threads), for comparison

Steps per second come from the run's own record (``train_wall_seconds`` of ``metrics.jsonl``:
training steps only, no start-up, data loading or evaluation), so the start-up of torchrun does
not count. Run it on an otherwise idle machine for meaningful numbers:

    POGM_DATA=../shared/data python benchmarks/ddp_speedup.py --steps 300

It writes ``benchmarks/results/ddp_speedup.json`` with the machine and its load average.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pogm.reproduce.runs import machine

CONFIGS = {  # name: (processes, threads per process)
    "1proc-1thread": (1, 1),
    "2proc-1thread": (2, 1),
    "1proc-2threads": (1, 2),
}


def measure(name: str, steps: int, runs: Path) -> dict:
    processes, threads = CONFIGS[name]
    out = runs / name
    command = [
        sys.executable, "-m", "pogm.cli", "train", "m2", "--data", "mnist", "--labels", "10", "--out", str(out),
        "--set", "hidden=[500]", "--set", "z_dim=50", "--set", "batch_norm=false",
        "--set", "train.batch_size=100", "--set", "train.labelled_batch_size=100",
        "--set", f"train.max_steps={steps}", "--set", f"train.threads={threads}", "--set", "train.progress=false",
        "--set", "train.eval_elbo_limit=100",  # keep the one evaluation at the end short
        "--nproc", str(processes),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    load_before = os.getloadavg()
    start = time.perf_counter()
    subprocess.run(command, check=True, env=env, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == steps, record
    train_wall = record["train_wall_seconds"]
    return {
        "config": name,
        "processes": processes,
        "threads_per_process": threads,
        "steps": steps,
        "train_wall_seconds": train_wall,
        "steps_per_second": round(steps / train_wall, 3),
        "unlabelled_per_second": round(100 * steps / train_wall, 1),
        "train_cpu_seconds_all_processes": record["train_cpu_seconds"],
        "command_seconds": round(elapsed, 1),
        "train_loss": round(record["train_loss"], 4),
        "load_average_before": [round(x, 2) for x in load_before],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default="benchmarks/results/ddp_speedup.json")
    parser.add_argument("--note", default="", help="added to the result's note (e.g. what else ran on the machine)")
    args = parser.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(prefix="pogm-ddp-") as tmp:
        for name in args.configs:
            row = measure(name, args.steps, Path(tmp))
            print(json.dumps(row), flush=True)
            rows.append(row)
    by_name = {row["config"]: row for row in rows}
    speedups = {}
    base = by_name.get("1proc-1thread")
    if base:
        for name, row in by_name.items():
            if name != "1proc-1thread":
                speedups[f"{name} over 1proc-1thread"] = round(row["steps_per_second"] / base["steps_per_second"], 3)
    load = os.getloadavg()
    report = {
        "benchmark": "ddp_speedup",
        "model": "m2 on MNIST, hidden [500], z 50, no batch norm, 100 labels, batch 100 labelled + 100 unlabelled per step (split among the processes)",
        "machine": machine(),
        "rows": rows,
        "speedup": speedups,
        "load_average_after": [round(x, 2) for x in load],
        "note": (
            f"{args.note} Load average (1, 5, 15 min) at the end: {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f} on {os.cpu_count()} cores; "
            "steps per second are from the training steps only (train_wall_seconds of rank 0). "
        ).strip(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(speedups))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
