"""Hybrid VAE figures read back from their PNGs: landmarks land where h puts them, unobserved depth
pixels get their colour exactly, interpolations have R rows by S (+2) columns, wrong shapes fail
with messages naming the expected shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib import colormaps
from matplotlib.image import imread
from scipy import ndimage

from pogm.models.hybrid.figures import (
    draw_depth,
    draw_interpolations,
    draw_samples,
    h_captions,
    landmark_pixels,
)

TAB10 = np.asarray(colormaps["tab10"].colors)
P2P = {"kind": "point_to_point"}


def _read(path) -> np.ndarray:
    return imread(path)[..., :3]


def _near(png: np.ndarray, colour, tol: float = 0.02) -> np.ndarray:
    return (np.abs(png - np.asarray(colour, dtype=np.float32)) <= tol).all(-1)


def _boxes(mask: np.ndarray, min_area: int = 200) -> list[tuple[int, int, int, int]]:
    """(top, left, bottom, right) of the connected regions of ``mask`` of at least ``min_area`` pixels,
    in reading order."""
    labels, _ = ndimage.label(mask)
    boxes = [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in ndimage.find_objects(labels)]
    areas = ndimage.sum(mask, labels, range(1, len(boxes) + 1))
    return sorted(b for b, a in zip(boxes, areas, strict=True) if a >= min_area)


def _centroid(mask: np.ndarray) -> np.ndarray:
    """(x, y) of the centre of the ``True`` pixels, pixel (i, j) covering [j, j + 1) x [i, i + 1)."""
    rows, cols = np.nonzero(mask)
    return np.array([cols.mean() + 0.5, rows.mean() + 0.5])


def _clusters(values, tol: int = 3) -> list[int]:
    """Distinct values of a list, merging those within ``tol``."""
    out = []
    for v in sorted(values):
        if not out or v - out[-1] > tol:
            out.append(v)
    return out


# --------------------------------------------------------------------------- landmarks


def test_landmark_pixels_maps_pixel_centres_to_integer_column_row():
    height, width = 4, 8  # not square, so x and y cannot be swapped unnoticed
    h = torch.tensor([[0.5 / width, 0.5 / height, (width - 0.5) / width, (height - 0.5) / height, 0.0, 1.0]])
    uv = landmark_pixels(h, height, width)
    assert uv.shape == (1, 3, 2)
    expected = torch.tensor([[[0.0, 0.0], [width - 1.0, height - 1.0], [-0.5, height - 0.5]]])
    assert torch.equal(uv, expected)
    with pytest.raises(ValueError, match=r"\[N, 2P\]"):
        landmark_pixels(torch.zeros(2, 3), height, width)


def test_landmark_dots_are_drawn_where_h_puts_them(tmp_path):
    size, scale = 32, 4
    images = torch.zeros(2, 1, size, size)  # black: the tiles are the dark regions of the PNG
    h = torch.tensor([[0.25, 0.75, 0.8, 0.2], [0.6, 0.4, 0.1, 0.9]])  # [x_1, y_1, x_2, y_2]
    task_loss = {"kind": "point_to_point", "num_points": 2}
    png = _read(draw_samples(images, h, tmp_path / "dots.png", task_loss=task_loss, nrow=2, scale=scale))
    tiles = _boxes(png.max(-1) < 0.05)
    assert len(tiles) == 2
    for (top, left, bottom, right), points in zip(tiles, h.reshape(2, 2, 2), strict=True):
        assert (bottom - top, right - left) == (size * scale, size * scale)
        for p, (x, y) in enumerate(points.tolist()):
            dot = _near(png, TAB10[p])  # one colour per landmark index, in every image
            dot[:top], dot[bottom:], dot[:, :left], dot[:, right:] = False, False, False, False
            assert dot.sum() >= 4, f"landmark {p} missing from its tile"
            expected = np.array([left + x * size * scale, top + y * size * scale])
            assert np.abs(_centroid(dot) - expected).max() < 1.5


def test_landmarks_outside_the_image_are_clipped_to_its_tile(tmp_path):
    images = torch.zeros(2, 1, 16, 16)
    h = torch.tensor([[1.5, 0.5], [0.5, -0.4]])  # right of the first image, above the second
    png = _read(draw_samples(images, h, tmp_path / "out.png", task_loss=P2P, nrow=2, scale=4))
    assert not _near(png, TAB10[0], tol=0.1).any()


def test_samples_grid_holds_64_images(tmp_path):
    images = torch.full((64, 1, 12, 12), 0.5)
    png = _read(draw_samples(images, torch.rand(64, 6), tmp_path / "64.png", task_loss=P2P))
    tiles = _boxes(_near(png, (0.5, 0.5, 0.5), tol=0.01))
    assert len(tiles) == 64
    assert len(_clusters([t[0] for t in tiles])) == 8 and len(_clusters([t[1] for t in tiles])) == 8


# --------------------------------------------------------------------------- other labels


def test_captions_round_and_name_the_values():
    h = torch.tensor([[0.123, -1.0, float("nan")]])
    assert h_captions(h) == ["h1=+0.12 h2=-1.00\nh3=?"]
    assert h_captions(h, ["yaw", "pitch", "roll"], per_line=3) == ["yaw=+0.12 pitch=-1.00 roll=?"]


def test_l2_labels_are_bars_under_the_image_up_for_positive(tmp_path):
    images = torch.zeros(1, 1, 16, 16)
    h = torch.tensor([[1.0, -0.5]])
    png = _read(draw_samples(images, h, tmp_path / "bars.png", task_loss={"kind": "l2"}, y_names=["x", "y"], scale=8))
    (_, _, bottom, right), *_ = _boxes(png.max(-1) < 0.05)
    up, down = _near(png, TAB10[0]), _near(png, TAB10[1])
    up_rows, down_rows = np.nonzero(up.any(1))[0], np.nonzero(down.any(1))[0]
    assert up_rows.min() >= bottom and down_rows.min() >= bottom  # under the image
    assert up_rows.max() < down_rows.min()  # the positive bar above the zero line, the negative one below
    assert len(up_rows) == pytest.approx(2 * len(down_rows), abs=1)  # lengths in proportion to |h|
    assert _centroid(up)[0] < _centroid(down)[0] < right  # dimension order left to right


def test_wrong_labels_fail_naming_the_expected_shape(tmp_path):
    images = torch.zeros(3, 1, 8, 8)
    with pytest.raises(ValueError, match=r"odd D = 5"):
        draw_samples(images, torch.zeros(3, 5), tmp_path / "x.png", task_loss=P2P)
    with pytest.raises(ValueError, match=r"\[\.\.\., 10\]"):
        draw_samples(images, torch.zeros(3, 6), tmp_path / "x.png", task_loss={"kind": "point_to_point", "num_points": 5})
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        draw_samples(images, torch.zeros(2, 4), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\[N, 1, H, W\]"):
        draw_samples(torch.zeros(3, 2, 8, 8), torch.zeros(3, 4), tmp_path / "x.png")
    with pytest.raises(ValueError, match="y_names"):
        draw_samples(images, torch.zeros(3, 2), tmp_path / "x.png", task_loss={"kind": "l2"}, y_names=["a"])
    with pytest.raises(ValueError, match="kind"):
        draw_samples(images, torch.zeros(3, 2), tmp_path / "x.png", task_loss="l2")
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- depth


def test_unobserved_depth_has_its_colour_exactly_at_the_masked_pixels(tmp_path):
    g = torch.Generator().manual_seed(0)
    n, size, scale = 3, 8, 5
    depth = torch.rand(n, 1, size, size, generator=g)
    observed = torch.rand(n, 1, size, size, generator=g) > 0.3
    depth[~observed] = float("nan")  # whatever an unobserved pixel holds is ignored
    png = _read(draw_depth(depth, observed, tmp_path / "depth.png", nrow=n, scale=scale, legend=False))
    red = _near(png, (1.0, 0.0, 0.0), tol=1e-3)
    assert red.sum() == int((~observed).sum()) * scale**2  # nowhere else, not even half a pixel
    tiles = _boxes(png.min(-1) < 0.99)  # the colour map never reaches white
    assert len(tiles) == n
    values = depth[observed]
    low, high = float(values.min()), float(values.max())
    centres = np.arange(size) * scale + scale // 2
    for (top, left, bottom, right), d, m in zip(tiles, depth[:, 0], observed[:, 0], strict=True):
        assert (bottom - top, right - left) == (size * scale, size * scale)
        pixels = png[top + centres][:, left + centres]  # [size, size, 3], one per depth pixel
        assert np.array_equal(red[top + centres][:, left + centres], ~m.numpy())
        expected = colormaps["viridis"](((d - low) / (high - low)).clamp(0, 1).numpy())[..., :3]
        assert np.abs(pixels - expected)[m.numpy()].max() < 2 / 255


def test_depth_legend_and_mask_shape(tmp_path):
    depth, observed = torch.rand(2, 1, 8, 8), torch.ones(2, 1, 8, 8, dtype=torch.bool)
    png = _read(draw_depth(depth, observed, tmp_path / "legend.png"))
    assert _near(png, (1.0, 0.0, 0.0), tol=1e-3).any()  # the legend's swatch: nothing is masked
    with pytest.raises(ValueError, match=r"masks must be \[N, 1, H, W\]"):
        draw_depth(depth, observed[:, :, :4], tmp_path / "x.png")


# --------------------------------------------------------------------------- interpolations


@pytest.mark.parametrize("ends", [False, True])
def test_interpolations_have_r_rows_by_s_plus_2_columns(tmp_path, ends):
    r, s, size = 2, 5, 16
    grey = (0.5, 0.5, 0.5)
    rows = torch.full((r, s, 1, size, size), 0.5)
    extra = {"sources": torch.full((r, 1, size, size), 0.5), "targets": torch.full((r, 1, size, size), 0.5)} if ends else {}
    h_rows = torch.full((r, s, 2), 0.5)  # one landmark in the middle of every step
    labels = ["F-VAE", "H-VAE"]
    path = draw_interpolations(rows, tmp_path / "i.png", h_rows=h_rows, task_loss=P2P, row_labels=labels, scale=6, **extra)
    png = _read(path)
    tiles = _boxes(_near(png, grey, tol=0.01))  # the grey images; text and dots are too small to count
    columns = s + 2 if ends else s
    assert len(tiles) == r * columns
    tops, lefts = _clusters([t[0] for t in tiles]), _clusters([t[1] for t in tiles])
    assert (len(tops), len(lefts)) == (r, columns)
    gaps = np.diff(lefts)
    if ends:  # the real source and target are set apart from the reconstructions
        assert gaps[0] > gaps[1] and gaps[-1] > gaps[1]
        steps = range(1, columns - 1)
    else:
        assert np.ptp(gaps) <= 1
        steps = range(columns)
    dots = _near(png, TAB10[0])
    for top in tops:
        for k in steps:
            left = lefts[k]
            inside = dots[top : top + size * 6, left : left + size * 6]
            assert inside.any(), "a step without its landmark"
            assert np.abs(_centroid(inside) - size * 6 / 2).max() < 1.5
    if ends:  # no h for the real images was given, so no dots on them
        assert not dots[:, lefts[0] : lefts[0] + size * 6].any()


def test_interpolations_reject_wrong_shapes(tmp_path):
    rows = torch.zeros(2, 4, 1, 8, 8)
    with pytest.raises(ValueError, match=r"\[R, S, 1, H, W\]"):
        draw_interpolations(rows[0], tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\[R, S, D\]"):
        draw_interpolations(rows, tmp_path / "x.png", h_rows=torch.zeros(2, 3, 4))
    with pytest.raises(ValueError, match=r"sources must be \[R, 1, 8, 8\]"):
        draw_interpolations(rows, tmp_path / "x.png", sources=torch.zeros(2, 1, 8, 9))
    with pytest.raises(ValueError, match=r"odd D = 3"):
        draw_interpolations(rows, tmp_path / "x.png", h_rows=torch.zeros(2, 4, 3), task_loss=P2P)
    with pytest.raises(ValueError, match="row_labels"):
        draw_interpolations(rows, tmp_path / "x.png", row_labels=["only one"])
