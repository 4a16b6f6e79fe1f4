"""Paper tables as data: what a table trains, what its rows measure, and the paper's numbers.

A `Table` names the training runs behind it (`RunSpec`: model, data, settings, share of the
budget, and the evaluation that reads numbers off the finished run) and its rows (`Row`: what it
measures, the paper's value and ±, the direction, and how ours comes from the runs' numbers:
`Metric`, `Mean` or `Claim`). Each model family defines its tables beside its models
(``pogm.models.<family>.paper_table``); `pogm.reproduce` registers them, trains, evaluates and
gives each row its verdict.

The classes are frozen dataclasses with no dependency on the rest of pogm: a table names its
evaluation by a string that `pogm.reproduce.evaluations` resolves.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        return f"{statistics.fmean(values):.1f}{spread} (n={len(values)})"

    def describe(self) -> str:
        return f"mean {self.key} over runs {', '.join(self.over)}"


@dataclass(frozen=True)
class Claim:
    """1 if ``better`` is better than ``worse`` (``direction``: which is better), else 0: a
    paper's claim about the order of two numbers, checked on our runs."""

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
        both = [part.detail(numbers) or f"{part(numbers):.1f}" for part in (self.better, self.worse)]
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
    the run starts."""

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


@dataclass(frozen=True)
class Table:
    """A paper table: its runs, its rows, and the CPU-minutes it trains for by default."""

    name: str
    description: str  # one line, for `pogm reproduce --list`
    paper: str  # where the paper's numbers come from
    runs: tuple[RunSpec, ...]
    rows: tuple[Row, ...]
    default_budget: float  # CPU-minutes of training for the whole table
    notes: str = ""  # caveats printed under the table

    def __post_init__(self) -> None:
        names = [run.name for run in self.runs]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name}: run names must be unique")
        for row in self.rows:
            missing = sorted(set(row.ours.runs) - set(names))
            if missing:
                raise ValueError(f"table {self.name}, row {row.name!r}: reads runs {missing} that the table does not train")

    def budgets(self, budget: float) -> dict[str, float]:
        """CPU-minutes of each run: ``budget`` split by the runs' shares."""
        total = sum(run.share for run in self.runs)
        return {run.name: budget * run.share / total for run in self.runs}
