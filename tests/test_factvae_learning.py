"""factVAE end to end on the bars of the paper's Fig. 2: with lambda = 1 the group lasso finds the
structure of the data (the two top quadrants share latent dimensions, as do the two bottom ones;
a top and a bottom quadrant share none), with lambda = 0 it does not; and the CLI imputes missing
quadrants and writes the heat map."""

from __future__ import annotations

import json

import pytest
import torch

import pogm
from pogm.cli import main
from pogm.models.factvae.figures import hide_groups, latent_sharing

# Small, fast settings; twelve latent dimensions for the eight independent rows of an 8 x 8 image.
# lambda per example (Algorithm 1 read literally): at the default data-set scale, lambda / N = 1 / 2000
# shrinks the columns by 1.5e-2 in all of 3,000 steps and cuts none (cross overlaps 0.82-0.89).
BARS = {
    "model": {"z_dim": 12, "group_input_dim": 4, "prox_lr": 1e-2, "prior_scale": "per-example"},
    "train": {"lr": 3e-3, "max_steps": 3000, "batch_size": 100, "eval_every": 10**6},
}
CROSS = [(0, 2), (1, 3), (0, 3), (1, 2)]  # a top and a bottom quadrant


@pytest.fixture(scope="module")
def bars_runs(tmp_path_factory):
    """lambda = 1 and lambda = 0 with Algorithm 1's shrinkage eta * lambda at every step (no warm-up
    scaling), lambda per example, Phi drawn with unit-variance entries."""
    runs = {}
    for sparsity in (1.0, 0.0):
        settings = {"model": {**BARS["model"], "sparsity": sparsity}, "train": dict(BARS["train"])}
        out = tmp_path_factory.mktemp("bars") / f"lambda{sparsity:g}"
        runs[sparsity] = pogm.train("factvae", data="bars", out=out, seed=0, overrides=settings, progress=False).dir
    return runs


@pytest.mark.slow
def test_group_lasso_recovers_the_bars_structure_and_lambda_zero_does_not(bars_runs):
    sharing = {}
    for sparsity, run_dir in bars_runs.items():
        pattern = pogm.load_run(run_dir, weights="latest").model.sparsity_pattern()  # [4, 12]: q0 q1 q2 q3
        sharing[sparsity] = latent_sharing(pattern)
        print(f"lambda={sparsity:g}: column norms\n{pattern}\nsharing\n{sharing[sparsity]}")
    sparse, dense = sharing[1.0], sharing[0.0]
    assert sparse[0, 1] > 0.8 and sparse[2, 3] > 0.8  # the two halves of a bar use the same dimensions
    assert max(sparse[a, b] for a, b in CROSS) < 0.3  # top and bottom rows are independent: little shared (measured 0.11-0.12)
    assert min(dense[a, b] for a, b in CROSS) > 0.3  # without the penalty the pattern is not there (measured 0.71-0.77)


@pytest.mark.slow
def test_completion_from_the_left_half_beats_the_mean_and_keeps_what_was_given(bars_runs, tmp_path):
    run = pogm.load_run(bars_runs[1.0], weights="latest")
    test = run.data.test.batch(torch.arange(200))
    given = hide_groups(test, ["q0", "q2"])
    filled = run.model.impute(given)
    assert torch.equal(filled["q0"], test.x["q0"]) and torch.equal(filled["q2"], test.x["q2"])
    for g in ("q1", "q3"):  # the right half is the left half's bars: the model must carry them over
        model_error = ((filled[g] - test.x[g]) ** 2).mean()
        mean_error = ((run.data.train.x[g].mean(0) - test.x[g]) ** 2).mean()
        assert model_error < 0.5 * mean_error

    assert main(["impute", str(bars_runs[1.0]), "--weights", "latest", "--observed", "q0,q2", "--limit", "100", "--out", str(tmp_path)]) == 0
    result = json.loads((bars_runs[1.0] / "impute.json").read_text())
    assert result["conditions"][0]["observed"] == ["q0", "q2"]
    assert set(result["conditions"][0]["hidden_groups"]) == {"q1", "q3"}
    assert (tmp_path / "completions.png").stat().st_size > 0
    assert main(["report", str(bars_runs[1.0]), "--weights", "latest"]) == 0
    report = json.loads((bars_runs[1.0] / "report.json").read_text())
    assert report["groups"] == ["q0", "q1", "q2", "q3"] and len(report["column_norms"][0]) == 12
    assert (bars_runs[1.0] / "figures" / "sparsity-heatmap.png").stat().st_size > 0


def test_impute_rejects_bad_requests(tmp_path, capsys):
    settings = {"model": {"z_dim": 3, "group_input_dim": 2}, "train": {"max_steps": 2, "eval_every": 10**6}}
    run_dir = pogm.train("factvae", data="bars", out=tmp_path / "tiny", overrides={**settings, "data": {"n_train": 200, "n_valid": 50, "n_test": 50}}, progress=False).dir
    assert main(["impute", str(run_dir), "--observed", "q0,q9"]) == 2
    assert "proper subset of the groups q0, q1, q2, q3" in capsys.readouterr().err
    assert main(["impute", str(run_dir), "--observed", "q0,q1,q2,q3"]) == 2
