"""Motion capture figures: stick-figure poses, and inputs against reconstructions (factVAE, Fig. 3).

Poses are drawn from joint angles with `pogm.data.asf_amc.forward_kinematics`, root translation
zeroed so every pose is centred. The default view is a fixed 2-D side projection (horizontal: the
skeleton's Z axis, the walking direction of CMU subject 07 at rest heading; vertical: Y, up); a
3-D matplotlib axes gets a 3-D drawing instead. Bones of highlighted groups are drawn in a strong
colour, the others in grey; a bone outside every group (the hip joints) takes the group of its
first grouped descendant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pogm.data.asf_amc import Skeleton, forward_kinematics
from pogm.plotting import pyplot, save_figure

GREY = "0.6"
HIGHLIGHT = "tab:red"
INFERRED = "tab:blue"
_VIEWS = {"side": (2, 1), "front": (0, 1), "top": (0, 2)}


def bone_groups(skeleton: Skeleton, group_joints: Mapping[str, Sequence[str]]) -> dict[str, str | None]:
    """Bone name -> the group it is drawn with (None for bones in no group and above none)."""
    own = {j: g for g, joints in group_joints.items() for j in joints}
    out: dict[str, str | None] = {}

    def first_grouped(b: str) -> str | None:
        if b in own:
            return own[b]
        for c in skeleton.children.get(b, []):
            g = first_grouped(c)
            if g is not None:
                return g
        return None

    for b in skeleton.bones:
        out[b] = first_grouped(b)
    return out


def _positions(skeleton: Skeleton, joint_angles: Mapping[str, Any]) -> np.ndarray:
    pos = forward_kinematics(skeleton, joint_angles, root_translation=False)
    if pos.shape[0] != 1:
        raise ValueError(f"draw one pose at a time: the joint angles hold {pos.shape[0]} frames")
    return pos[0]


def _project(pos: np.ndarray, view: str) -> np.ndarray:
    if view not in _VIEWS:
        raise ValueError(f"view must be one of {', '.join(_VIEWS)}, got {view!r}")
    return pos[:, list(_VIEWS[view])]


def draw_pose(
    ax,
    skeleton: Skeleton,
    joint_angles_one_frame: Mapping[str, Any],
    highlight_groups: Sequence[str] = (),
    group_joints: Mapping[str, Sequence[str]] | None = None,
    *,
    view: str = "side",
    color: str = HIGHLIGHT,
    other_color: str = GREY,
    linewidth: float = 2.5,
    alpha: float = 1.0,
    linestyle: str = "-",
) -> np.ndarray:
    """Draw one pose on ``ax``; returns the joint positions ``[J, 3]`` (root at the origin).

    Args:
        joint_angles_one_frame: joint -> angles ``[n_dof]`` or ``[1, n_dof]`` (e.g. one row of
            `pogm.data.sources.mocap.to_joint_angles`); joints left out are at rest.
        highlight_groups: groups whose bones are drawn in ``color``; the rest in ``other_color``.
        group_joints: group -> joints (default: the mocap source's five groups).
        view: "side", "front" or "top" for a 2-D axes (ignored for a 3-D axes).
    """
    if group_joints is None:
        from pogm.data.sources.mocap import GROUP_JOINTS

        group_joints = GROUP_JOINTS
    unknown = [g for g in highlight_groups if g not in group_joints]
    if unknown:
        raise ValueError(f"unknown group(s) to highlight: {', '.join(unknown)}; the groups are {', '.join(group_joints)}")
    pos = _positions(skeleton, joint_angles_one_frame)
    groups = bone_groups(skeleton, group_joints)
    names = skeleton.joint_names
    three_d = hasattr(ax, "zaxis")
    # Grey bones first so that highlighted ones lie on top.
    for strong in (False, True):
        for parent, child in skeleton.edge_names:
            hit = groups[child] in highlight_groups
            if hit != strong:
                continue
            a, b = pos[names.index(parent)], pos[names.index(child)]
            style = {
                "color": color if hit else other_color,
                "linewidth": linewidth * (1.2 if hit else 1.0),
                "alpha": alpha,
                "linestyle": linestyle,
                "solid_capstyle": "round",
            }
            if three_d:
                ax.plot([a[0], b[0]], [a[2], b[2]], [a[1], b[1]], **style)
            else:
                pa, pb = _project(np.stack([a, b]), view)
                ax.plot([pa[0], pb[0]], [pa[1], pb[1]], **style)
    if not three_d:
        head = _project(pos[[names.index("head")]], view)[0] if "head" in names else None
        if head is not None:
            ax.plot([head[0]], [head[1]], "o", color=color if "core" in highlight_groups else other_color, markersize=6, alpha=alpha)
    return pos


def _per_column(observed_groups: Sequence[str] | Sequence[Sequence[str]], n: int, groups: Sequence[str]) -> list[list[str]]:
    if isinstance(observed_groups, str):
        observed_groups = [observed_groups]
    items = list(observed_groups)
    if all(isinstance(g, str) for g in items):
        cols = [items] * n
    else:
        cols = [[o] if isinstance(o, str) else list(o) for o in items]
        if len(cols) != n:
            raise ValueError(f"observed_groups gives {len(cols)} lists for {n} poses; give one list, or one per pose")
    for col in cols:
        bad = [g for g in col if g not in groups]
        if bad:
            raise ValueError(f"unknown observed group(s) {', '.join(map(str, bad))}; the groups are {', '.join(groups)}")
    return cols


def pose_figure(
    skeleton: Skeleton,
    info: Mapping[str, Any],
    inputs: Sequence[Mapping[str, Any]],
    outputs: Sequence[Mapping[str, Any]],
    observed_groups: Sequence[str] | Sequence[Sequence[str]],
    path: str | Path,
    titles: Sequence[str] | None = None,
    view: str = "side",
) -> Path:
    """Write a PNG like factVAE's Fig. 3: top row the true poses with the observed groups
    highlighted, bottom row the reconstructions (inferred groups in blue, over the true pose dotted).

    Args:
        info: the mocap source's ``info`` (normalisation, channels, groups).
        inputs, outputs: one dict per pose (column), group -> normalised features ``[D_g]`` or
            ``[1, D_g]`` (tensors or arrays); a group left out or None is drawn at rest.
        observed_groups: the groups given to the model: one list for every column, or one per column.
        titles: one title per column (default: the observed groups).
    """
    from pogm.data.sources.mocap import to_joint_angles

    n = len(inputs)
    if n == 0 or len(outputs) != n:
        raise ValueError(f"pose_figure needs as many outputs as inputs (at least one), got {n} and {len(outputs)}")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles has {len(titles)} entries for {n} poses")
    groups = list(info["groups"])
    observed = _per_column(observed_groups, n, groups)
    group_joints = info.get("group_joints")
    plt = pyplot()
    fig, axes = plt.subplots(2, n, figsize=(2.2 * n + 0.4, 5.2), squeeze=False)
    points = []
    for i in range(n):
        true = to_joint_angles(inputs[i], info)
        recon = to_joint_angles(outputs[i], info)
        inferred = [g for g in groups if g not in observed[i]]
        top, bottom = axes[0, i], axes[1, i]
        points.append(draw_pose(top, skeleton, true, observed[i], group_joints, view=view, color=HIGHLIGHT))
        draw_pose(bottom, skeleton, true, (), group_joints, view=view, other_color="0.75", linewidth=1.5, linestyle=":")
        points.append(draw_pose(bottom, skeleton, recon, inferred, group_joints, view=view, color=INFERRED))
        top.set_title(titles[i] if titles is not None else "observed: " + (", ".join(observed[i]) or "none"), fontsize=8)
        bottom.set_title("reconstruction", fontsize=8)
    xy = np.concatenate([_project(p, view) for p in points])
    lo, hi = xy.min(0), xy.max(0)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 * 1.08 + 1e-6
    for ax in axes.ravel():
        ax.set_xlim(centre[0] - half, centre[0] + half)
        ax.set_ylim(centre[1] - half, centre[1] + half)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0, 0].set_ylabel("input", fontsize=9)
    axes[1, 0].set_ylabel("reconstruction", fontsize=9)
    return save_figure(fig, path)


__all__ = ["bone_groups", "draw_pose", "pose_figure"]
