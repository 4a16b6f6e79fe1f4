"""Catching host synchronisation in a training step, on any device.

On a GPU, reading a tensor's value on the host (``.item()``, ``bool(t)``, ``if t:``) or an
operation whose output size depends on the data (boolean-mask indexing, ``nonzero``) makes the
CPU wait for the GPU to finish everything queued so far: the step stalls instead of queueing the
next kernels. ``torch.cuda.set_sync_debug_mode("error")`` catches these on a GPU only.
`NoHostSync` catches the same operations on any device, the CPU included, so the sync-free
training step (``train.sync_free``) is tested where CI runs: it raises `HostSync` naming the
operation. It sees operations at the level of ATen (a `TorchDispatchMode`), so it also catches
them inside PyTorch's own Python code.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

# Operations that wait for the device: a value read back, or an output whose size depends on values.
SYNCING = {
    aten._local_scalar_dense.default: "a tensor's value read on the host (.item(), bool(), int(), float())",
    aten.nonzero.default: "nonzero (its output size depends on the data)",
    aten.masked_select.default: "masked_select (its output size depends on the data)",
    aten.is_nonzero.default: "a tensor used as a Python bool",
    aten.equal.default: "torch.equal",
}


class HostSync(RuntimeError):
    """An operation inside `NoHostSync` would make the host wait for the device."""


def _has_bool_index(indices: Any) -> bool:
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in indices or ())


class NoHostSync(TorchDispatchMode):
    """Raise `HostSync` on any operation that synchronises host and device (see module docstring)."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        why = SYNCING.get(func)
        if why is None and func in (aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default):
            if _has_bool_index(args[1] if len(args) > 1 else kwargs.get("indices")):
                why = "indexing with a boolean mask (its output size depends on the data)"
        if why is None and func in (aten.to.dtype_layout, aten._to_copy.default) and kwargs.get("device") == torch.device("cpu"):
            why = "a copy to the CPU"
        if why is not None:
            raise HostSync(f"host synchronisation in a sync-free step: {why} ({func})")
        return func(*args, **kwargs)
