"""``pogm reproduce``: the command line of `pogm.reproduce` (wired into `pogm.cli`)."""

from __future__ import annotations

import argparse
import signal
import sys

from pogm.reproduce.runs import PoolTerminated
from pogm.reproduce.table import MAX_JOBS, get_table, list_tables, reproduce
from pogm.train.signals import TrainingInterrupted


def add_reproduce_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``pogm reproduce`` to the ``subparsers`` of the ``pogm`` parser."""
    p = subparsers.add_parser(
        "reproduce",
        help="run the recipes behind a paper table; writes OUT/TABLE.md and OUT/TABLE.json",
        description="Train (or reuse) the runs behind a paper table, once per seed, for a CPU-time budget and write "
        "the table with the paper's numbers, ours (mean ± sd over the seeds, and n), the run lengths, the machine and "
        "a verdict per row.",
    )
    p.add_argument("table", nargs="?", default=None, help=f"the table to reproduce: {', '.join(list_tables())} (--list describes them)")
    p.add_argument("--list", action="store_true", help="list the tables with a one-line description each")
    p.add_argument(
        "--budget", type=float, default=None, metavar="CPU_MINUTES",
        help="CPU-minutes of training for the whole table, all seeds together: each run of each seed trains for "
        "BUDGET x its share / the number of seeds (default: the table's default budget, given for its default seeds, "
        "scaled to the number of --seeds, so that each run keeps its default length)",
    )
    p.add_argument("--jobs", type=int, default=2, choices=range(1, MAX_JOBS + 1), help="runs trained at a time, one thread each (default 2)")
    p.add_argument("--out", default="reproduce", help="output directory: OUT/TABLE.md, OUT/TABLE.json and the runs in OUT/runs/TABLE/ (default: ./reproduce)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="S",
        help="training seeds: every run trains once per seed, each row is computed per seed and reported as mean ± sd "
        "and n; a claim row is reproduced only if it holds for every seed (default: the table's, 0 1 2)",
    )
    seeds.add_argument("--seed", type=int, default=None, metavar="S", help="one seed: the same as --seeds S")
    p.add_argument(
        "--rows", nargs="+", default=None, metavar="ROW",
        help="only these rows (their names as the table prints them) and the runs they read, as long as in the whole "
        "table; writes OUT/TABLE-rows-SLUG.md (SLUG names the rows)",
    )
    p.add_argument(
        "--scale", type=float, default=1.0, metavar="F",
        help="train every run F times its length (e.g. 2: does a doubled budget flip a verdict?); the report's name ends in -xF",
    )
    p.set_defaults(func=cmd_reproduce)
    return p


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``pogm reproduce --list`` or ``pogm reproduce TABLE [--budget M] [--jobs J] [--seeds S ...] [--out DIR]``."""
    if args.list:
        names = list_tables()
        width = max(len(name) for name in names)
        for name in names:
            table = get_table(name)
            print(f"{name:{width}s}  {table.default_budget:4g} CPU-min, {len(table.seeds)} seeds  {table.description}")
        print("\nuse: pogm reproduce TABLE [--budget CPU_MINUTES] [--seeds S ...] [--jobs 1|2] [--out DIR] [--rows ROW ...] [--scale F]")
        print("the budget covers the whole table, all seeds together")
        return 0
    if args.table is None:
        raise ValueError(f"name a table: {', '.join(list_tables())} (`pogm reproduce --list` describes them)")
    seeds = [args.seed] if args.seed is not None else args.seeds
    try:
        reproduce(args.table, out=args.out, budget=args.budget, jobs=args.jobs, seeds=seeds, rows=args.rows, scale=args.scale)
    except (TrainingInterrupted, PoolTerminated, KeyboardInterrupt) as stop:
        if isinstance(stop, TrainingInterrupted):
            signum, where = stop.signum, f" at step {stop.step} of {stop.run_dir} (checkpoint saved)"
        else:
            signum, where = (signal.SIGTERM if isinstance(stop, PoolTerminated) else signal.SIGINT), ""
        print(f"pogm reproduce: stopped by {signal.Signals(signum).name}{where}; the same command continues the table", file=sys.stderr)
        return 128 + int(signum)
    return 0
