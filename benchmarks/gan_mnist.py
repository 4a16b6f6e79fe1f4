"""The MNIST experiments of the Chen, Fang & Ju (2016) poster: semi-supervised M2 against M2 + conditional GAN on 100
and 1000 labels, the CVAE's conditional log-likelihood of missing quadrants, VAE against
VAE-GAN samples, and the poster's "adding GANs" generalisation: cvae-gan, m2-gan and draw-gan
with the pixel likelihood against the same models with reconstruction on the discriminator's
features (Larsen et al. 2016), each pair at the same CPU budget.

    POGM_DATA=../shared/data python benchmarks/gan_mnist.py ssl --models m2 m2-gan --labels 10 100 --budget-minutes 20
    POGM_DATA=../shared/data python benchmarks/gan_mnist.py features --budget-minutes 2
    POGM_DATA=../shared/data python benchmarks/gan_mnist.py summarise

``features`` writes benchmarks/results/figures/gan-feature-vs-pixel.png (samples of each model,
pixels beside features) and the numbers into the ``feature_vs_pixel`` entry of
benchmarks/results/gan_mnist.json (for m2-gan the test error of the encoder, the discriminator
and their ensemble); ``summarise`` keeps that entry.

Every run lives in ``--runs/<name>`` and is reused when it has finished (its ``metrics.jsonl``
ends with a record at or past the budget), so an interrupted benchmark continues where it was.
Runs use one thread each and ``--jobs`` of them share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, train_for_budget, write_report

from pogm.models.vae_gan.paper_table import POSTER_SSL
from pogm.reproduce.runs import selected_record

# M2 as in benchmarks/ssl_mnist.py (Kingma's networks with batch norm, Adam 1e-3); M2 + GAN adds
# the conditional discriminator and keeps everything else. Both see grey-level images (Bernoulli
# likelihood on intensities): a discriminator would tell binarised real images from grey samples
# at a glance, and the baseline must see the same data.
SSL_SETTINGS = {
    "m2": {"model": {"batch_norm": True}, "train": {"lr": 1e-3}, "data": {"binarize": False}},
    "m2-gan": {"model": {"batch_norm": True}, "train": {"lr": 1e-3}, "data": {"binarize": False}},
}


def _run_dir(args, name: str) -> Path:
    return Path(args.runs) / name


def run_ssl(model: str, labels_per_class: int, budget_minutes: float, args) -> dict:
    from pogm.checkpoint import read_metrics

    out = _run_dir(args, f"{model}-labels{labels_per_class * 10}-{budget_minutes:g}min-seed{args.seed}")
    settings = SSL_SETTINGS[model]
    start = time.time()
    train_for_budget(model, out, budget_minutes, args.seed, settings["data"], settings["model"], settings["train"], labels=labels_per_class)
    return {"model": model, "labels": labels_per_class * 10, "budget_minutes": budget_minutes, "run_dir": str(out), "wall_seconds_this_call": time.time() - start, "records": read_metrics(out)}


# The generative runs: (run name, model, data options, model options, train options).
GENERATIVE = {
    "cvae-partial": ("cvae", {}, {"condition": "partial"}, {"lr": 1e-3}),
    "cvae-label": ("cvae", {}, {"condition": "label"}, {"lr": 1e-3}),
    "vae": ("vae", {"binarize": False}, {"z_dim": 32, "hidden": [500, 500], "activation": "relu"}, {"lr": 1e-3}),
    "vaegan": ("vaegan", {"binarize": False}, {"pixel_weight": 1.0}, {"lr": 1e-3, "adam_betas": [0.5, 0.999]}),
    "cvae-gan": ("cvae-gan", {"binarize": False}, {}, {"lr": 1e-3, "adam_betas": [0.5, 0.999]}),
}


def run_generative(name: str, budget_minutes: float, args) -> dict:
    """Train one generative run for ``budget_minutes`` of CPU time (reused when finished)."""
    from pogm.checkpoint import read_metrics

    model, data, model_options, train_options = GENERATIVE[name]
    out = _run_dir(args, f"{name}-{budget_minutes:g}min-seed{args.seed}")
    start = time.time()
    train_for_budget(model, out, budget_minutes, args.seed, data, model_options, train_options)
    return {"name": name, "model": model, "budget_minutes": budget_minutes, "run_dir": str(out), "wall_seconds_this_call": time.time() - start, "records": read_metrics(out)}


# The "adding GANs" comparison: (model, data options, model options, train options, labels per
# class). Each model runs once per variant of `RECONSTRUCTION_SETTINGS` at the same CPU budget (pixels,
# features, features with a learned variance); all else is shared. m2-gan: 100 labels, as the poster's SSL table, M2's settings
# above. draw-gan: a small DRAW (T = 8, no attention, 128 LSTM units) so a short run takes steps.
FEATURE_MODELS = {
    "cvae-gan": ("cvae-gan", {"binarize": False}, {}, {"lr": 1e-3, "adam_betas": [0.5, 0.999]}, None),
    "m2-gan": ("m2-gan", {"binarize": False}, {"batch_norm": True}, {"lr": 1e-3}, 10),
    "draw-gan": ("draw-gan", {"binarize": False}, {"steps": 8, "attention": False, "lstm_units": 128, "z_dim": 10}, {"lr": 1e-3, "adam_betas": [0.5, 0.999], "grad_clip": 10.0}, None),
}
# name of a variant -> its model settings: the pixel likelihood, Larsen et al.'s unit Gaussian on
# D's features, and the same with a learned variance per feature
RECONSTRUCTION_SETTINGS = {
    "pixels": {"reconstruction": "pixels"},
    "features": {"reconstruction": "features"},
    "features-learned": {"reconstruction": "features", "feature_scale": "learned"},
}
RECONSTRUCTIONS = tuple(RECONSTRUCTION_SETTINGS)
CLASSIFIERS = ("encoder", "discriminator", "ensemble")


def _feature_run_dir(args, name: str, reconstruction: str) -> Path:
    return _run_dir(args, f"{name}-{reconstruction}-{args.budget_minutes:g}min-seed{args.seed}")


def _is_feature_run(name: str) -> bool:
    return any(name.startswith(f"{model}-{reconstruction}-") for model in FEATURE_MODELS for reconstruction in RECONSTRUCTIONS)


def run_feature_pair_member(name: str, reconstruction: str, args) -> dict:
    """Train ``name`` with the settings of the variant ``reconstruction`` (`RECONSTRUCTION_SETTINGS`) for the shared budget (reused when finished)."""
    from pogm.checkpoint import read_metrics

    model, data, model_options, train_options, labels = FEATURE_MODELS[name]
    out = _feature_run_dir(args, name, reconstruction)
    start = time.time()
    train_for_budget(model, out, args.budget_minutes, args.seed, data, {**model_options, **RECONSTRUCTION_SETTINGS[reconstruction]}, train_options, labels=labels)
    return {"name": name, "reconstruction": reconstruction, "run_dir": str(out), "wall_seconds_this_call": time.time() - start, "records": read_metrics(out)}


def _run(job):
    kind, name, labels, budget, args = job
    if kind == "ssl":
        return run_ssl(name, labels, budget, args)
    if kind == "features":
        return run_feature_pair_member(name, labels, args)  # ``labels`` carries the reconstruction
    return run_generative(name, budget, args)


def feature_samples(run_dir: str, n: int = 20, seed: int = 0):
    """``[n, 1, 28, 28]`` samples of a run's latest weights (class-conditional models: the classes in turn)."""
    import torch

    from pogm.runs import load_run

    run = load_run(run_dir, weights="latest")
    torch.manual_seed(seed)
    y = torch.arange(n) % run.model.sampled_classes() if run.model.sampled_classes() else None
    return run.model.sample(n, y).reshape(n, 1, 28, 28)


def feature_comparison(runs: list[dict], args) -> dict:
    """The ``feature_vs_pixel`` entry of the report and the side-by-side sample figure."""
    from pogm.plotting import image_grid, pyplot, save_figure

    entry = {
        "budget_cpu_minutes_per_run": args.budget_minutes,
        "seed": args.seed,
        "settings": {name: {"data": d, "model": m, "train": t, "labels_per_class": lab} for name, (_, d, m, t, lab) in FEATURE_MODELS.items()},
        "discriminator_sees_reconstructions": "with reconstruction=features D's loss also has the reconstructions as fakes (Larsen et al. eq. 8); the generator's GAN loss is on prior samples in both",
        "runs": [],
    }
    names = sorted({r["name"] for r in runs}, key=list(FEATURE_MODELS).index)
    plt = pyplot()
    fig, axes = plt.subplots(len(names), len(RECONSTRUCTIONS), figsize=(5 * len(RECONSTRUCTIONS), 1.35 * len(names) + 0.4), squeeze=False)
    for row, name in enumerate(names):
        for col, reconstruction in enumerate(RECONSTRUCTIONS):
            run = next((r for r in runs if r["name"] == name and r["reconstruction"] == reconstruction), None)
            ax = axes[row, col]
            ax.set_xticks([]), ax.set_yticks([])
            if run is None:
                continue
            last = run["records"][-1]
            summary = {
                "name": name, "reconstruction": reconstruction, "run_dir": run["run_dir"], "steps": last["step"], "epochs": last["epoch"],
                "train_cpu_seconds": last["train_cpu_seconds"], "valid_elbo_pixels": last.get("valid_elbo"),
            }
            if name == "m2-gan":
                best = selected_record(run["records"])  # lowest validation error of the trained classifier (the encoder)
                summary["selected_step"] = best["step"]
                for classifier in CLASSIFIERS:
                    own = min(run["records"], key=lambda r, c=classifier: (r[f"valid_error_{c}"], r["step"]))  # selected by its own validation error
                    summary[f"test_error_{classifier}"] = own[f"test_error_{classifier}"]
                    summary[f"test_error_{classifier}_selected_step"] = own["step"]
                    summary[f"test_error_{classifier}_last"] = last[f"test_error_{classifier}"]
            entry["runs"].append(summary)
            ax.imshow(image_grid(feature_samples(run["run_dir"], seed=args.seed), nrow=10), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{name}, reconstruction={reconstruction}: {last['step']} steps in {last['train_cpu_seconds'] / 60:.1f} CPU-min", fontsize=8)
    entry["figure"] = str(save_figure(fig, Path(args.figure)))
    return entry


def feature_lines(entry: dict | None) -> list[str]:
    """The Markdown section of the ``feature_vs_pixel`` entry."""
    if not entry:
        return []
    lines = [
        "",
        f"Reconstruction on pixels against discriminator features, {entry['budget_cpu_minutes_per_run']:g} CPU-min per run, seed {entry['seed']} "
        f"(samples: `{entry['figure']}`):",
        "",
        "| model | reconstruction | steps | valid ELBO (pixels) | test error: encoder | discriminator | ensemble |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in entry["runs"]:
        elbo = "-" if r["valid_elbo_pixels"] is None else f"{r['valid_elbo_pixels']:.1f}"
        errors = [f"{r[f'test_error_{c}']:.2%}" if f"test_error_{c}" in r else "-" for c in CLASSIFIERS]
        lines.append(f"| {r['name']} | {r['reconstruction']} | {r['steps']} | {elbo} | " + " | ".join(errors) + " |")
    return lines


def features(args) -> dict:
    """Train the pixel and the feature version of each model, then write the figure and the report entry."""
    jobs = [("features", name, reconstruction, args.budget_minutes, args) for name in args.models for reconstruction in RECONSTRUCTIONS]
    if args.jobs > 1:
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(_run, jobs))
    else:
        runs = [_run(job) for job in jobs]
    entry = feature_comparison(runs, args)
    out = Path(args.out)
    report = json.loads(out.read_text()) if out.is_file() else {"benchmark": "gan_mnist", "machine": machine()}
    report["feature_vs_pixel"] = entry
    write_report(out, report, report_lines(report))
    return entry


def evaluate_completion(run_dir: str, k: int, limit: int) -> dict:
    """log p(missing quadrants | shown ones) of a partial CVAE run on the MNIST test set."""
    import torch

    from pogm.models.vae_gan.completion import completion_log_likelihoods
    from pogm.runs import load_run

    torch.set_num_threads(2)
    torch.manual_seed(0)
    run = load_run(run_dir, weights="latest")
    start, cpu = time.time(), time.process_time()
    results = completion_log_likelihoods(run.model, run.data.test, k=k, limit=limit)
    return {**results, "wall_seconds": round(time.time() - start, 1), "cpu_seconds": round(time.process_time() - cpu, 1)}


def summarise(args) -> dict:
    """benchmarks/results/gan_mnist.json and .md from the finished runs."""
    from pogm.checkpoint import read_metrics

    ssl = []
    for run_dir in sorted(Path(args.runs).glob("m2*-labels*")):
        records = read_metrics(run_dir)
        if not records:
            continue
        best = selected_record(records)
        last = records[-1]
        model, rest = run_dir.name.split("-labels")
        ssl.append({
            "model": model, "labels": int(rest.split("-")[0]), "run_dir": str(run_dir), "test_error": best["test_error"], "valid_error": best["valid_error"],
            "selected_step": best["step"], "steps": last["step"], "epochs": last["epoch"], "train_cpu_seconds": last["train_cpu_seconds"],
            "train_wall_seconds": last["train_wall_seconds"], "unlabelled_per_cpu_second": round(last["step"] * 100 / last["train_cpu_seconds"], 1),
            "test_error_by_step": {r["step"]: r["test_error"] for r in records if "test_error" in r},
        })
    equal_steps = []  # each model's test error at the last evaluation step that every model of a label count reached
    for labels in sorted({r["labels"] for r in ssl}):
        rows = [r for r in ssl if r["labels"] == labels]
        common = set.intersection(*(set(r["test_error_by_step"]) for r in rows))
        if common:
            step = max(common)
            equal_steps.append({"labels": labels, "step": step, **{r["model"]: r["test_error_by_step"][step] for r in rows}})
    completion_file = Path(args.runs) / "completion.json"
    previous = json.loads(Path(args.out).read_text()) if Path(args.out).is_file() else {}
    report = {
        "benchmark": "gan_mnist",
        "machine": machine(),
        "ssl": sorted(ssl, key=lambda r: (r["labels"], r["model"])),
        "ssl_at_equal_steps": equal_steps,
        "poster_ssl": POSTER_SSL,
        "completion": json.loads(completion_file.read_text()) if completion_file.is_file() else None,
        "generative_runs": {d.name: {"steps": read_metrics(d)[-1]["step"], "train_cpu_seconds": read_metrics(d)[-1]["train_cpu_seconds"]} for d in sorted(Path(args.runs).glob("*")) if d.is_dir() and not d.name.startswith("m2") and not _is_feature_run(d.name) and read_metrics(d)},
        "feature_vs_pixel": previous.get("feature_vs_pixel"),  # written by the ``features`` part
    }
    write_report(args.out, report, report_lines(report))
    return report


def report_lines(report: dict) -> list[str]:
    """The Markdown tables of a gan_mnist report."""
    equal_steps = report.get("ssl_at_equal_steps") or []
    lines = ["| model | labels | test error | CPU-min | steps (epochs) | selected at step |", "|---|---|---|---|---|---|"] if report.get("ssl") else []
    for r in report.get("ssl") or []:
        lines.append(f"| {r['model']} | {r['labels']} | {r['test_error']:.2%} | {r['train_cpu_seconds'] / 60:.1f} | {r['steps']} ({r['epochs']}) | {r['selected_step']} |")
    if equal_steps:
        models = sorted({r["model"] for r in report["ssl"]})
        lines += ["", "Test error at equal steps (the last evaluation every model reached):", "", "| labels | step | " + " | ".join(models) + " |", "|---|---|" + "---|" * len(models)]
        for row in equal_steps:
            lines.append(f"| {row['labels']} | {row['step']} | " + " | ".join(f"{row[m]:.2%}" if m in row else "-" for m in models) + " |")
    if report.get("completion"):
        c = report["completion"]
        lines += ["", f"CVAE log p(missing | shown), {c['images']} test images, k = {c['k']} ({c['wall_seconds']} s):", "", "| shown | nats per image | per missing pixel | ELBO per image |", "|---|---|---|---|"]
        for setting, v in c.items():
            if isinstance(v, dict) and "nats_per_image" in v:
                lines.append(f"| {setting} | {v['nats_per_image']:.2f} | {v['nats_per_missing_pixel']:.4f} | {v['elbo_per_image']:.2f} |")
    return lines + feature_lines(report.get("feature_vs_pixel"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("ssl", help="M2 against M2 + conditional GAN")
    p.add_argument("--models", nargs="+", default=["m2", "m2-gan"], choices=sorted(SSL_SETTINGS))
    p.add_argument("--labels", nargs="+", type=int, default=[10, 100], help="labels per class (10 -> MNIST-100)")
    p.add_argument("--budget-minutes", type=float, default=20)
    p.add_argument("--budget-minutes-1000", type=float, default=10, help="budget of the runs with 100 labels per class")
    p.add_argument("--generative", nargs="*", default=[], metavar="NAME[:MINUTES]", help=f"generative runs to train alongside, each with its CPU-minute budget (default 8): {', '.join(GENERATIVE)}")
    q2 = sub.add_parser("completion", help="evaluate the partial CVAE's conditional log-likelihood of missing quadrants")
    q2.add_argument("--k", type=int, default=1000)
    q2.add_argument("--limit", type=int, default=1000)
    q2.add_argument("--run", default=None, help="the CVAE run (default: the cvae-partial run in --runs)")
    q3 = sub.add_parser("summarise", help="write the JSON and Markdown summary")
    q4 = sub.add_parser("features", help="cvae-gan, m2-gan and draw-gan with reconstruction=pixels, =features and =features with a learned variance, at one CPU budget")
    q4.add_argument("--models", nargs="+", default=list(FEATURE_MODELS), choices=list(FEATURE_MODELS))
    q4.add_argument("--budget-minutes", type=float, default=2, help="CPU-minutes of training per run (each model trains once per variant)")
    q4.add_argument("--figure", default="benchmarks/results/figures/gan-feature-vs-pixel.png")
    for q in (q3, q4):
        q.add_argument("--out", default="benchmarks/results/gan_mnist.json")
    for q in (p, q2, q3, q4):
        q.add_argument("--jobs", type=int, default=2)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--runs", default="benchmarks/runs-gan")
    args = parser.parse_args(argv)
    if "POGM_DATA" not in os.environ:
        print("note: POGM_DATA is not set; mnist.npz is looked up in ~/.cache/pogm or downloaded", file=sys.stderr)
    if args.part == "ssl":
        jobs = []
        for spec in args.generative:
            name, _, minutes = spec.partition(":")
            if name not in GENERATIVE:
                parser.error(f"--generative {spec}: choose from {', '.join(GENERATIVE)}")
            jobs.append(("generative", name, None, float(minutes or 8), args))
        jobs += [("ssl", m, n, args.budget_minutes if n < 100 else args.budget_minutes_1000, args) for n in args.labels for m in args.models]
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            runs = list(pool.map(_run, jobs))
        for run in runs:
            if "labels" in run:
                best = selected_record(run["records"])
                print(f"{run['model']:7s} {run['labels']:5d} labels: test error {best['test_error']:.2%} at step {best['step']}")
            else:
                print(f"{run['name']}: {run['records'][-1]['step']} steps, {run['records'][-1]['train_cpu_seconds']:.0f} CPU-s")
    elif args.part == "completion":
        run_dir = args.run or next(map(str, sorted(Path(args.runs).glob("cvae-partial-*"))), None)
        if run_dir is None:
            sys.exit(f"gan_mnist.py completion: no cvae-partial run in {args.runs}; train one first with "
                     f"`gan_mnist.py ssl ... --generative cvae-partial:6` (same --runs), or name one with --run DIR")
        results = {"run_dir": run_dir, **evaluate_completion(run_dir, args.k, args.limit)}
        (Path(args.runs) / "completion.json").write_text(json.dumps(results, indent=2))
        print(json.dumps(results, indent=2))
    elif args.part == "features":
        features(args)
    else:
        summarise(args)


if __name__ == "__main__":
    main()
