"""DRAW on binarised MNIST: the test negative ELBO of DRAW with and without attention
beside Gregor et al. 2015, Table 2, and short runs of conditional DRAW and DRAW + GAN for the
poster's two generalisations.

    POGM_DATA=../shared/data python benchmarks/draw_mnist.py train --budget-minutes 30 --jobs 4
    POGM_DATA=../shared/data python benchmarks/draw_mnist.py evaluate --iw-samples 100 --iw-limit 500
    POGM_DATA=../shared/data python benchmarks/draw_mnist.py summarise

Runs live in ``--runs/<name>-<budget>min-seed<seed>`` and are reused when finished (see
`gan_mnist.train_for_budget`). The main runs use Gregor et al.'s MNIST sizes (Table 3: T = 64,
256 LSTM units, z of 100 per step, read 2 x 2 and write 5 x 5 with attention); the
generalisations use T = 32 to make their short runs count.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, run_in_pool, stage_parser, train_for_budget, write_report

# Gregor et al. 2015, Table 2: negative log-likelihood bounds on binarised MNIST, in nats.
from pogm.models.vae_gan.paper_table import DRAW as PAPER

TRAIN = {"lr": 1e-3, "adam_betas": [0.5, 0.999], "grad_clip": 10.0}
# (model, data options, model options, train options, share of the budget)
RUNS = {
    "draw-attention": ("draw", {}, {"attention": True}, TRAIN, 1.0),
    "draw-noattention": ("draw", {}, {"attention": False}, TRAIN, 1.0),
    "cdraw": ("cdraw", {}, {"attention": True, "steps": 32}, TRAIN, 1 / 3),
    "draw-gan": ("draw-gan", {}, {"attention": True, "steps": 32}, TRAIN, 1 / 3),
    # DRAW + GAN against the same DRAW without the GAN: no attention (it leaves the mean image
    # within a few hundred steps), T = 32, grey levels for both.
    "draw-gan-noattention": ("draw-gan", {}, {"attention": False, "steps": 32}, TRAIN, 2 / 9),
    "draw-noattention-grey": ("draw", {"binarize": False}, {"attention": False, "steps": 32}, TRAIN, 2 / 9),
}


def run_dir(args, name: str) -> Path:
    budget = args.budget_minutes * RUNS[name][4]
    return Path(args.runs) / f"{name}-{budget:g}min-seed{args.seed}"


def train_one(job) -> str:
    name, args = job
    model, data, model_options, train_options, share = RUNS[name]
    out = run_dir(args, name)
    train_for_budget(model, out, args.budget_minutes * share, args.seed, data, model_options, train_options)
    return str(out)


def evaluate_one(job) -> dict:
    """Test ELBO on every test image (the fixed evaluation binarisation) and the IW bound on the first ``iw_limit``."""
    name, args = job
    import torch

    from pogm.evaluate.metrics import mean_elbo, mean_log_likelihood
    from pogm.runs import load_run

    torch.set_num_threads(1)
    torch.manual_seed(0)
    run = load_run(run_dir(args, name), weights="best")
    start = time.time()
    elbo = mean_elbo(run.model, run.data.test, batch_size=500)
    elbo_seconds = time.time() - start
    start = time.time()
    iw = mean_log_likelihood(run.model, run.data.test, k=args.iw_samples, batch_size=20, chunk_size=args.iw_samples, limit=args.iw_limit)
    result = {
        "name": name, "run_dir": str(run_dir(args, name)), "test_examples": len(run.data.test), "test_negative_elbo": -elbo, "elbo_seconds": round(elbo_seconds, 1),
        "iw_samples": args.iw_samples, "iw_examples": args.iw_limit, "iw_negative_log_likelihood": -iw, "iw_seconds": round(time.time() - start, 1),
    }
    (run_dir(args, name) / "draw_eval.json").write_text(json.dumps(result, indent=2))
    return result


def summarise(args) -> dict:
    from pogm.checkpoint import read_metrics

    rows = []
    for name in RUNS:
        out = run_dir(args, name)
        if not (out / "metrics.jsonl").is_file():
            continue
        records = read_metrics(out)
        last = records[-1]
        best_valid = max((r["valid_elbo"] for r in records if "valid_elbo" in r), default=None)
        evaluation = json.loads((out / "draw_eval.json").read_text()) if (out / "draw_eval.json").is_file() else {}
        rows.append({
            "name": name, "model": RUNS[name][0], "model_options": RUNS[name][2], "steps": last["step"], "epochs": last["epoch"],
            "train_cpu_seconds": last["train_cpu_seconds"], "train_wall_seconds": last["train_wall_seconds"], "paper_negative_log_likelihood_bound": PAPER.get(name),
            "best_valid_negative_elbo": None if best_valid is None else -best_valid,
            **{k: v for k, v in evaluation.items() if k not in ("name", "run_dir")},
        })
    report = {
        "benchmark": "draw_mnist",
        "machine": machine(),
        "paper": PAPER, "train": TRAIN, "runs": rows,
    }
    lines = ["| run | steps (epochs) | CPU-min | valid -ELBO (2,000 images) | test -ELBO | IW -log p(x) (k, images) | Gregor et al. |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        elbo = f"{r['test_negative_elbo']:.2f}" if "test_negative_elbo" in r else "-"
        iw = f"{r['iw_negative_log_likelihood']:.2f} ({r['iw_samples']}, {r['iw_examples']})" if "iw_negative_log_likelihood" in r else "-"
        paper = f"<= {r['paper_negative_log_likelihood_bound']}" if r["paper_negative_log_likelihood_bound"] else "-"
        valid = f"{r['best_valid_negative_elbo']:.2f}" if r["best_valid_negative_elbo"] is not None else "-"
        lines.append(f"| {r['name']} | {r['steps']} ({r['epochs']}) | {r['train_cpu_seconds'] / 60:.1f} | {valid} | {elbo} | {iw} | {paper} |")
    write_report(args.out, report, lines)
    return report


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).parent
    parser = stage_parser(__doc__.splitlines()[0], list(RUNS), 30.0, "CPU minutes of the main runs (the generalisations get a share)", here / "runs-draw", here / "results" / "draw_mnist.json")
    parser.add_argument("--iw-samples", type=int, default=100)
    parser.add_argument("--iw-limit", type=int, default=500, help="test images for the importance-weighted bound")
    args = parser.parse_args(argv)
    if args.command == "summarise":
        summarise(args)
        return
    names = args.names if args.command == "train" else [n for n in args.names if n in PAPER]
    work = train_one if args.command == "train" else evaluate_one
    run_in_pool(work, [(name, args) for name in names], args.jobs)


if __name__ == "__main__":
    main()
