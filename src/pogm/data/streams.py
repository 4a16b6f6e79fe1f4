"""Minibatch streams: semi-supervised training batches and sequential evaluation batches.

`SemiSupervisedStream` follows Kingma et al. (2014): every step yields ONE `Batch` whose first rows
are a labelled minibatch (``y_mask`` True) and whose remaining rows are an unlabelled minibatch
drawn from the whole training set with its labels hidden (``y_mask`` False, ``y`` zeroed).

* An epoch is one pass over the unlabelled pool in a fresh permutation (the last partial
  minibatch is dropped). The pool is the whole training set unless ``unlabelled_index`` names
  its rows (H-VAE(n, m) of Tulyakov et al.: m images without labels, apart from the n pairs).
* The labelled pool is walked in its own permutations, reshuffled whenever it is exhausted; when
  ``labelled_batch_size`` is at least the pool size, every step carries the whole pool in a new order.
* With dynamic binarisation every minibatch is re-sampled (`sample_binary`), so each epoch
  sees fresh binary images; quantised grey levels (``dataset.dequantize``) get fresh uniform noise
  within their level.
* ``labelled_index=None`` (or empty) gives a purely unsupervised stream; ``batch_size=0`` gives a
  purely supervised one (only the labelled pool, an epoch = one pass over it).

All randomness comes from one `torch.Generator` owned by the stream; `state_dict` /
`load_state_dict` capture it together with the current permutations and positions, so a resumed
run continues with exactly the same batches.

Multi-process training (`pogm.train.distributed`): process ``rank`` of ``world_size`` builds the
same stream (same seed) with ``rank`` and ``world_size`` set. Every process then draws the very
batch one process would draw (permutations, binarisation and dequantisation noise included) and
keeps rows ``rank::world_size`` of its labelled and of its unlabelled minibatch, so the shards of
a step are disjoint, equal in size, and together make up the single-process batch. That is
DistributedSampler's ``set_epoch`` pattern with the epoch's seed carried by the generator, which
every process advances identically: the processes agree on each epoch's permutation without
communicating, and one saved state (any process's: they are equal) resumes all of them.
``batch_size`` and ``labelled_batch_size`` remain the sizes of the whole step and must be
multiples of ``world_size``; ``steps_per_epoch`` is unchanged.

Data on disk (`pogm.data.memmap.MemmapDataset`): the stream draws the same indices and asks the
dataset for their rows, which it reads from its memory map and the stream moves to its device, so
an in-memory and a memory-mapped copy of the same arrays give the same batches. A full permutation
reads each minibatch from rows scattered over the file; ``shuffle_window`` (rows) instead visits the
unlabelled pool in windows of consecutive rows, in random order and shuffled within each window, so
that each minibatch reads from at most two windows of the file (the chunk shuffling of streaming data
loaders; the order is less random: rows of one window stay together within an epoch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.data.dataset import PartialDataset, add_dequantization_noise

if TYPE_CHECKING:
    from pogm.data.memmap import MemmapDataset


class SemiSupervisedStream:
    """An iterable of training `Batch`es mixing a labelled and an unlabelled minibatch.

    Iterating yields the remaining steps of the current epoch; iterate again for the next epoch.
    `next_batch` draws single steps across epoch boundaries.

    Args:
        dataset: the training set (its labels are used only at ``labelled_index``).
        labelled_index: rows whose labels are visible (LongTensor); None or empty = unsupervised.
        unlabelled_index: rows of the unlabelled pool (LongTensor); None = every row (labelled rows
            included, their labels hidden), as Kingma et al. draw it.
        batch_size: unlabelled rows per step; 0 = fully supervised (no unlabelled part).
        labelled_batch_size: labelled rows per step (capped at the pool size).
        seed: seed of the stream's generator.
        device: where the data is moved once, at construction; batches are produced there.
        binarize: dynamic binarisation; None = ``dataset.binarize``.
        rank, world_size: keep only rows ``rank::world_size`` of each labelled and unlabelled
            minibatch (this process's shard in multi-process training; see the module docstring).
        shuffle_window: 0 = a full permutation of the unlabelled pool each epoch; else windows of
            this many consecutive pool rows, visited in random order and shuffled within (see the
            module docstring; meant for data read from disk).
    """

    def __init__(
        self,
        dataset: PartialDataset | MemmapDataset,
        labelled_index: Tensor | None = None,
        unlabelled_index: Tensor | None = None,
        batch_size: int = 100,
        labelled_batch_size: int = 100,
        seed: int = 0,
        device: torch.device | str = "cpu",
        binarize: bool | None = None,
        rank: int = 0,
        world_size: int = 1,
        shuffle_window: int = 0,
    ) -> None:
        self.device = torch.device(device)
        if isinstance(shuffle_window, bool) or not isinstance(shuffle_window, int) or shuffle_window < 0:
            raise ValueError(f"shuffle_window must be 0 (a full permutation) or a number of rows >= 1, got {shuffle_window!r}")
        self.shuffle_window = shuffle_window
        self.rank, self.world_size = int(rank), int(world_size)
        if self.world_size < 1 or not 0 <= self.rank < self.world_size:
            raise ValueError(f"need world_size >= 1 and 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.binarize = dataset.binarize if binarize is None else bool(binarize)
        self.batch_size = int(batch_size)
        n = len(dataset)
        if self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0, got {batch_size}")

        if labelled_index is None:
            labelled_index = torch.zeros(0, dtype=torch.long)
        labelled_index = torch.as_tensor(labelled_index).detach().cpu().reshape(-1)
        if labelled_index.dtype == torch.bool:
            labelled_index = labelled_index.nonzero().squeeze(1)
        labelled_index = labelled_index.to(torch.long)
        if labelled_index.numel():
            if dataset.y is None:
                raise ValueError(f"labelled_index given but dataset {dataset.name!r} has no labels")
            if labelled_index.min() < 0 or labelled_index.max() >= n:
                raise ValueError(f"labelled_index has entries outside [0, {n})")
            unlabelled = ~dataset.y_mask.cpu()[labelled_index]
            if unlabelled.any():
                raise ValueError(
                    f"labelled_index includes {int(unlabelled.sum())} rows without a label in {dataset.name!r} "
                    f"(e.g. row {labelled_index[unlabelled][0].item()}); choose labelled rows only"
                )
        self.num_labelled = int(labelled_index.numel())
        self.labelled_batch_size = min(int(labelled_batch_size), self.num_labelled)
        if self.num_labelled and self.labelled_batch_size <= 0:
            raise ValueError(f"labelled_batch_size must be >= 1 when labels are given, got {labelled_batch_size}")
        if self.batch_size == 0 and self.num_labelled == 0:
            raise ValueError("batch_size=0 (supervised only) needs a non-empty labelled_index")
        if unlabelled_index is None:
            unlabelled_index = torch.arange(n)
        unlabelled_index = torch.as_tensor(unlabelled_index).detach().cpu().reshape(-1).to(torch.long)
        if unlabelled_index.numel() and (unlabelled_index.min() < 0 or unlabelled_index.max() >= n):
            raise ValueError(f"unlabelled_index has entries outside [0, {n})")
        if self.batch_size > unlabelled_index.numel():
            raise ValueError(
                f"batch_size={batch_size} is larger than the unlabelled pool ({unlabelled_index.numel()} rows); lower batch_size"
            )

        in_memory = isinstance(dataset, PartialDataset)
        if self.binarize and in_memory:  # a dataset on disk checks each batch it reads instead
            for k, v in dataset.x.items():
                if v.numel() and (v.min() < 0 or v.max() > 1):
                    raise ValueError(
                        f"dynamic binarisation needs values in [0, 1] but x[{k!r}] spans "
                        f"[{v.min().item():g}, {v.max().item():g}]; pass binarize=False"
                    )

        if self.world_size > 1:
            for name, size in (("labelled_batch_size", self.labelled_batch_size), ("batch_size", self.batch_size)):
                if size % self.world_size:
                    capped = " (capped at the number of labelled examples)" if name == "labelled_batch_size" and size < int(labelled_batch_size) else ""
                    raise ValueError(
                        f"{name}={size}{capped} is not a multiple of the {self.world_size} processes: each process takes an equal "
                        f"share of every minibatch; set train.{name} to a multiple of {self.world_size}"
                    )
        self.dataset = dataset.to(self.device) if in_memory else dataset
        self.labelled_index = labelled_index.to(self.device)
        self.unlabelled_index = unlabelled_index.to(self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(int(seed))
        self.epoch = 0
        self._pos = 0  # step within the current epoch
        self._perm: Tensor | None = None  # the current epoch's permutation (None: not started)
        self._lab_perm: Tensor | None = None  # positions into labelled_index
        self._lab_pos = 0

    # ------------------------------------------------------------------ sizes
    @property
    def steps_per_epoch(self) -> int:
        """Steps in one epoch: unlabelled rows // batch_size (labelled rows when supervised only)."""
        if self.batch_size == 0:
            return max(1, self.num_labelled // self.labelled_batch_size)
        return len(self.unlabelled_index) // self.batch_size

    def __len__(self) -> int:
        return self.steps_per_epoch

    # ------------------------------------------------------------------ drawing
    def _randperm(self, n: int) -> Tensor:
        return torch.randperm(n, generator=self.generator, device=self.device)

    def _epoch_order(self, n: int) -> Tensor:
        """The order of the unlabelled pool for one epoch: a permutation of ``range(n)``, full or
        by windows of ``shuffle_window`` consecutive positions."""
        window = self.shuffle_window
        if window == 0 or window >= n:
            return self._randperm(n)
        window_of = torch.arange(n, device=self.device) // window  # [n]
        window_rank = self._randperm(int(window_of[-1]) + 1)  # the order in which windows are visited
        within = self._randperm(n)  # distinct random keys: a uniform shuffle inside each window
        return torch.argsort(window_rank[window_of] * n + within)  # [n]

    def _labelled_rows(self) -> Tensor:
        """The next labelled minibatch (row indices into the dataset)."""
        k, pool = self.labelled_batch_size, self.num_labelled
        if k >= pool:
            return self.labelled_index[self._randperm(pool)]
        if self._lab_perm is None or self._lab_pos + k > pool:
            self._lab_perm = self._randperm(pool)
            self._lab_pos = 0
        rows = self.labelled_index[self._lab_perm[self._lab_pos : self._lab_pos + k]]
        self._lab_pos += k
        return rows

    def next_batch(self) -> Batch:
        """Draw one step's `Batch` and advance (rolling over into the next epoch when one ends)."""
        supervised_only = self.batch_size == 0
        if self._perm is None and not supervised_only:
            self._perm = self._epoch_order(len(self.unlabelled_index))
        parts = []
        if self.num_labelled:
            parts.append(self.dataset.batch(self._labelled_rows()))
        if not supervised_only:
            rows = self.unlabelled_index[self._perm[self._pos * self.batch_size : (self._pos + 1) * self.batch_size]]
            b = self.dataset.batch(rows)
            if b.y is not None:
                b.y = torch.zeros_like(b.y)
                b.y_mask = torch.zeros_like(b.y_mask)
            parts.append(b)
        batch = parts[0] if len(parts) == 1 else Batch.cat(parts)
        if batch.y is not None:  # labelled rows (checked at construction) first, then unlabelled ones
            batch.labelled_first = self.labelled_batch_size if self.num_labelled else 0
        if batch.device != self.device:  # read from disk on the CPU
            batch = batch.to(self.device)
        if self.binarize:
            batch.x = {k: sample_binary(v, self.generator) for k, v in batch.x.items()}
        elif self.dataset.dequantize:
            levels = self.dataset.dequantize
            batch.x = {
                k: torch.where(batch.x_mask[k], add_dequantization_noise(v, levels, self.generator), torch.zeros((), dtype=v.dtype, device=v.device))
                for k, v in batch.x.items()
            }
        self._pos += 1
        if self._pos >= self.steps_per_epoch:
            self.epoch += 1
            self._pos = 0
            self._perm = None
        if self.world_size > 1:
            batch = batch.select(self._shard_rows())
        return batch

    def _shard_rows(self) -> Tensor:
        """This process's rows of a whole step's batch: ``rank::world_size`` of the labelled
        minibatch (the first rows) and of the unlabelled one."""
        n_labelled = self.labelled_batch_size if self.num_labelled else 0
        n_unlabelled = self.batch_size
        labelled = torch.arange(n_labelled, device=self.device)[self.rank :: self.world_size]
        unlabelled = torch.arange(n_labelled, n_labelled + n_unlabelled, device=self.device)[self.rank :: self.world_size]
        return torch.cat([labelled, unlabelled])

    def __iter__(self) -> Iterator[Batch]:
        """Yield the remaining batches of the current epoch."""
        epoch = self.epoch
        while self.epoch == epoch:
            yield self.next_batch()

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        """Generator state, epoch, position and permutations (tensors and ints; safe for weights_only)."""
        return {
            "generator": self.generator.get_state(),
            "epoch": self.epoch,
            "pos": self._pos,
            "perm": None if self._perm is None else self._perm.cpu(),
            "lab_perm": None if self._lab_perm is None else self._lab_perm.cpu(),
            "lab_pos": self._lab_pos,
            "batch_size": self.batch_size,
            "labelled_batch_size": self.labelled_batch_size,
            "num_examples": len(self.dataset),
            "num_labelled": self.num_labelled,
            "num_unlabelled": len(self.unlabelled_index),
            "shuffle_window": self.shuffle_window,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a `state_dict` taken from a stream built with the same dataset and sizes."""
        expected = {
            "batch_size": self.batch_size,
            "labelled_batch_size": self.labelled_batch_size,
            "num_examples": len(self.dataset),
            "num_labelled": self.num_labelled,
            "num_unlabelled": len(self.unlabelled_index),
            "shuffle_window": self.shuffle_window,
        }
        for key, value in expected.items():
            if key in state and int(state[key]) != value:
                raise ValueError(
                    f"stream state has {key}={state[key]} but this stream has {value}; resume with the same "
                    f"data, label split and batch sizes"
                )
        self.generator.set_state(state["generator"].cpu() if isinstance(state["generator"], Tensor) else state["generator"])
        self.epoch = int(state["epoch"])
        self._pos = int(state["pos"])
        self._perm = None if state["perm"] is None else state["perm"].to(self.device)
        self._lab_perm = None if state["lab_perm"] is None else state["lab_perm"].to(self.device)
        self._lab_pos = int(state["lab_pos"])


def sample_binary(probabilities: Tensor, generator: torch.Generator) -> Tensor:
    """Bernoulli samples (0. / 1., the dtype of ``probabilities``): a uniform draw below each
    probability. The same distribution as ``torch.bernoulli``, 3.4x faster on the CPU (0.58 ms
    against 1.99 ms for a 200 x 784 batch on 2 threads), whose Bernoulli kernel draws one value at
    a time."""
    uniform = torch.rand(probabilities.shape, generator=generator, dtype=probabilities.dtype, device=probabilities.device)
    return (uniform < probabilities).to(probabilities.dtype)


def iterate_batches(
    dataset: PartialDataset | MemmapDataset, batch_size: int = 1000, device: torch.device | str = "cpu"
) -> Iterator[Batch]:
    """Yield the dataset in order as `Batch`es of ``batch_size`` rows (the last may be smaller).

    No shuffling and no binarisation (use `PartialDataset.binarized` for a fixed binary test set);
    labels and masks are as stored. Each batch is moved to ``device``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    n = len(dataset)
    for start in range(0, n, batch_size):
        index = torch.arange(start, min(start + batch_size, n), device=dataset.device)
        yield dataset.batch(index).to(device)
