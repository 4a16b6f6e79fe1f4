"""Reproduce the papers' tables: ``pogm reproduce TABLE [--budget CPU_MINUTES]``.

    pogm reproduce --list                            # the tables, each with a line
    pogm reproduce ssl-mnist100 --budget 120         # trains, evaluates, writes reproduce/ssl-mnist100.{md,json}
    pogm reproduce ssl-mnist100 --seeds 0 1 2 3 4    # five seeds instead of the table's three
    pogm reproduce factvae-mocap --out results/      # runs live in results/runs/factvae-mocap/

A table (`Table`) names the training runs behind it and its rows, and trains every run once per
seed (``--seeds``, default the table's `Table.seeds`: 0 1 2; ``--seed S`` is ``--seeds S``). The
budget is the CPU time of training for the whole table, all seeds together: each run of each seed
trains for ``budget × share / len(seeds)``. Without ``--budget`` it is the table's default budget
(given for its default seeds) scaled to the number of seeds, so each run keeps its default length.
The runs train at most two at a time (``--jobs``), one thread each. A run directory
``OUT/runs/TABLE/RUN-<minutes>min-seed<S>`` that finished its budget is reused as it is (so adding
a seed at the same run length trains only that seed's runs), one that was interrupted resumes from
its last checkpoint; its numbers (e.g. an importance-weighted log-likelihood) are cached beside it
in ``reproduce.json`` with the machine that trained it. ``OUT/TABLE.md`` and ``OUT/TABLE.json``
give for every row the paper's number, ours as mean ± sample sd and n over the seeds (each seed's
value computed from that seed's runs alone; the JSON lists them), the run length (steps, epochs,
CPU-minutes), the machine (CPU model, cores, torch version) and a verdict.

The verdict (`verdict`, `row_verdict`), per row, of the mean over the seeds:

* **reproduced** when ours is at least as good as the paper's, or within the paper's reported
  ± (without a ±, within 5% relative; log-likelihoods in nats: within 1 nat);
* **close** when ours is within 25% relative of the paper's (for error rates, within
  max(25% relative, 0.5 percentage points); log-likelihoods: within 5 nats);
* **not reproduced** otherwise.

Rows that check a paper's claim about an ordering ("H-VAE beats F-VAE") count 1 for a seed when it
holds and 0 when not; the row reports the fraction of seeds for which it holds and is reproduced
only when it holds for every seed, else not reproduced.

Each model family defines its tables, the papers' numbers and the training settings behind them
beside its models (``pogm.models.<family>.paper_table``, as data: `pogm.tables`);
`pogm.reproduce.paper_tables` collects and registers them. This package holds what runs them: the
evaluations of finished runs (`pogm.reproduce.evaluations`, named by the tables), the verdict, the
registry and the budgeted-run helpers (`machine`, `train_for_budget`, `train_best_start`,
`finished`) that the benchmark scripts share.
"""

from pogm.reproduce.command import add_reproduce_parser, cmd_reproduce
from pogm.reproduce.runs import (
    finished,
    machine,
    run_in_pool,
    selected_record,
    train_best_start,
    train_for_budget,
    write_report,
)
from pogm.reproduce.evaluations import EVALUATIONS
from pogm.reproduce.paper_tables import PAPER_TABLES
from pogm.reproduce.table import (
    TABLES,
    VERDICT_RULE,
    get_table,
    list_tables,
    register_table,
    reproduce,
    row_verdict,
    verdict,
)
from pogm.tables import Claim, Mean, Metric, Row, RunSpec, Table

__all__ = [
    "EVALUATIONS",
    "PAPER_TABLES",
    "TABLES",
    "VERDICT_RULE",
    "Claim",
    "Mean",
    "Metric",
    "Row",
    "RunSpec",
    "Table",
    "add_reproduce_parser",
    "cmd_reproduce",
    "finished",
    "get_table",
    "list_tables",
    "machine",
    "register_table",
    "reproduce",
    "row_verdict",
    "run_in_pool",
    "selected_record",
    "train_best_start",
    "train_for_budget",
    "verdict",
    "write_report",
]
