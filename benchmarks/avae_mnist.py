"""Unsupervised auxiliary VAE on MNIST: importance-weighted test log-likelihood (poster Table 2).

Trains the packaged recipes ``avae-mnist`` (one stochastic layer) and ``avae2-mnist`` (two) for a
CPU-time budget each, then estimates log p(x) on the first ``--test-examples`` test images with
``--iw-samples`` importance samples (5000 in the paper), on the fixed seeded binarisation of the
test set that every pogm evaluation uses, and writes JSON beside the paper's numbers.

    POGM_DATA=../shared/data python benchmarks/avae_mnist.py --budget-minutes 30 --test-examples 1000

Runs that already hold a checkpoint are evaluated as they are (``--reuse``), so the training and
the evaluation can be split over two invocations.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

PAPER = {
    "avae-mnist": {"iw_log_likelihood": -84.59, "source": "Maaløe et al. 2016, poster Table 2, Auxiliary VAE, L=1, IW=1 (5000 IW samples at test)"},
    "avae2-mnist": {"iw_log_likelihood": -82.97, "source": "Maaløe et al. 2016, poster Table 2, Auxiliary VAE, L=2, IW=1 (5000 IW samples at test)"},
}


def run(recipe: str, args: argparse.Namespace) -> dict:
    import torch

    import pogm
    from pogm.evaluate.metrics import mean_elbo, mean_log_likelihood
    from pogm.train.checkpoint import read_metrics

    torch.set_num_threads(args.threads)
    out = Path(args.runs) / f"{recipe}-{args.budget_minutes:g}min-seed{args.seed}"
    if not (args.reuse and (out / "model.safetensors").is_file()):
        overrides = {"train": {"cpu_budget_seconds": args.budget_minutes * 60, "threads": args.threads, "progress": False}}
        pogm.train(config_file=recipe, out=out, seed=args.seed, overrides=overrides, progress=False)
    loaded = pogm.load_run(out)
    records = read_metrics(out)
    torch.manual_seed(args.seed)
    start = time.time()
    elbo = mean_elbo(loaded.model, loaded.data.test, limit=args.test_examples)
    log_likelihood = mean_log_likelihood(loaded.model, loaded.data.test, k=args.iw_samples, batch_size=args.batch_size, limit=args.test_examples, progress=True)
    return {
        "recipe": recipe,
        "run_dir": str(out),
        "model_config": loaded.config["model_config"],
        "train_cpu_seconds": records[-1]["train_cpu_seconds"],
        "train_wall_seconds": records[-1]["train_wall_seconds"],
        "steps": records[-1]["step"],
        "epochs": records[-1]["epoch"],
        "test_examples": args.test_examples,
        "iw_samples": args.iw_samples,
        "test_elbo": elbo,
        "test_iw_log_likelihood": log_likelihood,
        "iw_eval_wall_seconds": round(time.time() - start, 1),
        "paper": PAPER[recipe],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(PAPER), choices=list(PAPER))
    parser.add_argument("--budget-minutes", type=float, default=30, help="training CPU minutes per model")
    parser.add_argument("--iw-samples", type=int, default=5000)
    parser.add_argument("--test-examples", type=int, default=1000, help="test images for the IW estimate (the paper uses all 10,000)")
    parser.add_argument("--batch-size", type=int, default=20, help="test images per IW batch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="evaluate existing runs instead of training them again")
    parser.add_argument("--runs", default="benchmarks/runs-auxiliary")
    parser.add_argument("--out", default="benchmarks/results/avae_mnist.json")
    args = parser.parse_args(argv)
    rows = [run(recipe, args) for recipe in args.recipes]
    report = {
        "benchmark": "avae_mnist",
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(), "threads": args.threads},
        "settings": {k: getattr(args, k) for k in ("budget_minutes", "iw_samples", "test_examples", "seed")},
        "results": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for row in rows:
        print(f"{row['recipe']:12s} test log p(x) {row['test_iw_log_likelihood']:.2f} (k={row['iw_samples']}, {row['test_examples']} images; ELBO {row['test_elbo']:.2f}) "
              f"paper {row['paper']['iw_log_likelihood']:.2f}; {row['train_cpu_seconds'] / 60:.0f} CPU-min, {row['epochs']} epochs")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
