"""Budgeted training runs and their records, shared by `pogm reproduce` and the benchmark scripts:
the machine a run trained on, training for a CPU-time budget (a finished run is left alone, an
interrupted one resumes), running jobs in a small process pool, and writing a result as JSON plus
a Markdown table.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(threads_per_run: int = 1, **extra: Any) -> dict[str, Any]:
    """The machine a result comes from: CPU model, cores, torch and Python versions, platform."""
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "threads_per_run": threads_per_run,
        **extra,
    }


def describe_machine(record: Mapping[str, Any]) -> str:
    """One line: ``AMD EPYC, 2 cores, torch 2.13.0``."""
    return f"{record.get('cpu', '?')}, {record.get('cores', '?')} cores, torch {record.get('torch', '?')}"


def finished(run_dir: str | Path, budget_seconds: float) -> bool:
    """Whether ``run_dir`` holds a run that trained for its CPU budget (and checkpointed)."""
    from pogm.checkpoint import read_metrics

    run_dir = Path(run_dir)
    if not (run_dir / "state.pt").is_file():
        return False
    records = read_metrics(run_dir)
    return bool(records) and records[-1]["train_cpu_seconds"] >= budget_seconds - 0.01  # the record is rounded to ms


def _same(stored: Any, asked: Any) -> bool:
    """Whether a config value read back from YAML is the value asked for (tuples are stored as lists)."""
    if isinstance(asked, (tuple, list)) and isinstance(stored, (tuple, list)):
        return len(stored) == len(asked) and all(_same(a, b) for a, b in zip(stored, asked))
    if isinstance(asked, float) or isinstance(stored, float):
        try:
            return float(stored) == float(asked)
        except (TypeError, ValueError):
            return False
    return stored == asked


# Train settings that `train_for_budget` sets itself, whatever a recipe says.
BUDGET_TRAIN_KEYS = ("epochs", "cpu_budget_seconds", "threads", "progress")


def recipe_settings(
    recipe: str | Path,
    model_options: Mapping[str, Any] | None,
    train_options: Mapping[str, Any] | None,
    data_options: Mapping[str, Any] | None,
) -> tuple[str | None, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """``(model name, model, train, data)`` settings that a budgeted run of ``recipe`` with these
    options is trained with: the recipe's sections (less `BUDGET_TRAIN_KEYS`), the options on top."""
    from pogm.recipes import load_recipe

    content = load_recipe(recipe)
    recipe_train = {k: v for k, v in (content.get("train") or {}).items() if k not in BUDGET_TRAIN_KEYS}
    return (
        content.get("model_name"),
        {**(content.get("model") or {}), **(model_options or {})},
        {**recipe_train, **(train_options or {})},
        {**(content.get("data") or {}), **(data_options or {})},
    )


def check_run_settings(
    out: str | Path,
    model: str | None,
    seed: int,
    model_options: Mapping[str, Any] | None,
    train_options: Mapping[str, Any] | None,
    data_options: Mapping[str, Any] | None = None,
    recipe: str | Path | None = None,
) -> None:
    """Raise if the run in ``out`` was trained with other settings than those asked for now, so that
    a table whose settings changed, or whose ``recipe`` changed, never reuses (or resumes) a run of
    the old ones.

    The settings asked for and every value of the recipe are compared (options filled in from the
    data are not). Raises:
        ValueError: names the run directory, each differing setting (stored and asked) and the fix.
    """
    import yaml

    path = Path(out) / "config.yaml"
    if not path.is_file():  # nothing recorded to compare with
        return
    if recipe is not None:
        recipe_model, model_options, train_options, data_options = recipe_settings(recipe, model_options, train_options, data_options)
        model = model or recipe_model
    config = yaml.safe_load(path.read_text())
    differ = []
    if model is not None and config.get("model") != model:
        differ.append(f"model {config.get('model')!r} (asked {model!r})")
    if config.get("seed") != seed:
        differ.append(f"seed {config.get('seed')!r} (asked {seed!r})")
    sections = {"model_config": config.get("model_config"), "train": config.get("train"), "data.options": (config.get("data") or {}).get("options")}
    for section, asked in (("model_config", model_options or {}), ("train", train_options or {}), ("data.options", data_options or {})):
        stored = sections[section] or {}
        for key, value in asked.items():
            if key not in stored or not _same(stored[key], value):
                differ.append(f"{section}.{key} {stored.get(key, 'unset')!r} (asked {value!r})")
    if differ:
        raise ValueError(
            f"the run in {out} was trained with other settings: {'; '.join(differ)}. "
            "Delete that directory to train it again with the new settings, or write the runs elsewhere (--out)."
        )


def train_for_budget(
    model: str | None,
    out: str | Path,
    budget_minutes: float,
    seed: int = 0,
    data_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    labels: int | None = None,
    *,
    source: str = "mnist",
    unlabelled: int | None = None,
    recipe: str | None = None,
    fresh_options: Callable[[float], Mapping[str, Any]] | None = None,
    threads: int = 1,
) -> str:
    """Train ``model`` on ``source`` into ``out`` for ``budget_minutes`` of training CPU time on
    ``threads`` threads; returns ``"reused"``, ``"resumed"`` or ``"trained"``.

    A finished run is left alone; an interrupted one continues from its last checkpoint under its
    own budget; one interrupted before its first checkpoint starts again. ``recipe`` is a packaged
    recipe (or YAML file) whose settings the options override; ``fresh_options(budget_seconds)``
    gives model options that are computed only when a run starts (M1+M2's M1 steps).
    """
    import torch

    from pogm.train import train

    out = Path(out)
    torch.set_num_threads(threads)
    budget_seconds = budget_minutes * 60
    if (out / "state.pt").is_file():
        check_run_settings(out, model, seed, model_options, train_options, data_options, recipe)
    if finished(out, budget_seconds):
        return "reused"
    if (out / "state.pt").is_file():
        train(out=out, resume=True, progress=False)  # no epochs: the run keeps its own budget
        return "resumed"
    if (out / "config.yaml").is_file():
        shutil.rmtree(out)  # stopped before its first checkpoint: nothing to resume
    options = dict(model_options or {})
    if fresh_options is not None:
        options.update(fresh_options(budget_seconds))
    overrides = {
        "model": options,
        "train": {**(train_options or {}), "cpu_budget_seconds": budget_seconds, "threads": threads, "progress": False},
        "data": dict(data_options or {}),
    }
    train(model, data=source, labels=labels, unlabelled=unlabelled, epochs=100000, out=out, seed=seed, config_file=recipe, overrides=overrides, progress=False)
    return "trained"


def selected_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation a classifier run is judged by: the lowest validation error (the first such,
    as the Trainer keeps it in ``best.safetensors``)."""
    return min(records, key=lambda r: (r["valid_error"], r["step"]))


def run_in_pool(work: Callable[[Any], Any], jobs: Iterable[Any], workers: int, echo: bool = True) -> list[Any]:
    """``work`` on each job in ``workers`` processes (in this process when ``workers`` is 1 or
    there is one job), in order; ``echo`` prints each result as it arrives."""
    jobs = list(jobs)
    results = []

    def collect(result: Any) -> None:
        if echo:
            print(result, flush=True)
        results.append(result)

    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            collect(work(job))
        return results
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for result in pool.map(work, jobs):
            collect(result)
    return results


def write_report(out: str | Path, report: dict, lines: list[str], echo: bool = True) -> None:
    """``out`` (JSON) and the same name with ``.md`` (the table ``lines``), printed too."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    if echo:
        print("\n".join(lines))
    print(f"wrote {out} and {out.with_suffix('.md')}")
