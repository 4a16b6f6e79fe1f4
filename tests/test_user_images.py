"""A user's own images: uint8 pixels as they ship are read as k / 255 (``.npz`` files, arrays,
memory-mapped stores), data outside what the model's likelihood accepts is refused before
training with the fix, and images saved as ``[N, D]``, ``[N, H, W]`` or ``[N, C, H, W]`` all
become ``[N, C, H, W]`` (or the shape ``data.image_shape`` says), so that sampling and the report
draw them.

Everything uses scikit-learn's 8x8 digits and trains tiny networks for a few steps in one thread.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from pogm.cli import main
from pogm.data import PartialDataset, load_source
from pogm.data.memmap import MemmapDataset, write_memmap_store
from pogm.data.sources.npz import load_arrays, load_npz
from pogm.data.splits import held_out_split
from pogm.likelihoods import support
from pogm.models.support import check_data_support
from pogm.models.vae_gan.vaegan import VAEGAN, VAEGANConfig
from pogm.models.semi_supervised.vae import VAE, VAEConfig

TINY = ["--set", "hidden=[16]", "--set", "z_dim=2", "--set", "train.threads=1", "--set", "train.progress=false"]


def call(argv: list) -> tuple[int, str, str]:
    """Run ``pogm ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def digits():
    """(uint8 pixels [N, 64] on 0..255, class labels [N]) of 600 digits."""
    bunch = load_digits()
    pixels = np.round(bunch.data[:600] * 255 / 16).astype(np.uint8)
    return pixels, bunch.target[:600].astype(np.int64)


def train_rows(n: int) -> torch.Tensor:
    """The rows a source's default split (seed 0, 10 % valid, 10 % test) trains on."""
    return held_out_split(n, 0, 0.1, 0.1)[0]


# ---------------------------------------------------------------------------------- uint8 pixels


def test_uint8_npz_is_read_as_k_over_255_and_trains(tmp_path, digits):
    pixels, y = digits
    path = tmp_path / "u8.npz"
    np.savez(path, x=pixels, y=y.astype(np.uint8))
    splits = load_npz(path)
    expected = torch.from_numpy(pixels.astype(np.float32) / np.float32(255))[train_rows(len(pixels))]
    assert torch.equal(splits.train.x["x"].reshape(len(expected), -1), expected)
    assert torch.equal(splits.train.y, torch.from_numpy(y)[train_rows(len(y))])  # labels are not scaled
    assert splits.info["x_dtype"] == "uint8"

    run = tmp_path / "run"
    code, _, err = call(["train", "vae", "--data", path, "--out", run, "--set", "train.max_steps=3", *TINY])
    assert code == 0, err
    record = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["step"] == 3 and math.isfinite(record["train_loss"]) and math.isfinite(record["valid_elbo"])


def test_uint8_arrays_and_tensors_are_read_as_k_over_255(digits):
    pixels, _ = digits
    expected = torch.from_numpy(pixels.astype(np.float32) / np.float32(255))
    for given in (pixels, torch.from_numpy(pixels)):
        d = PartialDataset.from_arrays(given, y=np.full(len(pixels), 200, dtype=np.uint8), num_classes=201)
        assert torch.equal(d.x["x"], expected) and d.x["x"].dtype == torch.float32
        assert (d.y == 200).all()  # uint8 labels stay class numbers
    assert torch.equal(PartialDataset.from_arrays(pixels.astype(np.int16)).x["x"], torch.from_numpy(pixels.astype(np.float32)))  # other integers as they are


def test_uint8_memmap_store_is_scaled_per_batch_and_stays_uint8_on_disk(tmp_path, digits):
    pixels, y = digits
    write_memmap_store(tmp_path / "store", pixels, y)
    store = MemmapDataset(tmp_path / "store")
    rows = torch.tensor([5, 0, 599])
    assert torch.equal(store.batch(rows).x["x"], torch.from_numpy(pixels[[5, 0, 599]].astype(np.float32) / np.float32(255)))
    assert store.x_array.dtype == np.uint8 and np.load(tmp_path / "store" / "x.npy", mmap_mode="r").dtype == np.uint8

    splits = load_source("memmap", path=str(tmp_path / "store"))
    assert isinstance(splits.train, MemmapDataset) and splits.train.x_array.dtype == np.uint8
    assert splits.info["storage"] == "uint8" and splits.info["image_shape"] == [1, 8, 8]
    batch = splits.train.batch(torch.arange(4))
    want = pixels[train_rows(len(pixels))[:4].numpy()].astype(np.float32) / np.float32(255)
    assert torch.equal(batch.x["x"], torch.from_numpy(want).reshape(4, 1, 8, 8))  # the view reshapes and scales each read
    assert float(splits.test.x["x"].max()) <= 1.0 and splits.test.shapes == {"x": (1, 8, 8)}


def test_memmap_range_reads_a_bounded_sample_of_rows(tmp_path, digits, monkeypatch):
    pixels, _ = digits
    write_memmap_store(tmp_path / "float", pixels.astype(np.float32))
    store = MemmapDataset(tmp_path / "float")
    read = []
    original = MemmapDataset._read_rows
    monkeypatch.setattr(MemmapDataset, "_read_rows", lambda self, rows: read.append(len(rows)) or original(self, rows))
    low, high = store.observed_range(max_rows=50)
    assert read == [50] and 0 <= low <= high <= 255
    assert MemmapDataset(tmp_path / "float").observed_range() == (float(pixels.min()), float(pixels.max()))  # a small store: every row
    write_memmap_store(tmp_path / "u8", pixels)
    read.clear()
    assert MemmapDataset(tmp_path / "u8").observed_range() == (0.0, 1.0) and read == []  # known from the dtype


# ---------------------------------------------------------------------------------- support


def test_likelihood_supports():
    assert support("bernoulli") == (0.0, 1.0)
    for name in ("gaussian", "gaussian:0.1", "gaussian-learned", "gaussian-predicted", "depth", "depth:0.05"):
        assert support(name) == (-math.inf, math.inf), name
    with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
        support("poisson")


def test_out_of_range_data_is_refused_before_training_with_the_fix(tmp_path, digits):
    pixels, y = digits
    x = pixels.astype(np.float32) / 255 * 3.7 - 0.5  # [-0.5, 3.2]
    path = tmp_path / "wide.npz"
    np.savez(path, x=x, y=y)
    run = tmp_path / "run"
    code, _, err = call(["train", "vae", "--data", path, "--out", run, "--set", "train.max_steps=2", *TINY])
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "x of wide-train holds values in [-0.5, 3.2] but the bernoulli likelihood needs values in [0, 1]: scale the data " in err
    assert "(uint8 images are scaled by /255 automatically), or choose --set likelihood=gaussian" in err
    assert not (run / "metrics.jsonl").exists()

    code, _, err = call(["train", "vae", "--data", path, "--out", tmp_path / "gaussian", "--set", "likelihood=gaussian", "--set", "train.max_steps=2", *TINY])
    assert code == 0, err


def test_a_memmap_store_out_of_range_is_refused(tmp_path, digits):
    pixels, _ = digits
    write_memmap_store(tmp_path / "store", pixels.astype(np.float32))  # 0..255 stored as floats: not scaled
    code, _, err = call(["train", "vae", "--data", "memmap", "--set", f"data.path={tmp_path / 'store'}", "--out", tmp_path / "run", *TINY])
    assert code != 0 and "holds values in [0, 255] but the bernoulli likelihood needs values in [0, 1]" in err


def test_only_observed_entries_count_and_sigmoid_models_need_unit_values():
    x = torch.rand(6, 1, 8, 8)
    mask = torch.ones_like(x, dtype=torch.bool)
    mask[0, 0, 0, 0] = False
    x[0, 0, 0, 0] = 7.0  # unobserved: ignored
    data = PartialDataset(x={"x": x}, x_mask={"x": mask}, name="mine")
    vae = VAE(VAEConfig(x_dim=64, hidden=(8,), z_dim=2))
    check_data_support(vae, data)
    x[1, 0, 2, 2] = 2.0  # observed
    with pytest.raises(ValueError, match=r"x of mine holds values in \[0(\.\d+)?, 2\] but the bernoulli likelihood"):
        check_data_support(vae, data)
    check_data_support(VAE(VAEConfig(x_dim=64, hidden=(8,), z_dim=2, likelihood="gaussian:0.1")), data)
    gan = VAEGAN(VAEGANConfig(x_dim=64, image_shape=(1, 8, 8), z_dim=2, hidden=(8,), discriminator_hidden=(8,)))
    with pytest.raises(ValueError, match=r"vaegan, whose images are sigmoids, needs values in \[0, 1\]: scale the data \(uint8 images are scaled by /255 automatically\)$"):
        check_data_support(gan, data)


# ---------------------------------------------------------------------------------- layouts


def test_three_layouts_give_the_same_images_and_masks(tmp_path, digits):
    pixels, y = digits
    x = pixels.astype(np.float32) / 255
    x[3, 10] = np.nan  # one missing pixel
    layouts = {"flat": x, "[N, H, W]": x.reshape(-1, 8, 8), "[N, C, H, W]": x.reshape(-1, 1, 8, 8)}
    loaded = {k: load_arrays({"x": v, "y": y}) for k, v in layouts.items()}
    write_memmap_store(tmp_path / "flat", x, y)
    loaded["memmap"] = load_source("memmap", path=str(tmp_path / "flat"))
    ref = loaded["[N, C, H, W]"]
    for name, splits in loaded.items():
        assert splits.train.shapes == {"x": (1, 8, 8)} and splits.info["image_shape"] == [1, 8, 8], name
        b, r = splits.train.batch(torch.arange(len(ref.train))), ref.train.batch(torch.arange(len(ref.train)))
        assert torch.equal(b.x["x"], r.x["x"]), name
        assert torch.equal(b.x_mask["x"].expand(b.x["x"].shape), r.x_mask["x"].expand(r.x["x"].shape)), name
        assert torch.equal(splits.test.x["x"], ref.test.x["x"]), name
    assert not bool(loaded["flat"].train.x_mask["x"].all())  # the NaN stayed missing


def test_flat_rows_are_images_only_when_square_and_pixel_valued(digits):
    pixels, _ = digits
    unit = pixels.astype(np.float32) / 255
    assert load_arrays({"x": pixels.astype(np.float32)}).train.shapes == {"x": (64,)}  # 0..255 floats: features, not pixels
    assert load_arrays({"x": unit[:, :49]}).train.shapes == {"x": (49,)}  # 7x7 is below the smallest side, 8
    assert load_arrays({"x": unit[:, :50]}).train.shapes == {"x": (50,)}
    assert load_arrays({"x": np.concatenate([unit, unit], 1)[:, :100]}).train.shapes == {"x": (1, 10, 10)}


def test_image_shape_option_forces_or_flattens(tmp_path, digits):
    pixels, _ = digits
    wide = pixels.astype(np.float32)  # 0..255: not recognised by itself
    assert load_arrays({"x": wide}, image_shape=[1, 8, 8]).train.shapes == {"x": (1, 8, 8)}
    assert load_arrays({"x": wide}, image_shape="1,8,8").train.shapes == {"x": (1, 8, 8)}  # --set data.image_shape=1,8,8
    assert load_arrays({"x": wide}, image_shape=[8, 8]).train.shapes == {"x": (1, 8, 8)}
    flat = load_arrays({"x": pixels.reshape(-1, 8, 8)}, image_shape=False)
    assert flat.train.shapes == {"x": (64,)} and flat.info["image_shape"] is None
    assert load_arrays({"x": pixels.reshape(-1, 1, 8, 8)}, image_shape=[]).train.shapes == {"x": (64,)}
    with pytest.raises(ValueError, match=r"^arrays: image_shape=\[3, 8, 8\] holds 192 values per row but the rows of x have shape \[64\] \(64 values\); give a shape whose product is 64, or image_shape=false"):
        load_arrays({"x": pixels}, image_shape=[3, 8, 8])
    for bad in (True, [0, 8], [1, 2, 3, 4], "big"):
        with pytest.raises(ValueError, match=r"image_shape must be \[C, H, W\] or \[H, W\]"):
            load_arrays({"x": pixels}, image_shape=bad)
    path = tmp_path / "d.npz"
    np.savez(path, x=pixels)
    with pytest.raises(ValueError, match=rf"^{path}: image_shape=\[1, 9, 9\] holds 81"):
        load_source(str(path), image_shape=[1, 9, 9])
    write_memmap_store(tmp_path / "store", pixels)
    store = load_source("memmap", path=str(tmp_path / "store"), image_shape=False)
    assert store.train.shapes == {"x": (64,)} and store.train.batch(torch.arange(2)).x["x"].shape == (2, 64)


def test_reshaped_rows_keep_broadcast_masks_consistent():
    x = torch.rand(4, 8, 8)
    column_mask = torch.rand(4, 1, 8) > 0.5  # one flag per column, broadcast over rows
    d = PartialDataset.from_arrays(x, x_mask=column_mask).with_row_shape((1, 8, 8))
    assert torch.equal(d.x_mask["x"].expand(4, 1, 8, 8), column_mask.expand(4, 8, 8).reshape(4, 1, 8, 8))
    flat = PartialDataset.from_arrays(x).with_row_shape((64,))
    assert flat.x_mask["x"].shape == (1, 1)  # a fully observed mask stays one flag


@pytest.mark.parametrize("layout", ["[N, 64]", "[N, 8, 8]"])
def test_sample_and_report_draw_images_of_any_layout(tmp_path, digits, layout):
    pixels, y = digits
    x = pixels.astype(np.float32) / 255
    path = tmp_path / "d.npz"
    np.savez(path, x=x if layout == "[N, 64]" else x.reshape(-1, 8, 8), y=y)
    run = tmp_path / "run"
    assert call(["train", "vae", "--data", path, "--out", run, "--set", "train.max_steps=2", *TINY])[0] == 0
    code, _, err = call(["sample", run, "--n", 16])
    assert code == 0, err
    assert (run / "figures" / "samples.png").is_file()
    code, _, err = call(["report", run])
    assert code == 0, err
    figures = {Path(p).name for p in json.loads((run / "report.json").read_text())["figures"]}
    assert {"samples.png", "reconstructions.png", "completions.png", "interpolations.png"} <= figures


def test_sampling_data_that_are_not_images_is_a_clear_error(tmp_path, digits):
    pixels, _ = digits
    path = tmp_path / "d.npz"
    np.savez(path, x=pixels)
    run = tmp_path / "run"
    assert call(["train", "vae", "--data", path, "--out", run, "--set", "data.image_shape=false", "--set", "train.max_steps=1", *TINY])[0] == 0
    code, _, err = call(["sample", run])
    assert code != 0 and len(err.strip().splitlines()) == 1
    assert "draws no images: x has rows of shape [64]" in err and "--set data.image_shape=[C,H,W]" in err


# ---------------------------------------------------------------------------------- load_arrays


def test_load_arrays_does_what_load_npz_does(tmp_path, digits):
    pixels, y = digits
    labels = y.astype(np.float64)
    labels[::3] = np.nan  # unlabelled
    labels[1::3][:5] = -1
    arrays = {"x": pixels[:500], "y": labels[:500], "x_test": pixels[500:], "y_test": labels[500:]}
    path = tmp_path / "mine.npz"
    np.savez(path, **arrays)
    from_file = load_npz(path, name="mine")
    from_arrays = load_arrays({k: torch.from_numpy(v) for k, v in arrays.items()}, name="mine")
    for part in ("train", "valid", "test"):
        a, b = getattr(from_file, part), getattr(from_arrays, part)
        assert torch.equal(a.x["x"], b.x["x"]) and torch.equal(a.y, b.y) and torch.equal(a.y_mask, b.y_mask), part
    assert from_arrays.info["source"] == "arrays" and from_file.info["source"] == "npz" and "path" not in from_arrays.info
    assert {k: v for k, v in from_file.info.items() if k not in ("source", "path")} == {k: v for k, v in from_arrays.info.items() if k != "source"}
    assert from_arrays.train.num_labelled < len(from_arrays.train)


def test_load_arrays_refuses_bad_mappings_naming_arrays(digits):
    pixels, y = digits
    with pytest.raises(ValueError, match=r"^arrays: unknown key\(s\) \['labels'\]; the accepted keys are 'x', 'y', 'x_valid', 'y_valid', 'x_test', 'y_test'$"):
        load_arrays({"x": pixels, "labels": y})
    with pytest.raises(ValueError, match=r"^arrays has keys \['y'\] but needs 'x'"):
        load_arrays({"y": y})
    with pytest.raises(ValueError, match=r"^arrays: array 'y' has shape \(599,\) but x has 600 rows"):
        load_arrays({"x": pixels, "y": y[:-1]})
    with pytest.raises(ValueError, match=r"arrays must be a mapping"):
        load_arrays([pixels])
