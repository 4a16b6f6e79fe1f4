"""Synthetic depth maps of an articulated hand, with the holes of a real depth sensor.

Why: the Hybrid VAE paper (Tulyakov et al., section 3.1) models depth images whose pixels may be
*unobserved*, "outside the operating range of the camera" or "invalidated by the depth engine",
and scores hand poses on NYU Hand Pose. No real depth set is at hand, so this source renders one
whose holes follow those causes; h is the hand's pose.

The object (sizes in metres, scaled by a random factor in [0.9, 1.1] per image): a palm (a
flattened ellipsoid 8.4 x 9.6 x 3.2 cm), a forearm (an elongated ellipsoid running out of the
bottom of the view) and three fingers (index, middle, ring), each two phalanges (elongated
ellipsoids). The palm faces the camera. A finger curls towards the camera by the same angle at
both joints, ``curl`` in ``[0, max_curl]`` degrees. The whole hand turns by ``yaw`` (about the
vertical axis, ``+-yaw_range`` degrees) then ``pitch`` (about the horizontal axis,
``+-pitch_range``), and sits at a random distance (``z`` uniform in [0.45, 0.75] m) with a small
random sideways offset (+-1.5 cm); size, distance and offset are nuisances, not part of h.

The view: an orthographic ray cast (one ray per pixel centre, along the optical axis) of a
20 cm x 20 cm square around the hand, as hand-pose pipelines crop a fixed metric box around the hand
before resizing (Oberweger et al. 2015); ``size`` x ``size`` pixels (default 32). Behind the hand
is a far wall at 1.5 m. The intersections are closed-form (a ray meets an ellipsoid where a
quadratic vanishes), vectorised over images, pixels and parts.

The sensor: the camera measures depth d in ``[min_range, max_range]`` (default 0.4 to 1.0 m); the
pixel value is ``(d - min_range) / (max_range - min_range)`` in [0, 1] plus Gaussian noise
(``noise_std`` metres, default 3 mm), clipped to [0, 1]. A pixel is unobserved (mask False, value
0) when

(a) it is out of range: nearer than ``min_range`` (curled fingers of a close hand) or beyond
    ``max_range`` (the whole far wall);
(b) it lies on a depth discontinuity: its depth differs from one of its 4 neighbours by more than
    ``edge_threshold`` (default 2 cm), at silhouettes and self-occlusions; such pixels are dropped
    with probability ``edge_dropout`` (default 0.8), as depth engines invalidate mixed pixels;
(c) random speckle: any pixel is dropped with probability ``speckle`` (default 0.01).

Labels h (D = 5, all in [0, 1]): ``[index_curl, middle_curl, ring_curl, yaw, pitch]`` =
``curl / max_curl`` for each finger, ``(yaw + yaw_range) / (2 yaw_range)``,
``(pitch + pitch_range) / (2 pitch_range)``; ``info["y_ranges_deg"]`` gives the ranges to undo it.
Poses are uniform over that box.

Split: ``n_train`` / ``n_valid`` / ``n_test`` images (default 20,000 / 1,000 / 2,000), each part drawn
from its own random stream seeded by ``split_seed`` (so a part does not change when the size of
another does; independent of any run seed). Nothing is cached on disk: 23,000 images at 32x32
take a few seconds.

Task loss: the Euclidean distance between predicted and true h, ``{"kind": "l2"}`` (for hand pose
the paper reports "the average L2 distance between the ground truth and the prediction"). ``model_defaults`` asks for the ``"depth"``
likelihood: per pixel a Bernoulli "observed or not" and a Gaussian for the value where observed.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from pogm.data.dataset import PartialDataset
from pogm.data.sources import DataSplits
from pogm.data.sources.files import torch_threads

Y_NAMES = ["index_curl", "middle_curl", "ring_curl", "yaw", "pitch"]
WALL = 1.5  # metres; beyond any max_range allowed
VIEW = 0.20  # metres: side of the square seen by the orthographic camera
DISTANCE = (0.45, 0.75)  # metres: hand distance range
OFFSET = 0.015  # metres: sideways offset of the hand, uniform in +-OFFSET per axis
SIZE_RANGE = (0.9, 1.1)
CENTRE_Y = -0.04  # the hand-frame point (0, CENTRE_Y, 0) is centred in the view (fingers are longer than the wrist side)

# Hand frame: x right, y down (towards the wrist), z away from the camera; palm centre at 0.
PALM = ((0.0, 0.0, 0.0), (0.042, 0.048, 0.016))  # centre, semi-axes
FOREARM = ((0.0, 0.048 + 0.13, 0.004), (0.028, 0.14, 0.024))
# Fingers: base (x, y), phalanx lengths (proximal, distal), radius.
FINGERS = (
    ((-0.026, -0.040), (0.042, 0.032), 0.0095),
    ((0.0, -0.044), (0.047, 0.035), 0.0100),
    ((0.026, -0.040), (0.043, 0.032), 0.0095),
)


def _axis_ellipsoid(direction: torch.Tensor, half_length: float, radius: float) -> torch.Tensor:
    """Q ``[..., 3, 3]`` of an ellipsoid with long semi-axis ``half_length`` along unit ``direction``."""
    eye = torch.eye(3, dtype=direction.dtype)
    ddt = direction[..., :, None] * direction[..., None, :]
    return eye / radius**2 + (1.0 / half_length**2 - 1.0 / radius**2) * ddt


def hand_ellipsoids(curl: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Centres ``[n, K, 3]`` and quadric matrices ``[n, K, 3, 3]`` (``(p-c)^T Q (p-c) = 1``) in the hand frame.

    ``curl``: ``[n, 3]`` radians per finger. K = 8: palm, forearm, 3 fingers x 2 phalanges.
    """
    n = curl.shape[0]
    dt = curl.dtype
    centres, quads = [], []
    for c, s in (PALM, FOREARM):
        centres.append(torch.tensor(c, dtype=dt).expand(n, 3))
        quads.append(torch.diag(1.0 / torch.tensor(s, dtype=dt) ** 2).expand(n, 3, 3))
    zero = torch.zeros(n, dtype=dt)
    for f, ((bx, by), lengths, radius) in enumerate(FINGERS):
        joint = torch.tensor([bx, by, 0.0], dtype=dt).expand(n, 3)
        for k, length in enumerate(lengths):
            angle = curl[:, f] * (k + 1)  # each joint bends by the curl: total bend 1x then 2x
            d = torch.stack([zero, -torch.cos(angle), -torch.sin(angle)], dim=1)  # -z: towards the camera
            centres.append(joint + 0.5 * length * d)
            quads.append(_axis_ellipsoid(d, 0.5 * length + 0.6 * radius, radius))
            joint = joint + length * d
    return torch.stack(centres, 1), torch.stack(quads, 1)


def _rotation(yaw: torch.Tensor, pitch: torch.Tensor) -> torch.Tensor:
    """``Ry(yaw) @ Rx(pitch)`` as ``[n, 3, 3]``."""
    cy, sy, cp, sp = torch.cos(yaw), torch.sin(yaw), torch.cos(pitch), torch.sin(pitch)
    one, zero = torch.ones_like(yaw), torch.zeros_like(yaw)
    ry = torch.stack([torch.stack([cy, zero, sy], -1), torch.stack([zero, one, zero], -1), torch.stack([-sy, zero, cy], -1)], -2)
    rx = torch.stack([torch.stack([one, zero, zero], -1), torch.stack([zero, cp, -sp], -1), torch.stack([zero, sp, cp], -1)], -2)
    return ry @ rx


def render_depth(
    curl: torch.Tensor,
    yaw: torch.Tensor,
    pitch: torch.Tensor,
    scale: torch.Tensor,
    offset: torch.Tensor,
    size: int = 32,
    chunk: int = 512,
    windows: bool = True,
) -> torch.Tensor:
    """Clean depth maps ``[n, size, size]`` (float32 metres; ``WALL`` where no part is hit).

    Args:
        curl: ``[n, 3]`` finger curls (radians); yaw, pitch: ``[n]`` (radians).
        scale: ``[n]`` size factors; offset: ``[n, 3]`` hand position (x, y sideways, z distance), metres.
        windows: intersect a small part only with the square of pixels that can see it (a part lies
            within its longest semi-axis of its centre); False intersects every pixel (same result, slower).
    """
    centres, quads = hand_ellipsoids(curl.to(torch.float64))
    rot = _rotation(yaw.to(torch.float64), pitch.to(torch.float64))
    s = scale.to(torch.float64)[:, None, None]
    centres = torch.einsum("nij,nkj->nki", rot, centres * s) + offset.to(torch.float64)[:, None, :]
    centres = centres - torch.einsum("nij,j->ni", rot, torch.tensor([0.0, CENTRE_Y, 0.0], dtype=torch.float64))[:, None] * s
    # Longest semi-axis of each part (the same for every image up to the scale): 1 / sqrt(min eigenvalue of Q).
    reach = (1.0 / torch.linalg.eigvalsh(quads[0]).min(dim=-1).values.sqrt()) * float(scale.max()) if len(scale) else None
    # Q in the camera frame: a point p = R q, so q^T Q q = p^T (R Q R^T) p; scaling lengths by s divides Q by s^2.
    quads = rot[:, None] @ quads @ rot.transpose(1, 2)[:, None] / s[..., None] ** 2
    a = quads[..., 2, 2]
    # Along a ray (x, y, t): a dt^2 + 2 b dt + c = 0 with dt = t - cz, b = qxz dx + qyz dy,
    # c = qxx dx^2 + 2 qxy dx dy + qyy dy^2 - 1. Nearest root: dt = -b/a - sqrt(b^2 - a c)/a.
    lx = (quads[..., 0, 2] / a).float()  # depth = cz - lx dx - ly dy - sqrt(disc)
    ly = (quads[..., 1, 2] / a).float()
    pxx = ((quads[..., 0, 2] ** 2 - a * quads[..., 0, 0]) / a**2).float()  # disc = pxx dx^2 + 2 pxy dx dy + pyy dy^2 + 1/a
    pxy = ((quads[..., 0, 2] * quads[..., 1, 2] - a * quads[..., 0, 1]) / a**2).float()
    pyy = ((quads[..., 1, 2] ** 2 - a * quads[..., 1, 1]) / a**2).float()
    inv_a = (1.0 / a).float()
    cx, cy, cz = (centres[..., i].float() for i in range(3))
    step = VIEW / size
    pix = ((torch.arange(size, dtype=torch.float32) + 0.5) / size - 0.5) * VIEW  # pixel centres, metres
    n, k_parts = cx.shape
    widths = [size] * k_parts
    if windows and reach is not None:
        widths = [min(size, math.ceil(2 * float(r) / step) + 2) for r in reach]
    out = torch.empty(n, size, size, dtype=torch.float32)
    inf = torch.tensor(float("inf"))
    for i in range(0, n, chunk):
        sl = slice(i, i + chunk)
        m = min(chunk, n - i)
        depth = torch.full((m, size * size), WALL, dtype=torch.float32)
        for k in range(k_parts):
            w = widths[k]
            if w * 4 >= size * 3:  # a large part: all pixels
                cols = rows = pix[None, :].expand(m, size)
                idx = None
            else:  # the w x w pixels around the part's centre, clamped into the image
                first_col = (torch.round(cx[sl, k] / step + size / 2 - 0.5).long() - w // 2).clamp_(0, size - w)
                first_row = (torch.round(cy[sl, k] / step + size / 2 - 0.5).long() - w // 2).clamp_(0, size - w)
                col_index = first_col[:, None] + torch.arange(w)
                row_index = first_row[:, None] + torch.arange(w)
                cols, rows = pix[col_index], pix[row_index]
                idx = (row_index[:, :, None] * size + col_index[:, None, :]).reshape(m, w * w)
            dx = cols[:, None, :] - cx[sl, k, None, None]  # [m, 1, w]
            dy = rows[:, :, None] - cy[sl, k, None, None]  # [m, w, 1]
            disc = (2 * pxy[sl, k, None, None] * dx) * dy
            disc += pxx[sl, k, None, None] * dx * dx
            disc += pyy[sl, k, None, None] * dy * dy + inv_a[sl, k, None, None]
            front = (cz[sl, k, None, None] - lx[sl, k, None, None] * dx) - ly[sl, k, None, None] * dy
            hit = torch.where(disc > 0, front - disc.clamp_(min=0).sqrt_(), inf).reshape(m, -1)
            if idx is None:
                torch.minimum(depth, hit, out=depth)
            else:
                depth.scatter_(1, idx, torch.minimum(depth.gather(1, idx), hit))
        out[sl] = depth.view(m, size, size)
    return out


def depth_edges(depth: torch.Tensor, threshold: float) -> torch.Tensor:
    """bool ``[n, H, W]``: pixels whose depth differs from a 4-neighbour's by more than ``threshold``."""
    edge = torch.zeros(depth.shape, dtype=torch.bool)
    dv = (depth[:, 1:, :] - depth[:, :-1, :]).abs() > threshold
    dh = (depth[:, :, 1:] - depth[:, :, :-1]).abs() > threshold
    edge[:, 1:, :] |= dv
    edge[:, :-1, :] |= dv
    edge[:, :, 1:] |= dh
    edge[:, :, :-1] |= dh
    return edge


def simulate_depth(
    n: int,
    seed: int,
    size: int = 32,
    min_range: float = 0.4,
    max_range: float = 1.0,
    noise_std: float = 0.003,
    edge_threshold: float = 0.02,
    edge_dropout: float = 0.8,
    speckle: float = 0.01,
    max_curl: float = 80.0,
    yaw_range: float = 40.0,
    pitch_range: float = 30.0,
) -> dict[str, torch.Tensor]:
    """Draw ``n`` poses with ``seed`` and simulate the sensor; see the module docstring.

    Returns a dict of tensors: ``h`` float32 ``[n, 5]``, ``depth`` the clean depth float32
    ``[n, size, size]`` (metres), ``x`` float32 ``[n, 1, size, size]`` (normalised, noisy, 0 where
    unobserved), ``mask`` bool ``[n, 1, size, size]`` (True = observed), and the hole causes, bool
    ``[n, size, size]``: ``out_of_range``, ``edge`` (a discontinuity, whether dropped or not),
    ``speckle`` (speckle drawn on in-range pixels; out-of-range pixels are lost anyway).
    """
    g = torch.Generator().manual_seed(int(seed))
    h = torch.rand(n, 5, generator=g, dtype=torch.float64)  # the pose, normalised
    curl = h[:, :3] * math.radians(max_curl)
    yaw = (2 * h[:, 3] - 1) * math.radians(yaw_range)
    pitch = (2 * h[:, 4] - 1) * math.radians(pitch_range)
    nuisance = torch.rand(n, 4, generator=g, dtype=torch.float64)
    scale = SIZE_RANGE[0] + (SIZE_RANGE[1] - SIZE_RANGE[0]) * nuisance[:, 0]
    offset = torch.stack(
        [
            (2 * nuisance[:, 1] - 1) * OFFSET,
            (2 * nuisance[:, 2] - 1) * OFFSET,
            DISTANCE[0] + (DISTANCE[1] - DISTANCE[0]) * nuisance[:, 3],
        ],
        dim=1,
    )
    depth = render_depth(curl, yaw, pitch, scale, offset, size=size)
    out_of_range = (depth < min_range) | (depth > max_range)
    edge = depth_edges(depth, edge_threshold)
    # Random draws only where they can matter, the in-range pixels (about a fifth of all pixels).
    seen = (~out_of_range).view(-1).nonzero().squeeze(1)
    u = torch.rand(len(seen), 2, generator=g)
    noise = torch.randn(len(seen), generator=g)
    dropped = edge.view(-1)[seen] & (u[:, 0] < edge_dropout)
    specks = u[:, 1] < speckle
    keep = ~(dropped | specks)
    d = depth.view(-1)[seen]
    value, mask, speckled = torch.zeros_like(depth), torch.zeros_like(edge), torch.zeros_like(edge)
    value.view(-1)[seen] = ((d + noise_std * noise - min_range) / (max_range - min_range)).clamp_(0, 1) * keep
    mask.view(-1)[seen] = keep
    speckled.view(-1)[seen] = specks
    return {
        "h": h.to(torch.float32),
        "depth": depth,
        "x": value[:, None].contiguous(),
        "mask": mask[:, None].contiguous(),
        "out_of_range": out_of_range,
        "edge": edge,
        "speckle": speckled,
    }


def _check_number(name: str, v: object, lo: float, hi: float, lo_open: bool = False) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not (lo < v if lo_open else lo <= v) or not v <= hi:
        interval = f"({lo}, {hi}]" if lo_open else f"[{lo}, {hi}]"
        raise ValueError(f"{name} must be a number in {interval}, got {v!r}")
    return float(v)


def load_depth(
    n_train: int = 20000,
    n_valid: int = 1000,
    n_test: int = 2000,
    size: int = 32,
    split_seed: int = 0,
    min_range: float = 0.4,
    max_range: float = 1.0,
    noise_std: float = 0.003,
    edge_threshold: float = 0.02,
    edge_dropout: float = 0.8,
    speckle: float = 0.01,
    max_curl: float = 80.0,
    yaw_range: float = 40.0,
    pitch_range: float = 30.0,
) -> DataSplits:
    """Render the synthetic hand depth set (see the module docstring).

    Args:
        n_train, n_valid, n_test: images per part (``n_valid=0``: ``valid=None``).
        size: image side in pixels (8 to 128).
        split_seed: seed of the data set, independent of any run seed.
        min_range, max_range: the camera's operating range, metres (0 <= min < max < 1.5, the wall).
        noise_std: Gaussian depth noise on observed pixels, metres.
        edge_threshold: depth jump to a 4-neighbour (metres) that marks a discontinuity pixel.
        edge_dropout: probability that a discontinuity pixel is unobserved.
        speckle: probability that any pixel is unobserved.
        max_curl, yaw_range, pitch_range: pose ranges, degrees.
    """
    for name, v, lo in (("n_train", n_train, 1), ("n_valid", n_valid, 0), ("n_test", n_test, 1), ("split_seed", split_seed, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 128:
        raise ValueError(f"size must be an integer in [8, 128], got {size!r}")
    opts = {
        "min_range": _check_number("min_range", min_range, 0.0, WALL),
        "max_range": _check_number("max_range", max_range, 0.0, WALL, lo_open=True),
        "noise_std": _check_number("noise_std", noise_std, 0.0, 0.1),
        "edge_threshold": _check_number("edge_threshold", edge_threshold, 0.0, 1.0, lo_open=True),
        "edge_dropout": _check_number("edge_dropout", edge_dropout, 0.0, 1.0),
        "speckle": _check_number("speckle", speckle, 0.0, 1.0),
        "max_curl": _check_number("max_curl", max_curl, 0.0, 90.0, lo_open=True),
        "yaw_range": _check_number("yaw_range", yaw_range, 0.0, 90.0, lo_open=True),
        "pitch_range": _check_number("pitch_range", pitch_range, 0.0, 90.0, lo_open=True),
    }
    if not opts["min_range"] < opts["max_range"] < WALL:
        raise ValueError(
            f"need min_range < max_range < {WALL} (the far wall must lie beyond the range); got "
            f"min_range={min_range}, max_range={max_range}"
        )
    seeds = np.random.SeedSequence(int(split_seed)).generate_state(3)
    parts = {}
    for part, n, seed in (("train", n_train, seeds[0]), ("valid", n_valid, seeds[1]), ("test", n_test, seeds[2])):
        if n == 0:
            parts[part] = None
            continue
        with torch_threads(1):
            sim = simulate_depth(int(n), int(seed), size=int(size), **opts)
        parts[part] = PartialDataset(x={"x": sim["x"]}, x_mask={"x": sim["mask"]}, y=sim["h"], name=f"depth-{part}")
    return DataSplits(
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        info={
            "source": "depth",
            "image_shape": [1, int(size), int(size)],
            "y_dim": len(Y_NAMES),
            "y_names": list(Y_NAMES),
            "y_ranges_deg": {
                "index_curl": [0.0, opts["max_curl"]],
                "middle_curl": [0.0, opts["max_curl"]],
                "ring_curl": [0.0, opts["max_curl"]],
                "yaw": [-opts["yaw_range"], opts["yaw_range"]],
                "pitch": [-opts["pitch_range"], opts["pitch_range"]],
            },
            "num_classes": None,
            "task_loss": {"kind": "l2"},
            "sensor": {k: opts[k] for k in ("min_range", "max_range", "noise_std", "edge_threshold", "edge_dropout", "speckle")},
            "split_seed": int(split_seed),
            "n_train": int(n_train),
            "n_valid": int(n_valid),
            "n_test": int(n_test),
            "model_defaults": {"likelihood": "depth:0.05"},  # a fixed variance: see the docstring of pogm.models.hybrid.hybrid
        },
    )
