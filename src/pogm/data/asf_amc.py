"""Acclaim ASF/AMC motion capture files (the CMU Graphics Lab format): parser and forward kinematics.

Standalone (numpy only). An ``.asf`` file describes a skeleton, an ``.amc`` file a motion of it:

* `parse_asf` -> `Skeleton`: the units (``length`` scale, ``angle`` ``deg`` or ``rad``), the root
  (channel ``order``, Euler ``axis`` order, ``position``, ``orientation``) and every bone (``id``,
  ``name``, unit ``direction`` in the global rest frame, ``length``, local frame ``axis`` angles and
  their order, ``dof`` list, optional ``limits``), and the ``:hierarchy`` (parent -> children).
* `parse_amc` -> `Motion`: the frame numbers ``[T]`` and, per joint, the channel values ``[T, n_dof]``
  in the order of the joint's ``dof`` (the root: its ``order``, e.g. TX TY TZ RX RY RZ).
* `forward_kinematics` -> joint end positions ``[T, J, 3]`` for the joints ``skeleton.joint_names``
  (the root first, then the bones in file order); ``skeleton.edges`` lists the (parent, child)
  index pairs to draw as line segments.

Forward kinematics follows the Acclaim convention (column vectors): a bone's local frame is
``C = R(axis)`` (rotations about the listed axes, applied in the listed order, so ``axis a b c XYZ``
is ``C = Rz(c) Ry(b) Rx(a)``); a frame's motion is ``M = R(dof angles)`` composed the same way in
the order of the ``dof`` list; the bone's global rotation is ``G = G_parent C M C^-1``; and its end
is ``end_parent + length * G direction``. The root's end is its translation (the TX TY TZ channels,
or the ASF ``position`` when the motion has none) and its rotation ``C_root M_root C_root^-1`` with
``C_root`` from ``orientation``. Lengths are in the file's units times ``scale`` (for CMU files,
``scale = 0.0254 / skeleton.units["length"]`` gives metres under the usual reading of ``length
0.45`` as "file units per 1/0.45 inch").

Errors: every malformed input (missing section, bad number, unknown joint, wrong channel count,
truncated or empty file, binary garbage, undecodable text) raises `ValueError` with a message
``"PATH:LINE: problem"``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ROTATIONS = ("rx", "ry", "rz")
BONE_DOFS = ("rx", "ry", "rz", "tx", "ty", "tz", "l")
ROOT_CHANNELS = ("tx", "ty", "tz", "rx", "ry", "rz")


@dataclass
class Bone:
    """One ASF bone. ``direction`` is a unit vector (normalised on reading); angles are in the
    skeleton's angle unit as written in the file."""

    id: int
    name: str
    direction: np.ndarray  # [3], unit length (zero if the file gives a zero vector)
    length: float
    axis: np.ndarray  # [3], angles about X, Y, Z
    axis_order: str  # e.g. "XYZ": the order in which the axis rotations are applied
    dof: list[str] = field(default_factory=list)  # e.g. ["rx", "ry", "rz"]
    limits: list[tuple[float, float]] | None = None


@dataclass
class Root:
    order: list[str]  # channel names lower-case, e.g. ["tx", "ty", "tz", "rx", "ry", "rz"]
    axis_order: str  # order of the orientation rotations, e.g. "XYZ"
    position: np.ndarray  # [3]
    orientation: np.ndarray  # [3] angles about X, Y, Z


@dataclass
class Skeleton:
    """A parsed ASF skeleton.

    ``joint_names`` is ``["root"] + bone names in file order``; ``parent`` maps each bone to its
    parent (``"root"`` or a bone) and ``children`` each joint to its children in hierarchy order.
    """

    path: str
    name: str
    version: str
    units: dict[str, Any]  # {"mass": float, "length": float, "angle": "deg" | "rad"} (+ any others)
    root: Root
    bones: dict[str, Bone]
    parent: dict[str, str]
    children: dict[str, list[str]]
    documentation: str = ""

    @property
    def angle_unit(self) -> str:
        return self.units.get("angle", "deg")

    @property
    def length_scale(self) -> float:
        """The ``:units length`` value of the file (1.0 when absent)."""
        return float(self.units.get("length", 1.0))

    @property
    def joint_names(self) -> list[str]:
        return ["root", *self.bones]

    def dof(self, joint: str) -> list[str]:
        """The channel names of ``joint`` in AMC order (the root: its ``order``)."""
        if joint == "root":
            return list(self.root.order)
        if joint not in self.bones:
            raise ValueError(f"{self.path}: unknown joint {joint!r}; the skeleton has {', '.join(self.joint_names)}")
        return list(self.bones[joint].dof)

    @property
    def edges(self) -> list[tuple[int, int]]:
        """(parent index, child index) pairs into ``joint_names``: one per bone."""
        index = {name: i for i, name in enumerate(self.joint_names)}
        return [(index[self.parent[b]], index[b]) for b in self.bones]

    @property
    def edge_names(self) -> list[tuple[str, str]]:
        return [(self.parent[b], b) for b in self.bones]

    def topological_order(self) -> list[str]:
        """Bones ordered so that every parent comes before its children (depth first)."""
        out: list[str] = []
        stack = list(reversed(self.children.get("root", [])))
        while stack:
            b = stack.pop()
            out.append(b)
            stack.extend(reversed(self.children.get(b, [])))
        return out


@dataclass
class Motion:
    """A parsed AMC motion: ``frames`` ``[T]`` (consecutive numbers) and per-joint values
    ``joints[name]`` float64 ``[T, n_dof]``, in the order the joints appear in each frame."""

    path: str
    frames: np.ndarray
    joints: dict[str, np.ndarray]
    angle_unit: str | None = None  # from a :DEGREES / :RADIANS header, else None
    keywords: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)


# ---------------------------------------------------------------------- reading text


def _where(path: str, line: int | None) -> str:
    return f"{path}:{line}" if line is not None else path


def _error(path: str, line: int | None, problem: str) -> ValueError:
    return ValueError(f"{_where(path, line)}: {problem}")


def _read_lines(path: str | os.PathLike, what: str) -> tuple[str, list[str]]:
    """The file's lines, decoded as UTF-8; ValueError on binary content or undecodable bytes."""
    p = str(path)
    data = Path(path).read_bytes()
    if not data.strip():
        raise _error(p, 1, f"empty file; expected an {what} file")
    if b"\x00" in data:
        line = data[: data.index(b"\x00")].count(b"\n") + 1
        raise _error(p, line, f"binary data (a NUL byte) in what should be an {what} text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise _error(p, line, f"not a text file: byte 0x{data[err.start]:02x} at offset {err.start} is not valid UTF-8 (expected an {what} file)") from None
    return p, text.splitlines()


def _number(tok: str, path: str, line: int, what: str) -> float:
    try:
        v = float(tok)
    except ValueError:
        raise _error(path, line, f"bad number {tok!r} for {what}") from None
    if math.isnan(v):
        raise _error(path, line, f"bad number {tok!r} for {what} (NaN)")
    return v


def _finite(tok: str, path: str, line: int, what: str) -> float:
    v = _number(tok, path, line, what)
    if math.isinf(v):
        raise _error(path, line, f"bad number {tok!r} for {what} (must be finite)")
    return v


def _numbers(toks: Sequence[str], n: int, path: str, line: int, what: str) -> np.ndarray:
    if len(toks) != n:
        raise _error(path, line, f"{what} needs {n} numbers, got {len(toks)} ({' '.join(toks) or 'nothing'})")
    return np.array([_finite(t, path, line, what) for t in toks], dtype=np.float64)


def _axis_order(tok: str, path: str, line: int, what: str) -> str:
    order = tok.upper()
    if sorted(order) != ["X", "Y", "Z"]:
        raise _error(path, line, f"bad rotation order {tok!r} for {what}; expected a permutation of XYZ such as XYZ or ZYX")
    return order


# ---------------------------------------------------------------------- ASF

_FRAME_NUMBER = re.compile(r"-?[0-9]+")  # ASCII digits only: str.isdigit() also accepts '²', which int() refuses
_KNOWN_SECTIONS = ("version", "name", "units", "documentation", "root", "bonedata", "hierarchy", "skin")
_LIMIT = re.compile(r"\(\s*(\S+?)\s*,?\s+(\S+?)\s*\)")


def parse_asf(path: str | os.PathLike) -> Skeleton:
    """Parse an Acclaim skeleton file.

    Raises:
        ValueError: ``"PATH:LINE: problem"`` for any malformed content.
        OSError: if the file cannot be read.
    """
    p, lines = _read_lines(path, "ASF")
    # Split into sections: keyword -> (line number of the keyword, rest of keyword line, [(lineno, tokens)]).
    sections: dict[str, tuple[int, list[str], list[tuple[int, list[str]]]]] = {}
    current: str | None = None
    for i, raw in enumerate(lines, 1):
        s = raw.split("#", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not s:
            continue
        if s.startswith(":"):
            toks = s[1:].split()
            if not toks:
                raise _error(p, i, "a ':' with no section name")
            key = toks[0].lower()
            if key not in _KNOWN_SECTIONS:
                raise _error(p, i, f"unknown section ':{toks[0]}'; an ASF file has {', '.join(':' + k for k in _KNOWN_SECTIONS)}")
            if key in sections:
                raise _error(p, i, f"section ':{key}' appears twice (first at line {sections[key][0]})")
            sections[key] = (i, toks[1:], [])
            current = key
            continue
        if current is None:
            raise _error(p, i, f"text {s[:40]!r} before the first section; an ASF file starts with ':version' or another ':section'")
        sections[current][2].append((i, s.split()))
    last = len(lines)
    for key in ("root", "bonedata", "hierarchy"):
        if key not in sections:
            raise _error(p, last, f"missing section ':{key}' (the file is truncated or not an ASF file)")

    version = " ".join(sections["version"][1]) if "version" in sections else ""
    name = " ".join(sections["name"][1]) if "name" in sections else ""
    units = _parse_units(p, sections.get("units"))
    documentation = "\n".join(lines[i - 1].strip() for i, _ in sections["documentation"][2]) if "documentation" in sections else ""
    root = _parse_root(p, sections["root"])
    bones = _parse_bones(p, sections["bonedata"], last)
    parent, children = _parse_hierarchy(p, sections["hierarchy"], bones, last)
    return Skeleton(path=p, name=name, version=version, units=units, root=root, bones=bones, parent=parent, children=children, documentation=documentation)


def _parse_units(p: str, sec) -> dict[str, Any]:
    units: dict[str, Any] = {"mass": 1.0, "length": 1.0, "angle": "deg"}
    if sec is None:
        return units
    for i, toks in sec[2]:
        if len(toks) != 2:
            raise _error(p, i, f"a :units line is 'name value', got {' '.join(toks)!r}")
        key, value = toks[0].lower(), toks[1]
        if key == "angle":
            v = value.lower()
            if v in ("deg", "degree", "degrees"):
                units["angle"] = "deg"
            elif v in ("rad", "radian", "radians"):
                units["angle"] = "rad"
            else:
                raise _error(p, i, f"unknown angle unit {value!r}; expected deg or rad")
        else:
            v = _finite(value, p, i, f"units {key}")
            if key == "length" and v <= 0:
                raise _error(p, i, f"units length must be positive, got {value}")
            units[key] = v
    return units


def _parse_root(p: str, sec) -> Root:
    start, _, body = sec
    order = axis = None
    position = np.zeros(3)
    orientation = np.zeros(3)
    for i, toks in body:
        key, args = toks[0].lower(), toks[1:]
        if key == "order":
            order = [a.lower() for a in args]
            bad = [a for a in order if a not in ROOT_CHANNELS]
            if bad or len(set(order)) != len(order) or not order:
                raise _error(p, i, f"bad root order {' '.join(args)!r}; expected distinct channels among TX TY TZ RX RY RZ")
        elif key == "axis":
            if len(args) != 1:
                raise _error(p, i, f"root axis needs one rotation order such as XYZ, got {' '.join(args)!r}")
            axis = _axis_order(args[0], p, i, "the root axis")
        elif key == "position":
            position = _numbers(args, 3, p, i, "root position")
        elif key == "orientation":
            orientation = _numbers(args, 3, p, i, "root orientation")
        else:
            raise _error(p, i, f"unknown root field {toks[0]!r}; expected order, axis, position, orientation")
    if order is None or axis is None:
        raise _error(p, start, f"the :root section lacks {'order' if order is None else 'axis'}")
    return Root(order=order, axis_order=axis, position=position, orientation=orientation)


def _parse_bones(p: str, sec, last: int) -> dict[str, Bone]:
    bones: dict[str, Bone] = {}
    body = sec[2]
    k = 0
    while k < len(body):
        i, toks = body[k]
        if toks[0].lower() != "begin" or len(toks) != 1:
            raise _error(p, i, f"expected 'begin' of a bone in :bonedata, got {' '.join(toks)[:40]!r}")
        begin = i
        fields: dict[str, Any] = {}
        k += 1
        ended = False
        while k < len(body):
            i, toks = body[k]
            key, args = toks[0].lower(), toks[1:]
            k += 1
            if key == "end":
                ended = True
                break
            if key == "begin":
                raise _error(p, i, f"'begin' inside the bone begun at line {begin} (its 'end' is missing)")
            if key in fields:
                raise _error(p, i, f"bone field {key!r} given twice")
            if key == "id":
                if len(args) != 1:
                    raise _error(p, i, "bone id needs one integer")
                try:
                    if len(args[0]) > 18:
                        raise ValueError(args[0])
                    fields["id"] = int(args[0])
                except ValueError:
                    raise _error(p, i, f"bad number {args[0]!r} for the bone id") from None
            elif key == "name":
                if len(args) != 1:
                    raise _error(p, i, f"bone name must be one word, got {' '.join(args)!r}")
                fields["name"] = args[0]
            elif key == "direction":
                d = _numbers(args, 3, p, i, "bone direction")
                n = float(np.linalg.norm(d))
                fields["direction"] = d / n if n > 0 else d
            elif key == "length":
                fields["length"] = float(_numbers(args, 1, p, i, "bone length")[0])
                if fields["length"] < 0:
                    raise _error(p, i, f"bone length must be >= 0, got {args[0]}")
            elif key == "axis":
                if len(args) != 4:
                    raise _error(p, i, f"bone axis needs three angles and an order (e.g. '0 0 20 XYZ'), got {' '.join(args)!r}")
                fields["axis"] = _numbers(args[:3], 3, p, i, "bone axis")
                fields["axis_order"] = _axis_order(args[3], p, i, "the bone axis")
            elif key == "dof":
                dof = [a.lower() for a in args]
                bad = [a for a in dof if a not in BONE_DOFS]
                if bad or not dof or len(set(dof)) != len(dof):
                    raise _error(p, i, f"bad dof {' '.join(args)!r}; expected distinct names among rx ry rz tx ty tz l")
                fields["dof"] = dof
                fields["dof_line"] = i
            elif key == "limits":
                # One "(lo hi)" per dof, on this line and the continuation lines that follow.
                text = " ".join(args)
                while k < len(body) and body[k][1][0].startswith("("):
                    text += " " + " ".join(body[k][1])
                    k += 1
                pairs = _LIMIT.findall(text)
                if not pairs or _LIMIT.sub("", text).strip():
                    raise _error(p, i, f"bad limits {text!r}; expected '(lo hi)' per dof")
                fields["limits"] = [(_number(a, p, i, "a limit"), _number(b, p, i, "a limit")) for a, b in pairs]
                fields["limits_line"] = i
            else:
                raise _error(p, i, f"unknown bone field {toks[0]!r}; expected id, name, direction, length, axis, dof, limits")
        if not ended:
            raise _error(p, last, f"the bone begun at line {begin} has no 'end' (truncated file?)")
        for need in ("name", "direction", "length", "axis"):
            if need not in fields:
                raise _error(p, begin, f"the bone begun here has no {need!r}")
        name = fields["name"]
        if name == "root" or name in bones:
            raise _error(p, begin, f"bone name {name!r} is {'reserved' if name == 'root' else 'defined twice'}")
        dof = fields.get("dof", [])
        limits = fields.get("limits")
        if limits is not None and len(limits) != len(dof):
            raise _error(p, fields["limits_line"], f"bone {name!r} has {len(dof)} dof but {len(limits)} limits")
        bones[name] = Bone(
            id=fields.get("id", len(bones) + 1),
            name=name,
            direction=fields["direction"],
            length=fields["length"],
            axis=fields["axis"],
            axis_order=fields["axis_order"],
            dof=dof,
            limits=limits,
        )
    return bones


def _parse_hierarchy(p: str, sec, bones: dict[str, Bone], last: int) -> tuple[dict[str, str], dict[str, list[str]]]:
    start, _, body = sec
    if not body or [t.lower() for t in body[0][1]] != ["begin"]:
        raise _error(p, body[0][0] if body else start, "the :hierarchy section must start with 'begin'")
    parent: dict[str, str] = {}
    children: dict[str, list[str]] = {}
    ended = False
    for i, toks in body[1:]:
        if ended:
            raise _error(p, i, f"text {' '.join(toks)[:40]!r} after the hierarchy's 'end'")
        if toks[0].lower() == "end":
            ended = True
            continue
        if len(toks) < 2:
            raise _error(p, i, f"a hierarchy line is 'parent child...', got {toks[0]!r} alone")
        par, kids = toks[0], toks[1:]
        if par != "root" and par not in bones:
            raise _error(p, i, f"unknown joint {par!r} in the hierarchy (not defined in :bonedata)")
        for c in kids:
            if c not in bones:
                raise _error(p, i, f"unknown joint {c!r} in the hierarchy (not defined in :bonedata)")
            if c in parent:
                raise _error(p, i, f"bone {c!r} has two parents ({parent[c]!r} and {par!r})")
            parent[c] = par
            children.setdefault(par, []).append(c)
    if not ended:
        raise _error(p, last, f"the :hierarchy begun at line {start} has no 'end' (truncated file?)")
    # Every bone must hang from the root (this also rules out cycles).
    reached, stack = set(), ["root"]
    while stack:
        j = stack.pop()
        for c in children.get(j, []):
            if c not in reached:
                reached.add(c)
                stack.append(c)
    missing = [b for b in bones if b not in reached]
    if missing:
        raise _error(p, start, f"bones not connected to the root in :hierarchy: {', '.join(missing)}")
    return parent, children


# ---------------------------------------------------------------------- AMC


def parse_amc(path: str | os.PathLike, skeleton: Skeleton | None = None) -> Motion:
    """Parse an Acclaim motion file.

    Checks that frame numbers are consecutive, that every frame names the same joints (each once),
    and, when ``skeleton`` is given, that every joint is known and has as many values as its dof
    (without it, as many as in the first frame).

    Raises:
        ValueError: ``"PATH:LINE: problem"`` for any malformed content.
    """
    p, lines = _read_lines(path, "AMC")
    keywords: list[str] = []
    frames: list[int] = []
    values: dict[str, list[list[float]]] = {}
    first_joints: list[str] | None = None
    counts: dict[str, int] = {}
    seen: dict[str, int] = {}  # joints of the current frame -> line
    frame_line = 0

    def close_frame(line: int) -> None:
        nonlocal first_joints
        joints = list(seen)
        if first_joints is None:
            if not joints:
                raise _error(p, line, f"frame {frames[-1]} (line {frame_line}) has no joint lines")
            first_joints = joints
        elif set(joints) != set(first_joints):
            lost = [j for j in first_joints if j not in seen]
            extra = [j for j in joints if j not in first_joints]
            what = (f"lacks {', '.join(lost)}" if lost else "") + ("; " if lost and extra else "") + (f"has extra joints {', '.join(extra)}" if extra else "")
            raise _error(p, line, f"frame {frames[-1]} (line {frame_line}) {what} (every frame must list the same joints; truncated file?)")

    for i, raw in enumerate(lines, 1):
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        if s.startswith(":"):
            if frames:
                raise _error(p, i, f"header keyword {s!r} after the first frame")
            keywords.append(s[1:].split()[0].upper() if s[1:].split() else "")
            continue
        toks = s.split()
        if len(toks) == 1 and _FRAME_NUMBER.fullmatch(toks[0]):
            if len(toks[0]) > 18:
                raise _error(p, i, f"frame number {toks[0][:20]}... is implausibly large")
            n = int(toks[0])
            if frames:
                close_frame(i)
                if n != frames[-1] + 1:
                    raise _error(p, i, f"frame number {n} follows frame {frames[-1]}; frame numbers must be consecutive")
            frames.append(n)
            frame_line = i
            seen = {}
            continue
        if not frames:
            raise _error(p, i, f"joint line {s[:40]!r} before the first frame number")
        joint = toks[0]
        if joint in seen:
            raise _error(p, i, f"joint {joint!r} appears twice in frame {frames[-1]} (also line {seen[joint]})")
        if skeleton is not None:
            if joint != "root" and joint not in skeleton.bones:
                raise _error(p, i, f"unknown joint {joint!r} (not in the skeleton {skeleton.path})")
            expected = len(skeleton.dof(joint))
            why = f"its dof in {skeleton.path}"
        else:
            expected = counts.get(joint, len(toks) - 1)
            why = "the first frame"
        if len(toks) - 1 != expected:
            raise _error(p, i, f"joint {joint!r} has {len(toks) - 1} values but {why} says {expected} (wrong channel count or truncated line)")
        counts[joint] = expected
        seen[joint] = i
        values.setdefault(joint, []).append([_finite(t, p, i, f"joint {joint!r}") for t in toks[1:]])
    if not frames:
        raise _error(p, len(lines), "no frames (an AMC file has frame numbers, each followed by one line per joint)")
    close_frame(len(lines))
    unit = None
    if "DEGREES" in keywords:
        unit = "deg"
    elif "RADIANS" in keywords:
        unit = "rad"
    joints = {j: np.asarray(values[j], dtype=np.float64).reshape(len(frames), counts[j]) for j in first_joints}
    return Motion(path=p, frames=np.asarray(frames, dtype=np.int64), joints=joints, angle_unit=unit, keywords=keywords)


# ---------------------------------------------------------------------- forward kinematics


def _axis_rotation(axis: str, angle: np.ndarray) -> np.ndarray:
    """Rotations about ``axis`` ("x", "y" or "z") by ``angle`` radians ``[T]`` -> ``[T, 3, 3]``."""
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    if axis == "x":
        rows = [[one, zero, zero], [zero, c, -s], [zero, s, c]]
    elif axis == "y":
        rows = [[c, zero, s], [zero, one, zero], [-s, zero, c]]
    else:
        rows = [[c, -s, zero], [s, c, zero], [zero, zero, one]]
    return np.stack([np.stack(r, -1) for r in rows], -2)


def euler_matrix(angles: np.ndarray, order: str) -> np.ndarray:
    """Rotation applying ``angles[..., k]`` (radians) about axis ``order[k]`` in turn, first to last
    (``order="XYZ"``: ``Rz @ Ry @ Rx``); ``angles`` ``[T, len(order)]`` -> ``[T, 3, 3]``."""
    angles = np.asarray(angles, dtype=np.float64)
    out = np.broadcast_to(np.eye(3), (angles.shape[0], 3, 3)).copy()
    for k, ax in enumerate(order.lower()):
        out = _axis_rotation(ax, angles[:, k]) @ out
    return out


def as_rows(values: Any, width: int, what: str, hint: str = "", rows: str = "T") -> np.ndarray:
    """``values`` (a tensor or array, ``[width]`` for one row) as float64 ``[rows, width]``; a
    ValueError starting with ``what`` otherwise."""
    a = np.asarray(values.detach().cpu().numpy() if hasattr(values, "detach") else values, dtype=np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != width:
        raise ValueError(f"{what} of shape {tuple(a.shape)}; expected [{rows}, {width}]{hint}")
    return a


def _as_angle_dict(skeleton: Skeleton, motion_or_angles: Motion | Mapping[str, Any]) -> tuple[dict[str, np.ndarray], str | None]:
    """Validated angles ``{joint: float64 [T, n_dof]}`` and the motion's angle unit (None for a dict)."""
    if isinstance(motion_or_angles, Motion):
        items, unit, src = motion_or_angles.joints, motion_or_angles.angle_unit, f" of {motion_or_angles.path}"
    elif isinstance(motion_or_angles, Mapping):
        items, unit, src = motion_or_angles, None, ""
    else:
        raise TypeError(f"forward_kinematics needs a Motion or a dict joint -> angles, got {type(motion_or_angles).__name__}")
    out: dict[str, np.ndarray] = {}
    t = None
    for joint, v in items.items():
        if joint != "root" and joint not in skeleton.bones:
            raise ValueError(f"unknown joint {joint!r} in the angles{src} given to forward_kinematics (skeleton {skeleton.path})")
        a = as_rows(v, len(skeleton.dof(joint)), f"joint {joint!r} has angles{src}", f" (its dof {skeleton.dof(joint)})")
        if t is not None and a.shape[0] != t:
            raise ValueError(f"joint {joint!r} has {a.shape[0]} frames{src} but other joints have {t}")
        t = a.shape[0]
        out[joint] = a
    return out, unit


def forward_kinematics(
    skeleton: Skeleton,
    motion_or_angles: Motion | Mapping[str, Any],
    frames: int | Sequence[int] | np.ndarray | None = None,
    *,
    root_translation: bool = True,
    scale: float = 1.0,
    angle_unit: str | None = None,
) -> np.ndarray:
    """Joint end positions ``[T, J, 3]`` for ``skeleton.joint_names`` (the root first).

    Args:
        motion_or_angles: a `Motion`, or a dict joint -> angles ``[T, n_dof]`` (or ``[n_dof]`` for one
            frame) in the joint's dof order; joints left out are at rest (zero angles), a left-out
            root sits at the ASF ``position`` with no rotation.
        frames: indices into the motion's frames (0-based rows, not AMC frame numbers): None for
            all, an int for one, or a sequence.
        root_translation: False puts the root at the origin in every frame (poses centred).
        scale: multiplies every length and translation (file units by default).
        angle_unit: "deg" or "rad" for the angles; default: the motion's header, else the skeleton's.
    """
    angles, unit = _as_angle_dict(skeleton, motion_or_angles)
    unit = angle_unit or unit or skeleton.angle_unit
    if unit not in ("deg", "rad"):
        raise ValueError(f"angle_unit must be 'deg' or 'rad', got {unit!r}")
    to_rad = math.pi / 180.0 if unit == "deg" else 1.0
    axis_to_rad = math.pi / 180.0 if skeleton.angle_unit == "deg" else 1.0
    total = next(iter(angles.values())).shape[0] if angles else 1
    if frames is None:
        index = np.arange(total)
    else:
        index = np.atleast_1d(np.asarray(frames, dtype=np.int64))
        if index.ndim != 1 or (index.size and (index.min() < -total or index.max() >= total)):
            raise ValueError(f"frames {frames!r} out of range for {total} frames")
    t = len(index)
    angles = {j: a[index] for j, a in angles.items()}

    names = skeleton.joint_names
    pos = np.zeros((t, len(names), 3))
    rot: dict[str, np.ndarray] = {}
    # Root.
    order = skeleton.root.order
    root = angles.get("root")
    c_root = euler_matrix(skeleton.root.orientation[None] * axis_to_rad, skeleton.root.axis_order)[0]
    rot_channels = [k for k, ch in enumerate(order) if ch.startswith("r")]
    if root is not None and rot_channels:
        m = euler_matrix(root[:, rot_channels] * to_rad, "".join(order[k][1] for k in rot_channels))
    else:
        m = np.broadcast_to(np.eye(3), (t, 3, 3))
    rot["root"] = c_root @ m @ c_root.T
    if root_translation:
        origin = skeleton.root.position.astype(np.float64).copy()
        trans = np.broadcast_to(origin, (t, 3)).copy()
        if root is not None:
            for k, ch in enumerate(order):
                if ch.startswith("t"):
                    trans[:, "xyz".index(ch[1])] = root[:, k]
        pos[:, 0] = trans * scale
    # Bones, parents first.
    index_of = {n: i for i, n in enumerate(names)}
    for b in skeleton.topological_order():
        bone = skeleton.bones[b]
        c = euler_matrix(bone.axis[None] * axis_to_rad, bone.axis_order)[0]
        a = angles.get(b)
        if a is not None and bone.dof:
            unsupported = [d for d in bone.dof if d not in ROTATIONS]
            if unsupported:
                raise ValueError(f"bone {b!r} has dof {unsupported}: forward_kinematics supports rotations (rx, ry, rz) only")
            m = euler_matrix(a * to_rad, "".join(d[1] for d in bone.dof))
            local = c @ m @ c.T
        else:
            local = np.broadcast_to(np.eye(3), (t, 3, 3))
        g = rot[skeleton.parent[b]] @ local
        rot[b] = g
        pos[:, index_of[b]] = pos[:, index_of[skeleton.parent[b]]] + (bone.length * scale) * (g @ bone.direction)
    return pos


def rest_angles(skeleton: Skeleton, n: int = 1) -> dict[str, np.ndarray]:
    """Zero angles ``[n, n_dof]`` for every joint with dof (the root included): the rest pose."""
    out = {"root": np.zeros((n, len(skeleton.root.order)))}
    out.update({b: np.zeros((n, len(bone.dof))) for b, bone in skeleton.bones.items() if bone.dof})
    return out


__all__ = ["Bone", "Motion", "Root", "Skeleton", "euler_matrix", "forward_kinematics", "parse_amc", "parse_asf", "rest_angles"]
