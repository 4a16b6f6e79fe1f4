"""A user's own data and runs: error rates on partly labelled splits, runs that cannot be mixed
up on resume, failed runs that do not block a rerun, clear errors for bad settings, and the
Python API that takes arrays and returns a `pogm.Run`.

Everything trains tiny networks on scikit-learn's 8x8 digits for a few steps, in one thread.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import pogm
from pogm.cli import main as cli_main
from pogm.evaluate.metrics import count_errors, evaluation_view
from pogm.models.semi_supervised.vae import VAE
from pogm import checkpoint

SMALL = ["--set", "hidden=[32]", "--set", "z_dim=4", "--set", "train.threads=1", "--set", "train.progress=false"]


@pytest.fixture(scope="module")
def digits_arrays():
    """Digits in [0, 1] as [N, 64] with class labels; the last 300 rows are the test split."""
    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.float64)
    return x[:-300], y[:-300], x[-300:], y[-300:]


@pytest.fixture(scope="module")
def half_labelled_test_npz(tmp_path_factory, digits_arrays):
    """Digits whose test split has half of its labels set to NaN."""
    x, y, x_test, y_test = digits_arrays
    y_test = y_test.copy()
    y_test[::2] = np.nan
    path = tmp_path_factory.mktemp("data") / "digits_half.npz"
    np.savez(path, x=x, y=y, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory, half_labelled_test_npz):
    out = tmp_path_factory.mktemp("runs") / "m2"
    argv = ["train", "m2", "--data", str(half_labelled_test_npz), "--labels", "5", "--out", str(out), "--set", "train.max_steps=30", *SMALL]
    assert cli_main(argv) == 0
    return out


# ---------------------------------------------------------------------------------------- error rates


def test_count_errors_scores_labelled_rows_only():
    predicted = torch.tensor([0, 0, 1, 2])
    y = torch.tensor([0, 0, 2, 2])  # rows 1 and 3 are unlabelled: their 0 / 2 is a placeholder
    y_mask = torch.tensor([True, False, True, False])
    assert count_errors(predicted, y, y_mask) == (1, 2)
    assert count_errors(predicted, y, None) == (1, 4)


def test_eval_reports_the_error_of_the_labelled_test_rows_alone(m2_run, capsys):
    """`pogm eval` on a test split with half its labels NaN gives exactly the error of the same
    weights on the labelled rows alone (it used to score the NaN rows against class 0)."""
    assert cli_main(["eval", str(m2_run)]) == 0
    result = json.loads((m2_run / "eval.json").read_text())
    run = pogm.load_run(m2_run)
    test = evaluation_view(run.data.test)
    labelled = test.y_mask.nonzero().squeeze(1)
    with torch.no_grad():
        predicted = run.model.classify(test.subset(labelled).batch(torch.arange(len(labelled)))).argmax(-1)
    expected = int((predicted != test.y[labelled]).sum()) / len(labelled)
    assert result["labelled_examples"] == len(labelled) == 150
    assert result["error"] == pytest.approx(expected, abs=1e-12)
    with torch.no_grad():
        every_row = run.model.classify(test.batch(torch.arange(len(test)))).argmax(-1)
    assert (every_row[~test.y_mask] != 0).any(), "the check needs unlabelled rows that a class-0 placeholder would count as errors"


def test_training_records_count_labelled_rows(m2_run):
    record = checkpoint.read_metrics(m2_run)[-1]
    assert record["test_labelled_rows"] == 150 and "test_error" in record


# ---------------------------------------------------------------------------------------- resume


def test_a_resume_that_names_another_model_data_or_setting_fails_with_one_line(m2_run, half_labelled_test_npz, capsys):
    before = (m2_run / "config.yaml").read_text(), checkpoint.read_metrics(m2_run)
    for argv, named in [
        (["train", "adgm", "--resume", "--out", str(m2_run)], "model 'adgm'"),
        (["train", "--resume", "--out", str(m2_run), "--data", "digits"], "data 'digits'"),
        (["train", "--resume", "--out", str(m2_run), "--labels", "3"], "labels 3"),
        (["train", "--resume", "--out", str(m2_run), "--set", "z_dim=8"], "z_dim 8"),
        (["train", "--resume", "--out", str(m2_run), "--seed", "4"], "seed 4"),
    ]:
        assert cli_main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err and "--resume continues it as it was" in err, err
    assert ((m2_run / "config.yaml").read_text(), checkpoint.read_metrics(m2_run)) == before


def test_a_resume_that_names_the_runs_own_settings_continues(tmp_path, half_labelled_test_npz):
    out = tmp_path / "run"
    assert cli_main(["train", "m2", "--data", str(half_labelled_test_npz), "--labels", "5", "--out", str(out), "--set", "train.max_steps=5", *SMALL]) == 0
    assert cli_main(["train", "m2", "--resume", "--out", str(out), "--data", str(half_labelled_test_npz), "--labels", "5", "--epochs", "1", *SMALL]) == 0
    assert checkpoint.read_metrics(out)[-1]["epoch"] == 1


# ---------------------------------------------------------------------------------------- failures and settings


def test_a_run_that_fails_before_its_first_checkpoint_does_not_block_a_rerun(tmp_path, monkeypatch):
    out = tmp_path / "run"

    def nan_loss(self, batch, kl_weight=1.0, step=0):
        return {"loss": torch.tensor(float("nan"), requires_grad=True)}

    argv = ["train", "vae", "--data", "digits", "--out", str(out), "--set", "train.max_steps=2", *SMALL]
    monkeypatch.setattr(VAE, "loss", nan_loss)
    assert cli_main(argv) == 2
    monkeypatch.undo()
    assert not out.exists()
    assert cli_main(argv) == 0


def test_a_wrongly_typed_setting_is_one_line(tmp_path, capsys):
    assert cli_main(["train", "vae", "--data", "digits", "--out", str(tmp_path / "r"), "--set", "z_dim=abc"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [err] and "z_dim must be an integer, got 'abc'" in err
    assert not (tmp_path / "r").exists()


def test_zero_labels_is_refused(tmp_path, capsys):
    assert cli_main(["train", "m2", "--data", "digits", "--labels", "0", "--out", str(tmp_path / "r")]) == 2
    assert "--labels 0" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_eval_names_the_weights_it_loaded(tmp_path):
    """A run without a selection score (no validation split) has no best weights: eval.json says
    it used the latest."""
    x, y = load_digits(return_X_y=True)
    path = tmp_path / "d.npz"
    np.savez(path, x=(x / 16.0).astype(np.float32), x_test=(x[:50] / 16.0).astype(np.float32))
    out = tmp_path / "run"
    assert cli_main(["train", "vae", "--data", str(path), "--out", str(out), "--set", "data.valid_fraction=0", "--set", "train.max_steps=2", *SMALL]) == 0
    assert not (out / "best.safetensors").exists()
    assert cli_main(["eval", str(out)]) == 0
    assert json.loads((out / "eval.json").read_text())["weights"] == "latest"


# ---------------------------------------------------------------------------------------- Python API


def test_train_takes_arrays_and_returns_a_run(tmp_path, digits_arrays):
    """The issue's example, as written: arrays with -1 for unlabelled rows, nested config."""
    x, y, xt, yt = digits_arrays
    y = y.astype(np.int64)
    y[np.random.default_rng(0).random(len(y)) < 0.5] = -1
    run = pogm.train("m2", data={"x": x, "y": y, "x_test": xt, "y_test": yt.astype(np.int64)}, labels=5, out=tmp_path / "run",
                     config={"model": {"hidden": [32], "z_dim": 4}, "train": {"max_steps": 50, "threads": 1}}, progress=False)
    assert isinstance(run, pogm.Run) and run.dir == tmp_path / "run"
    probabilities = run.model.classify(torch.as_tensor(xt[:20]))
    accuracy = (probabilities.argmax(-1).numpy() == yt[:20]).mean()
    assert math.isfinite(accuracy) and 0.0 <= accuracy <= 1.0
    assert run.weights == "best" and math.isfinite(run.metrics["test_error"]) and run.metrics["step"] == 50
    assert len(run.labelled_index) == 50 and (run.data.train.y[run.labelled_index] >= 0).all()
    # The arrays live with the run: it loads back and resumes like any other.
    again = pogm.load_run(run.dir)
    assert torch.equal(again.data.test.x["x"], run.data.test.x["x"])
    epochs = run.metrics["epoch"] + 1
    resumed = pogm.train(out=run.dir, resume=True, epochs=epochs, progress=False)
    assert resumed.metrics["epoch"] == epochs


def test_build_model_applies_the_data_settings_of_training():
    model = pogm.build_model("m2", "digits", config={"model": {"z_dim": 3}}, labels=10)
    assert model.config.z_dim == 3 and model.config.x_dim == 64 and model.config.num_classes == 10
    # the data set's sizes of eq. 9 (the data's, not the MNIST-100 defaults of 100 and 50,000)
    assert (model.config.num_labelled, model.config.num_unlabelled) == (100, 1197)
    assert model.objective_weights.classification == pytest.approx(0.1, rel=0.05)  # alpha / N = 0.1
    dotted = pogm.build_model("m2", "digits", config={"z_dim": 3, "train.lr": 1e-3}, labels=10)
    assert dotted.config == model.config
