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
    assert torch.equal(got, torch.from_numpy(x.astype(np.float32) / np.float32(255)))  # uint8 k is read as k / 255
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


# ------------------------------------------------------------------------ training from a store
def _images(n=300, seed=0):
    """Binary-ish 6x6 images in [0, 1] (uint8 storage / 255 would also do) with class labels 0..2."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = (rng.random((n, 1, 6, 6)) < 0.2 + 0.3 * y[:, None, None, None]).astype(np.float32)  # [N, 1, 6, 6]
    return x, y.astype(np.int64)


def test_stream_over_a_store_draws_the_same_batches_as_in_memory(tmp_path):
    from pogm.data import SemiSupervisedStream

    x, y = _images()
    write_memmap_store(tmp_path, x, y, chunk_size=64)
    on_disk = MemmapDataset(tmp_path, binarize=True)
    in_memory = PartialDataset.from_arrays(x, y, binarize=True)
    labelled = torch.arange(0, 300, 10)
    for rank, world in ((0, 1), (1, 2)):
        kwargs = dict(labelled_index=labelled, batch_size=40, labelled_batch_size=20, seed=5, rank=rank, world_size=world)
        a, b = SemiSupervisedStream(on_disk, **kwargs), SemiSupervisedStream(in_memory, **kwargs)
        for _ in range(2 * a.steps_per_epoch + 3):  # across epoch ends, with fresh binarisation
            _assert_same(a.next_batch(), b.next_batch())
        assert a.state_dict()["generator"].equal(b.state_dict()["generator"])


def test_shuffle_window_reads_each_minibatch_from_at_most_two_windows(tmp_path):
    from pogm.data import SemiSupervisedStream

    x, y = _images(n=1000)
    write_memmap_store(tmp_path, x, y)
    store = MemmapDataset(tmp_path)
    stream = SemiSupervisedStream(store, batch_size=50, labelled_batch_size=0, seed=1, shuffle_window=200)
    orders = []
    for _ in range(2):
        stream.next_batch()  # starts the epoch's order
        order = stream._perm.clone()
        orders.append(order)
        assert torch.equal(torch.sort(order).values, torch.arange(1000))  # a permutation
        windows = order // 200
        for start in range(0, 1000, 50):
            assert windows[start : start + 50].unique().numel() <= 2
        assert windows.unique_consecutive().numel() == 5  # every window is visited in one piece
        for _ in range(stream.steps_per_epoch - 1):
            stream.next_batch()
    assert not torch.equal(orders[0], orders[1])
    visits = [order[::200] // 200 for order in orders]  # the order of the windows in each epoch
    assert any(not torch.equal(v, torch.arange(5)) for v in visits)  # windows in random order, not file order
    with pytest.raises(ValueError, match="shuffle_window"):
        SemiSupervisedStream(store, batch_size=50, shuffle_window=-1)


def _final_weights(run_dir):
    from safetensors.torch import load_file

    return load_file(str(run_dir / "model.safetensors"))


def test_training_from_a_store_equals_training_from_the_same_npz(tmp_path):
    """The memmap source splits rows like the .npz source, and its stream draws the same batches,
    so M2 trained from either ends with the same parameters, bit for bit."""
    import pogm

    x, y = _images(n=400, seed=3)
    np.savez(tmp_path / "same.npz", x=x, y=y)
    write_memmap_store(tmp_path / "same", x, y, chunk_size=100)
    settings = {"model": {"hidden": [16], "z_dim": 2}, "train": {"max_steps": 12, "batch_size": 20, "labelled_batch_size": 10, "eval_every": 1}}
    runs = {}
    for kind, data, options in (("npz", str(tmp_path / "same.npz"), {}), ("memmap", "memmap", {"path": str(tmp_path / "same")})):
        runs[kind] = pogm.train("m2", data=data, labels=5, seed=2, out=tmp_path / kind, overrides={**settings, "data": options}, progress=False).dir
    a, b = _final_weights(runs["npz"]), _final_weights(runs["memmap"])
    assert sorted(a) == sorted(b)
    for name in a:
        assert a[name].numpy().tobytes() == b[name].numpy().tobytes(), name
    loaded = pogm.load_run(runs["memmap"])  # the run rebuilds with its data on disk
    assert isinstance(loaded.data.train, MemmapDataset) and loaded.data.info["source"] == "memmap"
    from pogm.cli import main

    for command in (["eval"], ["sample"], ["report"]):  # nothing after training needs the data in memory
        assert main([*command, str(runs["memmap"])]) == 0
    assert (runs["memmap"] / "report.html").is_file()


def test_memmap_source_layouts_and_errors(tmp_path):
    from pogm.data import load_source

    x, y = _images(n=120)
    write_memmap_store(tmp_path / "parts" / "train", x[:100], y[:100])
    write_memmap_store(tmp_path / "parts" / "test", x[100:], y[100:])
    splits = load_source("memmap", path=str(tmp_path / "parts"), valid_fraction=0.2)
    assert isinstance(splits.train, MemmapDataset) and isinstance(splits.test, PartialDataset)
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (80, 20, 20)
    assert torch.equal(splits.test.x["x"], torch.from_numpy(x[100:]))
    assert splits.train.num_classes == 3 and splits.info["groups"] == {"x": [1, 6, 6]}

    with pytest.raises(ValueError, match="data.path"):
        load_source("memmap")
    with pytest.raises(FileNotFoundError, match="train/ store"):
        load_source("memmap", path=str(tmp_path / "nothing-here"))
    write_memmap_store(tmp_path / "parts", x, y)  # x.npy beside train/ and test/
    with pytest.raises(ValueError, match="keep one layout"):
        load_source("memmap", path=str(tmp_path / "parts"))
    write_memmap_store(tmp_path / "kinds" / "train", x, y)
    write_memmap_store(tmp_path / "kinds" / "test", x, np.random.default_rng(0).random((120, 2)).astype(np.float32))
    with pytest.raises(ValueError, match="different labels"):
        load_source("memmap", path=str(tmp_path / "kinds"))
    write_memmap_store(tmp_path / "one-based", x, y + 1)
    with pytest.raises(ValueError, match=r"1-based"):
        load_source("memmap", path=str(tmp_path / "one-based"))
    write_memmap_store(tmp_path / "uint8", (x * 255).astype(np.uint8), y)  # uint8 k is read as k / 255: in [0, 1]
    write_memmap_store(tmp_path / "float", x, y)
    assert torch.equal(load_source("memmap", path=str(tmp_path / "uint8"), binarize=True).test.x["x"], load_source("memmap", path=str(tmp_path / "float")).test.x["x"])
    write_memmap_store(tmp_path / "grey", x * 255, y)  # floats on 0..255 are read as they are
    with pytest.raises(ValueError, match=r"binarize=True needs values in \[0, 1\].*rows"):
        load_source("memmap", path=str(tmp_path / "grey"), binarize=True)  # the held-out parts are read at once
    store = MemmapDataset(tmp_path / "grey", binarize=True)  # the training part: each batch read is checked
    with pytest.raises(ValueError, match=r"grey/x\.npy: binarize=True needs values in \[0, 1\].*rows"):
        store.batch(torch.arange(10))


def test_subset_views_share_the_files(tmp_path):
    x, y = _images(n=50)
    write_memmap_store(tmp_path, x, y)
    store = MemmapDataset(tmp_path)
    view = store.subset(torch.tensor([40, 3, 17]))
    assert len(view) == 3 and view.x_array is store.x_array
    _assert_same(view.batch(torch.tensor([2, 0])), PartialDataset.from_arrays(x, y).batch(torch.tensor([17, 40])))
    nested = view.subset(torch.tensor([1]))
    assert torch.equal(nested.batch(torch.tensor([0])).x["x"], torch.from_numpy(x[3:4]))
    memory = view.to_memory()
    assert isinstance(memory, PartialDataset) and torch.equal(memory.y, torch.from_numpy(y[[40, 3, 17]]))
    with pytest.raises(IndexError):
        view.batch(torch.tensor([3]))


LIMITED_TRAINING = r"""
import resource, sys
import numpy as np
import pogm, torch
from pogm.data.memmap import MemmapDataset

def vm_data():
    for line in open("/proc/self/status"):
        if line.startswith("VmData"):
            return int(line.split()[1]) * 1024

# From here on the process may allocate only LIMIT more bytes of data: less than the store's x.npy.
limit = int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_DATA, (vm_data() + limit, resource.RLIM_INFINITY))
try:
    torch.zeros(int(sys.argv[3]) // 4)  # the store as float32 cannot be held: the limit is real
    raise SystemExit("the memory limit does not hold")
except RuntimeError:
    pass
run = pogm.train("vae", data="memmap", out=sys.argv[4], progress=False, overrides={
    "model": {"hidden": [32], "z_dim": 4},
    "data": {"path": sys.argv[1], "valid_fraction": 0.001},  # 400 validation rows cut from the store
    "train": {"max_steps": 30, "batch_size": 100, "eval_every": 1, "eval_elbo_limit": 200, "shuffle_window": 10000},
})
print("trained", run)
"""


def _sparse_store(directory, rows, row_shape, test_rows):
    """A store whose x.npy is a sparse file of zeros (instant to make, no disk used) plus a small
    test store, so that the data is far larger than the memory the training may use."""
    train = directory / "train"
    train.mkdir(parents=True)
    with open(train / "x.npy", "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, *row_shape)})
        f.truncate(f.tell() + rows * int(np.prod(row_shape)) * 4)
    write_memmap_store(directory / "test", np.zeros((test_rows, *row_shape), np.float32))
    return rows * int(np.prod(row_shape)) * 4


def test_training_from_a_store_larger_than_the_memory_allowed(tmp_path):
    """A training process whose data allowance (RLIMIT_DATA) is a quarter of the store's size
    trains from it: only minibatches are read. Reading the store into memory would fail."""
    import subprocess
    import sys

    store_bytes = _sparse_store(tmp_path / "big", rows=400_000, row_shape=(784,), test_rows=500)  # 1.25 GB of float32
    limit = store_bytes // 4
    result = subprocess.run(
        [sys.executable, "-c", LIMITED_TRAINING, str(tmp_path / "big"), str(limit), str(store_bytes), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "trained" in result.stdout
    records = [line for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines() if line]
    assert records and (tmp_path / "run" / "model.safetensors").is_file()


def test_fully_observed_rows_get_compact_masks_that_cat_with_full_ones(tmp_path):
    from pogm.data import Batch

    x = np.ones((6, 2, 3), np.float32)
    x[4, 1, 2] = np.nan
    write_memmap_store(tmp_path, x)
    store = MemmapDataset(tmp_path)
    clean, holed = store.batch(torch.tensor([0, 1])), store.batch(torch.tensor([4, 5]))
    assert clean.x_mask["x"].shape == (2, 1, 1) and holed.x_mask["x"].shape == (2, 2, 3)
    both = Batch.cat([clean, holed])
    assert both.x_mask["x"].shape == (4, 2, 3)
    assert both.x_mask["x"].sum() == 4 * 6 - 1 and not both.x_mask["x"][2, 1, 2]
