"""Table 1 of Ainsworth, Foti & Fox (factVAE) with the walking trials at hand.

The paper trains on 1, 2, 5 and 10 walking trials of CMU subject 07 and reports the test
log-likelihood of a held-out walking trial for JMVAE+, factVAE with lambda = 0 and factVAE with
lambda = 1. Six trials are on this disk (07_01, 02, 05, 09, 10, 11), so the 1-, 2- and 5-trial
columns can be run; each is averaged over several choices of held-out trial and training trials
(``--choices``), drawn with a fixed seed. Every run has the same number of optimizer steps and
is scored by the importance-weighted bound (``--iw-samples``) on log p(x) of every frame of the
held-out trial (all five groups observed), averaged over frames, in nats; the features are the
joint angles normalised by the training frames' range (`pogm.data.sources.mocap`).

    POGM_DATA=../shared/data python benchmarks/factvae_mocap.py --jobs 2

Output: benchmarks/results/factvae_mocap.json and .md, each row beside the paper's number. The
paper's normalisation, network sizes and training length are not stated, so its numbers are on a
scale of their own; what carries over is the ordering of the rows and its change with the amount
of data.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from pogm.models.factvae.paper_table import FACTVAE as PAPER
from pogm.models.factvae.paper_table import FACTVAE_SOURCE

# The settings of Table 1's runs (the same as `pogm reproduce factvae-mocap`): MODELS maps a row
# to its registered model and settings.
from pogm.models.factvae.paper_table import FACTVAE_MODEL_SETTINGS as MODEL_SETTINGS
from pogm.models.factvae.paper_table import FACTVAE_MODELS as MODELS
from pogm.models.factvae.paper_table import FACTVAE_TRAIN_SETTINGS as TRAIN_SETTINGS
from pogm.models.factvae.paper_table import factvae_run_name
from pogm.models.factvae.paper_table import mocap_choices as choices
from pogm.reproduce.evaluations import factvae_metrics
from pogm.reproduce.runs import machine

SIZES = [1, 2, 5]


def run_one(row: str, train_trials: list[str], held_out: str, args: argparse.Namespace) -> dict:
    import torch

    import pogm
    from pogm.checkpoint import read_metrics

    torch.set_num_threads(args.threads)
    model, settings = MODELS[row]
    name = f"{factvae_run_name(row, train_trials, held_out)}-seed{args.seed}"
    out = Path(args.runs) / name
    train_settings = {**TRAIN_SETTINGS, "max_steps": args.steps, "threads": args.threads, "progress": False, "eval_every": 10**6}
    overrides = {
        "model": {**MODEL_SETTINGS, **settings, "prox_lr": args.prox_lr},
        "train": train_settings,
        "data": {"train_trials": train_trials, "test_trials": [held_out]},
    }
    start = time.time()
    if not (out / "config.yaml").exists():
        pogm.train(model, data="mocap", out=out, seed=args.seed, overrides=overrides, progress=False)
    train_wall = time.time() - start
    records = read_metrics(out)
    result = {
        "row": row,
        "model": model,
        "trials": len(train_trials),
        "train_trials": train_trials,
        "held_out": held_out,
        "steps": records[-1]["step"],
        "train_cpu_seconds": records[-1]["train_cpu_seconds"],
        "train_wall_seconds": round(train_wall, 1),
        "train_elbo": records[-1].get("train_elbo"),
        **factvae_metrics(out, args.iw_samples),
        "run": str(out),
    }
    print(json.dumps(result), flush=True)
    return result


def summarise(results: list[dict]) -> dict:
    table: dict = {}
    for row in MODELS:
        for size in SIZES:
            values = [r["test_log_likelihood"] for r in results if r["row"] == row and r["trials"] == size]
            if values:
                table.setdefault(row, {})[size] = {
                    "mean": statistics.fmean(values),
                    "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "runs": len(values),
                    "paper": PAPER[row][size],
                }
    return table


def claims(table: dict) -> list[dict]:
    """The paper's claims (sec. 4.2): factVAE beats JMVAE+, and sparsity (lambda = 1) helps most
    when training data is scarce."""
    checks = []
    for size in SIZES:
        try:
            jm, l0, l1 = (table[row][size]["mean"] for row in ("JMVAE+", "lambda=0", "lambda=1"))
        except KeyError:
            continue
        checks.append({"trials": size, "lambda=0 beats JMVAE+": l0 > jm, "lambda=1 beats JMVAE+": l1 > jm, "lambda=1 beats lambda=0": l1 > l0, "lambda=1 - lambda=0": l1 - l0})
    return checks


def markdown(table: dict, results: list[dict], args: argparse.Namespace) -> str:
    sizes = [s for s in SIZES if any(s in table.get(row, {}) for row in MODELS)]
    lines = [
        f"Test log-likelihood per frame of a held-out walking trial (IW bound, k = {args.iw_samples}), nats; "
        f"mean ± std over choices of trials; {args.steps} steps per run. Paper's Table 1 in brackets.",
        "",
        "| trials | " + " | ".join(str(s) for s in sizes) + " |",
        "| --- | " + " | ".join("---" for _ in sizes) + " |",
    ]
    for row in MODELS:
        cells = []
        for s in sizes:
            c = table.get(row, {}).get(s)
            paper = "" if c is None or c["paper"] is None else f" [{c['paper']}]"
            cells.append("-" if c is None else f"{c['mean']:.1f} ± {c['std']:.1f} (n={c['runs']}){paper}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--rows", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--choices", type=int, default=3, help="choices of (training trials, held-out trial) per size")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--prox-lr", type=float, default=1e-2)
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default="benchmarks/runs-factvae")
    parser.add_argument("--out", default="benchmarks/results/factvae_mocap.json")
    args = parser.parse_args()
    if not os.environ.get("POGM_DATA"):
        print("set POGM_DATA to the folder that holds cmu_mocap/", file=sys.stderr)
        return 2
    jobs = [(row, train, held) for size in args.sizes for train, held in choices(size, args.choices, args.seed) for row in args.rows]
    start = time.time()
    results = []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run_one, row, train, held, args) for row, train, held in jobs]
        for future in as_completed(futures):
            results.append(future.result())
    table = summarise(results)
    report = {
        "benchmark": "factvae_mocap",
        "paper": f"{FACTVAE_SOURCE}; 10-trial column not runnable with 6 trials",
        "table": table,
        "claim_checks": claims(table),
        "settings": {"model": MODEL_SETTINGS, "rows": {k: v for k, v in MODELS.items() if k in args.rows}, "train": TRAIN_SETTINGS, "steps": args.steps, "prox_lr": args.prox_lr, "iw_samples": args.iw_samples, "choices": args.choices, "seed": args.seed},
        "machine": machine(args.threads, jobs=args.jobs),
        "wall_seconds": round(time.time() - start, 1),
        "date": time.strftime("%Y-%m-%d"),
        "results": sorted(results, key=lambda r: (r["trials"], r["row"], r["held_out"])),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text(markdown(table, results, args))
    print(markdown(table, results, args))
    print(json.dumps(report["claim_checks"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
