"""Figures of ALI and HALI (Belghazi et al. 2018): reconstructions through each level (Fig. 1), their errors
over training (Fig. 3), inpainting (Fig. 4), coordinate traversals of z_2 and z_1 (Fig. 6; of a
spatial z_1, whole feature maps) and latent semantic innovation (Fig. 5). Each works for a vector
z_1 and for Table 4's feature-map z_1 alike; rows name each level's shape."""

from __future__ import annotations

from pathlib import Path

import torch

from pogm.data.batch import Batch
from pogm.plotting import HIDDEN_GREY, draw_rows
from pogm.plotting import pyplot, save_figure
from pogm.data.dataset import evaluation_view

SCALES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # section 6.2: multiply a coordinate by -3..3


def centre_mask(image_shape, fraction: float = 0.5) -> torch.Tensor:
    """Bool ``[C, H, W]``: False on a centred square covering ``fraction`` of each side (the paper's centre crop)."""
    C, H, W = image_shape
    mask = torch.ones(C, H, W, dtype=torch.bool)
    h, w = round(H * fraction), round(W * fraction)
    top, left = (H - h) // 2, (W - w) // 2
    mask[:, top:top + h, left:left + w] = False
    return mask


def shape_label(shape) -> str:
    """``(16, 14, 14)`` -> ``"16x14x14"``."""
    return "x".join(str(int(s)) for s in shape)


def _test_images(model, data, n: int) -> torch.Tensor:
    test = evaluation_view(data.test)
    return test.x["x"][:n].to(model.device)  # [n, C, H, W]


@torch.no_grad()
def hierarchical_reconstructions(model, data, path, n: int = 10) -> Path:
    """Test images and their reconstructions x^_l through each level l (section 3.2, Fig. 1)."""
    x = _test_images(model, data, n)
    levels = range(1, model.levels + 1)
    rows = [x] + [model.reconstruct(x, level=level) for level in levels]
    return draw_rows(rows, ["x"] + [f"x^ via z{level}\n[{shape_label(model.z_shapes[level - 1])}]" for level in levels], path)


@torch.no_grad()
def inpainting(model, data, path, n: int = 10) -> Path:
    """Centre-masked test images, inpainted from the top level down (section 6.1, Fig. 4)."""
    x = _test_images(model, data, n)
    mask = centre_mask(tuple(x.shape[1:])).to(x.device).expand(x.shape)
    batch = Batch(x={"x": torch.where(mask, x, torch.zeros((), dtype=x.dtype, device=x.device))}, x_mask={"x": mask})
    shown = torch.where(mask, x, torch.full((), HIDDEN_GREY, dtype=x.dtype, device=x.device))
    return draw_rows([x, shown, model.impute(batch)], ["truth", "given", "inpainted"], path)


@torch.no_grad()
def traversals(model, level: int, path, coordinates: int = 6, seed: int = 0) -> Path:
    """One row per coordinate of z_level (an entry of a vector, a feature map of a spatial z_1):
    the coordinate multiplied by -3..3 and decoded (section 6.2, Fig. 6)."""
    shape = tuple(model.config.image_shape)
    rows = []
    for coordinate in range(min(coordinates, model.coordinates(level))):
        torch.manual_seed(seed)  # the same prior draw in every row: only the coordinate changes
        images = model.traverse(level, coordinate, torch.tensor(SCALES), n=1)  # [S, 1, D]
        rows.append(images[:, 0].reshape(len(SCALES), *shape))
    spatial = len(model.z_shapes[level - 1]) == 3
    labels = [f"z{level}[{c}" + (", :, :]" if spatial else "]") for c in range(len(rows))]
    return draw_rows(rows, labels, path, column_titles=[f"x{s:g}" for s in SCALES])


@torch.no_grad()
def innovations(model, data, path, n: int = 6, alphas=SCALES, seed: int = 0) -> Path:
    """Latent semantic innovation (section 6.3, Fig. 5) on test images: the top-level coordinate
    whose encoded values vary most is scaled by each alpha, and the change it makes to z_{L-1} (the
    innovation tensor, a feature map for a spatial z_1) is carried into the image's own z_{L-1}.
    With the model's ``innovation="sample"`` every alpha sees the same draws (one seed), so a row
    changes with alpha only."""
    x = _test_images(model, data, 500)
    coordinate = int(model.encode(x, level=model.levels).var(0).argmax())
    x = x[:n]

    def innovated(alpha):
        torch.manual_seed(seed)
        return model.innovate(x, coordinate, alpha)  # [n, C, H, W]

    columns = [x] + [innovated(alpha) for alpha in alphas]
    rows = [torch.stack([column[i] for column in columns]) for i in range(n)]
    mode = model.config.innovation
    return draw_rows(rows, [f"image {i}" for i in range(n)], path, column_titles=[f"x ({mode})"] + [f"a={a:g}" for a in alphas])


def reconstruction_curves(run_dir, path) -> Path | None:
    """The validation reconstruction errors per level over training (Fig. 3): Euclidean and
    discriminator-embedded (eq. 8). None when the run logged none."""
    from pogm.checkpoint import read_metrics

    records = [r for r in read_metrics(run_dir) if "valid_reconstruction_l1_euclidean" in r]
    if not records:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    levels = sorted({int(k.split("_l")[1].split("_")[0]) for k in records[0] if k.startswith("valid_reconstruction_l")})
    for ax, kind, title in zip(axes, ("euclidean", "discriminator"), ("Euclidean ||x - x^_l||", "discriminator features d_c (eq. 8)")):
        for level in levels:
            ax.plot([r["step"] for r in records], [r[f"valid_reconstruction_l{level}_{kind}"] for r in records], marker="o", label=f"level {level}")
        ax.set_xlabel("step"), ax.set_title(title, fontsize=9), ax.legend(fontsize=8)
    return save_figure(fig, path)


def hali_figures(model, data, out, run_dir=None) -> list[Path]:
    """Every figure above that the model's levels allow, plus samples."""
    from pogm.plotting import save_image_grid

    model.eval()
    out = Path(out)
    shape = tuple(model.config.image_shape)
    paths = [
        save_image_grid(model.sample(64).reshape(64, *shape), out / "samples.png", scale=2),
        hierarchical_reconstructions(model, data, out / "hierarchical-reconstructions.png"),
        inpainting(model, data, out / "inpainting.png"),
    ]
    paths += [traversals(model, level, out / f"traversal-z{level}.png") for level in range(model.levels, 0, -1)]
    if model.levels >= 2:
        paths.append(innovations(model, data, out / "innovation.png"))
    if run_dir is not None:
        curves = reconstruction_curves(run_dir, out / "reconstruction-errors.png")
        paths += [curves] if curves else []
    return paths


__all__ = ["SCALES", "centre_mask", "shape_label", "hali_figures", "hierarchical_reconstructions", "innovations", "inpainting", "reconstruction_curves", "traversals"]
