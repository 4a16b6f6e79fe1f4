"""Fuzz tests (hypothesis): hostile input at every loader gives a clear error, never a hang, a
traceback from deep inside numpy / torch, or code execution.

Targets: `PartialDataset.from_arrays` and the constructor (random arrays, shapes, dtypes, masks),
the ``npz`` source (random arrays saved to a temporary file, random bytes, damaged archives), the
checkpoint loaders (`load_weights`, `load_state`, `read_config` and `load_run` on a run directory
with one fuzzed file) and the ASF/AMC parser (random bytes, token soup, damaged files).

"Clear" means: an exception of the target's allowed types (ValueError, FileNotFoundError,
CheckpointError, ...) whose message is not empty and, for files, names the file. Each example runs
under a hard time limit (SIGALRM) on top of hypothesis' deadline, so a hang fails the test instead
of stalling CI. Generation is derandomized (same examples on every run) and no example database is
written. Every error must be one of the allowed types with a message (naming the file where one
is given); anything else fails the example.

Every example is counted; when the module's tests are done, a module fixture writes the counts to
``fuzz_counts.json`` in pytest's base temporary folder and prints them (whatever order the tests ran in). The number of inputs tried is fixed; which of them are refused
can shift slightly with the set of test files collected, because hypothesis also draws constants
found in the (local) modules imported so far. The same command always draws the same inputs.
"""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import shutil
import signal
import struct
import tempfile
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import pogm
from pogm.data import PartialDataset, load_source
from pogm.data.memmap import MemmapDataset
from pogm.data.asf_amc import forward_kinematics, parse_amc, parse_asf, rest_angles
from pogm.data.sources.npz import KEYS, load_npz
from pogm import checkpoint
from pogm.checkpoint import CheckpointError
from tests.test_multigroup_data import TINY_AMC, TINY_ASF

TRIED: collections.Counter[str] = collections.Counter()  # target -> examples run
REFUSED: collections.Counter[str] = collections.Counter()  # target -> examples refused with a clear error

class Hang(BaseException):
    """An example that ran past the hard time limit (BaseException: loaders cannot swallow it)."""


@contextlib.contextmanager
def hard_time_limit(seconds: float):
    def alarm(signum, frame):
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def attempt(target: str, fn, allowed: tuple[type[BaseException], ...], names: str | None = None, limit: float = 20.0):
    """Run ``fn()``: its result, or None when it raised an allowed exception with a clear message
    (naming ``names`` when given); anything else fails the example."""
    TRIED[target] += 1
    with hard_time_limit(limit):
        try:
            return fn()
        except Exception as error:
            if not isinstance(error, allowed):
                raise
            message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
            assert message.strip(), f"{type(error).__name__} without a message"
            if names is not None:
                assert names in message, f"{type(error).__name__} does not name {names}: {message}"
            REFUSED[target] += 1
            return None


def fuzz(examples: int, deadline_s: float = 5.0):
    """Settings for CI: ``examples`` derandomized examples. For a longer hunt on a free machine,
    ``POGM_FUZZ_SCALE=20 POGM_FUZZ_RANDOM=1 pytest tests/test_fuzz.py`` draws 20 times as many,
    fresh on each run."""
    return settings(
        max_examples=max(1, int(examples * float(os.environ.get("POGM_FUZZ_SCALE", "1")))),
        deadline=timedelta(seconds=deadline_s),
        derandomize=os.environ.get("POGM_FUZZ_RANDOM") != "1",
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@pytest.fixture(autouse=True, scope="module")
def _ieee_subnormals():
    """Hypothesis draws subnormal floats, which flush-to-zero mode makes impossible; the Trainer
    restores the mode it found, and this checks that nothing earlier left it on."""
    tiny = torch.tensor([1e-30]) * torch.tensor([1e-10])
    assert tiny.item() != 0.0, "flush-to-zero was left on by an earlier test or by the Trainer"
    yield


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ---------------------------------------------------------------------------------------- arrays

DTYPES = ["f4", "f8", "f2", ">f4", ">f8", "i1", "i2", "i8", ">i4", "u1", "u2", "u4", "u8", "?", "c8", "c16", "U3", "S2", "M8[s]", "m8[s]", "O", "V4"]
OBJECTS = st.one_of(st.none(), st.integers(-5, 5), st.floats(), st.text(max_size=2), st.lists(st.integers(0, 3), max_size=2))


@st.composite
def arrays(draw, max_dims: int = 4, rows: int | None = None, dtypes=DTYPES):
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=4))
    if rows is not None and shape and draw(st.booleans()):
        shape = (rows, *shape[1:])
    if dtype.kind == "O":
        return draw(hnp.arrays(dtype, shape, elements=OBJECTS))
    if dtype.kind == "V":
        return np.frombuffer(draw(st.binary(min_size=int(np.prod(shape)) * 4, max_size=int(np.prod(shape)) * 4)), dtype=dtype).reshape(shape)
    return draw(hnp.arrays(dtype, shape))


@st.composite
def array_like(draw, **kwargs):
    """A numpy array, sometimes a torch tensor or nested lists of it."""
    a = draw(arrays(**kwargs))
    form = draw(st.sampled_from(["numpy", "numpy", "torch", "list"]))
    if form == "torch" and a.dtype.kind in "biufc" and a.dtype.isnative and a.dtype.itemsize <= 8 and a.dtype.char not in "HILQ":
        return torch.from_numpy(a.copy())
    if form == "list" and a.dtype.kind in "biuf":
        return a.tolist()
    return a


def check_dataset(d: PartialDataset) -> None:
    """The invariants of an accepted dataset, and a batch can be drawn from it."""
    n = len(d)
    assert n >= 1
    for k, v in d.x.items():
        assert v.dtype == torch.float32 and v.shape[0] == n and torch.isfinite(v).all(), k
        m = d.x_mask[k]
        assert m.dtype == torch.bool and m.dim() == v.dim()
        assert bool((torch.where(m, torch.zeros(()), v) == 0).all()) or m.all()  # unobserved entries hold 0
    if d.y is not None:
        assert d.y_mask.dtype == torch.bool and d.y_mask.shape == (n,)
        if d.num_classes is not None:
            assert d.y.dtype == torch.int64 and d.y.dim() == 1
            assert ((d.y >= 0) & (d.y < d.num_classes)).all()
        else:
            assert d.y.dtype == torch.float32 and d.y.dim() == 2 and torch.isfinite(d.y).all()
    batch = d.batch(torch.arange(n))
    assert len(batch) == n


COMMON = ["f4", "f8", "i8", "u1", "?", ">f4", "f2", "u8", "i1"]


@st.composite
def near_valid(draw):
    """x, y and x_mask that are mostly of the right kind (so that the deeper checks are reached),
    with one or two things wrong: a dtype, a row count, a label, a mask shape, NaN and inf."""
    n = draw(st.integers(0, 5))
    feat = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=3))

    def dtype():
        return np.dtype(draw(st.sampled_from(COMMON)) if draw(st.integers(0, 5)) else draw(st.sampled_from(DTYPES)))

    def array(shape, dt):
        if dt.kind == "O":
            return draw(hnp.arrays(dt, shape, elements=OBJECTS))
        if dt.kind == "V":
            return np.zeros(shape, dtype=dt)
        return draw(hnp.arrays(dt, shape))

    def rows():
        return n if draw(st.integers(0, 5)) else draw(st.integers(0, 6))

    x = array((rows(), *feat), dtype())
    y_kind = draw(st.sampled_from(["none", "class", "class", "float-class", "continuous", "any"]))
    if y_kind == "class":
        y = draw(hnp.arrays(np.int64, (rows(),), elements=st.integers(-2, 6)))
    elif y_kind == "float-class":
        y = draw(hnp.arrays(np.float64, (rows(),), elements=st.sampled_from([0.0, 1.0, 2.0, -1.0, np.nan, 0.5, np.inf, 1e300])))
    elif y_kind == "continuous":
        y = array((rows(), draw(st.integers(0, 3))), dtype())
    elif y_kind == "any":
        y = draw(arrays(max_dims=2))
    else:
        y = None
    mask_kind = draw(st.sampled_from(["none", "none", "full", "rows", "one", "any"]))
    mask_shape = {"full": (n, *feat), "rows": (n, *[1] * len(feat)), "one": (1, *feat)}.get(mask_kind)
    if mask_kind == "any":
        x_mask = draw(arrays(max_dims=4, dtypes=["?", "u1", "i8", "f4", "U3"]))
    elif mask_shape is not None:
        x_mask = array(mask_shape, np.dtype(draw(st.sampled_from(["?", "?", "u1", "i8", "f4"]))))
    else:
        x_mask = None
    return x, y, x_mask


@fuzz(300)
@given(
    x=st.one_of(array_like(), st.dictionaries(st.sampled_from(["a", "b", "x"]), array_like(max_dims=3), max_size=3)),
    y=st.one_of(st.none(), array_like(max_dims=2, dtypes=["i8", "f8", "f4", "u1", "?", "U3", "O", "c8", "i1", "u8", ">i4"])),
    x_mask=st.one_of(st.none(), st.none(), array_like(max_dims=3, dtypes=["?", "u1", "i8", "f4", "U3"])),
    num_classes=st.one_of(st.none(), st.integers(-1, 6), st.sampled_from([2.5, "3", True])),
    binarize=st.booleans(),
)
def test_fuzz_from_arrays(x, y, x_mask, num_classes, binarize):
    d = attempt("from_arrays", lambda: PartialDataset.from_arrays(x, y, num_classes=num_classes, binarize=binarize, x_mask=x_mask), (ValueError,))
    if d is not None:
        check_dataset(d)


@fuzz(300)
@given(inputs=near_valid(), num_classes=st.one_of(st.none(), st.none(), st.integers(1, 7)), binarize=st.booleans())
def test_fuzz_from_arrays_near_valid(inputs, num_classes, binarize):
    x, y, x_mask = inputs
    d = attempt("from_arrays near valid", lambda: PartialDataset.from_arrays(x, y, num_classes=num_classes, binarize=binarize, x_mask=x_mask), (ValueError,))
    if d is not None:
        check_dataset(d)


TORCH_DTYPES = [torch.float32, torch.float64, torch.float16, torch.int64, torch.uint8, torch.bool, torch.complex64]


@st.composite
def tensors(draw, max_dims: int = 3):
    dtype = draw(st.sampled_from(TORCH_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=3))
    return torch.zeros(shape, dtype=dtype) if draw(st.booleans()) else torch.ones(shape, dtype=dtype)


@fuzz(150)
@given(
    x=st.dictionaries(st.sampled_from(["x", "a"]), tensors(), max_size=2),
    x_mask=st.dictionaries(st.sampled_from(["x", "a", "z"]), tensors(), max_size=2),
    y=st.one_of(st.none(), tensors(max_dims=3)),
    y_mask=st.one_of(st.none(), tensors(max_dims=2)),
    num_classes=st.one_of(st.none(), st.integers(-1, 4)),
)
def test_fuzz_dataset_constructor(x, x_mask, y, y_mask, num_classes):
    d = attempt("PartialDataset", lambda: PartialDataset(x=x, x_mask=x_mask, y=y, y_mask=y_mask, num_classes=num_classes), (ValueError,))
    if d is not None:
        assert len(d.batch(torch.arange(len(d)))) == len(d)
        assert len(d.subset(torch.arange(len(d)))) == len(d)


# ---------------------------------------------------------------------------------------- npz files


@fuzz(150)
@given(
    parts=st.dictionaries(
        st.sampled_from([*KEYS, "x", "y", "junk"]),
        arrays(max_dims=3, rows=12, dtypes=["f4", "f8", "i8", "u1", "?", ">f4", "c8", "U3", "O", "f2"]),
        min_size=1,
        max_size=4,
    ),
    num_classes=st.one_of(st.none(), st.integers(1, 5)),
)
def test_fuzz_npz_arrays(workdir, parts, num_classes):
    path = workdir / "arrays.npz"
    np.savez(path, **parts)
    splits = attempt("npz arrays", lambda: load_npz(path, num_classes=num_classes), (ValueError,), names=str(path))
    if splits is not None:
        for d in (splits.train, splits.valid, splits.test):
            if d is not None:
                check_dataset(d)


def _good_npz() -> bytes:
    buffer = io.BytesIO()
    x = np.random.default_rng(0).random((20, 3)).astype(np.float32)
    x[0, 0] = np.nan
    np.savez(buffer, x=x, y=np.arange(20) % 2)
    return buffer.getvalue()


@st.composite
def damaged(draw, good: bytes):
    """``good`` with 1-4 damages: flipped bytes, a cut, an insertion or an overwritten stretch."""
    data = bytearray(good)
    for _ in range(draw(st.integers(1, 4))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert", "overwrite"]))
        at = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[at] ^= draw(st.integers(1, 255))
        elif op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            patch = draw(st.binary(min_size=1, max_size=16))
            data[at : at + len(patch)] = patch
    return bytes(data)


GOOD_NPZ = _good_npz()


@fuzz(200)
@given(data=st.one_of(st.binary(max_size=2000), damaged(GOOD_NPZ), damaged(GOOD_NPZ)))
def test_fuzz_npz_bytes(workdir, data):
    path = workdir / "bytes.npz"
    path.write_bytes(data)
    splits = attempt("npz bytes", lambda: load_npz(path), (ValueError,), names=str(path))
    if splits is not None:
        check_dataset(splits.train)


@fuzz(150)
@given(
    x=arrays(max_dims=4, rows=12, dtypes=["f4", "f8", "f2", ">f4", "i8", "u1", "?", "c8", "U3", "O", "V4"]),
    y=st.one_of(st.none(), arrays(max_dims=2, rows=12, dtypes=["i8", "f4", "u1", "?", "f8", "U3", "O"])),
    num_classes=st.one_of(st.none(), st.integers(1, 5)),
    binarize=st.booleans(),
)
def test_fuzz_memmap_store_arrays(workdir, x, y, num_classes, binarize):
    store = workdir / "store-arrays"
    store.mkdir(exist_ok=True)
    np.save(store / "x.npy", x, allow_pickle=True)  # a hostile writer may pickle; pogm never unpickles
    (store / "y.npy").unlink(missing_ok=True)
    if y is not None:
        np.save(store / "y.npy", y, allow_pickle=True)
    load = lambda: load_source("memmap", path=str(store), num_classes=num_classes, binarize=binarize)
    splits = attempt("memmap arrays", load, (ValueError,), names=str(store))
    if splits is not None:
        check_dataset(splits.test)
        train = attempt("memmap arrays", splits.train.to_memory, (ValueError,), names=str(store))  # binarize: each read is checked
        if train is not None:
            check_dataset(train)


def _good_npy(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


GOOD_X_NPY = _good_npy(np.random.default_rng(0).random((20, 3)).astype(np.float32))
GOOD_Y_NPY = _good_npy(np.arange(20) % 2)


@pytest.mark.filterwarnings("ignore:Reading `.npy` or `.npz` file required additional header parsing")
@fuzz(200)
@given(
    x=st.one_of(st.binary(max_size=600), damaged(GOOD_X_NPY), damaged(GOOD_X_NPY), st.just(GOOD_X_NPY)),
    y=st.one_of(st.none(), st.binary(max_size=300), damaged(GOOD_Y_NPY), st.just(GOOD_Y_NPY)),
)
def test_fuzz_memmap_store_bytes(workdir, x, y):
    store = workdir / "store-bytes"
    store.mkdir(exist_ok=True)
    (store / "x.npy").write_bytes(x)
    (store / "y.npy").unlink(missing_ok=True)
    if y is not None:
        (store / "y.npy").write_bytes(y)
    dataset = attempt("memmap bytes", lambda: MemmapDataset(store), (ValueError,), names=str(store))
    if dataset is not None:
        rows = attempt("memmap bytes", lambda: dataset.batch(torch.arange(len(dataset))), (ValueError,), names=str(store))
        if rows is not None:
            assert rows.x["x"].dtype == torch.float32 and torch.isfinite(rows.x["x"]).all()


# ---------------------------------------------------------------------------------------- checkpoints


def _tiny_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def _good_weights() -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in _tiny_model().state_dict().items()}, metadata={"format": checkpoint.FORMAT})


GOOD_WEIGHTS = _good_weights()


@st.composite
def weights_with_edited_header(draw):
    """Valid safetensors bytes whose JSON header has one field replaced by a hostile value."""
    (size,) = struct.unpack("<Q", GOOD_WEIGHTS[:8])
    header = json.loads(GOOD_WEIGHTS[8 : 8 + size])
    name = draw(st.sampled_from(sorted(header)))
    value = draw(
        st.one_of(
            st.fixed_dictionaries({"dtype": st.sampled_from(["F32", "F64", "I64", "BOOL", "F16", "XX"]), "shape": st.lists(st.integers(-2, 2**40), max_size=3), "data_offsets": st.lists(st.integers(-1, 2**40), max_size=3)}),
            st.text(max_size=5),
            st.integers(),
            st.none(),
        )
    )
    header[name] = value
    body = json.dumps(header).encode()
    return struct.pack("<Q", len(body)) + body + GOOD_WEIGHTS[8 + size :]


@fuzz(200)
@given(data=st.one_of(st.binary(max_size=600), damaged(GOOD_WEIGHTS), weights_with_edited_header()))
def test_fuzz_load_weights(workdir, data):
    path = workdir / "model.safetensors"
    path.write_bytes(data)
    model = _tiny_model()
    attempt("load_weights", lambda: checkpoint.load_weights(path, model), (CheckpointError,), names=str(path))


def _good_state() -> bytes:
    buffer = io.BytesIO()
    opt = torch.optim.Adam(_tiny_model().parameters())
    torch.save({"step": 3, "optimizers": [opt.state_dict()], "torch_rng": torch.get_rng_state(), "best_score": 1.5}, buffer)
    return buffer.getvalue()


GOOD_STATE = _good_state()


@pytest.mark.filterwarnings("ignore::UserWarning")
@fuzz(150)
@given(data=st.one_of(st.binary(max_size=600), damaged(GOOD_STATE)))
def test_fuzz_load_state(workdir, data):
    path = workdir / "state.pt"
    path.write_bytes(data)
    attempt("load_state", lambda: checkpoint.load_state(path), (CheckpointError,), names=str(path))


# A file that only a loader executing the planted YAML tags could create.
SENTINEL = Path(tempfile.gettempdir()) / f"pogm-fuzz-sentinel-{os.getpid()}"
YAML_FRAGMENTS = [
    "format: pogm-run-v1\n", "model: vae\n", "model_config: {z_dim: 2}\n", "data: {name: digits}\n",
    f"!!python/object/apply:os.system ['touch {SENTINEL}']\n", f"!!python/object/new:subprocess.Popen [[touch, {SENTINEL}]]\n", "x: !!python/name:os.system\n", "a: &a [1, 2]\nb: [*a, *a]\n",
    "[" * 300, "]" * 300, "{", "}", ": :", "- - -\n", "'unclosed\n", '"\\x00"\n', "\t", "%YAML 1.1\n---\n", "... \n",
    "key: !!binary aGVsbG8=\n", "? complex key\n: v\n", "*undefined\n",
]


@fuzz(200)
@given(
    data=st.one_of(
        st.binary(max_size=400),
        st.text(max_size=200).map(str.encode),
        st.lists(st.sampled_from(YAML_FRAGMENTS), max_size=8).map(lambda parts: "".join(parts).encode()),
    )
)
def test_fuzz_read_config(workdir, data):
    run = workdir / "config-run"
    run.mkdir(exist_ok=True)
    path = run / "config.yaml"
    path.write_bytes(data)
    config = attempt("read_config", lambda: checkpoint.read_config(run), (CheckpointError,), names=str(path))
    if config is not None:
        assert isinstance(config, dict) and config["format"] == checkpoint.FORMAT
    assert not SENTINEL.exists(), "a YAML tag ran a command"


# ---------------------------------------------------------------------------------------- load_run


@pytest.fixture(scope="module")
def m2_run(workdir) -> Path:
    overrides = {"model": {"hidden": [16], "z_dim": 2}, "train": {"max_steps": 1, "progress": False}, "data": {}}
    return pogm.train("m2", data="digits", labels=2, out=workdir / "m2", overrides=overrides, progress=False).dir


LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 70),
    st.floats(width=32, allow_subnormal=False),
    st.text(max_size=6),
    st.lists(st.integers(-2, 40), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(0, 5), max_size=2),
)


def _paths(tree, prefix=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))


@st.composite
def fuzzed_run_file(draw, config: dict):
    """(file name, new bytes) for one file of a run directory."""
    name = draw(st.sampled_from(["config.yaml", "config.yaml", "config.yaml", "best.safetensors", "model.safetensors", "labelled_index.json"]))
    if name == "config.yaml" and draw(st.integers(0, 3)):
        edited = json.loads(json.dumps(config))
        path = draw(st.sampled_from([p for p in _paths(config) if p[0] != "train"]))
        node = edited
        for key in path[:-1]:
            node = node[key]
        op = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
        if op == "replace":
            node[path[-1]] = draw(LEAVES)
        elif op == "delete":
            del node[path[-1]]
        else:
            node[draw(st.text(min_size=1, max_size=5))] = draw(LEAVES)
        return name, yaml.safe_dump(edited).encode()
    if name == "labelled_index.json" and draw(st.booleans()):
        return name, json.dumps(draw(st.one_of(st.lists(st.integers(-5, 3000), max_size=6), LEAVES))).encode()
    return name, draw(st.binary(max_size=300))


@pytest.fixture(scope="module")
def scratch_run(m2_run, workdir) -> Path:
    return Path(shutil.copytree(m2_run, workdir / "scratch"))


def test_fuzz_load_run(m2_run, scratch_run):
    config = yaml.safe_load((m2_run / "config.yaml").read_text())

    @fuzz(120, deadline_s=10.0)
    @given(change=fuzzed_run_file(config))
    def run_one(change):
        name, data = change
        original = (m2_run / name).read_bytes()
        (scratch_run / name).write_bytes(data)
        try:
            names = None if name == "config.yaml" else name  # a config may name a model or source instead
            attempt("load_run", lambda: pogm.load_run(scratch_run), (CheckpointError, ValueError, KeyError, FileNotFoundError), names=names, limit=30.0)
        finally:
            (scratch_run / name).write_bytes(original)

    run_one()


def test_fuzz_read_manifest(m2_run, scratch_run):
    read_manifest = getattr(checkpoint, "read_manifest", None)
    manifest = m2_run / "checkpoint.json"
    if read_manifest is None or not manifest.is_file():
        pytest.skip("this pogm writes no checkpoint manifest")
    good = manifest.read_bytes()
    structured = json.loads(good)

    @st.composite
    def edited(draw):
        data = json.loads(json.dumps(structured))
        paths = list(_paths(data)) or [("format",)]
        path = draw(st.sampled_from(paths))
        node = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = draw(st.one_of(LEAVES, st.lists(LEAVES, max_size=2)))
        return json.dumps(data).encode()

    @fuzz(150)
    @given(data=st.one_of(st.binary(max_size=300), damaged(good), edited(), st.integers(1, 5000).map(lambda n: b"[" * n)))
    def run_one(data):
        (scratch_run / "checkpoint.json").write_bytes(data)
        try:
            attempt("read_manifest", lambda: read_manifest(scratch_run), (CheckpointError,), names="checkpoint.json")
        finally:
            (scratch_run / "checkpoint.json").write_bytes(good)

    run_one()


# ---------------------------------------------------------------------------------------- ASF / AMC

# The valid skeleton and motion that get damaged are the parser tests' own (TINY_ASF, TINY_AMC).

TOKENS = [
    ":version", ":name", ":units", ":root", ":bonedata", ":hierarchy", ":documentation", ":DEGREES", ":RADIANS", "begin", "end",
    "id", "name", "direction", "length", "axis", "dof", "limits", "order", "position", "orientation", "root", "upper", "lower",
    "rx", "ry", "rz", "tx", "l", "XYZ", "ZYX", "XXY", "0", "1", "-1", "2", "1e308", "1e999", "nan", "inf", "-inf", "(", ")",
    "(-1 1)", "(1,", "#", "\u00b2", "\u0663", "9" * 30, "1_0", "0x10", "\n", "\n", "\n", " ", "\t", "\r",
]


@st.composite
def damaged_text(draw, good: str):
    lines = good.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "token", "cut"]))
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
        elif op == "token":
            words = lines[i].split() or [""]
            words[draw(st.integers(0, len(words) - 1))] = draw(st.sampled_from(TOKENS))
            lines[i] = " ".join(words)
        else:
            lines = lines[:i] + [lines[i][: draw(st.integers(0, len(lines[i])))]]
    return "\n".join(lines) + "\n"


def text_or_bytes(good: str):
    return st.one_of(
        st.binary(max_size=300),
        st.lists(st.sampled_from(TOKENS), max_size=60).map(lambda t: " ".join(t).encode()),
        damaged_text(good).map(str.encode),
        damaged_text(good).map(str.encode),
        damaged_text(good).map(str.encode),
    )


@fuzz(300)
@given(data=text_or_bytes(TINY_ASF))
def test_fuzz_asf(workdir, data):
    path = workdir / "fuzz.asf"
    path.write_bytes(data)
    skeleton = attempt("asf", lambda: parse_asf(path), (ValueError,), names=str(path))
    if skeleton is not None:
        # A skeleton that parses can be posed, or says clearly why not.
        attempt("asf", lambda: forward_kinematics(skeleton, rest_angles(skeleton, 2)), (ValueError,))


@fuzz(300)
@given(data=text_or_bytes(TINY_AMC), with_skeleton=st.booleans())
def test_fuzz_amc(workdir, data, with_skeleton):
    asf = workdir / "small.asf"
    if not asf.exists():
        asf.write_text(TINY_ASF)
    skeleton = parse_asf(asf) if with_skeleton else None
    path = workdir / "fuzz.amc"
    path.write_bytes(data)
    motion = attempt("amc", lambda: parse_amc(path, skeleton), (ValueError,), names=str(path))
    if motion is not None:
        assert all(v.shape[0] == len(motion) and np.isfinite(v).all() for v in motion.joints.values())
        if skeleton is not None:
            attempt("amc", lambda: forward_kinematics(skeleton, motion), (ValueError,))


# ---------------------------------------------------------------------------------------- the count


@pytest.fixture(scope="module", autouse=True)
def count_of_malformed_inputs(tmp_path_factory):
    """After the module's tests: write and print how many inputs they tried and refused."""
    yield
    total = sum(TRIED.values())
    if total == 0:
        return
    report = {
        "tried": dict(TRIED),
        "refused_with_a_clear_error": dict(REFUSED),
        "accepted": {k: TRIED[k] - REFUSED[k] for k in TRIED},
        "total_tried": total,
        "total_refused": sum(REFUSED.values()),
    }
    path = tmp_path_factory.getbasetemp() / "fuzz_counts.json"
    path.write_text(json.dumps(report, indent=1))
    print(f"\nfuzz: {total} inputs tried, {report['total_refused']} refused with a clear error; {path}")
