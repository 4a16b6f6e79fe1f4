"""Tests of the multi-group sources for factVAE: bars, mnist-quadrants, mocap; of the ASF/AMC parser
and forward kinematics (`pogm.data.asf_amc`); and of the pose figure.

Real files are read through $POGM_DATA (never downloaded here); a test needing one is skipped when
it is absent.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from pogm.data import list_sources, load_source
from pogm.data.asf_amc import euler_matrix, forward_kinematics, parse_amc, parse_asf
from pogm.data.sources.bars import (
    assemble_quadrants,
    bars_images,
    quadrant_layout,
    split_quadrants,
)

COMMON_INFO = {"source", "groups", "group_dims", "likelihood", "layout", "model_defaults", "train_defaults"}
MOCAP_FILES = ["07.asf", "07_01.amc", "07_02.amc", "07_05.amc", "07_09.amc", "07_10.amc", "07_11.amc"]


def _local(filename: str) -> Path | None:
    for entry in os.environ.get("POGM_DATA", "").split(os.pathsep):
        if entry:
            p = Path(entry).expanduser()
            p = p if p.is_file() else p / filename
            if p.is_file() and p.name == Path(filename).name:
                return p
    return None


def _need(*filenames: str) -> list[Path]:
    paths = []
    for f in filenames:
        p = _local(f)
        if p is None:
            pytest.skip(f"{f} not in $POGM_DATA (set POGM_DATA to the shared data folder to run this test)")
        paths.append(p)
    return paths


def _check_common(s, source: str, groups: list[str]) -> None:
    info = s.info
    assert COMMON_INFO <= set(info), COMMON_INFO - set(info)
    json.dumps(info)  # JSON-friendly only
    assert info["source"] == source and info["groups"] == groups
    assert info["model_defaults"]["likelihood"] == info["likelihood"]
    assert {"epochs", "batch_size"} <= set(info["train_defaults"])
    for part in (s.train, s.valid, s.test):
        if part is None:
            continue
        assert list(part.x) == groups  # order matters (figures, heat maps)
        for g in groups:
            x, m = part.x[g], part.x_mask[g]
            assert x.dtype == torch.float32 and x.dim() == 2 and x.shape[1] == info["group_dims"][g]
            assert m.dtype == torch.bool and m.dim() == 2 and m.shape[1] == 1 and m.shape[0] in (1, len(part))
            assert torch.isfinite(x).all()


def test_registered():
    assert {"bars", "mnist-quadrants", "mocap"} <= set(list_sources())


# ---------------------------------------------------------------------- bars


def _row_means(x: torch.Tensor, h: int) -> torch.Tensor:
    """Mean of each pixel row of a flattened h x h quadrant: [N, h*h] -> [N*h]."""
    return x.view(len(x), h, h).mean(2).reshape(-1)


def test_bars_structure_and_missingness():
    s = load_source("bars", size=8, n_train=2000, n_valid=300, n_test=500, p_on=0.3, noise=0.1, missing=0.25, seed=3)
    _check_common(s, "bars", ["q0", "q1", "q2", "q3"])
    info = s.info
    assert info["group_dims"] == {q: 16 for q in info["groups"]} and info["likelihood"] == "gaussian:0.1"
    assert info["layout"] == {
        "kind": "quadrants",
        "image_shape": [1, 8, 8],
        "quadrants": {"q0": [0, 0, 4, 4], "q1": [0, 4, 4, 4], "q2": [4, 0, 4, 4], "q3": [4, 4, 4, 4]},
    }
    assert (len(s.train), len(s.valid), len(s.test)) == (2000, 300, 500)

    # Rows are shared left-right (q0/q1, q2/q3) and independent top-bottom (q0/q2) and across (q1/q2).
    x = s.test.x
    r = {q: _row_means(x[q], 4) for q in x}
    corr = lambda a, b: float(torch.corrcoef(torch.stack([r[a], r[b]]))[0, 1])
    assert corr("q0", "q1") > 0.9 and corr("q2", "q3") > 0.9
    assert abs(corr("q0", "q2")) < 0.1 and abs(corr("q1", "q2")) < 0.1 and abs(corr("q1", "q3")) < 0.1
    # Each row is on (~1) or off (~0) with probability p_on, plus noise of std `noise`.
    on = r["q1"] > 0.5
    assert abs(on.float().mean().item() - 0.3) < 0.03
    rows0 = x["q0"].view(-1, 4, 4).reshape(-1, 4)
    resid = rows0 - on.float()[:, None]
    assert abs(resid.std().item() - 0.1) < 0.01 and abs(resid.mean().item()) < 0.01

    # Valid/test fully observed (cheap [1, 1] masks); train has per-row flags, zero-filled when missing.
    for part in (s.valid, s.test):
        assert all(m.shape == (1, 1) and bool(m.all()) for m in part.x_mask.values())
    masks = torch.cat([s.train.x_mask[q] for q in info["groups"]], 1)  # [N, 4]
    assert masks.shape == (2000, 4)
    assert bool(masks.any(1).all()), "a training row has every quadrant missing"
    frac = 1 - masks.float().mean().item()
    assert abs(frac - 0.25) < 0.02
    assert 0.15 < (~masks).float().mean(0).min().item() and (~masks).float().mean(0).max().item() < 0.35
    for g, q in enumerate(info["groups"]):
        gone = ~masks[:, g]
        assert bool((s.train.x[q][gone] == 0).all())
        assert bool((s.train.x[q][~gone].abs().sum(1) > 0).all())
    b = s.train.batch(torch.arange(10))
    assert all(m.shape == (10, 1) for m in b.x_mask.values())

    # Deterministic given the seed; another seed gives other data.
    again = load_source("bars", size=8, n_train=2000, n_valid=300, n_test=500, p_on=0.3, noise=0.1, missing=0.25, seed=3)
    assert all(torch.equal(again.train.x[q], s.train.x[q]) and torch.equal(again.train.x_mask[q], s.train.x_mask[q]) for q in x)
    other = load_source("bars", size=8, n_train=2000, n_valid=300, n_test=500, seed=4)
    assert not torch.equal(other.test.x["q0"], s.test.x["q0"])


def test_bars_options():
    s = load_source("bars", size=6, n_train=50, n_valid=0, n_test=20, missing=0.0, noise=0.0)
    assert s.valid is None and s.info["group_dims"]["q0"] == 9
    assert all(m.shape == (1, 1) for m in s.train.x_mask.values())
    assert s.info["likelihood"] == "gaussian:0.01"  # a proper density even without noise
    for v in s.train.x.values():
        assert set(v.unique().tolist()) <= {0.0, 1.0}
    for kwargs, match in [
        ({"size": 7}, "size must be even"),
        ({"size": 0}, "size"),
        ({"missing": 1.0}, "missing"),
        ({"missing": -0.1}, "missing"),
        ({"p_on": 1.5}, "p_on"),
        ({"noise": -1}, "noise"),
        ({"noise": "x"}, "noise"),
        ({"n_train": 0}, "n_train"),
        ({"n_test": 2.5}, "n_test"),
        ({"seed": -1}, "seed"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_source("bars", **kwargs)


def test_quadrant_split_roundtrip():
    rng = np.random.default_rng(0)
    images, rows = bars_images(5, 10, 0.5, 0.0, rng)
    assert np.array_equal(images[:, 0, :, 3] == 1, rows)  # no noise: a row is all ones or all zeros
    layout = quadrant_layout(10, 10)
    q = split_quadrants(images, layout)
    assert q["q0"].shape == (5, 25)
    assert torch.equal(assemble_quadrants(q, layout), torch.from_numpy(images))
    # Row-major flattening: row i of q1 is the right half of image row i.
    assert torch.equal(q["q1"].view(5, 5, 5)[:, 2], torch.from_numpy(images[:, 0, 2, 5:]))
    masks = {k: torch.tensor([[True], [False], [True], [True], [True]]) for k in q}
    filled = assemble_quadrants(q, layout, masks, fill=0.5)
    assert bool((filled[1] == 0.5).all()) and torch.equal(filled[0], torch.from_numpy(images[0]))


# ---------------------------------------------------------------------- mnist-quadrants


def test_mnist_quadrants_reassemble_exactly():
    (path,) = _need("mnist.npz")
    s = load_source("mnist-quadrants", missing=0.3, seed=1, download=False)
    _check_common(s, "mnist-quadrants", ["q0", "q1", "q2", "q3"])
    info = s.info
    assert info["likelihood"] == "bernoulli" and info["group_dims"] == {q: 196 for q in info["groups"]}
    assert info["layout"]["image_shape"] == [1, 28, 28] and info["layout"]["quadrants"]["q3"] == [14, 14, 14, 14]
    assert (len(s.train), len(s.valid), len(s.test)) == (50000, 10000, 10000)
    assert s.train.binarize and s.train.num_classes == 10
    with np.load(path) as f:
        x_train, y_train, x_test, y_test = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
    images = assemble_quadrants(s.test.x, info["layout"])
    assert torch.equal(images, torch.from_numpy(x_test.astype(np.float32) / np.float32(255.0))[:, None])
    assert torch.equal(s.test.y, torch.from_numpy(y_test.astype(np.int64)))
    # Training: observed quadrants are the original pixels, missing ones zero, never all four missing.
    masks = torch.cat([s.train.x_mask[q] for q in info["groups"]], 1)
    assert masks.shape == (50000, 4) and bool(masks.any(1).all())
    assert abs((1 - masks.float().mean().item()) - 0.3) < 0.01
    full = masks.all(1)
    rebuilt = assemble_quadrants(s.train.x, info["layout"])
    original = torch.from_numpy(x_train[:50000].astype(np.float32) / np.float32(255.0))[:, None]
    assert torch.equal(rebuilt[full], original[full])
    gone = ~masks[:, 0]
    assert bool((s.train.x["q0"][gone] == 0).all())
    assert torch.equal(s.train.x["q0"][~gone], original[~gone][:, 0, :14, :14].reshape(-1, 196))
    assert torch.equal(s.train.y, torch.from_numpy(y_train[:50000].astype(np.int64)))
    with pytest.raises(ValueError, match="missing"):
        load_source("mnist-quadrants", missing=1.0, download=False)


# ---------------------------------------------------------------------- ASF/AMC parser

TINY_ASF = """\
# a two-bone chain
:version 1.10
:name TINY
:units
  mass 1.0
  length 0.5
  angle deg
:documentation
  made for a test
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
    limits (-180.0 180.0)
           (-90.0 90.0)
           (-inf inf)
  end
  begin
     id 2
     name lower
     direction 1 0 0
     length 1
     axis 0 0 90 XYZ
    dof rx
    limits (-10.0 170.0)
  end
:hierarchy
  begin
    root upper
    upper lower
  end
"""

TINY_AMC = """\
#!OML:ASF tiny.asf
:FULLY-SPECIFIED
:DEGREES
1
root 1 2 3 0 0 0
upper 0 0 90
lower 0
2
root 0 0 0 0 0 0
upper 0 0 0
lower 90
3
root 0 0 0 0 0 90
upper 0 0 0
lower 0
4
root 0 0 0 0 0 0
upper 90 0 90
lower 0
"""

# Hand-computed ends of (root, upper, lower) per frame: see the comments in the test.
TINY_ENDS = np.array(
    [
        [[1, 2, 3], [1, 4, 3], [1, 5, 3]],  # upper turned 90 deg about z: x -> y
        [[0, 0, 0], [2, 0, 0], [2, 0, -1]],  # lower's rx is about its local x = global y (axis z 90)
        [[0, 0, 0], [0, 2, 0], [0, 3, 0]],  # the root turned 90 deg about z turns the whole chain
        [[0, 0, 0], [0, 2, 0], [0, 3, 0]],  # dof order rx then rz: Rz Rx x = y (Rx Rz x would be z)
    ],
    dtype=float,
)


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    asf, amc = tmp_path / "tiny.asf", tmp_path / "tiny.amc"
    asf.write_text(TINY_ASF)
    amc.write_text(TINY_AMC)
    return asf, amc


def test_tiny_skeleton_roundtrip_and_fk(tiny):
    asf, amc = tiny
    sk = parse_asf(asf)
    assert sk.name == "TINY" and sk.units == {"mass": 1.0, "length": 0.5, "angle": "deg"} and sk.length_scale == 0.5
    assert sk.root.order == ["tx", "ty", "tz", "rx", "ry", "rz"] and sk.root.axis_order == "XYZ"
    assert sk.joint_names == ["root", "upper", "lower"] and sk.edges == [(0, 1), (1, 2)]
    assert sk.parent == {"upper": "root", "lower": "upper"} and sk.children == {"root": ["upper"], "upper": ["lower"]}
    up, lo = sk.bones["upper"], sk.bones["lower"]
    assert up.id == 1 and up.length == 2 and up.dof == ["rx", "ry", "rz"] and np.allclose(up.direction, [1, 0, 0])
    assert up.limits == [(-180.0, 180.0), (-90.0, 90.0), (-np.inf, np.inf)]
    assert np.allclose(lo.axis, [0, 0, 90]) and lo.axis_order == "XYZ" and lo.dof == ["rx"]

    m = parse_amc(amc, sk)
    assert list(m.frames) == [1, 2, 3, 4] and m.angle_unit == "deg" and list(m.joints) == ["root", "upper", "lower"]
    assert m.joints["root"].shape == (4, 6) and m.joints["upper"].shape == (4, 3) and m.joints["lower"].shape == (4, 1)
    assert np.array_equal(m.joints["upper"][3], [90, 0, 90])
    assert np.array_equal(parse_amc(amc).joints["upper"], m.joints["upper"])  # without a skeleton too

    pos = forward_kinematics(sk, m)
    assert pos.shape == (4, 3, 3)
    np.testing.assert_allclose(pos, TINY_ENDS, atol=1e-12)
    np.testing.assert_allclose(forward_kinematics(sk, m, 1), TINY_ENDS[[1]], atol=1e-12)
    np.testing.assert_allclose(forward_kinematics(sk, m, [3, 0], scale=2.0), 2 * TINY_ENDS[[3, 0]], atol=1e-12)
    centred = forward_kinematics(sk, m, 0, root_translation=False)
    np.testing.assert_allclose(centred[0], TINY_ENDS[0] - TINY_ENDS[0, 0], atol=1e-12)
    # A dict of angles works the same; left-out joints are at rest; radians on request.
    angles = {"upper": np.radians([0.0, 0.0, 90.0])}
    np.testing.assert_allclose(forward_kinematics(sk, angles, angle_unit="rad")[0], [[0, 0, 0], [0, 2, 0], [0, 3, 0]], atol=1e-12)
    with pytest.raises(ValueError, match="unknown joint"):
        forward_kinematics(sk, {"elbow": [0.0]})
    with pytest.raises(ValueError, match="expected \\[T, 1\\]"):
        forward_kinematics(sk, {"lower": [0.0, 1.0]})


def test_euler_order():
    a = np.radians([[90.0, 0.0, 90.0]])
    assert np.allclose(euler_matrix(a, "XYZ")[0] @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(euler_matrix(a, "ZYX")[0] @ [1, 0, 0], [0, 0, 1])
    r = euler_matrix(np.radians([[10.0, 20.0, 30.0]]), "YZX")[0]
    assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)


def _bad(tmp_path: Path, name: str, content: str | bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p


ASF_BAD = {
    "truncated": TINY_ASF[: TINY_ASF.index("name lower")],
    "bad_number": TINY_ASF.replace("length 2", "length 2.x"),
    "unknown_joint": TINY_ASF.replace("upper lower", "upper elbow"),
    "missing_section": TINY_ASF[: TINY_ASF.index(":hierarchy")],
    "bad_direction": TINY_ASF.replace("direction 1 0 0", "direction 1 0", 1),
    "bad_dof": TINY_ASF.replace("dof rx\n", "dof rq\n"),
    "limits_count": TINY_ASF.replace("    limits (-10.0 170.0)\n", "    limits (-10.0 170.0)\n           (0 1)\n"),
    "orphan_bone": TINY_ASF.replace("    upper lower\n", ""),
    "empty": "",
    "blank": "\n  \n",
    "garbage": bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)),
    "latin1": TINY_ASF.replace("made for a test", "caf\xe9").encode("latin-1"),
}
AMC_BAD = {
    "truncated": TINY_AMC[: TINY_AMC.rindex("upper")],
    "bad_number": TINY_AMC.replace("lower 90", "lower 9O"),
    "unknown_joint": TINY_AMC.replace("lower 90", "elbow 90"),
    "channel_count": TINY_AMC.replace("upper 0 0 90", "upper 0 90"),
    "frame_gap": TINY_AMC.replace("\n3\n", "\n5\n"),
    "duplicate_joint": TINY_AMC.replace("lower 90", "upper 0 0 0"),
    "nan": TINY_AMC.replace("lower 90", "lower nan"),
    "no_frames": "#!OML:ASF tiny.asf\n:FULLY-SPECIFIED\n:DEGREES\n",
    "empty": "",
    "garbage": bytes(np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8)),
    "nul": TINY_AMC.encode()[:40] + b"\x00\x01" + TINY_AMC.encode()[40:],
}


@pytest.mark.parametrize("case", sorted(ASF_BAD))
def test_malformed_asf(tmp_path: Path, case: str):
    p = _bad(tmp_path, f"{case}.asf", ASF_BAD[case])
    with pytest.raises(ValueError) as err:
        parse_asf(p)
    msg = str(err.value)
    assert msg.startswith(f"{p}:") and msg.split(":")[1].strip().isdigit(), msg


@pytest.mark.parametrize("case", sorted(AMC_BAD))
def test_malformed_amc(tmp_path: Path, tiny, case: str):
    sk = parse_asf(tiny[0])
    p = _bad(tmp_path, f"{case}.amc", AMC_BAD[case])
    with pytest.raises(ValueError) as err:
        parse_amc(p, sk)
    msg = str(err.value)
    assert msg.startswith(f"{p}:") and msg.split(":")[1].strip().isdigit(), msg
    if case in ("truncated", "channel_count", "frame_gap"):
        # Also caught without a skeleton (the joint set and channel counts of the first frame).
        with pytest.raises(ValueError, match=re.escape(str(p))):
            parse_amc(p)


def test_malformed_messages(tmp_path: Path, tiny):
    sk = parse_asf(tiny[0])
    cases = [
        (parse_asf, "bad_number.asf", ASF_BAD["bad_number"], r":\d+: bad number '2.x'"),
        (parse_asf, "missing.asf", ASF_BAD["missing_section"], "missing section ':hierarchy'"),
        (parse_asf, "unknown.asf", ASF_BAD["unknown_joint"], "unknown joint 'elbow'"),
        (parse_asf, "trunc.asf", ASF_BAD["truncated"], "no 'end'|truncated|missing section"),
        (parse_asf, "garbage.asf", ASF_BAD["garbage"], "binary|not a text file"),
        (lambda p: parse_amc(p, sk), "count.amc", AMC_BAD["channel_count"], r":6: joint 'upper' has 2 values"),
        (lambda p: parse_amc(p, sk), "unknown.amc", AMC_BAD["unknown_joint"], r":11: unknown joint 'elbow'"),
        (lambda p: parse_amc(p, sk), "trunc.amc", AMC_BAD["truncated"], "frame 4 .* lacks upper, lower"),
        (lambda p: parse_amc(p, sk), "gap.amc", AMC_BAD["frame_gap"], "consecutive"),
    ]
    for fn, name, content, match in cases:
        with pytest.raises(ValueError, match=match):
            fn(_bad(tmp_path, name, content))


# ---------------------------------------------------------------------- mocap (real CMU subject 07)


@pytest.fixture(scope="module")
def mocap():
    _need(*(f"cmu_mocap/{f}" for f in MOCAP_FILES))
    return load_source("mocap", download=False)


def test_mocap_groups_and_frames(mocap):
    s = mocap
    groups = ["core", "left_arm", "right_arm", "left_leg", "right_leg"]
    _check_common(s, "mocap", groups)
    info = s.info
    assert info["likelihood"] == "gaussian-learned" and info["layout"] == {"kind": "skeleton"}
    assert info["train_trials"] == ["07_01", "07_02", "07_05", "07_09", "07_10"] and info["test_trials"] == ["07_11"]
    assert s.valid is None and info["valid_trials"] == []
    assert info["frames_per_trial"] == {"07_01": 316, "07_02": 329, "07_05": 517, "07_09": 306, "07_10": 301, "07_11": 315}
    assert len(s.train) == 316 + 329 + 517 + 306 + 301 and len(s.test) == 315
    assert info["rows_per_trial"]["train"]["07_05"] == [645, 1162]
    joints = lambda g: list(dict.fromkeys(j for j, _ in info["channels"][g]))
    assert joints("core") == ["lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head"]
    assert joints("left_arm") == ["lhumerus", "lradius", "lwrist", "lhand", "lthumb"]  # clavicle, fingers constant
    assert joints("right_leg") == ["rfemur", "rtibia", "rfoot", "rtoes"]
    assert info["group_joints"]["left_arm"] == ["lclavicle", "lhumerus", "lradius", "lwrist", "lhand", "lfingers", "lthumb"]
    assert info["group_dims"] == {"core": 18, "left_arm": 9, "right_arm": 9, "left_leg": 7, "right_leg": 7}
    dropped = {(d["joint"], d["dof"]) for d in info["dropped_channels"]}
    assert dropped == {("lclavicle", "ry"), ("lclavicle", "rz"), ("rclavicle", "ry"), ("rclavicle", "rz"), ("lfingers", "rx"), ("rfingers", "rx")}
    assert all(j != "root" for g in groups for j, _ in info["channels"][g])  # no root channel by default
    for g in groups:
        x = s.train.x[g]
        assert float(x.min()) >= 0 and float(x.max()) <= 1
        assert torch.allclose(x.min(0).values, torch.zeros(x.shape[1])) and torch.allclose(x.max(0).values, torch.ones(x.shape[1]), atol=1e-6)
        assert len(info["normalization"][g]["min"]) == len(info["normalization"][g]["range"]) == x.shape[1]
        assert min(info["normalization"][g]["range"]) >= 0.1
        assert all(m.shape == (1, 1) and bool(m.all()) for m in s.train.x_mask.values())


def test_mocap_to_joint_angles_inverts(mocap):
    from pogm.data.sources.mocap import load_skeleton, to_joint_angles

    s, info = mocap, mocap.info
    sk = load_skeleton(info)
    start, stop = info["rows_per_trial"]["test"]["07_11"]
    raw = parse_amc(Path(info["amc_paths"]["07_11"]), sk)
    angles = to_joint_angles({g: s.test.x[g][start:stop] for g in info["groups"]}, info)
    for j, a in angles.items():
        if j == "root":
            assert np.array_equal(a, np.zeros((stop - start, 6)))  # translation never, rotation not by default
            continue
        np.testing.assert_allclose(a, raw.joints[j], atol=1e-3, err_msg=j)
    # A missing group comes back at rest, including its dropped channels; others are untouched.
    part = to_joint_angles({"core": s.test.x["core"][:3], "left_arm": None}, info)
    assert np.array_equal(part["lhumerus"], np.zeros((3, 3))) and np.array_equal(part["lfingers"], np.zeros((3, 1)))
    np.testing.assert_allclose(part["head"], raw.joints["head"][:3], atol=1e-3)
    one = to_joint_angles({"right_arm": s.test.x["right_arm"][0]}, info)
    assert one["rfingers"].shape == (1, 1) and np.isclose(one["rfingers"][0, 0], 7.12502)
    with pytest.raises(ValueError, match="unknown group"):
        to_joint_angles({"tail": s.test.x["core"]}, info)
    with pytest.raises(ValueError, match="expected \\[n, 18\\]"):
        to_joint_angles({"core": s.test.x["left_leg"]}, info)


def test_mocap_fk_preserves_bone_lengths():
    asf, amc = _need("cmu_mocap/07.asf", "cmu_mocap/07_01.amc")
    sk = parse_asf(asf)
    m = parse_amc(amc, sk)
    assert len(m) == 316 and len(m.joints) == 29 and sk.units["length"] == 0.45
    for scale in (1.0, 0.0254 / sk.length_scale):
        pos = forward_kinematics(sk, m, scale=scale)
        assert pos.shape == (316, 31, 3)
        for parent, child in sk.edges:
            d = np.linalg.norm(pos[:, child] - pos[:, parent], axis=1)
            np.testing.assert_allclose(d, sk.bones[sk.joint_names[child]].length * scale, rtol=1e-9)
    pos = forward_kinematics(sk, m)
    np.testing.assert_allclose(pos[:, 0], m.joints["root"][:, :3])  # the root end is its translation
    names = sk.joint_names
    head, ltoes = pos[:, names.index("head")], pos[:, names.index("ltoes")]
    assert bool((head[:, 1] > pos[:, 0, 1] + 5).all()) and bool((ltoes[:, 1] < pos[:, 0, 1] - 10).all())  # upright
    assert pos[-1, 0, 2] - pos[0, 0, 2] > 50  # subject 07 walks along +z


def test_mocap_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mocap):
    s = load_source("mocap", train_trials="07_01,07_02", valid_trials=["07_09"], test_trials=("07_11",), stride=4, include_root_rotation=True, download=False)
    assert len(s.train) == 79 + 83 and len(s.valid) == 77 and len(s.test) == 79
    assert s.info["frame_rate"] == 30 and s.info["group_dims"]["core"] == 21
    assert s.info["channels"]["core"][:3] == [["root", "rx"], ["root", "ry"], ["root", "rz"]]
    assert float(s.valid.x["core"].min()) > -1 and float(s.valid.x["core"].max()) < 2  # same map, may leave [0, 1]
    for kwargs, match in [
        ({"train_trials": ["07_03"]}, "unknown trial '07_03'"),
        ({"train_trials": ()}, "train_trials is empty"),
        ({"test_trials": ["07_01"]}, "both train_trials and test_trials"),
        ({"valid_trials": ["07_11"]}, "both valid_trials and test_trials"),
        ({"stride": 0}, "stride"),
        ({"include_root_rotation": "yes"}, "include_root_rotation"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_source("mocap", download=False, **kwargs)
    # Offline and absent: a clear FileNotFoundError; a local copy with other bytes: a checksum error.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("POGM_DATA", str(tmp_path / "data"))
    with pytest.raises(FileNotFoundError, match="POGM_DATA"):
        load_source("mocap", download=False)
    (tmp_path / "data" / "cmu_mocap").mkdir(parents=True)
    (tmp_path / "data" / "cmu_mocap" / "07.asf").write_text(TINY_ASF)
    with pytest.raises(ValueError, match="sha256"):
        load_source("mocap", download=False)


def test_pose_figure(tmp_path: Path, mocap):
    from pogm.data.sources.mocap import load_skeleton
    from pogm.models.factvae.mocap_figures import pose_figure

    s, info = mocap, mocap.info
    sk = load_skeleton(info)
    idx = [0, 50, 100]
    inputs = [{g: s.test.x[g][i] for g in info["groups"]} for i in idx]
    outputs = [{g: (v[i] if g == "core" else 1 - v[i]) for g, v in s.test.x.items()} for i in idx]
    out = pose_figure(sk, info, inputs, outputs, ["core"], tmp_path / "fig" / "poses.png", titles=["a", "b", "c"])
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000
    with pytest.raises(ValueError, match="unknown observed group"):
        pose_figure(sk, info, inputs, outputs, ["tail"], tmp_path / "x.png")
