"""MNIST with 100 labels (10 per class): M2, M1+M2, ADGM and SDGM for a fixed CPU-time budget.

Trains each model with pogm's own Trainer on the standard 50,000 / 10,000 / 10,000 split,
evaluating after every epoch, and writes JSON with test error against training CPU and wall time
(the model is selected on the validation error; test error is only reported), the throughput in
unlabelled examples per second, and the papers' numbers beside ours.

    python benchmarks/ssl_mnist.py --figure benchmarks/results/figures/time-to-accuracy.png
    python benchmarks/ssl_mnist.py --models adgm sdgm --budget-minutes 10 --seeds 0 1 2

Every (model, budget) pair is one run in its own process with ``--threads`` threads (1 by
default, so two runs share a 2-core machine fairly); the budget counts the training process's CPU
time only (evaluation excluded). Every model trains with its packaged CPU-budget recipe
(``pogm recipes``: m2-, m1m2-, adgm- and sdgm-mnist100-cpu). For M2, ADGM and SDGM a single run of
the longest budget is read off at every shorter budget: its schedule does not depend on the budget.
M1+M2 splits its budget between the M1 phase and the M2 phase (``--m1-fraction``), so it gets one
run per budget. Finished runs are reused and interrupted ones resume from their last checkpoint.

Every budget up to ``--seed-budget-limit`` (10 CPU-minutes) runs every seed of ``--seeds`` (0 1 2)
and reports the mean and sample standard deviation; longer budgets run the first seed only, and
say so (``"seeds": 1``). ``--figure PATH`` draws the curves of the first seed: test error of the
best-validation evaluation so far against epochs and against training CPU minutes, with each
paper's number as a dashed line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pogm.models.semi_supervised.paper_table import SSL_MNIST as PAPER
from pogm.models.semi_supervised.paper_table import M1_FRACTION, m1_steps_for

# pogm's settings for this benchmark (the same as `pogm reproduce ssl-mnist100`; see there why).
from pogm.models.semi_supervised.paper_table import SSL_MODEL_SETTINGS as MODEL_SETTINGS
from pogm.models.semi_supervised.paper_table import SSL_RECIPES as RECIPES
from pogm.models.semi_supervised.paper_table import SSL_TRAIN_SETTINGS as TRAIN_SETTINGS
from pogm.reproduce.runs import machine, selected_record

PUBLIC_REFERENCE = {
    "m2": {"test_error_after_10_minutes": 0.485, "unlabelled_per_second": 1560, "source": "a public PyTorch M2 ([784, 10, 50, [600, 600]]) run on this machine for 10 minutes with its own recipe"},
    "adgm": {"test_error_after_10_minutes": 0.74, "unlabelled_per_second": 840, "source": "a public PyTorch ADGM run on this machine for 10 minutes with its own recipe"},
}


def run_dir(model: str, budget_minutes: float, seed: int, args: argparse.Namespace) -> Path:
    return Path(args.runs) / f"{model}-{budget_minutes:g}min-seed{seed}"


def parse_settings(pairs: list[str]) -> dict[str, dict]:
    """``--set model.batch_norm=false train.lr=3e-4`` as ``{"model": {...}, "train": {...}, "data": {...}}``, the values
    read as `pogm train --set` reads them (`pogm.runs.parse_value`: YAML with 3e-4 a float)."""
    from pogm.runs import parse_value

    settings: dict[str, dict] = {"model": {}, "train": {}, "data": {}}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        section, _, name = key.partition(".")
        if not sep or section not in settings or not name:
            raise SystemExit(f"--set {pair!r}: write model.NAME=VALUE, train.NAME=VALUE or data.NAME=VALUE (e.g. model.batch_norm=false)")
        settings[section][name] = parse_value(value)
    return settings


def model_overrides(model: str, args: argparse.Namespace) -> dict:
    """The model settings this invocation sets on top of ``model``'s recipe (--set model.NAME=VALUE)."""
    return {**MODEL_SETTINGS[model], **parse_settings(args.set)["model"]}


def train_overrides(model: str, args: argparse.Namespace) -> dict:
    """The train settings this invocation sets on top of ``model``'s recipe (--lr, --lr-min,
    --precision, --set train.NAME=VALUE)."""
    train = {**TRAIN_SETTINGS[model], **parse_settings(args.set)["train"]}
    for key in ("lr", "lr_min", "precision"):
        if getattr(args, key) is not None:
            train[key] = getattr(args, key)
    return train


def data_overrides(args: argparse.Namespace) -> dict:
    """The data options this invocation sets on top of the recipe's (--set data.NAME=VALUE)."""
    return parse_settings(args.set)["data"]


def asked_settings(model: str, args: argparse.Namespace) -> dict:
    """``model``'s runs' settings as this invocation asks for them: its recipe with the overrides on
    top (`recipe_settings`), stored in the JSON so that a later summary knows which runs it may carry."""
    from pogm.reproduce.runs import recipe_settings

    _, model_settings, train, data = recipe_settings(RECIPES[model], model_overrides(model, args), train_overrides(model, args), data_overrides(args))
    return json.loads(json.dumps({"model": model_settings, "train": train, "data": data}))  # as read back from JSON


def run_one(model: str, budget_minutes: float, seed: int, args: argparse.Namespace) -> dict:
    """Train (or resume, or reuse) one budgeted run; its records."""
    from pogm.reproduce.runs import train_for_budget
    from pogm.checkpoint import read_metrics

    out = run_dir(model, budget_minutes, seed, args)
    train = train_overrides(model, args)
    fresh = (lambda seconds: {"m1_steps": m1_steps_for(seconds, args.m1_fraction, args.threads)}) if model == "m1m2" else None
    start = time.time()
    how = train_for_budget(
        model, out, budget_minutes, seed=seed, data_options=data_overrides(args) or None, model_options=model_overrides(model, args), train_options=train,
        labels=10, recipe=RECIPES.get(model), fresh_options=fresh, threads=args.threads,
    )
    wall = time.time() - start
    print(f"{model} {budget_minutes:g} CPU-min seed {seed}: {how} in {wall:.0f} s", flush=True)
    return {"model": model, "budget_minutes": budget_minutes, "seed": seed, "run_dir": str(out), "wall_seconds": wall, "model_config": model_overrides(model, args), "records": read_metrics(out)}


def read_run(model: str, budget_minutes: float, seed: int, args: argparse.Namespace) -> dict:
    """A finished run's records, read back from its run directory."""
    import yaml

    from pogm.checkpoint import read_metrics

    out = run_dir(model, budget_minutes, seed, args)
    config = yaml.safe_load((out / "config.yaml").read_text())
    overrides = {k: config["model_config"][k] for k in ("batch_norm", "m1_steps", "a_samples") if k in config["model_config"]}
    from pogm.reproduce.runs import finished

    return {"model": model, "budget_minutes": budget_minutes, "seed": seed, "run_dir": str(out), "wall_seconds": None, "model_config": overrides, "records": read_metrics(out), "finished": finished(out, budget_minutes * 60)}


STEP_SLACK_SECONDS = 1.0  # longer than any one training step here
EVALUATION_GAP_SECONDS = 60.0  # longer than one epoch of any model here: a run this close to a budget has reached it
# The budgets each model is measured at (CPU-minutes): its targets and the 10-minute one of every seed.
BUDGETS = {"m2": [60, 10], "m1m2": [60, 10], "adgm": [120, 60, 10], "sdgm": [120, 60, 10]}


def summarise(run: dict, budget_minutes: float, batch_size: int = 100) -> dict:
    """Numbers at ``budget_minutes`` of training CPU time: test error of the best-validation epoch."""
    # A budgeted run stops after the step that crosses its budget, so its final evaluation lies a
    # fraction of a second past it: that evaluation counts.
    records = [r for r in run["records"] if r["train_cpu_seconds"] <= budget_minutes * 60 + STEP_SLACK_SECONDS]
    if not records:
        return {"budget_minutes": budget_minutes, "note": "no evaluation inside this budget"}
    reached = run["records"][-1]["train_cpu_seconds"]
    if reached < budget_minutes * 60 - EVALUATION_GAP_SECONDS and not run.get("finished", True):
        return {"budget_minutes": budget_minutes, "note": f"in progress: {reached / 60:.1f} CPU-minutes so far"}
    best = selected_record(records)
    last = records[-1]
    return {
        "budget_minutes": budget_minutes,
        "test_error": best["test_error"],
        "valid_error": best["valid_error"],
        "selected_step": best["step"],
        "last_test_error": last["test_error"],
        "steps": last["step"],
        "epochs": last["epoch"],
        "train_cpu_seconds": last["train_cpu_seconds"],
        "train_wall_seconds": last["train_wall_seconds"],
        "unlabelled_per_second": last["step"] * batch_size / last["train_wall_seconds"],
        "unlabelled_per_cpu_second": last["step"] * batch_size / last["train_cpu_seconds"],
    }


def seed_summary(budget_minutes: float, per_seed: list[dict]) -> dict:
    """One budget's row: the mean and sample standard deviation over seeds, and every seed's numbers."""
    import statistics

    if not per_seed:
        return {"budget_minutes": budget_minutes, "seeds": 0, "note": "no run reached this budget"}
    errors = [r["test_error"] for r in per_seed]
    return {
        "budget_minutes": budget_minutes,
        "seeds": len(per_seed),
        "test_error": statistics.fmean(errors),
        "test_error_sd": statistics.stdev(errors) if len(errors) > 1 else None,
        "valid_error": statistics.fmean(r["valid_error"] for r in per_seed),
        "per_seed": per_seed,
    }


def carried_seeds(earlier: dict, model: str, budget_minutes: float, seeds: list[int], measured: list[dict], settings: dict, with_runs: set[int] = frozenset()) -> list[dict]:
    """The per-seed rows of ``earlier`` (the JSON being rewritten) for ``model`` at ``budget_minutes``
    whose seed is asked for but has no run directory now (``with_runs`` holds the seeds that have one,
    finished or not): a summary never drops a measured seed because its run directory is gone (they
    are git-ignored; the JSON is not). Only rows measured with the same ``settings`` (`asked_settings`)
    carry: a row of an earlier recipe is never reported as the current one's."""
    have = {r["seed"] for r in measured} | set(with_runs)
    result = earlier.get("results", {}).get(model, {})
    rows = result.get("budgets", [])
    old = next((r for r in rows if r["budget_minutes"] == budget_minutes), {})
    missing = [r for r in old.get("per_seed", []) if r["seed"] in seeds and r["seed"] not in have]
    if missing and result.get("settings") != settings:
        why = "it records no settings" if "settings" not in result else "it records other settings than these runs'"
        print(f"note: {model} at {budget_minutes:g} CPU-min: the JSON's seeds {[r['seed'] for r in missing]} are left out "
              f"({why}); rerun them, or restore their run directories", file=sys.stderr)
        return []
    return missing


def selected_so_far(curve: list[dict]) -> list[tuple[float, float, float]]:
    """(epoch, CPU minutes, test error of the best-validation evaluation so far) per evaluation."""
    points, best = [], None
    for record in curve:
        if best is None or record["valid_error"] < best["valid_error"]:
            best = record
        points.append((record["epoch"], record["train_cpu_seconds"] / 60, best["test_error"]))
    return points


def draw_curves(results: dict, path: str | Path) -> Path:
    """Test error (best validation so far) against epochs and training CPU minutes, each model
    beside its paper's number (dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for i, (model, result) in enumerate(results.items()):
        color = f"C{i}"
        points = selected_so_far(result["curve_longest_run"])
        label = model.upper().replace("M1M2", "M1+M2")
        for axis, column in zip(axes, (0, 1)):
            axis.plot([p[column] for p in points], [100 * p[2] for p in points], color=color, label=f"{label} (seed {result['curve_seed']})")
            axis.axhline(100 * result["paper"]["test_error"], color=color, linestyle="--", linewidth=0.8)
    for axis, label in zip(axes, ("epochs (500 steps of 100 + 100)", "training CPU minutes (1 thread)")):
        axis.set_xlabel(label)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("test error, % (best validation so far)")
    axes[0].set_ylim(0, 40)  # M1+M2 sits at chance (90%) while its M1 phase trains
    axes[0].legend(fontsize=8)
    fig.suptitle("MNIST, 100 labels: test error against epochs and CPU time (dashed: the papers)")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["m2", "m1m2", "adgm", "sdgm"], choices=["m2", "m1m2", "adgm", "sdgm"])
    parser.add_argument("--budget-minutes", nargs="+", type=float, default=None, help="CPU-minute budgets to report (default: BUDGETS, per model)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (processes)")
    parser.add_argument("--lr", type=float, default=None, help="override every model's learning rate (default: its recipe's)")
    parser.add_argument("--lr-min", type=float, default=None, help="override every model's learning-rate floor (default: its recipe's)")
    parser.add_argument("--precision", default=None, choices=["fp32", "bf16"], help="override the precision (default: the recipe's)")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.NAME=VALUE", help="override a recipe setting of every model run, e.g. model.batch_norm=false train.lr=3e-4 data.unlabelled_valid=true")
    parser.add_argument("--m1-fraction", type=float, default=M1_FRACTION, help=f"share of the M1+M2 budget spent on M1 (default {M1_FRACTION})")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds; budgets above --seed-budget-limit run the first seed only")
    parser.add_argument("--seed-budget-limit", type=float, default=10.0, help="the longest budget that every seed runs (CPU-minutes)")
    parser.add_argument("--runs", default="benchmarks/runs")
    parser.add_argument("--out", default="benchmarks/results/time_to_accuracy.json")
    parser.add_argument("--note", default=None, help="a line stored in the JSON (what sets these runs apart)")
    parser.add_argument("--summarise-only", action="store_true", help="rewrite the JSON from the run directories in --runs without training")
    parser.add_argument("--figure", default=None, help="also draw the time-to-accuracy curves to this PNG")
    args = parser.parse_args(argv)
    if "POGM_DATA" not in os.environ:
        print("note: POGM_DATA is not set; mnist.npz is looked up in ~/.cache/pogm or downloaded", file=sys.stderr)

    def budgets_of(model: str) -> list[float]:
        return sorted(args.budget_minutes or BUDGETS[model], reverse=True)

    jobs = []  # (model, budget, seed): the longest budget per model and seed (M1+M2: every budget)
    for model in args.models:
        budgets = budgets_of(model)
        for seed in args.seeds:
            longest = max(b for b in budgets if b <= args.seed_budget_limit) if seed != args.seeds[0] else budgets[0]
            for budget in budgets if model == "m1m2" else [longest]:
                if budget <= longest:
                    jobs.append((model, budget, seed))
    jobs.sort(key=lambda job: job[1])  # the short runs first: every seed's 10-minute number comes soon
    if args.summarise_only:
        runs = [read_run(*job, args) for job in jobs if (run_dir(*job, args) / "config.yaml").exists()]
    else:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(run_one, *zip(*jobs), [args] * len(jobs)))

    earlier = json.loads(Path(args.out).read_text()) if Path(args.out).exists() else {}
    results = {}
    for model in args.models:
        settings = asked_settings(model, args)
        with_runs = {r["seed"] for r in runs if r["model"] == model}  # finished or not
        rows = []
        for budget in budgets_of(model):
            per_seed = []
            for run in runs:
                if run["model"] == model and (model != "m1m2" or run["budget_minutes"] == budget) and run["budget_minutes"] >= budget:
                    row = summarise(run, budget)
                    if "test_error" in row:
                        per_seed.append({**row, "seed": run["seed"], "run_dir": run["run_dir"]})
            per_seed += carried_seeds(earlier, model, budget, args.seeds, per_seed, settings, with_runs)
            rows.append(seed_summary(budget, sorted(per_seed, key=lambda r: r["seed"])))
        mine = [r for r in runs if r["model"] == model and r["records"]]
        if not mine:
            continue
        first = max(mine, key=lambda r: (-r["seed"], r["budget_minutes"]))  # the longest run of the lowest seed that has one
        curve = [{k: r[k] for k in ("step", "epoch", "train_cpu_seconds", "train_wall_seconds", "valid_error", "test_error")} for r in first["records"]]
        results[model] = {"budgets": rows, "settings": settings, "curve_longest_run": curve, "curve_seed": first["seed"], "paper": PAPER[model], "public_reference": PUBLIC_REFERENCE.get(model)}
    # models measured by an earlier invocation into the same file stay
    kept = {m: r for m, r in earlier.get("results", {}).items() if m not in results and "curve_seed" in r}
    results = {**kept, **results}
    report = {
        "benchmark": "ssl_mnist",
        "labels": 100,
        "machine": machine(args.threads, parallel_runs=args.jobs),
        "note": args.note,
        "settings": {"lr": args.lr, "lr_min": args.lr_min, "set": parse_settings(args.set), "precision": args.precision, "m1_fraction": args.m1_fraction, "seeds": args.seeds, "recipes": {m: RECIPES[m] for m in results if m in RECIPES}},
        "results": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    for model, result in results.items():
        for row in result["budgets"]:
            if "test_error" not in row:
                continue
            spread = f" ± {row['test_error_sd']:.2%} (n={row['seeds']})" if row["seeds"] > 1 else " (1 seed)"
            print(f"{model:5s} {row['budget_minutes']:>4g} CPU-min: test error {row['test_error']:.2%}{spread} (paper {result['paper']['test_error']:.2%})")
    print(f"wrote {args.out}")
    if args.figure:
        print(f"wrote {draw_curves(results, args.figure)}")


if __name__ == "__main__":
    main()
