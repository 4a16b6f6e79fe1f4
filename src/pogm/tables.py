"""Paper tables as data: what a table trains, what its rows measure, and the paper's numbers.

A `Table` names the training runs behind it (`RunSpec`: model, data, settings, share of the
budget, and the evaluation that reads numbers off the finished run) and its rows (`Row`: what it
measures, the paper's value and ±, the direction, and how ours comes from the runs' numbers:
`Metric`, `Mean` or `Claim`). Each model family defines its tables beside its models
(``pogm.models.<family>.paper_table``); `pogm.reproduce` registers them, trains, evaluates and
gives each row its verdict.

A table is run once per seed (`Table.seeds`, by default 0, 1 and 2): every seed trains all of its
runs, a row's value is computed from each seed's runs alone, and the row reports their mean, sample
sd and n (`Row.summary`). The table's budget is the training CPU time of all its seeds together
(`Table.budgets`); ``default_budget`` is the one for its default ``seeds``.

The classes are frozen dataclasses with no dependency on the rest of pogm: a table names its
evaluation by a string that `pogm.reproduce.evaluations` resolves.
"""

from __future__ import annotations

import hashlib
import math
import re
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any


# ----------------------------------------------------------------------------- how ours is computed
@dataclass(frozen=True)
class Metric:
    """One number of one run's evaluation."""

    run: str
    key: str

    @property
    def runs(self) -> tuple[str, ...]:
        return (self.run,)

    def __call__(self, numbers: Mapping[str, Mapping[str, Any]]) -> float:
        return float(numbers[self.run][self.key])

    def detail(self, numbers: Mapping[str, Mapping[str, Any]]) -> str:
        return ""

    def describe(self) -> str:
        return f"{self.key} of run {self.run}"


@dataclass(frozen=True)
class Mean:
    """The mean of one number over several runs (choices of data, seeds)."""

    over: tuple[str, ...]
    key: str

    @property
    def runs(self) -> tuple[str, ...]:
        return self.over

    def __call__(self, numbers: Mapping[str, Mapping[str, Any]]) -> float:
        return statistics.fmean(float(numbers[run][self.key]) for run in self.over)

    def detail(self, numbers: Mapping[str, Mapping[str, Any]]) -> str:
        values = [float(numbers[run][self.key]) for run in self.over]
        spread = f" ± {statistics.stdev(values):.2g}" if len(values) > 1 else ""
        return f"{statistics.fmean(values):.4g}{spread} over {len(values)} runs"

    def describe(self) -> str:
        return f"mean {self.key} over runs {', '.join(self.over)}"


@dataclass(frozen=True)
class Claim:
    """1 if ``better`` is better than ``worse`` (``direction``: which is better), else 0: a
    paper's claim about the order of two numbers, checked on our runs.

    Over several seeds the claim is checked on each seed's runs apart; the row reports the
    fraction of seeds for which it holds (the mean of the 0s and 1s), and it counts as reproduced
    only when it holds for every seed (`pogm.reproduce.row_verdict`)."""

    better: Metric | Mean
    worse: Metric | Mean
    direction: str = "lower"

    @property
    def runs(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(self.better.runs + self.worse.runs))

    def __call__(self, numbers: Mapping[str, Mapping[str, Any]]) -> float:
        b, w = self.better(numbers), self.worse(numbers)
        return 1.0 if (b < w if self.direction == "lower" else b > w) else 0.0

    def detail(self, numbers: Mapping[str, Mapping[str, Any]]) -> str:
        sign = ("<" if self.direction == "lower" else ">") if self(numbers) else ("≥" if self.direction == "lower" else "≤")
        both = [part.detail(numbers) or f"{part(numbers):.4g}" for part in (self.better, self.worse)]
        return f"{both[0]} {sign} {both[1]}"

    def describe(self) -> str:
        return f"1 if {self.better.describe()} is {self.direction} than {self.worse.describe()}, else 0"


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True)
class RunSpec:
    """One training run behind a table: what to train, its share of the table's CPU budget, and
    the evaluation that reads its numbers: ``evaluate`` names one of
    `pogm.reproduce.evaluations.EVALUATIONS` (or is a module-level function ``f(run_dir) -> dict``,
    so that it can run in a worker process), called with the keyword arguments
    ``evaluate_options``. ``fresh_options(budget_seconds)`` gives model options computed only when
    the run starts. ``starts`` > 1 trains that many initialisations for ``start_fraction`` of the
    run's budget each and continues the one of lowest validation error, all within the run's
    budget (`pogm.reproduce.runs.train_best_start`)."""

    name: str
    model: str | None = None
    source: str = "mnist"
    labels: int | None = None
    unlabelled: int | None = None
    recipe: str | None = None
    model_options: Mapping[str, Any] = field(default_factory=dict)
    train_options: Mapping[str, Any] = field(default_factory=dict)
    data_options: Mapping[str, Any] = field(default_factory=dict)
    share: float = 1.0
    evaluate: str | Callable[[Path], dict] = "selected_errors"
    evaluate_options: Mapping[str, Any] = field(default_factory=dict)
    fresh_options: Callable[[float], Mapping[str, Any]] | None = None
    starts: int = 1
    start_fraction: float = 0.0


UNITS: dict[str, Callable[[float], str]] = {
    "%": lambda v: f"{v:.2%}",
    "errors/10,000": lambda v: f"{round(v * 10000)}",
    "nats": lambda v: f"{v:.2f}",
    "claim": lambda v: "holds" if v >= 0.5 else "fails",
}
ERROR_UNITS = ("%", "errors/10,000")  # stored as fractions


@dataclass(frozen=True)
class Row:
    """One row of a table: ``ours`` computes our value from the runs' numbers. Errors are
    fractions whatever the ``unit`` shows (``%``, ``errors/10,000``); a ``claim`` row is 1 (the
    paper's claim holds) or 0, and ``paper_detail`` gives the paper's numbers behind it."""

    name: str
    measures: str
    paper: float
    ours: Metric | Mean | Claim
    direction: str = "lower"
    paper_pm: float | None = None
    unit: str = "%"
    paper_detail: str = ""

    def __post_init__(self) -> None:
        if self.unit not in UNITS:
            raise ValueError(f"row {self.name!r}: unit must be one of {list(UNITS)}, got {self.unit!r}")
        if self.direction not in ("lower", "higher"):
            raise ValueError(f"row {self.name!r}: direction must be 'lower' or 'higher', got {self.direction!r}")

    def show(self, value: float) -> str:
        return UNITS[self.unit](value)

    def show_paper(self) -> str:
        text = self.show(self.paper) + (f" ± {self.show(self.paper_pm)}" if self.paper_pm is not None else "")
        return f"{text} ({self.paper_detail})" if self.paper_detail else text

    @staticmethod
    def summary(values: Sequence[float]) -> dict[str, Any]:
        """``{"mean", "sd", "n"}`` of the per-seed ``values``: NaN (a seed without a number) is left
        out of all three; ``sd`` is the sample standard deviation, None below two values; ``mean``
        is NaN without any value."""
        kept = [float(v) for v in values if not math.isnan(v)]
        return {
            "mean": statistics.fmean(kept) if kept else math.nan,
            "sd": statistics.stdev(kept) if len(kept) > 1 else None,
            "n": len(kept),
        }

    def show_summary(self, summary: Mapping[str, Any]) -> str:
        """Ours over the seeds: ``1.23% ± 0.10% (n=3)``; a claim row: ``holds for 2 of 3 seeds``."""
        n = summary["n"]
        if not n:
            return "-"
        if self.unit == "claim":
            return f"holds for {round(summary['mean'] * n)} of {n} seed{'s' if n != 1 else ''}"
        spread = f" ± {self.show(summary['sd'])}" if summary["sd"] is not None else ""
        return f"{self.show(summary['mean'])}{spread} (n={n})"


@dataclass(frozen=True)
class Table:
    """A paper table: its runs, its rows, the CPU-minutes it trains for by default and the seeds
    it trains each run with by default. ``default_budget`` covers the whole table, every seed
    included: each run of each seed trains for ``default_budget × share / len(seeds)`` (`budgets`)."""

    name: str
    description: str  # one line, for `pogm reproduce --list`
    paper: str  # where the paper's numbers come from
    runs: tuple[RunSpec, ...]
    rows: tuple[Row, ...]
    default_budget: float  # CPU-minutes of training for the whole table, all seeds together
    notes: str = ""  # caveats printed under the table
    seeds: tuple[int, ...] = (0, 1, 2)  # every run trains once per seed; rows report mean ± sd over them

    def __post_init__(self) -> None:
        names = [run.name for run in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: run names must be unique")
        check_seeds(self.seeds, f"table {self.name}: seeds")
        for row in self.rows:
            missing = sorted(set(row.ours.runs) - set(names))
            if missing:
                raise ValueError(f"table {self.name}, row {row.name!r}: reads runs {missing} that the table does not train")

    def budgets(self, budget: float, seeds: int | None = None) -> dict[str, float]:
        """CPU-minutes of each run for one seed: ``budget`` (the whole table's, all seeds together)
        split by the runs' shares and then evenly over ``seeds`` seeds (default: ``len(self.seeds)``),
        so that the runs of all the seeds add up to ``budget``."""
        seeds = len(self.seeds) if seeds is None else seeds
        if seeds < 1:
            raise ValueError(f"table {self.name}: a budget is split over at least one seed, got {seeds}")
        total = sum(run.share for run in self.runs)
        return {run.name: budget * run.share / total / seeds for run in self.runs}


    def only(self, row_names: Sequence[str]) -> Table:
        """This table cut down to the rows ``row_names`` and the runs they read (same run names, so
        their run directories are shared with the whole table's); named ``NAME-rows-SLUG``
        (`rows_slug`), so that reports of different selections do not overwrite each other."""
        unknown = sorted(set(row_names) - {row.name for row in self.rows})
        if unknown:
            known = "; ".join(repr(row.name) for row in self.rows)
            raise ValueError(f"table {self.name} has no row {unknown[0]!r}; its rows are: {known}")
        rows = tuple(row for row in self.rows if row.name in row_names)
        used = {name for row in rows for name in row.ours.runs}
        name = f"{self.name}-rows-{rows_slug([row.name for row in rows])}"
        return replace(self, name=name, rows=rows, runs=tuple(run for run in self.runs if run.name in used))


def rows_slug(row_names: Sequence[str], limit: int = 60) -> str:
    """A file-name part naming a selection of rows: each name in lower case with every run of other
    characters as one hyphen, the names joined by underscores ("H-VAE(500, 19500) vs F-VAE(5000),
    depth" -> "h-vae-500-19500-vs-f-vae-5000-depth"); beyond ``limit`` characters it is cut and ends
    in 8 hex digits of the names' SHA-1, so that two selections never share a name."""
    slug = "_".join(re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") for name in row_names)
    if len(slug) <= limit:
        return slug
    digest = hashlib.sha1("\n".join(row_names).encode()).hexdigest()[:8]
    return f"{slug[: limit - 9].rstrip('-_')}-{digest}"


def check_seeds(seeds: Sequence[int], what: str = "seeds") -> tuple[int, ...]:
    """``seeds`` as a tuple of ints: at least one, each once (a ValueError that says ``what`` if not)."""
    seeds = tuple(seeds)
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ValueError(f"{what}: give one or more integer seeds, got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"{what}: each seed once, got {' '.join(map(str, seeds))}")
    return seeds
