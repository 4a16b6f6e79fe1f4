"""Model registry: name -> class, as torchvision's ``register_model`` / ``model_entry`` / ``list_models``.

The CLI and the contract tests are driven by it: a model registered here is trainable with
``pogm train NAME`` and is checked by ``tests/test_contract.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from pogm.models.base import LISTED_CAPABILITIES

_REGISTRY: dict[str, "ModelEntry"] = {}



@dataclass(frozen=True)
class ModelEntry:
    name: str
    cls: type
    paper: str
    summary: str

    @property
    def offers(self) -> list[str]:
        """The capabilities `pogm models` lists that the model offers (`pogm.models.base.Model.offers`)."""
        return [c for c in LISTED_CAPABILITIES if self.cls.offers(c)]


def register_model(name: str, paper: str, summary: str = "") -> Callable[[type], type]:
    def wrap(cls: type) -> type:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name=name, cls=cls, paper=paper, summary=summary or (cls.__doc__ or "").strip().splitlines()[0])
        cls.registry_name = name
        return cls

    return wrap


def model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; `pogm models` lists them: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def list_models() -> list[str]:
    return sorted(_REGISTRY)
