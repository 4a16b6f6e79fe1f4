"""A data set larger than memory: a directory of memory-mapped ``.npy`` files read in chunks.

A *memmap store* is a directory holding

* ``x.npy``: the data ``[N, ...]`` (at least 2-D: ``[N, D]`` vectors or ``[N, C, H, W]`` images), any
  plain numeric dtype (float32, float16, uint8, ...); NaN marks a missing entry, as everywhere in pogm.
  uint8 values k are read as k / 255 (8-bit images as they ship), row by row as batches are read:
  the store stays uint8 on disk;
* ``y.npy`` (optional): labels with N rows, class labels ``[N]`` (integers, -1 or NaN = unlabelled) or
  continuous labels ``[N, D]`` (float, a row with NaN = unlabelled).

`MemmapDataset` opens the files with ``np.load(..., mmap_mode="r", allow_pickle=False)`` and never reads
``x`` as a whole: `MemmapDataset.batch` reads only the requested rows and converts them with the very
functions `PartialDataset.from_arrays` uses (NaN -> value 0 and mask False, uint8 k -> k / 255), so a
batch equals the batch an in-memory `PartialDataset` of the same arrays would give. The only difference is the shape of fully
observed masks, which are broadcastable either way (see `batch`). The labels, one value per row, are
read into memory at open. Training draws batches from it with `SemiSupervisedStream` (the ``memmap``
data source, `pogm.data.sources.memmap`, builds the splits).

`write_memmap_store` writes such a store from arrays or from an iterator of chunks without holding the
whole data set in memory.
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import tokenize
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from pogm.data.batch import Batch
from pogm.data.dataset import (
    NUM_CLASSES_HINT,
    LabelledRows,
    PartialDataset,
    _check_num_classes,
    _group_from_array,
    _labels_from_array,
)
from pogm.data.layout import observed_range, reshape_mask

_NUMERIC_KINDS = "biuf"


def _problem(path: Path, problem: str) -> ValueError:
    return ValueError(f"{path}: {problem}")


def _open_npy(path: Path) -> np.memmap:
    """``path`` memory-mapped read-only after checking its header: a plain numeric dtype, no pickles."""
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}" + (" (it is a directory)" if path.is_dir() else ""))
    try:
        with open(path, "rb") as fp:
            version = np.lib.format.read_magic(fp)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
            elif version == (3, 0):
                raise _problem(path, "uses .npy format version 3.0 (unicode field names, i.e. records); save a plain numeric array")
            else:
                raise _problem(path, f"uses unknown .npy format version {version}")
    except ValueError as err:
        if str(err).startswith(str(path)):
            raise
        raise _problem(path, f"is not a valid .npy file ({err})") from err
    except (SyntaxError, EOFError, OSError, RecursionError, MemoryError, TypeError, tokenize.TokenError) as err:
        # numpy parses the header (a Python dict literal) with the tokenizer and ast.literal_eval:
        # damaged bytes there raise these.
        raise _problem(path, f"is not a valid .npy file: its header is damaged ({type(err).__name__}: {err})") from err
    if dtype.hasobject:
        raise _problem(path, f"holds Python objects (dtype {dtype}), which would need unpickling and cannot be memory-mapped; save a plain numeric array")
    if dtype.kind not in _NUMERIC_KINDS or dtype.itemsize == 0:
        raise _problem(path, f"has dtype {dtype}; save a plain numeric array (float, integer or bool)")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as err:
        raise _problem(path, f"cannot be memory-mapped ({err}); the file may be truncated") from err
    if not isinstance(arr, np.memmap):  # e.g. a zero-size array, which numpy does not map
        raise _problem(path, f"has shape {tuple(shape)}: no data to memory-map")
    return arr


class MemmapDataset(LabelledRows):
    """A read-only data set over a memmap store directory (``x.npy``, optional ``y.npy``).

    ``x`` stays on disk: the dataset holds its memory map (``self.x_array``) and reads the rows a
    `batch` asks for. The labels are read into memory once, in chunks, when the store is opened
    (``self.y`` / ``self.y_mask``, as on `PartialDataset`: 8 bytes per row for class labels, small
    next to the data), which checks them with the rules of `PartialDataset.from_arrays` and lets
    label splits and streams work without touching ``x``.

    It offers the read side of `PartialDataset` that works without the data in memory: ``len``,
    ``groups``, ``shapes``, ``device``, ``y``, ``y_mask``, ``num_classes``, ``num_labelled``,
    `labelled_index`, `batch`, `subset` (a view: a row map over the same files), `with_row_shape`
    (a view whose rows are reshaped as they are read, e.g. ``[D] -> [1, s, s]``), `observed_range`
    (from a bounded sample of rows), `iter_chunks` and `to_memory`. uint8 values k are read as
    k / 255 in every batch; the file is never converted. `SemiSupervisedStream` draws training batches from it and `iterate_batches` reads
    it in order. It has no ``x`` tensors: code that needs the whole data in memory calls `to_memory`.

    Args:
        directory: the store directory.
        group: the group name of ``x`` in batches.
        num_classes: number of classes of class labels; inferred from ``y.npy`` when None.
        binarize: the values are Bernoulli probabilities for dynamic binarisation; every batch read
            is checked to lie in [0, 1] (a pass over the whole store at open would cost an epoch).
        dequantize: as on `PartialDataset` (grey levels of quantised data).
        name: the dataset's name (default: the directory's name).
        scan_chunk_size: rows per chunk when reading ``y`` at open.

    Raises:
        FileNotFoundError: no directory or no ``x.npy`` in it.
        ValueError: a file that is not a plain numeric ``.npy`` (objects, strings, records, damaged),
            ``x`` with fewer than 2 dimensions or no rows, ``y`` whose row count differs from ``x``'s,
            bad class labels.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        group: str = "x",
        num_classes: int | None = None,
        binarize: bool = False,
        dequantize: int = 0,
        name: str | None = None,
        scan_chunk_size: int = 1 << 20,
    ) -> None:
        self.directory = Path(directory).expanduser()
        if not self.directory.is_dir():
            raise FileNotFoundError(f"no such memmap store directory: {self.directory}")
        x_path = self.directory / "x.npy"
        if not x_path.is_file():
            raise FileNotFoundError(f"{x_path}: missing; a memmap store needs x.npy (and optionally y.npy)")
        if not isinstance(binarize, (bool, np.bool_)):
            raise ValueError(f"binarize must be True or False, got {binarize!r}")
        if isinstance(dequantize, (bool, np.bool_)) or not isinstance(dequantize, (int, np.integer)) or dequantize < 0 or dequantize == 1 or (dequantize and binarize):
            raise ValueError(f"dequantize must be 0 or a number of grey levels >= 2 (and not combined with binarize), got {dequantize!r}")
        self.x_path = x_path
        self.x_array: np.memmap = _open_npy(x_path)  # [N, ...] on disk
        shape = self.x_array.shape
        if len(shape) < 2:
            raise _problem(x_path, f"has shape {shape}; it must be at least 2-D, [N, D] for vectors or [N, C, H, W] for images")
        if shape[0] == 0 or any(s == 0 for s in shape[1:]):
            raise _problem(x_path, f"has shape {shape}: every store needs at least one row and non-empty rows")
        self.group = group
        self.binarize = bool(binarize)
        self.dequantize = int(dequantize)
        self.name = name or self.directory.name
        self._row_map: np.ndarray | None = None  # file rows of a view (`subset`); None = every row
        self._row_shape: tuple[int, ...] | None = None  # rows as read (`with_row_shape`); None = as stored
        self.num_classes = _check_num_classes(num_classes)
        self.y_path: Path | None = None
        self.y_array: np.memmap | None = None
        self.y: Tensor | None = None  # [N] int64 or [N, D] float32, in memory
        self.y_mask: Tensor | None = None  # [N] bool
        y_path = self.directory / "y.npy"
        if y_path.exists():
            self.y_path = y_path
            self.y_array = _open_npy(y_path)  # [N] or [N, D] on disk
            y_shape = self.y_array.shape
            if len(y_shape) == 0 or y_shape[0] != shape[0]:
                raise _problem(y_path, f"has shape {y_shape} but {x_path} has shape {shape}: y.npy needs one label per row of x.npy")
            self._read_labels(scan_chunk_size)

    def _read_labels(self, chunk: int) -> None:
        """Read ``y.npy`` in chunks into ``self.y`` / ``self.y_mask`` with the rules of
        `PartialDataset.from_arrays` (class vs continuous labels, range checks), and infer the
        number of classes when it was not given."""
        y = self.y_array
        assert y is not None and self.y_path is not None
        n = len(self)
        ys, masks, found = [], [], None
        for start in range(0, n, max(1, int(chunk))):
            part = np.array(y[start : start + chunk])  # an in-memory copy of this chunk only
            y_t, y_mask, k = _labels_from_array(
                part, len(part), self.num_classes, what=str(self.y_path), max_inferred_classes=n, require_labelled=False
            )
            ys.append(y_t)
            masks.append(y_mask)
            if k is not None and y_t.dim() == 1:
                found = k if found is None else max(found, k)
        self.y, self.y_mask = torch.cat(ys), torch.cat(masks)
        if self.y.dim() == 1 and self.num_classes is None:
            if found is None:
                raise _problem(self.y_path, f"has no labelled rows, so num_classes cannot be inferred; {NUM_CLASSES_HINT}")
            self.num_classes = found

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return int(self.x_array.shape[0] if self._row_map is None else self._row_map.size)

    @property
    def groups(self) -> list[str]:
        return [self.group]

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """The shape of one row in ``x.npy``, read from its header."""
        return tuple(int(s) for s in self.x_array.shape[1:])

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """The shape of one row as batches give it (``{group: (C, H, W)}``): the stored shape
        unless `with_row_shape` changed it."""
        return {self.group: self._row_shape or self.stored_shape}

    @property
    def device(self) -> torch.device:
        """Batches are built on the CPU (streams move them to their device)."""
        return torch.device("cpu")

    def _rows(self, index: Any) -> np.ndarray:
        """``index`` (LongTensor / int array, or a bool mask [N]) as int64 positions in [0, N)."""
        idx = index.detach().cpu().numpy() if isinstance(index, Tensor) else np.asarray(index)
        n = len(self)
        if idx.dtype == np.bool_:
            if idx.shape != (n,):
                raise ValueError(f"a bool index must have shape ({n},), got {idx.shape}")
            return np.flatnonzero(idx)
        if idx.dtype.kind not in "iu":
            raise ValueError(f"index must hold integers or bools, got dtype {idx.dtype}")
        idx = idx.astype(np.int64).reshape(-1)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"index has entries outside [-{n}, {n}) for {self.name!r} ({n} rows)")
        return np.where(idx < 0, idx + n, idx)

    @staticmethod
    def _read(arr: np.memmap, rows: np.ndarray) -> np.ndarray:
        """``arr[rows]`` read in ascending row order, each distinct row once (disk-friendly)."""
        if rows.size and np.all(rows[1:] == rows[:-1] + 1):
            return np.array(arr[rows[0] : rows[-1] + 1])  # a consecutive run: one slice
        uniq, inverse = np.unique(rows, return_inverse=True)
        out = arr[uniq]  # sorted fancy indexing on the memmap -> an in-memory copy of these rows only
        return out if uniq.size == rows.size and np.all(inverse == np.arange(rows.size)) else out[inverse.reshape(-1)]

    def batch(self, index: Any) -> Batch:
        """The rows ``index`` (LongTensor or bool mask) as a `Batch`, read from disk.

        ``x[group]`` is float32 ``[B, ...]`` with NaN -> 0; ``x_mask[group]`` is bool, ``[B, ...]`` when
        the rows hold a NaN (False there) and ``[B, 1, ...]`` when they are fully observed (`Batch.cat`
        broadcasts the two); ``y`` / ``y_mask`` as in `PartialDataset` (int64 ``[B]`` or float32
        ``[B, D]``, bool ``[B]``).
        """
        positions = self._rows(index)
        rows = positions if self._row_map is None else self._row_map[positions]  # file rows
        b = int(rows.size)
        x, mask = self._read_rows(rows)  # [B, ...], mask [1|B, ...] as stored
        if self._row_shape is not None:
            x, mask = x.reshape(b, *self._row_shape), reshape_mask(mask, self.stored_shape, self._row_shape)
        if mask.shape[0] != b:  # no NaN in these rows: fully observed, [B, 1, ...] (models skip the masking)
            mask = mask.expand(b, *mask.shape[1:]).clone()
        if self.binarize and b and (x.min() < 0 or x.max() > 1):
            raise ValueError(
                f"{self.x_path}: binarize=True needs values in [0, 1] (Bernoulli probabilities) but rows "
                f"{rows[:3].tolist()}... span [{x.min().item():g}, {x.max().item():g}]; scale the data (e.g. /255) or pass binarize=False"
            )
        if self.y is None:
            return Batch(x={self.group: x}, x_mask={self.group: mask})
        at = torch.from_numpy(positions)
        return Batch(x={self.group: x}, x_mask={self.group: mask}, y=self.y[at], y_mask=self.y_mask[at])

    def _read_rows(self, rows: np.ndarray) -> tuple[Tensor, Tensor]:
        """File rows ``rows`` as (float32 values, mask) in the stored row shape, converted by the
        rules of `PartialDataset.from_arrays` (NaN -> 0 and mask False, uint8 k -> k / 255)."""
        if rows.size == 0:
            x = torch.zeros(0, *self.stored_shape, dtype=torch.float32)
            return x, torch.ones(0, *([1] * (x.dim() - 1)), dtype=torch.bool)
        return _group_from_array(self.group, self._read(self.x_array, rows), f"rows of {self.x_path}")

    def observed_range(self, group: str | None = None, max_rows: int = 4096, max_bytes: int = 64 << 20) -> tuple[float, float] | None:
        """``(min, max)`` of the observed values, as batches give them, without reading the store
        wholesale: for uint8 and bool stores the bounds [0, 1] that the dtype guarantees (nothing
        is read); otherwise the exact range of at most ``max_rows`` evenly spaced rows of this
        dataset (or view) and at most ``max_bytes`` read, which is every row of a small store and
        a sample of a large one. None when no sampled value is observed."""
        if group not in (None, self.group):
            raise KeyError(f"{self.name!r} has the group {self.group!r}, not {group!r}")
        if self.x_array.dtype in (np.uint8, np.bool_):
            return 0.0, 1.0
        n = len(self)
        row_bytes = max(1, self.x_array.itemsize * math.prod(self.stored_shape))
        count = max(1, min(n, int(max_rows), int(max_bytes) // row_bytes))
        positions = np.unique(np.linspace(0, n - 1, count).round().astype(np.int64))
        rows = positions if self._row_map is None else self._row_map[positions]
        return observed_range(*self._read_rows(np.sort(rows)))

    def with_row_shape(self, row_shape: tuple[int, ...], name: str | None = None) -> MemmapDataset:
        """A view over the same files whose rows are reshaped to ``row_shape`` as they are read
        (same values in C order, masks reshaped with them; e.g. stored ``[N, 784]`` read as
        ``[N, 1, 28, 28]``)."""
        row_shape = tuple(int(s) for s in row_shape)
        if math.prod(row_shape) != math.prod(self.stored_shape):
            raise _problem(self.x_path, f"rows of shape {list(self.stored_shape)} cannot be read as {list(row_shape)}: the number of values differs")
        view = copy.copy(self)
        view._row_shape = None if row_shape == self.stored_shape else row_shape
        view.name = name or self.name
        return view

    def subset(self, index: Any, name: str | None = None) -> MemmapDataset:
        """A view of the rows ``index`` over the same files (nothing is read; the labels are copied)."""
        positions = self._rows(index)
        view = copy.copy(self)
        view._row_map = positions if self._row_map is None else self._row_map[positions]
        if self.y is not None:
            at = torch.from_numpy(positions)
            view.y, view.y_mask = self.y[at], self.y_mask[at]
        view.name = name or self.name
        return view

    def to_memory(self) -> PartialDataset:
        """Every row of this dataset (or view) read into an in-memory `PartialDataset` (use it for
        held-out sets and other sets that fit in memory)."""
        whole = self.batch(torch.arange(len(self)))
        return PartialDataset(
            x=whole.x, x_mask=whole.x_mask, y=whole.y, y_mask=whole.y_mask, num_classes=self.num_classes,
            binarize=self.binarize, dequantize=self.dequantize, name=self.name,
        )

    def iter_chunks(self, chunk_size: int) -> Iterator[Batch]:
        """Yield the whole store in order as `Batch`es of ``chunk_size`` consecutive rows (the last may
        be smaller); only one chunk is in memory at a time."""
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
        n = len(self)
        for start in range(0, n, int(chunk_size)):
            yield self.batch(torch.arange(start, min(start + int(chunk_size), n)))

    def __repr__(self) -> str:
        if self.y is None:
            labels = "no labels"
        else:
            labels = "continuous labels" if self.y.dim() == 2 else f"{self.num_classes} classes"
        view = "" if self._row_map is None else f" (a view of {self.x_array.shape[0]} rows)"
        return (
            f"MemmapDataset({self.name!r}, n={len(self)}{view}, {{{self.group}: {self.shapes[self.group]} "
            f"{self.x_array.dtype}}}, {labels}, dir={str(self.directory)!r})"
        )


# ---------------------------------------------------------------------------------------- writing
def _chunks(x: Any, y: Any, chunk_size: int) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """(x_chunk, y_chunk) pairs from arrays (sliced) or from an iterable of chunks."""
    if hasattr(x, "shape") and hasattr(x, "__getitem__"):
        n = x.shape[0]
        if y is not None and (not hasattr(y, "shape") or y.shape[0] != n):
            raise ValueError(f"y has shape {tuple(getattr(y, 'shape', ()))} but x has {n} rows; y needs one label per row of x")
        for start in range(0, n, chunk_size):
            xc = x[start : start + chunk_size]
            yc = None if y is None else y[start : start + chunk_size]
            yield xc, yc
        return
    if y is not None:
        raise ValueError("when x is an iterable of chunks, give labels in it as (x_chunk, y_chunk) pairs, not as y")
    for item in x:
        if isinstance(item, tuple):
            if len(item) != 2:
                raise ValueError(f"a chunk must be an array or an (x_chunk, y_chunk) pair, got a tuple of {len(item)}")
            yield item[0], item[1]
        else:
            yield item, None


def _as_numpy(a: Any, what: str) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    if a.dtype.hasobject or a.dtype.kind not in _NUMERIC_KINDS:
        raise ValueError(f"{what} has dtype {a.dtype}; a memmap store holds plain numeric arrays (float, integer or bool)")
    return a


class _Writer:
    """One ``.npy`` file written chunk by chunk: straight into an `open_memmap` when the row count is
    known, else to a raw temporary file that gets its header once the row count is known."""

    def __init__(self, path: Path, n_rows: int | None) -> None:
        self.path, self.n_rows = path, n_rows
        self.tmp = path.with_name(path.name + ".partial")
        self.rows = 0
        self.dtype: np.dtype | None = None
        self.tail: tuple[int, ...] | None = None
        self.mm: np.memmap | None = None
        self.raw = None

    def add(self, chunk: np.ndarray, what: str) -> None:
        if chunk.ndim == 0:
            raise ValueError(f"{what} is a scalar; chunks are arrays [rows, ...]")
        if self.dtype is None:
            self.dtype, self.tail = chunk.dtype, tuple(chunk.shape[1:])
            if self.n_rows is not None:
                self.mm = np.lib.format.open_memmap(self.tmp, mode="w+", dtype=self.dtype, shape=(self.n_rows, *self.tail))
            else:
                self.raw = open(self.tmp, "wb")
        if tuple(chunk.shape[1:]) != self.tail:
            raise ValueError(f"{what} has shape {tuple(chunk.shape)}; earlier chunks of {self.path.name} have rows of shape {self.tail}")
        chunk = np.ascontiguousarray(chunk, dtype=self.dtype)
        end = self.rows + chunk.shape[0]
        if self.mm is not None:
            if end > self.mm.shape[0]:
                raise ValueError(f"the chunks hold more than n_rows={self.n_rows} rows")
            self.mm[self.rows : end] = chunk
        else:
            self.raw.write(chunk.tobytes())
        self.rows = end

    def finish(self) -> None:
        if self.dtype is None:
            raise ValueError(f"no data was given for {self.path.name}: a store needs at least one row")
        if self.mm is not None:
            if self.rows != self.mm.shape[0]:
                raise ValueError(f"the chunks hold {self.rows} rows but n_rows={self.n_rows}")
            self.mm.flush()
            del self.mm
            self.mm = None
        else:
            self.raw.close()
            final = self.path.with_name(self.path.name + ".assemble")
            header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False, "shape": (self.rows, *self.tail)}
            with open(final, "wb") as out, open(self.tmp, "rb") as src:
                np.lib.format.write_array_header_2_0(out, header)
                shutil.copyfileobj(src, out, 1 << 24)
            os.remove(self.tmp)
            os.replace(final, self.tmp)
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        if self.raw is not None:
            self.raw.close()
        self.mm = None
        for p in (self.tmp, self.path.with_name(self.path.name + ".assemble")):
            if p.exists():
                os.remove(p)


def write_memmap_store(
    directory: str | os.PathLike,
    x: Any,
    y: Any = None,
    chunk_size: int = 65536,
    n_rows: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a memmap store (``directory/x.npy``, and ``y.npy`` if labels are given) chunk by chunk.

    Args:
        directory: the store directory (created if missing).
        x: the data, either an array ``[N, ...]`` (numpy, torch or an `np.memmap`; read ``chunk_size``
            rows at a time) or an iterable of chunks, each an array ``[rows, ...]`` or a pair
            ``(x_chunk [rows, ...], y_chunk [rows] or [rows, D])``. The dtype of the first chunk is the
            store's (e.g. keep uint8 images as uint8: 4x smaller than float32); NaN = missing.
        y: labels ``[N]`` / ``[N, D]`` when ``x`` is an array (with chunks, give pairs instead).
        chunk_size: rows per chunk when ``x`` is an array.
        n_rows: the total number of rows, when ``x`` is an iterable and it is known: the files are then
            written in place with `np.lib.format.open_memmap`; without it each file is first written raw
            and then prefixed with its header (one extra copy on disk, never in memory).
        overwrite: replace an existing store in ``directory``.

    Returns:
        The directory.

    Raises:
        FileExistsError: the directory already holds ``x.npy`` or ``y.npy`` and ``overwrite`` is False.
        ValueError: non-numeric arrays, chunks whose rows change shape, labels on some chunks only or
            with another row count than their x chunk, a row count other than ``n_rows``, no rows.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a whole number >= 1, got {chunk_size!r}")
    directory = Path(directory).expanduser()
    directory.mkdir(parents=True, exist_ok=True)
    x_path, y_path = directory / "x.npy", directory / "y.npy"
    if not overwrite and (x_path.exists() or y_path.exists()):
        raise FileExistsError(f"{directory} already holds a memmap store; pass overwrite=True to replace it")
    if hasattr(x, "shape") and hasattr(x, "__getitem__"):
        n_rows = int(x.shape[0])
    xw, yw = _Writer(x_path, n_rows), _Writer(y_path, n_rows)
    has_y: bool | None = None
    try:
        for i, (xc, yc) in enumerate(_chunks(x, y, int(chunk_size))):
            xc = _as_numpy(xc, f"x chunk {i}")
            if has_y is None:
                has_y = yc is not None
            elif has_y != (yc is not None):
                raise ValueError(f"chunk {i} {'lacks' if has_y else 'has'} labels unlike the first chunk: give labels with every chunk or none")
            xw.add(xc, f"x chunk {i}")
            if yc is not None:
                yc = _as_numpy(yc, f"y chunk {i}")
                if yc.ndim == 0 or yc.shape[0] != xc.shape[0]:
                    raise ValueError(f"y chunk {i} has shape {tuple(yc.shape)} but x chunk {i} has {xc.shape[0]} rows")
                yw.add(yc, f"y chunk {i}")
        xw.finish()
        if has_y:
            yw.finish()
        elif overwrite and y_path.exists():
            os.remove(y_path)  # a stale y.npy from the replaced store
    except BaseException:
        xw.abort()
        yw.abort()
        raise
    return directory
