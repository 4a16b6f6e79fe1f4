"""`pogm reproduce`: the table list, the verdict rule, seeds (per-seed rows, mean ± sd and n, the
budget split over the seeds, claims over seeds, reuse of finished seeds) on a fake table whose runs
are not trained, and a tiny test-only table on the bundled digits run end to end twice (the second
call reuses the runs without training them again)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
from functools import partial
from pathlib import Path

import pytest

from pogm import reproduce as rp
from pogm.reproduce import table as reproduce_table
from pogm.reproduce.evaluations import likelihoods
from pogm import checkpoint

TABLES = ["ssl-mnist100", "ssl-poster", "hybrid-vae", "factvae-mocap", "auxiliary-vae", "hali-mnist100"]
VERDICTS = {"reproduced", "close", "not reproduced"}


def progress(printed: str, state: str) -> int:
    """How many per-run progress lines of ``printed`` say ``state``."""
    return sum(1 for line in printed.splitlines() if line.startswith("[tiny-digits] ") and f": {state}," in line)


def run_cli(argv: list[str]) -> str:
    """``pogm reproduce ARGV`` through the subcommand's own parser; returns what it printed."""
    parser = argparse.ArgumentParser(prog="pogm")
    rp.add_reproduce_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["reproduce", *argv])
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert args.func(args) == 0
    return out.getvalue()


def test_list_names_every_table_with_a_description():
    printed = run_cli(["--list"])
    for name in TABLES:
        line = next(line for line in printed.splitlines() if line.startswith(name))
        assert rp.get_table(name).description in line
    assert rp.list_tables()[:6] == TABLES


def test_the_readme_gives_every_tables_default_budget():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in TABLES:
        line = next(line for line in readme.splitlines() if line.startswith(f"| `{name}` |"))
        budget = float(line.split("|")[2].split()[0])
        assert budget == rp.get_table(name).default_budget, (name, budget)


@pytest.mark.parametrize("name", TABLES)
def test_every_table_is_well_formed(name):
    table = rp.get_table(name)
    # at most 120 CPU-minutes a run: the longest goal a table answers (semi-supervised HALI within 120 CPU-minutes
    # of one thread), and at most 240 a seed (one seed's runs, two at a time, fit in two hours of a session on two cores)
    assert table.rows and table.runs and len(table.seeds) >= 3 and 5 <= table.default_budget / len(table.seeds) <= 240
    assert max(table.budgets(table.default_budget).values()) <= 120
    # the budget covers every seed: one seed's runs add up to the budget / the number of seeds
    assert sum(table.budgets(table.default_budget).values()) * len(table.seeds) == pytest.approx(table.default_budget)
    used = {run for row in table.rows for run in row.ours.runs}
    assert used == {run.name for run in table.runs}  # every run feeds a row


def test_verdict_rule():
    v = rp.verdict
    # M2's 11.97% +- 1.71: better, within the ±, within 25%, beyond
    assert v(0.10, 0.1197, "lower", 0.0171, error=True) == "reproduced"
    assert v(0.13, 0.1197, "lower", 0.0171, error=True) == "reproduced"
    assert v(0.14, 0.1197, "lower", 0.0171, error=True) == "close"
    assert v(0.16, 0.1197, "lower", 0.0171, error=True) == "not reproduced"
    # small error rates are close within 0.5 percentage points
    assert v(0.0140, 0.0096, "lower", 0.0002, error=True) == "close"
    assert v(0.0150, 0.0096, "lower", 0.0002, error=True) == "not reproduced"
    assert v(0.0140, 0.0096, "lower", 0.0002) == "not reproduced"  # not an error rate: 25% relative only
    # no ±: 5% relative; higher is better
    assert v(-80.0, -84.59, "higher") == "reproduced"
    assert v(-87.57, -84.59, "higher") == "reproduced"
    assert v(-100.0, -84.59, "higher") == "close"
    assert v(-110.0, -84.59, "higher") == "not reproduced"
    # log-likelihoods in nats: absolute bands of 1 and 5 nats, not relative ones
    assert v(-85.5, -84.59, "higher", nats=True) == "reproduced"
    assert v(-87.57, -84.59, "higher", nats=True) == "close"
    assert v(-90.0, -84.59, "higher", nats=True) == "not reproduced"
    # claims: 1 holds, 0 fails
    assert v(1.0, 1.0, "higher") == "reproduced"
    assert v(0.0, 1.0, "higher") == "not reproduced"
    with pytest.raises(ValueError, match="direction"):
        v(1.0, 1.0, "up")


def test_claims_and_means_read_the_runs_numbers():
    numbers = {"h": {"nll": -874.1}, "f": {"nll": -217.7}, "a": {"ll": 1.0}, "b": {"ll": 3.0}}
    claim = rp.Claim(rp.Metric("h", "nll"), rp.Metric("f", "nll"), "lower")
    assert claim(numbers) == 1.0 and claim.runs == ("h", "f")
    assert claim.detail(numbers) == "-874.1 < -217.7"
    mean = rp.Mean(("a", "b"), "ll")
    assert mean(numbers) == 2.0
    assert rp.Claim(mean, rp.Metric("b", "ll"), "higher")(numbers) == 0.0


def test_errors_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--list"):
        rp.get_table("no-such-table")
    with pytest.raises(ValueError, match="--list"):
        run_cli([])
    with pytest.raises(ValueError, match="1 or 2"):
        rp.reproduce("ssl-mnist100", out=tmp_path, jobs=3)
    with pytest.raises(ValueError, match="positive"):
        rp.reproduce("ssl-mnist100", out=tmp_path, budget=0)
    with pytest.raises(ValueError, match="does not train"):
        rp.Table("t", "d", "p", runs=(rp.RunSpec("a"),), rows=(rp.Row("r", "m", 0.1, rp.Metric("b", "test_error")),), default_budget=1)
    with pytest.raises(ValueError, match="each seed once"):
        rp.reproduce("ssl-mnist100", out=tmp_path, seeds=(0, 0))
    with pytest.raises(ValueError, match="one or more"):
        rp.reproduce("ssl-mnist100", out=tmp_path, seeds=())
    with pytest.raises(SystemExit):  # one seed or a list of them, not both
        with contextlib.redirect_stderr(io.StringIO()):
            run_cli(["ssl-mnist100", "--seed", "1", "--seeds", "2", "3"])
    assert not list(tmp_path.iterdir())  # nothing trained


# ----------------------------------------------------------------------------- seeds, on fake runs
# The runs of FAKE are not trained: `fake_train` writes the checkpoint and metrics record a run
# leaves when it has spent its budget, and `fake_numbers` gives each (run, seed) a test error of
# FAKE_ERRORS, so that every number of the report can be computed by hand.
FAKE_ERRORS = {("a", 0): 0.10, ("a", 1): 0.12, ("a", 2): 0.17, ("b", 0): 0.20, ("b", 1): 0.15, ("b", 2): 0.16}
TRAINED: list[tuple[str, float, int]] = []  # (run directory, budget CPU-minutes, seed) of each training
EVALUATED: list[str] = []  # run directories, as evaluated


def fake_train(model, out, budget_minutes, seed=0, *args, **kwargs) -> str:
    out = Path(out)
    TRAINED.append((out.name, budget_minutes, seed))
    out.mkdir(parents=True, exist_ok=True)
    (out / "state.pt").write_bytes(b"")
    record = {"step": 7, "epoch": 1, "train_cpu_seconds": budget_minutes * 60, "train_wall_seconds": budget_minutes * 60}
    with open(out / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    return "trained"


def fake_numbers(run_dir: Path) -> dict:
    """``{"test_error"}`` of FAKE_ERRORS for a run directory ``RUN-<minutes>min-seed<S>``."""
    EVALUATED.append(run_dir.name)
    run, seed = run_dir.name.split("-")[0], int(run_dir.name.rpartition("seed")[2])
    return {"test_error": FAKE_ERRORS.get((run, seed), 0.5)}


FAKE = rp.Table(
    name="fake-seeds",
    description="test only: two runs that are not trained, with made-up errors per seed",
    paper="none (made-up paper values)",
    runs=(rp.RunSpec("a", model="m2", evaluate=fake_numbers), rp.RunSpec("b", model="m2", evaluate=fake_numbers, share=3.0)),
    rows=(
        rp.Row("A", "error of a", 0.13, rp.Metric("a", "test_error"), paper_pm=0.01),
        rp.Row("A and B", "mean error of a and b", 0.15, rp.Mean(("a", "b"), "test_error")),
        rp.Row("A beats B", "a's error below b's", 1.0, rp.Claim(rp.Metric("a", "test_error"), rp.Metric("b", "test_error")), direction="higher", unit="claim"),
    ),
    default_budget=12.0,  # 4 for each of the 3 default seeds: 1 for a, 3 for b
)


@pytest.fixture
def fake_table(monkeypatch):
    monkeypatch.setitem(rp.TABLES, FAKE.name, FAKE)
    monkeypatch.setattr(reproduce_table, "train_best_start", fake_train)
    TRAINED.clear()
    EVALUATED.clear()
    return FAKE


def test_each_row_is_computed_per_seed_and_reported_as_mean_sd_and_n(tmp_path, fake_table):
    out = tmp_path / "reproduce"
    printed = run_cli([FAKE.name, "--out", str(out), "--jobs", "1"])
    report = json.loads((out / "fake-seeds.json").read_text())
    assert report["seeds"] == [0, 1, 2] and len(report["runs"]) == 6
    rows = {r["name"]: r for r in report["rows"]}

    a = rows["A"]  # a's errors: 0.10, 0.12, 0.17
    assert [(s["seed"], s["ours"]) for s in a["per_seed"]] == [(0, 0.10), (1, 0.12), (2, 0.17)]
    assert a["ours"] == pytest.approx(0.13) and a["n_seeds"] == 3
    assert a["ours_sd"] == pytest.approx(math.sqrt((0.03**2 + 0.01**2 + 0.04**2) / 2))  # sample sd: n - 1
    assert a["verdict"] == "reproduced"  # the mean equals the paper's 0.13

    both = rows["A and B"]  # per seed the mean of a and b: 0.15, 0.135, 0.165
    assert [s["ours"] for s in both["per_seed"]] == pytest.approx([0.15, 0.135, 0.165])
    assert both["ours"] == pytest.approx(0.15) and both["ours_sd"] == pytest.approx(0.015) and both["n_seeds"] == 3

    claim = rows["A beats B"]  # 0.10 < 0.20 and 0.12 < 0.15 hold, 0.17 < 0.16 does not
    assert [s["ours"] for s in claim["per_seed"]] == [1.0, 1.0, 0.0]
    assert claim["ours"] == pytest.approx(2 / 3) and claim["n_seeds"] == 3
    assert claim["verdict"] == "not reproduced"  # holds for 2 of 3 seeds: not every seed
    assert claim["run_length"]["runs"] == 6  # a and b of each seed

    markdown = (out / "fake-seeds.md").read_text()
    assert "| ours (mean ± sd, n) |" in markdown
    assert "| A | error of a (lower is better) | 13.00% ± 1.00% | 13.00% ± 3.61% (n=3) | 0: 10.00%; 1: 12.00%; 2: 17.00% |" in markdown
    assert "| holds for 2 of 3 seeds | 0: holds (0.1 < 0.2); 1: holds (0.12 < 0.15); 2: fails (0.17 ≥ 0.16) |" in markdown
    assert "| 0: 15.00% (0.15 ± 0.071 over 2 runs); 1: 13.50% (0.135 ± 0.021 over 2 runs); 2: 16.50%" in markdown
    assert printed.count("(seed 2): started,") == 2


def test_the_budget_covers_every_seed(tmp_path, fake_table):
    out = tmp_path / "reproduce"
    rp.reproduce(FAKE.name, out=out, budget=6.0, jobs=1, seeds=(0, 1))
    # 6 CPU-minutes for 2 seeds: 3 per seed, split 1:3 between a and b
    assert sorted(TRAINED) == [("a-0.75min-seed0", 0.75, 0), ("a-0.75min-seed1", 0.75, 1), ("b-2.25min-seed0", 2.25, 0), ("b-2.25min-seed1", 2.25, 1)]
    assert sum(minutes for _, minutes, _ in TRAINED) == pytest.approx(6.0)
    assert FAKE.budgets(6.0, 2) == {"a": 0.75, "b": 2.25}
    # Without --budget: the table's 12 for its 3 seeds, scaled to the seeds given, so that each run
    # keeps its default length (1 and 3 CPU-minutes) whatever the seeds.
    TRAINED.clear()
    report = rp.reproduce(FAKE.name, out=out, jobs=1, seeds=(0, 1, 2, 3))
    assert report["budget_cpu_minutes"] == pytest.approx(16.0) and report["budget_cpu_minutes_per_seed"] == pytest.approx(4.0)
    assert sorted(TRAINED)[:2] == [("a-1min-seed0", 1.0, 0), ("a-1min-seed1", 1.0, 1)] and len(TRAINED) == 8


def test_rows_and_scale_train_only_what_the_rows_read_for_longer_and_reuse_the_rest(tmp_path, fake_table):
    out = tmp_path / "reproduce"
    run_cli([FAKE.name, "--out", str(out), "--jobs", "1", "--seeds", "0", "1", "--rows", "A"])
    assert sorted(TRAINED) == [("a-1min-seed0", 1.0, 0), ("a-1min-seed1", 1.0, 1)]  # b is not read by row A; a keeps its length
    report = json.loads((out / "fake-seeds-rows-a.json").read_text())
    assert [r["name"] for r in report["rows"]] == ["A"] and report["budget_cpu_minutes"] == pytest.approx(2.0)
    assert not (out / "fake-seeds.json").exists()  # the whole table's report is not overwritten
    TRAINED.clear()
    run_cli([FAKE.name, "--out", str(out), "--jobs", "1", "--seeds", "0", "1", "--rows", "A beats B", "--scale", "2"])
    assert sorted(TRAINED) == [("a-2min-seed0", 2.0, 0), ("a-2min-seed1", 2.0, 1), ("b-6min-seed0", 6.0, 0), ("b-6min-seed1", 6.0, 1)]
    doubled = json.loads((out / "fake-seeds-rows-a-beats-b-x2.json").read_text())
    assert [r["name"] for r in doubled["rows"]] == ["A beats B"] and doubled["budget_cpu_minutes"] == pytest.approx(16.0)
    TRAINED.clear()
    run_cli([FAKE.name, "--out", str(out), "--jobs", "1", "--seeds", "0", "1", "--rows", "A"])
    assert TRAINED == []  # the first call's runs are reused
    run_cli([FAKE.name, "--out", str(out), "--jobs", "1", "--seeds", "0", "1", "--rows", "A beats B"])
    # another selection at the same scale writes a report of its own: the first one's stays
    assert [r["name"] for r in json.loads((out / "fake-seeds-rows-a.json").read_text())["rows"]] == ["A"]
    assert [r["name"] for r in json.loads((out / "fake-seeds-rows-a-beats-b.json").read_text())["rows"]] == ["A beats B"]
    with pytest.raises(ValueError, match="no row 'C'.*'A'; 'A and B'"):
        rp.reproduce(FAKE.name, out=out, rows=["C"])
    with pytest.raises(ValueError, match="--scale"):
        rp.reproduce(FAKE.name, out=out, scale=0)


def test_a_claim_holding_for_every_seed_is_reproduced_and_for_some_is_not():
    claim = next(row for row in FAKE.rows if row.unit == "claim")
    assert rp.row_verdict(claim, [1.0, 1.0, 1.0]) == "reproduced"
    assert rp.row_verdict(claim, [1.0, 1.0, 0.0]) == "not reproduced"
    assert rp.row_verdict(claim, [1.0] * 19 + [0.0]) == "not reproduced"  # 95% of the seeds is not every seed
    assert rp.row_verdict(claim, []) == "not run"
    assert claim.show_summary(claim.summary([1.0, 0.0, 1.0])) == "holds for 2 of 3 seeds"
    metric = FAKE.rows[0]
    assert rp.row_verdict(metric, [0.12, 0.14, math.nan]) == "reproduced"  # mean 0.13 of the 2 seeds with a number
    assert metric.summary([0.12, 0.14, math.nan]) == {"mean": pytest.approx(0.13), "sd": pytest.approx(math.sqrt(0.0002)), "n": 2}
    assert metric.summary([0.12]) == {"mean": 0.12, "sd": None, "n": 1}
    assert metric.show_summary(metric.summary([0.12])) == "12.00% (n=1)"


def test_seed_still_gives_one_seed(tmp_path, fake_table):
    out = tmp_path / "reproduce"
    run_cli([FAKE.name, "--out", str(out), "--jobs", "1", "--seed", "5"])
    report = json.loads((out / "fake-seeds.json").read_text())
    assert report["seeds"] == [5] and sorted(TRAINED) == [("a-1min-seed5", 1.0, 5), ("b-3min-seed5", 3.0, 5)]
    assert all(r["n_seeds"] == 1 and r["ours_sd"] is None and [s["seed"] for s in r["per_seed"]] == [5] for r in report["rows"])
    assert report["rows"][0]["ours"] == 0.5


def test_finished_seeds_are_reused_and_a_new_seed_trains_alone(tmp_path, fake_table):
    out = tmp_path / "reproduce"
    first = rp.reproduce(FAKE.name, out=out, jobs=1, seeds=(0, 1))
    assert len(TRAINED) == 4 and first["rows"][2]["verdict"] == "reproduced"  # the claim holds for seeds 0 and 1
    TRAINED.clear()
    EVALUATED.clear()
    printed = run_cli([FAKE.name, "--out", str(out), "--jobs", "1", "--seeds", "0", "1", "2"])
    assert sorted(TRAINED) == [("a-1min-seed2", 1.0, 2), ("b-3min-seed2", 3.0, 2)]  # seeds 0 and 1 were finished
    assert sorted(EVALUATED) == ["a-1min-seed2", "b-3min-seed2"]  # their numbers come from their records
    assert printed.count(": reused,") == 4 and printed.count(": finished,") == 2
    report = json.loads((out / "fake-seeds.json").read_text())
    assert [r["status"] for r in report["runs"]] == ["reused"] * 4 + ["trained"] * 2
    assert report["rows"][2]["ours"] == pytest.approx(2 / 3) and report["rows"][2]["verdict"] == "not reproduced"


SMALL = {"hidden": [32], "z_dim": 4}
TINY = rp.Table(
    name="tiny-digits",
    description="test only: M2 and a VAE on the bundled digits for a second or two each",
    paper="none (made-up paper values)",
    runs=(
        rp.RunSpec("m2", model="m2", source="digits", labels=10, model_options=SMALL),
        rp.RunSpec("vae", model="vae", source="digits", model_options=SMALL, evaluate=partial(likelihoods, iw_samples=10, test_examples=50)),
    ),
    rows=(
        rp.Row("M2", "test error, 100 labels", 0.95, rp.Metric("m2", "test_error"), paper_pm=0.01),
        rp.Row("VAE", "test log p(x), IW k=10", -1e4, rp.Metric("vae", "test_iw_log_likelihood"), direction="higher", unit="nats"),
    ),
    default_budget=0.04,  # CPU-minutes: 1.2 s per run for one seed, 0.6 s for each of two
    seeds=(0, 1),
)


def test_a_table_runs_end_to_end_and_reuses_its_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(rp.TABLES, TINY.name, TINY)
    out = tmp_path / "reproduce"
    printed = run_cli([TINY.name, "--out", str(out), "--jobs", "1"])
    assert progress(printed, "started") == 4 and progress(printed, "finished") == 4, printed

    report = json.loads((out / "tiny-digits.json").read_text())
    markdown = (out / "tiny-digits.md").read_text()
    assert [r["name"] for r in report["rows"]] == ["M2", "VAE"] and report["seeds"] == [0, 1]
    for row in report["rows"]:
        assert row["verdict"] == "reproduced"  # the made-up paper values are easy to beat
        assert row["run_length"]["runs"] == 2 and row["run_length"]["steps"][0] > 0 and row["run_length"]["train_cpu_minutes"] >= 0.02 * 0.99
        assert {"cpu", "cores", "torch"} <= set(row["machine"][0])
        assert row["computed_from"]
        assert [s["seed"] for s in row["per_seed"]] == [0, 1] and row["n_seeds"] == 2
        assert row["ours"] == pytest.approx(sum(s["ours"] for s in row["per_seed"]) / 2)
    assert 0 <= report["rows"][0]["ours"] <= 1 and report["rows"][0]["paper"] == 0.95
    assert "| M2 | test error, 100 labels (lower is better) | 95.00% ± 1.00% |" in markdown
    assert {(r["name"], r["seed"]) for r in report["runs"]} == {("m2", 0), ("m2", 1), ("vae", 0), ("vae", 1)}
    assert "torch" in markdown and "steps" in markdown and "CPU-min" in markdown and "reproduced" in markdown

    run_dirs = [tmp_path / r["run_dir"] for r in report["runs"]]
    assert all(d.parent == out / "runs" / "tiny-digits" for d in run_dirs)
    before = {d: ((d / "metrics.jsonl").read_text(), (d / "metrics.jsonl").stat().st_mtime_ns, (d / "reproduce.json").stat().st_mtime_ns) for d in run_dirs}

    printed = run_cli([TINY.name, "--out", str(out), "--jobs", "1"])
    assert progress(printed, "reused") == 4 and progress(printed, "started") == 0, printed
    for d in run_dirs:  # neither retrained nor evaluated again
        assert ((d / "metrics.jsonl").read_text(), (d / "metrics.jsonl").stat().st_mtime_ns, (d / "reproduce.json").stat().st_mtime_ns) == before[d]
    again = json.loads((out / "tiny-digits.json").read_text())
    assert [r["ours"] for r in again["rows"]] == [r["ours"] for r in report["rows"]]
    assert all(r["status"] == "reused" for r in again["runs"])


def test_a_run_of_other_settings_is_never_reused(tmp_path, monkeypatch):
    # A table whose settings changed must train its runs again, not report the old runs' numbers.
    run_dir = tmp_path / "m2-run"
    assert rp.train_for_budget("m2", run_dir, 0.01, source="digits", labels=10, model_options=SMALL) == "trained"
    assert rp.train_for_budget("m2", run_dir, 0.01, source="digits", labels=10, model_options=SMALL) == "reused"
    with pytest.raises(ValueError, match=r"model_config\.z_dim 4 \(asked 6\).*Delete that directory"):
        rp.train_for_budget("m2", run_dir, 0.01, source="digits", labels=10, model_options={**SMALL, "z_dim": 6})
    with pytest.raises(ValueError, match=r"train\.lr .*\(asked 0\.5\)"):
        rp.train_for_budget("m2", run_dir, 0.01, source="digits", labels=10, model_options=SMALL, train_options={"lr": 0.5})
    with pytest.raises(ValueError, match=r"seed 0 \(asked 1\)"):
        rp.train_for_budget("m2", run_dir, 0.01, seed=1, source="digits", labels=10, model_options=SMALL)

    # Through a table: a finished run of the old settings stops the table with the same message.
    table = dataclasses.replace(TINY, runs=TINY.runs[:1], rows=TINY.rows[:1])
    monkeypatch.setitem(rp.TABLES, table.name, table)
    out = tmp_path / "reproduce"
    run_cli([table.name, "--out", str(out), "--jobs", "1", "--budget", "0.02", "--seed", "0"])
    changed = dataclasses.replace(table, runs=(dataclasses.replace(table.runs[0], model_options={**SMALL, "hidden": [16]}),))
    monkeypatch.setitem(rp.TABLES, table.name, changed)
    with pytest.raises((ValueError, SystemExit)) as failure:
        run_cli([table.name, "--out", str(out), "--jobs", "1", "--budget", "0.02", "--seed", "0"])
    assert failure.type is ValueError or failure.value.code != 0


def test_a_run_of_an_older_recipe_is_never_reused(tmp_path):
    # A recipe edited after its runs trained (a new learning rate) must not let a table or a
    # benchmark report the old runs as the new recipe's.
    recipe = tmp_path / "tiny-m2.yaml"
    recipe.write_text("model_name: m2\nsource: digits\nmodel: {hidden: [32], z_dim: 4}\ntrain: {epochs: 5, lr: 1.0e-3, threads: 1}\ndata: {}\n")
    run_dir = tmp_path / "m2-run"
    assert rp.train_for_budget(None, run_dir, 0.01, source="digits", labels=10, recipe=recipe) == "trained"
    assert rp.train_for_budget(None, run_dir, 0.01, source="digits", labels=10, recipe=recipe) == "reused"
    recipe.write_text(recipe.read_text().replace("lr: 1.0e-3", "lr: 5.0e-4"))
    with pytest.raises(ValueError, match=r"train\.lr 0\.001 \(asked 0\.0005\).*Delete that directory"):
        rp.train_for_budget(None, run_dir, 0.01, source="digits", labels=10, recipe=recipe)
    recipe.write_text(recipe.read_text().replace("lr: 5.0e-4", "lr: 1.0e-3").replace("z_dim: 4", "z_dim: 6"))
    with pytest.raises(ValueError, match=r"model_config\.z_dim 4 \(asked 6\)"):
        rp.train_for_budget(None, run_dir, 0.01, source="digits", labels=10, recipe=recipe)
    # The settings a budgeted run sets itself (its length, threads) are not the recipe's to compare.
    recipe.write_text(recipe.read_text().replace("z_dim: 6", "z_dim: 4").replace("epochs: 5", "epochs: 7"))
    assert rp.train_for_budget(None, run_dir, 0.01, source="digits", labels=10, recipe=recipe) == "reused"


def test_an_interrupted_run_resumes(tmp_path, monkeypatch):
    table = dataclasses.replace(TINY, runs=TINY.runs[:1], rows=TINY.rows[:1])
    monkeypatch.setitem(rp.TABLES, table.name, table)
    out = tmp_path / "reproduce"
    run_dir = out / "runs" / "tiny-digits" / "m2-0.02min-seed0"
    # A run stopped half-way: checkpointed after 0.6 of the 1.2 CPU-seconds its config asks for.
    assert rp.train_for_budget("m2", run_dir, 0.01, source="digits", labels=10, model_options=SMALL) == "trained"
    config = checkpoint.read_config(run_dir)
    config["train"]["cpu_budget_seconds"] = 1.2
    checkpoint.write_config(run_dir, config)
    assert not rp.finished(run_dir, 1.2)
    before = (run_dir / "metrics.jsonl").read_text()

    printed = run_cli([table.name, "--out", str(out), "--jobs", "1", "--budget", "0.02", "--seed", "0"])
    assert progress(printed, "resumed") == 1 and progress(printed, "finished") == 1, printed
    after = (run_dir / "metrics.jsonl").read_text()
    assert after.startswith(before) and len(after) > len(before)  # continued, not started again
    assert rp.finished(run_dir, 1.2)


def test_factvae_runs_on_one_or_two_trials_are_selected_on_a_third_trial():
    # Every model overfits one training trial within a CPU-minute, so those runs are scored with the
    # weights of the best bound on a validation trial that is neither trained on nor held out.
    from pogm.models.factvae.paper_table import FACTVAE_MOCAP, MOCAP_TRIALS

    for spec in FACTVAE_MOCAP.runs:
        train, test = spec.data_options["train_trials"], spec.data_options["test_trials"]
        valid = spec.data_options.get("valid_trials", [])
        assert not (set(valid) & set(train)) and not (set(valid) & set(test)), spec.name
        if len(train) + len(test) < len(MOCAP_TRIALS):
            assert len(valid) == 1 and spec.evaluate_options["weights"] == "best", spec.name
            assert spec.train_options["eval_every"] * len(train) <= 50, spec.name  # about every 150 steps
        else:
            assert not valid and spec.evaluate_options["weights"] == "latest", spec.name


def test_the_factvae_tables_rows_average_over_choices_of_walks():
    """With five training trials no walk is left to validate, so the rows average over every held-out walk; with two, over three pairs."""
    from pogm.models.factvae.paper_table import FACTVAE_MOCAP, MOCAP_TRIALS, factvae_choices

    five = factvae_choices(5)
    assert sorted(held for _, held in five) == sorted(MOCAP_TRIALS)
    assert all(set(train) == set(MOCAP_TRIALS) - {held} for train, held in five)
    row = next(r for r in FACTVAE_MOCAP.rows if r.name == "lambda=1 vs lambda=0, 5 training trials")
    assert "mean of 6 choices" in row.measures
    two = factvae_choices(2)  # and no 2-trial row rests on one pair of walks
    assert len({frozenset(train) for train, _ in two}) == len(two) == 3


def test_the_factvae_tables_one_trial_choices_train_on_different_walks():
    from pogm.models.factvae.paper_table import FACTVAE_CHOICES, MOCAP_TRIALS, factvae_choices, mocap_choices

    for size in FACTVAE_CHOICES:  # the first choice is the one the table always had
        assert factvae_choices(size)[0] == mocap_choices(size, 1, 0)[0]
    one = factvae_choices(1)
    assert len(one) == FACTVAE_CHOICES[1] == len(MOCAP_TRIALS)
    assert {train[0] for train, _ in one} == set(MOCAP_TRIALS)  # each walk trains once
    assert all(held not in train and {held, *train} <= set(MOCAP_TRIALS) for train, held in one)
    plain = mocap_choices(1, 3, 0)
    assert len({train[0] for train, _ in plain}) < 3  # without the rule the shuffle repeats a walk: the rule does something


# ----------------------------------------------------------------------------- several starts


def test_the_best_of_several_starts_continues_on_the_runs_labels_within_the_runs_budget(tmp_path):
    out = tmp_path / "m2-starts"
    kwargs = dict(source="digits", labels=10, model_options=SMALL, starts=3, start_minutes=0.01)
    assert rp.train_best_start("m2", out, 0.04, 5, **kwargs) == "trained"
    record = json.loads((out / "starts.json").read_text())
    starts = [tmp_path / "m2-starts.starts" / f"start-{k}" for k in range(3)]
    # Every start trains on the run's own labels (drawn with seed 5) from its own initialisation.
    labelled = [json.loads((d / "labelled_index.json").read_text()) for d in starts]
    assert labelled[0] == labelled[1] == labelled[2] == json.loads((out / "labelled_index.json").read_text())
    assert [checkpoint.read_config(d)["seed"] for d in starts] == [5, 1005, 2005]
    assert all(checkpoint.read_config(d)["data"]["label_seed"] == 5 for d in starts)
    # The chosen start is the one of lowest validation error, and it is what continues in out.
    best = [rp.selected_record(checkpoint.read_metrics(d))["valid_error"] for d in starts]
    chosen = min(range(3), key=lambda k: (best[k], k))
    assert record["chosen"] == chosen and [c["valid_error"] for c in record["candidates"]] == best
    assert checkpoint.read_config(out)["seed"] == record["chosen_seed"] == 5 + 1000 * chosen
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert lines[: len((starts[chosen] / "metrics.jsonl").read_text().splitlines())] == (starts[chosen] / "metrics.jsonl").read_text().splitlines()
    # All starts together train for the run's budget: the chosen one for 0.04 - 2 x 0.01 CPU-minutes.
    assert rp.finished(out, 0.02 * 60) and not rp.finished(out, 0.03 * 60)
    assert record["others_cpu_seconds"] == pytest.approx(sum(checkpoint.read_metrics(d)[-1]["train_cpu_seconds"] for k, d in enumerate(starts) if k != chosen))
    assert rp.train_best_start("m2", out, 0.04, 5, **kwargs) == "reused"
    assert rp.train_best_start("m2", out, 0.04, 5, **{**kwargs, "start_minutes": 0.1 * 0.1}) == "reused"  # 0.010000000000000002: a share of a budget, in floats
    with pytest.raises(ValueError, match="chosen from 3 starts of 0.01 CPU-min for seed 5 .asked: 2 of 0.01"):
        rp.train_best_start("m2", out, 0.04, 5, **{**kwargs, "starts": 2})


def test_several_starts_refuse_a_run_of_one_start_and_starts_that_leave_no_time(tmp_path):
    out = tmp_path / "m2-run"
    rp.train_for_budget("m2", out, 0.01, source="digits", labels=10, model_options=SMALL)
    with pytest.raises(ValueError, match="trained from one start, not chosen from 2"):
        rp.train_best_start("m2", out, 0.04, source="digits", labels=10, model_options=SMALL, starts=2, start_minutes=0.01)
    with pytest.raises(ValueError, match="3 starts of 0.02 CPU-min do not fit a budget of 0.04"):
        rp.train_best_start("m2", tmp_path / "other", 0.04, source="digits", labels=10, model_options=SMALL, starts=3, start_minutes=0.02)
    assert not (tmp_path / "other").exists() and not (tmp_path / "other.starts").exists()


def test_a_table_run_of_several_starts_counts_every_start_against_its_budget(tmp_path, monkeypatch):
    spec = dataclasses.replace(TINY.runs[0], starts=2, start_fraction=0.25)
    table = dataclasses.replace(TINY, runs=(spec,), rows=TINY.rows[:1], seeds=(0,), default_budget=0.04)
    monkeypatch.setitem(rp.TABLES, table.name, table)
    out = tmp_path / "reproduce"
    printed = run_cli([table.name, "--out", str(out), "--jobs", "1"])
    assert "(2 starts of 0.01, the best continued)" in printed and progress(printed, "finished") == 1, printed
    run = json.loads((out / "tiny-digits.json").read_text())["runs"][0]
    record = run["starts"]
    assert record["starts"] == 2 and record["label_seed"] == 0
    own = checkpoint.read_metrics(Path(run["run_dir"]))[-1]["train_cpu_seconds"]
    assert run["train_cpu_seconds"] == pytest.approx(own + record["others_cpu_seconds"]) and run["train_cpu_seconds"] >= 0.04 * 60 * 0.99
    printed = run_cli([table.name, "--out", str(out), "--jobs", "1"])
    assert progress(printed, "reused") == 1, printed


# ----------------------------------------------------------------------------- the pool of jobs


def _marking_job(job: tuple[Path, int]) -> int:
    """Test job: marks that it started; job 0 fails at once, the others take a moment."""
    import time

    folder, k = job
    (folder / f"started-{k}").touch()
    if k == 0:
        raise RuntimeError("job 0 failed")
    time.sleep(1.0)
    return k


def test_a_failing_job_stops_the_pool_before_any_other_job_starts(tmp_path):
    # Before: the pool ran every queued job to the end and only then raised (a table stopped by
    # a signal went on training its next runs).
    jobs = [(tmp_path, k) for k in range(6)]
    with pytest.raises(RuntimeError, match="job 0 failed"):
        rp.run_in_pool(_marking_job, jobs, workers=2, echo=False)
    started = {p.name for p in tmp_path.iterdir()}
    assert "started-0" in started and started <= {"started-0", "started-1"}, started
    assert rp.run_in_pool(_marking_job, [(tmp_path, k) for k in (1, 2, 3)], workers=2, echo=False) == [1, 2, 3]


def test_sigterm_to_the_process_running_the_pool_stops_its_workers(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "pool.py"
    script.write_text(
        "import sys, time\n"
        "from pathlib import Path\n"
        "from pogm.reproduce import run_in_pool\n"
        "def job(k):\n"
        "    Path(sys.argv[1], f'started-{k}').touch()\n"
        "    time.sleep(4)\n"
        "    Path(sys.argv[1], f'finished-{k}').touch()\n"
        "if __name__ == '__main__':\n"
        "    run_in_pool(job, range(4), workers=2, echo=False)\n"
    )
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=tmp_path)
    deadline = time.time() + 60
    while len([p for p in tmp_path.iterdir() if p.name.startswith("started-")]) < 2 and time.time() < deadline:
        time.sleep(0.1)
    start = time.time()
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=20) != 0 and time.time() - start < 3  # at once, not after the jobs
    time.sleep(6.0)  # orphaned workers would have finished their jobs and started the next by now
    names = {p.name for p in tmp_path.iterdir()}
    assert names & {"started-2", "started-3", "finished-0", "finished-1"} == set(), names


def test_a_stopped_table_says_so_in_one_line_and_the_stop_crosses_the_pool(tmp_path, monkeypatch, capsys):
    import pickle
    import signal

    from pogm.reproduce import command
    from pogm.train.signals import TrainingInterrupted

    stop = TrainingInterrupted(tmp_path / "run", 7666, signal.SIGTERM)
    again = pickle.loads(pickle.dumps(stop))  # as a worker of --jobs 2 hands it back (was a TypeError)
    assert (type(again), str(again), again.step, again.exit_code) == (TrainingInterrupted, str(stop), 7666, 143)

    def stopped(*args, **kwargs):
        raise stop

    monkeypatch.setattr(command, "reproduce", stopped)
    args = argparse.Namespace(list=False, table="tiny-digits", seed=None, seeds=None, out=str(tmp_path), budget=None, jobs=1, rows=None, scale=1.0)
    assert command.cmd_reproduce(args) == 143
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("pogm reproduce: stopped by SIGTERM at step 7666 of") and "same command continues" in err
