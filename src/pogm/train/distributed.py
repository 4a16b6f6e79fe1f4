"""Multi-process data-parallel training: one process per CPU core group or GPU, launched by torchrun.

Launch (CPU: the gloo backend; ``--device cuda``: NCCL, one GPU per process)::

    torchrun --standalone --nproc_per_node 2 -m pogm.cli train m2 --data mnist --labels 10 --out runs/m2
    pogm train m2 --data mnist --labels 10 --out runs/m2 --nproc 2     # the same: re-executes itself under torchrun

A process learns its place from torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``;
`Distributed.from_environment`); `process_group` joins the process group for the length of a
``pogm.train`` call (and leaves alone one the caller initialised). Without those variables, or
with ``WORLD_SIZE=1``, nothing changes: no process group, and training is bit for bit the
single-process training.

How the processes share a step (``W`` processes, rank ``r``):

* **Data.** Every process builds the same `SemiSupervisedStream` (same seed) and draws the same
  labelled and unlabelled minibatches that one process would draw, then keeps rows ``r::W`` of
  each (``SemiSupervisedStream(..., rank=r, world_size=W)``). The union of the shards of a step
  is exactly the single process's batch, and an epoch is the same pass over the data. This is
  DistributedSampler's ``set_epoch`` pattern with the epoch's seed carried by the stream's own
  generator: every process advances it identically, so the processes agree on every epoch's
  permutation without talking, a new epoch gets a new permutation, and the one state saved in a
  checkpoint resumes all of them. ``batch_size`` and ``labelled_batch_size`` stay the *global*
  sizes and must be multiples of ``W`` (so that each shard is the same size and the mean of the
  processes' mean losses is the mean loss over the whole batch).
* **Gradients.** Each process computes the gradients of its own losses on its shard; then one
  flat all-reduce (`Distributed.sum_gradients`) sums, per parameter group, the gradients over the
  processes, and every process divides by the number of processes that computed that group's
  loss. Every process then takes the same optimizer step on the same averaged gradients, so the
  parameters stay identical (they are broadcast from rank 0 once, at the start). Together with
  the sharding this makes ``W`` processes with ``B / W`` rows each follow one process with ``B``
  rows, up to the order of floating-point sums.

  We do this instead of wrapping the model in ``torch.nn.parallel.DistributedDataParallel``
  because DDP reduces gradients in hooks that fire during ``loss.backward()`` for one loss over
  every parameter, while the Trainer's adversarial models take ``torch.autograd.grad`` of one loss
  per parameter group (one Adam optimizer each), which DDP's hooks never see, and they may gate a
  group's loss off on some steps. An explicit reduction handles every model the same way: a
  parameter that got no gradient in one process (a network whose inputs, e.g. a whole data group
  or every labelled row, are absent from that process's shard) counts as a zero gradient there,
  and it stays without gradient (``None``: Adam leaves it alone, as in one process) only when no
  process produced one. A group whose loss a process left out (the VAE-GAN's equilibrium gate,
  decided on that process's shard) is averaged over the processes that computed it, and steps if
  any did. The communication volume equals DDP's; what is lost is DDP's overlap of communication
  with the backward pass, which matters little on CPUs.
* **Agreement.** Every decision that changes the control flow is taken collectively, so that the
  processes never wait in different collectives: a non-finite loss or gradient in any process
  skips (or stops) the step in all of them (the flag rides in the gradient all-reduce), a SIGINT
  or SIGTERM received by any process stops all of them at the same step with a checkpoint, and a
  CPU budget (``train.cpu_budget_seconds``) counts the CPU time of all processes. An error in
  one process alone leaves the process group at once, so that the others' next collective fails
  instead of waiting (and torchrun stops them).
* **Randomness.** The model's own noise (the samples of z, the GANs' fake inputs) comes from each
  process's global torch RNG, seeded as in one process on rank 0 and with a seed derived from
  ``(seed, rank)`` elsewhere, so processes draw independent noise. (So ``W`` processes agree
  with one process in distribution; the equivalence is exact when the model draws no noise.)
  Checkpoints keep every process's RNG state, running loss sums and timers.
* **Files.** Only rank 0 writes: the run directory, ``config.yaml`` (which records
  ``world_size``), ``metrics.jsonl``, checkpoints, progress bars and messages. Rank 0 also
  evaluates on the whole validation and test sets while the others wait; the record's training
  terms (``train_loss`` ...) are the means over all processes' shards, i.e. over the whole
  batches, and ``train_cpu_seconds`` is the CPU time of all processes. On resume rank 0 reads the
  checkpoint and broadcasts it. A run resumes only with the number of processes it was trained
  with (anything else raises `WorldSizeMismatch`, naming both numbers), since the per-process
  RNG states and shards depend on it.
* **GPUs** (``--device cuda``, untested here): process ``r`` uses ``cuda:LOCAL_RANK`` and NCCL;
  ``--precision bf16`` (``train.precision``) autocasts the forward pass to bfloat16 as on the CPU,
  with fp32 weights, gradients and all-reduce. Checkpoints then also keep each process's CUDA RNG.
* **Batch norm** layers normalise with each process's own shard statistics (no SyncBatchNorm),
  as DDP does by default; their running statistics are broadcast from rank 0 after every step
  (DDP's ``broadcast_buffers``), so that the checkpointed model is the one every process uses.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
from torch import Tensor

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
# Rank 0 evaluates (and writes checkpoints) while the other processes wait in a collective; a
# long evaluation must not hit the default 30 minute timeout. A process that dies is noticed by
# torchrun, which stops the others, so a long timeout never leaves a job hanging.
TIMEOUT = timedelta(hours=3)


class WorldSizeMismatch(ValueError):
    """A run resumed with a different number of processes from the one it was trained with."""

    every_process = True  # raised by all processes at the same point (see `process_group`)

    def __init__(self, run_dir: Any, trained: int, now: int) -> None:
        self.trained, self.now = trained, now
        super().__init__(
            f"{run_dir} was trained by {trained} process{'es' if trained != 1 else ''} (world size {trained}), but this resume runs "
            f"{now} (world size {now}); a run resumes exactly only with the same number of processes: {resume_command(run_dir, trained)}"
        )


def resume_command(run_dir: Any, world_size: int) -> str:
    """The command that resumes ``run_dir`` with ``world_size`` processes."""
    if world_size > 1:
        return f"torchrun --standalone --nproc_per_node {world_size} -m pogm.cli train --resume --out {run_dir}"
    return f"pogm train --resume --out {run_dir}"


def rank_seed(seed: int, rank: int) -> int:
    """The torch seed of process ``rank`` > 0 (rank 0 keeps the run's own seed)."""
    return (int(seed) * 1_000_003 + 7_919 * int(rank)) % (2**63 - 1)


@dataclass(frozen=True)
class Distributed:
    """This process's place among ``world_size`` training processes, and the collectives the
    Trainer needs. With ``world_size == 1`` (`SINGLE`) every method is a no-op."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"  # where collective tensors live ("cuda:<local_rank>" with NCCL)

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @staticmethod
    def from_environment() -> tuple[int, int, int]:
        """``(rank, world_size, local_rank)`` from torchrun's variables; ``(0, 1, 0)`` without them."""
        values = {name: os.environ.get(name) for name in ENV_VARS}
        if values["WORLD_SIZE"] is None:
            return 0, 1, 0
        try:
            rank, world, local = int(values["RANK"] or 0), int(values["WORLD_SIZE"]), int(values["LOCAL_RANK"] or 0)
        except ValueError as error:
            raise ValueError(f"torchrun's RANK, WORLD_SIZE and LOCAL_RANK must be integers, got {values}") from error
        if world < 1 or not 0 <= rank < world:
            raise ValueError(f"need 0 <= RANK < WORLD_SIZE, got RANK={rank}, WORLD_SIZE={world}")
        return rank, world, local

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        if self.active:
            torch.distributed.barrier()

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process (pickled; for small things and checkpoint states)."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather_object(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def all_reduce(self, values: Sequence[float], op: str = "sum") -> list[float]:
        """Element-wise sum (or max) of ``values`` over the processes, in float64."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX if op == "max" else torch.distributed.ReduceOp.SUM)
        return t.tolist()

    def broadcast_tensors(self, tensors: Sequence[Tensor]) -> None:
        """Overwrite ``tensors`` (in place, on every process) with rank 0's, one collective per dtype."""
        if not self.active or not tensors:
            return
        for dtype in dict.fromkeys(t.dtype for t in tensors):
            same = [t for t in tensors if t.dtype == dtype]
            flat = torch.cat([t.detach().reshape(-1).to(self.device) for t in same])
            torch.distributed.broadcast(flat, src=0)
            offset = 0
            with torch.no_grad():
                for t in same:
                    t.copy_(flat[offset : offset + t.numel()].view_as(t))
                    offset += t.numel()

    def broadcast_module(self, module: torch.nn.Module, buffers_only: bool = False) -> None:
        """Make ``module``'s parameters and buffers rank 0's; with ``buffers_only``, only the
        buffers its state dict holds (batch-norm statistics; not constants such as M2's one-hots)."""
        if not self.active:
            return
        if buffers_only:
            tensors = persistent_buffers(module)
        else:
            tensors = [p.data for p in module.parameters()] + list(module.buffers())
        self.broadcast_tensors(tensors)

    def sum_gradients(self, params: Sequence[Tensor], grads: Sequence[Tensor | None], extra: Sequence[float] = ()) -> tuple[list[Tensor | None], list[float]]:
        """Sum ``grads`` (one per parameter; None = no gradient here, counted as zero) and the
        numbers ``extra`` over the processes in one all-reduce (one per dtype if the parameters
        mix dtypes). Returns the summed gradients, None where no process had a gradient, and the
        summed ``extra``."""
        if not self.active:
            return list(grads), [float(v) for v in extra]
        dtypes = list(dict.fromkeys(p.dtype for p in params)) or [torch.float32]
        count_dtype = dtypes[0] if len(dtypes) == 1 and dtypes[0] in (torch.float32, torch.float64) else torch.float64
        counts = torch.tensor([float(g is not None) for g in grads] + [float(v) for v in extra], dtype=count_dtype, device=self.device)
        summed: list[Tensor | None] = [None] * len(params)
        flats = []
        for dtype in dtypes:
            index = [i for i, p in enumerate(params) if p.dtype == dtype]
            pieces = [grads[i].reshape(-1).to(dtype) if grads[i] is not None else torch.zeros(params[i].numel(), dtype=dtype, device=params[i].device) for i in index]
            flats.append((index, pieces))
        if len(flats) == 1 and count_dtype == dtypes[0]:  # the usual case: one collective for everything
            index, pieces = flats[0]
            flat = torch.cat([*pieces, counts.to(pieces[0].device if pieces else self.device)])
            torch.distributed.all_reduce(flat)
            counts = flat[flat.numel() - counts.numel() :]
            parts = [(index, flat[: flat.numel() - counts.numel()])]
        else:
            parts = []
            for index, pieces in flats:
                flat = torch.cat(pieces)
                torch.distributed.all_reduce(flat)
                parts.append((index, flat))
            torch.distributed.all_reduce(counts)
        had = counts[: len(params)].tolist()
        for index, flat in parts:
            offset = 0
            for i in index:
                n = params[i].numel()
                if had[i] > 0:
                    summed[i] = flat[offset : offset + n].view_as(params[i])
                offset += n
        return summed, counts[len(params) :].tolist()


SINGLE = Distributed()


def persistent_buffers(module: torch.nn.Module) -> list[Tensor]:
    """The buffers of ``module`` that its state dict holds."""
    return [b for m in module.modules() for name, b in m._buffers.items() if b is not None and name not in m._non_persistent_buffers_set]


def _backend(device: str) -> str:
    if torch.device(device).type == "cuda":
        if not torch.distributed.is_nccl_available():
            raise RuntimeError("--device cuda with several processes needs PyTorch built with NCCL")
        return "nccl"
    if not torch.distributed.is_gloo_available():
        raise RuntimeError("multi-process training on the CPU needs PyTorch's gloo backend, which this build lacks")
    return "gloo"


def _process_device(device: str, local_rank: int) -> str:
    """``cuda`` becomes this process's own GPU, ``cuda:<local_rank>``; other devices stay."""
    d = torch.device(device)
    if d.type != "cuda":
        return str(d)
    if not torch.cuda.is_available():
        raise ValueError("--device cuda: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); use --device cpu")
    if d.index is not None:
        raise ValueError(f"--device {device}: with several processes each uses its own GPU (cuda:LOCAL_RANK); pass plain --device cuda")
    if local_rank >= torch.cuda.device_count():
        raise ValueError(f"process with LOCAL_RANK {local_rank} has no GPU: this machine has {torch.cuda.device_count()}; lower --nproc_per_node")
    return f"cuda:{local_rank}"


@contextmanager
def process_group(device: str = "cpu") -> Iterator[Distributed]:
    """The `Distributed` context of this process for training on ``device``.

    Under torchrun with ``WORLD_SIZE`` > 1 this joins the default process group (gloo on the CPU,
    NCCL on GPUs) unless the caller already did, and leaves it at the end if it joined it. Anything
    else gives `SINGLE`: no process group, nothing changes.
    """
    rank, world, local = Distributed.from_environment()
    if world == 1:
        yield SINGLE
        return
    if not torch.distributed.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed")
    device = _process_device(device, local)
    owned = False
    if not torch.distributed.is_initialized():
        # Imported lazily by the first optimizer, torch._dynamo would then keep a reference to the
        # process group that outlives destroy_process_group(); gloo's worker threads then live
        # on into interpreter shutdown and abort it ("terminate called without an active
        # exception", now and then). Imported before the group exists, it holds none.
        importlib.import_module("torch._dynamo")

        if torch.device(device).type == "cuda":
            torch.cuda.set_device(torch.device(device))
        torch.distributed.init_process_group(_backend(device), timeout=TIMEOUT)
        owned = True
    elif torch.distributed.get_world_size() != world or torch.distributed.get_rank() != rank:
        raise RuntimeError(f"the initialised process group (rank {torch.distributed.get_rank()} of {torch.distributed.get_world_size()}) disagrees with RANK={rank}, WORLD_SIZE={world}")
    try:
        yield Distributed(rank=rank, world_size=world, local_rank=local, device=device)
    except BaseException as error:
        if owned and torch.distributed.is_initialized():
            # An error that every process raises at the same point (a stop signal, a world-size
            # mismatch) leaves together, like a normal end. Any other leaves at once: the others
            # may wait in a collective this process never joins, and closing the connections
            # makes theirs fail instead of hang.
            if getattr(error, "every_process", False):
                torch.distributed.barrier()
            torch.distributed.destroy_process_group()
        raise
    if owned and torch.distributed.is_initialized():
        torch.distributed.barrier()  # nobody tears the group down while another still uses it
        torch.distributed.destroy_process_group()


def torchrun_command(nproc: int, args: Sequence[str]) -> list[str]:
    """The command that runs ``pogm <args>`` in ``nproc`` processes on this machine: torchrun
    (as ``python -m torch.distributed.run``, with a free port of its own: ``--standalone``)."""
    import sys

    if nproc < 1:
        raise ValueError(f"--nproc must be >= 1, got {nproc}")
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "pogm.cli", *args]


__all__ = ["SINGLE", "Distributed", "WorldSizeMismatch", "persistent_buffers", "process_group", "rank_seed", "resume_command", "torchrun_command"]
