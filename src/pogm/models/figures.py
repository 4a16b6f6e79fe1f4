"""Figures every image model can have, through the declared model interface
(`pogm.models.base.Model`): samples (one row per class where the model samples classes),
reconstructions, completions of a hidden half (``impute``), latent interpolations (``encode`` +
``decode``), and `standard_figures`, the figures of a model whose family draws none of its own."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from pogm.data.batch import Batch
from pogm.data.dataset import evaluation_view
from pogm.plotting import HIDDEN_GREY, display_scale, draw_rows, image_grid, image_shape_of, pyplot, save_figure, save_image_grid

@torch.no_grad()
def samples_side_by_side(models: dict[str, torch.nn.Module], image_shape, path: str | Path, n: int = 64, seed: int = 0) -> Path:
    """One panel of ``n`` samples per model, titled with its name (the poster's VAE against
    VAE-GAN figure). Every model samples under the same seed."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.4), squeeze=False)
    for ax, (name, model) in zip(axes[0], models.items()):
        model.eval()
        torch.manual_seed(seed)
        images = model.sample(n).reshape(n, *image_shape)
        ax.imshow(image_grid(images), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    return save_figure(fig, path)


@torch.no_grad()
def image_model_figures(model, data, out: Path, n: int = 64) -> list[Path]:
    """Samples (one row per class when the model samples classes) and reconstructions of test
    images beside the images themselves."""

    model.eval()
    shape = data.train.shapes["x"]
    num_classes = model.sampled_classes()
    if num_classes:
        per_row = max(1, n // num_classes)
        labels = torch.arange(num_classes, device=model.device).repeat_interleave(per_row)  # [K * per_row]
        images = model.sample(len(labels), labels).reshape(len(labels), *shape)  # [K * per_row, C, H, W]
        paths = [save_image_grid(images, Path(out) / "samples-per-class.png", nrow=per_row, scale=display_scale(shape))]
    else:
        paths = [save_image_grid(model.sample(n).reshape(n, *shape), Path(out) / "samples.png", scale=display_scale(shape))]
    if model.offers("reconstruct"):
        test = evaluation_view(data.test)
        batch = test.batch(torch.arange(min(16, len(test)))).to(model.device)
        pairs = torch.stack([batch.x["x"], model.reconstruct(batch)], 1).reshape(-1, *shape)  # truth, reconstruction, ...
        paths.append(save_image_grid(pairs, Path(out) / "reconstructions.png", nrow=8, scale=display_scale(shape)))
    return paths


@torch.no_grad()
def masked_completions(model, data, path: str | Path, n: int = 8) -> Path:
    """``n`` test images, the same with only their left half given (hidden pixels grey) and the
    model's ``impute`` of the hidden half (the observed pixels kept)."""
    from pogm.models.vae_gan.completion import left_half_mask

    model.eval()
    test = evaluation_view(data.test)
    batch = test.batch(torch.arange(min(n, len(test)))).to(model.device)
    x = batch.x["x"]  # [B, C, H, W]
    shown = batch.x_mask["x"].expand(x.shape) & left_half_mask(tuple(x.shape[1:])).to(x.device)  # [B, C, H, W]
    given = Batch(x={"x": torch.where(shown, x, torch.zeros((), dtype=x.dtype, device=x.device))}, x_mask={"x": shown}, y=batch.y, y_mask=batch.y_mask)
    grey = torch.where(shown, x, torch.full((), HIDDEN_GREY, dtype=x.dtype, device=x.device))  # hidden pixels drawn grey
    completed = model.impute(given).reshape(x.shape)  # [B, C, H, W]
    return draw_rows([x, grey, completed], ["truth", "given left half", "completed"], path)


def decodes_latents(model) -> bool:
    """Whether the model maps data to latents (``encode``) and latents back to images (``decode``)."""
    return model.offers("encode") and model.offers("decode")


@torch.no_grad()
def latent_interpolations(model, data, path: str | Path, pairs: int = 4, steps: int = 8) -> Path | None:
    """One row per pair of test images: the first image, ``steps`` decodings of
    ``(1 - t) z_a + t z_b`` for t from 0 to 1 (z the mean of q(z|x) from ``encode``), the second
    image. None when the test split has fewer than two images."""

    model.eval()
    test = evaluation_view(data.test)
    count = min(pairs, len(test) // 2)
    if not count:
        return None
    source = test.batch(torch.arange(count)).to(model.device)
    target = test.batch(torch.arange(count, 2 * count)).to(model.device)
    z_a, z_b = model.encode(source), model.encode(target)  # [P, Z] each
    t = torch.linspace(0, 1, steps, device=z_a.device).view(1, steps, 1)  # [1, S, 1]
    z = (1 - t) * z_a.unsqueeze(1) + t * z_b.unsqueeze(1)  # [P, S, Z]
    shape = tuple(source.x["x"].shape[1:])
    decoded = model.decode(z.reshape(count * steps, -1)).reshape(count, steps, *shape)  # [P, S, C, H, W]
    rows = torch.cat([source.x["x"].unsqueeze(1), decoded, target.x["x"].unsqueeze(1)], 1)  # [P, S + 2, C, H, W]
    return save_image_grid(rows.reshape(-1, *shape), path, nrow=steps + 2, scale=display_scale(shape))


def image_figures(model, data, out: Path) -> list[Path]:
    """Every image figure a single-group model offers: samples (per class), reconstructions,
    completions of the hidden half (``impute``) and latent interpolations (``encode`` + ``decode``)."""
    out = Path(out)
    paths = image_model_figures(model, data, out)
    if model.offers("impute"):
        paths.append(masked_completions(model, data, out / "completions.png"))
    if decodes_latents(model):
        paths.append(latent_interpolations(model, data, out / "interpolations.png"))
    return [p for p in paths if p is not None]


def standard_figures(model, data, out: Path, labelled_index: torch.Tensor | None = None) -> list[Path]:
    """The figures of a model whose family draws none of its own: `image_figures` for image data,
    decision regions of q(y|x) for 2-D inputs and the auxiliary latent space where the model has one."""
    from pogm.models.semi_supervised.figures import auxiliary_latent_space, decision_regions

    out = Path(out)
    paths = []
    if image_shape_of(data) is not None and model.offers("sample"):
        paths += image_figures(model, data, out)
    shape = data.train.shapes.get("x")
    if model.offers("classify") and shape is not None and math.prod(shape) == 2:
        paths.append(decision_regions(model, data.train, labelled_index, out / "decision-regions.png"))
    if model.offers("encode_auxiliary"):
        paths.append(auxiliary_latent_space(model, data.test, out / "auxiliary-latent-space.png"))
    return paths


def unique(paths: list[Path]) -> list[Path]:
    """``paths`` without repeats, in order (two figure makers may write the same file)."""
    return list(dict.fromkeys(Path(p) for p in paths))
