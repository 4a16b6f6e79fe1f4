"""``pogm report``: one self-contained HTML page per run, ``RUN/report.html``.

The page names the model, data, run directory and weights, shows the run's ``config.yaml``, the
training curves (`training_curves`: the training terms and the validation metrics of
``metrics.jsonl`` over steps), the final metrics (the last record of ``metrics.jsonl`` and the
contents of ``eval.json``, ``demo.json``, ``report.json``, ``impute.json`` where present) and every
figure the model offers (`pogm.evaluate.figures.write_run_figures`), each with a caption. Images are
embedded as base64 ``data:`` URIs and the CSS is inline, so the page needs no network and no other
file. `write_report` does all of it for ``pogm report`` and ``pogm demo``.
"""

from __future__ import annotations

import base64
import html
import json
import math
from pathlib import Path
from typing import Any

import torch

from pogm.plotting import pyplot

# metrics.jsonl keys that are bookkeeping, not quantities learnt (besides every "*_seconds").
BOOKKEEPING = frozenset({"step", "epoch", "lr", "best"})
RESULT_FILES = ("eval.json", "demo.json", "report.json", "impute.json")
CAPTIONS = {
    "training-curves.png": "Training terms over steps (one panel per term)",
    "validation-curves.png": "Validation metrics over steps (one panel per metric)",
    "samples.png": "Samples from the model",
    "samples-per-class.png": "Samples, one row per class",
    "samples-compared.png": "Samples of this run beside those of the compared runs (same seed)",
    "reconstructions.png": "Test images, each followed by its reconstruction",
    "completions.png": "Completions: test images, what the model is given (hidden pixels grey) and what it fills in",
    "interpolations.png": "Latent interpolations: each row goes from one test image (left) to another (right) through the latent space",
    "style-transfer.png": "Style transfer: each test digit's style decoded with every label",
    "draw-sequence.png": "DRAW: the canvas after each step, one row per sample",
    "hierarchical-reconstructions.png": "Test images and their reconstructions through each latent level",
    "inpainting.png": "Inpainting: centre-masked test images (mask grey) filled in from the top level down",
    "innovation.png": "Latent semantic innovation",
    "reconstruction-errors.png": "Reconstruction errors through each level over training",
    "decision-regions.png": "Decision regions of q(y|x) with the labelled (large) and unlabelled (small) training points",
    "auxiliary-latent-space.png": "The auxiliary latent space: E[a|x] of test examples, coloured by class",
    "sparsity-heatmap.png": "Sparsity pattern: column norms of each group's loading matrix (groups down, latent dimensions across)",
    "samples-dh.png": "Samples of the image d and its labels h drawn together",
}
STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.value { font-family: ui-monospace, Menlo, Consolas, monospace; }
tr:nth-child(even) td { background: #f7f7f7; }
dl.header { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.header dt { font-weight: 600; } dl.header dd { margin: 0; font-family: ui-monospace, Menlo, Consolas, monospace; }
pre { background: #f4f4f4; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
figure { margin: 1em 0 2em; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
img.pixels { image-rendering: pixelated; }
figcaption { font-size: 0.9em; color: #555; margin-top: 0.3em; }
"""


def is_bookkeeping(key: str) -> bool:
    """Whether a metrics key counts steps, time or the learning rate rather than measuring the model."""
    return key in BOOKKEEPING or key.endswith("_seconds")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def metric_keys(records: list[dict]) -> tuple[list[str], list[str]]:
    """``(training terms, validation metrics)`` among the numeric keys of the records, in first-seen
    order: validation metrics start with ``valid_``; held-out ``test_`` keys and bookkeeping are
    neither; every other numeric key (``train_loss``, ``train_loss/generator``, ``kl``, ...) is a
    training term."""
    keys: dict[str, None] = {}
    for record in records:
        keys.update((k, None) for k, v in record.items() if _is_number(v) and not is_bookkeeping(k))
    valid = [k for k in keys if k.startswith("valid_")]
    train = [k for k in keys if not k.startswith(("valid_", "test_"))]
    return train, valid


def _curve(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of ``key`` over the records that have a finite value of it (the record's
    index when it has no ``step``)."""
    steps, values = [], []
    for i, record in enumerate(records):
        value = record.get(key)
        if _is_number(value) and math.isfinite(value):
            steps.append(record.get("step", i))
            values.append(float(value))
    return steps, values


def plot_curves(records: list[dict], keys: list[str], path: Path, title: str, strip: str = "") -> Path | None:
    """Small multiples, one panel per key (each on its own scale) of its value over steps; None
    (and no file) when no key has a finite value."""
    curves = {k: _curve(records, k) for k in keys}
    curves = {k: c for k, c in curves.items() if c[1]}
    if not curves:
        return None
    plt = pyplot()
    columns = min(3, len(curves))
    rows = math.ceil(len(curves) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows), squeeze=False)
    for ax, (key, (steps, values)) in zip(axes.flat, curves.items()):
        ax.plot(steps, values, marker="o" if len(values) <= 30 else None, markersize=3, linewidth=1.2)
        ax.set_title(key[len(strip):] if strip and key.startswith(strip) else key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(curves):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=11)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def training_curves(run_dir: str | Path, out: str | Path | None = None) -> list[Path]:
    """``out/training-curves.png`` (training terms) and ``out/validation-curves.png`` (``valid_``
    metrics) from ``RUN/metrics.jsonl``, over steps; a figure with nothing to plot is skipped."""
    from pogm.checkpoint import read_metrics

    out = Path(out) if out else Path(run_dir) / "figures"
    records = read_metrics(Path(run_dir))
    train, valid = metric_keys(records)
    paths = [
        plot_curves(records, train, out / "training-curves.png", "training terms", strip="train_"),
        plot_curves(records, valid, out / "validation-curves.png", "validation metrics", strip="valid_"),
    ]
    return [p for p in paths if p is not None]


def format_value(value: Any, limit: int = 8) -> str:
    """A value as table text: floats to 6 significant digits, lists longer than ``limit``
    abbreviated to their first ``limit`` items and their length."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if math.isfinite(value) else str(value)
    if isinstance(value, (list, tuple)):
        shown = ", ".join(format_value(v, limit) for v in value[:limit])
        return f"[{shown}, … ({len(value)} items)]" if len(value) > limit else f"[{shown}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {format_value(v, limit)}" for k, v in value.items()) + "}"
    return "null" if value is None else str(value)


def flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``(dotted key, text)`` rows of nested JSON: dicts and lists of dicts unfold into their keys
    (``conditions[0].observed``), other values become `format_value` text."""
    if isinstance(value, dict):
        return [row for k, v in value.items() for row in flatten(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [row for i, v in enumerate(value) for row in flatten(v, f"{prefix}[{i}]")]
    return [(prefix or "value", format_value(value))]


def _table(rows: list[tuple[str, str]], header: tuple[str, str] = ("key", "value")) -> str:
    body = "".join(f'<tr><td>{html.escape(k)}</td><td class="value">{html.escape(v)}</td></tr>' for k, v in rows)
    return f"<table><thead><tr><th>{html.escape(header[0])}</th><th>{html.escape(header[1])}</th></tr></thead><tbody>{body}</tbody></table>"


def caption(path: Path) -> str:
    """A short description of a figure from its file name (``samples-per-class.png`` ->
    "Samples, one row per class"); unknown names become their words."""
    name = Path(path).name
    if name in CAPTIONS:
        return CAPTIONS[name]
    if name.startswith("traversal-z"):
        return f"Traversals of {name[len('traversal-'):-4]}: one coordinate per row, scaled from -3 to 3"
    if name.startswith("poses-from-"):
        return f"Poses completed from the {name[len('poses-from-'):-4].replace('+', ', ')} groups"
    words = Path(name).stem.replace("-", " ").replace("_", " ")
    return words[:1].upper() + words[1:]


def png_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of a PNG from its header."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _figure(path: Path, min_width: int = 360) -> str:
    """A ``<figure>`` with the PNG embedded as a base64 data URI and its caption; a small image
    grid is enlarged a whole number of times, its pixels kept sharp."""
    data = Path(path).read_bytes()
    width, _ = png_size(data)
    zoom = min(4, -(-min_width // max(width, 1)))  # ceil(min_width / width), at most 4
    size = f' width="{width * zoom}" class="pixels"' if zoom > 1 else ""
    text = html.escape(caption(path))
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    return (f'<figure id="{html.escape(Path(path).stem)}"><img src="{uri}"{size} alt="{text}">'
            f"<figcaption>{text} <code>({html.escape(Path(path).name)})</code></figcaption></figure>")


def _data_description(config: dict) -> str:
    data = config.get("data") or {}
    text = str(data.get("name", "?"))
    if data.get("labels_per_class"):  # per class for class labels, the total for continuous ones
        classes = (config.get("model_config") or {}).get("num_classes")
        text += f", {data['labels_per_class']} " + ("labels per class" if classes else "labelled examples")
    options = data.get("options") or {}
    if options:
        text += " (" + ", ".join(f"{k}={format_value(v)}" for k, v in options.items()) + ")"
    return text


def weights_file(run_dir: Path, weights: str) -> str:
    """The file `pogm.runs.load_run` reads for ``weights`` (best falls back to the latest)."""
    if weights == "best" and (run_dir / "best.safetensors").is_file():
        return "best.safetensors"
    return "model.safetensors"


def _header(run_dir: Path, config: dict, weights: str) -> str:
    rows = [
        ("model", str(config.get("model", "?"))),
        ("data", _data_description(config)),
        ("run directory", str(run_dir.resolve())),
        ("weights", f"{weights} ({weights_file(run_dir, weights)})"),
        ("seed", format_value(config.get("seed"))),
        ("pogm version", str(config.get("pogm_version", "?"))),
    ]
    items = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in rows)
    return f'<h1>{html.escape(str(config.get("model", "run")))} on {html.escape(_data_description(config))}</h1><dl class="header">{items}</dl>'


def _metrics_section(run_dir: Path) -> str:
    """The last ``metrics.jsonl`` record and each result file present, as key/value tables."""
    from pogm.checkpoint import read_metrics

    records = read_metrics(run_dir)
    parts = ["<h2>Final metrics</h2>"]
    if records:
        parts.append(f"<h3>last record of metrics.jsonl (step {html.escape(format_value(records[-1].get('step', len(records))))})</h3>")
        parts.append(_table(flatten(records[-1]), ("metric", "value")))
    else:
        parts.append("<p>no metrics.jsonl records</p>")
    for name in RESULT_FILES:
        path = run_dir / name
        if path.is_file():
            parts.append(f"<h3>{html.escape(name)}</h3>")
            try:
                parts.append(_table(flatten(json.loads(path.read_text()))))
            except json.JSONDecodeError as error:
                parts.append(f"<p>unreadable: {html.escape(str(error))}</p>")
    return "".join(parts)


def write_html_report(run_dir: str | Path, figures: list[Path], curves: list[Path] | None = None, weights: str = "best", out: str | Path | None = None) -> Path:
    """Write the self-contained page (default ``RUN/report.html``): header, config, training
    ``curves``, final metrics and the model's ``figures``, images embedded; returns its path."""
    import yaml

    run_dir = Path(run_dir)
    config_text = (run_dir / "config.yaml").read_text() if (run_dir / "config.yaml").is_file() else ""
    config = (yaml.safe_load(config_text) or {}) if config_text else {}
    curves = training_curves(run_dir) if curves is None else curves
    title = f"pogm report: {config.get('model', 'run')} ({run_dir.name})"
    body = [
        _header(run_dir, config, weights),
        "<h2>Training curves</h2>",
        "".join(_figure(p) for p in curves) or "<p>nothing to plot: metrics.jsonl has no training terms</p>",
        _metrics_section(run_dir),
        "<h2>Figures</h2>",
        "".join(_figure(p) for p in dict.fromkeys(Path(p) for p in figures)) or "<p>this run's model and data offer no figures</p>",
        "<h2>Config</h2>",
        f"<pre>{html.escape(config_text or 'no config.yaml')}</pre>",
    ]
    page = (f'<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
    path = Path(out) if out else run_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def compare_samples(run, others: list[str], out: Path, weights: str, seed: int) -> Path:
    """``out/samples-compared.png``: this run's samples beside those of the ``others`` runs (same data)."""
    from pogm.models.figures import samples_side_by_side
    from pogm.runs import load_run

    models = {f"{run.config['model']} ({Path(run.run_dir).name})": run.model}
    shape = run.data.train.shapes["x"]
    for other_dir in others:
        other = load_run(other_dir, weights=weights)
        other_shape = other.data.train.shapes["x"]
        if other_shape != shape or not other.model.offers("sample"):
            raise ValueError(f"--compare {other_dir}: its model must sample images of {shape} like this run's (it has {other_shape})")
        models[f"{other.config['model']} ({Path(other_dir).name})"] = other.model
    return samples_side_by_side(models, shape, out / "samples-compared.png", seed=seed)


def sparsity_summary(model) -> dict:
    """factVAE's column norms ``||Phi^(g)_{:,j}||`` per group, how many are zero and the latent sharing."""
    from pogm.models.factvae.figures import latent_sharing

    pattern = model.sparsity_pattern()  # [G, Z]
    return {
        "groups": list(model.config.group_names),
        "column_norms": pattern.tolist(),
        "zero_columns": int((pattern == 0).sum()),
        "latent_sharing": latent_sharing(pattern).tolist(),
    }


def write_report(run_dir: str | Path, weights: str = "best", seed: int = 0, compare: list[str] | None = None) -> dict:
    """Everything ``pogm report`` writes: the model's figures and the training curves under
    ``RUN/figures``, ``RUN/report.json`` (model, figures, factVAE's sparsity) and ``RUN/report.html``.
    Returns the report.json content plus ``"curves"`` and ``"html"`` (paths as strings)."""
    from pogm.evaluate.figures import write_run_figures
    from pogm.runs import load_run

    run_dir = Path(run_dir)
    run = load_run(run_dir, weights=weights)
    torch.manual_seed(seed)
    out = run_dir / "figures"
    figures = write_run_figures(run, out)
    if compare:
        figures.append(compare_samples(run, compare, out, weights, seed))
    report: dict = {"model": run.config["model"], "model_config": run.config.get("model_config"), "weights": weights, "figures": [str(p) for p in figures]}
    if run.model.offers("sparsity_pattern"):
        report.update(sparsity_summary(run.model))
    (run_dir / "report.json").write_text(json.dumps(report, indent=2))
    curves = training_curves(run_dir, out)
    html_path = write_html_report(run_dir, figures, curves, weights)
    return {**report, "curves": [str(p) for p in curves], "html": str(html_path)}


__all__ = [
    "caption", "compare_samples", "flatten", "format_value", "metric_keys", "plot_curves", "png_size", "sparsity_summary",
    "training_curves", "write_html_report", "write_report",
]
