"""Settings of the hali-mnist100 table's virtual-adversarial row, at the goal's 120 CPU-minutes a run.

The table's row (`HALI_SSL_CONV_VAT`: weight 1, perturbations of norm 0.5) trains as
``pogm reproduce hali-mnist100 --rows ...``; this script trains the same row with another
perturbation norm (``--epsilon``), with the class-balance cost (``--balance-weight``: KL of the
batch's mean q(y | z^) from uniform, CatGAN's marginal entropy), with the unlabelled-row costs
ramped up over their first steps (``--rampup-steps``, Laine & Aila 2017) or from the best of several
starts (``--starts K --start-minutes W``: K initialisations on the run's labels for W CPU-minutes
each, the one of lowest validation error continued, all within the 120; `pogm.reproduce.train_best_start`)
through the same machinery
(`pogm.reproduce.table.reproduce`: resumable runs, selection at the lowest validation error, test
errors there), as a side table of its own so that the main table's budget and runs are untouched:

    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/hali_vat_settings.py --epsilon 1 --seeds 1
    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/hali_vat_settings.py --balance-weight 1 --seeds 1
    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/hali_vat_settings.py --starts 2 --start-minutes 9 --seeds 1

write reproduce/hali-vat-eps1/hali-vat-eps1.{md,json} and
reproduce/hali-vat-eps0.5-balance1/hali-vat-eps0.5-balance1.{md,json} (runs under each folder's
runs/, git-ignored); rerunning resumes an interrupted run and reuses finished ones.

``--confusion RUN_DIR ...`` trains nothing: it classifies the test images with each run's best
weights and writes which classes its errors confuse (benchmarks/results/hali_ssl_confusion.json):

    POGM_DATA=../shared/data python benchmarks/hali_vat_settings.py --confusion reproduce/hali-vat-x2/runs/hali-mnist100/*

``--label-draws SEED ...`` trains nothing either: it scores each seed's 100 labelled images by a
nearest neighbour in pixel space (is a seed's label draw the hard one?):

    POGM_DATA=../shared/data python benchmarks/hali_vat_settings.py --label-draws 0 1 2 3 4 5 6 7 --out benchmarks/results/hali_label_draws.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from pogm.models.hali.paper_table import GAN_TRAIN, HALI, HALI_SSL_CONV_VAT
from pogm.models.semi_supervised.paper_table import SELECTED
from pogm.reproduce.runs import selected_record
from pogm.reproduce.table import register_table, reproduce
from pogm.tables import Metric, Row, RunSpec, Table

MINUTES_PER_RUN = 120.0  # the goal's budget: 300 test errors within 120 CPU-minutes of one thread


def vat_table(epsilon: float, balance_weight: float = 0.0, rampup_steps: int = 0, starts: int = 1, start_minutes: float = 0.0) -> Table:
    """The VAT row of hali-mnist100 with perturbations of norm ``epsilon``, the class-balance
    cost at ``balance_weight``, the unlabelled costs ramped up over ``rampup_steps`` and the best
    of ``starts`` starts of ``start_minutes``, 120 CPU-minutes a run."""
    setting = (
        f"eps{epsilon:g}" + (f"-balance{balance_weight:g}" if balance_weight else "") + (f"-rampup{rampup_steps}" if rampup_steps else "")
        + (f"-starts{starts}x{start_minutes:g}" if starts > 1 else "")
    )
    options = {**HALI_SSL_CONV_VAT, "vat_epsilon": epsilon, "balance_weight": balance_weight}
    if rampup_steps:
        options["unlabelled_rampup_steps"] = rampup_steps
    run = RunSpec(
        f"hali-ssl-conv-vat-{setting}", model="hali-ssl", source="mnist", labels=10, model_options=options, train_options=GAN_TRAIN,
        starts=starts, start_fraction=start_minutes / MINUTES_PER_RUN,
    )
    what = (
        f"VAT of norm {epsilon:g}" + (f", class balance {balance_weight:g}" if balance_weight else "") + (f", costs ramped up over {rampup_steps} steps" if rampup_steps else "")
        + (f", best of {starts} starts of {start_minutes:g} CPU-min" if starts > 1 else "")
    )
    row = Row(f"semi-supervised HALI, convolutional, mean teacher, entropy, {what} (not in the paper)",
              f"test errors out of 10,000, 100 labels {SELECTED}", HALI["hali"] / 10000, Metric(run.name, "test_error"), unit="errors/10,000")
    return Table(name=f"hali-vat-{setting}", description=f"the hali-mnist100 VAT row with {what}", paper=HALI["source"],
                 runs=(run,), rows=(row,), default_budget=MINUTES_PER_RUN * 3,
                 notes=f"hali-mnist100's VAT row (weight 1, norm 0.5) with vat_epsilon={epsilon:g}, balance_weight={balance_weight:g}, "
                       f"unlabelled_rampup_steps={rampup_steps}, {starts} start(s) of {start_minutes:g} CPU-min, {MINUTES_PER_RUN:g} CPU-minutes a run "
                       "(the starts included).")


def confusion(run_dir: Path) -> dict:
    """Test errors of a run's best weights by (true class, predicted class); the seeds of its
    initialisation and labels; its validation error at each evaluation of its first 4,000 steps."""
    from pogm.checkpoint import read_config, read_metrics
    from pogm.data.dataset import evaluation_view
    from pogm.data.streams import iterate_batches
    from pogm.runs import load_run

    run = load_run(run_dir, weights="best")
    counts = torch.zeros(10, 10, dtype=torch.long)  # [true, predicted]
    with torch.no_grad():
        for batch in iterate_batches(evaluation_view(run.data.test), 500, run.model.device):
            predicted = run.model.classify(batch).argmax(-1)  # [B]
            counts.index_put_((batch.y, predicted), torch.ones_like(predicted), accumulate=True)
    errors = counts.clone().fill_diagonal_(0)
    pairs = sorted(((errors[i, j].item(), i, j) for i in range(10) for j in range(10) if errors[i, j]), reverse=True)
    config = read_config(run_dir)
    early = [(r["step"], round(r["valid_error"], 4)) for r in read_metrics(run_dir) if "valid_error" in r and r["step"] <= 4000]
    return {"run": str(run_dir), "seed": config["seed"], "label_seed": config["data"].get("label_seed", config["seed"]),
            "best_step": selected_record(read_metrics(run_dir))["step"], "test_errors": int(errors.sum()),
            "errors_by_true_class": errors.sum(1).tolist(),
            "largest_confusions": [{"true": i, "predicted": j, "errors": n} for n, i, j in pairs[:5]],
            "valid_error_by_step": early}


def label_draw(seed: int) -> dict:
    """How hard seed ``seed``'s 100 labelled images make MNIST in pixel space: the test errors of
    a nearest neighbour among them (Euclidean, grey levels), and how many test nines it calls fours."""
    from pogm.runs import choose_labels, load_data

    data = load_data("mnist", {"binarize": False})
    labelled = choose_labels(data, 10, seed, True)
    x_train = data.train.x["x"].reshape(len(data.train.y), -1).float()  # [N, 784]
    x_test = data.test.x["x"].reshape(len(data.test.y), -1).float()  # [T, 784]
    nearest = torch.cdist(x_test, x_train[labelled]).argmin(1)  # [T]
    predicted, true = data.train.y[labelled][nearest], data.test.y  # [T], [T]
    return {"label_seed": seed, "nearest_neighbour_test_errors": int((predicted != true).sum()),
            "nines_called_fours": int(((true == 9) & (predicted == 4)).sum()), "fours_called_nines": int(((true == 4) & (predicted == 9)).sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, default=HALI_SSL_CONV_VAT["vat_epsilon"], help="norm of the virtual adversarial perturbation (the table's: 0.5)")
    parser.add_argument("--balance-weight", type=float, default=0.0, help="weight of KL(batch mean of q(y | z^) || uniform) on the unlabelled rows (the table's: 0)")
    parser.add_argument("--rampup-steps", type=int, default=0, help="steps over which the unlabelled-row costs rise to full weight (the table's: 0)")
    parser.add_argument("--starts", type=int, default=1, help="initialisations to choose from by validation error (the table's: 1)")
    parser.add_argument("--start-minutes", type=float, default=9.0, help="CPU-minutes each start trains before the choice (with --starts > 1)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, choices=[1, 2])
    parser.add_argument("--confusion", type=Path, nargs="+", help="run directories to analyse instead of training")
    parser.add_argument("--label-draws", type=int, nargs="+", metavar="SEED", help="score these seeds' labelled images by a pixel nearest neighbour instead of training")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/hali_ssl_confusion.json"))
    args = parser.parse_args()
    if args.confusion or args.label_draws:
        torch.set_num_threads(1)
        result = [confusion(run_dir) for run_dir in args.confusion] if args.confusion else [label_draw(seed) for seed in args.label_draws]
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        print(json.dumps(result, indent=1))
        return
    table = register_table(vat_table(args.epsilon, args.balance_weight, args.rampup_steps, args.starts, args.start_minutes))
    reproduce(table.name, out=f"reproduce/{table.name}", seeds=args.seeds, jobs=args.jobs)


if __name__ == "__main__":
    main()
