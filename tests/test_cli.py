"""End-to-end tests of the ``pogm`` command line: models, train, eval, sample and its errors.

Commands run in-process through ``pogm.cli.main`` (one thread, tiny networks, the bundled digits);
``pogm models`` also runs once through the installed console script.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from pogm.cli import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SMALL = ["--set", "hidden=[32]", "--set", "z_dim=4"]


def call(argv: list) -> tuple[int, str, str]:
    """Run ``pogm ARGV`` in-process as the console script would: (exit code, stdout, stderr).

    A ``SystemExit`` is turned into the exit code the interpreter would give it (a string code
    means: printed on stderr, status 1).
    """
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exit:
            if exit.code is None:
                code = 0
            elif isinstance(exit.code, int):
                code = exit.code
            else:
                print(exit.code, file=sys.stderr)
                code = 1
    return code, out.getvalue(), err.getvalue()


def read_png(path: Path) -> np.ndarray:
    import matplotlib.image

    assert path.read_bytes()[:8] == PNG_MAGIC
    return matplotlib.image.imread(path)


def grid_size(rows: int, cols: int, tile: int = 8, pad: int = 1) -> tuple[int, int]:
    """Pixel size (height, width) of a grid of ``tile``-pixel images with ``pad`` between them."""
    return rows * (tile + pad) + pad, cols * (tile + pad) + pad


# ---------------------------------------------------------------------------------------- runs shared by tests


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "vae"
    code, out, err = call(["train", "vae", "--data", "digits", "--epochs", 1, "--out", run, *SMALL])
    assert code == 0, err
    assert f"run directory: {run}" in out
    return run


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cli") / "m2"
    code, out, err = call(["train", "m2", "--data", "digits", "--labels", 5, "--epochs", 1, "--out", run, *SMALL])
    assert code == 0, err
    return run


# ---------------------------------------------------------------------------------------- pogm models


CAPABILITY = re.compile(
    r"\b(loss|classify|predict_labels|sample_joint|sample|encode|reconstruct|impute|interpolate|transfer_style|conditional_log_likelihood|log_likelihood|sparsity_pattern)\b"
)


def offers_by_model(text: str) -> dict[str, set[str]]:
    table = {}
    for line in text.splitlines()[1:]:  # after the header
        name = line.split()[0]
        table[name] = set(CAPABILITY.findall(line))
    return table


def check_models_table(text: str) -> None:
    from pogm.models import model_entry

    table = offers_by_model(text)
    assert sorted(table) == ["adgm", "ali", "avae", "cdraw", "cdraw-gan", "cvae", "cvae-gan", "draw", "draw-gan", "factvae", "fvae", "hali", "hali-ssl", "hvae", "jmvae-plus", "m1m2", "m2", "m2-gan", "oivae", "sdgm", "vae", "vaegan"]
    for name, offers in table.items():
        assert offers == {"loss", *model_entry(name).offers}, name  # the table shows what the registry offers
    # What each model is, whatever else it gains: only the semi-supervised models classify.
    assert "classify" not in table["vae"] | table["avae"]
    assert {"classify", "sample", "encode", "log_likelihood"} <= table["m2"] & table["m1m2"] & table["adgm"] & table["sdgm"]
    assert {"sample", "encode", "reconstruct", "impute", "log_likelihood"} <= table["vae"]
    assert {"sample", "reconstruct", "impute", "log_likelihood"} <= table["draw"] & table["cdraw"]


def test_models_console_script():
    script = Path(sys.executable).parent / "pogm"
    if not script.exists():
        script = Path(shutil.which("pogm") or "pogm")
    result = subprocess.run([str(script), "models"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0].split()
    assert header == ["model", "offers", "paper"]
    check_models_table(result.stdout)
    assert "Kingma" in result.stdout  # the papers column


def test_models_in_process():
    code, out, err = call(["models"])
    assert code == 0 and err == ""
    check_models_table(out)


# ---------------------------------------------------------------------------------------- VAE: train, eval, sample


def test_train_writes_a_run(vae_run):
    config = yaml.safe_load((vae_run / "config.yaml").read_text())
    assert config["model"] == "vae" and config["model_config"]["hidden"] == [32] and config["model_config"]["z_dim"] == 4
    assert config["train"]["epochs"] == 1
    records = [json.loads(line) for line in (vae_run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["epoch"] == 1 and math.isfinite(records[0]["train_loss"])
    for name in ("model.safetensors", "best.safetensors", "state.pt"):
        assert (vae_run / name).is_file()


def test_eval_vae_writes_eval_json(vae_run):
    code, out, err = call(["eval", vae_run, "--iw-samples", 20, "--limit", 50])
    assert code == 0, err
    results = json.loads((vae_run / "eval.json").read_text())
    assert {"split", "weights", "examples", "elbo", "iw_log_likelihood", "iw_samples", "iw_examples"} <= set(results)
    assert results["split"] == "test" and results["weights"] == "best"
    assert results["examples"] == 300 and results["iw_samples"] == 20 and results["iw_examples"] == 50
    assert math.isfinite(results["elbo"]) and math.isfinite(results["iw_log_likelihood"])
    assert "error" not in results  # a VAE does not classify
    assert "eval.json" in out
    assert json.loads(out[: out.rindex("}") + 1]) == results  # the printed results are the written ones


def test_eval_refines_the_proposal_of_a_grouped_model_and_refuses_one_without_it(tmp_path, vae_run):
    run = tmp_path / "factvae"
    code, _, err = call(["train", "factvae", "--data", "bars", "--set", "train.max_steps=30", "--out", run])
    assert code == 0, err
    code, _, err = call(["eval", run, "--iw-samples", 50, "--refine-steps", 30, "--limit", 40])
    assert code == 0, err
    results = json.loads((run / "eval.json").read_text())
    assert results["refine_steps"] == 30 and math.isfinite(results["refined_log_likelihood"])
    assert results["refined_log_likelihood"] > results["iw_log_likelihood"] - 0.5  # a proposal fitted to p(z | x) is not looser than q
    code, _, err = call(["eval", vae_run, "--iw-samples", 20, "--refine-steps", 10, "--limit", 10])
    assert code != 0 and "importance_parts" in err
    code, _, err = call(["eval", run, "--refine-steps", 10])
    assert code != 0 and "--iw-samples" in err


def test_sample_vae_writes_a_png_grid(vae_run):
    code, out, err = call(["sample", vae_run, "--n", 16])
    assert code == 0, err
    path = vae_run / "figures" / "samples.png"
    assert str(path) in out
    image = read_png(path)
    assert image.shape[:2] == grid_size(4, 4)  # 16 samples of 8x8 pixels, 4 x 4
    assert float(image[..., 0].std()) > 0  # not a blank picture


def test_sample_to_a_chosen_path(vae_run, tmp_path):
    path = tmp_path / "more" / "grid.png"
    code, _, err = call(["sample", vae_run, "--n", 6, "--out", path])
    assert code == 0, err
    assert read_png(path).shape[:2] == grid_size(2, 3)  # 3 per row (ceil sqrt 6), 2 rows


# ---------------------------------------------------------------------------------------- M2: train, eval, sample


def test_m2_run_keeps_five_labels_per_class(m2_run):
    config = yaml.safe_load((m2_run / "config.yaml").read_text())
    assert config["data"]["labels_per_class"] == 5
    index = json.loads((m2_run / "labelled_index.json").read_text())
    assert len(index) == len(set(index)) == 50


def test_eval_m2_reports_a_classification_error(m2_run):
    code, _, err = call(["eval", m2_run])
    assert code == 0, err
    results = json.loads((m2_run / "eval.json").read_text())
    assert 0.0 <= results["error"] <= 1.0
    assert math.isfinite(results["elbo"])
    assert "iw_log_likelihood" not in results  # --iw-samples defaults to 0 = skip


def test_eval_m2_gan_reports_the_error_of_each_classifier(tmp_path):
    # m2-gan classifies with its encoder, its discriminator or their ensemble: eval reports all three
    # (the model's evaluation_metrics), and "error" is the chosen one's.
    run = tmp_path / "m2-gan"
    code, _, err = call(["train", "m2-gan", "--data", "digits", "--labels", 5, "--epochs", 1, "--out", run, *SMALL, "--set", "discriminator_hidden=[16]"])
    assert code == 0, err
    code, _, err = call(["eval", run])
    assert code == 0, err
    results = json.loads((run / "eval.json").read_text())
    errors = {name: results[f"error_{name}"] for name in ("encoder", "discriminator", "ensemble")}
    assert all(0.0 <= e <= 1.0 for e in errors.values()) and results["error"] == pytest.approx(errors["encoder"])


def test_sample_m2_per_class(m2_run):
    code, out, err = call(["sample", m2_run, "--per-class"])
    assert code == 0, err
    path = m2_run / "figures" / "samples-per-class.png"
    assert str(path) in out
    # --n 64 over 10 classes: 6 per class, one row per class.
    assert read_png(path).shape[:2] == grid_size(10, 6)


def test_sample_m2_one_class(m2_run, tmp_path):
    code, _, err = call(["sample", m2_run, "--y", 3, "--n", 4, "--out", tmp_path / "three.png"])
    assert code == 0, err
    assert read_png(tmp_path / "three.png").shape[:2] == grid_size(2, 2)


# ---------------------------------------------------------------------------------------- resume


def test_train_twice_needs_resume(tmp_path):
    run = tmp_path / "run"
    args = ["train", "vae", "--epochs", 1, "--out", run, *SMALL, "--set", "train.progress=false"]
    assert call(args)[0] == 0
    code, _, err = call(args)
    assert code == 2 and "--resume" in err
    code, _, err = call(["train", "vae", "--out", run, "--resume", "--epochs", 2])
    assert code == 0, err
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]


# ---------------------------------------------------------------------------------------- errors


def error_cases(vae_run: Path, tmp_path: Path) -> dict[str, tuple[list, str, str]]:
    not_a_run = tmp_path / "not-a-run"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("hello")
    out = tmp_path / "out"
    return {
        "unknown model": (["train", "nonsense", "--out", out], "train", "nonsense"),
        "unknown data": (["train", "vae", "--data", "nodata", "--out", out], "train", "nodata"),
        "too many labels": (["train", "m2", "--labels", 1000, "--out", out], "train", "class"),
        "set without =": (["train", "vae", "--set", "train.lr", "--out", out], "train", "train.lr"),
        "unknown key": (["train", "vae", "--set", "nonsense=1", "--out", out], "train", "known keys"),
        "eval non-run": (["eval", not_a_run], "eval", "config.yaml"),
        "eval missing dir": (["eval", tmp_path / "missing"], "eval", "missing"),
        "vae has no classes": (["sample", vae_run, "--y", 3], "sample", "class"),
    }




@pytest.mark.parametrize(
    "case",
    [
        "unknown model",
        "unknown data",
        "too many labels",
        "set without =",
        "unknown key",
        "eval non-run",
        "eval missing dir",
        "vae has no classes",
    ],
)
def test_errors_exit_2_with_one_line(case, vae_run, tmp_path):
    argv, command, keyword = error_cases(vae_run, tmp_path)[case]
    code, out, err = call(argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"pogm {command}: error: ")
    assert keyword in lines[0]
    assert not (tmp_path / "out" / "config.yaml").exists()


def test_sample_with_a_class_on_a_vae_is_refused(vae_run, tmp_path):
    # What holds today whatever the exit code: a non-zero status, a clear message, no picture.
    target = tmp_path / "never.png"
    code, _, err = call(["sample", vae_run, "--y", 3, "--out", target])
    assert code != 0
    assert "no classes" in err
    assert not target.exists()
    code, _, err = call(["sample", vae_run, "--per-class", "--out", target])
    assert code != 0 and not target.exists()


def test_diverging_training_exits_2(tmp_path):
    code, _, err = call(["train", "vae", "--epochs", 3, "--out", tmp_path / "run", *SMALL, "--set", "train.lr=1e6", "--set", "train.progress=false"])
    assert code == 2
    assert "learning rate" in err and len(err.strip().splitlines()) == 1


def test_eval_of_a_corrupt_run_exits_2(vae_run, tmp_path):
    run = Path(shutil.copytree(vae_run, tmp_path / "run"))
    (run / "best.safetensors").write_bytes(b"\x00" * 100)
    code, _, err = call(["eval", run])
    assert code == 2
    assert "best.safetensors" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------------------------------- user .npz


def test_train_m2_on_a_user_npz(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((200, 16)).astype(np.float32)
    x[rng.integers(0, 200, 12), rng.integers(0, 16, 12)] = np.nan  # a few missing entries
    y = np.arange(200) % 2
    data = tmp_path / "mine.npz"
    np.savez(data, x=x, y=y)

    run = tmp_path / "run"
    code, out, err = call(["train", "m2", "--data", data, "--labels", 5, "--epochs", 1, "--out", run, *SMALL])
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["name"] == str(data)
    assert config["model_config"]["x_dim"] == 16 and config["model_config"]["num_classes"] == 2
    index = json.loads((run / "labelled_index.json").read_text())
    assert len(index) == 10
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(records) == 1
    for key in ("train_loss", "valid_elbo", "valid_error", "test_error"):
        assert math.isfinite(records[0][key]), key

    code, _, err = call(["eval", run])
    assert code == 0, err
    results = json.loads((run / "eval.json").read_text())
    assert 0.0 <= results["error"] <= 1.0 and math.isfinite(results["elbo"])


# ---------------------------------------------------------------------------------------- recipes and figures


def test_recipes_lists_every_packaged_recipe_with_its_model():
    from pogm.recipes import list_recipes

    code, out, err = call(["recipes"])
    assert code == 0, err
    names = list_recipes()
    assert {"adgm-mnist100", "adgm-mnist100-cpu", "sdgm-mnist100", "sdgm-mnist100-cpu", "avae-mnist", "avae2-mnist"} <= set(names)
    for name in names:
        line = next(line for line in out.splitlines() if line.startswith(name + " "))
        assert line.split()[1] in {"adgm", "sdgm", "avae", "m2", "m1m2", "vae"}
    code, out, _ = call(["train", "--help"])
    assert code == 0 and all(name in " ".join(out.split()) for name in names)


def test_train_from_a_packaged_recipe_takes_its_model_and_settings(tmp_path):
    run = tmp_path / "recipe"
    small = ["--set", "hidden=[16]", "--set", "a_dim=4", "--set", "z_dim=4", "--set", "train.max_steps=3", "--set", "train.precision=fp32", "--set", "train.cpu_budget_seconds=null"]
    code, out, err = call(["train", "--recipe", "sdgm-mnist100-cpu", "--data", "digits", "--out", run, *small])
    assert code == 0, err
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["model"] == "sdgm" and config["data"]["labels_per_class"] == 10
    assert config["model_config"]["batch_norm"] is True and config["model_config"]["hidden"] == [16]  # recipe, then --set
    assert config["train"]["lr"] == 5e-4 and config["train"]["lr_decay"] == 0.95 and config["train"]["max_steps"] == 3


def test_unknown_recipe_exits_2_naming_the_packaged_ones(tmp_path):
    code, _, err = call(["train", "--recipe", "no-such-recipe", "--out", tmp_path / "r"])
    assert code == 2 and "adgm-mnist100" in err and len(err.strip().splitlines()) == 1


def test_figures_of_a_moons_run_show_decision_regions_and_the_auxiliary_space(tmp_path):
    run = tmp_path / "moons"
    code, _, err = call(["train", "adgm", "--data", "moons", "--labels", 3, "--epochs", 1, "--out", run, "--set", "hidden=[16]", "--set", "a_dim=2", "--set", "z_dim=2"])
    assert code == 0, err
    assert yaml.safe_load((run / "config.yaml").read_text())["model_config"]["likelihood"].startswith("gaussian:")  # the source's hint
    code, out, err = call(["figures", run])
    assert code == 0, err
    for name in ("decision-regions.png", "auxiliary-latent-space.png"):
        image = read_png(run / "figures" / name)
        assert image.shape[0] > 100 and image[..., :3].std() > 0.05  # a real picture, not a blank page


# ---------------------------------------------------------------------------------------- CVAE and the GAN models


def _tiny(tmp_path_factory, name: str, model: str, *sets: str) -> Path:
    out = tmp_path_factory.mktemp(name) / "run"
    code, _, err = call(["train", model, "--data", "digits", "--epochs", 1, "--out", out, "--set", "train.max_steps=4", "--set", "hidden=[32]", "--set", "z_dim=4", *sets])
    assert code == 0, err
    return out


def test_cvae_report_draws_completions_and_eval_scores_the_missing_quadrants(tmp_path_factory):
    run = _tiny(tmp_path_factory, "cvae", "cvae", "--set", "condition=both")
    code, out, err = call(["report", run, "--weights", "latest"])
    assert code == 0, err
    for name in ("completions.png", "style-transfer.png", "samples-per-class.png"):
        assert float(read_png(run / "figures" / name)[..., 0].std()) > 0, name
    code, out, err = call(["eval", run, "--iw-samples", 5, "--limit", 20])
    assert code == 0, err
    completion = json.loads((run / "eval.json").read_text())["completion"]
    assert {"1 quadrant", "2 quadrants", "3 quadrants", "left half"} <= set(completion)
    one, three = completion["1 quadrant"], completion["3 quadrants"]
    assert one["missing_pixels_per_image"] == 3 * three["missing_pixels_per_image"] == 48  # 8x8 digits: 3 of 4 quadrants hidden, then 1
    assert one["nats_per_image"] < 0 and math.isfinite(three["nats_per_image"])


def test_vaegan_report_compares_its_samples_with_a_vae(tmp_path_factory, vae_run):
    run = _tiny(tmp_path_factory, "vaegan", "vaegan", "--set", "discriminator_hidden=[16]")
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["data"]["options"]["binarize"] is False  # the GAN models' grey levels are recorded
    code, out, err = call(["report", run, "--weights", "latest", "--compare", vae_run])
    assert code == 0, err
    assert {"samples.png", "reconstructions.png", "samples-compared.png"} <= {p.name for p in (run / "figures").iterdir()}
    code, _, err = call(["eval", run, "--iw-samples", 5])
    assert code != 0 and "no likelihood" in err


def test_draw_report_draws_the_canvas_sequence_and_cdraw_samples_a_class(tmp_path):
    runs = {}
    for model in ("draw", "cdraw"):
        runs[model] = tmp_path / model
        code, _, err = call(["train", model, "--data", "digits", "--epochs", 1, "--out", runs[model], "--set", "train.max_steps=3",
                             "--set", "steps=4", "--set", "lstm_units=16", "--set", "z_dim=4", "--set", "train.progress=false"])
        assert code == 0, err
        code, _, err = call(["report", runs[model], "--weights", "latest"])
        assert code == 0, err
        sequence = read_png(runs[model] / "figures" / "draw-sequence.png")
        assert float(sequence[..., 0].std()) > 0
    assert (runs["cdraw"] / "figures" / "samples-per-class.png").is_file()
    code, _, err = call(["sample", runs["cdraw"], "--y", 3, "--n", 4])
    assert code == 0, err
    code, _, err = call(["sample", runs["draw"], "--y", 3])
    assert code != 0 and "no classes to condition on" in err
    code, _, err = call(["eval", runs["draw"], "--iw-samples", 3, "--limit", 10])
    assert code == 0, err
    result = json.loads((runs["draw"] / "eval.json").read_text())
    assert result["iw_log_likelihood"] < 0 and result["elbo"] < 0


def test_hali_report_draws_the_hierarchy_and_ssl_hali_classifies(tmp_path):
    small = ["--set", "train.progress=false", "--set", "hidden=[16]", "--set", "z_dims=[6,3]", "--set", "discriminator_hidden=[16]", "--set", "discriminator_joint_hidden=[16]"]
    run = tmp_path / "hali"
    code, _, err = call(["train", "hali", "--data", "digits", "--epochs", 1, "--out", run, *small])
    assert code == 0, err
    code, _, err = call(["report", run, "--weights", "latest"])
    assert code == 0, err
    names = {p.name for p in (run / "figures").iterdir()}
    assert {"samples.png", "hierarchical-reconstructions.png", "inpainting.png", "traversal-z1.png", "traversal-z2.png", "innovation.png", "reconstruction-errors.png"} <= names
    assert float(read_png(run / "figures" / "inpainting.png")[..., 0].std()) > 0
    record = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()][-1]
    assert record["valid_reconstruction_l1_euclidean"] > 0 and record["valid_reconstruction_l2_discriminator"] > 0
    ssl = tmp_path / "hali-ssl"
    code, _, err = call(["train", "hali-ssl", "--data", "digits", "--labels", 5, "--epochs", 1, "--out", ssl, *small])
    assert code == 0, err
    record = [json.loads(line) for line in (ssl / "metrics.jsonl").read_text().splitlines()][-1]
    assert 0 <= record["test_error"] <= 1 and "train_supervised" in record
