"""Which of pogm's departures from Algorithm 1 of Ainsworth, Foti & Fox (2018) made the group
lasso cut every column of Phi on motion capture?

factVAE with lambda = 1 on CMU subject 07's walking trials, trained with the settings of Table 1
(`pogm.models.factvae.paper_table`), once per variant; each variant changes one reading of the
paper against the one before it:

* ``former``: shrinkage eta * lambda scaled by the KL warm-up weight, Phi drawn at PyTorch's
  fan-in scale, the N(0, I) prior on the generators only, both priors at full weight per example
  (pogm before this benchmark);
* ``algorithm-1``: the shrinkage eta * lambda at every step, as Algorithm 1 writes it;
* ``unit-init``: and Phi drawn with N(0, 1) entries (the authors' published oi-VAE code);
* ``theta-networks``: and the N(0, I) prior on every network weight outside Phi (eq. 9's theta);
* ``lambda-per-data-set``: and lambda (not theta's prior) divided by the number of training frames;
* ``paper``: both priors counted once per data set (``prior_scale="data-set"``) — the defaults;
* ``lambda=0``: the defaults without the group lasso, for reference;
* ``literal-eta=1e-3``, ``literal-eta=1e-4``: Algorithm 1 read literally (``theta-networks``) with
  smaller gradient and proximal steps on Phi (the authors' oi-VAE code steps W by 1e-4), and
  ``literal-lambda=0`` its reference.

Reported per run: the columns of Phi (groups x latent dimensions) that the lasso zeroed and the
held-out log-likelihood per frame (IW bound).

    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/factvae_lasso.py

Output: benchmarks/results/factvae_lasso.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from pogm.models.factvae.paper_table import FACTVAE_MODEL_SETTINGS, FACTVAE_TRAIN_SETTINGS, mocap_choices
from pogm.reproduce.evaluations import factvae_metrics
from pogm.reproduce.runs import machine

PAPER = {"sparsity": 1.0, "lasso_warmup": False, "phi_init": "unit", "theta_prior_covers": "networks", "prior_scale": "data-set"}
LITERAL = {**PAPER, "prior_scale": "per-example"}
VARIANTS = {
    "former": {**LITERAL, "lasso_warmup": True, "phi_init": "fan-in", "theta_prior_covers": "generators"},
    "algorithm-1": {**LITERAL, "phi_init": "fan-in", "theta_prior_covers": "generators"},
    "unit-init": {**LITERAL, "theta_prior_covers": "generators"},
    "theta-networks": LITERAL,
    "lambda-per-data-set": LITERAL,  # lambda / N_frames, set in run_one
    "paper": PAPER,
    "lambda=0": {**PAPER, "sparsity": 0.0},
    "literal-eta=1e-3": {**LITERAL, "prox_lr": 1e-3},  # Algorithm 1 read literally, with smaller steps on Phi
    "literal-eta=1e-4": {**LITERAL, "prox_lr": 1e-4},  # the authors' oi-VAE step on W
    "literal-lambda=0": {**LITERAL, "sparsity": 0.0},
}


def _finished(out: Path, steps: int) -> bool:
    from pogm.checkpoint import read_metrics

    try:
        return read_metrics(out)[-1]["step"] >= steps
    except (FileNotFoundError, IndexError, KeyError, ValueError):
        return False


def run_one(variant: str, train: list[str], held_out: str, seed: int, args: argparse.Namespace) -> dict:
    import pogm
    from pogm.checkpoint import read_metrics
    from pogm.data import load_source

    settings = dict(VARIANTS[variant])
    frames = len(load_source("mocap", train_trials=train, test_trials=[held_out]).train)
    if variant == "lambda-per-data-set":
        settings["sparsity"] = 1.0 / frames
    prox_lr = settings.pop("prox_lr", args.prox_lr)
    out = Path(args.runs) / f"{variant.replace('=', '')}-train{'+'.join(t[-2:] for t in train)}-test{held_out[-2:]}-seed{seed}"
    overrides = {
        "model": {**FACTVAE_MODEL_SETTINGS, **settings, "prox_lr": prox_lr},
        "train": {**FACTVAE_TRAIN_SETTINGS, "max_steps": args.steps, "threads": 1, "progress": False, "eval_every": 10**6},
        "data": {"train_trials": train, "test_trials": [held_out]},
    }
    if not _finished(out, args.steps):
        shutil.rmtree(out, ignore_errors=True)  # an interrupted run starts again (it is a minute long)
        pogm.train("factvae", data="mocap", out=out, seed=seed, overrides=overrides, progress=False)
    last = read_metrics(out)[-1]
    result = {"variant": variant, "train_trials": train, "held_out": held_out, "seed": seed, "train_frames": frames,
              "sparsity": settings["sparsity"], "prox_lr": prox_lr, "steps": last["step"], "train_cpu_seconds": last["train_cpu_seconds"],
              **factvae_metrics(out, args.iw_samples)}
    result["columns"] = 5 * FACTVAE_MODEL_SETTINGS["z_dim"]
    print(json.dumps(result), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--size", type=int, default=2, help="training trials per run")
    parser.add_argument("--choices", type=int, default=2, help="choices of (training trials, held-out trial)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--prox-lr", type=float, default=1e-2)
    parser.add_argument("--iw-samples", type=int, default=500)
    parser.add_argument("--runs", default="benchmarks/runs-factvae-lasso")
    parser.add_argument("--out", default="benchmarks/results/factvae_lasso.json")
    args = parser.parse_args()
    if not os.environ.get("POGM_DATA"):
        print("set POGM_DATA to the folder that holds cmu_mocap/", file=sys.stderr)
        return 2
    start = time.time()
    results = [run_one(v, train, held, seed, args) for seed in args.seeds for train, held in mocap_choices(args.size, args.choices, 0) for v in args.variants]
    summary = {}
    for v in args.variants:
        rows = [r for r in results if r["variant"] == v]
        lls = [r["test_log_likelihood"] for r in rows]
        summary[v] = {
            "zero_columns": [r["zero_columns"] for r in rows],
            "test_log_likelihood_mean": statistics.fmean(lls),
            "test_log_likelihood_sd": statistics.stdev(lls) if len(lls) > 1 else 0.0,
            "runs": len(rows),
        }
        print(f"{v:>13}: zeroed columns {summary[v]['zero_columns']} of {results[0]['columns']}, held-out log-lik {summary[v]['test_log_likelihood_mean']:.1f} ± {summary[v]['test_log_likelihood_sd']:.1f}")
    report = {
        "benchmark": "factvae_lasso",
        "question": "which departure from Algorithm 1 made lambda = 1 cut every column of Phi on mocap",
        "variants": VARIANTS,
        "settings": {"model": FACTVAE_MODEL_SETTINGS, "train": FACTVAE_TRAIN_SETTINGS, "steps": args.steps, "prox_lr": args.prox_lr,
                     "iw_samples": args.iw_samples, "size": args.size, "choices": args.choices, "seeds": args.seeds},
        "summary": summary,
        "machine": machine(1, jobs=1),
        "wall_seconds": round(time.time() - start, 1),
        "date": time.strftime("%Y-%m-%d"),
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
