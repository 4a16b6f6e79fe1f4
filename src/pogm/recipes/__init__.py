"""Recipes: YAML files shipped with pogm that reproduce a paper's setting.

    pogm recipes                                  # list them
    pogm train --recipe adgm-mnist100             # the model and data come from the recipe
    pogm train sdgm --recipe adgm-mnist100-cpu    # or override the model it names

A recipe has a ``description``, the ``model_name`` and ``source`` (data) it is written for, the
labelled examples per class (``labels``) and ``model:``, ``train:`` and ``data:`` sections with
values for the model config, the TrainConfig and the data source. ``--set`` overrides any value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

RECIPE_DIR = Path(__file__).parent
SECTIONS = {"description", "model_name", "source", "labels", "model", "train", "data"}


def list_recipes() -> list[str]:
    """Names of the packaged recipes, sorted."""
    return sorted(p.stem for p in RECIPE_DIR.glob("*.yaml"))


def recipe_path(name: str | Path) -> Path:
    """The file of a packaged recipe ``name``, or ``name`` itself if it is an existing file."""
    path = Path(name)
    if path.is_file():
        return path
    packaged = RECIPE_DIR / f"{name}.yaml"
    if packaged.is_file():
        return packaged
    raise FileNotFoundError(f"no recipe file or packaged recipe named {str(name)!r}; packaged recipes: {', '.join(list_recipes())}")


def load_recipe(name: str | Path | None) -> dict[str, Any]:
    """Read a recipe (packaged name or YAML path); unknown sections are an error."""
    if name is None:
        return {}
    path = recipe_path(name)
    content = yaml.safe_load(path.read_text()) or {}
    if not isinstance(content, dict):
        raise ValueError(f"{path}: a recipe is a YAML mapping with sections {sorted(SECTIONS)}")
    unknown = set(content) - SECTIONS
    if unknown:
        raise ValueError(f"{path}: unknown sections {sorted(unknown)}; a recipe has {sorted(SECTIONS)}")
    return content


def describe_recipes() -> list[tuple[str, str, str]]:
    """``(name, model_name, description)`` for every packaged recipe."""
    rows = []
    for name in list_recipes():
        recipe = load_recipe(name)
        rows.append((name, str(recipe.get("model_name", "-")), " ".join(str(recipe.get("description", "")).split())))
    return rows
