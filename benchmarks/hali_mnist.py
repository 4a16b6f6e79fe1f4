"""HALI on MNIST: semi-supervised HALI's test errors with 100 labels beside the paper's
Table 3, the per-level reconstruction errors of HALI (level 1 must be below level 2), and linear
probes of HALI, ALI and VAE features.

    POGM_DATA=../shared/data python benchmarks/hali_mnist.py train --budget-minutes 20 --jobs 2
    POGM_DATA=../shared/data python benchmarks/hali_mnist.py evaluate
    POGM_DATA=../shared/data python benchmarks/hali_mnist.py summarise
    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/hali_mnist.py diagnose --seconds 180 --only baseline weight0.1

``diagnose`` measures why semi-supervised HALI (``architecture=mlp``) overfits its 100 labels: each
hypothesis of ``DIAGNOSIS`` trains the real `SemiSupervisedHALI` with the Trainer's parts (the
same stream of 100 labelled + 100 unlabelled images a step, one Adam per parameter group, each on
its own loss) for ``--seconds`` CPU seconds on one thread, and scores the classifier on the
validation and test sets every ``--eval-every`` steps (finer than the Trainer's once an epoch). The
test error reported is the one at the lowest validation error. Each run is cached as JSON in
``benchmarks/runs-hali-ssl/`` (git-ignored); the summary goes to
benchmarks/results/hali_ssl_diagnosis.json. The JSON in the repository came from ``--seconds 150
--eval-every 100`` for every hypothesis up to ``consistency1``, then ``--seconds 240 --eval-every
100 --only consistency10 consistency1+entropy1 consistency1``, then ``--seconds 3600 --eval-every
500 --only consistency1+entropy1+teacher0.99``, ``--seconds 1200 --eval-every 500`` for the other
two teacher rows, and ``--seconds 1500 --eval-every 500 --only
consistency1+entropy1+teacher0.99+d-lr-x0.2`` and ``--only
consistency1+entropy1+teacher0.99+lr-decay0.9`` (seed 0). benchmarks/results/hali_ssl_probe.json
came from ``--probe-train 10000 --out benchmarks/results/hali_ssl_probe.json`` with ``--seconds 600
--eval-every 250 --only baseline`` and ``--seconds 1400 --eval-every 500 --only
consistency1+entropy1+teacher0.99`` (seed 0, the two runs on the two cores).
benchmarks/results/hali_ssl_conv.json came from ``--seconds 3600 --eval-every 250 --probe-train 10000
--only dcgan+consistency1+entropy1+teacher0.99`` and ``--only spatial+consistency1+entropy1+teacher0.99``
(seed 0, the two runs on the two cores), both stopped by hand after about 25 CPU-minutes; their
curves were read from the runs' logs (a stopped run now keeps its curve in ``<run>.partial.json``,
and the summary includes it with ``"finished": false``).
benchmarks/results/hali_ssl_conv_turn.json came from ``--eval-every 250 --out
benchmarks/results/hali_ssl_conv_turn.json`` with ``--seconds 1800 --only
dcgan+consistency1+entropy1+teacher0.99+lr-decay0.9`` and ``--only
dcgan+consistency1+entropy1+teacher0.999`` (stopped by hand after 18 CPU-minutes), ``--seconds 3600
--only dcgan+consistency1+entropy1+teacher0.99+lr-decay0.9`` with ``--seed 0`` and ``--seed 1`` (stopped
by hand after 40 CPU-minutes), and ``--seconds 1500 --only
spatial-mean-pool+consistency1+entropy1+teacher0.99`` (2-core AMD EPYC, up to three runs sharing the
cores), then ``--summary-only --seed 1`` to add seed 1's stopped run. Every run with a mean
teacher also scores the teacher's predictions (``classify_with=teacher``) at each evaluation.
benchmarks/results/hali_ssl_vat.json came from ``--seed 1 --seconds 1200 --eval-every 250 --only
dcgan+consistency1+entropy1+teacher0.99+vat1-eps2`` and ``--only
dcgan+consistency1+entropy1+teacher0.99+vat1-eps0.5`` (the two runs on the two cores, both stopped
by hand after 11 CPU-minutes, when the row's runs started), then ``--seconds 1500 --only
dcgan+consistency1+entropy1+teacher0.99+vat1-eps1`` and ``--seconds 1200 --only
dcgan+consistency1+entropy1+teacher0.99+vat3-eps0.5`` (seed 1, the two runs on the two cores), and
``--summary-only --seed 1``.

Runs live in ``--runs/<name>-<budget>min-seed<seed>`` and are reused when finished (see
`gan_mnist.train_for_budget`). Every model sees grey-level MNIST (the adversarial models' default;
the VAE is given the same).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import adversarial_setup, group_step, machine, run_in_pool, stage_parser, train_for_budget, write_report

# HALI, Table 3: test errors out of 10,000 on MNIST with 100 labels.
from pogm.models.hali.paper_table import GAN_TRAIN, HALI_SSL_CONV_UNLABELLED_COSTS
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


# ----------------------------------------------------------------------------- diagnose
# Where pogm's semi-supervised HALI departs from (or fills in) section 7.2 of Belghazi et al. (2018), eqs. 9-10.
DEPARTURES = {
    "level": "eq. 9 writes x -> z -> y with one z; the paper does not say which level. pogm: every level (z1 and z2, 64 + 32 values) joined, sampled from q(z | x + noise); classify() reads the clean input's means. classifier_levels chooses.",
    "weight": "eq. 10 is added to the generator's cost as it stands (weight 1, mean over the labelled set; the printed eq. 10 lacks its minus sign). pogm: supervised_weight=1, mean over the labelled rows of the step, which with 100 labelled rows a step is the whole labelled set, as eq. 10.",
    "noise": "eq. 9's sigma is not given; section 4 adds Gaussian noise of std 0.2 at the inputs of the encoder and the discriminator. pogm: one noisy pass (input_noise=0.2) feeds both the adversarial game and the softmax; with the flat z the noise is on every input of D, latents included. classifier_noise gives the supervised path its own sigma.",
    "learning_rates": "not given for MNIST. pogm: Adam 2e-4, betas (0.5, 0.999) for both players (the table's GAN_TRAIN); group_lr sets them apart.",
    "dropout": "section 4: dropout every 3 layers of D, retention 0.2 (the image networks). pogm's flat network: drop probability 0.2 after every layer of D; none in the encoder or the softmax.",
    "batches": "not given. pogm (the Trainer's stream): every step carries all 100 labelled images (reshuffled) and 100 unlabelled ones; the labelled rows also enter the adversarial game, so half of every adversarial batch is the same 100 images. train.labelled_batch_size changes the labelled share.",
    "network": "not given for MNIST (Table 4 is the image network). pogm's table: MLP kernels 500-500 with batch norm, z of (64, 32), a linear softmax.",
    "selection": "not given. pogm: the weights at the lowest validation error (10,000 held-out training images).",
    "unlabelled_rows": "section 7.2 trains q(y | z) on the labelled rows only ('HALI uses no additional regularization'); consistency_weight and entropy_weight add costs of q(y | z) on the unlabelled rows (off by default).",
}
PAPER_SSL_MODEL = {"architecture": "mlp"}  # section 7.2 as pogm first built it, on the table's network: every hypothesis starts here
# name: (model options over the table's, train options over GAN_TRAIN, what it tests)
DIAGNOSIS = {
    "baseline": ({}, {}, "the table's settings: softmax on z1 and z2, weight 1, noise 0.2, 100 labelled a step"),
    "weight0.1": ({"supervised_weight": 0.1}, {}, "supervised cost weighted 0.1"),
    "weight0.01": ({"supervised_weight": 0.01}, {}, "supervised cost weighted 0.01"),
    "level1": ({"classifier_levels": [1]}, {}, "the softmax reads z1 only"),
    "level2": ({"classifier_levels": [2]}, {}, "the softmax reads z2 only"),
    "noise0.5": ({"input_noise": 0.5}, {}, "noise sigma 0.5 on the encoder's (and D's) input"),
    "labelled10": ({}, {"labelled_batch_size": 10}, "10 labelled examples a step instead of all 100"),
    "d-lr-x0.2": ({}, {"group_lr": {"discriminator": 4e-5}}, "the discriminator's learning rate 5 times lower"),
    "g-lr-x5": ({}, {"group_lr": {"generator": 1e-3}}, "the generator's (encoder's, decoder's, softmax's) learning rate 5 times higher"),
    "probe": ({"supervised_gradient": "classifier"}, {}, "eq. 10 trains the softmax only: a linear probe of the adversarial features, 100 labels"),
    "classifier-noise0.5": ({"classifier_noise": 0.5}, {}, "eq. 9's sigma 0.5 on the supervised path alone (the adversarial pass keeps 0.2)"),
    "entropy1": ({"entropy_weight": 1.0}, {}, "plus the entropy of q(y | z) on the unlabelled rows, weight 1"),
    "consistency1": ({"consistency_weight": 1.0}, {}, "plus the consistency of q(y | z) under noise on the unlabelled rows, weight 1"),
    "consistency10": ({"consistency_weight": 10.0}, {}, "plus the consistency of q(y | z) under noise on the unlabelled rows, weight 10"),
    "consistency1+entropy1": ({"consistency_weight": 1.0, "entropy_weight": 1.0}, {}, "consistency and entropy on the unlabelled rows, weight 1 each"),
    "consistency1+entropy1+teacher0.99": ({"consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99}, {},
                                          "consistency and entropy, the consistency's target from a mean teacher (decay 0.99)"),
    "consistency1+entropy1+teacher0.999": ({"consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.999}, {},
                                           "consistency and entropy, a slower mean teacher (decay 0.999): does the turn after 12,000 steps come later?"),
    "consistency1+teacher0.99": ({"consistency_weight": 1.0, "teacher_decay": 0.99}, {},
                                 "consistency to a mean teacher (decay 0.99) without the entropy cost: does entropy minimisation drive the turn?"),
    "consistency1+entropy1+d-lr-x0.2": ({"consistency_weight": 1.0, "entropy_weight": 1.0}, {"group_lr": {"discriminator": 4e-5}},
                                        "consistency and entropy, the discriminator's learning rate 5 times lower (slower drift of the features?)"),
    "consistency1+entropy1+teacher0.99+d-lr-x0.2": ({"consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99}, {"group_lr": {"discriminator": 4e-5}},
                                                    "the mean-teacher row with the discriminator's learning rate 5 times lower: does the turn after 13,000 steps come later?"),
    "consistency1+entropy1+teacher0.99+lr-decay0.9": ({"consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99},
                                                       {"lr_decay": 0.9, "lr_decay_every": 1, "lr_min": 2e-5},
                                                       "the mean-teacher row with every player's learning rate x0.9 an epoch (500 steps) down to 2e-5: "
                                                       "does a cooling step size hold the error at its lowest instead of turning after 12,000 steps?"),
    "spatial+consistency1+entropy1+teacher0.99": ({"architecture": "spatial", "consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99}, {},
                                                  "the mean-teacher row on Table 4's network (spatial z1, residual blocks): do convolutional features carry the classes better than the MLP's?"),
    "dcgan+consistency1+entropy1+teacher0.99": ({"architecture": "dcgan", "channels": [32, 64], "consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99}, {},
                                                "the mean-teacher row on the convolutional network with a vector z1 (stride-2 convolutions 32, 64)"),
    "dcgan+consistency1+entropy1+teacher0.99+lr-decay0.9": ({"architecture": "dcgan", "channels": [32, 64], "consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99},
                                                            {"lr_decay": 0.9, "lr_decay_every": 1, "lr_min": 2e-5},
                                                            "the convolutional mean-teacher row with every player's learning rate x0.9 an epoch (500 steps) down to 2e-5: does a cooling step size stop the turn after 3,500-6,000 steps?"),
    "spatial-mean-pool+consistency1+entropy1+teacher0.99": ({"architecture": "spatial", "classifier_pooling": "mean", "consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99}, {},
                                                            "the spatial mean-teacher row with the softmax on z1 averaged per channel (16 values) and z2: within reach of 100 labels, where the 3,168 flattened values are not?"),
    "dcgan+consistency1+entropy1+teacher0.99+vat1-eps2": ({**HALI_SSL_CONV_UNLABELLED_COSTS, "vat_weight": 1.0, "vat_epsilon": 2.0}, {},
                                                         "the convolutional mean-teacher row plus virtual adversarial training (Miyato et al. 2018, weight 1, "
                                                         "epsilon 2): does smoothing q(y | x) in its most sensitive direction stop the turn and the seeds' spread?"),
    "dcgan+consistency1+entropy1+teacher0.99+vat1-eps0.5": ({**HALI_SSL_CONV_UNLABELLED_COSTS, "vat_weight": 1.0, "vat_epsilon": 0.5}, {},
                                                           "as vat1-eps2 with a perturbation of norm 0.5"),
    "dcgan+consistency1+entropy1+teacher0.99+vat1-eps1": ({**HALI_SSL_CONV_UNLABELLED_COSTS, "vat_weight": 1.0, "vat_epsilon": 1.0}, {},
                                                         "as vat1-eps0.5 with a perturbation of norm 1: does a wider smoothing lift the weakest seed (1)?"),
    "dcgan+consistency1+entropy1+teacher0.99+vat3-eps0.5": ({**HALI_SSL_CONV_UNLABELLED_COSTS, "vat_weight": 3.0, "vat_epsilon": 0.5}, {},
                                                           "as vat1-eps0.5 with the cost weighted 3: does more of it lift the weakest seed (1)?"),
    "dcgan+consistency1+entropy1+teacher0.999": ({"architecture": "dcgan", "channels": [32, 64], "consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.999}, {},
                                                 "the convolutional mean-teacher row with a slower teacher (decay 0.999): does a steadier target stop the turn?"),
}


class _TeacherView:
    """A semi-supervised HALI seen through its mean teacher's predictions, for `classification_error`."""

    def __init__(self, net) -> None:
        self.net, self.device = net, net.device

    def classify(self, batch):
        return self.net.classify(batch, teacher=True)


def diagnose_one(name: str, seconds: float, eval_every: int, seed: int, runs: Path, probe_train: int = 0) -> dict:
    """Train hypothesis ``name`` for ``seconds`` CPU seconds; its record (cached in ``runs``). With
    ``probe_train`` > 0 every evaluation also fits two linear probes (logistic regression) on the
    encoder's features, scored on the validation set: one on the 100 labelled images, one on the first
    ``probe_train`` training images with all their labels. They tell the features from the softmax:
    the first shows whether the softmax does worse than a fresh linear fit to the same labels (its
    own overfitting), the second whether the features still carry the classes at all."""
    import copy
    import time

    import torch

    from pogm.evaluate.metrics import classification_error
    from pogm.evaluate.probe import linear_probe
    from pogm.train.optimizers import lr_factor

    path = runs / f"{name}-{seconds:g}s-seed{seed}{'-probe' if probe_train else ''}.json"
    if path.is_file():
        return json.loads(path.read_text())
    model_options, train_options, meaning = DIAGNOSIS[name]
    splits, net, config, stream, groups, optimizers, labelled = adversarial_setup(
        "hali-ssl", {**PAPER_SSL_MODEL, **model_options}, {**GAN_TRAIN, **train_options}, seed, labels_per_class=10
    )
    # The Trainer's step decay (train.lr_decay, per epoch of the unlabelled stream), so that a
    # schedule is a hypothesis like any other; with the default lr_decay = 1 it changes nothing.
    steps_per_epoch = max(1, len(splits.train) // config.batch_size)
    schedulers = [torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: lr_factor(config, epoch)) for opt in optimizers.values()]
    curve, step, cpu, supervised = [], 0, 0.0, []

    labelled_set = splits.train.subset(labelled)

    def evaluate() -> None:
        net.eval()
        valid, test, train_labelled = (classification_error(net, d) for d in (splits.valid, splits.test, labelled_set))
        batch_stats = copy.deepcopy(net).train()  # batch norm on each evaluation batch's statistics instead of the running ones
        valid_batch_stats = classification_error(batch_stats, splits.valid)
        probes = {}
        if net.teacher is not None:  # the mean teacher's own predictions (classify_with="teacher"), measured on every teacher run
            teacher = _TeacherView(net)
            probes = {"teacher_valid_error": classification_error(teacher, splits.valid), "teacher_test_error": classification_error(teacher, splits.test)}
        if probe_train:  # linear_probe puts the model in evaluation mode; net.train() below undoes it
            probes |= {"probe_labelled_valid_error": 1.0 - linear_probe(net, labelled_set, splits.valid)["accuracy"],
                      "probe_all_labels_valid_error": 1.0 - linear_probe(net, splits.train, splits.valid, train_limit=probe_train)["accuracy"]}
        net.train()
        curve.append({"step": step, "train_cpu_seconds": round(cpu, 1), "valid_error": valid, "test_error": test,
                      "labelled_error": train_labelled, "valid_error_batch_stats": valid_batch_stats,
                      "supervised": sum(supervised) / max(len(supervised), 1), **probes})
        supervised.clear()
        print(f"{name} step {step} cpu {cpu:.0f}s valid {valid:.4f} test {test:.4f} labelled {train_labelled:.2f} "
              f"valid(batch stats) {valid_batch_stats:.4f} supervised {curve[-1]['supervised']:.4f}"
              + "".join(f" {k} {v:.4f}" for k, v in probes.items()), flush=True)

    def summary() -> dict:
        best = min(curve, key=lambda r: (r["valid_error"], r["step"]))
        teacher = {}
        if "teacher_valid_error" in curve[-1]:
            best_t = min(curve, key=lambda r: (r["teacher_valid_error"], r["step"]))
            teacher = {"teacher_best_step": best_t["step"], "teacher_best_valid_error": best_t["teacher_valid_error"],
                       "teacher_test_errors_out_of_10000": round(best_t["teacher_test_error"] * len(splits.test))}
        return {
            "name": name, "tests": meaning, "model_options": model_options, "train_options": {**GAN_TRAIN, **train_options},
            "seed": seed, "cpu_seconds": round(cpu, 1), "steps": step, "eval_every": eval_every, "probe_train": probe_train,
            "best_step": best["step"], "best_valid_error": best["valid_error"], "test_error_at_best_valid": best["test_error"],
            "test_errors_out_of_10000": round(best["test_error"] * len(splits.test)), "last_valid_error": curve[-1]["valid_error"],
            "last_test_error": curve[-1]["test_error"], **teacher, "curve": curve,
        }

    # The curve so far, rewritten at every evaluation: a run stopped early keeps what it measured
    # (the summary below reads only finished runs).
    runs.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.stem + ".partial.json")
    net.train()
    while cpu < seconds:
        start = time.process_time()
        terms = net.loss(stream.next_batch(), step=step)
        group_step(groups, optimizers, terms)
        step += 1
        if step % steps_per_epoch == 0:
            for scheduler in schedulers:
                scheduler.step()
        cpu += time.process_time() - start
        supervised.append(float(terms.get("supervised", torch.tensor(float("nan")))))
        if step % eval_every == 0:
            evaluate()
            partial.write_text(json.dumps({**summary(), "finished": False}, indent=1))
    if not curve or curve[-1]["step"] != step:
        evaluate()
    record = summary()
    path.write_text(json.dumps(record, indent=1))
    partial.unlink(missing_ok=True)
    return record


def diagnose(argv: list[str]) -> None:
    import argparse

    here = Path(__file__).parent
    parser = argparse.ArgumentParser(description="why semi-supervised HALI overfits its 100 labels: short runs of each hypothesis")
    parser.add_argument("command", choices=["diagnose"])
    parser.add_argument("--only", nargs="+", choices=list(DIAGNOSIS), default=list(DIAGNOSIS))
    parser.add_argument("--seconds", type=float, default=180.0, help="CPU seconds of training per hypothesis (one thread)")
    parser.add_argument("--eval-every", type=int, default=200, help="steps between evaluations on the validation and test sets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe-train", type=int, default=0,
                        help="with N > 0, linear probes of the encoder's features at every evaluation: on the 100 labels, and on the first N training images with all labels")
    parser.add_argument("--runs", default=str(here / "runs-hali-ssl"))
    parser.add_argument("--out", default=str(here / "results" / "hali_ssl_diagnosis.json"))
    parser.add_argument("--summary-only", action="store_true", help="train nothing: rewrite --out from the runs already cached (finished or stopped) for --seed")
    args = parser.parse_args(argv)
    for name in [] if args.summary_only else args.only:  # one at a time: each run is timed on one thread
        diagnose_one(name, args.seconds, args.eval_every, args.seed, Path(args.runs), args.probe_train)
    # The summary holds every cached run of this seed, whatever its length, and keeps the runs of the
    # summary already written that are not cached here (the cache is git-ignored; the summary is not).
    # Runs stopped before their budget are kept too, with "finished": false and the curve up to the stop.
    patterns = [f"*-seed{args.seed}{probe}{end}" for probe in ("", "-probe") for end in (".json", ".partial.json")]
    records = [json.loads(p.read_text()) for pattern in patterns for p in sorted(Path(args.runs).glob(pattern))]
    out = Path(args.out)
    if out.is_file():
        def key(r: dict) -> tuple:
            return r["name"], r["seed"], round(r["cpu_seconds"] / 10), r.get("probe_train", 0)

        cached = {key(r) for r in records}
        records += [r for r in json.loads(out.read_text())["runs"] if key(r) not in cached]
    order = {name: i for i, name in enumerate(DIAGNOSIS)}
    records.sort(key=lambda r: (order.get(r["name"], len(order)), r["cpu_seconds"]))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "hali_ssl_diagnosis", "machine": machine(), "paper": PAPER, "departures": DEPARTURES, "base_model": PAPER_SSL_MODEL, "runs": records}, indent=1))
    for r in records:
        print(f"{r['name']:>14} {r['steps']:>6} steps {r['cpu_seconds'] / 60:5.2f} CPU-min best valid {r['best_valid_error']:.4f} at {r['best_step']}, test errors {r['test_errors_out_of_10000']}")


def main(argv: list[str] | None = None) -> None:
    here = Path(__file__).parent
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["diagnose"]:
        diagnose(argv)
        return
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
