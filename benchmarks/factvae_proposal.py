"""Does the importance-sampling proposal decide the factVAE table's rows? Each row of a
`pogm reproduce factvae-mocap` report, per seed, under both estimates of log p(x) its runs carry.

The table scores a held-out frame by importance sampling from a proposal refined per frame
(`pogm.evaluate.refined`: a Gaussian fitted to p(z | x), mixed with the encoder's q); every run's
evaluation also holds the plain importance-weighted bound with the encoder's q as the proposal
(Burda et al. 2015; ``test_log_likelihood_q``), which the table used before. On a walk unlike the
training walks q can miss p(z | x), and the plain bound falls below log p(x) by more for one
model than another. This script reads both numbers of every run from the report, recomputes each
row's two means per seed under each estimate, and writes how far the plain bound sat below the
refined one, per model and size:

    POGM_DATA=../shared/data pogm reproduce factvae-mocap
    python benchmarks/factvae_proposal.py reproduce/factvae-mocap.json --out benchmarks/results/factvae_proposal.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from pogm.models.factvae.paper_table import FACTVAE_MOCAP, FACTVAE_ROWS, FACTVAE_SIZES, factvae_choices, factvae_run_name

ESTIMATES = {"refined": "test_log_likelihood", "q": "test_log_likelihood_q"}


def row_values(runs: dict[tuple[str, int], dict]) -> list[dict]:
    """Every row of the table, per seed: the better and the worse mean under each estimate."""
    seeds = sorted({seed for _, seed in runs})
    out = []
    for row in FACTVAE_MOCAP.rows:
        claim = row.ours
        per_seed = {}
        for seed in seeds:
            per_seed[seed] = {}
            for estimate, key in ESTIMATES.items():
                better = statistics.fmean(runs[name, seed][key] for name in claim.better.runs)
                worse = statistics.fmean(runs[name, seed][key] for name in claim.worse.runs)
                per_seed[seed][estimate] = {"better": better, "worse": worse, "holds": better > worse}  # every row: higher is better
        out.append({"row": row.name, "per_seed": per_seed,
                    "holds_on_every_seed": {e: all(v[e]["holds"] for v in per_seed.values()) for e in ESTIMATES}})
    return out


def gaps(runs: dict[tuple[str, int], dict]) -> dict[str, dict]:
    """How far q's bound sits below the refined estimate, nats per frame, per model and size: min, median, max over runs."""
    out = {}
    for model in FACTVAE_ROWS:
        for size in FACTVAE_SIZES:
            names = [factvae_run_name(model, train, held) for train, held in factvae_choices(size)]
            values = [runs[n, s]["test_log_likelihood"] - runs[n, s]["test_log_likelihood_q"] for (n, s) in runs if n in names]
            out[f"{model}, {size} trial{'s' if size > 1 else ''}"] = {"min": min(values), "median": statistics.median(values), "max": max(values), "runs": len(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="reproduce/factvae-mocap.json, written by `pogm reproduce factvae-mocap`")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/factvae_proposal.json"))
    args = parser.parse_args()
    report = json.loads(args.report.read_text())
    runs = {(r["name"], r["seed"]): r["numbers"] for r in report["runs"]}
    if not all(set(ESTIMATES.values()) <= set(numbers) for numbers in runs.values()):
        raise SystemExit(f"{args.report} has runs without both estimates ({', '.join(ESTIMATES.values())}): rerun `pogm reproduce factvae-mocap` to rescore them")
    result = {"report": str(args.report), "date": report["date"], "machine": report["machine"], "seeds": report["seeds"],
              "gap_q_below_refined": gaps(runs), "rows": row_values(runs)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    for row in result["rows"]:
        print(f"{row['row']}: holds on every seed with the refined proposal: {row['holds_on_every_seed']['refined']}, with q: {row['holds_on_every_seed']['q']}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
