"""The training settings behind the paper tables, shared by `pogm reproduce` and the benchmark
scripts (benchmarks/*.py import them from here).
"""

from __future__ import annotations

import itertools
import random

# ----------------------------------------------------------------------------- MNIST, 100 labels
# Every model trains with its packaged CPU-budget recipe (`pogm recipes`, src/pogm/recipes/*-cpu.yaml).
# M2 and M1+M2: Kingma et al.'s networks (M2: one hidden layer of 500 softplus units, z of 50;
# M1: two layers of 600, z of 50), plus batch normalisation in M2's networks (measured: 19% vs 24%
# test error after 6 and 5 epochs of M2 without it), fp32 (bf16 ran more steps per CPU-second but
# learned less per CPU-minute) and a decaying Adam (tuned for the error per CPU-minute).
SSL_RECIPES = {"m2": "m2-mnist100-cpu", "m1m2": "m1m2-mnist100-cpu", "adgm": "adgm-mnist100-cpu", "sdgm": "sdgm-mnist100-cpu"}
SSL_MODEL_SETTINGS: dict[str, dict] = {"m2": {}, "m1m2": {}, "adgm": {}, "sdgm": {}}
SSL_TRAIN_SETTINGS: dict[str, dict] = {"m2": {}, "m1m2": {}, "adgm": {}, "sdgm": {}}

# ----------------------------------------------------------------------------- adversarial models
GAN_TRAIN = {"lr": 2e-4, "adam_betas": [0.5, 0.999]}

# ----------------------------------------------------------------------------- Hybrid VAE
HYBRID_MODEL_SETTINGS = {
    "mnist-keypoints": {"z_samples": 1, "h_samples": 1},
    "yaleb": {"z_samples": 1, "h_samples": 1, "channels": [16, 32, 64, 128]},  # 64x64: one more halving
    "depth": {"z_samples": 1, "h_samples": 1},
}
HYBRID_TRAIN_SETTINGS = {"lr": 1e-3, "batch_size": 32, "labelled_batch_size": 32, "eval_elbo_limit": 1000}


def hybrid_overrides(source: str, model: str, n: int, m: int | None, eval_steps: int = 250) -> dict:
    """``{"model": ..., "train": ...}`` of an F-VAE(n) (``model="fvae"``) or H-VAE(n, m) run on
    ``source``, evaluating about every ``eval_steps`` optimizer steps whatever the epoch length."""
    model_settings = {k: v for k, v in HYBRID_MODEL_SETTINGS[source].items() if model == "hvae" or k != "h_samples"}
    pool = m if model == "hvae" else n
    batch = HYBRID_TRAIN_SETTINGS["batch_size"] if model == "hvae" else HYBRID_TRAIN_SETTINGS["labelled_batch_size"]
    eval_every = max(1, eval_steps // max(1, pool // batch))
    return {"model": model_settings, "train": {**HYBRID_TRAIN_SETTINGS, "eval_every": eval_every}}


# ----------------------------------------------------------------------------- factVAE on motion capture
MOCAP_TRIALS = ["07_01", "07_02", "07_05", "07_09", "07_10", "07_11"]  # the walking trials on disk
# name -> (registered model, model settings); the rows of Table 1
FACTVAE_MODELS = {
    "JMVAE+": ("jmvae-plus", {"sparsity": 0.0}),
    "lambda=0": ("factvae", {"sparsity": 0.0}),
    "lambda=1": ("factvae", {"sparsity": 1.0}),
    "lambda=0.1": ("factvae", {"sparsity": 0.1}),  # not in the paper: a milder penalty for this data's scale
}
# The generators are act -> linear per group, as the oi-VAE's mocap generator: with a hidden layer
# the N(0, I) prior on theta (weight 1 per example, eq. 9) pulled the decoder to zero and z collapsed.
FACTVAE_MODEL_SETTINGS = {"z_dim": 16, "group_input_dim": 8, "encoder_hidden": [64], "encoder_features": 32, "decoder_hidden": []}
FACTVAE_TRAIN_SETTINGS = {"lr": 1e-3, "batch_size": 100, "kl_warmup_steps": 2000}


def mocap_choices(size: int, count: int, seed: int) -> list[tuple[list[str], str]]:
    """``count`` distinct (training trials, held-out trial) pairs with ``size`` training trials."""
    rng = random.Random(seed * 1000 + size)
    pairs = [(list(train), held) for held in MOCAP_TRIALS for train in itertools.combinations([t for t in MOCAP_TRIALS if t != held], size)]
    rng.shuffle(pairs)
    return pairs[:count]
