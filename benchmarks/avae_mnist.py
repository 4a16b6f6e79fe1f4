"""Unsupervised auxiliary VAE on MNIST: importance-weighted test log-likelihood (Maaløe et al. 2016, Table 2 of the poster).

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
from pathlib import Path

from pogm.models.semi_supervised.paper_table import AVAE as PAPER
from pogm.reproduce.evaluations import likelihoods
from pogm.reproduce.runs import machine


def run(recipe: str, args: argparse.Namespace) -> dict:
    import torch

    import pogm
    from pogm.checkpoint import read_metrics

    torch.set_num_threads(args.threads)
    out = Path(args.runs) / f"{recipe}-{args.budget_minutes:g}min-seed{args.seed}"
    if not (args.reuse and (out / "model.safetensors").is_file()):
        overrides = {"train": {"cpu_budget_seconds": args.budget_minutes * 60, "threads": args.threads, "progress": False}}
        pogm.train(config_file=recipe, out=out, seed=args.seed, overrides=overrides, progress=False)
    loaded = pogm.load_run(out)
    records = read_metrics(out)
    return {
        "recipe": recipe,
        "run_dir": str(out),
        "model_config": loaded.config["model_config"],
        "train_cpu_seconds": records[-1]["train_cpu_seconds"],
        "train_wall_seconds": records[-1]["train_wall_seconds"],
        "steps": records[-1]["step"],
        "epochs": records[-1]["epoch"],
        **likelihoods(loaded, args.iw_samples, args.test_examples, args.batch_size, seed=args.seed, progress=True),
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
        "machine": machine(args.threads),
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
