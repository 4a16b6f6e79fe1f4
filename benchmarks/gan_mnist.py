"""The poster's MNIST experiments (issue 6): semi-supervised M2 against M2 + conditional GAN on 100
and 1000 labels, the CVAE's conditional log-likelihood of missing quadrants, and VAE against
VAE-GAN samples.

    POGM_DATA=../shared/data python benchmarks/gan_mnist.py ssl --models m2 m2-gan --labels 10 100 --budget-minutes 20
    POGM_DATA=../shared/data python benchmarks/gan_mnist.py summarise

Every run lives in ``--runs/<name>`` and is reused when it has finished (its ``metrics.jsonl``
ends with a record at or past the budget), so an interrupted benchmark continues where it was.
Runs use one thread each and ``--jobs`` of them share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

# M2 as in benchmarks/ssl_mnist.py (Kingma's networks with batch norm, Adam 1e-3); M2 + GAN adds
# the conditional discriminator and keeps everything else. Both see grey-level images (Bernoulli
# likelihood on intensities): a discriminator would tell binarised real images from grey samples
# at a glance, and the baseline must see the same data.
SSL_SETTINGS = {
    "m2": {"model": {"batch_norm": True}, "train": {"lr": 1e-3}, "data": {"binarize": False}},
    "m2-gan": {"model": {"batch_norm": True}, "train": {"lr": 1e-3}, "data": {"binarize": False}},
}
POSTER_SSL = {
    "source": "Chen, Fang & Ju 2016 (poster 002), SSL VAE test error on MNIST, 55,000 training examples",
    "fully_connected": {"1000": 0.051, "600": 0.120},
    "convolutional": {"1000": 0.048, "600": 0.062},
    "kingma_m2": {"1000": 0.024, "600": 0.026, "100": 0.1197},
}


def _run_dir(args, name: str) -> Path:
    return Path(args.runs) / name


def _finished(run_dir: Path, budget_seconds: float) -> bool:
    from pogm.train.checkpoint import read_metrics

    if not (run_dir / "metrics.jsonl").is_file():
        return False
    records = read_metrics(run_dir)
    return bool(records) and records[-1]["train_cpu_seconds"] >= budget_seconds - 5


def run_ssl(model: str, labels_per_class: int, budget_minutes: float, args) -> dict:
    import torch

    import pogm
    from pogm.train.checkpoint import read_metrics

    torch.set_num_threads(1)
    out = _run_dir(args, f"{model}-labels{labels_per_class * 10}-{budget_minutes:g}min-seed{args.seed}")
    settings = SSL_SETTINGS[model]
    start = time.time()
    if not _finished(out, budget_minutes * 60):
        overrides = {"model": dict(settings["model"]), "train": {**settings["train"], "cpu_budget_seconds": budget_minutes * 60, "threads": 1, "progress": False}, "data": dict(settings["data"])}
        resume = (out / "state.pt").is_file()
        pogm.train(model, data="mnist", labels=labels_per_class, epochs=100000, out=out, seed=args.seed, overrides=overrides, progress=False, resume=resume)
    return {"model": model, "labels": labels_per_class * 10, "budget_minutes": budget_minutes, "run_dir": str(out), "wall_seconds_this_call": time.time() - start, "records": read_metrics(out)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("ssl", help="M2 against M2 + conditional GAN")
    p.add_argument("--models", nargs="+", default=["m2", "m2-gan"], choices=sorted(SSL_SETTINGS))
    p.add_argument("--labels", nargs="+", type=int, default=[10, 100], help="labels per class (10 -> MNIST-100)")
    p.add_argument("--budget-minutes", type=float, default=20)
    for q in (p,):
        q.add_argument("--jobs", type=int, default=2)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--runs", default="benchmarks/runs-gan")
    args = parser.parse_args(argv)
    if "POGM_DATA" not in os.environ:
        print("note: POGM_DATA is not set; mnist.npz is looked up in ~/.cache/pogm or downloaded", file=sys.stderr)
    if args.part == "ssl":
        jobs = [(m, n) for n in args.labels for m in args.models]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(run_ssl, [m for m, _ in jobs], [n for _, n in jobs], [args.budget_minutes] * len(jobs), [args] * len(jobs)))
        for run in runs:
            best = min(run["records"], key=lambda r: (r["valid_error"], r["step"]))
            print(f"{run['model']:7s} {run['labels']:5d} labels: test error {best['test_error']:.2%} at step {best['step']}")


if __name__ == "__main__":
    main()
