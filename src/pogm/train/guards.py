"""Guards against non-finite numbers: a step whose loss or gradient is not finite makes no
update (`NonFiniteStep` names what went bad), and subnormal floats can be flushed to zero."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch


class NonFiniteStep(FloatingPointError):
    """A step whose loss or gradient is not finite; it made no update. ``problem`` says what went
    bad (the terms or parameters), the message adds what to do."""

    def __init__(self, message: str, problem: str) -> None:
        super().__init__(message)
        self.problem = problem


def nonfinite_terms(terms: dict[str, Any]) -> list[str]:
    """``["name=value", ...]`` for the loss terms that are not finite."""
    bad = []
    for key, value in terms.items():
        value = torch.as_tensor(value).detach()
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad.append(f"{key}={value.item() if value.numel() == 1 else 'non-finite'}")
    return bad


def nonfinite_gradients(params: Iterable[torch.nn.Parameter], grads: Iterable[torch.Tensor | None], names: dict[int, str]) -> list[str]:
    """The names of the parameters whose gradient is not finite (one sync when all are finite)."""
    pairs = [(p, g) for p, g in zip(params, grads) if g is not None]
    if not pairs:
        return []
    # Fast path: one fused pass for the norms of every gradient (finite norms = finite entries).
    # A norm can also overflow to inf from entries above ~1e19; the exact check below decides.
    if bool(torch.isfinite(torch.stack(torch._foreach_norm([g for _, g in pairs]))).all()):
        return []
    finite = torch.stack([torch.isfinite(g).all() for _, g in pairs])
    if bool(finite.all()):
        return []
    return [names.get(id(p), "<unnamed>") for (p, _), ok in zip(pairs, finite.tolist()) if not ok]


def flushes_denormals() -> bool:
    """Whether the CPU flushes subnormal floats to zero now (torch can set it but not report it)."""
    tiny = torch.tensor([1e-30], dtype=torch.float32) * torch.tensor([1e-10], dtype=torch.float32)  # 1e-40: subnormal
    return bool(tiny.item() == 0.0)
