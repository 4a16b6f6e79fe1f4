"""The sync-free training step (``train.sync_free``): on a GPU, the host queues step after step
without waiting for the device.

The synchronous step (`pogm.train.trainer.Trainer`) reads the loss on the host before every
update, to refuse a non-finite one. Here the step instead

* computes one finiteness flag on the device (the loss and every gradient's norm),
* hands it to the fused Adam kernel as ``found_inf`` (the mechanism of `torch.amp.GradScaler`):
  a step whose flag is set changes neither the weights, nor Adam's moments, nor its step count,
  exactly as the synchronous step makes no update,
* keeps the loss terms and the flag on the device (`PendingSteps`), read in one copy every
  ``train.sync_every`` steps and at every epoch end, evaluation and checkpoint.

Read back in order, the pending steps give the epoch's sums, the skipped-batch counts and the
errors that the synchronous step gives, bit for bit. Two things differ, and only when a step is
not finite: it is noticed up to ``sync_every`` steps later (it made no update; the steps after it
trained on), and it still counts as a step (the synchronous Trainer does not count a skipped
batch, so its KL warm-up and ``max_steps`` then run one batch later).
Training on the CPU gains nothing from it, so it is on by default on CUDA only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class PendingSteps:
    """Loss terms and finiteness flags of the steps not yet read, kept on the device."""

    first_step: int = 0
    names: list[tuple[str, ...]] = field(default_factory=list)
    values: list[torch.Tensor] = field(default_factory=list)  # each [T] float32
    finite: list[torch.Tensor] = field(default_factory=list)  # each [] bool

    def __len__(self) -> int:
        return len(self.values)

    def add(self, step: int, terms: dict[str, torch.Tensor], finite: torch.Tensor) -> None:
        if not self.values:
            self.first_step = step
        self.names.append(tuple(terms))
        self.values.append(torch.stack([v.detach().float().reshape(()) for v in terms.values()]))  # [T]
        self.finite.append(finite)

    def read(self) -> list[tuple[int, dict[str, float], bool]]:
        """``(step, {name: value}, finite)`` for every pending step in order (one copy to the
        host), then empty."""
        if not self.values:
            return []
        values = torch.cat(self.values).cpu().tolist()
        finite = torch.stack(self.finite).cpu().tolist()
        out, offset = [], 0
        for i, names in enumerate(self.names):
            out.append((self.first_step + i, dict(zip(names, values[offset : offset + len(names)])), bool(finite[i])))
            offset += len(names)
        self.names, self.values, self.finite = [], [], []
        return out


def finite_flag(loss: torch.Tensor, grads: list[torch.Tensor]) -> torch.Tensor:
    """A device-side bool: the loss and every gradient are finite (one fused pass of max |g|,
    which is NaN or inf exactly when some entry is; a 2-norm could overflow from finite entries)."""
    ok = torch.isfinite(loss.detach())
    if grads:
        ok = ok & torch.isfinite(torch.stack(torch._foreach_norm(grads, float("inf")))).all()
    return ok


def conditional_adam_step(optimizer: torch.optim.Optimizer, finite: torch.Tensor) -> None:
    """One fused Adam step that the device skips when ``finite`` is False (no host sync)."""
    optimizer.found_inf = (~finite).float()
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf


def supports_conditional_step(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer`` can skip a step on the device: fused Adam (`pogm.train.optimizers.adam`)."""
    return isinstance(optimizer, torch.optim.Adam) and bool(optimizer.defaults.get("fused"))
