"""factVAE's paper table for `pogm reproduce` (`FACTVAE_MOCAP`), with the paper's numbers and the
training settings behind it (benchmarks/factvae_mocap.py reads the same).

Ainsworth, Foti & Fox (2018), Table 1: the test log-likelihood of a held-out walking trial of CMU
subject 07 after training on 1, 2, 5 or 10 trials, for JMVAE+ and factVAE without (lambda = 0)
and with (lambda = 1) the group lasso. The paper's scale is its own, so the table checks the
orderings its claims rest on, on the six walking trials at hand.
"""

from __future__ import annotations

import itertools
import random

from pogm.tables import Claim, Mean, Row, RunSpec, Table

# ----------------------------------------------------------------------------- the paper's numbers
# lambda=0.1 and "lambda=0.1 per example" are not in the paper (benchmarks/factvae_mocap.py runs the
# first; the table checks the paper's lambda = 1 claims with the second as well).
FACTVAE_SOURCE = "Ainsworth, Foti & Fox 2018, Table 1 (CMU subject 07 walking, test log-likelihood of a held-out trial)"
FACTVAE = {
    "JMVAE+": {1: -620, 2: -166, 5: -77, 10: 54},
    "lambda=0": {1: -600, 2: -117, 5: -21, 10: 89},
    "lambda=1": {1: -555, 2: 9, 5: -13, 10: 83},
    "lambda=0.1": {1: None, 2: None, 5: None, 10: None},
    "lambda=0.1 per example": {1: None, 2: None, 5: None, 10: None},
}

# ----------------------------------------------------------------------------- training settings
MOCAP_TRIALS = ["07_01", "07_02", "07_05", "07_09", "07_10", "07_11"]  # the walking trials on disk
# name -> (registered model, model settings); the rows of Table 1
FACTVAE_MODELS = {
    "JMVAE+": ("jmvae-plus", {"sparsity": 0.0}),
    "lambda=0": ("factvae", {"sparsity": 0.0}),
    "lambda=1": ("factvae", {"sparsity": 1.0}),
    "lambda=0.1": ("factvae", {"sparsity": 0.1}),  # not in the paper: a milder penalty for this data's scale
    # Not in the paper: the shrinkage eta * lambda per step as Algorithm 1 writes it, theta's prior once
    # per data set, lambda = 0.1: the best validation bound of lambda in {0.03, 0.1, 0.3, 1} on the 1- and
    # 2-trial choices, seed 0 (benchmarks/factvae_variants.py, benchmarks/results/factvae_lambda_pe.json).
    "lambda=0.1 per example": ("factvae", {"sparsity": 0.1, "prior_scale": "lasso-per-example"}),
}
# The generators are act -> linear per group, as the oi-VAE's mocap generator. The models' defaults
# are the paper's reading (`pogm.models.factvae.factvae`): Algorithm 1's shrinkage, unit-variance
# Phi, the N(0, I) prior on every network weight outside Phi, both priors once per data set.
# benchmarks/factvae_lasso.py measures the per-example reading: lambda = 1 cuts all 80 columns, and
# the prior on the encoders collapses z.
FACTVAE_MODEL_SETTINGS = {"z_dim": 16, "group_input_dim": 8, "encoder_hidden": [64], "encoder_features": 32, "decoder_hidden": []}
FACTVAE_TRAIN_SETTINGS = {"lr": 1e-3, "batch_size": 100, "kl_warmup_steps": 2000}


def mocap_choices(size: int, count: int, seed: int, new_training_trials: bool = False) -> list[tuple[list[str], str]]:
    """``count`` distinct (training trials, held-out trial) pairs with ``size`` training trials, in
    a shuffled order fixed by ``seed``. With ``new_training_trials`` a pair is taken only while its
    training trials are not all used by the pairs before it (the rest follow in order), so that a few
    one-trial choices train on different walks; the first pair is the same either way."""
    rng = random.Random(seed * 1000 + size)
    pairs = [(list(train), held) for held in MOCAP_TRIALS for train in itertools.combinations([t for t in MOCAP_TRIALS if t != held], size)]
    rng.shuffle(pairs)
    if new_training_trials:
        chosen, used = [], set()
        for train, held in pairs:
            if not set(train) <= used:
                chosen.append((train, held))
                used |= set(train)
        pairs = chosen + [pair for pair in pairs if pair not in chosen]
    return pairs[:count]


# ----------------------------------------------------------------------------- the table
FACTVAE_ROWS = ("JMVAE+", "lambda=0", "lambda=1", "lambda=0.1 per example")
FACTVAE_SIZES = (1, 2, 5)
# Choices of (training trials, held-out trial) per size, each row comparing the means over them. One
# training walk decides the 1-trial rows: on the first choice the models rank one way on the
# validation walk and the other on the held-out one, and on three choices the ordering followed the
# walk (JMVAE+ ahead by 3-16 nats a frame trained on walk 02, factVAE level or ahead on 09), so each
# of the six walks trains once.
# Two training trials: three choices too, so that no row rests on one pair of walks. With five
# training trials no walk is left to validate and the last weights are scored, which moved the lambda
# rows by 1-4 nats with the run length on one held-out walk: all six held-out walks (leave one out)
# average that over the walks.
FACTVAE_CHOICES = {1: 6, 2: 3, 5: 6}


def factvae_choices(size: int) -> list[tuple[list[str], str]]:
    """The table's (training trials, held-out trial) pairs with ``size`` training trials."""
    return mocap_choices(size, FACTVAE_CHOICES[size], 0, new_training_trials=True)


def factvae_run_name(row: str, train: list[str], held_out: str) -> str:
    return f"{row.replace('=', '').replace(' ', '-')}-train{'+'.join(t[-2:] for t in train)}-test{held_out[-2:]}"


def validation_trial(train: list[str], held_out: str) -> str | None:
    """The walking trial that selects the weights of a run on ``train``: the first of
    `MOCAP_TRIALS` neither trained on nor held out, or None when every trial is taken."""
    return next((t for t in MOCAP_TRIALS if t not in train and t != held_out), None)


def factvae_run_spec(row: str, train: list[str], held_out: str) -> RunSpec:
    """A run of ``row`` on the trials ``train``, scored on ``held_out``. Where a walking trial is
    left, it validates: the bound on it every ~150 steps (a trial is about 300 frames, 3 steps of
    100) picks the weights the held-out trial is scored with, because on one or two trials every
    model overfits within a CPU-minute. Otherwise (5 training trials) the last weights are scored.
    log p(x) is estimated with a proposal refined per frame (`pogm.evaluate.refined`): with the
    encoder's own q as the proposal the bound on a held-out walk sat below it by up to 0.1 nats a
    frame at the median for JMVAE+ and 0.1-1.7 for factVAE (up to 5), as much as the gaps the rows
    judge (benchmarks/results/factvae_proposal.json)."""
    model, settings = FACTVAE_MODELS[row]
    valid = validation_trial(train, held_out)
    if valid is None:
        train_options = {**FACTVAE_TRAIN_SETTINGS, "eval_every": 10**6}  # one evaluation, at the end
        data_options = {"train_trials": train, "test_trials": [held_out]}
    else:
        train_options = {**FACTVAE_TRAIN_SETTINGS, "eval_every": max(1, 50 // len(train))}
        data_options = {"train_trials": train, "valid_trials": [valid], "test_trials": [held_out]}
    return RunSpec(
        factvae_run_name(row, train, held_out), model=model, source="mocap",
        model_options={**FACTVAE_MODEL_SETTINGS, **settings, "prox_lr": 1e-2},
        train_options=train_options, data_options=data_options,
        evaluate="factvae_metrics", evaluate_options={"iw_samples": 1000, "weights": "latest" if valid is None else "best", "proposal": "refined"},
    )


def _factvae_mean(row: str, size: int) -> Mean:
    return Mean(tuple(factvae_run_name(row, train, held) for train, held in factvae_choices(size)), "test_log_likelihood")


def _factvae_rows(size: int) -> list[Row]:
    trials = f"{size} training trial{'s' if size > 1 else ''}"
    # (better, worse, what is measured, the paper's row whose number the better row stands for)
    claims = [
        ("lambda=0", "JMVAE+", "factVAE (lambda = 0) above JMVAE+", "lambda=0"),
        ("lambda=1", "lambda=0", "factVAE lambda = 1 above lambda = 0", "lambda=1"),
        ("lambda=0.1 per example", "lambda=0", "the paper's lambda = 1 claim with lambda = 0.1 per example and theta's prior once per data set (not in the paper)", "lambda=1"),
    ]
    return [
        Row(f"{better} vs {worse}, {trials}", f"{what}: held-out log-likelihood per frame (IW, k=1000, proposal refined per frame)" + (f", mean of {FACTVAE_CHOICES[size]} choices of trials" if FACTVAE_CHOICES[size] > 1 else ""), 1.0,
            Claim(_factvae_mean(better, size), _factvae_mean(worse, size), "higher"), direction="higher", unit="claim",
            paper_detail=f"{FACTVAE[paper_row][size]} > {FACTVAE[worse][size]}")
        for better, worse, what, paper_row in claims
    ]


FACTVAE_MOCAP = Table(
    name="factvae-mocap",
    description="factVAE on CMU walking: product of experts vs JMVAE+, and the group lasso, by held-out log-likelihood",
    paper=FACTVAE_SOURCE,
    runs=tuple(factvae_run_spec(row, train, held) for size in FACTVAE_SIZES for train, held in factvae_choices(size) for row in FACTVAE_ROWS),
    rows=tuple(row for size in FACTVAE_SIZES for row in _factvae_rows(size)),
    default_budget=180.0,  # CPU-minutes for all 3 seeds (Table.seeds): 1 per run and seed, about 8,000 steps (60 runs a seed)
    notes=(
        "The paper's normalisation, network sizes and run lengths are not stated, so its log-likelihoods are on a "
        "scale of their own; the rows check the orderings its claims rest on (sec. 4.2). Each size trains on "
        "choices of (training trials, held-out trial) among the six walking trials of subject 07 on disk and compares "
        f"means over them: {FACTVAE_CHOICES[1]} with 1 trial and {FACTVAE_CHOICES[2]} with 2, each on other training walks, "
        f"{FACTVAE_CHOICES[5]} with 5 (every walk held out once); the 10-trial column cannot be run. Every run is trained once per seed; every frame of the held-out trial is scored with all groups observed, "
        "by importance sampling (k = 1,000) from a proposal fitted to p(z | x) per frame and mixed with the encoder's q "
        "(with the encoder's q alone factVAE's bound sat 0.1-1.7 nats a frame lower at the median, up to 5, JMVAE+'s up to 0.1, up to 1.2). "
        "With 1 or 2 training trials a third trial validates and the weights of the best validation bound are scored "
        "(every model overfits one trial within a CPU-minute); with 5 no trial is left and the last weights are scored. "
        "lambda counts once per data set (prior_scale=data-set: eta * lambda / N per step): read per example, as "
        "Algorithm 1 writes it, lambda = 1 cuts every column of Phi on these data (benchmarks/factvae_lasso.py). "
        "The rows 'lambda=0.1 per example' are not in the paper: the shrinkage eta * lambda per step, theta's prior once "
        "per data set (prior_scale=lasso-per-example), lambda = 0.1 chosen on the validation walks (benchmarks/factvae_variants.py)."
    ),
)
