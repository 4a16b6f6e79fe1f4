"""The verdict rule, the registry of tables, and running a table.

The tables themselves are data (`pogm.tables`: `Table`, `RunSpec`, `Row`, `Metric`, `Mean`,
`Claim`), defined by each model family beside its models. `reproduce` trains what is missing for
each seed, evaluates each run by the evaluation its `RunSpec` names (`pogm.reproduce.evaluations`),
computes every row per seed, reports its mean, sample sd and n over the seeds with a verdict
(`row_verdict`), and writes ``OUT/TABLE.md`` and ``OUT/TABLE.json``; the runs live in
``OUT/runs/TABLE/``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pogm.reproduce.evaluations import resolve_evaluation
from pogm.reproduce.runs import (
    check_run_settings,
    chosen_budget_minutes,
    describe_machine,
    finished,
    machine,
    read_starts,
    run_in_pool,
    train_best_start,
    write_report,
)
from pogm.tables import ERROR_UNITS, Row, RunSpec, Table, check_seeds

VERDICT_RULE = (
    "reproduced: ours at least as good as the paper's, or within its ± (without one, within 5% relative; "
    "log-likelihoods in nats: within 1 nat); close: within 25% relative (errors: within max(25% relative, "
    "0.5 percentage points); log-likelihoods: within 5 nats); else not reproduced"
)
CLAIM_RULE = (
    "each row is computed per seed and reported as mean ± sample sd (n seeds), the verdict judging the mean; "
    "a claim row gives the fraction of seeds for which the claim holds and is reproduced only when it holds for every seed"
)
NATS_BANDS = (1.0, 5.0)  # log-likelihoods: a relative band is meaningless there (5% of -85 is 4 nats)
MAX_JOBS = 2
RECORD = "reproduce.json"  # in each run directory: the machine it trained on and its cached evaluation


def verdict(ours: float, paper: float, direction: str, pm: float | None = None, error: bool = False, nats: bool = False) -> str:
    """``"reproduced"``, ``"close"`` or ``"not reproduced"`` (see `VERDICT_RULE`).

    ``direction`` is ``"lower"`` or ``"higher"`` (which is better); ``pm`` the paper's reported
    spread; ``error`` marks error rates (fractions), whose "close" band is at least 0.5 percentage
    points wide; ``nats`` marks log-likelihoods, whose bands are absolute (`NATS_BANDS`).
    """
    if direction not in ("lower", "higher"):
        raise ValueError(f"direction must be 'lower' or 'higher', got {direction!r}")
    gap = abs(ours - paper)
    as_good = ours <= paper if direction == "lower" else ours >= paper
    same = pm if pm is not None else (NATS_BANDS[0] if nats else 0.05 * abs(paper))
    if as_good or gap <= same:
        return "reproduced"
    if nats:
        close = NATS_BANDS[1]
    else:
        close = max(0.25 * abs(paper), 0.005) if error else 0.25 * abs(paper)
    return "close" if gap <= close else "not reproduced"


def row_verdict(row: Row, values: Sequence[float]) -> str:
    """The verdict of ``row`` from its per-seed ``values``: ``"not run"`` without any number; a
    claim row (``unit="claim"``, each value 1 or 0) is ``"reproduced"`` only when the claim holds
    for every seed, else ``"not reproduced"``; any other row is `verdict` of the mean over the
    seeds (NaN values left out: the report's n says how many seeds counted)."""
    summary = row.summary(values)
    if not summary["n"]:
        return "not run"
    if row.unit == "claim":
        return "reproduced" if all(v == 1.0 for v in values) else "not reproduced"
    return verdict(summary["mean"], row.paper, row.direction, row.paper_pm, error=row.unit in ERROR_UNITS, nats=row.unit == "nats")


TABLES: dict[str, Table] = {}


def register_table(table: Table) -> Table:
    """Add ``table`` to the registry (`list_tables`, `get_table`, `pogm reproduce`); every
    evaluation its runs name must be known (`pogm.reproduce.evaluations.EVALUATIONS`)."""
    if table.name in TABLES:
        raise ValueError(f"a table named {table.name!r} is already registered")
    for spec in table.runs:
        resolve_evaluation(spec)
    TABLES[table.name] = table
    return table


def list_tables() -> list[str]:
    """Names of the registered tables, in registration order."""
    return list(TABLES)


def get_table(name: str) -> Table:
    """The table ``name``; an unknown name is a ValueError that lists the known ones."""
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose one of {', '.join(TABLES)} (`pogm reproduce --list` describes them)")
    return TABLES[name]


# ----------------------------------------------------------------------------- running a table
@dataclass(frozen=True)
class _Job:
    table: str
    spec: RunSpec
    run_dir: Path
    minutes: float
    seed: int


def _callable_name(fn: Callable) -> tuple[str, dict[str, Any]]:
    """``("module.function", keyword options)`` of a function or a `functools.partial` of one."""
    options: dict[str, Any] = {}
    while isinstance(fn, functools.partial):
        options = {**fn.keywords, **options}
        fn = fn.func
    return f"{fn.__module__}.{fn.__qualname__}", options


def _read_record(run_dir: Path) -> dict[str, Any]:
    path = run_dir / RECORD
    return json.loads(path.read_text()) if path.is_file() else {}


def _write_record(run_dir: Path, record: dict[str, Any]) -> None:
    (run_dir / RECORD).write_text(json.dumps(record, indent=2))


def _evaluate(spec: RunSpec, run_dir: Path, step: int) -> dict[str, Any]:
    """The run's numbers: cached in ``RECORD`` for this evaluation, its options and the run's step."""
    evaluate = resolve_evaluation(spec)
    by, options = _callable_name(evaluate)
    record = _read_record(run_dir)
    cached = record.get("evaluation", {})
    if cached.get("by") == by and cached.get("options") == options and cached.get("step") == step:
        return cached["numbers"]
    numbers = evaluate(run_dir)
    record["evaluation"] = {"by": by, "options": options, "step": step, "numbers": numbers}
    _write_record(run_dir, record)
    return numbers


def _run_job(job: _Job) -> dict[str, Any]:
    """Train (unless finished), evaluate, and return the run's record; one progress line per state."""
    import torch

    from pogm.checkpoint import read_metrics

    torch.set_num_threads(1)
    spec, run_dir = job.spec, job.run_dir
    prefix = f"[{job.table}] {spec.name} (seed {job.seed}):"
    start_minutes = job.minutes * spec.start_fraction
    starts = read_starts(run_dir)
    if (run_dir / "state.pt").is_file():  # never reuse or resume a run of other settings
        seed = starts["chosen_seed"] if starts is not None else job.seed
        check_run_settings(run_dir, spec.model, seed, spec.model_options, spec.train_options, spec.data_options, spec.recipe)
    own_minutes = chosen_budget_minutes(job.minutes, spec.starts, start_minutes)  # job.minutes with one start
    done = finished(run_dir, own_minutes * 60) and (spec.starts == 1 or starts is not None)
    if not done:
        state = "resumed" if (run_dir / "state.pt").is_file() else "started"
        of = f" ({spec.starts} starts of {start_minutes:.3g}, the best continued)" if spec.starts > 1 else ""
        print(f"{prefix} {state}, {job.minutes:.3g} CPU-min budget{of} -> {run_dir}", flush=True)
        start = time.time()
        train_best_start(
            spec.model, run_dir, job.minutes, job.seed, spec.data_options, spec.model_options, spec.train_options, spec.labels,
            starts=spec.starts, start_minutes=start_minutes,
            source=spec.source, unlabelled=spec.unlabelled, recipe=spec.recipe, fresh_options=spec.fresh_options,
        )
        _write_record(run_dir, {**_read_record(run_dir), "machine": machine(), "last_training_wall_seconds": round(time.time() - start, 1)})
        starts = read_starts(run_dir)
    last = read_metrics(run_dir)[-1]
    numbers = _evaluate(spec, run_dir, last["step"])
    # The starts that lost count against the budget too.
    cpu_seconds = last["train_cpu_seconds"] + (starts["others_cpu_seconds"] if starts is not None else 0.0)
    length = f"{last['step']:,} steps, {last['epoch']} epochs, {cpu_seconds / 60:.2f} CPU-min"
    print(f"{prefix} {'reused' if done else 'finished'}, {length} ({run_dir})", flush=True)
    return {
        "name": spec.name,
        "seed": job.seed,
        "model": spec.model,
        "recipe": spec.recipe,
        "source": spec.source,
        "budget_cpu_minutes": job.minutes,
        "run_dir": str(run_dir),
        "status": "reused" if done else "trained",
        "steps": last["step"],
        "epochs": last["epoch"],
        "train_cpu_seconds": cpu_seconds,
        "train_wall_seconds": last["train_wall_seconds"],
        "starts": starts,
        "machine": _read_record(run_dir).get("machine"),
        "evaluated_by": _callable_name(resolve_evaluation(spec))[0],
        "numbers": numbers,
    }


def _run_length(runs: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "runs": len(runs),
        "steps": [r["steps"] for r in runs],
        "epochs": [r["epochs"] for r in runs],
        "train_cpu_minutes": round(sum(r["train_cpu_seconds"] for r in runs) / 60, 2),
    }


def _show_length(length: dict[str, Any]) -> str:
    def span(values: list[int]) -> str:
        return f"{min(values):,}" if min(values) == max(values) else f"{min(values):,}-{max(values):,}"

    if length["runs"] == 1:
        return f"{span(length['steps'])} steps, {span(length['epochs'])} epochs, {length['train_cpu_minutes']:.2f} CPU-min"
    return f"{length['runs']} runs: {span(length['steps'])} steps, {span(length['epochs'])} epochs, {length['train_cpu_minutes']:.2f} CPU-min in all"


def _machines(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The distinct machines that trained ``runs``."""
    seen: dict[str, dict[str, Any]] = {}
    for r in runs:
        if r["machine"]:
            seen.setdefault(describe_machine(r["machine"]), r["machine"])
    return list(seen.values())


def _row_result(row: Row, runs: dict[int, dict[str, dict]]) -> dict[str, Any]:
    """The row over the seeds: ``runs`` maps each seed to its runs' records by name; the row's
    value is computed from each seed's numbers alone, then summarised (mean, sample sd, n)."""
    per_seed = []
    for seed, by_name in runs.items():
        numbers = {name: r["numbers"] for name, r in by_name.items()}
        per_seed.append({"seed": seed, "ours": row.ours(numbers), "detail": row.ours.detail(numbers)})
    values = [s["ours"] for s in per_seed]
    summary = row.summary(values)
    used = [by_name[name] for by_name in runs.values() for name in row.ours.runs]
    return {
        "name": row.name,
        "measures": row.measures,
        "unit": row.unit,
        "direction": f"{row.direction} is better",
        "paper": row.paper,
        "paper_pm": row.paper_pm,
        "paper_detail": row.paper_detail,
        "ours": summary["mean"],  # a claim row: the fraction of seeds for which the claim holds
        "ours_sd": summary["sd"],
        "n_seeds": summary["n"],
        "per_seed": per_seed,
        "computed_from": row.ours.describe() + " (per seed; mean, sample sd and n over the seeds)",
        "runs": list(row.ours.runs),
        "run_length": _run_length(used),
        "machine": _machines(used),
        "verdict": row_verdict(row, values),
    }


def _seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def _show_per_seed(row: Row, per_seed: list[dict[str, Any]]) -> str:
    return "; ".join(f"{s['seed']}: {row.show(s['ours'])}" + (f" ({s['detail']})" if s["detail"] else "") for s in per_seed)


def _markdown(table: Table, report: dict[str, Any]) -> list[str]:
    rows_by_name = {row.name: row for row in table.rows}
    lines = [
        f"# {table.name}: {table.description}",
        "",
        f"Paper: {table.paper}.",
        (
            f"Budget: {report['budget_cpu_minutes']:g} CPU-minutes of training for {_seeds(len(report['seeds']))} "
            f"({', '.join(map(str, report['seeds']))}) × {len(table.runs)} runs, {report['budget_cpu_minutes_per_seed']:.3g} "
            f"per seed (one thread each, {report['jobs']} at a time); written {report['date']}."
        ),
        "",
        "| row | measures | paper | ours (mean ± sd, n) | per seed | run length | machine | verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in report["rows"]:
        row = rows_by_name[r["name"]]
        ours = row.show_summary({"mean": r["ours"], "sd": r["ours_sd"], "n": r["n_seeds"]})
        machines = "; ".join(describe_machine(m) for m in r["machine"]) or "-"
        measures = r["measures"] if row.unit == "claim" else f"{r['measures']} ({r['direction']})"
        lines.append(
            f"| {r['name']} | {measures} | {row.show_paper()} | {ours} | {_show_per_seed(row, r['per_seed'])} | "
            f"{_show_length(r['run_length'])} | {machines} | {r['verdict']} |"
        )
    lines += ["", "Runs:", "", "| run | seed | trains | budget CPU-min | steps | epochs | CPU-min | wall-min | this call | directory |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in report["runs"]:
        trains = f"recipe {r['recipe']}" if r["recipe"] else f"{r['model']} on {r['source']}"
        lines.append(f"| {r['name']} | {r['seed']} | {trains} | {r['budget_cpu_minutes']:.3g} | {r['steps']:,} | {r['epochs']} | {r['train_cpu_seconds'] / 60:.2f} | {r['train_wall_seconds'] / 60:.2f} | {r['status']} | `{r['run_dir']}` |")
    lines += ["", f"Verdict rule: {VERDICT_RULE}; {CLAIM_RULE}."]
    lines += ["", table.notes] if table.notes else []
    return lines


def reproduce(
    name: str,
    out: str | Path = "reproduce",
    budget: float | None = None,
    jobs: int = 2,
    seeds: Sequence[int] | int | None = None,
    rows: Sequence[str] | None = None,
    scale: float = 1.0,
) -> dict[str, Any]:
    """Run the table ``name`` once per seed of ``seeds`` (default: the table's, `Table.seeds`; an
    int is one seed) and write ``OUT/NAME.md`` and ``OUT/NAME.json``; returns the report.

    ``budget`` is the training CPU-minutes of the whole table, all seeds together: each run of each
    seed trains for ``budget × share / len(seeds)`` (`Table.budgets`). Its default is the table's
    ``default_budget`` (meant for its default seeds) scaled to the number of seeds given, so that
    each run keeps its default length whatever the seeds: ``--seed 5`` trains as long per run as
    the default three seeds do, and adding a seed reuses the runs of the others.
    Runs train ``jobs`` at a time (1 or 2, one thread each), seed by seed, each in
    ``OUT/runs/NAME/RUN-<minutes>min-seed<S>``: a finished one is reused, an interrupted one
    resumes. Every row is computed from each seed's runs apart and reported as the mean, sample sd
    and n over the seeds, with the per-seed values in the JSON; its verdict compares the mean with
    the paper's, and a claim row is reproduced only when it holds for every seed (`row_verdict`).

    ``rows`` keeps only those rows and the runs they read (`Table.only`; written as
    ``OUT/NAME-rows-SLUG.md``, `pogm.tables.rows_slug`), each run as long as in the whole table;
    ``scale`` multiplies every run's length (``scale=2`` checks that a doubled budget does not flip a verdict: the longer runs get
    directories of their own, and the report's name ends in ``-x2``).
    """
    table = get_table(name)
    seeds = table.seeds if seeds is None else check_seeds((seeds,) if isinstance(seeds, int) else seeds, "--seeds")
    budget = table.default_budget * len(seeds) / len(table.seeds) if budget is None else float(budget)
    if not budget > 0:
        raise ValueError(
            f"--budget must be a positive number of CPU-minutes for all the seeds together "
            f"(the default for {name} is {table.default_budget:g} for its {len(table.seeds)} seeds)"
        )
    if jobs not in range(1, MAX_JOBS + 1):
        raise ValueError(f"--jobs {jobs}: a table trains 1 or {MAX_JOBS} runs at a time")
    if not scale > 0:
        raise ValueError(f"--scale must be a positive factor on every run's length, got {scale:g}")
    out = Path(out)
    minutes = {run: length * scale for run, length in table.budgets(budget, len(seeds)).items()}
    if rows:
        table = table.only(rows)
    if scale != 1:
        table = dataclasses.replace(table, name=f"{table.name}-x{scale:g}")
    budget = sum(minutes[spec.name] for spec in table.runs) * len(seeds)
    runs_dir = out / "runs" / name  # the whole table's: a selection reuses its runs
    work = [
        _Job(name, spec, runs_dir / f"{spec.name}-{minutes[spec.name]:.4g}min-seed{seed}", minutes[spec.name], seed)
        for seed in seeds
        for spec in table.runs
    ]
    print(
        f"[{table.name}] {len(table.runs)} runs × {_seeds(len(seeds))} ({', '.join(map(str, seeds))}), "
        f"{budget:g} CPU-minutes of training in all, {jobs} at a time",
        flush=True,
    )
    records = run_in_pool(_run_job, work, jobs, echo=False)
    runs: dict[int, dict[str, dict]] = {seed: {} for seed in seeds}
    for job, record in zip(work, records):
        runs[job.seed][job.spec.name] = record
    report = {
        "table": table.name,
        "description": table.description,
        "paper": table.paper,
        "budget_cpu_minutes": budget,
        "budget_cpu_minutes_per_seed": budget / len(seeds),
        "budget_covers": "all seeds: each run of each seed trains for budget x share / number of seeds",
        "jobs": jobs,
        "seeds": list(seeds),
        "date": time.strftime("%Y-%m-%d"),
        "machine": machine(),
        "verdict_rule": f"{VERDICT_RULE}; {CLAIM_RULE}",
        "rows": [_row_result(row, runs) for row in table.rows],
        "runs": records,
        "notes": table.notes,
    }
    write_report(out / f"{table.name}.json", report, _markdown(table, report))
    return report
