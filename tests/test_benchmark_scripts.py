"""The bookkeeping of the benchmark scripts whose JSON is committed (their training is measured by
running them, not here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_ssl_mnist_summary_keeps_a_seed_whose_run_directory_is_gone():
    ssl_mnist = load_script("ssl_mnist")
    earlier = {"results": {"adgm": {"budgets": [
        {"budget_minutes": 120, "per_seed": [{"seed": 0, "test_error": 0.09}]},
        {"budget_minutes": 10, "per_seed": [{"seed": s, "test_error": e} for s, e in ((0, 0.13), (1, 0.11), (2, 0.12))]},
    ]}}}
    measured = [{"seed": 0, "test_error": 0.125}]  # seed 0 rerun; seeds 1 and 2 exist only in the file
    carried = ssl_mnist.carried_seeds(earlier, "adgm", 10, [0, 1, 2], measured)
    assert [r["seed"] for r in carried] == [1, 2]  # the new seed 0 wins over the file's
    assert ssl_mnist.carried_seeds(earlier, "adgm", 10, [0, 1], measured) == [{"seed": 1, "test_error": 0.11}]  # only seeds asked for
    assert ssl_mnist.carried_seeds(earlier, "sdgm", 10, [0, 1, 2], measured) == []  # nothing measured earlier
    assert ssl_mnist.carried_seeds({}, "adgm", 10, [0, 1, 2], []) == []
