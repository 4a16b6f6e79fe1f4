"""Budgeted training runs and their records, shared by `pogm reproduce` and the benchmark scripts:
the machine a run trained on, training for a CPU-time budget (a finished run is left alone, an
interrupted one resumes), running jobs in a small process pool, and writing a result as JSON plus
a Markdown table.
"""

from __future__ import annotations

import json
import math
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
    label_seed: int | None = None,
) -> str:
    """Train ``model`` on ``source`` into ``out`` for ``budget_minutes`` of training CPU time on
    ``threads`` threads; returns ``"reused"``, ``"resumed"`` or ``"trained"``.

    A finished run is left alone; an interrupted one continues from its last checkpoint under its
    own budget; one interrupted before its first checkpoint starts again. ``recipe`` is a packaged
    recipe (or YAML file) whose settings the options override; ``fresh_options(budget_seconds)``
    gives model options that are computed only when a run starts (M1+M2's M1 steps);
    ``label_seed`` draws the labelled examples apart from ``seed`` (`pogm.train`).
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
    train(
        model, data=source, labels=labels, unlabelled=unlabelled, epochs=100000, out=out, seed=seed, label_seed=label_seed,
        config_file=recipe, overrides=overrides, progress=False,
    )
    return "trained"


# ----------------------------------------------------------------------------- several starts
STARTS_RECORD = "starts.json"  # in the chosen run's directory: every start and why it was chosen
START_SEED_STRIDE = 1000  # start k of seed s initialises with seed s + k * 1000 (start 0: seed s itself)


def start_seed(seed: int, k: int) -> int:
    """The seed of the network and batches of start ``k`` of a run of ``seed``; every start draws
    the labelled examples with ``seed`` itself."""
    return seed + k * START_SEED_STRIDE


def starts_dir(out: str | Path) -> Path:
    """Where the starts of the run ``out`` train: ``OUT.starts/start-K``."""
    out = Path(out)
    return out.with_name(out.name + ".starts")


def chosen_budget_minutes(budget_minutes: float, starts: int, start_minutes: float) -> float:
    """The CPU budget of the chosen start: the run's budget less what the starts it beat used, so
    that all starts together train for ``budget_minutes``."""
    return budget_minutes - (starts - 1) * start_minutes


def check_starts(budget_minutes: float, starts: int, start_minutes: float) -> None:
    """A ValueError unless ``starts`` starts of ``start_minutes`` leave the chosen one more time."""
    if isinstance(starts, bool) or not isinstance(starts, int) or starts < 1:
        raise ValueError(f"starts must be a whole number >= 1, got {starts!r}")
    if starts > 1 and not 0 < start_minutes * starts < budget_minutes:
        raise ValueError(
            f"{starts} starts of {start_minutes:g} CPU-min do not fit a budget of {budget_minutes:g} CPU-min; "
            "shorten the starts or raise the budget"
        )


def read_starts(out: str | Path) -> dict[str, Any] | None:
    """The `STARTS_RECORD` of ``out``, or None for a run trained from one start."""
    path = Path(out) / STARTS_RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def train_best_start(
    model: str | None,
    out: str | Path,
    budget_minutes: float,
    seed: int = 0,
    data_options: Mapping[str, Any] | None = None,
    model_options: Mapping[str, Any] | None = None,
    train_options: Mapping[str, Any] | None = None,
    labels: int | None = None,
    *,
    starts: int = 1,
    start_minutes: float = 0.0,
    **options: Any,
) -> str:
    """`train_for_budget` from the best of ``starts`` initialisations, in the same total budget.

    Adversarially trained classifiers sometimes settle, in their first thousand steps, on a
    mistake that the rest of the run keeps (a part of one class inside another's cluster): which
    runs do depends on the pairing of initial weights and labelled examples, not on either alone.
    Each start k trains for ``start_minutes`` on the run's labels (drawn with ``seed``) from its
    own initialisation and batch order (`start_seed`) in ``OUT.starts/start-k``; the start with the
    lowest validation error (`selected_record`, as every run is selected) is copied to ``out`` and
    continued to `chosen_budget_minutes`, so that all starts together train for
    ``budget_minutes``. ``out/starts.json`` records every start's validation error and the choice.
    With ``starts=1`` this is `train_for_budget`. Every stage resumes after a crash; returns
    ``"reused"``, ``"resumed"`` or ``"trained"`` for the chosen run.
    """
    from pogm.train import train

    if starts == 1:
        return train_for_budget(model, out, budget_minutes, seed, data_options, model_options, train_options, labels, **options)
    check_starts(budget_minutes, starts, start_minutes)
    out = Path(out)
    record = read_starts(out)
    if record is None and (out / "config.yaml").is_file():
        raise ValueError(
            f"the run in {out} was trained from one start, not chosen from {starts}; "
            "delete that directory to train it again with the new settings, or write the runs elsewhere (--out)."
        )
    if record is None:
        record = _choose_start(out, seed, starts, start_minutes, lambda k, start_dir: train_for_budget(
            model, start_dir, start_minutes, start_seed(seed, k), data_options, model_options, train_options, labels, label_seed=seed, **options
        ))
        state = "trained"
    elif (record["starts"], record["label_seed"]) != (starts, seed) or not math.isclose(record["start_minutes"], start_minutes, rel_tol=1e-9):
        raise ValueError(
            f"the run in {out} was chosen from {record['starts']} starts of {record['start_minutes']:g} CPU-min for seed {record['label_seed']} "
            f"(asked: {starts} of {start_minutes:g} for seed {seed}). Delete {out} and {starts_dir(out)} to choose again, or write the runs elsewhere (--out)."
        )
    else:
        state = "resumed"
    budget_seconds = chosen_budget_minutes(budget_minutes, starts, start_minutes) * 60
    if finished(out, budget_seconds):
        return "reused"
    train(out=out, resume=True, config={"train": {"cpu_budget_seconds": budget_seconds}}, progress=False)
    return state


def _choose_start(out: Path, seed: int, starts: int, start_minutes: float, train_start: Callable[[int, Path], Any]) -> dict[str, Any]:
    """Train every start (``train_start(k, directory)``), copy the one of lowest validation error to
    ``out`` with its `STARTS_RECORD`, and return the record. The copy appears at ``out`` in one
    rename, so a crash leaves either no chosen run or a whole one."""
    from pogm.checkpoint import read_metrics

    candidates = []
    for k in range(starts):
        start_dir = starts_dir(out) / f"start-{k}"
        train_start(k, start_dir)
        records = read_metrics(start_dir)
        best = selected_record(records)
        candidates.append({
            "start": k, "seed": start_seed(seed, k), "dir": str(start_dir), "valid_error": best["valid_error"], "step": best["step"],
            "train_cpu_seconds": records[-1]["train_cpu_seconds"],
        })
    chosen = min(candidates, key=lambda c: (c["valid_error"], c["start"]))
    record = {
        "starts": starts,
        "start_minutes": start_minutes,
        "label_seed": seed,
        "candidates": candidates,
        "chosen": chosen["start"],
        "chosen_seed": chosen["seed"],
        "others_cpu_seconds": sum(c["train_cpu_seconds"] for c in candidates if c is not chosen),
    }
    tmp = out.with_name(out.name + ".choosing")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(chosen["dir"], tmp)
    (tmp / STARTS_RECORD).write_text(json.dumps(record, indent=2))
    if out.exists():  # empty (train_best_start refuses a run there)
        out.rmdir()
    tmp.rename(out)
    return record


def selected_record(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The evaluation a classifier run is judged by: the lowest validation error (the first such,
    as the Trainer keeps it in ``best.safetensors``)."""
    return min(records, key=lambda r: (r["valid_error"], r["step"]))


class PoolStopped(RuntimeError):
    """A job of `run_in_pool` that did not start because another job failed or a stop signal came."""


_STOP = None  # in a worker of run_in_pool: the event that says "start no more jobs"


def _init_worker(stop: Any) -> None:
    global _STOP
    _STOP = stop


def _guarded(work: Callable[[Any], Any], job: Any) -> Any:
    """``work(job)`` in a worker, unless the pool was stopped; a job that raises (a failure, or a
    run stopped by a signal after its checkpoint) stops the pool before this worker takes another."""
    if _STOP is not None and _STOP.is_set():
        raise PoolStopped("not started: the pool was stopped")
    try:
        return work(job)
    except BaseException:
        if _STOP is not None:
            _STOP.set()
        raise


class PoolTerminated(Exception):
    """SIGTERM arrived in the process that runs a pool of `run_in_pool`."""


def _raise_terminated(signum: int, frame: Any) -> None:
    raise PoolTerminated(f"stopped by signal {signum}")


def run_in_pool(work: Callable[[Any], Any], jobs: Iterable[Any], workers: int, echo: bool = True) -> list[Any]:
    """``work`` on each job in ``workers`` processes (in this process when ``workers`` is 1 or
    there is one job), in order; ``echo`` prints each result as it arrives.

    The pool stops as a whole: when a job raises, when Ctrl-C reaches the processes, or when
    SIGTERM reaches this one, no further job starts, the workers still training get SIGTERM (a
    run then saves a checkpoint, so the same call resumes it), and the first error is raised here.
    ``work`` must be a module-level function (it is pickled to the workers)."""
    import multiprocessing
    import signal
    import threading

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
    context = multiprocessing.get_context()
    stop = context.Event()
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _raise_terminated) if main_thread else None
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(stop,))
    futures = []
    try:
        futures = [pool.submit(_guarded, work, job) for job in jobs]
        for future in futures:
            collect(future.result())
    except BaseException:
        stop.set()
        for future in futures:
            future.cancel()
        for child in multiprocessing.active_children():  # this process's children: the pool's workers
            child.terminate()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
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
