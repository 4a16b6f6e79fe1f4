"""Figures of the Hybrid VAE (Tulyakov, Fitzgibbon and Nowozin), each written as a PNG: samples
(d, h) drawn together (the paper's Fig. 1), source-to-target interpolations through z (Fig. 4) and
depth images whose unobserved pixels have their own colour.

Labels ``h``. With a ``point_to_point`` task loss (``{"kind": "point_to_point", "num_points": P}``)
``h`` holds P 2-D landmarks laid out ``[x_1, y_1, ..., x_P, y_P]`` and normalised by the image size:
x is the column, y the row, and the centre of pixel (row i, column j) is at
``((j + 0.5) / W, (i + 0.5) / H)``; they are drawn as dots on the image, one colour per landmark
index. With any other task loss (``None``, ``{"kind": "l2"}`` for a light direction or a pose
vector) ``h`` is written under the image as rounded values with a bar glyph: one bar per
dimension, upwards for positive values, on a scale shared by the whole figure.

Rendering is pixel-exact: every image is enlarged by an integer ``scale`` (each pixel becomes a
``scale x scale`` block) and pasted into one canvas whose size is the PNG's, so the images are
shown without resampling and the overlays sit at known pixel positions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from pogm.plotting import pyplot

_DPI = 100
_LINE = 1.25  # height of a line of text, in em
_MAX_ADVANCE = 7  # widest character, in pixels (a font of 11 pixels)
_SEPARATOR = (0.55, 0.55, 0.55)  # the line between real images and reconstructions
_ZERO_LINE = (0.6, 0.6, 0.6)  # the zero line of the bar glyph


def landmark_pixels(h: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Normalised landmarks ``h`` [N, 2P] (``[x_1, y_1, ..., x_P, y_P]``, x the column and y the
    row, pixel (i, j) centred at ``((j + 0.5) / width, (i + 0.5) / height)``) as pixel coordinates
    [N, P, 2] of (column, row), in the convention of ``matplotlib``'s ``imshow``: the centre of
    pixel (i, j) is at (j, i), so the image spans [-0.5, width - 0.5] x [-0.5, height - 0.5] and
    ``u = x * width - 0.5``, ``v = y * height - 0.5``."""
    h = torch.as_tensor(h)
    if h.dim() != 2 or h.shape[1] % 2:
        raise ValueError(f"landmark_pixels expects h as [N, 2P] = [x_1, y_1, ..., x_P, y_P], got {tuple(h.shape)}")
    points = h.detach().float().cpu().reshape(len(h), -1, 2)
    return points * torch.tensor([float(width), float(height)]) - 0.5


def h_captions(h: torch.Tensor, y_names: Sequence[str] | None = None, per_line: int = 2) -> list[str]:
    """One caption per row of ``h`` [N, D]: ``name=value`` rounded to two decimals (``?`` for a
    missing value), ``per_line`` values to a line; names default to ``h1 .. hD``."""
    h = torch.as_tensor(h)
    if h.dim() != 2:
        raise ValueError(f"h_captions expects h as [N, D], got {tuple(h.shape)}")
    names = _names(y_names, h.shape[1])
    captions = []
    for row in h.detach().double().cpu().tolist():
        items = [f"{name}={_value(v)}" for name, v in zip(names, row, strict=True)]
        captions.append("\n".join(" ".join(items[i : i + per_line]) for i in range(0, len(items), per_line)))
    return captions


def draw_samples(
    images: torch.Tensor,
    h: torch.Tensor | None,
    path: str | Path,
    task_loss: Mapping | None = None,
    y_names: Sequence[str] | None = None,
    nrow: int | None = None,
    scale: int | None = None,
) -> Path:
    """Samples (d, h) ~ p(d, h) drawn together (the paper's Fig. 1): ``images`` [N, 1, H, W] (or 3
    channels; values in [0, 1], clamped) in a grid of ``nrow`` images per row (default
    ceil(sqrt(N))), each with its ``h`` [N, D]: landmark dots for a ``point_to_point`` task loss
    (P = ``num_points``, D = 2P), else a caption of the values (named by ``y_names``) over a bar
    glyph. ``scale`` (default: enough for ~100-pixel tiles) enlarges each pixel."""
    images = _images(images, "images", "[N, 1, H, W]")
    if h is not None:
        h = _labels(h, (len(images),), "h", "[N, D]")
    return _grid_figure(_grey_rgb(images), h, path, task_loss, y_names, nrow, scale, legend=None)


def draw_depth(
    images: torch.Tensor,
    masks: torch.Tensor,
    path: str | Path,
    h: torch.Tensor | None = None,
    task_loss: Mapping | None = None,
    y_names: Sequence[str] | None = None,
    nrow: int | None = None,
    scale: int | None = None,
    cmap: str = "viridis",
    unobserved: tuple[float, float, float] = (1.0, 0.0, 0.0),
    vmin: float | None = None,
    vmax: float | None = None,
    legend: bool = True,
) -> Path:
    """Depth images [N, 1, H, W] in a grid: observed pixels (``masks`` [N, 1, H, W], True or > 0.5
    = observed) through the colour map ``cmap`` over [vmin, vmax] (default: the range of the
    observed depths), unobserved pixels in the flat colour ``unobserved`` (red; whatever depth they
    hold, NaN included, is ignored). ``h``, ``task_loss``, ``y_names``, ``nrow`` and ``scale`` as in
    :func:`draw_samples`; ``legend`` adds a band on top with the unobserved colour and the depth
    scale."""
    images = _images(images, "images", "[N, 1, H, W]")
    if images.shape[1] != 1:
        raise ValueError(f"draw_depth expects depth images as [N, 1, H, W], got {tuple(images.shape)}")
    masks = torch.as_tensor(masks)
    if tuple(masks.shape) != tuple(images.shape):
        raise ValueError(f"masks must be [N, 1, H, W] = {tuple(images.shape)} like the images, got {tuple(masks.shape)}")
    observed = (masks if masks.dtype == torch.bool else masks.float() > 0.5).cpu()
    if h is not None:
        h = _labels(h, (len(images),), "h", "[N, D]")
    depth = images[:, 0].numpy()
    seen = observed[:, 0].numpy()
    values = depth[seen & np.isfinite(depth)]
    low = float(values.min()) if vmin is None and values.size else (0.0 if vmin is None else float(vmin))
    high = float(values.max()) if vmax is None and values.size else (1.0 if vmax is None else float(vmax))
    high = high if high > low else low + 1e-6
    colour_map = pyplot().get_cmap(cmap)
    normalised = np.clip((np.nan_to_num(depth, nan=low) - low) / (high - low), 0.0, 1.0)
    rgb = colour_map(normalised)[..., :3].astype(np.float32)
    rgb[~seen] = np.asarray(unobserved, dtype=np.float32)
    legend_spec = (colour_map, low, high, tuple(unobserved)) if legend else None
    return _grid_figure(rgb, h, path, task_loss, y_names, nrow, scale, legend=legend_spec)


def draw_interpolations(
    rows: torch.Tensor,
    path: str | Path,
    h_rows: torch.Tensor | None = None,
    task_loss: Mapping | None = None,
    row_labels: Sequence[str] | None = None,
    sources: torch.Tensor | None = None,
    targets: torch.Tensor | None = None,
    h_sources: torch.Tensor | None = None,
    h_targets: torch.Tensor | None = None,
    y_names: Sequence[str] | None = None,
    scale: int | None = None,
) -> Path:
    """Interpolations through z (the paper's Fig. 4): row r of ``rows`` [R, S, 1, H, W] runs from
    the reconstruction of a source (column 0) to that of a target (column S - 1), the columns
    between being the steps. ``sources`` / ``targets`` [R, 1, H, W], when given, are the real test
    images, shown as the first / last column and set apart by a wider gap with a grey line.
    Column titles name source, reconstruction, step k and target; ``row_labels`` (R strings, e.g.
    the model of each row) go on the left. ``h_rows`` [R, S, D] (and ``h_sources`` / ``h_targets``
    [R, D], e.g. the ground truth) are drawn on the images as in :func:`draw_samples`."""
    rows = torch.as_tensor(rows)
    if rows.dim() != 5 or rows.shape[2] not in (1, 3) or rows.shape[1] < 2 or rows.shape[0] < 1:
        raise ValueError(f"rows must be [R, S, 1, H, W] (R interpolations of S >= 2 steps), got {tuple(rows.shape)}")
    rows = rows.detach().float().cpu()
    r, s, c, height, width = rows.shape
    image_shape = f"[R, {c}, {height}, {width}] = [{r}, {c}, {height}, {width}]"
    ends = []
    for name, ending in (("sources", sources), ("targets", targets)):
        if ending is not None:
            ending = torch.as_tensor(ending)
            if tuple(ending.shape) != (r, c, height, width):
                raise ValueError(f"{name} must be {image_shape} like each step of rows, got {tuple(ending.shape)}")
            ending = ending.detach().float().cpu()
        ends.append(ending)
    sources, targets = ends
    if row_labels is not None and len(row_labels) != r:
        raise ValueError(f"row_labels must name the R = {r} rows, got {len(row_labels)} labels")
    if h_rows is not None:
        h_rows = _labels(h_rows, (r, s), "h_rows", "[R, S, D]")
    label_dim = h_rows.shape[-1] if h_rows is not None else None
    h_ends = []
    for name, h_end, image_end in (("h_sources", h_sources, sources), ("h_targets", h_targets, targets)):
        if h_end is not None:
            if image_end is None:
                raise ValueError(f"{name} needs the images it labels: pass {name[2:]} too")
            h_end = _labels(h_end, (r,), name, "[R, D]")
            if label_dim is not None and h_end.shape[-1] != label_dim:
                raise ValueError(f"{name} must be [R, D] with D = {label_dim} like h_rows, got {tuple(h_end.shape)}")
            label_dim = h_end.shape[-1]
        h_ends.append(h_end)
    h_sources, h_targets = h_ends

    # the columns: (image [R, H, W, 3], h [R, D] or None, title)
    steps = [f"step {k}" for k in range(1, s - 1)]
    titles = ["reconstruction", *steps, "reconstruction"]
    columns = [(_grey_rgb(rows[:, k]), None if h_rows is None else h_rows[:, k], titles[k]) for k in range(s)]
    if sources is not None:
        columns.insert(0, (_grey_rgb(sources), h_sources, "source"))
    if targets is not None:
        columns.append((_grey_rgb(targets), h_targets, "target"))
    all_h = [col_h for _, col_h, _ in columns if col_h is not None]

    scale = _scale(scale, width, captions=bool(all_h) and _num_points(task_loss, label_dim) is None)
    annotator = _Annotator(torch.cat(all_h) if all_h else None, task_loss, y_names, height, width, scale)
    tile_w, tile_h = width * scale, height * scale
    gap = max(2, tile_w // 32)
    separator = max(4 * gap, tile_w // 6)
    advance = _advance(len("reconstruction"), tile_w - 2 * gap)
    font = _font(advance)
    header = math.ceil(_LINE * font) + 2 * gap
    margin = gap + (max(len(str(label)) for label in row_labels) * advance + 2 * gap if row_labels else 0)
    lefts, x = [], margin
    for k in range(len(columns)):
        before_target = targets is not None and k == len(columns) - 1
        after_source = sources is not None and k == 1
        x += separator - gap if (before_target or after_source) else 0
        lefts.append(x)
        x += tile_w + gap
    cell = tile_h + annotator.band + gap
    tops = [header + i * cell for i in range(r)]
    canvas = np.ones((header + r * cell, x, 3), dtype=np.float32)
    separators = []
    if sources is not None:
        separators.append((lefts[0] + tile_w + lefts[1]) // 2)
    if targets is not None:
        separators.append((lefts[-2] + tile_w + lefts[-1]) // 2)
    for sx in separators:
        canvas[header - gap : header + r * cell - gap, sx - 1 : sx + 1] = _SEPARATOR
    for k, (images, col_h, _) in enumerate(columns):
        for i in range(r):
            _paste(canvas, images[i], tops[i], lefts[k], scale)
            if col_h is not None:
                annotator.paint(canvas, col_h[i], tops[i], lefts[k])

    def draw(ax):
        text = {"family": "monospace", "fontsize": font * 72 / _DPI}
        for k, (_, _, title) in enumerate(columns):
            ax.text(lefts[k] + tile_w / 2, header - gap, title, ha="center", va="bottom", **text)
        for i in range(r):
            if row_labels:
                ax.text(margin - 2 * gap, tops[i] + tile_h / 2, str(row_labels[i]), ha="right", va="center", **text)
            for k, (_, col_h, _) in enumerate(columns):
                if col_h is not None:
                    annotator.draw(ax, col_h[i], tops[i], lefts[k])

    return _render(canvas, draw, path)


# --------------------------------------------------------------------------- internals


def _images(images, name: str, expected: str) -> torch.Tensor:
    images = torch.as_tensor(images)
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] not in (1, 3) or len(images) == 0:
        raise ValueError(f"{name} must be {expected} (N >= 1 images of 1 or 3 channels), got {tuple(images.shape)}")
    return images.detach().float().cpu()


def _labels(h, leading: tuple[int, ...], name: str, expected: str) -> torch.Tensor:
    h = torch.as_tensor(h)
    if h.dim() != len(leading) + 1 or tuple(h.shape[:-1]) != leading:
        raise ValueError(f"{name} must be {expected} with {list(leading)} leading, like the images; got {tuple(h.shape)}")
    return h.detach().float().cpu()


def _names(y_names, dim: int) -> list[str]:
    if y_names is None:
        return [f"h{i + 1}" for i in range(dim)]
    if len(y_names) != dim:
        raise ValueError(f"y_names must name the D = {dim} dimensions of h, got {len(y_names)} names")
    return [str(name) for name in y_names]


def _value(v: float) -> str:
    if not math.isfinite(v):
        return "?"
    return f"{v:+.2f}" if abs(v) < 100 else f"{v:+.3g}"


def _num_points(task_loss, dim: int | None) -> int | None:
    """P when ``task_loss`` asks for landmarks (checking that h has 2P dimensions), else None."""
    if task_loss is None:
        return None
    if not isinstance(task_loss, Mapping) or "kind" not in task_loss:
        raise ValueError(f"task_loss must be a dict with a 'kind' such as 'point_to_point' or 'l2', got {task_loss!r}")
    if task_loss["kind"] != "point_to_point" or dim is None:
        return None
    points = task_loss.get("num_points")
    if points is None:
        if dim % 2:
            raise ValueError(
                f"point_to_point labels are [..., 2P] = [x_1, y_1, ..., x_P, y_P]; got h with an odd D = {dim}"
            )
        return dim // 2
    if dim != 2 * int(points):
        raise ValueError(
            f"point_to_point with num_points = {points} expects h as [..., {2 * int(points)}] "
            f"= [x_1, y_1, ..., x_P, y_P]; got D = {dim}"
        )
    return int(points)


def _landmark_colours(points: int) -> np.ndarray:
    """One colour per landmark index: tab10 / tab20 for few points, a rainbow for many."""
    plt = pyplot()
    if points <= 10:
        return np.asarray(plt.get_cmap("tab10").colors[:points])
    if points <= 20:
        return np.asarray(plt.get_cmap("tab20").colors[:points])
    return plt.get_cmap("gist_rainbow")(np.linspace(0, 1, points, endpoint=False))[:, :3]


def _advance(chars: int, width: float) -> int:
    """The widest whole-pixel character advance (Agg hints monospace advances to whole pixels)
    that fits ``chars`` characters into ``width`` pixels, between 3 and ``_MAX_ADVANCE``."""
    return int(min(_MAX_ADVANCE, max(3, width // max(chars, 1))))


def _font(advance: int) -> float:
    """The font size in pixels whose DejaVu Sans Mono advance (0.602 em) hints to ``advance`` pixels."""
    return (advance - 0.4) / 0.602


def _scale(scale: int | None, width: int, captions: bool) -> int:
    if scale is None:
        return max(1, math.ceil((128 if captions else 96) / width))
    if int(scale) < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    return int(scale)


def _grey_rgb(images: torch.Tensor) -> np.ndarray:
    """[N, 1 or 3, H, W] in [0, 1] -> [N, H, W, 3]."""
    rgb = images.clamp(0, 1).permute(0, 2, 3, 1).numpy().astype(np.float32)
    return np.repeat(rgb, 3, axis=-1) if rgb.shape[-1] == 1 else rgb


def _paste(canvas: np.ndarray, tile: np.ndarray, top: int, left: int, scale: int) -> None:
    block = tile.repeat(scale, axis=0).repeat(scale, axis=1)
    canvas[top : top + block.shape[0], left : left + block.shape[1]] = block


class _Annotator:
    """Draws one h on its tile: landmark dots, or a bar glyph (painted into the canvas) over a
    caption, in a band of ``band`` pixels under the tile."""

    def __init__(self, h_all, task_loss, y_names, height: int, width: int, scale: int):
        self.height, self.width, self.scale = height, width, scale
        self.band, self.points = 0, None
        if h_all is None:
            return
        dim = h_all.shape[-1]
        self.points = _num_points(task_loss, dim)
        tile_w = width * scale
        if self.points is not None:
            self.colours = _landmark_colours(self.points)
            diameter = float(np.clip(tile_w / 28, 3, 9))  # pixels
            self.size = (diameter * 72 / _DPI) ** 2  # points^2
            return
        self.names = _names(y_names, dim)
        finite = h_all[torch.isfinite(h_all)]
        self.limit = float(finite.abs().max()) if finite.numel() else 0.0
        self.limit = self.limit or 1.0
        self.per_line = 1 if dim == 1 else 2
        longest = max(len(line) for caption in h_captions(h_all, self.names, self.per_line) for line in caption.split("\n"))
        self.font = _font(_advance(longest, 0.88 * tile_w))
        self.bar = max(8, round(0.16 * height * scale))
        lines = math.ceil(dim / self.per_line)
        self.band = 2 + self.bar + 2 + math.ceil(lines * _LINE * self.font)

    def paint(self, canvas: np.ndarray, h: torch.Tensor, top: int, left: int) -> None:
        """The bar glyph: one bar per dimension from the zero line, up for positive values."""
        if self.points is not None:
            return
        tile_w, tile_h = self.width * self.scale, self.height * self.scale
        y0 = top + tile_h + 2 + self.bar // 2  # the zero line
        half = self.bar // 2 - 1
        canvas[y0, left : left + tile_w] = _ZERO_LINE
        slot = tile_w / len(h)
        colours = pyplot().get_cmap("tab10").colors
        for d, v in enumerate(h.tolist()):
            if not math.isfinite(v):
                continue
            x0 = left + round(slot * (d + 0.2))
            x1 = max(x0 + 1, left + round(slot * (d + 0.8)))
            length = round(abs(v) / self.limit * half)
            if length:
                rows = slice(y0 - length, y0) if v > 0 else slice(y0 + 1, y0 + 1 + length)
                canvas[rows, x0:x1] = colours[d % 10]

    def draw(self, ax, h: torch.Tensor, top: int, left: int) -> None:
        tile_w, tile_h = self.width * self.scale, self.height * self.scale
        if self.points is not None:
            from matplotlib.patches import Rectangle

            uv = (landmark_pixels(h.reshape(1, -1), self.height, self.width)[0].numpy() + 0.5) * self.scale
            dots = ax.scatter(left + uv[:, 0], top + uv[:, 1], s=self.size, c=self.colours, edgecolors="k", linewidths=0.3)
            dots.set_clip_path(Rectangle((left, top), tile_w, tile_h, transform=ax.transData))
            return
        caption = h_captions(h.reshape(1, -1), self.names, self.per_line)[0]
        ax.text(
            left + tile_w / 2,
            top + tile_h + 2 + self.bar + 2,
            caption,
            ha="center",
            va="top",
            family="monospace",
            fontsize=self.font * 72 / _DPI,
            linespacing=1.1,
        )


def _grid_figure(rgb, h, path, task_loss, y_names, nrow, scale, legend) -> Path:
    """Tiles ``rgb`` [N, H, W, 3] ``nrow`` to a row, each with its ``h``, and an optional depth legend."""
    n, height, width, _ = rgb.shape
    captions = h is not None and _num_points(task_loss, h.shape[-1]) is None
    scale = _scale(scale, width, captions)
    annotator = _Annotator(h, task_loss, y_names, height, width, scale)
    per_row = int(nrow) if nrow else math.ceil(math.sqrt(n))
    if per_row < 1:
        raise ValueError(f"nrow must be a positive number of images per row, got {nrow}")
    grid_rows = math.ceil(n / per_row)
    tile_w, tile_h = width * scale, height * scale
    gap = max(2, tile_w // 32)
    advance = min(_MAX_ADVANCE, max(4, tile_w // 16))
    font = _font(advance)
    header = 0
    canvas_w = gap + min(per_row, n) * (tile_w + gap)
    if legend is not None:
        swatch, strip = math.ceil(font), 64
        header = 2 * gap + math.ceil(_LINE * font)
        labels = [f"{legend[1]:.3g}", f"{legend[2]:.3g}"]
        legend_w = gap + swatch + (len(" unobserved") + 3 + len(labels[0]) + 1) * advance
        legend_w += strip + (1 + len(labels[1])) * advance + gap
        canvas_w = max(canvas_w, legend_w)
    cell = tile_h + annotator.band + gap
    canvas = np.ones((header + gap + grid_rows * cell, canvas_w, 3), dtype=np.float32)
    places = [(header + gap + (i // per_row) * cell, gap + (i % per_row) * (tile_w + gap)) for i in range(n)]
    for i, (top, left) in enumerate(places):
        _paste(canvas, rgb[i], top, left, scale)
        if h is not None:
            annotator.paint(canvas, h[i], top, left)

    texts = []
    if legend is not None:
        colour_map, _, _, unobserved = legend
        y = gap + (header - 2 * gap) // 2  # middle of the legend line
        x = gap
        canvas[y - swatch // 2 : y - swatch // 2 + swatch, x : x + swatch] = unobserved
        x += swatch
        texts.append((x, y, " unobserved", "left"))
        x += (len(" unobserved") + 3) * advance
        texts.append((x, y, labels[0], "left"))
        x += (len(labels[0]) + 1) * advance
        ramp = colour_map(np.linspace(0, 1, strip))[:, :3].astype(np.float32)
        canvas[y - swatch // 2 : y - swatch // 2 + swatch, x : x + strip] = ramp[None]
        x += strip
        texts.append((x, y, " " + labels[1], "left"))

    def draw(ax):
        for tx, ty, s, ha in texts:
            ax.text(tx, ty, s, ha=ha, va="center", family="monospace", fontsize=font * 72 / _DPI)
        if h is not None:
            for i, (top, left) in enumerate(places):
                annotator.draw(ax, h[i], top, left)

    return _render(canvas, draw, path)


def _render(canvas: np.ndarray, draw: Callable, path: str | Path) -> Path:
    """Show ``canvas`` [H, W, 3] pixel for pixel in an H x W PNG, with ``draw(ax)`` overlays in
    canvas pixel coordinates (x right, y down; pixel (i, j) covers [j, j + 1) x [i, i + 1))."""
    plt = pyplot()
    height, width = canvas.shape[:2]
    # a hair over the size: the Agg canvas truncates the figure's size in pixels
    fig = plt.figure(figsize=((width + 0.01) / _DPI, (height + 0.01) / _DPI), dpi=_DPI)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, extent=(0, width, height, 0), interpolation="nearest", aspect="auto")
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)
    ax.set_axis_off()
    draw(ax)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=_DPI, facecolor="white")
    plt.close(fig)
    return path


@torch.no_grad()
def hybrid_figures(model, data, out: Path, n: int = 36, pairs: int = 4, steps: int = 7) -> list[Path]:
    """Samples (d, h) drawn together (Tulyakov et al., Fig. 1) and interpolations between test
    images through z (Fig. 4), with landmarks drawn on the images where h holds points."""
    from pogm.data.dataset import evaluation_view

    model.eval()
    task, names = data.info.get("task_loss"), data.info.get("y_names")
    joint = model.sample_joint(n)
    if "observed" in joint:  # depth: the model also samples which pixels the sensor observes
        observed = torch.bernoulli(joint["observed"]).bool()
        paths = [draw_depth(joint["d"], observed, out / "samples-dh.png", h=joint["h"], task_loss=task, y_names=names)]
    else:
        paths = [draw_samples(joint["d"], joint["h"], out / "samples-dh.png", task_loss=task, y_names=names)]
    test = evaluation_view(data.test)
    count = min(pairs, len(test) // 2)
    if count:
        source, target = test.batch(torch.arange(count)).to(model.device), test.batch(torch.arange(count, 2 * count)).to(model.device)
        path = model.interpolate(source, target, steps)
        paths.append(draw_interpolations(
            path["d"], out / "interpolations.png", h_rows=path["h"], task_loss=task, y_names=names,
            sources=source.x["x"], targets=target.x["x"], h_sources=source.y, h_targets=target.y,
        ))
    return paths
