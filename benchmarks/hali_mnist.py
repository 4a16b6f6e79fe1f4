"""HALI on MNIST: semi-supervised HALI's test errors with 100 labels beside the paper's
Table 3, the per-level reconstruction errors of HALI (level 1 must be below level 2), and linear
probes of HALI, ALI and VAE features.

    POGM_DATA=../shared/data python benchmarks/hali_mnist.py train --budget-minutes 20 --jobs 2
    POGM_DATA=../shared/data python benchmarks/hali_mnist.py evaluate
    POGM_DATA=../shared/data python benchmarks/hali_mnist.py summarise

Runs live in ``--runs/<name>-<budget>min-seed<seed>`` and are reused when finished (see
`gan_mnist.train_for_budget`). Every model sees grey-level MNIST (the adversarial models' default;
the VAE is given the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, run_in_pool, stage_parser, train_for_budget, write_report

# HALI, Table 3: test errors out of 10,000 on MNIST with 100 labels.
from pogm.models.hali.paper_table import GAN_TRAIN
from pogm.models.hali.paper_table import HALI as PAPER

# (model, labels per class or None, data options, model options, train options, share of the budget)
RUNS = {
    "hali-ssl": ("hali-ssl", 10, {}, {"architecture": "mlp"}, GAN_TRAIN, 1.0),
    "hali-ssl-conv": ("hali-ssl", 10, {}, {"architecture": "dcgan", "channels": [32, 64]}, GAN_TRAIN, 1.5),
    "hali": ("hali", None, {}, {"architecture": "mlp"}, GAN_TRAIN, 0.6),  # the flat hierarchy these results were measured with
    "ali": ("ali", None, {}, {}, GAN_TRAIN, 0.6),
    "vae": ("vae", None, {"binarize": False}, {"z_dim": 64, "hidden": [500, 500], "activation": "relu"}, {"lr": 1e-3}, 0.3),
}


def run_dir(args, name: str) -> Path:
    return Path(args.runs) / f"{name}-{args.budget_minutes * RUNS[name][5]:g}min-seed{args.seed}"


def train_one(job) -> str:
    name, args = job
    model, labels, data, model_options, train_options, share = RUNS[name]
    out = run_dir(args, name)
    train_for_budget(model, out, args.budget_minutes * share, args.seed, data, model_options, train_options, labels=labels)
    return str(out)


def evaluate_one(job) -> dict:
    """Test error (semi-supervised run), per-level reconstruction errors on the test set, and a
    linear probe on the encoder's features (fitted on ``probe_train`` training images)."""
    name, args = job
    import torch

    from pogm.evaluate.metrics import classification_error, evaluation_view
    from pogm.evaluate.probe import linear_probe
    from pogm.runs import load_run

    torch.set_num_threads(1)
    torch.manual_seed(0)
    out = run_dir(args, name)
    weights = "best" if (out / "best.safetensors").is_file() else "latest"  # validation-selected where the run has a selection score
    run = load_run(out, weights=weights)
    test = run.data.test
    result: dict = {"name": name, "model": RUNS[name][0], "weights": weights, "test_examples": len(test)}
    if getattr(run.model, "classify", None) is not None:
        error = classification_error(run.model, test)
        result.update(test_error=error, test_errors_out_of_10000=round(error * len(test)))
    if getattr(run.model, "reconstruction_errors", None) is not None:
        x = evaluation_view(test).x["x"].reshape(len(test), -1)
        result["test_reconstruction"] = {k: float(v) for k, v in run.model.reconstruction_errors(x).items()}
    result["probe"] = linear_probe(run.model, run.data.train, test, train_limit=args.probe_train)
    (run_dir(args, name) / "hali_eval.json").write_text(json.dumps(result, indent=2))
    return result


def summarise(args) -> dict:
    from pogm.checkpoint import read_metrics

    rows = []
    for name in RUNS:
        out = run_dir(args, name)
        if not (out / "metrics.jsonl").is_file():
            continue
        records = read_metrics(out)
        last = records[-1]
        evaluation = json.loads((out / "hali_eval.json").read_text()) if (out / "hali_eval.json").is_file() else {}
        curve = [{k: v for k, v in r.items() if k == "step" or k.startswith("valid_reconstruction")} for r in records if "valid_reconstruction_l1_euclidean" in r]
        rows.append({"name": name, "steps": last["step"], "epochs": last["epoch"], "train_cpu_seconds": last["train_cpu_seconds"], "reconstruction_curve": curve, **evaluation})
    report = {
        "benchmark": "hali_mnist",
        "machine": machine(),
        "paper": PAPER, "runs": rows,
    }
    lines = ["| run | steps (epochs) | CPU-min | test errors / 10,000 | probe accuracy (balanced) | feature dim |", "|---|---|---|---|---|---|"]
    for r in rows:
        errors = str(r["test_errors_out_of_10000"]) if "test_errors_out_of_10000" in r else "-"
        probe = f"{r['probe']['accuracy']:.2%} ({r['probe']['balanced_accuracy']:.2%})" if "probe" in r else "-"
        lines.append(f"| {r['name']} | {r['steps']} ({r['epochs']}) | {r['train_cpu_seconds'] / 60:.1f} | {errors} | {probe} | {r.get('probe', {}).get('feature_dim', '-')} |")
    for r in rows:
        if "test_reconstruction" in r:
            lines += ["", f"{r['name']}: test reconstruction errors per level", "", "| level | Euclidean | discriminator (eq. 8) |", "|---|---|---|"]
            levels = sorted({int(k.split("_l")[1].split("_")[0]) for k in r["test_reconstruction"]})
            for level in levels:
                lines.append(f"| {level} | {r['test_reconstruction'][f'reconstruction_l{level}_euclidean']:.3f} | {r['test_reconstruction'][f'reconstruction_l{level}_discriminator']:.3f} |")
    write_report(args.out, report, lines)
    return report


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).parent
    parser = stage_parser(__doc__.splitlines()[0], list(RUNS), 20.0, "CPU minutes of the semi-supervised run (the others get a share)", here / "runs-hali", here / "results" / "hali_mnist.json")
    parser.add_argument("--probe-train", type=int, default=10000, help="training images the linear probe is fitted on")
    args = parser.parse_args(argv)
    if args.command == "summarise":
        summarise(args)
        return
    work = train_one if args.command == "train" else evaluate_one
    run_in_pool(work, [(name, args) for name in args.names], args.jobs)


if __name__ == "__main__":
    main()
