"""``pogm reproduce``: the command line of `pogm.reproduce` (wired into `pogm.cli`)."""

from __future__ import annotations

import argparse

from pogm.reproduce.table import MAX_JOBS, get_table, list_tables, reproduce


def add_reproduce_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``pogm reproduce`` to the ``subparsers`` of the ``pogm`` parser."""
    p = subparsers.add_parser(
        "reproduce",
        help="run the recipes behind a paper table; writes OUT/TABLE.md and OUT/TABLE.json",
        description="Train (or reuse) the runs behind a paper table for a CPU-time budget and write the table with "
        "the paper's numbers, ours, the run lengths, the machine and a verdict per row.",
    )
    p.add_argument("table", nargs="?", default=None, help=f"the table to reproduce: {', '.join(list_tables())} (--list describes them)")
    p.add_argument("--list", action="store_true", help="list the tables with a one-line description each")
    p.add_argument("--budget", type=float, default=None, metavar="CPU_MINUTES", help="CPU-minutes of training for the whole table, split across its runs (default: the table's)")
    p.add_argument("--jobs", type=int, default=2, choices=range(1, MAX_JOBS + 1), help="runs trained at a time, one thread each (default 2)")
    p.add_argument("--out", default="reproduce", help="output directory: OUT/TABLE.md, OUT/TABLE.json and the runs in OUT/runs/TABLE/ (default: ./reproduce)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_reproduce)
    return p


def cmd_reproduce(args: argparse.Namespace) -> int:
    """``pogm reproduce --list`` or ``pogm reproduce TABLE [--budget M] [--jobs J] [--out DIR]``."""
    if args.list:
        names = list_tables()
        width = max(len(name) for name in names)
        for name in names:
            table = get_table(name)
            print(f"{name:{width}s}  {table.default_budget:4g} CPU-min  {table.description}")
        print("\nuse: pogm reproduce TABLE [--budget CPU_MINUTES] [--jobs 1|2] [--out DIR]")
        return 0
    if args.table is None:
        raise ValueError(f"name a table: {', '.join(list_tables())} (`pogm reproduce --list` describes them)")
    reproduce(args.table, out=args.out, budget=args.budget, jobs=args.jobs, seed=args.seed)
    return 0
