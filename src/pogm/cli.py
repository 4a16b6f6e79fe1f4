"""The ``pogm`` command line: models, train, eval, sample, demo.

    pogm models
    pogm recipes
    pogm train --recipe adgm-mnist100
    pogm train adgm --data moons --labels 3 && pogm figures runs/adgm-moons-...
    pogm train m2 --data mnist --labels 10 --epochs 50 --out runs/m2
    torchrun --standalone --nproc_per_node 2 -m pogm.cli train m2 --data mnist --labels 10 --out runs/m2-torchrun
    pogm train m2 --data mnist --labels 10 --out runs/m2-nproc --nproc 2      (the same: runs itself under torchrun)
    pogm eval runs/m2 --iw-samples 5000
    pogm sample runs/m2 --per-class
    pogm train factvae --data mocap && pogm impute runs/factvae-mocap-... --observed core && pogm report runs/factvae-mocap-...
    pogm demo
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch


def _split(run, name: str):
    """The run's ``name`` split, or a clear error if the data set has none."""
    data = getattr(run.data, name)
    if data is None:
        raise ValueError(f"the data set has no {name} split")
    return data


def _write_json(path: Path, results: dict) -> None:
    """Write ``results`` to ``path``, print them and where they went."""
    path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    print(f"wrote {path}")


def cmd_models(args: argparse.Namespace) -> int:
    from pogm.models import model_entry, list_models

    rows = [(name, ", ".join(["loss"] + model_entry(name).offers), model_entry(name).paper) for name in list_models()]
    width = max(len("offers"), *(len(offers) for _, offers, _ in rows))
    name_width = max(len("model"), *(len(name) for name, _, _ in rows))
    print(f"{'model':{name_width}s} {'offers':{width}s}  paper")
    for name, offers, paper in rows:
        print(f"{name:{name_width}s} {offers:{width}s}  {paper}")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from pogm.recipes import describe_recipes

    rows = describe_recipes()
    width = max(len(name) for name, _, _ in rows)
    for name, model, description in rows:
        print(f"{name:{width}s}  {model:6s}  {description}")
    print("\nuse: pogm train --recipe NAME [--set key=value ...]")
    return 0


def cmd_figures(args: argparse.Namespace) -> int:
    from pogm.evaluate.figures import write_run_figures
    from pogm.runs import load_run

    run = load_run(args.run_dir)
    torch.manual_seed(args.seed)
    paths = write_run_figures(run, Path(args.out) if args.out else None)
    if not paths:
        print("this run's model and data offer no figures yet")
    for path in paths:
        print(f"wrote {path}")
    return 0


def _process_label() -> str:
    """`` (rank R of W)`` under torchrun with several processes, else nothing."""
    world = os.environ.get("WORLD_SIZE")
    return f" (rank {os.environ.get('RANK', '?')} of {world})" if world and world != "1" else ""


def _is_main_process() -> bool:
    from pogm.train.distributed import Distributed

    return Distributed.from_environment()[0] == 0


def _without_nproc(argv: list[str]) -> list[str]:
    """``argv`` with its ``--nproc N`` / ``--nproc=N`` removed."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """Train (or resume); SIGINT/SIGTERM save a checkpoint and exit with 128 + the signal number.

    ``--nproc N`` (N > 1) runs this same command in N processes: it replaces this process with
    torchrun (``--standalone``, a free port), which starts ``python -m pogm.cli`` N times."""
    from pogm.train import TrainingInterrupted, train

    if args.nproc is not None and args.nproc != 1:
        from pogm.train.distributed import torchrun_command

        if os.environ.get("WORLD_SIZE") is not None:
            raise ValueError("--nproc: this process already runs under torchrun; drop --nproc (torchrun's --nproc_per_node sets the number)")
        command = torchrun_command(args.nproc, _without_nproc(args.argv))
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(command[0], command)
    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.precision:
        overrides.append(f"train.precision={args.precision}")
    try:
        run = train(
            args.model,
            data=args.data,
            labels=args.labels,
            unlabelled=args.unlabelled,
            epochs=args.epochs,
            out=args.out,
            seed=args.seed,
            label_seed=args.label_seed,
            config_file=args.config,
            overrides=overrides,
            resume=args.resume,
        )
    except TrainingInterrupted as stop:
        if _is_main_process():
            print(f"pogm train: {stop}", file=sys.stderr)
        return stop.exit_code
    if _is_main_process():
        print(f"run directory: {run.dir}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from pogm.evaluate import (
        classification_error_rate,
        mean_elbo,
        mean_log_likelihood,
        task_loss_rate,
    )
    from pogm.runs import load_run

    run = load_run(args.run_dir, weights=args.weights)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = _split(run, args.split)
    # "weights" says which were loaded: a run without a selection score has only the latest.
    results: dict = {"split": args.split, "weights": run.weights, "examples": len(data)}
    torch.manual_seed(args.seed)
    labelled = data.num_labelled  # error rates and task losses score the labelled rows only
    if run.model.offers("classify") and labelled:
        results["error"] = classification_error_rate(run.model, data).error
        results["labelled_examples"] = labelled
    results.update(run.model.evaluation_metrics(data))  # the model's own numbers (m2-gan: the error of each classifier)
    task = run.data.info.get("task_loss")
    if run.model.offers("predict_labels") and task is not None and labelled:
        scored = task_loss_rate(run.model, data, task, limit=args.limit)  # mean of q(h|d) (Tulyakov et al., sec. 4.3)
        results.update(task_loss=scored.loss, task_loss_kind=task["kind"], task_loss_examples=scored.labelled)
    if run.model.offers("log_weights"):
        # For the F-VAE and H-VAE on labelled test pairs these bound log p(d, h) (eq. 2).
        results["elbo"] = mean_elbo(run.model, data, limit=args.limit)
    if run.model.offers("conditional_log_likelihood") and run.model.uses_partial:
        from pogm.models.vae_gan.completion import completion_log_likelihoods

        # log p(missing pixels | shown pixels) for 1, 2, 3 shown quadrants and the left half.
        start = time.time()
        k = args.iw_samples or 1000
        results["completion"] = completion_log_likelihoods(run.model, data, k=k, limit=args.limit or 1000, progress=True)
        results["completion_iw_samples"] = k
        results["completion_seconds"] = round(time.time() - start, 1)
    elif args.iw_samples and not run.model.offers("log_likelihood"):
        raise ValueError(f"{run.config['model']} has no likelihood to estimate (no log_likelihood); drop --iw-samples")
    elif args.iw_samples:
        start = time.time()
        results["iw_log_likelihood"] = mean_log_likelihood(run.model, data, k=args.iw_samples, batch_size=args.batch_size, limit=args.limit, progress=True)
        results["iw_samples"] = args.iw_samples
        results["iw_examples"] = min(len(data), args.limit or len(data))
        results["iw_seconds"] = round(time.time() - start, 1)
    if args.refine_steps:
        from pogm.evaluate.refined import mean_refined_log_likelihood

        if not args.iw_samples:
            raise ValueError("--refine-steps refines the proposal of the importance-sampled log p(x): give --iw-samples too (e.g. 1000)")
        if not run.model.offers("importance_parts"):
            raise ValueError(f"{run.config['model']} does not give its proposal and log p(x, z) (no importance_parts): drop --refine-steps")
        start = time.time()
        torch.manual_seed(args.seed)
        results["refined_log_likelihood"] = mean_refined_log_likelihood(run.model, data, k=args.iw_samples, steps=args.refine_steps, batch_size=args.batch_size, limit=args.limit)
        results["refine_steps"] = args.refine_steps
        results["refined_seconds"] = round(time.time() - start, 1)
    _write_json(Path(args.run_dir) / "eval.json", results)
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from pogm.evaluate.figures import write_samples
    from pogm.runs import load_run

    run = load_run(args.run_dir)
    torch.manual_seed(args.seed)
    path = Path(args.out) if args.out else Path(args.run_dir) / "figures" / ("samples-per-class.png" if args.per_class else "samples.png")
    write_samples(run, path, args.n, args.y, args.per_class, args.scale)
    print(f"wrote {path}")
    return 0


def cmd_impute(args: argparse.Namespace) -> int:
    from pogm.models.factvae.figures import (
        completion_figure,
        default_observed_sets,
        imputation_errors,
        observed_means,
    )
    from pogm.data.dataset import evaluation_view
    from pogm.runs import load_run

    run = load_run(args.run_dir, weights=args.weights)
    if not run.model.multi_group:
        raise ValueError(f"{run.config['model']} models one group; `pogm impute` fills in missing groups of multi-group models (factvae, jmvae-plus, oivae)")
    groups = list(run.model.config.group_names)
    observed_sets = [s.split(",") for s in args.observed] if args.observed else default_observed_sets(run.data.info)
    for observed in observed_sets:
        unknown = sorted(set(observed) - set(groups))
        if unknown or len(observed) == len(groups):
            raise ValueError(f"--observed {','.join(observed)}: name a proper subset of the groups {', '.join(groups)}")
    view = evaluation_view(_split(run, args.split))
    limit = min(len(view), args.limit or len(view))
    batch = view.batch(torch.arange(limit))
    train_mean = observed_means(run.data.train, groups)
    torch.manual_seed(args.seed)
    results = {"split": args.split, "examples": limit, "weights": args.weights, "conditions": []}
    for observed in observed_sets:
        errors = imputation_errors(run.model, batch, observed, train_mean)
        results["conditions"].append({"observed": observed, "hidden_groups": errors})
    figure = completion_figure(run.model, run.data, observed_sets, Path(args.out) if args.out else Path(args.run_dir) / "figures")
    if figure is not None:
        results["figure"] = str(figure)
    _write_json(Path(args.run_dir) / "impute.json", results)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pogm.evaluate.report import write_report

    report = write_report(args.run_dir, weights=args.weights, seed=args.seed, compare=args.compare)
    if "column_norms" in report:
        print("column norms ||Phi^(g)_{:,j}|| (groups down, latent dimensions across):")
        for g, row in zip(report["groups"], report["column_norms"]):
            print(f"  {g:>10s} " + " ".join(f"{v:5.2f}" for v in row))
    for p in report["figures"] + report["curves"]:
        print(f"wrote {p}")
    print(f"wrote {Path(args.run_dir) / 'report.json'}")
    print(f"wrote {report['html']}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from pogm.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, seed=args.seed)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from pogm.reproduce import add_reproduce_parser

    parser = argparse.ArgumentParser(prog="pogm", description="Partially observed generative models (PyTorch).")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("models", help="list the registered models, their papers and what they offer")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("recipes", help="list the packaged recipes (paper settings) for `pogm train --recipe`")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("train", help="train a model into a run directory", epilog=_recipes_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", default=None, help="a registered model (see `pogm models`); optional with a recipe that names one")
    p.add_argument("--data", default=None, help=f"a registered source ({', '.join(__import__('pogm.data.sources', fromlist=['list_sources']).list_sources())}) or a path to a .npz file (default: the recipe's, else digits)")
    p.add_argument("--labels", type=int, default=None, help="labelled examples per class; for continuous labels (yaleb, mnist-keypoints, depth) the total n (default: all labels)")
    p.add_argument("--unlabelled", type=int, default=None, help="unlabelled examples m, drawn apart from the labelled ones (default: the whole training set)")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--recipe", "--config", dest="config", default=None, help="a packaged recipe name (`pogm recipes`) or a YAML file with model:, train:, data: sections")
    p.add_argument("--out", default=None, help="run directory (default: runs/MODEL-DATA-TIME)")
    p.add_argument("--seed", type=int, default=None, help="seed of the label split, data split and model (default 0; on --resume, the run's)")
    p.add_argument("--label-seed", type=int, default=None, help="draw the labelled examples (and the unlabelled pool) with this seed instead of --seed: one label draw, several initialisations")
    p.add_argument("--device", default=None, help="cpu or cuda (under torchrun: one GPU per process, cuda:LOCAL_RANK)")
    p.add_argument("--precision", default=None, choices=["fp32", "bf16"], help="bf16: autocast matmuls to bfloat16 (for GPUs; fp32 weights, losses and gradients); default fp32")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value: z_dim=32, train.lr=1e-3, data.binarize=false")
    p.add_argument("--resume", action="store_true", help="continue the run in --out exactly from its last checkpoint (the previous one if the last is damaged); with the run's number of processes. --epochs, --set train.cpu_budget_seconds=S or train.max_steps=N give a finished run a new limit")
    p.add_argument(
        "--nproc", type=int, default=None, metavar="N",
        help="train data-parallel in N processes on this machine (runs this command under `torchrun --standalone --nproc_per_node N`); "
        "the batch sizes stay those of the whole step and must be multiples of N",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a run on its test split; writes DIR/eval.json")
    p.add_argument("run_dir")
    p.add_argument("--iw-samples", type=int, default=0, help="importance samples for log p(x) (e.g. 5000); 0 = skip")
    p.add_argument("--refine-steps", type=int, default=0, help="with --iw-samples: also estimate log p(x) from a proposal fitted to p(z | x) per example in N steps (e.g. 300; models with importance_parts: factvae, jmvae-plus, oivae, and fvae and hvae on labelled pairs); 0 = skip")
    p.add_argument("--limit", type=int, default=None, help="evaluate the likelihoods on the first N examples only")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--split", default="test", choices=["test", "valid"])
    p.add_argument("--weights", default="best", choices=["best", "latest"])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("sample", help="write a PNG grid of samples")
    p.add_argument("run_dir")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--y", type=int, default=None, help="class to condition on")
    p.add_argument("--per-class", action="store_true", help="one row per class")
    p.add_argument("--out", default=None, help="PNG path (default: DIR/figures/samples.png, or DIR/figures/samples-per-class.png with --per-class)")
    p.add_argument("--scale", type=int, default=1, help="enlarge every pixel this many times")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("figures", help="write the figures a run offers (decision regions, auxiliary latent space, (d, h) samples, interpolations) to DIR/figures")
    p.add_argument("run_dir")
    p.add_argument("--out", default=None, help="directory (default: DIR/figures)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_figures)

    p = sub.add_parser("impute", help="fill in the missing groups of a multi-group run from chosen observed groups; writes DIR/impute.json and a figure")
    p.add_argument("run_dir")
    p.add_argument("--observed", action="append", metavar="G1,G2", help="groups given to the model (repeat for several conditions); default: left half / one quadrant / three quadrants, or core for mocap")
    p.add_argument("--split", default="test", choices=["test", "valid", "train"])
    p.add_argument("--limit", type=int, default=None, help="score the first N examples only")
    p.add_argument("--out", default=None, help="figure directory (default: DIR/figures)")
    p.add_argument("--weights", default="best", choices=["best", "latest"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_impute)

    p = sub.add_parser("report", help="write the run's figures (samples, reconstructions, completions, interpolations, style grids, sparsity heat maps, training curves), DIR/report.json and DIR/report.html, one self-contained page")
    p.add_argument("run_dir")
    p.add_argument("--weights", default="best", choices=["best", "latest"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compare", nargs="+", metavar="RUN_DIR", help="also draw this run's samples beside those of other runs on the same data (VAE against VAE-GAN)")
    p.set_defaults(func=cmd_report)

    add_reproduce_parser(sub)

    p = sub.add_parser("demo", help="M2 on the bundled digits with 10 labels per class, against a labels-only classifier")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def _recipes_epilog() -> str:
    from pogm.recipes import list_recipes

    return "packaged recipes (pogm recipes describes them): " + ", ".join(list_recipes())


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.func(args)
    except (ValueError, KeyError, FileNotFoundError, FileExistsError, RuntimeError, ArithmeticError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"pogm {args.command}: error{_process_label()}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
