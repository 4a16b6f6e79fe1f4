"""What the benchmark scripts share: budgeted training runs that resume, the machine record, a
process pool, and writing a result as JSON plus a Markdown table."""

from __future__ import annotations

import argparse
import json
import os
import platform
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def machine(threads_per_run: int = 1, **extra: Any) -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor(), "cpu_count": os.cpu_count(), "threads_per_run": threads_per_run, **extra}


def finished(run_dir: Path, budget_seconds: float) -> bool:
    """Whether ``run_dir`` holds a run that trained for its CPU budget."""
    from pogm.train.checkpoint import read_metrics

    if not (run_dir / "metrics.jsonl").is_file():
        return False
    records = read_metrics(run_dir)
    return bool(records) and records[-1]["train_cpu_seconds"] >= budget_seconds - 5


def train_for_budget(model: str, out: Path, budget_minutes: float, seed: int, data: dict, model_options: dict, train_options: dict, labels: int | None = None) -> None:
    """Train ``model`` on MNIST in ``out`` for ``budget_minutes`` of CPU time on one thread; a
    finished run is left alone, an interrupted one continues under its own budget."""
    import torch

    import pogm

    torch.set_num_threads(1)
    if finished(out, budget_minutes * 60):
        return
    overrides = {"model": dict(model_options), "train": {**train_options, "cpu_budget_seconds": budget_minutes * 60, "threads": 1, "progress": False}, "data": dict(data)}
    resume = (out / "state.pt").is_file()  # epochs=None keeps the run's own budget
    pogm.train(model, data="mnist", labels=labels, epochs=None if resume else 100000, out=out, seed=seed, overrides=overrides, progress=False, resume=resume)


def run_in_pool(work: Callable[[Any], Any], jobs: Iterable[Any], workers: int) -> list[Any]:
    """``work`` on each job in ``workers`` processes, printing each result as it arrives."""
    results = []
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(work, list(jobs)):
            print(result, flush=True)
            results.append(result)
    return results


def write_report(out: str | Path, report: dict, lines: list[str]) -> None:
    """``out`` (JSON) and the same name with ``.md`` (the table ``lines``), printed too."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def stage_parser(description: str, names: list[str], default_budget: float, budget_help: str, runs: Path, out: Path) -> argparse.ArgumentParser:
    """The command line of a train / evaluate / summarise benchmark; the script adds its own options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("command", choices=["train", "evaluate", "summarise"])
    parser.add_argument("--names", nargs="+", default=list(names), choices=list(names))
    parser.add_argument("--budget-minutes", type=float, default=default_budget, help=budget_help)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", default=str(runs))
    parser.add_argument("--out", default=str(out))
    return parser
