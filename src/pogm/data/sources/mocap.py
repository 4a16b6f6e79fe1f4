"""``mocap``: CMU motion capture, subject 07 (walking), as five joint-angle groups (factVAE, sec. 4.2).

Files: the skeleton ``cmu_mocap/07.asf`` and trials ``cmu_mocap/07_NN.amc`` (120 frames a second),
looked up by `pogm.data.sources.files` in each ``$POGM_DATA`` folder, then in ``~/.cache/pogm``, else
downloaded from http://mocap.cs.cmu.edu/subjects/07/ with a sha256 check (``download=False`` forbids
that). Only the trials whose checksum is known here can be used (`TRIALS`). "The data used in this
project was obtained from mocap.cs.cmu.edu. The database was created with funding from NSF
EIA-0196217."

Each frame is one example; its features are the joint angles (degrees) of the frame, in five groups
(`GROUP_JOINTS`), in this order:

* ``core``: lowerback, upperback, thorax, lowerneck, upperneck, head (and first, with
  ``include_root_rotation=True``, the root's RX RY RZ; the root translation is never a feature);
* ``left_arm``: lclavicle, lhumerus, lradius, lwrist, lhand, lfingers, lthumb;
* ``right_arm``: the r-versions;
* ``left_leg``: lfemur, ltibia, lfoot, ltoes;
* ``right_leg``: the r-versions.

Channels whose range over the TRAINING frames is below 1e-6 degrees are dropped (for subject 07 the
clavicles, ~1e-13, and the fingers, constant 7.12502); ``info["dropped_channels"]`` lists them with
their constant value (the training mean), which `to_joint_angles` puts back. Every kept channel is
mapped to [0, 1] on the training frames, ``(v - min) / range`` with ``range = max(max - min, 0.1)``
degrees; validation and test frames get the same map (and may leave [0, 1]). Every group is always
observed (masks ``[1, 1]``): missingness is the model's to simulate (factVAE drops groups at random
while training).

`to_joint_angles` undoes the normalisation (a missing group comes back at rest, zero angles) so that
poses can be drawn with `pogm.data.asf_amc.forward_kinematics` (see
`pogm.models.factvae.mocap_figures.pose_figure`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.asf_amc import Motion, Skeleton, as_rows, parse_amc, parse_asf
from pogm.data.sources import DataSplits, files

FOLDER = "cmu_mocap"
SUBJECT = "07"
URL = "http://mocap.cs.cmu.edu/subjects/07/"
FRAME_RATE = 120
ASF = "07.asf"
# sha256 of the raw CMU files (cmu_mocap/PROVENANCE.md of the shared data).
SHA256 = {
    "07.asf": "f1fbd8abcd9073d24189d5f33b7220974b0ac4b5223fabbb0cc07799ec7a93b3",
    "07_01.amc": "97cdb8296c5a9a37a2eaca7ce214b9dbaef49016f7e28c22c5b74688fcd8e0e3",
    "07_02.amc": "8cd7cbba57ed6675dd647c9427ba6f7b676d514c4e7e4ad6d27c7d10a665df68",
    "07_05.amc": "79bbf979ab1723381a18a9db6332f4e16833030088eac80ad95bd569f0f11271",
    "07_09.amc": "bf88877c6536b3be688b3ca86c1caffeb91162ccd3fbde56e7ef1c73ab149196",
    "07_10.amc": "523d0dd6d58c66eb9ba301193cbbcb6f4bf006f196f7edffde83d1965f0902fc",
    "07_11.amc": "7c6245129270f6f378745f41631ba6dcdc45969d3c05e1e7386c4dc534457c24",
}
TRIALS = tuple(sorted(name[:-4] for name in SHA256 if name.endswith(".amc")))

GROUP_JOINTS: dict[str, tuple[str, ...]] = {
    "core": ("lowerback", "upperback", "thorax", "lowerneck", "upperneck", "head"),
    "left_arm": ("lclavicle", "lhumerus", "lradius", "lwrist", "lhand", "lfingers", "lthumb"),
    "right_arm": ("rclavicle", "rhumerus", "rradius", "rwrist", "rhand", "rfingers", "rthumb"),
    "left_leg": ("lfemur", "ltibia", "lfoot", "ltoes"),
    "right_leg": ("rfemur", "rtibia", "rfoot", "rtoes"),
}
CONSTANT_TOL = 1e-6  # degrees: a channel with a smaller training range is dropped
MIN_RANGE = 0.1  # degrees: floor of the normalisation range


def find_mocap_file(name: str, download: bool = True) -> Path:
    """The path of a verified ``cmu_mocap/NAME`` (``07.asf`` or ``07_NN.amc``): local or downloaded.

    Raises:
        ValueError: for a file whose checksum is not known here, or a local copy that differs.
        FileNotFoundError: if absent and downloading is off or fails.
    """
    if name not in SHA256:
        raise ValueError(f"no checksum is known for {name!r}; the mocap source can use {', '.join(sorted(SHA256))}")
    filename = f"{FOLDER}/{name}"
    what = f"CMU motion capture file {name}"
    try:
        return files.find_file(filename, SHA256[name], what=what, url=URL + name, download_if_missing=download)
    except FileNotFoundError:
        # find_file passes over a differing copy whose name is not the bare filename; say why instead.
        for p in files.candidate_paths(filename):
            if p.is_file() and p.name == name:
                files.verify(p, SHA256[name], what)
        raise


def load_skeleton(info: Mapping[str, Any] | None = None, download: bool = True) -> Skeleton:
    """The subject's skeleton: from ``info["asf_path"]`` of a loaded source, else found like the data."""
    if info is not None and info.get("asf_path"):
        return parse_asf(info["asf_path"])
    return parse_asf(find_mocap_file(ASF, download=download))


def _trial_list(option: str, value: Any) -> list[str]:
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out = []
    for t in items:
        t = str(t).strip()
        t = t.removesuffix(".amc")
        if t not in TRIALS:
            raise ValueError(f"{option} has the unknown trial {t!r}; choose among {', '.join(TRIALS)} (subject 07 walking trials with a known checksum)")
        if t in out:
            raise ValueError(f"{option} lists trial {t!r} twice")
        out.append(t)
    return out


def _channels(skeleton: Skeleton, include_root_rotation: bool) -> dict[str, list[tuple[str, str]]]:
    """Every (joint, dof) channel of each group, before dropping constant ones."""
    out: dict[str, list[tuple[str, str]]] = {}
    for group, joints in GROUP_JOINTS.items():
        chans: list[tuple[str, str]] = []
        if group == "core" and include_root_rotation:
            chans += [("root", d) for d in skeleton.root.order if d.startswith("r")]
        for j in joints:
            if j not in skeleton.bones:
                raise ValueError(f"{skeleton.path}: the skeleton has no joint {j!r} (group {group}); is this a CMU skeleton?")
            chans += [(j, d) for d in skeleton.bones[j].dof]
        out[group] = chans
    return out


def _features(motion: Motion, skeleton: Skeleton, channels: dict[str, list[tuple[str, str]]], stride: int) -> dict[str, np.ndarray]:
    out = {}
    for group, chans in channels.items():
        cols = []
        for joint, dof in chans:
            if joint not in motion.joints:
                raise ValueError(f"{motion.path}: joint {joint!r} (group {group}) is missing from the motion")
            cols.append(motion.joints[joint][::stride, skeleton.dof(joint).index(dof)])
        out[group] = np.stack(cols, axis=1)
    return out


def load_mocap(
    train_trials: Sequence[str] | str = ("07_01", "07_02", "07_05", "07_09", "07_10"),
    test_trials: Sequence[str] | str = ("07_11",),
    valid_trials: Sequence[str] | str = (),
    stride: int = 1,
    include_root_rotation: bool = False,
    download: bool = True,
) -> DataSplits:
    """CMU subject 07 walking frames as five normalised joint-angle groups (see the module docstring).

    Args:
        train_trials, test_trials, valid_trials: trial names such as ``"07_01"`` (a string may list
            several, comma-separated); no trial may be in two splits. ``valid_trials`` empty:
            ``valid=None``.
        stride: keep every ``stride``-th frame of each trial (the data is 120 frames a second).
        include_root_rotation: add the root's three rotation channels to ``core`` (global heading,
            pitch and roll of the body).
        download: allow downloading missing files from mocap.cs.cmu.edu (checksummed).
    """
    train_t = _trial_list("train_trials", train_trials)
    test_t = _trial_list("test_trials", test_trials)
    valid_t = _trial_list("valid_trials", valid_trials)
    if not train_t:
        raise ValueError(f"train_trials is empty; give at least one of {', '.join(TRIALS)}")
    if not test_t:
        raise ValueError(f"test_trials is empty; give at least one of {', '.join(TRIALS)} not used for training")
    lists = {"train_trials": train_t, "valid_trials": valid_t, "test_trials": test_t}
    for a, b in (("train_trials", "test_trials"), ("train_trials", "valid_trials"), ("valid_trials", "test_trials")):
        both = sorted(set(lists[a]) & set(lists[b]))
        if both:
            raise ValueError(f"trial(s) {', '.join(both)} are in both {a} and {b}; each trial belongs to one split")
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1:
        raise ValueError(f"stride must be an integer >= 1 (keep every stride-th frame), got {stride!r}")
    stride = int(stride)
    if not isinstance(include_root_rotation, (bool, np.bool_)):
        raise ValueError(f"include_root_rotation must be True or False, got {include_root_rotation!r}")  # noqa: TRY004 (an option error)
    include_root_rotation = bool(include_root_rotation)

    asf_path = find_mocap_file(ASF, download=download)
    skeleton = parse_asf(asf_path)
    all_channels = _channels(skeleton, include_root_rotation)

    frames_per_trial: dict[str, int] = {}
    amc_paths: dict[str, str] = {}

    def read(trials: list[str]) -> tuple[dict[str, np.ndarray], dict[str, list[int]]]:
        parts: dict[str, list[np.ndarray]] = {g: [] for g in all_channels}
        rows: dict[str, list[int]] = {}
        start = 0
        for t in trials:
            path = find_mocap_file(f"{t}.amc", download=download)
            motion = parse_amc(path, skeleton)
            frames_per_trial[t] = len(motion)
            amc_paths[t] = str(path)
            feats = _features(motion, skeleton, all_channels, stride)
            for g, a in feats.items():
                parts[g].append(a)
            n = len(next(iter(feats.values())))
            rows[t] = [start, start + n]
            start += n
        return {g: np.concatenate(a) for g, a in parts.items()}, rows

    train_raw, train_rows = read(train_t)
    valid_raw, valid_rows = read(valid_t) if valid_t else (None, {})
    test_raw, test_rows = read(test_t)

    # Constant channels are dropped; every other one is mapped to [0, 1] on the training frames.
    channels: dict[str, list[list[str]]] = {}
    keep: dict[str, np.ndarray] = {}
    dropped: list[dict[str, Any]] = []
    normalization: dict[str, dict[str, list[float]]] = {}
    for g, chans in all_channels.items():
        a = train_raw[g]
        span = a.max(0) - a.min(0)
        kept = span >= CONSTANT_TOL
        for k in np.flatnonzero(~kept):
            joint, dof = chans[k]
            dropped.append({"group": g, "joint": joint, "dof": dof, "value": float(a[:, k].mean())})
        if not kept.any():
            raise ValueError(f"every channel of group {g!r} is constant over the training trials {', '.join(train_t)}; choose other trials")
        keep[g] = np.flatnonzero(kept)
        channels[g] = [list(chans[k]) for k in keep[g]]
        normalization[g] = {
            "min": [float(v) for v in a[:, kept].min(0)],
            "range": [float(v) for v in np.maximum(span[kept], MIN_RANGE)],
        }

    def make(raw: dict[str, np.ndarray] | None, part: str) -> PartialDataset | None:
        if raw is None:
            return None
        x = {}
        for g in all_channels:
            lo = np.asarray(normalization[g]["min"])
            rng = np.asarray(normalization[g]["range"])
            x[g] = torch.from_numpy(((raw[g][:, keep[g]] - lo) / rng).astype(np.float32))
        masks = {g: torch.ones(1, 1, dtype=torch.bool) for g in x}
        return PartialDataset(x=x, x_mask=masks, name=f"mocap-{part}")

    train = make(train_raw, "train")
    n_train = len(train)
    groups = list(all_channels)
    return DataSplits(
        train=train,
        valid=make(valid_raw, "valid"),
        test=make(test_raw, "test"),
        info={
            "source": "mocap",
            "groups": groups,
            "group_dims": {g: len(channels[g]) for g in groups},
            "likelihood": "gaussian-learned",
            "layout": {"kind": "skeleton"},
            "num_classes": None,
            "subject": SUBJECT,
            "train_trials": train_t,
            "valid_trials": valid_t,
            "test_trials": test_t,
            "stride": stride,
            "include_root_rotation": include_root_rotation,
            "frame_rate": FRAME_RATE / stride,
            "frames_per_trial": frames_per_trial,
            "rows_per_trial": {"train": train_rows, "valid": valid_rows, "test": test_rows},
            "group_joints": {g: list(j) for g, j in GROUP_JOINTS.items()},
            "channels": channels,
            "dropped_channels": dropped,
            "normalization": normalization,
            "skeleton_channels": {j: skeleton.dof(j) for j in skeleton.joint_names if skeleton.dof(j)},
            "angle_unit": skeleton.angle_unit,
            "asf_path": str(asf_path),
            "amc_paths": amc_paths,
            "model_defaults": {"likelihood": "gaussian-learned"},
            "train_defaults": {"epochs": max(50, 500_000 // n_train), "batch_size": 100},
        },
    )


def to_joint_angles(values: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Normalised group features -> joint angles ``{joint: float64 [n, n_dof]}`` (degrees).

    ``values`` maps group names to ``[n, D_g]`` tensors or arrays (``[D_g]`` for one frame); a group
    that is absent or None comes back at rest (zero angles, dropped channels included), as does the
    root (its translation is never a feature; its rotation only with ``include_root_rotation``).
    Dropped constant channels of a given group are restored at their constant value. The result
    feeds `pogm.data.asf_amc.forward_kinematics` directly.
    """
    groups = list(info["groups"])
    unknown = [g for g in values if g not in groups]
    if unknown:
        raise ValueError(f"unknown group(s) {', '.join(map(str, unknown))}; the mocap groups are {', '.join(groups)}")
    arrays: dict[str, np.ndarray] = {}
    n = None
    for g in groups:
        v = values.get(g)
        if v is None:
            continue
        a = as_rows(v, len(info["channels"][g]), f"group {g!r} has values", rows="n")
        if n is not None and a.shape[0] != n:
            raise ValueError(f"group {g!r} has {a.shape[0]} rows but other groups have {n}")
        n = a.shape[0]
        arrays[g] = a
    if n is None:
        raise ValueError(f"to_joint_angles needs at least one group of {', '.join(groups)}")
    dofs = {j: list(d) for j, d in info["skeleton_channels"].items()}
    out = {j: np.zeros((n, len(d))) for j, d in dofs.items()}
    for g, a in arrays.items():
        norm = info["normalization"][g]
        raw = a * np.asarray(norm["range"]) + np.asarray(norm["min"])
        for k, (joint, dof) in enumerate(info["channels"][g]):
            out[joint][:, dofs[joint].index(dof)] = raw[:, k]
    for d in info["dropped_channels"]:
        if d["group"] in arrays:
            out[d["joint"]][:, dofs[d["joint"]].index(d["dof"])] = d["value"]
    return out


__all__ = ["ASF", "FRAME_RATE", "GROUP_JOINTS", "SHA256", "TRIALS", "URL", "find_mocap_file", "load_mocap", "load_skeleton", "to_joint_angles"]
