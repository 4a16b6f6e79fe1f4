"""factVAE variants on Table 1's motion-capture runs, beside the table's own lambda = 0 and JMVAE+.

Ainsworth, Foti & Fox (2018), Table 1, find the lasso's largest gain with the least data (one
training trial: -555 against -600). The table's default counts both priors once per data set
(``prior_scale="data-set"``), where lambda = 1 shrinks a column by eta * lambda / N = 3e-5 a step
and cuts nothing before the best-validation weights (docs/results.md). Algorithm 1 read literally
(per example, both priors) collapses z, but benchmarks/factvae_lasso.py traced part of that
collapse to theta's prior. A variant is a comma-separated list of model settings, with one more:

* ``lambda_pe=L``: lambda per example with theta's prior still once per data set, the cell
  factvae_lasso.py did not measure; set as ``sparsity = L * N`` under ``prior_scale="data-set"``,
  which is exactly that (the shrinkage per step is eta * L, theta's prior weighs 1 / N);
* any other ``key=value`` is a factVAE setting, e.g. ``group_dropout=0.5``.

Each variant runs the table's choices of (training trials, held-out trial) for ``--sizes`` with the
table's run settings (`pogm reproduce factvae-mocap`: 1 CPU-minute a run, a validation walk and the
best-validation weights where one is left) and is set beside the table's own lambda = 0 and
JMVAE+ runs of the same seeds (``--table-runs``, the runs of a `pogm reproduce factvae-mocap` call).

    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/factvae_variants.py \
        --variants lambda_pe=1 lambda_pe=0.1 --sizes 1 --seeds 0 1 2

Output (``--out``): per variant, choice and seed the held-out bound per frame (IW, k = 1,000),
the columns cut at the selected and at the last weights, the step selected, the run length; and
per variant, size and seed the means over the choices beside the table's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
from pathlib import Path

from pogm.checkpoint import read_metrics
from pogm.data import load_source
from pogm.models.factvae.paper_table import FACTVAE_MOCAP, factvae_choices, factvae_run_name, factvae_run_spec
from pogm.reproduce.evaluations import factvae_metrics
from pogm.reproduce.runs import machine, train_for_budget

MINUTES = max(FACTVAE_MOCAP.budgets(FACTVAE_MOCAP.default_budget).values())  # the table's CPU-minutes per run and seed (every run has the same share)


def parse_variant(text: str) -> dict[str, float | str]:
    """``"lambda_pe=1,group_dropout=0.5"`` -> ``{"lambda_pe": 1.0, "group_dropout": 0.5}``."""
    settings = {}
    for item in text.split(","):
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"variant {text!r}: write key=value pairs separated by commas, e.g. lambda_pe=1,group_dropout=0.5")
        try:
            settings[key] = float(value)
        except ValueError:
            settings[key] = value
    return settings


def variant_run(variant: str, train: list[str], held_out: str):
    """The table's lambda = 0 run on ``train`` with the variant's settings (``lambda_pe``: lambda
    per example, theta's prior once per data set)."""
    spec = factvae_run_spec("lambda=0", train, held_out)
    settings = parse_variant(variant)
    options = dict(spec.model_options)
    if "lambda_pe" in settings:
        frames = len(load_source("mocap", train_trials=train, test_trials=[held_out]).train)
        options["sparsity"] = settings.pop("lambda_pe") * frames  # prior_scale="data-set" divides by N
    options.update(settings)
    return dataclasses.replace(spec, name=factvae_run_name(variant.replace(",", "+"), train, held_out), model_options=options)


def table_number(table_runs: Path, row: str, train: list[str], held_out: str, seed: int) -> float | None:
    record = table_runs / f"{factvae_run_name(row, train, held_out)}-{MINUTES:g}min-seed{seed}" / "reproduce.json"
    if not record.is_file():
        return None
    return json.loads(record.read_text())["evaluation"]["numbers"]["test_log_likelihood"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["lambda_pe=1", "lambda_pe=0.1"], help="comma-separated settings, e.g. lambda_pe=1,group_dropout=0.5")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1], help="training trials (the table's choices for each)")
    parser.add_argument("--runs", type=Path, default=Path("benchmarks/runs-factvae-lambda"))
    parser.add_argument("--table-runs", type=Path, default=Path("reproduce/runs/factvae-mocap"))
    parser.add_argument("--out", type=Path, required=True, help="the results JSON, e.g. benchmarks/results/factvae_variants.json")
    args = parser.parse_args()

    results = []
    for seed in args.seeds:
        for train, held_out in [pair for size in args.sizes for pair in factvae_choices(size)]:
            for variant in args.variants:
                spec = variant_run(variant, train, held_out)
                run_dir = args.runs / f"{spec.name}-seed{seed}"
                train_for_budget(spec.model, run_dir, MINUTES, seed, spec.data_options, spec.model_options, spec.train_options, source=spec.source)
                numbers = factvae_metrics(run_dir, **spec.evaluate_options)
                latest = factvae_metrics(run_dir, iw_samples=100, weights="latest")
                metrics = read_metrics(run_dir)
                best = max((m for m in metrics if m.get("best")), key=lambda m: m["step"], default=None)
                entry = {
                    "variant": variant, "size": len(train), "train": train, "held_out": held_out, "seed": seed,
                    "test_log_likelihood": numbers["test_log_likelihood"], "zero_columns_best": numbers["zero_columns"],
                    "zero_columns_last": latest["zero_columns"], "best_step": best and best["step"], "steps": metrics[-1]["step"],
                    "valid_elbo_best": best and best["valid_elbo"],
                    "lambda0": table_number(args.table_runs, "lambda=0", train, held_out, seed),
                    "jmvae_plus": table_number(args.table_runs, "JMVAE+", train, held_out, seed),
                }
                print(json.dumps(entry), flush=True)
                results.append(entry)

    summary = {}
    for variant in args.variants:
        for size in args.sizes:
            per_seed = {}
            for seed in args.seeds:
                rows = [r for r in results if r["variant"] == variant and r["seed"] == seed and r["size"] == size]
                per_seed[seed] = {key: (statistics.fmean(r[key] for r in rows) if all(r[key] is not None for r in rows) else None) for key in ("test_log_likelihood", "lambda0", "jmvae_plus", "valid_elbo_best")}
            summary[f"{variant}, {size} trial{'s' if size > 1 else ''}"] = per_seed
    args.out.write_text(json.dumps({"machine": machine(), "minutes_per_run": MINUTES, "summary": summary, "runs": results}, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
