"""``pogm report``: RUN/report.html is one self-contained page (header, config, training curves,
final metrics, every figure embedded), and semi-supervised models on image data get their figures.

One tiny M2 run on the bundled digits (two epochs, one thread) serves every test.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from pogm.cli import main
from pogm.evaluate.report import (
    flatten,
    format_value,
    metric_keys,
    training_curves,
    write_report,
)

DATA_URI = "data:image/png;base64,"


def call(argv: list) -> tuple[int, str, str]:
    """Run ``pogm ARGV`` in-process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


class Page(HTMLParser):
    """The attributes of every tag of a page, with the ``src`` of its images."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))

    @property
    def images(self) -> list[str]:
        return [attrs["src"] for tag, attrs in self.tags if tag == "img"]


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("report") / "m2"
    code, _, err = call(["train", "m2", "--data", "digits", "--labels", 5, "--epochs", 2, "--out", run,
                         "--set", "hidden=[32]", "--set", "z_dim=4", "--set", "train.progress=false"])
    assert code == 0, err
    (run / "eval.json").write_text(json.dumps({"note": "<b>not markup</b>", "per_class": list(range(40))}))
    return run


@pytest.fixture(scope="module")
def reported(m2_run) -> tuple[Path, str, str]:
    """(run directory, the page, what ``pogm report`` printed)."""
    code, out, err = call(["report", m2_run])
    assert code == 0, err
    return m2_run, (m2_run / "report.html").read_text(encoding="utf-8"), out


def test_report_prints_the_page_and_the_page_is_html5(reported):
    run, page, out = reported
    assert out.strip().splitlines()[-1] == f"wrote {run / 'report.html'}"
    assert page.lower().startswith("<!doctype html>")
    assert '<meta charset="utf-8">' in page and "<title>" in page and "</html>" in page


def test_every_image_is_an_embedded_png_of_a_written_figure(reported):
    run, page, _ = reported
    written = {p.read_bytes(): p.name for p in (run / "figures").glob("*.png")}
    shown = []
    for src in Page(page).images:
        assert src.startswith(DATA_URI)
        data = base64.b64decode(src[len(DATA_URI):], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()  # a valid PNG
            assert image.format == "PNG"
        assert data in written, "the page shows a PNG that is not one of RUN/figures"
        shown.append(written[data])
    report = json.loads((run / "report.json").read_text())
    assert {Path(p).name for p in report["figures"]} <= set(shown)  # every figure of the model is on the page
    assert {"training-curves.png", "validation-curves.png"} <= set(shown)


def test_page_needs_no_network(reported):
    _, page, _ = reported
    tags = Page(page).tags
    for tag, attrs in tags:
        for name in ("src", "href", "srcset", "data"):
            value = attrs.get(name) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, name, value)
    assert not any(tag in ("script", "link", "iframe") for tag, _ in tags)
    assert "@import" not in page and "url(" not in page


def test_page_names_the_run_and_shows_config_and_metrics(reported):
    run, page, _ = reported
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "m2"
    assert "<h1>m2 on digits, 5 labels per class</h1>" in page
    assert str(run.resolve()) in page and "best.safetensors" in page
    assert "num_classes: 10" in page  # the config, as text
    last = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    for key in ("train_loss", "valid_error", "valid_elbo"):
        assert f'<td>{key}</td><td class="value">{last[key]:.6g}</td>' in page
    # eval.json is shown, escaped, its long list abbreviated
    assert "&lt;b&gt;not markup&lt;/b&gt;" in page and "<b>not markup</b>" not in page
    assert format_value(list(range(40))) == "[0, 1, 2, 3, 4, 5, 6, 7, … (40 items)]"
    assert f'<td class="value">{format_value(list(range(40)))}</td>' in page


def test_m2_on_digits_gets_samples_per_class_reconstructions_and_completions(reported):
    run, _, _ = reported
    figures = run / "figures"
    with Image.open(figures / "samples-per-class.png") as image:
        # 10 classes of 6 samples each, 8x8 digits with 1 pixel between, each pixel drawn 4x4
        assert image.size == ((6 * 9 + 1) * 4, (10 * 9 + 1) * 4)
    for name in ("reconstructions.png", "completions.png"):
        with Image.open(figures / name) as image:
            assert len(np.unique(np.asarray(image.convert("L")))) > 2, name  # not blank


def test_training_curves_plot_terms_and_validation_not_bookkeeping():
    records = [
        {"step": 10, "epoch": 1, "lr": 1e-3, "train_cpu_seconds": 1.0, "best": True, "train_loss": 3.0,
         "train_loss/generator": 2.0, "kl": 1.0, "valid_elbo": -5.0, "test_error": 0.5},
        {"step": 20, "epoch": 2, "train_loss": 2.0, "train_supervised": float("nan"), "valid_error": 0.2},
    ]
    train, valid = metric_keys(records)
    assert train == ["train_loss", "train_loss/generator", "kl", "train_supervised"]
    assert valid == ["valid_elbo", "valid_error"]


def test_a_run_without_validation_records_gets_its_report(m2_run, tmp_path):
    run = tmp_path / "no-valid"
    shutil.copytree(m2_run, run)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    stripped = [{k: v for k, v in r.items() if not k.startswith("valid_")} for r in records]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stripped))
    shutil.rmtree(run / "figures", ignore_errors=True)
    report = write_report(run, weights="latest")
    assert [Path(p).name for p in report["curves"]] == ["training-curves.png"]
    assert not (run / "figures" / "validation-curves.png").exists()
    page = Path(report["html"]).read_text()
    assert "latest (model.safetensors)" in page
    (run / "metrics.jsonl").write_text("")
    assert training_curves(run) == []  # nothing to plot, nothing written, no error


def test_flatten_unfolds_nested_results():
    rows = dict(flatten({"split": "test", "conditions": [{"observed": ["core"], "hidden_groups": {"arm": {"rmse": 0.25}}}],
                         "column_norms": [[1.0, 0.0]], "missing": None}))
    assert rows == {"split": "test", "conditions[0].observed": "[core]", "conditions[0].hidden_groups.arm.rmse": "0.25",
                    "column_norms": "[[1, 0]]", "missing": "null"}


class Brightness(torch.nn.Module):
    """A stand-in model whose latent is an image's mean grey level and whose decoder paints it."""

    device = torch.device("cpu")

    def encode(self, batch):
        return batch.x["x"].reshape(len(batch), -1).mean(1, keepdim=True)  # [B, 1]

    def decode(self, z):
        return z.expand(-1, 64)  # [N, 64]: every pixel the latent


def test_latent_interpolations_decode_the_line_between_two_encodings(m2_run, tmp_path):
    from pogm.models.figures import latent_interpolations
    from pogm.plotting import display_scale
    from pogm.evaluate.metrics import evaluation_view
    from pogm.runs import load_run

    data = load_run(m2_run).data
    path = latent_interpolations(Brightness(), data, tmp_path / "interpolations.png", pairs=2, steps=5)
    grey = np.asarray(Image.open(path).convert("L"), dtype=np.float64) / 255  # [H', W']
    x = evaluation_view(data.test).x["x"][:4].reshape(4, -1)  # pairs (0, 2) and (1, 3)
    scale, cell = display_scale((1, 8, 8)), 9
    for row, (a, b) in enumerate([(0, 2), (1, 3)]):
        for step, t in enumerate(np.linspace(0, 1, 5)):
            top, left = (1 + row * cell + 4) * scale, (1 + (step + 1) * cell + 4) * scale  # centre of the tile
            expected = (1 - t) * x[a].mean().item() + t * x[b].mean().item()
            assert grey[top, left] == pytest.approx(expected, abs=0.01)


def test_a_vae_report_interpolates_between_test_images_through_its_decoder(tmp_path):
    """The VAE offers ``encode`` and ``decode``: its report draws interpolations, whose end
    columns decode the two images' own latent means (the reconstructions)."""
    from pogm.evaluate.figures import write_run_figures
    from pogm.runs import load_run
    from pogm.train import train

    run_dir = train("vae", data="digits", epochs=1, out=tmp_path / "vae", seed=0, overrides={"model": {"hidden": [32], "z_dim": 3}, "train": {"progress": False, "threads": 1}}, progress=False).dir
    run = load_run(run_dir)
    x = run.data.test.x["x"][:4]  # [4, 1, 8, 8]
    torch.testing.assert_close(run.model.decode(run.model.encode(x)).reshape(x.shape), run.model.reconstruct(x))
    names = {p.name for p in write_run_figures(run, tmp_path / "figures")}
    assert "interpolations.png" in names
