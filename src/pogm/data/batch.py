"""The one data structure every model sees: a `Batch` of named groups with observation masks.

Conventions (docs/DESIGN.md, "observation masks are data"):

* ``x`` maps a group name to a float tensor ``[B, ...]`` (``"x"`` for plain images).
* ``x_mask`` has the same keys; each value is a bool tensor broadcastable to its group,
  ``True`` = observed. Unobserved values are zero-filled, never NaN.
* ``y`` holds labels: int ``[B]`` for classes, float ``[B, D]`` for continuous labels.
  ``y_mask`` is bool ``[B]``, ``True`` = labelled. Unlabelled entries of ``y`` hold 0.

Two facts a batch may also carry, known on the host without reading a tensor (so that a training
step on a GPU never waits for the device to learn them): ``observed``, the groups whose every
value is observed, and ``labelled_first``, the number of leading rows that are labelled when
every other row is unlabelled (a stream's labelled minibatch followed by its unlabelled one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Batch:
    x: dict[str, Tensor]
    x_mask: dict[str, Tensor] = field(default_factory=dict)
    y: Tensor | None = None
    y_mask: Tensor | None = None
    observed: frozenset[str] = frozenset()  # groups known to be fully observed
    labelled_first: int | None = None  # rows [0, n) labelled, rows [n, B) not; None = read y_mask

    def __post_init__(self) -> None:
        for name, value in self.x.items():
            if name not in self.x_mask:
                self.x_mask[name] = torch.ones(value.shape[0], *([1] * (value.dim() - 1)), dtype=torch.bool, device=value.device)
                self.observed = self.observed | {name}
        if self.y is not None and self.y_mask is None:
            self.y_mask = torch.ones(self.y.shape[0], dtype=torch.bool, device=self.y.device)

    def __len__(self) -> int:
        return next(iter(self.x.values())).shape[0]

    @property
    def device(self) -> torch.device:
        return next(iter(self.x.values())).device

    def to(self, device: torch.device | str) -> "Batch":
        return Batch(
            x={k: v.to(device) for k, v in self.x.items()},
            x_mask={k: v.to(device) for k, v in self.x_mask.items()},
            y=None if self.y is None else self.y.to(device),
            y_mask=None if self.y_mask is None else self.y_mask.to(device),
            observed=self.observed,
            labelled_first=self.labelled_first,
        )

    def select(self, index: Tensor) -> "Batch":
        """Rows ``index`` (bool mask or integer indices) of every tensor."""

        def rows(t: Tensor) -> Tensor:
            return t if t.shape[0] == 1 and len(self) != 1 else t[index]

        return Batch(
            x={k: v[index] for k, v in self.x.items()},
            x_mask={k: rows(v) for k, v in self.x_mask.items()},
            y=None if self.y is None else self.y[index],
            y_mask=None if self.y_mask is None else self.y_mask[index],
            observed=self.observed,
        )

    @staticmethod
    def cat(batches: list["Batch"]) -> "Batch":
        """Stack batches along the batch dimension (e.g. a labelled and an unlabelled minibatch)."""
        first = batches[0]
        x = {k: torch.cat([b.x[k] for b in batches]) for k in first.x}
        x_mask = {}
        for k in first.x:
            tail = torch.broadcast_shapes(*(b.x_mask[k].shape[1:] for b in batches))  # e.g. [1, 1, 1] and [1, 28, 28] -> [1, 28, 28]
            x_mask[k] = torch.cat([b.x_mask[k].expand(len(b), *tail) for b in batches])
        has_y = [b.y is not None for b in batches]
        if any(has_y) and not all(has_y):
            raise ValueError("Batch.cat: either every batch carries y (use y_mask for unlabelled rows) or none does")
        y = torch.cat([b.y for b in batches]) if all(has_y) else None
        y_mask = torch.cat([b.y_mask for b in batches]) if all(has_y) else None
        observed = frozenset.intersection(*(b.observed for b in batches))
        return Batch(x=x, x_mask=x_mask, y=y, y_mask=y_mask, observed=observed)
