"""What the benchmark scripts share: the command line of a train / evaluate / summarise benchmark.

Budgeted training runs that resume, the machine record, the process pool and writing a result as
JSON plus a Markdown table live in the package (`pogm.reproduce.runs`, also behind
`pogm reproduce`); they are re-exported here for the scripts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pogm.reproduce.runs import (
    finished,
    machine,
    run_in_pool,
    train_for_budget,
    write_report,
)

__all__ = ["finished", "machine", "run_in_pool", "stage_parser", "train_for_budget", "write_report"]


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
