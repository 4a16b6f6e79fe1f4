"""Score the runs of a `pogm reproduce factvae-mocap` output with their last weights and report the
column norms of Phi that the group lasso acts on.

The table scores each 1- or 2-trial run with the weights of its best validation bound. This script
asks two questions of the same run directories: (1) how each model does when scored with the last
weights, after it has overfitted its training trials (the paper does not say which weights it
scores), and (2) how far lambda = 1's proximal steps moved the columns of Phi (Ainsworth et al.
2018, Algorithm 1): a column is cut only when its norm reaches 0.

    POGM_DATA=../shared/data pogm reproduce factvae-mocap --out /tmp/fv \
        --rows "lambda=0 vs JMVAE+, 1 training trial" "lambda=1 vs lambda=0, 1 training trial"
    POGM_DATA=../shared/data python benchmarks/factvae_weights.py /tmp/fv \
        --out benchmarks/results/factvae_weights.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pogm.reproduce.evaluations import factvae_metrics
from pogm.reproduce.table import RECORD
from pogm.runs import load_run


def column_norms(model) -> dict[str, float]:
    """Min, median and max of ``model``'s column norms ||Phi^(g)_{:, j}|| (every grouped model
    has the same generator, so JMVAE+ too, without the lasso)."""
    norms = model.sparsity_pattern().flatten()  # [G * K]
    return {"min": norms.min().item(), "median": norms.median().item(), "max": norms.max().item()}


def score(run_dir: Path, iw_samples: int) -> dict:
    record = json.loads((run_dir / RECORD).read_text())
    loaded = load_run(run_dir, weights="latest")  # loaded once, scored and measured
    latest = factvae_metrics(loaded, iw_samples=iw_samples)
    return {
        "run": run_dir.name,
        "table_weights": record["evaluation"]["options"]["weights"],
        "test_log_likelihood_table": record["evaluation"]["numbers"]["test_log_likelihood"],
        "test_log_likelihood_last": latest["test_log_likelihood"],
        "zero_columns_last": latest["zero_columns"],
        "phi_column_norms_last": column_norms(loaded.model),
        "machine": record["machine"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reproduce_out", type=Path, help="the --out folder of a `pogm reproduce factvae-mocap` call")
    parser.add_argument("--iw-samples", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/factvae_weights.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    runs = sorted((args.reproduce_out / "runs" / "factvae-mocap").glob("*-seed*"))
    if not runs:
        raise SystemExit(f"no factvae-mocap run directories under {args.reproduce_out}/runs/factvae-mocap: run `pogm reproduce factvae-mocap --out {args.reproduce_out}` first")
    results = []
    for run_dir in runs:
        results.append(score(run_dir, args.iw_samples))
        print(json.dumps(results[-1]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"iw_samples": args.iw_samples, "runs": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
