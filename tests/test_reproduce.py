"""`pogm reproduce`: the table list, the verdict rule, and a tiny test-only table on the bundled
digits run end to end twice (the second call reuses the runs without training them again)."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
from functools import partial

import pytest

from pogm import reproduce as rp
from pogm.reproduce.evaluations import likelihoods
from pogm import checkpoint

FIVE = ["ssl-mnist100", "hybrid-vae", "factvae-mocap", "auxiliary-vae", "hali-mnist100"]
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
    for name in FIVE:
        line = next(line for line in printed.splitlines() if line.startswith(name))
        assert rp.get_table(name).description in line
    assert rp.list_tables()[:5] == FIVE


@pytest.mark.parametrize("name", FIVE)
def test_every_table_is_well_formed(name):
    table = rp.get_table(name)
    assert table.rows and table.runs and 10 <= table.default_budget <= 60
    assert sum(table.budgets(table.default_budget).values()) == pytest.approx(table.default_budget)
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
    default_budget=0.04,  # CPU-minutes: 1.2 s per run
)


def test_a_table_runs_end_to_end_and_reuses_its_runs(tmp_path, monkeypatch):
    monkeypatch.setitem(rp.TABLES, TINY.name, TINY)
    out = tmp_path / "reproduce"
    printed = run_cli([TINY.name, "--out", str(out), "--jobs", "1"])
    assert progress(printed, "started") == 2 and progress(printed, "finished") == 2, printed

    report = json.loads((out / "tiny-digits.json").read_text())
    markdown = (out / "tiny-digits.md").read_text()
    assert [r["name"] for r in report["rows"]] == ["M2", "VAE"]
    for row in report["rows"]:
        assert row["verdict"] == "reproduced"  # the made-up paper values are easy to beat
        assert row["run_length"]["steps"][0] > 0 and row["run_length"]["train_cpu_minutes"] >= 0.02 * 0.99
        assert {"cpu", "cores", "torch"} <= set(row["machine"][0])
        assert row["computed_from"]
    assert 0 <= report["rows"][0]["ours"] <= 1 and report["rows"][0]["paper"] == 0.95
    assert "| M2 | test error, 100 labels (lower is better) | 95.00% ± 1.00% |" in markdown
    assert "torch" in markdown and "steps" in markdown and "CPU-min" in markdown and "reproduced" in markdown

    run_dirs = [tmp_path / r["run_dir"] for r in report["runs"]]
    assert all(d.parent == out / "runs" / "tiny-digits" for d in run_dirs)
    before = {d: ((d / "metrics.jsonl").read_text(), (d / "metrics.jsonl").stat().st_mtime_ns, (d / "reproduce.json").stat().st_mtime_ns) for d in run_dirs}

    printed = run_cli([TINY.name, "--out", str(out), "--jobs", "1"])
    assert progress(printed, "reused") == 2 and progress(printed, "started") == 0, printed
    for d in run_dirs:  # neither retrained nor evaluated again
        assert ((d / "metrics.jsonl").read_text(), (d / "metrics.jsonl").stat().st_mtime_ns, (d / "reproduce.json").stat().st_mtime_ns) == before[d]
    again = json.loads((out / "tiny-digits.json").read_text())
    assert [r["ours"] for r in again["rows"]] == [r["ours"] for r in report["rows"]]
    assert all(r["status"] == "reused" for r in again["runs"])


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

    printed = run_cli([table.name, "--out", str(out), "--jobs", "1", "--budget", "0.02"])
    assert progress(printed, "resumed") == 1 and progress(printed, "finished") == 1, printed
    after = (run_dir / "metrics.jsonl").read_text()
    assert after.startswith(before) and len(after) > len(before)  # continued, not started again
    assert rp.finished(run_dir, 1.2)
