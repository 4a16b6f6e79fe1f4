"""HALI's paper table for `pogm reproduce` (`HALI_MNIST100`), with the paper's numbers and the
training settings behind it (benchmarks/hali_mnist.py reads the same).

Belghazi et al. (2018), Table 3: test errors out of 10,000 on MNIST with 100 labels of
semi-supervised HALI, beside ADGM (Maaløe et al. 2016), which the table trains as the
semi-supervised family's table does.
"""

from __future__ import annotations

from pogm.models.semi_supervised.paper_table import SELECTED, ssl_run
from pogm.tables import Metric, Row, RunSpec, Table

# ----------------------------------------------------------------------------- the paper's numbers
HALI = {"source": "HALI (Belghazi et al. 2018), Table 3: MNIST, 100 labels, test errors out of 10,000", "hali": 73, "adgm": 96, "feature_matching_gan": 93, "m1m2": 233}

# ----------------------------------------------------------------------------- training settings
GAN_TRAIN = {"lr": 2e-4, "adam_betas": [0.5, 0.999]}  # Adam for the adversarial models
# The network the table was measured with: a vector z_1 and MLP kernels (HALI's default on images is
# now Table 4's spatial z_1, about 9 times slower per step on a CPU). The paper does not say which
# network its MNIST result used.
# consistency_weight and entropy_weight: departures from section 7.2, whose softmax learns from the
# 100 labelled rows only. Those are memorised within about 100 steps and the validation error then
# rises while the adversarial features drift. Costs of q(y | z) on the unlabelled rows were the only
# settings of benchmarks/hali_mnist.py's diagnosis that moved the error (the paper's version: 2,481
# test errors after 2.5 CPU-minutes; consistency under the encoder's noise: 1,280; consistency and
# entropy: 963 after 4 CPU-minutes and still falling; benchmarks/results/hali_ssl_diagnosis.json).
# With the model's own q(y | z) as the consistency target a long run turns after about 3,000 steps
# (validation error 8.3%, then 15.9% at step 6,000 and 24.6% at 9,000): the target drifts with the
# features and entropy minimisation confirms its mistakes. A mean teacher's target (an average of
# the encoder and softmax, decay 0.99; Tarvainen & Valpola 2017) delays the turn: lowest validation
# error 5.85% at step 8,500 (681 test errors), then up from step 12,000 (34% at 46,000). The table
# trains both: section 7.2 as written (HALI_SSL_MODEL) and with the two costs and the mean teacher
# (HALI_SSL_UNLABELLED_COSTS), each selected at its lowest validation error.
HALI_SSL_MODEL = {"architecture": "mlp"}
HALI_SSL_UNLABELLED_COSTS = {**HALI_SSL_MODEL, "consistency_weight": 1.0, "entropy_weight": 1.0, "teacher_decay": 0.99}
# The same two costs on convolutional kernels (``architecture=dcgan``: q(z1 | x), G_x(z1) and D(x) as
# stride-2 convolutions of 32 and 64 channels, z1 a vector). The linear probes of the diagnosis showed
# that the MLP's features bound a linear softmax above 300 errors even with 10,000 labels (3.6-4.0%);
# on these kernels the same probe reads 2.9-3.0% by step 2,250, and the softmax's validation error
# reaches 3.0% at step 3,500 (25 CPU-minutes, seed 0; the MLP's lowest is 5.85% at step 8,500).
# Table 4's spatial z1 with the same costs learns slower on a CPU (12-13% validation error after
# 1,500 steps, 25 CPU-minutes). benchmarks/results/hali_ssl_conv.json holds both curves. The table's
# runs of this row (60 CPU-minutes, seeds 0-2): 347, 733 and 421 test errors, each at its lowest
# validation error (steps 3,500-6,000), after which every seed turns as the MLP's do.
HALI_SSL_CONV_UNLABELLED_COSTS = {**HALI_SSL_UNLABELLED_COSTS, "architecture": "dcgan", "channels": [32, 64]}
# The convolutional row plus virtual adversarial training (Miyato et al. 2018) on the unlabelled rows:
# KL(q(y | x) || q(y | x + r_adv)), r_adv of norm 0.5 in the direction that moves q(y | x) most. Not
# data augmentation (Table 3 lists methods without it): no image is changed, the softmax is made
# smooth around each one. benchmarks/hali_mnist.py's diagnosis, seed 1 (the convolutional row's
# weakest seed): validation error 8.4% at step 1,000 and 7.6% at 1,250, against 12.1% and 11.7% for
# the same seed without it (the cooling run of benchmarks/results/hali_ssl_conv_turn.json, its rates
# then at 0.81-0.9 of the row's); epsilon 2 diverged (13% at step 250, 41% at 1,250).
# benchmarks/results/hali_ssl_vat.json. Runs of this row at 60 CPU-minutes (seeds 0-2): 282, 545 and
# 267 test errors (365 ± 156, against the convolutional row's 500 ± 205); seed 1 was still improving
# at its last step. The table gives it the goal's 120 CPU-minutes (share 8): 282, 466 and 267
# (338 ± 111); only seed 1 gains from the second hour.
HALI_SSL_CONV_VAT = {**HALI_SSL_CONV_UNLABELLED_COSTS, "vat_weight": 1.0, "vat_epsilon": 0.5}
# Seed 1's 466 are one mistake (nines called fours) made in the first 500 steps by the pairing of
# seed 1's initial weights with seed 1's labels: swapping either for seed 0's removes it
# (benchmarks/results/hali_label_swap.json). So the row trains 2 starts on the run's labels for 9
# CPU-minutes each (about 1,000 steps; seed 1's pairing is at 8.4% validation error there, the others
# at 3.9-5.2%) and continues the one of lowest validation error to 120 in all
# (pogm.reproduce.train_best_start); the good seeds' best weights come at steps 2,000-5,000, well
# inside what remains.
VAT_STARTS = 2
VAT_START_FRACTION = 9 / 120

# ----------------------------------------------------------------------------- the table
HALI_MNIST100 = Table(
    name="hali-mnist100",
    description="Semi-supervised HALI on MNIST with 100 labels: test errors out of 10,000, beside ADGM",
    paper=HALI["source"],
    runs=(
        RunSpec("hali-ssl", model="hali-ssl", source="mnist", labels=10, model_options=HALI_SSL_MODEL, train_options=GAN_TRAIN),
        RunSpec("hali-ssl-unlabelled-costs", model="hali-ssl", source="mnist", labels=10, model_options=HALI_SSL_UNLABELLED_COSTS, train_options=GAN_TRAIN),
        # share 4: 60 CPU-minutes a run, half the goal's 120 (a conv step costs about 4.5 MLP steps)
        RunSpec("hali-ssl-conv-unlabelled-costs", model="hali-ssl", source="mnist", labels=10, model_options=HALI_SSL_CONV_UNLABELLED_COSTS,
                train_options=GAN_TRAIN, share=4.0),
        # share 8: the goal's 120 CPU-minutes a run (at most 300 test errors within 120 CPU-minutes of one thread),
        # the best of VAT_STARTS starts of 9 minutes continued (the starts included)
        RunSpec("hali-ssl-conv-vat-starts", model="hali-ssl", source="mnist", labels=10, model_options=HALI_SSL_CONV_VAT, train_options=GAN_TRAIN, share=8.0,
                starts=VAT_STARTS, start_fraction=VAT_START_FRACTION),
        ssl_run("adgm"),
    ),
    rows=(
        Row("semi-supervised HALI", f"test errors out of 10,000, 100 labels {SELECTED}", HALI["hali"] / 10000, Metric("hali-ssl", "test_error"), unit="errors/10,000"),
        Row("semi-supervised HALI + mean-teacher consistency and entropy (not in the paper)", f"test errors out of 10,000, 100 labels {SELECTED}", HALI["hali"] / 10000,
            Metric("hali-ssl-unlabelled-costs", "test_error"), unit="errors/10,000"),
        Row("semi-supervised HALI, convolutional, + mean-teacher consistency and entropy (not in the paper)", f"test errors out of 10,000, 100 labels {SELECTED}",
            HALI["hali"] / 10000, Metric("hali-ssl-conv-unlabelled-costs", "test_error"), unit="errors/10,000"),
        Row("semi-supervised HALI, convolutional, + mean-teacher consistency, entropy and virtual adversarial training, best of 2 starts (not in the paper)",
            f"test errors out of 10,000, 100 labels {SELECTED}", HALI["hali"] / 10000, Metric("hali-ssl-conv-vat-starts", "test_error"), unit="errors/10,000"),
        Row("ADGM (as HALI's Table 3 quotes it)", f"test errors out of 10,000, 100 labels {SELECTED}", HALI["adgm"] / 10000, Metric("adgm", "test_error"), unit="errors/10,000"),
    ),
    default_budget=675.0,  # CPU-minutes for all 3 seeds (Table.seeds): 225 per seed, 15 a run, 60 for the convolutional row, 120 for the VAT row
    notes=(
        f"Table 3 also lists the feature-matching GAN ({HALI['feature_matching_gan']} errors), which pogm does not "
        f"implement, and M1+M2 ({HALI['m1m2']}; see the ssl-mnist100 table). HALI: MLP kernels of 500-500, z of "
        "(64, 32), grey-level MNIST, Adam 2e-4 with betas (0.5, 0.999). The second row adds (not in the paper) the "
        "consistency of q(y | z) under noise to a mean teacher (decay 0.99) and its entropy on the unlabelled rows, weight 1 each; the first is "
        "section 7.2 as written. The third trains the second's costs on convolutional kernels (z1 a vector; "
        "stride-2 convolutions of 32 and 64 channels in q(z1 | x), G_x(z1) and D(x)) for 60 CPU-minutes a run; the fourth adds "
        "virtual adversarial training (Miyato et al. 2018, weight 1, perturbations of norm 0.5) on the unlabelled rows and trains for "
        "the 120 CPU-minutes a run that pogm's goal of 300 test errors allows (from one start: 338 ± 111 over seeds 0-2), as the best of "
        "2 starts: two initialisations on the run's labels for 9 CPU-minutes each, the one of lowest validation error continued (the starts "
        "count against the 120). "
        "ADGM: the adgm-mnist100-cpu recipe."
    ),
)
