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


def test_ssl_mnist_set_overrides_reach_the_model_and_train_settings_as_numbers_and_booleans():
    import argparse

    import pytest

    ssl_mnist = load_script("ssl_mnist")
    args = argparse.Namespace(set=["model.batch_norm=false", "model.hidden=[300]", "train.lr=3e-4"], lr=None, lr_min=1e-4, precision=None)
    assert ssl_mnist.model_overrides("m2", args) == {"batch_norm": False, "hidden": [300]}
    assert ssl_mnist.train_overrides("m2", args) == {"lr": 3e-4, "lr_min": 1e-4}  # 3e-4 a float, not YAML 1.1's string
    settings = ssl_mnist.asked_settings("m2", args)
    assert settings["model"]["batch_norm"] is False and settings["train"]["lr"] == 3e-4
    with pytest.raises(SystemExit, match="model.NAME=VALUE"):
        ssl_mnist.parse_settings(["batch_norm=false"])


def test_ssl_mnist_summary_keeps_a_seed_whose_run_directory_is_gone():
    ssl_mnist = load_script("ssl_mnist")
    settings = {"model": {}, "train": {"lr": 5e-4}, "data": {}}
    earlier = {"results": {"adgm": {"settings": settings, "budgets": [
        {"budget_minutes": 120, "per_seed": [{"seed": 0, "test_error": 0.09}]},
        {"budget_minutes": 10, "per_seed": [{"seed": s, "test_error": e} for s, e in ((0, 0.13), (1, 0.11), (2, 0.12))]},
    ]}}}
    measured = [{"seed": 0, "test_error": 0.125}]  # seed 0 rerun; seeds 1 and 2 exist only in the file
    carried = ssl_mnist.carried_seeds(earlier, "adgm", 10, [0, 1, 2], measured, settings)
    assert [r["seed"] for r in carried] == [1, 2]  # the new seed 0 wins over the file's
    assert ssl_mnist.carried_seeds(earlier, "adgm", 10, [0, 1], measured, settings) == [{"seed": 1, "test_error": 0.11}]  # only seeds asked for
    assert ssl_mnist.carried_seeds(earlier, "sdgm", 10, [0, 1, 2], measured, settings) == []  # nothing measured earlier
    assert ssl_mnist.carried_seeds({}, "adgm", 10, [0, 1, 2], [], settings) == []


def test_ssl_mnist_summary_never_carries_a_row_of_other_settings_or_a_seed_still_running(capsys):
    ssl_mnist = load_script("ssl_mnist")
    old = {"model": {}, "train": {"lr": 1e-3}, "data": {}}
    earlier = {"results": {"adgm": {"settings": old, "budgets": [{"budget_minutes": 120, "per_seed": [{"seed": 0, "test_error": 0.09}]}]}}}
    # The recipe changed (a new learning rate): the file's 120-minute row is the old recipe's.
    assert ssl_mnist.carried_seeds(earlier, "adgm", 120, [0], [], {**old, "train": {"lr": 5e-4}}) == []
    assert ssl_mnist.carried_seeds({"results": {"adgm": {k: v for k, v in earlier["results"]["adgm"].items() if k != "settings"}}}, "adgm", 120, [0], [], old) == []
    assert "seeds [0]" in capsys.readouterr().err  # a measured seed left out is named, never dropped silently
    # Seed 0 has a run that has not reached 120 minutes yet: its old row does not stand in for it.
    assert ssl_mnist.carried_seeds(earlier, "adgm", 120, [0], [], old, with_runs={0}) == []
    assert ssl_mnist.carried_seeds(earlier, "adgm", 120, [0], [], old) == [{"seed": 0, "test_error": 0.09}]


def test_ssl_mnist_settings_are_the_recipe_with_the_overrides():
    import argparse

    ssl_mnist = load_script("ssl_mnist")
    args = argparse.Namespace(lr=1e-4, lr_min=None, precision=None, set=[])
    settings = ssl_mnist.asked_settings("sdgm", args)
    assert settings["train"]["lr"] == 1e-4 and settings["train"]["lr_decay"] == 0.95  # the override, and the recipe's own value
    assert settings["model"]["a_dim"] == 100 and settings["data"] == {"binarize": True}
    assert "cpu_budget_seconds" not in settings["train"]  # set by the budget, not the recipe
