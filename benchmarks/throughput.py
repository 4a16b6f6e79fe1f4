"""Training throughput of pogm's semi-supervised models on MNIST: unlabelled examples per second.

Measures full optimizer steps (forward, backward, Adam) on batches drawn by pogm's own stream
(100 labelled + 100 unlabelled, dynamic binarisation), after a warm-up, for each model setting,
thread count and precision. Run it on an otherwise idle machine:

    POGM_DATA=../shared/data python benchmarks/throughput.py --seconds 20

Settings measured:
  m2-kingma      M2 as in Kingma et al. 2014 (one hidden layer of 500, z 50), batch norm (the ssl_mnist recipe)
  m2-600x600     M2 with the public reference's networks ([784, 10, 50, [600, 600]]), no batch norm,
                 for a like-for-like comparison with its 1,560 unlabelled examples per second
  m1             the M1 phase of M1+M2 (VAE, two layers of 600, z 50)
  m1m2-m2phase   the M2 phase of M1+M2 (features from the frozen M1, resampled every step)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import torch

SETTINGS = {
    "m2-kingma": ("m2", {"batch_norm": True}, 0),
    "m2-600x600": ("m2", {"hidden": (600, 600)}, 0),
    "m1": ("m1m2", {"batch_norm": True}, 0),
    "m1m2-m2phase": ("m1m2", {"batch_norm": True, "m1_steps": 0}, 1),
}


def measure(setting: str, threads: int, precision: str, seconds: float, data, labelled_index) -> dict:
    from contextlib import nullcontext

    from pogm.data.streams import SemiSupervisedStream
    from pogm.train.run import build_model

    model_name, overrides, first_step = SETTINGS[setting]
    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # as the Trainer does
    torch.manual_seed(0)
    model = build_model(model_name, data, len(labelled_index), overrides)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    stream = SemiSupervisedStream(data.train, labelled_index, batch_size=100, labelled_batch_size=100, seed=0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    model.train()

    def step() -> None:
        batch = stream.next_batch()
        with autocast:
            loss = model.loss(batch, step=first_step)["loss"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(10):
        step()
    steps, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - start < seconds:
        step()
        steps += 1
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"setting": setting, "threads": threads, "precision": precision, "steps": steps, "seconds": round(wall, 2), "cpu_seconds": round(cpu, 2), "unlabelled_per_second": round(steps * 100 / wall, 1), "step_ms": round(1000 * wall / steps, 2)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--out", default="benchmarks/results/throughput.json")
    args = parser.parse_args(argv)

    from pogm.data import balanced_label_split, load_source

    data = load_source("mnist")
    labelled_index = balanced_label_split(data.train.y, 10, 10, seed=0)
    rows = []
    for setting in args.settings:
        for threads in args.threads:
            for precision in args.precision:
                row = measure(setting, threads, precision, args.seconds, data, labelled_index)
                print(json.dumps(row), flush=True)
                rows.append(row)
    report = {
        "benchmark": "throughput",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(), "torch": torch.__version__},
        "public_reference": {"setting": "m2-600x600", "unlabelled_per_second": 1560, "source": "issue 2: a public PyTorch M2 [784, 10, 50, [600, 600]] on this machine"},
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
