"""Hostile and malformed data at the data layer: every bad input is a `ValueError` that names the
array (and, for files, starts with the path), never a traceback from inside numpy or torch.

Covers `PartialDataset.from_arrays` and the constructor, the ``npz`` source (files written to a
temporary folder), label-split files, source options, and the ASF/AMC parser. The contract for
NaN (docs/DESIGN.md, "Observation masks are data"): NaN in ``x`` means "missing" and becomes a
mask; NaN (or -1) in class labels means "unlabelled"; NaN is refused where it has no meaning
(motion-capture values, indices).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from pogm.data import PartialDataset, load_source, load_split
from pogm.data.asf_amc import parse_amc, parse_asf
from pogm.data.sources.npz import load_npz

RNG = np.random.default_rng(0)
X = RNG.random((40, 4)).astype(np.float32)
Y = np.arange(40) % 4


# ---------------------------------------------------------------------------------------- from_arrays


@pytest.mark.parametrize(
    "x, message",
    [
        (np.array([["a", "b"], ["c", "d"]]), r"dtype <U1 \(strings\)"),
        (np.array([[b"a"], [b"b"]]), r"byte strings"),
        (np.array([[1, None], [2, 3]], dtype=object), r"dtype object"),
        (np.ones((3, 2), dtype=complex), r"complex"),
        (torch.ones(3, 2, dtype=torch.complex64), r"complex"),
        (np.zeros((3, 2), dtype="M8[s]"), r"dates"),
        (np.zeros((3, 2), dtype=[("a", "f4")]), r"records"),
        (np.zeros((0, 3)), r"no rows"),
        (np.zeros((3, 0)), r"each row is empty"),
        (np.zeros(5), r"at least 2-D"),
        (np.float32(1.0), r"at least 2-D"),
        ([[1.0, 2.0], [3.0]], r"could not be converted"),
        ({}, r"empty dict"),
        (np.array([[1e300, 0.0]]), r"beyond the float32 range"),
        (np.array([[np.inf, 0.0]]), r"inf"),
        (np.ones((3, 2), dtype=np.uint64) * np.uint64(2**63 + 1), r"beyond the range of int64"),
    ],
)
def test_from_arrays_refuses_hostile_x(x, message):
    with pytest.raises(ValueError, match=message):
        PartialDataset.from_arrays(x)


@pytest.mark.parametrize("dtype", [">f4", ">f8", ">i4", "<u2", "<u4", "<u8", "f2", np.longdouble, bool])
def test_from_arrays_accepts_every_real_numeric_dtype(dtype):
    raw = np.array([[0, 1], [1, 0], [1, 1]]).astype(dtype)
    d = PartialDataset.from_arrays(raw, np.array([0, 1, 1]).astype(dtype if np.dtype(dtype).kind in "iub" else np.int64))
    assert d.x["x"].dtype == torch.float32 and d.x["x"].tolist() == [[0, 1], [1, 0], [1, 1]]
    assert d.y.tolist() == [0, 1, 1] and d.num_classes == 2


@pytest.mark.parametrize(
    "y, kwargs, message",
    [
        (np.array(["a", "b", "c"]), {}, r"strings"),
        (np.array([1j, 0, 1]), {}, r"complex"),
        (np.array([0, 1, 10**12]), {}, r"no example"),  # would otherwise mean a trillion classes
        (np.array([0.0, 1.0, 1e30]), {}, r"far beyond"),
        (np.array([0, 1, np.inf]), {}, r"non-integer"),
        (np.array([0.0, 0.5, 1.0]), {}, r"non-integer class label 0.5"),
        (np.array([0, -3, 1]), {}, r"negative class label -3"),
        (np.array([0, 1, 2]), {"num_classes": 2}, r"class label 2 but num_classes=2"),
        (np.array([-1, -1, np.nan]), {}, r"no labelled rows"),
        (np.zeros((3, 0)), {}, r"at least one column"),
        (np.zeros((3, 2, 2)), {}, r"class labels must be \[N\]"),
        (np.zeros(4), {}, r"one label per row"),
        (np.float64(1.0), {}, r"one label per row"),
        (np.array([0, 1, 1]), {"num_classes": 2.5}, r"num_classes must be a whole number"),
        (np.array([0, 1, 1]), {"num_classes": "3"}, r"num_classes must be a whole number"),
        (np.array([0, 1, 1]), {"num_classes": True}, r"num_classes must be a whole number"),
        (np.array([0, 1, 1]), {"num_classes": 0}, r"num_classes must be >= 1"),
        (np.array([[0.0, np.inf]] * 3), {}, r"inf"),
    ],
)
def test_from_arrays_refuses_hostile_labels(y, kwargs, message):
    with pytest.raises(ValueError, match=message):
        PartialDataset.from_arrays(np.zeros((3, 2)), y, **kwargs)


def test_nan_in_class_labels_means_unlabelled_and_in_x_means_missing():
    x = np.array([[np.nan, 1.0], [2.0, 3.0]])
    d = PartialDataset.from_arrays(x, np.array([np.nan, 1.0]), num_classes=2)
    assert d.y_mask.tolist() == [False, True] and d.y.tolist() == [0, 1]
    assert d.x_mask["x"].tolist() == [[False, True], [True, True]] and not torch.isnan(d.x["x"]).any()


def test_from_arrays_masks_combine_with_nan():
    x = np.array([[np.nan, 1.0, 2.0], [3.0, 4.0, 5.0]])
    d = PartialDataset.from_arrays(x, x_mask=np.array([[1, 1, 0], [1, 0, 1]], dtype=np.uint8))
    assert d.x_mask["x"].tolist() == [[False, True, False], [True, False, True]]
    assert d.x["x"].tolist() == [[0.0, 1.0, 0.0], [3.0, 0.0, 5.0]]
    # A per-row group mask [N, 1] and a dict of masks by group.
    d = PartialDataset.from_arrays({"a": np.ones((2, 3)), "b": np.ones((2, 2))}, x_mask={"b": np.array([[True], [False]])})
    assert d.x_mask["b"].tolist() == [[True], [False]] and d.x["b"].tolist() == [[1, 1], [0, 0]]
    assert d.x_mask["a"].all()


@pytest.mark.parametrize(
    "x, x_mask, message",
    [
        (np.ones((3, 2)), np.ones((3, 2), dtype=np.float32), r"masks are bool"),
        (np.ones((3, 2)), np.full((3, 2), 2), r"other than 0 and 1"),
        (np.ones((3, 2)), np.ones((3,), dtype=bool), r"not broadcastable"),
        (np.ones((3, 2)), np.ones((3, 3), dtype=bool), r"not broadcastable"),
        (np.ones((3, 2)), np.ones((2, 2), dtype=bool), r"not broadcastable"),
        (np.ones((3, 2)), np.array([["yes", "no"]] * 3), r"strings"),
        ({"a": np.ones((3, 2)), "b": np.ones((3, 2))}, np.ones((3, 2), dtype=bool), r"dict by group"),
        ({"a": np.ones((3, 2))}, {"c": np.ones((3, 2), dtype=bool)}, r"groups \['c'\] that x does not have"),
    ],
)
def test_from_arrays_refuses_bad_masks(x, x_mask, message):
    with pytest.raises(ValueError, match=message):
        PartialDataset.from_arrays(x, x_mask=x_mask)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"x": {"x": np.zeros((3, 2))}}, r"not a torch tensor"),
        ({"x": {"x": torch.tensor(1.0)}}, r"float tensor \[N, \.\.\.\]"),
        ({"x": {"x": torch.zeros(3, 2, dtype=torch.long)}}, r"float tensor"),
        ({"x": {"x": torch.zeros(3, 2)}, "x_mask": {"x": np.ones((3, 2), bool)}}, r"not a torch bool tensor"),
        ({"x": {"x": torch.zeros(3, 2)}, "x_mask": {"x": torch.ones(3, 2)}}, r"masks are bool"),
        ({"x": {"x": torch.zeros(3, 2)}, "x_mask": {"x": torch.ones(3, 3, dtype=torch.bool)}}, r"not broadcastable"),
        ({"x": {"x": torch.zeros(3, 2)}, "x_mask": {"z": torch.ones(3, 2, dtype=torch.bool)}}, r"groups \['z'\]"),
        ({"x": {"x": torch.zeros(3, 2), "b": torch.zeros(4, 2)}}, r"same number of rows"),
        ({"x": {"x": torch.zeros(3, 2)}, "y": np.zeros(3)}, r"not a torch tensor"),
        ({"x": {"x": torch.zeros(3, 2)}, "y": torch.zeros(4, dtype=torch.long)}, r"y has 4 rows but x has 3"),
        ({"x": {"x": torch.zeros(3, 2)}, "y": torch.zeros(3, dtype=torch.long), "y_mask": torch.ones(3)}, r"y_mask must be bool"),
        ({"x": {"x": torch.zeros(3, 2)}, "y_mask": torch.ones(3, dtype=torch.bool)}, r"y_mask given without y"),
        ({"x": {}}, r"at least one group"),
        ({"x": torch.zeros(3, 2)}, r"dict of at least one group"),
    ],
)
def test_constructor_refuses_hostile_parts(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PartialDataset(**kwargs)


# ---------------------------------------------------------------------------------------- npz source


def _huge_header_npz(path: Path) -> None:
    """A zip whose x.npy header claims 80 TB of data (it holds 64 bytes)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (10**9, 10**4)})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + b"\0" * 64)


def _valid_npz_bytes(tmp_path: Path) -> bytes:
    np.savez(tmp_path / "good.npz", x=X, y=Y)
    return (tmp_path / "good.npz").read_bytes()


def _npy_bytes(a: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0xFF
    return bytes(out)


NPZ_CASES = {
    # name: (write(path, good_bytes), kwargs, message)
    "random bytes": (lambda p, g: p.write_bytes(np.random.default_rng(1).bytes(600)), {}, r"not an \.npz file \(not a zip archive"),
    "empty file": (lambda p, g: p.write_bytes(b""), {}, r"the file is empty"),
    "json renamed": (lambda p, g: p.write_text('{"x": [[1, 2]], "y": [0]}'), {}, r"not an \.npz file"),
    "npy renamed": (lambda p, g: p.write_bytes(_npy_bytes(X)), {}, r"single-array \.npy"),
    "pickle renamed": (lambda p, g: p.write_bytes(pickle.dumps({"x": X})), {}, r"pickle"),
    "truncated": (lambda p, g: p.write_bytes(g[: len(g) // 2]), {}, r"damaged or truncated zip"),
    "bit flip": (lambda p, g: p.write_bytes(_flip(g, 300)), {}, r"damaged|corrupt|cannot read"),
    "huge header": (lambda p, g: _huge_header_npz(p), {}, r"truncated or corrupt: its header says shape \(1000000000, 10000\)"),
    "object array": (lambda p, g: np.savez(p, x=np.array([[1, None]] * 10, dtype=object)), {}, r"Python objects.*never unpickles"),
    "string labels": (lambda p, g: np.savez(p, x=X, y=np.array(["cat"] * 40)), {}, r"array 'y' has dtype <U3"),
    "complex x": (lambda p, g: np.savez(p, x=X.astype(np.complex64)), {}, r"array 'x' has dtype complex64"),
    "no x": (lambda p, g: np.savez(p, data=X), {}, r"needs 'x'"),
    "unknown key": (lambda p, g: np.savez(p, x=X, x_val=X), {}, r"unknown key\(s\) \['x_val'\]"),
    "y without x_test": (lambda p, g: np.savez(p, x=X, y=Y, y_test=Y), {}, r"'y_test' but no 'x_test'"),
    "labels for one part only": (lambda p, g: np.savez(p, x=X, y=Y, x_test=X), {}, r"labels for every part or none"),
    "x_test other shape": (lambda p, g: np.savez(p, x=X, x_test=np.zeros((3, 5))), {}, r"'x_test' rows have shape"),
    "lengths differ": (lambda p, g: np.savez(p, x=X, y=Y[:-1]), {}, r"array 'y' has shape \(39,\) but x has 40 rows"),
    "1-D x": (lambda p, g: np.savez(p, x=X[:, 0]), {}, r"at least 2-D"),
    "empty x": (lambda p, g: np.savez(p, x=np.zeros((0, 4))), {}, r"no rows"),
    "no features": (lambda p, g: np.savez(p, x=np.zeros((40, 0))), {}, r"each row is empty"),
    "inf in x": (lambda p, g: np.savez(p, x=np.where(X > 0.9, np.inf, X)), {}, r"\+-inf"),
    "inf in labels": (lambda p, g: np.savez(p, x=X, y=np.where(Y == 3, np.inf, Y)), {}, r"non-integer class label inf"),
    "non-integer labels": (lambda p, g: np.savez(p, x=X, y=Y + 0.5), {}, r"non-integer class label 0.5"),
    "negative labels": (lambda p, g: np.savez(p, x=X, y=Y - 2), {}, r"negative class label -2"),
    "label out of range": (lambda p, g: np.savez(p, x=X, y=Y), {"num_classes": 3}, r"class label 3 but num_classes=3"),
    "1-based labels": (lambda p, g: np.savez(p, x=X, y=Y + 1), {}, r"class\(es\) \[0\] .* 1-based"),
    "empty classes": (lambda p, g: np.savez(p, x=X, y=Y * 2), {}, r"class\(es\) \[1, 3, 5\] of 0\.\.6 have no labelled example"),
    "no labelled rows": (lambda p, g: np.savez(p, x=X, y=np.full(40, -1)), {}, r"no labelled rows"),
    "mixed label kinds": (lambda p, g: np.savez(p, x=X, y=Y, x_test=X[:5], y_test=np.ones((5, 2))), {}, r"class labels \[N\] and others continuous"),
    "continuous widths differ": (lambda p, g: np.savez(p, x=X, y=np.ones((40, 2)), x_test=X[:5], y_test=np.ones((5, 3))), {}, r"different widths"),
    "bad num_classes": (lambda p, g: np.savez(p, x=X, y=Y), {"num_classes": "4"}, r"num_classes must be a whole number"),
    "too few rows": (lambda p, g: np.savez(p, x=X[:2]), {}, r"too few for a test split"),
}


@pytest.mark.parametrize("case", sorted(NPZ_CASES))
def test_npz_source_gives_one_clear_error_naming_the_file(tmp_path: Path, case: str):
    write, kwargs, message = NPZ_CASES[case]
    good = _valid_npz_bytes(tmp_path)
    path = tmp_path / "data.npz"
    write(path, good)
    with pytest.raises(ValueError, match=message) as info:
        load_source(str(path), **kwargs)
    assert str(info.value).startswith(str(path)), str(info.value)


def test_npz_source_reads_big_endian_and_unlabelled_nan(tmp_path: Path):
    y = Y.astype(np.float64)
    y[::5] = np.nan  # unlabelled rows
    path = tmp_path / "be.npz"
    np.savez(path, x=X.astype(">f8"), y=y.astype(">f8"))
    s = load_npz(path)
    assert s.train.num_classes == 4 and s.train.x["x"].dtype == torch.float32
    total = sum(int(d.y_mask.sum()) for d in (s.train, s.valid, s.test))
    assert total == 32


def test_npz_options_are_checked(tmp_path: Path):
    path = tmp_path / "ok.npz"
    np.savez(path, x=X)
    with pytest.raises(ValueError, match="no option"):
        load_source(str(path), bogus=1)
    with pytest.raises(ValueError, match="valid_fraction must be a number"):
        load_source(str(path), valid_fraction="a lot")
    with pytest.raises(ValueError, match="seed must be a whole number"):
        load_source(str(path), seed=1.5)
    with pytest.raises(FileNotFoundError, match="no such .npz file"):
        load_source(str(tmp_path / "missing.npz"))


def test_source_names_and_options_are_checked():
    with pytest.raises(ValueError, match="a data source is a name"):
        load_source(["digits"])
    with pytest.raises(ValueError, match="unknown data source"):
        load_source("no-such-source")
    with pytest.raises(ValueError, match=r"has no option\(s\) bogus; its options are seed, binarize, n_valid, n_test"):
        load_source("digits", bogus=1)
    with pytest.raises(ValueError, match="option n_valid must be a whole number"):
        load_source("digits", n_valid="many")
    with pytest.raises(ValueError, match="option binarize must be True or False"):
        load_source("digits", binarize="no")


# ---------------------------------------------------------------------------------------- label-split files


@pytest.mark.parametrize(
    "name, content, size, message",
    [
        ("a.json", b"\xff\xfe garbage", None, r"not a list of row indices"),
        ("a.json", b"", None, r"not a list of row indices"),
        ("a.json", b'{"a": 1}', None, r"JSON list of integer row indices"),
        ("a.json", b"[1, 2.5]", None, r"JSON list of integer row indices"),
        ("a.json", b"[1, true]", None, r"JSON list of integer row indices"),
        ("a.json", b"[1, -4]", None, r"row index -4"),
        ("a.json", b"[1, 99999999999999999999999]", None, r"row index"),
        ("a.json", b"[" * 100_000 + b"]" * 100_000, None, r"not a list of row indices"),
        ("a.json", b"[1, 2, 50]", 10, r"row index 50 is out of range for a data set of 10 rows"),
        ("a.npy", b"\x93NUMPY garbage", None, r"not a list of row indices"),
        ("a.npy", None, None, r"not integer row indices"),
    ],
)
def test_load_split_refuses_bad_files(tmp_path: Path, name, content, size, message):
    path = tmp_path / name
    if content is None:
        np.save(path, np.array([0.5, 1.5]))
    else:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
        load_split(path, size=size)
    assert str(path) in str(info.value)


# ---------------------------------------------------------------------------------------- ASF / AMC

SMALL_ASF = """\
:version 1.10
:name SMALL
:units
  angle deg
:root
   order TX TY TZ RX RY RZ
   axis XYZ
   position 0 0 0
   orientation 0 0 0
:bonedata
  begin
     id 1
     name upper
     direction 1 0 0
     length 2
     axis 0 0 0 XYZ
    dof rx ry rz
  end
:hierarchy
  begin
    root upper
  end
"""
SMALL_AMC = """\
:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
upper 0 0 90
2
root 0 0 0 0 0 0
upper 0 0 0
"""


@pytest.mark.parametrize(
    "kind, text, message",
    [
        ("amc", SMALL_AMC.replace("\n2\n", "\n\u00b2\n"), r":6: unknown joint '\u00b2'"),  # a superscript two is no frame number
        ("amc", SMALL_AMC.replace("\n2\n", "\n" + "9" * 5000 + "\n"), r"implausibly large"),
        ("amc", SMALL_AMC.replace("upper 0 0 0", "upper 0 nan 0"), r"NaN"),
        ("amc", SMALL_AMC.replace("upper 0 0 0", "upper 0 inf 0"), r"must be finite"),
        ("amc", SMALL_AMC.replace("upper 0 0 0", "upper 0 0"), r"values but its dof"),
        ("amc", "\x00\x01\x02binary", r"binary data"),
        ("amc", "", r"empty file"),
        ("asf", SMALL_ASF.replace("id 1", "id " + "7" * 5000), r"bad number .* for the bone id"),
        ("asf", SMALL_ASF.replace("length 2", "length nan"), r"NaN"),
        ("asf", SMALL_ASF.replace("direction 1 0 0", "direction 1 0 inf"), r"must be finite"),
        ("asf", SMALL_ASF.replace(":hierarchy", ":hierarchy\n  begin\n    root upper\n  end\n:hierarchy"), r"appears twice"),
        ("asf", SMALL_ASF.encode("utf-16"), r"binary data|not valid UTF-8"),
        ("asf", SMALL_ASF[: SMALL_ASF.index("end")], r"missing section|no 'end'"),
    ],
)
def test_mocap_parser_names_file_and_line(tmp_path: Path, kind, text, message):
    asf = tmp_path / "small.asf"
    asf.write_text(SMALL_ASF)
    path = tmp_path / f"bad.{kind}"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ValueError, match=message) as info:
        if kind == "asf":
            parse_asf(path)
        else:
            parse_amc(path, parse_asf(asf))
    assert str(info.value).startswith(f"{path}:"), str(info.value)


def test_mocap_parser_accepts_the_small_files(tmp_path: Path):
    (tmp_path / "s.asf").write_text(SMALL_ASF)
    (tmp_path / "s.amc").write_text(SMALL_AMC)
    motion = parse_amc(tmp_path / "s.amc", parse_asf(tmp_path / "s.asf"))
    assert motion.frames.tolist() == [1, 2] and motion.joints["upper"].shape == (2, 3)


def test_missing_files_are_file_not_found(tmp_path: Path):
    for call in (lambda: parse_asf(tmp_path / "no.asf"), lambda: parse_amc(tmp_path / "no.amc"), lambda: load_split(tmp_path / "no.json")):
        with pytest.raises(FileNotFoundError):
            call()
