"""Tests of pogm.data: masks from NaN, label splits, semi-supervised streams, sources.

MNIST is read from $POGM_DATA (the Makefile sets ../shared/data) and skipped when absent; nothing
here touches the network.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from pogm.data import (
    Batch,
    PartialDataset,
    SemiSupervisedStream,
    balanced_label_split,
    iterate_batches,
    list_sources,
    load_source,
    load_split,
    save_split,
)


def id_dataset(n: int = 50, num_classes: int = 5, binarize: bool = False) -> PartialDataset:
    """Rows whose first feature is the row index, so batches can be traced back to rows."""
    x = np.zeros((n, 3), dtype=np.float32)
    x[:, 0] = np.arange(n)
    x[:, 1] = 0.5
    y = np.arange(n) % num_classes
    return PartialDataset.from_arrays(x, y, num_classes=num_classes, binarize=binarize)


def rows_of(batch: Batch) -> torch.Tensor:
    return batch.x["x"][:, 0].long()


# ---------------------------------------------------------------------- PartialDataset


def test_nan_becomes_unobserved_zero():
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    x[0, 1, 2] = np.nan
    x[1, 0, 0] = np.nan
    d = PartialDataset.from_arrays(x)
    assert d.x["x"].dtype == torch.float32 and not torch.isnan(d.x["x"]).any()
    assert d.x["x"][0, 1, 2] == 0 and d.x["x"][1, 0, 0] == 0
    mask = d.x_mask["x"]
    assert mask.dtype == torch.bool and mask.shape == (2, 3, 4)
    assert (~mask).sum() == 2 and not mask[0, 1, 2] and not mask[1, 0, 0]
    observed = torch.from_numpy(np.nan_to_num(x, nan=0.0))
    assert torch.equal(d.x["x"], observed)
    b = d.batch(torch.tensor([1]))
    assert not b.x_mask["x"][0, 0, 0] and b.x_mask["x"].sum() == 11


def test_fully_observed_mask_is_cheap_but_batches_have_rows():
    d = PartialDataset.from_arrays(np.ones((10, 1, 4, 4), dtype=np.float32))
    assert d.x_mask["x"].numel() == 1
    b = d.batch(torch.arange(3))
    assert b.x_mask["x"].shape == (3, 1, 1, 1) and b.x_mask["x"].all()
    assert d.subset(torch.tensor([0, 5])).batch(torch.tensor([1])).x["x"].shape == (1, 1, 4, 4)


def test_unlabelled_markers_and_inferred_classes():
    x = np.zeros((5, 2))
    d = PartialDataset.from_arrays(x, np.array([0, -1, 3, np.nan, 1]))
    assert d.num_classes == 4
    assert d.y.dtype == torch.int64 and d.y.tolist() == [0, 0, 3, 0, 1]
    assert d.y_mask.tolist() == [True, False, True, False, True]
    assert d.labelled_index().tolist() == [0, 2, 4]
    hidden = d.with_labels_hidden(torch.tensor([2, 3]))
    assert hidden.y_mask.tolist() == [False, False, True, False, False]
    assert hidden.y.tolist() == [0, 0, 3, 0, 0]
    assert d.y_mask.sum() == 3  # the original is untouched


def test_continuous_labels_with_nan_rows():
    y = np.array([[0.1, 0.2], [np.nan, 0.3], [0.5, 0.6]])
    d = PartialDataset.from_arrays(np.zeros((3, 2)), y)
    assert d.num_classes is None and d.y.dtype == torch.float32
    assert d.y_mask.tolist() == [True, False, True] and d.y[1].tolist() == [0.0, 0.0]


@pytest.mark.parametrize(
    "x, y, kwargs, message",
    [
        (np.zeros(5), None, {}, "at least 2-D"),
        (np.zeros((5, 2)), np.zeros(4), {}, "one label per row"),
        (np.zeros((3, 2)), np.array([0, 1, 7]), {"num_classes": 3}, "class label 7 but num_classes=3"),
        (np.zeros((3, 2)), np.array([0, -2, 1]), {}, "negative class label -2"),
        (np.zeros((3, 2)), np.array([0.0, 1.5, 1.0]), {}, "non-integer class label 1.5"),
        (np.full((3, 2), 2.0), None, {"binarize": True}, r"values in \[0, 1\]"),
        (np.array([[1.0, np.inf]]), None, {}, "inf"),
        ({"a": np.zeros((3, 2)), "b": np.zeros((4, 2))}, None, {}, "same number of rows"),
    ],
)
def test_from_arrays_rejects_bad_input(x, y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PartialDataset.from_arrays(x, y, **kwargs)


def test_binarized_is_fixed_by_seed():
    d = PartialDataset.from_arrays(np.full((20, 30), 0.5, dtype=np.float32), binarize=True)
    a, b, c = d.binarized(1), d.binarized(1), d.binarized(2)
    assert torch.equal(a.x["x"], b.x["x"]) and not torch.equal(a.x["x"], c.x["x"])
    assert set(a.x["x"].unique().tolist()) == {0.0, 1.0} and not a.binarize


# ---------------------------------------------------------------------- label splits


def test_balanced_label_split():
    y = torch.arange(1000) % 10
    idx = balanced_label_split(y, 7, 10, seed=0)
    assert idx.dtype == torch.long and len(idx) == 70
    assert torch.equal(idx, torch.sort(idx).values) and len(idx.unique()) == 70
    assert torch.bincount(y[idx], minlength=10).tolist() == [7] * 10
    assert torch.equal(idx, balanced_label_split(y.numpy(), 7, 10, seed=0))
    assert not torch.equal(idx, balanced_label_split(y, 7, 10, seed=1))


def test_balanced_label_split_too_few_and_mask():
    y = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    with pytest.raises(ValueError, match="class 1 has only 2 labelled examples"):
        balanced_label_split(y, 3, 3, seed=0)
    mask = torch.tensor([True, True, False, True, True, True, True, False])
    assert balanced_label_split(y, 2, 3, seed=0, y_mask=mask).tolist() == [0, 1, 3, 4, 5, 6]


@pytest.mark.parametrize("name", ["labels.json", "labels.npy"])
def test_split_round_trip(tmp_path: Path, name: str):
    idx = torch.tensor([3, 1, 4, 1, 5, 9, 2, 6])
    save_split(tmp_path / "run" / name, idx)
    assert torch.equal(load_split(tmp_path / "run" / name), idx)


# ---------------------------------------------------------------------- streams


def test_stream_labelled_rows_first_and_epoch_covers_pool():
    d = id_dataset(50)
    lab = torch.tensor([2, 7, 11, 20, 33, 41])
    s = SemiSupervisedStream(d, lab, batch_size=10, labelled_batch_size=4, seed=0)
    assert s.steps_per_epoch == 5 == len(s)
    batches = list(s)
    assert len(batches) == 5 and s.epoch == 1
    seen_unlabelled, seen_labelled = [], []
    for b in batches:
        assert len(b) == 14
        assert b.y_mask[:4].all() and not b.y_mask[4:].any()
        assert (b.y[4:] == 0).all()
        rows = rows_of(b)
        assert torch.equal(b.y[:4], rows[:4] % 5)  # labelled rows carry their true labels
        seen_labelled.append(rows[:4])
        seen_unlabelled.append(rows[4:])
    assert sorted(torch.cat(seen_unlabelled).tolist()) == list(range(50))  # one pass, no repeats
    # The labelled pool (6) is walked 4 at a time: each cycle of one permutation has no repeats.
    for r in seen_labelled:
        assert set(r.tolist()) <= set(lab.tolist()) and len(r.unique()) == 4
    second = torch.cat([rows_of(b)[4:] for b in s])
    assert not torch.equal(second, torch.cat(seen_unlabelled))  # a fresh permutation per epoch
    assert sorted(second.tolist()) == list(range(50))


def test_stream_whole_labelled_pool_each_step():
    d = id_dataset(30)
    lab = torch.tensor([0, 5, 10])
    s = SemiSupervisedStream(d, lab, batch_size=6, labelled_batch_size=100, seed=3)
    orders = []
    for b in s:
        assert len(b) == 9 and sorted(rows_of(b)[:3].tolist()) == [0, 5, 10]
        orders.append(tuple(rows_of(b)[:3].tolist()))
    assert len(set(orders)) > 1  # a new order each step


def test_stream_unsupervised_and_supervised():
    d = id_dataset(40)
    unsup = list(SemiSupervisedStream(d, None, batch_size=8))
    assert len(unsup) == 5 and all(len(b) == 8 and not b.y_mask.any() and (b.y == 0).all() for b in unsup)
    lab = torch.arange(0, 40, 2)
    sup = list(SemiSupervisedStream(d, lab, batch_size=0, labelled_batch_size=5))
    assert len(sup) == 4 and all(len(b) == 5 and b.y_mask.all() for b in sup)
    assert sorted(torch.cat([rows_of(b) for b in sup]).tolist()) == lab.tolist()
    with pytest.raises(ValueError, match="without a label"):
        SemiSupervisedStream(d.with_labels_hidden(torch.tensor([1])), torch.tensor([0, 1]))


def test_stream_rebinarises_each_epoch():
    d = PartialDataset.from_arrays(np.full((1, 200), 0.5, dtype=np.float32), binarize=True)
    s = SemiSupervisedStream(d, None, batch_size=1, seed=0)
    (first,), (second,) = list(s), list(s)
    for b in (first, second):
        assert set(b.x["x"].unique().tolist()) == {0.0, 1.0}
    assert not torch.equal(first.x["x"], second.x["x"])
    assert d.x["x"].eq(0.5).all()  # the dataset itself is untouched
    (grey,) = list(SemiSupervisedStream(d, None, batch_size=1, binarize=False))
    assert grey.x["x"].eq(0.5).all()


def test_stream_resume_reproduces_next_batches():
    d = id_dataset(50)
    kwargs = dict(batch_size=8, labelled_batch_size=4, seed=11)
    lab = balanced_label_split(d.y, 2, 5, seed=0)
    a = SemiSupervisedStream(d, lab, binarize=False, **kwargs)
    for _ in range(8):  # crosses the epoch boundary (6 steps/epoch) and labelled wrap-arounds
        a.next_batch()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = SemiSupervisedStream(d, lab, binarize=False, **{**kwargs, "seed": 999})
    b.load_state_dict(state)
    assert b.epoch == a.epoch == 1
    rest_a, rest_b = list(a), list(b)
    assert len(rest_a) == len(rest_b) == 4
    for x, y in zip(rest_a + [a.next_batch()], rest_b + [b.next_batch()]):
        assert torch.equal(x.x["x"], y.x["x"]) and torch.equal(x.y, y.y) and torch.equal(x.y_mask, y.y_mask)


def test_stream_resume_with_binarisation():
    d = PartialDataset.from_arrays(np.random.default_rng(0).random((40, 16), dtype=np.float32), binarize=True)
    a = SemiSupervisedStream(d, None, batch_size=10, seed=5)
    a.next_batch()
    b = SemiSupervisedStream(d, None, batch_size=10, seed=6)
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.next_batch().x["x"], b.next_batch().x["x"])
    with pytest.raises(ValueError, match="batch_size"):
        SemiSupervisedStream(d, None, batch_size=5).load_state_dict(a.state_dict())


def test_iterate_batches_in_order():
    d = id_dataset(23)
    batches = list(iterate_batches(d, batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 3]
    assert torch.cat([rows_of(b) for b in batches]).tolist() == list(range(23))
    assert all(b.y_mask.all() for b in batches)


# ---------------------------------------------------------------------- sources


def test_registry():
    assert {"digits", "mnist", "moons", "npz"} <= set(list_sources())
    with pytest.raises(ValueError, match="unknown data source 'nope'"):
        load_source("nope")


def test_digits():
    s = load_source("digits")
    assert (len(s.train), len(s.valid), len(s.test)) == (1197, 300, 300)
    assert s.train.x["x"].shape == (1197, 1, 8, 8) and s.train.num_classes == 10 and s.train.binarize
    assert 0 <= s.train.x["x"].min() and s.train.x["x"].max() == 1
    assert torch.bincount(s.test.y, minlength=10).min() >= 29  # stratified
    grey = load_source("digits", binarize=False)
    assert not grey.train.binarize and torch.equal(grey.test.y, s.test.y)
    assert not torch.equal(load_source("digits", seed=1).test.y, s.test.y)


def test_moons():
    s = load_source("moons")
    assert s.train.x["x"].shape == (1000, 2) and s.train.num_classes == 2
    assert s.train.x["x"].mean(0).abs().max() < 1e-4 and (s.train.x["x"].std(0) - 1).abs().max() < 1e-2
    assert set(s.test.y.tolist()) == {0, 1}


def test_npz_source(tmp_path: Path):
    rng = np.random.default_rng(0)
    x = rng.random((100, 4)).astype(np.float32)
    x[3, 1] = np.nan
    y = (np.arange(100) % 3).astype(float)
    y[5] = np.nan
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    s = load_source(str(path))
    assert (len(s.train), len(s.valid), len(s.test)) == (80, 10, 10)
    assert all(d.num_classes == 3 for d in (s.train, s.valid, s.test))
    total_missing = sum(int((~d.x_mask["x"]).sum()) for d in (s.train, s.valid, s.test))
    total_unlabelled = sum(int((~d.y_mask).sum()) for d in (s.train, s.valid, s.test))
    assert total_missing == 1 and total_unlabelled == 1
    assert torch.equal(load_source("npz", path=path).train.x["x"], s.train.x["x"])

    np.savez(path, x=x, y=y, x_test=x[:7], y_test=y[:7])
    s = load_source(str(path))
    assert len(s.test) == 7 and len(s.train) + len(s.valid) == 100


@pytest.mark.parametrize(
    "arrays, kwargs, message",
    [
        ({"x": np.zeros(10)}, {}, "at least 2-D"),
        ({"z": np.zeros((10, 2))}, {}, "needs 'x'"),
        ({"x": np.zeros((10, 2)), "y": np.zeros(9)}, {}, "one label per row"),
        ({"x": np.zeros((10, 2)), "y": np.arange(10)}, {"num_classes": 5}, "num_classes=5"),
        ({"x": np.zeros((10, 2)), "x_test": np.zeros((3, 5))}, {}, "'x_test' rows have shape"),
    ],
)
def test_npz_source_errors(tmp_path: Path, arrays, kwargs, message):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=message):
        load_source(str(path), **kwargs)


def _mnist_present() -> bool:
    return any(
        (Path(p) / "mnist.npz").is_file() for p in os.environ.get("POGM_DATA", "").split(os.pathsep) if p
    )


@pytest.mark.skipif(not _mnist_present(), reason="mnist.npz not in $POGM_DATA")
def test_mnist_from_pogm_data():
    s = load_source("mnist", download=False)
    assert (len(s.train), len(s.valid), len(s.test)) == (50000, 10000, 10000)
    assert s.train.y[:5].tolist() == [5, 0, 4, 1, 9]
    assert s.train.x["x"].shape == (50000, 1, 28, 28) and s.train.x["x"].dtype == torch.float32
    assert s.train.x["x"].min() == 0 and s.train.x["x"].max() == 1
    assert s.train.binarize and s.train.num_classes == 10
    lab = balanced_label_split(s.train.y, 10, 10, seed=0)
    b = SemiSupervisedStream(s.train, lab, batch_size=100, labelled_batch_size=100).next_batch()
    assert len(b) == 200 and b.y_mask.sum() == 100 and set(b.x["x"].unique().tolist()) == {0.0, 1.0}


@pytest.mark.skipif(not _mnist_present(), reason="mnist.npz not in $POGM_DATA")
def test_mnist_unlabelled_valid_adds_the_validation_images_without_their_labels():
    from pogm.runs import choose_labels

    plain = load_source("mnist", download=False)
    s = load_source("mnist", download=False, unlabelled_valid=True)
    assert (len(s.train), len(s.valid), len(s.test)) == (60000, 10000, 10000)
    assert s.train.num_labelled == 50000 and not s.train.y_mask[50000:].any()
    assert torch.equal(s.train.x["x"][50000:], s.valid.x["x"])  # the same images, unlabelled
    assert torch.equal(s.valid.y, plain.valid.y)  # validation still scores them with labels
    # The labelled examples are the same ones as without the option, all among the first 50,000.
    lab = choose_labels(s, 10, seed=3, uses_labels=True)
    assert torch.equal(lab, choose_labels(plain, 10, seed=3, uses_labels=True)) and int(lab.max()) < 50000
    with pytest.raises(ValueError, match="n_valid=0 holds none out"):
        load_source("mnist", download=False, n_valid=0, unlabelled_valid=True)


def test_mnist_checksum_and_offline_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "data"
    fake.mkdir()
    np.savez(fake / "mnist.npz", x_train=np.zeros((2, 28, 28), dtype=np.uint8))
    monkeypatch.setenv("POGM_DATA", str(fake))
    with pytest.raises(ValueError, match="sha256"):
        load_source("mnist", download=False)
    monkeypatch.setenv("POGM_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="POGM_DATA"):
        load_source("mnist", download=False)
