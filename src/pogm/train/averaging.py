"""An exponential moving average of a model's weights (Polyak & Juditsky 1992), for evaluation.

``train.ema_decay = d`` keeps, beside the weights that train, a copy updated after every optimizer
step as ``w_avg <- d * w_avg + (1 - d) * w`` (floating-point parameters and buffers, batch-norm
statistics included; integer and boolean buffers, such as M1+M2's mask of active units, are copied).
The Trainer evaluates, selects and saves (``best.safetensors``) the averaged weights; the weights
that train stay in ``model.safetensors`` and the average is part of the checkpoint, so a resumed run
continues the same average. It is a setting of the training, not of any paper's model: none of the
papers here averages weights.

``torch.optim.swa_utils.AveragedModel`` computes the same average but reads its step counter on the
host at every update, which would break the sync-free CUDA step (`pogm.train.sync_free`); this one
updates with one ``torch._foreach_lerp_`` and no host synchronisation.
"""

from __future__ import annotations

import copy

import torch


class WeightAverage:
    """The exponential moving average of ``model``'s weights with decay ``decay`` in (0, 1)."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"train.ema_decay must be in (0, 1) (e.g. 0.999: an average over about 1,000 steps) or null, got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model).eval()
        self.module.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        """One step of the average towards ``model``'s current weights."""
        averaged, current = self.module.state_dict(), model.state_dict()
        floats = [name for name, value in averaged.items() if value.is_floating_point()]
        if floats:
            torch._foreach_lerp_([averaged[n] for n in floats], [current[n] for n in floats], 1.0 - self.decay)
        for name, value in averaged.items():
            if not value.is_floating_point():
                value.copy_(current[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {name: value.detach().cpu().clone() for name, value in self.module.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)

    def restart_from(self, model: torch.nn.Module) -> None:
        """Set the average to ``model``'s weights (a checkpoint written without an average)."""
        self.module.load_state_dict(model.state_dict())
