"""Training from a memory-mapped store against training from memory, on this machine.

Writes the MNIST training images (float32 in [0, 1], 50,000 rows, 157 MB) and their labels as a
memmap store (`pogm.data.memmap.write_memmap_store`, in chunks), then trains M2 (hidden 500, z 50,
100 labels, 100 labelled + 100 unlabelled per step, dynamic binarisation) for a fixed number of
steps, one thread, in:

  in-memory          ``--data mnist``: the arrays in memory (the reference)
  memmap             ``--data memmap``: every minibatch read from the file, a full permutation
  memmap-window      the same with ``train.shuffle_window=10000`` (each minibatch from at most two
                     windows of 10,000 consecutive rows)
  memmap-cold        ``memmap`` after dropping the page cache (root only; skipped otherwise), so that
                     the rows really come from the disk

Steps per second come from the run's own record (``train_wall_seconds``: training steps only). The
peak resident memory of each training process is measured too (it counts the file pages the
process has touched, which the kernel can drop at any time, unlike the arrays of ``in-memory``).

    POGM_DATA=../shared/data python benchmarks/memmap_training.py --steps 300

Writes ``benchmarks/results/memmap_training.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from common import m2_speed_command, machine, timed_training

from pogm.data import load_source
from pogm.data.memmap import write_memmap_store

CONFIGS = ("in-memory", "memmap", "memmap-window", "memmap-cold")


def write_store(directory: Path) -> None:
    """The MNIST training split as a float32 store."""
    train = load_source("mnist").train
    x = train.x["x"].numpy()  # [50000, 1, 28, 28] in [0, 1]
    y = train.y.numpy()  # [50000]
    write_memmap_store(directory, ((x[i : i + 5000], y[i : i + 5000]) for i in range(0, len(x), 5000)), n_rows=len(x))


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def measure(name: str, steps: int, store: Path, runs: Path) -> dict | None:
    data = ["--data", "mnist"] if name == "in-memory" else [
        "--data", "memmap", "--set", f"data.path={store}", "--set", "data.binarize=true",
        "--set", "data.valid_fraction=0.02", "--set", "data.test_fraction=0.02",
    ]
    if name == "memmap-window":
        data += ["--set", "train.shuffle_window=10000"]
    if name == "memmap-cold" and not drop_page_cache():
        print("memmap-cold: cannot drop the page cache (needs root); skipped", file=sys.stderr)
        return None
    out = runs / name
    row, _, usage = timed_training(m2_speed_command(out, steps, 1, data), out, steps, threads=1)
    return {"config": name, **row, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1), "major_page_faults": usage.ru_majflt}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--out", default="benchmarks/results/memmap_training.json")
    parser.add_argument("--write-store", metavar="DIR", help=argparse.SUPPRESS)  # the child that writes the store
    args = parser.parse_args(argv)
    if args.write_store:
        write_store(Path(args.write_store))
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="pogm-memmap-") as tmp:
        store = Path(tmp) / "mnist-store"
        # In a child process: a child's peak memory counts its parent's at fork time, so the parent
        # must not hold MNIST when it starts the measured runs.
        subprocess.run([sys.executable, __file__, "--write-store", str(store)], check=True)
        store_bytes = (store / "x.npy").stat().st_size
        for name in args.configs:
            row = measure(name, args.steps, store, Path(tmp))
            if row is not None:
                print(json.dumps(row), flush=True)
                rows.append(row)
    base = next((r for r in rows if r["config"] == "in-memory"), None)
    relative = {f"{r['config']} / in-memory": round(r["steps_per_second"] / base["steps_per_second"], 3) for r in rows if base and r is not base}
    report = {
        "benchmark": "memmap_training",
        "model": "m2 on MNIST (50,000 training rows), hidden [500], z 50, no batch norm, 100 labels, 100 labelled + 100 unlabelled per step, 1 thread",
        "store": {"x_bytes": store_bytes, "dtype": "float32", "rows": 50000},
        "machine": machine(),
        "rows": rows,
        "relative_speed": relative,
        "note": "steps per second from the training steps only (train_wall_seconds); peak_rss_mb includes file pages of the store that the process touched",
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(relative))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
