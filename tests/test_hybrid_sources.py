"""Tests of the continuous-label sources for hybrid models: yaleb, mnist-keypoints, depth; and of the
shared file lookup (`pogm.data.sources.files`).

Real files are read through $POGM_DATA (never downloaded here); a test needing one is skipped when
it is absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from pogm.data import list_sources, load_source
from pogm.data.sources import files, yaleb
from pogm.data.sources import mnist_keypoints as mk
from pogm.data.sources.depth import WALL, render_depth, simulate_depth

COMMON_INFO = {"source", "image_shape", "y_dim", "y_names", "num_classes", "task_loss", "model_defaults"}


def _local(filename: str) -> Path | None:
    for entry in os.environ.get("POGM_DATA", "").split(os.pathsep):
        if entry:
            p = Path(entry).expanduser()
            p = p if p.is_file() else p / filename
            if p.is_file() and p.name == filename:
                return p
    return None


def _need(filename: str) -> Path:
    p = _local(filename)
    if p is None:
        pytest.skip(f"{filename} not in $POGM_DATA")
    return p


def _row_hashes(x: torch.Tensor) -> set[bytes]:
    a = x.reshape(len(x), -1).numpy()
    return {hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in a}


def _check_common(s, source: str, image_shape: list[int], y_dim: int) -> None:
    info = s.info
    assert COMMON_INFO <= set(info)
    json.dumps(info)  # JSON-serialisable only
    assert info["source"] == source and info["image_shape"] == image_shape and info["num_classes"] is None
    assert info["y_dim"] == y_dim and len(info["y_names"]) == y_dim and len(set(info["y_names"])) == y_dim
    spec = info["task_loss"]
    if spec["kind"] == "point_to_point":
        assert 2 * spec["num_points"] == y_dim
        i, j = spec["normaliser"]
        assert 0 <= i < spec["num_points"] and 0 <= j < spec["num_points"] and i != j
    else:
        assert spec == {"kind": "l2"}
    for part in (s.train, s.valid, s.test):
        x, y = part.x["x"], part.y
        assert list(x.shape[1:]) == image_shape and x.dtype == torch.float32
        assert y.dtype == torch.float32 and y.shape == (len(part), y_dim)
        assert part.num_classes is None and bool(part.y_mask.all()) and part.name.startswith(source + "-")
        assert x.min() >= 0 and x.max() <= 1


def _point_to_point(pred: torch.Tensor, true: torch.Tensor, spec: dict) -> torch.Tensor:
    """The task loss a spec describes (a reference implementation for the tests)."""
    p, t = pred.view(len(pred), -1, 2), true.view(len(true), -1, 2)
    i, j = spec["normaliser"]
    return (p - t).norm(dim=2).mean(1) / (t[:, i] - t[:, j]).norm(dim=1)


def test_registered():
    assert {"yaleb", "mnist-keypoints", "depth"} <= set(list_sources())


# ---------------------------------------------------------------------- files.py


def test_find_file_order_checksums_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    payload = b"some data set"
    sha = hashlib.sha256(payload).hexdigest()
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    (b / "set.bin").write_bytes(payload)
    (c / "renamed.bin").write_bytes(payload)
    (c / "other.bin").write_bytes(b"another set")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    find = lambda **kw: files.find_file("set.bin", sha, what="a test set", **kw)

    monkeypatch.setenv("POGM_DATA", os.pathsep.join([str(a), str(b)]))
    assert find(download_if_missing=False) == b / "set.bin"
    # A file given by path works under another name; one that is another set is passed over.
    monkeypatch.setenv("POGM_DATA", os.pathsep.join([str(c / "other.bin"), str(c / "renamed.bin")]))
    assert find(download_if_missing=False) == c / "renamed.bin"
    # Under its own name, a file with other content is an error, not skipped.
    (a / "set.bin").write_bytes(b"corrupt")
    monkeypatch.setenv("POGM_DATA", os.pathsep.join([str(a), str(b)]))
    with pytest.raises(ValueError, match="corrupt or a different data set"):
        find(download_if_missing=False)

    monkeypatch.setenv("POGM_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="POGM_DATA") as err:
        find(download_if_missing=False)
    assert "nowhere" in str(err.value) and ".cache" in str(err.value)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="offline.*POGM_DATA"):
        find(url="https://example.invalid/set.bin")

    # A download lands in the cache through a checked temporary file.
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(b"wrong bytes"))
    with pytest.raises(ValueError, match="sha256"):
        find(url="https://example.invalid/set.bin")
    cache = tmp_path / "home" / ".cache" / "pogm"
    assert list(cache.iterdir()) == []  # nothing saved, no temporary file left
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: io.BytesIO(payload))
    assert find(url="https://example.invalid/set.bin") == cache / "set.bin"
    assert (cache / "set.bin").read_bytes() == payload


def test_mnist_public_names():
    from pogm.data.sources import mnist

    for name in ("find_mnist", "load_mnist", "sha256_of", "cache_dir", "candidate_paths", "download", "URL", "SHA256", "FILENAME"):
        assert hasattr(mnist, name)
    assert mnist.candidate_paths()[-1] == mnist.cache_dir() / mnist.FILENAME


# ---------------------------------------------------------------------- yaleb


def test_yaleb_random_split():
    path = _need(yaleb.FILENAME)
    assert files.sha256_of(path) == yaleb.SHA256 and yaleb._content_ok(path)
    s = load_source("yaleb", download=False)
    _check_common(s, "yaleb", [1, 64, 64], 2)
    assert s.info["task_loss"] == {"kind": "l2"} and s.info["model_defaults"] == {"likelihood": "gaussian:0.1"}
    assert s.info["y_names"] == ["light_azimuth", "light_elevation"]
    assert (len(s.train), len(s.valid), len(s.test)) == (1900, 200, 314)
    parts = [s.train, s.valid, s.test]
    assert all(p.dequantize == 256 for p in parts)
    x = torch.cat([p.x["x"] for p in parts])
    assert torch.equal(x * 255, torch.round(x * 255))  # 8-bit grey levels
    hashes = [_row_hashes(p.x["x"]) for p in parts]
    assert sum(len(h) for h in hashes) == 2414 and len(set.union(*hashes)) == 2414  # disjoint, all used
    y = torch.cat([p.y for p in parts])
    assert y.min() == 0 and y.max() == 1
    deg = torch.stack([y[:, 0] * 260 - 130, y[:, 1] * 130 - 40], 1)
    assert torch.allclose(deg, deg.round(), atol=1e-3) and len({tuple(r) for r in deg.round().tolist()}) == 64
    again = load_source("yaleb", download=False)
    assert torch.equal(again.test.x["x"], s.test.x["x"])
    other = load_source("yaleb", download=False, split_seed=1)
    assert not torch.equal(other.test.x["x"], s.test.x["x"])


def test_yaleb_subject_split():
    path = _need(yaleb.FILENAME)
    s = load_source("yaleb", download=False, split="subject")
    with np.load(path) as f:
        images, subject, names = f["images"], f["subject"], f["subject_names"]
    who = {hashlib.blake2b((im.astype(np.float32) / np.float32(255)).tobytes(), digest_size=16).digest(): int(k) for im, k in zip(images, subject)}
    people = [{who[h] for h in _row_hashes(p.x["x"])} for p in (s.train, s.valid, s.test)]
    assert not (people[0] & people[1]) and not (people[0] & people[2]) and not (people[1] & people[2])
    assert sorted(names[k] for k in people[2]) == s.info["test_subjects"]
    assert len(s.test) >= 314 and len(s.valid) >= 200 and len(s.train) + len(s.valid) + len(s.test) == 2414
    assert len(s.test) == int(np.isin(subject, list(people[2])).sum())  # every image of those people


def test_yaleb_options_and_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for bad in ({"split": "people"}, {"n_test": 0}, {"n_valid": -1}, {"n_test": 2000, "n_valid": 500}, {"split_seed": 1.5}):
        with pytest.raises(ValueError):
            yaleb.load_yaleb(**bad)
    monkeypatch.setenv("POGM_DATA", str(tmp_path / "empty"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="POGM_DATA"):
        load_source("yaleb", download=False)

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="offline.*POGM_DATA"):
        load_source("yaleb")
    assert not (tmp_path / "home" / ".cache" / "pogm" / yaleb.FILENAME).exists()


def _pgm(rng: np.random.Generator, size=(168, 192)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)).save(buf, format="PPM")
    return buf.getvalue()


def test_yaleb_build_checks_the_arrays(tmp_path: Path):
    rng = np.random.default_rng(0)
    archive = tmp_path / "recognition.tar.gz"
    root = f"recognition-{yaleb.COMMIT}/CroppedYale"
    members = {
        f"{root}/yaleB02/yaleB02_P00A-035E+15.pgm": _pgm(rng),
        f"{root}/yaleB01/yaleB01_P00A+000E+00.pgm": _pgm(rng),
        f"{root}/yaleB01/yaleB01_P00A+130E+20.pgm": _pgm(rng),
        f"{root}/yaleB01/yaleB01_P00_Ambient.pgm": _pgm(rng, (640, 480)),  # excluded
        f"{root}/yaleB01/yaleB01_P00A+010E+00.pgm.bad": _pgm(rng),  # excluded
        "elsewhere/yaleB03_P00A+000E+00.pgm": _pgm(rng),  # not in CroppedYale/: ignored
    }
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dest = tmp_path / "cache" / yaleb.FILENAME
    with pytest.raises(ValueError, match="differ from the reference"):
        yaleb.build_yaleb_npz(dest, archive=archive)  # a build giving other arrays is refused
    assert not dest.exists() and not list(dest.parent.glob("*.part"))

    with open(archive, "rb") as f:
        arrays = yaleb._arrays_from_archive(f, "test")
    yaleb.build_yaleb_npz(dest, archive=archive, images_sha256=yaleb.array_sha256(arrays["images"]), labels_sha256=yaleb.array_sha256(arrays["labels"]))
    with np.load(dest) as got:
        assert set(got.files) == {"images", "labels", "azimuth_deg", "elevation_deg", "subject", "subject_names", "filenames"}
        assert got["filenames"].tolist() == ["yaleB01_P00A+000E+00.pgm", "yaleB01_P00A+130E+20.pgm", "yaleB02_P00A-035E+15.pgm"]
        assert got["images"].shape == (3, 64, 64) and got["images"].dtype == np.uint8
        np.testing.assert_allclose(got["labels"], [[0.5, 40 / 130], [1.0, 60 / 130], [95 / 260, 55 / 130]], rtol=1e-6)
        assert got["subject"].tolist() == [0, 0, 1] and got["subject_names"].tolist() == ["yaleB01", "yaleB02"]


def test_yaleb_rebuilt_file_accepted_by_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = _need(yaleb.FILENAME)
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    folder = tmp_path / "rebuilt"
    folder.mkdir()
    np.savez(folder / yaleb.FILENAME, **arrays)  # same arrays, other bytes
    monkeypatch.setenv("POGM_DATA", str(folder))
    assert files.sha256_of(folder / yaleb.FILENAME) != yaleb.SHA256
    assert yaleb.find_yaleb(download_if_missing=False) == folder / yaleb.FILENAME
    arrays["images"] = arrays["images"].copy()
    arrays["images"][0, 0, 0] ^= 1
    np.savez(folder / yaleb.FILENAME, **arrays)
    with pytest.raises(ValueError, match="corrupt or a different data set"):
        yaleb.find_yaleb(download_if_missing=False)


# ---------------------------------------------------------------------- mnist-keypoints


@pytest.fixture(scope="module")
def keypoints():
    _need("mnist.npz")
    return load_source("mnist-keypoints", download=False)


def test_keypoints_splits_and_info(keypoints):
    s = keypoints
    _check_common(s, "mnist-keypoints", [1, 32, 32], 10)
    assert s.info["task_loss"] == {"kind": "point_to_point", "num_points": 5, "normaliser": [0, 1]}
    assert s.info["model_defaults"] == {"likelihood": "gaussian:0.1"}
    assert s.info["y_names"][:3] == ["p0_x", "p0_y", "p1_x"]
    assert (len(s.train), len(s.valid), len(s.test)) == (50000, 10000, 10000)
    assert all(p.dequantize == 256 for p in (s.train, s.valid, s.test))
    x = s.train.x["x"][:2000]
    assert torch.equal(x * 255, torch.round(x * 255))
    assert not (_row_hashes(s.valid.x["x"]) & _row_hashes(s.train.x["x"]))
    y = torch.cat([s.train.y, s.valid.y, s.test.y])
    assert -0.1 < y.min() and y.max() < 1.1
    spec = s.info["task_loss"]
    assert torch.all(_point_to_point(s.test.y, s.test.y, spec) == 0)
    eyes = (s.test.y[:, 0:2] - s.test.y[:, 2:4]).norm(dim=1) * 32
    assert eyes.min() > 19 * 0.7 and eyes.max() < 19 * 1.3  # p0-p1 is 19 px before the warp


def test_keypoints_follow_the_real_digits(keypoints):
    """The affine map fitted to (reference points -> h) carries each digit's ink centroid to the warped digit's."""
    path = _need("mnist.npz")
    with np.load(path) as f:
        digits = f["x_test"][:500].astype(np.float64)
    h = keypoints.test.y[:500].double().view(500, 5, 2).numpy() * 32  # pixels
    ref = mk.REFERENCE_POINTS_PX
    design = np.concatenate([ref, np.ones((5, 1))], 1)
    maps = np.stack([np.linalg.lstsq(design, h[i], rcond=None)[0] for i in range(500)])  # [n, 3, 2]
    fit_err = np.abs(np.einsum("pk,nkc->npc", design, maps) - h).max()
    assert fit_err < 1e-4  # the 5 points move by one affine map
    grid = np.arange(28) + 0.5 + mk.PAD
    mass = digits.sum((1, 2))
    centroid = np.stack([(digits.sum(1) * grid).sum(1), (digits.sum(2) * grid).sum(1)], 1) / mass[:, None]
    warped = keypoints.test.x["x"][:500, 0].double().numpy()
    grid32 = np.arange(32) + 0.5
    wmass = warped.sum((1, 2))
    wcentroid = np.stack([(warped.sum(1) * grid32).sum(1), (warped.sum(2) * grid32).sum(1)], 1) / wmass[:, None]
    predicted = np.einsum("nk,nkc->nc", np.concatenate([centroid, np.ones((500, 1))], 1), maps)
    err = np.linalg.norm(predicted - wcentroid, axis=1)
    assert np.median(err) < 0.1 and np.quantile(err, 0.95) < 0.5


def _blobs(n_per_point: int) -> np.ndarray:
    """uint8 28x28 images, each a small Gaussian blob at one reference point (cycling p0..p4)."""
    rows, cols = np.mgrid[0:28, 0:28] + 0.5 + mk.PAD  # pixel centres in canvas pixels
    out = []
    for i in range(5 * n_per_point):
        x, y = mk.REFERENCE_POINTS_PX[i % 5]
        out.append(255 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 0.8**2)))
    return np.round(np.stack(out)).astype(np.uint8)


def test_keypoints_land_where_h_says():
    blobs = _blobs(60)
    g = torch.Generator().manual_seed(3)
    strong = {"rotation": 45.0, "scale_min": 0.7, "scale_max": 1.3, "shear": 0.3, "translate": 3.0}
    for warp in ({}, strong):
        x, h = mk.make_keypoint_images(blobs, g, **warp)
        n = len(blobs)
        which = np.arange(n) % 5
        point = h.view(n, 5, 2)[torch.arange(n), torch.from_numpy(which)].numpy() * 32  # (x, y) pixels
        img = x[:, 0].numpy()
        flat = img.reshape(n, -1).argmax(1)
        brightest = np.stack([flat % 32 + 0.5, flat // 32 + 0.5], 1)
        inside = (point > 2).all(1) & (point < 30).all(1)
        assert inside.mean() > 0.5
        assert np.linalg.norm(brightest - point, axis=1)[inside].max() <= 1.0
        grid = np.arange(32) + 0.5
        mass = img.sum((1, 2))
        centroid = np.stack([(img.sum(1) * grid).sum(1), (img.sum(2) * grid).sum(1)], 1) / np.maximum(mass, 1e-9)[:, None]
        assert np.linalg.norm(centroid - point, axis=1)[inside].max() < 0.15


def test_keypoints_identity_warp_and_determinism():
    rng = np.random.default_rng(0)
    digits = rng.integers(0, 256, (50, 28, 28), dtype=np.uint8)
    identity = {"rotation": 0.0, "scale_min": 1.0, "scale_max": 1.0, "shear": 0.0, "translate": 0.0}
    x, h = mk.make_keypoint_images(digits, torch.Generator().manual_seed(0), **identity)
    padded = np.pad(digits, ((0, 0), (2, 2), (2, 2))).astype(np.float32) / np.float32(255)
    assert torch.equal(x[:, 0], torch.from_numpy(padded))
    ref = torch.tensor(mk.reference_points(), dtype=torch.float32).reshape(1, 10).expand(50, 10)
    assert torch.allclose(h, ref, atol=1e-6)
    assert torch.allclose(ref[0], torch.tensor([6.5, 6.5, 25.5, 6.5, 16, 16, 6.5, 25.5, 25.5, 25.5]) / 32)
    a = mk.make_keypoint_images(digits, torch.Generator().manual_seed(7))
    b = mk.make_keypoint_images(digits, torch.Generator().manual_seed(7))
    c = mk.make_keypoint_images(digits, torch.Generator().manual_seed(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and not torch.equal(a[1], c[1])


@pytest.mark.parametrize(
    "bad",
    [{"rotation": -1.0}, {"scale_min": 1.2, "scale_max": 1.1}, {"scale_min": 0.0}, {"shear": 2.0}, {"translate": 9.0}, {"split_seed": -1}, {"n_valid": 1.5}],
)
def test_keypoints_option_errors(bad):
    with pytest.raises(ValueError):
        mk.load_mnist_keypoints(download=False, **bad)


# ---------------------------------------------------------------------- depth


SMALL = {"n_train": 300, "n_valid": 50, "n_test": 100}


def test_depth_splits_and_info():
    s = load_source("depth", **SMALL)
    _check_common(s, "depth", [1, 32, 32], 5)
    assert s.info["task_loss"] == {"kind": "l2"} and s.info["model_defaults"] == {"likelihood": "depth:0.05"}
    assert (len(s.train), len(s.valid), len(s.test)) == (300, 50, 100)
    for p in (s.train, s.valid, s.test):
        m, x = p.x_mask["x"], p.x["x"]
        assert m.dtype == torch.bool and m.shape == x.shape and p.dequantize == 0
        assert torch.all(x[~m] == 0) and 0.05 < m.float().mean() < 0.5
        assert p.y.min() >= 0 and p.y.max() <= 1
    hashes = [_row_hashes(p.y) for p in (s.train, s.valid, s.test)]
    assert sum(len(h) for h in hashes) == 450 and len(set.union(*hashes)) == 450  # distinct poses, disjoint parts
    again = load_source("depth", **SMALL)
    for p, q in zip((s.train, s.valid, s.test), (again.train, again.valid, again.test)):
        assert torch.equal(p.x["x"], q.x["x"]) and torch.equal(p.x_mask["x"], q.x_mask["x"]) and torch.equal(p.y, q.y)
    other = load_source("depth", **SMALL, split_seed=1)
    assert not torch.equal(other.test.y, s.test.y)
    # A part depends on its own size only: a bigger training set leaves the test set as it was.
    assert torch.equal(load_source("depth", n_train=10, n_valid=0, n_test=100).test.x["x"], s.test.x["x"])
    small = load_source("depth", n_train=20, n_valid=0, n_test=5, size=16)
    assert small.valid is None and small.train.x["x"].shape == (20, 1, 16, 16) and small.info["image_shape"] == [1, 16, 16]


def test_depth_holes_have_each_cause():
    sim = simulate_depth(400, seed=0, min_range=0.5)
    d, m = sim["depth"].numpy(), sim["mask"][:, 0].numpy()
    x = sim["x"][:, 0].numpy()
    # (a) out of range: the far wall, and parts nearer than min_range, are never observed.
    wall = d >= WALL
    assert wall.mean() > 0.5 and not m[wall].any()
    near = d < 0.5
    assert near.sum() > 20 and not m[near].any()
    # (b) silhouette / self-occlusion edges, found here independently: most are dropped, not all.
    jump = np.zeros(d.shape, dtype=bool)
    dv, dh = np.abs(np.diff(d, axis=1)) > 0.02, np.abs(np.diff(d, axis=2)) > 0.02
    jump[:, 1:] |= dv
    jump[:, :-1] |= dv
    jump[:, :, 1:] |= dh
    jump[:, :, :-1] |= dh
    in_range = (d >= 0.5) & (d <= 1.0)
    next_to_wall = np.zeros_like(wall)
    next_to_wall[:, 1:] |= wall[:, :-1]
    next_to_wall[:, :-1] |= wall[:, 1:]
    next_to_wall[:, :, 1:] |= wall[:, :, :-1]
    next_to_wall[:, :, :-1] |= wall[:, :, 1:]
    silhouette = in_range & next_to_wall
    assert jump[silhouette].all()
    assert silhouette.sum() > 1000
    assert 0.7 < 1 - m[silhouette].mean() < 0.9
    # (c) speckle: a few interior pixels (in range, no depth jump) are unobserved.
    interior = in_range & ~jump
    assert interior.sum() > 10000
    assert 0.003 < 1 - m[interior].mean() < 0.02
    assert np.array_equal(~m[interior], sim["speckle"].numpy()[interior])
    # Observed values are the normalised depth plus a little noise, within [0, 1]; holes hold 0.
    assert x[m].min() >= 0 and x[m].max() <= 1 and np.all(x[~m] == 0)
    expected = (d[m] - 0.5) / 0.5
    assert np.abs(x[m] - np.clip(expected, 0, 1)).max() < 6 * 0.003 / 0.5
    assert 0.001 < np.abs(x[m] - expected).mean() < 0.01  # noise is there


def test_depth_pose_changes_the_image():
    n = 6
    zero = torch.zeros(n, dtype=torch.float64)
    curl = torch.zeros(n, 3, dtype=torch.float64)
    yaw, pitch = zero.clone(), zero.clone()
    curl[1, 0] = math.radians(80)  # index curled
    curl[2, 2] = math.radians(80)  # ring curled
    yaw[3] = math.radians(40)
    pitch[4] = math.radians(-30)
    curl[5] = math.radians(40)
    offset = torch.tensor([[0.0, 0.0, 0.6]], dtype=torch.float64).expand(n, 3)
    d = render_depth(curl, yaw, pitch, torch.ones(n, dtype=torch.float64), offset)
    for i in range(1, n):
        assert (d[i] != d[0]).sum() > 10
    # Curling a finger towards the camera brings that finger nearer; the far wall is behind everything.
    assert d[1].min() < d[0].min() - 0.02 and d.max() == WALL
    # The part windows are an optimisation only.
    assert torch.equal(d, render_depth(curl, yaw, pitch, torch.ones(n, dtype=torch.float64), offset, windows=False))
    sim = simulate_depth(200, seed=5)
    assert len(_row_hashes(sim["x"])) == 200


@pytest.mark.parametrize(
    "bad",
    [{"max_range": 2.0}, {"min_range": 0.9, "max_range": 0.8}, {"size": 4}, {"size": 32.0}, {"edge_dropout": 1.5}, {"speckle": -0.1}, {"n_train": 0}, {"n_test": -1}, {"max_curl": 0}],
)
def test_depth_option_errors(bad):
    with pytest.raises(ValueError):
        load_source("depth", **bad)
