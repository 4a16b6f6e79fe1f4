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
import tempfile
from pathlib import Path

from common import m2_speed_command, machine, timed_training

CONFIGS = {  # name: (processes, threads per process)
    "1proc-1thread": (1, 1),
    "2proc-1thread": (2, 1),
    "1proc-2threads": (1, 2),
}


def measure(name: str, steps: int, runs: Path) -> dict:
    processes, threads = CONFIGS[name]
    out = runs / name
    command = m2_speed_command(out, steps, threads, ["--data", "mnist"], ["--nproc", str(processes)])
    row, record, _ = timed_training(command, out, steps, threads)
    return {"config": name, "processes": processes, "threads_per_process": threads, **row, "train_cpu_seconds_all_processes": record["train_cpu_seconds"]}


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
