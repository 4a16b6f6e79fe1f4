"""Settings of the hali-mnist100 table's virtual-adversarial row, at the goal's 120 CPU-minutes a run.

The table's row (`HALI_SSL_CONV_VAT`: weight 1, perturbations of norm 0.5) trains as
``pogm reproduce hali-mnist100 --rows ...``; this script trains the same row with another
perturbation norm (``--epsilon``) through the same machinery (`pogm.reproduce.table.reproduce`:
resumable runs, selection at the lowest validation error, test errors there), as a side table of
its own so that the main table's budget and runs are untouched:

    POGM_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/hali_vat_settings.py --epsilon 1 --seeds 1

writes reproduce/hali-vat-eps1/hali-vat-eps1.{md,json} (runs in reproduce/hali-vat-eps1/runs/,
git-ignored); rerunning resumes an interrupted run and reuses finished ones.
"""

from __future__ import annotations

import argparse

from pogm.models.hali.paper_table import GAN_TRAIN, HALI, HALI_SSL_CONV_VAT
from pogm.models.semi_supervised.paper_table import SELECTED
from pogm.reproduce.table import register_table, reproduce
from pogm.tables import Metric, Row, RunSpec, Table

MINUTES_PER_RUN = 120.0  # the goal's budget: 300 test errors within 120 CPU-minutes of one thread


def vat_table(epsilon: float) -> Table:
    """The VAT row of hali-mnist100 with perturbations of norm ``epsilon``, 120 CPU-minutes a run."""
    name = f"hali-vat-eps{epsilon:g}"
    run = RunSpec(f"hali-ssl-conv-vat-eps{epsilon:g}", model="hali-ssl", source="mnist", labels=10,
                  model_options={**HALI_SSL_CONV_VAT, "vat_epsilon": epsilon}, train_options=GAN_TRAIN)
    row = Row(f"semi-supervised HALI, convolutional, mean teacher, entropy, VAT of norm {epsilon:g} (not in the paper)",
              f"test errors out of 10,000, 100 labels {SELECTED}", HALI["hali"] / 10000, Metric(run.name, "test_error"), unit="errors/10,000")
    return Table(name=name, description=f"the hali-mnist100 VAT row with perturbations of norm {epsilon:g}", paper=HALI["source"],
                 runs=(run,), rows=(row,), default_budget=MINUTES_PER_RUN * 3,
                 notes=f"hali-mnist100's VAT row (weight 1) with vat_epsilon={epsilon:g} instead of 0.5, {MINUTES_PER_RUN:g} CPU-minutes a run.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epsilon", type=float, required=True, help="norm of the virtual adversarial perturbation (the table's: 0.5)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, choices=[1, 2])
    args = parser.parse_args()
    table = register_table(vat_table(args.epsilon))
    reproduce(table.name, out=f"reproduce/{table.name}", seeds=args.seeds, jobs=args.jobs)


if __name__ == "__main__":
    main()
