"""Memory-mapped .npy stores (`pogm.data.memmap`): same Batch contract as an in-memory PartialDataset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pogm.data import PartialDataset
from pogm.data.memmap import MemmapDataset, write_memmap_store
from pogm.data.streams import iterate_batches


def _arrays(n=37, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 2, 3, 4), dtype=np.float32)  # [N, C, H, W]
    x[rng.random(x.shape) < 0.1] = np.nan
    y = rng.integers(0, 5, size=n).astype(np.int64)  # [N]
    y[rng.random(n) < 0.3] = -1
    y[0] = 4  # class 4 is present somewhere
    return x, y


def _assert_same(b, ref):
    for k in ref.x:
        assert torch.equal(b.x[k], ref.x[k])
        assert b.x[k].dtype == torch.float32
        shape = b.x[k].shape
        assert torch.equal(b.x_mask[k].expand(shape), ref.x_mask[k].expand(shape))
    if ref.y is None:
        assert b.y is None
    else:
        assert torch.equal(b.y, ref.y) and b.y.dtype == ref.y.dtype
        assert torch.equal(b.y_mask, ref.y_mask)


def test_chunked_store_matches_in_memory_dataset(tmp_path):
    x, y = _arrays()
    chunks = ((x[i : i + 8], y[i : i + 8]) for i in range(0, len(x), 8))  # an iterator, row count unknown
    write_memmap_store(tmp_path / "s", chunks)
    ds = MemmapDataset(tmp_path / "s")
    ref = PartialDataset.from_arrays(x.copy(), y.copy())
    assert len(ds) == len(ref) and ds.num_classes == ref.num_classes == 5
    # really memory-mapped: the dataset holds memmaps, not in-memory copies
    assert isinstance(ds.x_array, np.memmap) and isinstance(ds.y_array, np.memmap)
    assert not hasattr(ds, "x")
    rng = np.random.default_rng(1)
    for _ in range(4):
        idx = torch.as_tensor(rng.integers(0, len(x), size=11))  # unsorted, with repeats
        b = ds.batch(idx)
        _assert_same(b, ref.batch(idx))
        assert b.x_mask["x"].shape == b.x["x"].shape
    nan_rows = torch.as_tensor(np.flatnonzero(np.isnan(x).reshape(len(x), -1).any(1))[:3])
    assert not ds.batch(nan_rows).x_mask["x"].all()  # NaN -> mask False
    bool_idx = torch.as_tensor(rng.random(len(x)) < 0.5)
    _assert_same(ds.batch(bool_idx), ref.batch(bool_idx))
    assert len(ds.batch(torch.zeros(0, dtype=torch.long))) == 0


def test_iter_chunks_covers_every_row_once(tmp_path):
    x = (np.arange(23 * 6) % 256).astype(np.uint8).reshape(23, 6)
    write_memmap_store(tmp_path, x, chunk_size=5)  # array input -> open_memmap path
    ds = MemmapDataset(tmp_path)
    assert ds.y_array is None
    parts = list(ds.iter_chunks(7))
    assert [len(p) for p in parts] == [7, 7, 7, 2]
    got = torch.cat([p.x["x"] for p in parts])
    assert torch.equal(got, torch.from_numpy(x.astype(np.float32)))
    assert all(p.x_mask["x"].shape == (len(p), 1) and p.x_mask["x"].all() for p in parts)
    ref = PartialDataset.from_arrays(x)
    for b, r in zip(iterate_batches(ds, 10), iterate_batches(ref, 10)):  # the ordered evaluation loop works too
        _assert_same(b, r)


def test_continuous_labels_and_n_rows(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.random((10, 3)).astype(np.float16)
    y = rng.random((10, 2)).astype(np.float32)
    y[3, 1] = np.nan
    write_memmap_store(tmp_path, ((x[i : i + 4], y[i : i + 4]) for i in range(0, 10, 4)), n_rows=10)
    ds = MemmapDataset(tmp_path)
    assert ds.x_array.dtype == np.float16 and ds.num_classes is None
    idx = torch.tensor([9, 3, 0])
    _assert_same(ds.batch(idx), PartialDataset.from_arrays(x, y).batch(idx))


def test_bad_stores_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="x.npy"):
        MemmapDataset(tmp_path)
    np.save(tmp_path / "x.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"x\.npy.*Python objects"):
        MemmapDataset(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros((4, 3), np.float32))
    np.save(tmp_path / "y.npy", np.zeros(5, np.int64))
    with pytest.raises(ValueError, match=r"y\.npy.*one label per row"):
        MemmapDataset(tmp_path)
    np.save(tmp_path / "y.npy", np.array([0, 1, -2, 1]))
    with pytest.raises(ValueError, match=r"y\.npy.*negative class label"):
        MemmapDataset(tmp_path)
    np.save(tmp_path / "x.npy", np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"x\.npy.*at least 2-D"):
        MemmapDataset(tmp_path)
    (tmp_path / "x.npy").write_bytes(b"not an npy file at all")
    with pytest.raises(ValueError, match=r"x\.npy.*not a valid \.npy"):
        MemmapDataset(tmp_path)
    with pytest.raises(FileExistsError):
        write_memmap_store(tmp_path, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="one label per row"):
        write_memmap_store(tmp_path / "w", np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="earlier chunks"):
        write_memmap_store(tmp_path / "w2", iter([np.zeros((2, 3)), np.zeros((2, 4))]))
    assert not (tmp_path / "w2" / "x.npy").exists() and not list((tmp_path / "w2").iterdir())
    with pytest.raises(ValueError, match="n_rows=5"):
        write_memmap_store(tmp_path / "w3", iter([np.zeros((2, 3))]), n_rows=5)
