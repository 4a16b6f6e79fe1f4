"""Figures, each written as a PNG: image grids of samples, reconstructions, completions and latent
interpolations, decision regions, the auxiliary latent space, DRAW's canvas sequence, and
`write_run_figures`, which draws every figure a run's model and data allow."""

from __future__ import annotations

import inspect
import math
from pathlib import Path

import numpy as np
import torch


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile ``[N, C, H, W]`` (or ``[N, H, W]``) images in [0, 1] into one ``[H', W']`` or ``[H', W', 3]`` array."""
    images = images.detach().float().cpu()
    if images.dim() == 3:
        images = images.unsqueeze(1)
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"image_grid expects [N, 1 or 3, H, W] or [N, H, W], got {tuple(images.shape)}")
    n, c, h, w = images.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    ncol = math.ceil(n / nrow)
    grid = np.ones((c, ncol * (h + pad) + pad, nrow * (w + pad) + pad), dtype=np.float32)
    for i in range(n):
        r, q = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + q * (w + pad)
        grid[:, top : top + h, left : left + w] = images[i].clamp(0, 1).numpy()
    return grid[0] if c == 1 else grid.transpose(1, 2, 0)


def save_image_grid(images: torch.Tensor, path: str | Path, nrow: int | None = None, scale: int = 1) -> Path:
    """Write an image grid as a PNG (grey levels for one channel); ``scale`` enlarges each pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(images, nrow)
    if scale > 1:
        grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    plt.imsave(path, grid, cmap="gray" if grid.ndim == 2 else None, vmin=0.0, vmax=1.0)
    return path


def write_samples(run, path: Path, n: int = 64, y: int | None = None, per_class: bool = False, scale: int = 1) -> Path:
    """A PNG grid of samples; ``per_class`` gives one row per class.

    Raises:
        ValueError: the run's data are not images (`image_shape_of`), or ``y`` / ``per_class``
            for a model without classes.
    """
    shape = image_shape_of(run.data)
    if shape is None:
        raise ValueError(
            f"{run.config['model']} on this data draws no images: x has rows of shape {list(run.data.train.shapes.get('x', ()))}, "
            "not [C, H, W] with 1 or 3 channels; train on images (say their shape with --set data.image_shape=[C,H,W])"
        )
    num_classes = getattr(run.model.config, "num_classes", None)
    if (per_class or y is not None) and not num_classes:
        raise ValueError(f"{run.config['model']} has no classes to condition on; drop --y / --per-class")
    if y is not None and not 0 <= y < num_classes:
        raise ValueError(f"--y must be a class in [0, {num_classes}), got {y}")
    if per_class:
        per_row = max(1, n // num_classes)
        labels = torch.arange(num_classes).repeat_interleave(per_row)
        images = run.model.sample(len(labels), labels)
        return save_image_grid(images.reshape(len(labels), *shape), path, nrow=per_row, scale=scale)
    images = run.model.sample(n, y)
    return save_image_grid(images.reshape(n, *shape), path, scale=scale)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@torch.no_grad()
def decision_regions(model, train, labelled_index: torch.Tensor | None, path: str | Path, resolution: int = 200) -> Path:
    """The classifier's regions over a 2-D input space with the training points (the poster's
    Fig. 1C): colour = q(y|x) of class 1 (two classes) or the arg-max class, unlabelled points
    small, labelled points large and outlined."""
    plt = _pyplot()
    if math.prod(train.shapes["x"]) != 2:
        raise ValueError(f"decision regions need 2-D inputs; this data has {math.prod(train.shapes['x'])} features")
    x = train.batch(torch.arange(len(train))).x["x"].reshape(len(train), -1).float()  # [N, 2]
    if x.shape[1] != 2:
        raise ValueError(f"decision regions need 2-D inputs; this data has {x.shape[1]} features")
    low, high = x.min(0).values - 0.5, x.max(0).values + 0.5
    g0, g1 = torch.meshgrid(torch.linspace(low[0], high[0], resolution), torch.linspace(low[1], high[1], resolution), indexing="xy")
    grid = torch.stack([g0.reshape(-1), g1.reshape(-1)], -1).to(model.device)  # [R*R, 2]
    probs = torch.softmax(model.classify(grid), -1).cpu()  # [R*R, K]
    num_classes = probs.shape[1]
    fig, ax = plt.subplots(figsize=(5, 4.5))
    if num_classes == 2:
        ax.contourf(g0, g1, probs[:, 1].reshape(resolution, resolution), levels=20, cmap="coolwarm", alpha=0.6, vmin=0, vmax=1)
    else:
        ax.contourf(g0, g1, probs.argmax(-1).reshape(resolution, resolution), levels=num_classes, cmap="tab10", alpha=0.4)
    ax.scatter(x[:, 0], x[:, 1], s=3, c="k", alpha=0.4, label="unlabelled")
    if labelled_index is not None and train.y is not None:
        xl, yl = x[labelled_index], train.y[labelled_index]
        ax.scatter(xl[:, 0], xl[:, 1], s=90, c=yl, cmap="coolwarm" if num_classes == 2 else "tab10", edgecolors="k", linewidths=1.5, label="labelled")
    ax.set_title("decision regions of q(y|x)")
    ax.legend(loc="lower left", fontsize=8)
    return _save(fig, path)


@torch.no_grad()
def auxiliary_latent_space(model, data, path: str | Path, limit: int = 5000) -> Path:
    """Means of q(a|x) of labelled examples, coloured by class (the poster's Fig. 1D and Fig. 2):
    the two leading principal components when a has more than two dimensions."""
    plt = _pyplot()
    n = min(len(data), limit)
    x = data.x["x"][:n].to(model.device)
    a = model.encode_auxiliary(x).float().cpu()  # [N, A]
    if a.shape[1] > 2:
        centred = a - a.mean(0)
        _, _, v = torch.linalg.svd(centred, full_matrices=False)
        a, xlabel, ylabel = centred @ v[:2].T, "1st principal component", "2nd principal component"
    else:
        xlabel, ylabel = "a_1", "a_2" if a.shape[1] == 2 else ""
        a = a if a.shape[1] == 2 else torch.cat([a, torch.zeros_like(a)], 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    colours = data.y[:n] if data.y is not None else None
    points = ax.scatter(a[:, 0], a[:, 1], s=4, c=colours, cmap="tab10" if colours is not None and int(colours.max()) > 1 else "coolwarm")
    if colours is not None:
        fig.colorbar(points, ax=ax, label="class")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title("auxiliary latent space: E[a|x]")
    return _save(fig, path)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


@torch.no_grad()
def samples_side_by_side(models: dict[str, torch.nn.Module], image_shape, path: str | Path, n: int = 64, seed: int = 0) -> Path:
    """One panel of ``n`` samples per model, titled with its name (the poster's VAE against
    VAE-GAN figure). Every model samples under the same seed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(models), figsize=(3.2 * len(models), 3.4), squeeze=False)
    for ax, (name, model) in zip(axes[0], models.items()):
        model.eval()
        torch.manual_seed(seed)
        images = model.sample(n).reshape(n, *image_shape)
        ax.imshow(image_grid(images), cmap="gray", vmin=0.0, vmax=1.0)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, path)


def image_shape_of(data) -> tuple[int, ...] | None:
    """``(C, H, W)`` of the data's main group ``x`` when it holds images (one or three channels), else None."""
    shape = data.train.shapes.get("x")
    if shape is None or len(shape) != 3 or shape[0] not in (1, 3):
        return None
    return shape


def display_scale(image_shape) -> int:
    """How many screen pixels per image pixel a grid gets: 4 for 8x8 digits, 2 from 16x16 up."""
    return max(2, 32 // int(image_shape[-1]))


def sampled_classes(model) -> int:
    """How many classes ``model.sample(n, labels)`` draws from: 0 when its samples take no label
    (no ``num_classes``, unconditional DRAW, a CVAE conditioned on partial images)."""
    num_classes = int(getattr(model.config, "num_classes", 0) or 0)
    if getattr(model, "conditional", True) is False or getattr(model, "uses_label", True) is False:
        return 0
    parameters = inspect.signature(model.sample).parameters
    return num_classes if len(parameters) >= 2 else 0


@torch.no_grad()
def image_model_figures(model, data, out: Path, n: int = 64) -> list[Path]:
    """Samples (one row per class when the model samples classes) and reconstructions of test
    images beside the images themselves."""
    from pogm.evaluate.metrics import evaluation_view

    model.eval()
    shape = data.train.shapes["x"]
    num_classes = sampled_classes(model)
    if num_classes:
        per_row = max(1, n // num_classes)
        labels = torch.arange(num_classes, device=model.device).repeat_interleave(per_row)  # [K * per_row]
        images = model.sample(len(labels), labels).reshape(len(labels), *shape)  # [K * per_row, C, H, W]
        paths = [save_image_grid(images, Path(out) / "samples-per-class.png", nrow=per_row, scale=display_scale(shape))]
    else:
        paths = [save_image_grid(model.sample(n).reshape(n, *shape), Path(out) / "samples.png", scale=display_scale(shape))]
    if getattr(model, "reconstruct", None) is not None:
        test = evaluation_view(data.test)
        batch = test.batch(torch.arange(min(16, len(test)))).to(model.device)
        pairs = torch.stack([batch.x["x"], model.reconstruct(batch)], 1).reshape(-1, *shape)  # truth, reconstruction, ...
        paths.append(save_image_grid(pairs, Path(out) / "reconstructions.png", nrow=8, scale=display_scale(shape)))
    return paths


@torch.no_grad()
def masked_completions(model, data, path: str | Path, n: int = 8) -> Path:
    """``n`` test images, the same with only their left half given (hidden pixels grey) and the
    model's ``impute`` of the hidden half (the observed pixels kept)."""
    from pogm.data.batch import Batch
    from pogm.evaluate.completion import HIDDEN_GREY, draw_rows, left_half_mask
    from pogm.evaluate.metrics import evaluation_view

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
    return callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))


@torch.no_grad()
def latent_interpolations(model, data, path: str | Path, pairs: int = 4, steps: int = 8) -> Path | None:
    """One row per pair of test images: the first image, ``steps`` decodings of
    ``(1 - t) z_a + t z_b`` for t from 0 to 1 (z the mean of q(z|x) from ``encode``), the second
    image. None when the test split has fewer than two images."""
    from pogm.evaluate.metrics import evaluation_view

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
    if callable(getattr(model, "impute", None)):
        paths.append(masked_completions(model, data, out / "completions.png"))
    if decodes_latents(model):
        paths.append(latent_interpolations(model, data, out / "interpolations.png"))
    return [p for p in paths if p is not None]


@torch.no_grad()
def draw_sequence(model, image_shape, path: str | Path, n: int = 8, columns: int | None = None, y=None, seed: int = 0) -> Path:
    """The DRAW sequence: one row per sample, the canvas sigmoid(c_t) after every step t, left to
    right (or after ``columns`` evenly spaced steps, always ending with the last); conditional DRAW
    draws the classes in turn unless ``y`` is given."""
    model.eval()
    torch.manual_seed(seed)
    canvases = model.canvas_sequence(n, y)  # [T, n, D]
    T = canvases.shape[0]
    columns = T if columns is None else columns
    steps = sorted({round(i * (T - 1) / max(columns - 1, 1)) for i in range(min(columns, T))})
    frames = canvases[steps].transpose(0, 1).reshape(n * len(steps), *image_shape)  # row = sample, column = step
    plt = _pyplot()
    grid = image_grid(frames, nrow=len(steps))
    cell_inches = 0.55 if len(steps) <= 20 else 0.3
    fig, ax = plt.subplots(figsize=(cell_inches * len(steps) + 0.8, cell_inches * n + 0.6))
    ax.imshow(grid, cmap="gray", vmin=0.0, vmax=1.0)
    cell = image_shape[-1] + 1
    ticks = range(0, len(steps), 1 if len(steps) <= 20 else 4)  # every step labelled, or every fourth
    ax.set_xticks([cell * i + cell / 2 for i in ticks], [f"t={steps[i] + 1}" for i in ticks], fontsize=6, rotation=90)
    labels = model.sample_labels(n, y) if getattr(model, "conditional", False) else None
    if labels is not None:
        ax.set_yticks([cell * i + cell / 2 for i in range(n)], [f"y={int(k)}" for k in labels.argmax(-1)], fontsize=6)
    else:
        ax.set_yticks([])
    ax.set_title(f"canvas over {T} steps", fontsize=8)
    return _save(fig, path)


def draw_figures(model, data, out: Path) -> list[Path]:
    """DRAW's figures: the canvas sequence (``draw-sequence.png``, one sequence per class for
    conditional DRAW), samples (per class), reconstructions and completions."""
    shape = data.train.shapes["x"]
    num_classes = getattr(model.config, "num_classes", 0) if getattr(model, "conditional", False) else 0
    paths = [draw_sequence(model, shape, Path(out) / "draw-sequence.png", n=num_classes or 8)]
    return paths + image_figures(model, data, out)


def write_run_figures(run, out: Path | None = None) -> list[Path]:
    """Every figure the run's model and data allow, written to ``out`` (default ``RUN/figures``):
    the model family's own figures (factVAE, CVAE, DRAW, HALI, hybrid VAEs), else the image
    figures of `image_figures` for image data, decision regions for 2-D inputs and the
    auxiliary latent space where the model has one."""
    out = Path(out) if out else Path(run.run_dir) / "figures"
    model, data = run.model, run.data
    model.eval()
    if getattr(model, "sparsity_pattern", None) is not None:
        from pogm.evaluate.factvae_figures import factvae_figures

        return factvae_figures(model, data, out)
    if getattr(model, "conditional_log_likelihood", None) is not None:
        from pogm.evaluate.completion import cvae_figures

        return _unique(cvae_figures(model, data, out) + (image_model_figures(model, data, out) if hasattr(model, "parameter_groups") else []))
    if getattr(model, "canvas_sequence", None) is not None:
        return draw_figures(model, data, out)
    if getattr(model, "innovate", None) is not None:
        from pogm.evaluate.hali_figures import hali_figures

        return hali_figures(model, data, out, run.run_dir)
    if getattr(model, "sample_joint", None) is not None:
        return hybrid_figures(model, data, out)
    paths = []
    if image_shape_of(data) is not None and callable(getattr(model, "sample", None)):
        paths += image_figures(model, data, out)
    shape = data.train.shapes.get("x")
    if getattr(model, "classify", None) is not None and shape is not None and math.prod(shape) == 2:
        paths.append(decision_regions(model, data.train, run.labelled_index, out / "decision-regions.png"))
    if getattr(model, "encode_auxiliary", None) is not None:
        paths.append(auxiliary_latent_space(model, data.test, out / "auxiliary-latent-space.png"))
    return paths


def _unique(paths: list[Path]) -> list[Path]:
    """``paths`` without repeats, in order (two figure makers may write the same file)."""
    return list(dict.fromkeys(Path(p) for p in paths))


@torch.no_grad()
def hybrid_figures(model, data, out: Path, n: int = 36, pairs: int = 4, steps: int = 7) -> list[Path]:
    """Samples (d, h) drawn together (Tulyakov et al., Fig. 1) and interpolations between test
    images through z (Fig. 4), with landmarks drawn on the images where h holds points."""
    from pogm.evaluate.hybrid_figures import draw_depth, draw_interpolations, draw_samples
    from pogm.evaluate.metrics import evaluation_view

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
