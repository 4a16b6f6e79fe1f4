"""The Hybrid VAE's paper table for `pogm reproduce` (`HYBRID_VAE`), with the paper's numbers and
the training settings behind it (benchmarks/hybrid_table.py reads the same).

Tulyakov, Fitzgibbon & Nowozin (2017), Table 1a (MultiPIE), give -log p(d, h) of the test pairs
by the bound of eq. 2 (lower is better; negative because the images are densities). MultiPIE is
not available, so the table checks the paper's claims (F-VAE improves with more labelled pairs;
H-VAE(n, m) beats F-VAE with n, 10n and all labelled pairs) on MNIST with keypoints and on
synthetic depth maps of a hand, every run for the same CPU time.
"""

from __future__ import annotations

from pogm.tables import Claim, Metric, Row, RunSpec, Table

# ----------------------------------------------------------------------------- the paper's numbers
# The table's text extraction is garbled; these four values are the ones that section 4.3 confirms
# in words ("H-VAE(500, 30K) outperforms F-VAE(5K)", "H-VAE(5K, 30K) shows better NLL as compared
# to F-VAE(30K)").
HYBRID_SOURCE = "Tulyakov, Fitzgibbon & Nowozin, Hybrid VAE, Table 1a (MultiPIE) and sec. 4.3"
HYBRID_MULTIPIE = {"F-VAE(5K)": -23.00, "F-VAE(30K)": -31.25, "H-VAE(500, 30K)": -25.75, "H-VAE(5K, 30K)": -32.36}
HYBRID_CLAIMS = [
    "H-VAE(n, m) has a better test NLL than F-VAE(n)",
    "H-VAE with few labels and many unlabelled images approaches F-VAE trained on many labels",
]

# ----------------------------------------------------------------------------- training settings
# The image likelihood p(d|z) of each source's runs. The paper's predicts a variance per pixel
# (``gaussian-predicted``, ``depth``). On mnist-keypoints that collapses z (the KL of q(z|d,h) falls
# to about 2 nats and the reconstructions to the mean image), so its runs put a floor of 0.05 under
# the predicted standard deviation (``gaussian-predicted:0.05``). On the depth maps the paper's
# ``depth`` uses z, but its density is unbounded there: 799 of the 3.0 million observed training
# values sit exactly at 0 (the sensor clips at its near range), so a predicted variance may shrink
# without limit. Runs of a few thousand steps show it: F-VAE(500) overfits until its gradient is
# non-finite (step 11,243, seed 1) and H-VAE(500, 19500) with seed 2 sits on a plateau (validation
# bound -129 from step 600 to 4,861). The depth runs therefore floor the predicted standard
# deviation at 0.003 (``depth-predicted:0.003``), below the sensor's noise (3 mm over the 0.6 m
# range: 0.005), so no model that fits the data is limited by it; with it the same H-VAE seed
# leaves the plateau within 1,218 steps (bound 91 against -133). The measurements are in the
# docstring of `pogm.models.hybrid.hybrid`. yaleb was not measured and keeps its source's fixed variance.
# The floor does not remove a second plateau: runs whose predicted standard deviation stays near its
# initial 1 while the depth residuals are a few hundredths (H-VAE(500, 19500) seed 1 and
# F-VAE(20000) seed 2 near -130 for thousands of steps). The depth runs therefore start that
# standard deviation at 0.1 (``init_std=0.1``: the bias of the log-variance outputs at 2 log 0.1);
# the paper does not state its initialisation.
HYBRID_LIKELIHOOD = {"mnist-keypoints": "gaussian-predicted:0.05", "depth": "depth-predicted:0.003"}
HYBRID_MODEL_SETTINGS = {
    "mnist-keypoints": {"z_samples": 1, "h_samples": 1, "likelihood": HYBRID_LIKELIHOOD["mnist-keypoints"]},
    "yaleb": {"z_samples": 1, "h_samples": 1, "channels": [16, 32, 64, 128]},  # 64x64: one more halving
    "depth": {"z_samples": 1, "h_samples": 1, "likelihood": HYBRID_LIKELIHOOD["depth"], "init_std": 0.1},
}
HYBRID_TRAIN_SETTINGS = {"lr": 1e-3, "batch_size": 32, "labelled_batch_size": 32, "eval_elbo_limit": 1000}
# The paper's optimiser (sec. 4.1): SGD, learning rate 0.01, momentum 0.9. The table trains with
# Adam at 1e-3 instead: on our objective (log-densities summed over the 1,024 pixels, gradient norms
# of 500 to 8,000) the paper's SGD makes the loss NaN within 4 steps, and with the gradient norm
# clipped to 10 it collapses z (F-VAE(5000), 2,000 steps: test -log p(d,h) -690 against Adam's
# -1,587; numbers in the docstring of `pogm.models.hybrid.hybrid`). ``hybrid_overrides(...,
# optimizer="paper")`` and ``benchmarks/hybrid_table.py --optimizer paper`` train with it.
HYBRID_PAPER_OPTIMIZER = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9}
HYBRID_OPTIMIZERS = {"adam": {"optimizer": "adam", "lr": HYBRID_TRAIN_SETTINGS["lr"]}, "paper": HYBRID_PAPER_OPTIMIZER}


def hybrid_overrides(source: str, model: str, n: int, m: int | None, eval_steps: int = 250, optimizer: str = "adam") -> dict:
    """``{"model": ..., "train": ...}`` of an F-VAE(n) (``model="fvae"``) or H-VAE(n, m) run on
    ``source``; ``optimizer="paper"`` trains with the paper's SGD (`HYBRID_PAPER_OPTIMIZER`) instead
    of Adam.

    Every run evaluates (and so chooses its best-validation weights) about every ``eval_steps``
    optimizer steps: every ``eval_steps // steps per epoch`` epochs when an epoch is shorter than
    ``eval_steps`` (F-VAE(500) every 240 steps, F-VAE(5000) every 156 on mnist-keypoints), every
    ``eval_steps`` steps within the epoch when it is longer. An epoch is the pool the run cycles
    through: the n labelled pairs of an F-VAE, the m unlabelled ones of an H-VAE.
    """
    if optimizer not in HYBRID_OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(HYBRID_OPTIMIZERS)}, got {optimizer!r}")
    model_settings = {k: v for k, v in HYBRID_MODEL_SETTINGS[source].items() if model == "hvae" or k != "h_samples"}
    pool = m if model == "hvae" else n
    batch = HYBRID_TRAIN_SETTINGS["batch_size"] if model == "hvae" else HYBRID_TRAIN_SETTINGS["labelled_batch_size"]
    steps_per_epoch = max(1, pool // batch)
    cadence = {"eval_every_steps": eval_steps} if steps_per_epoch > eval_steps else {"eval_every": max(1, eval_steps // steps_per_epoch)}
    return {"model": model_settings, "train": {**HYBRID_TRAIN_SETTINGS, **HYBRID_OPTIMIZERS[optimizer], **cadence}}


# ----------------------------------------------------------------------------- the table
HYBRID_EVALUATION = {"iw_samples": 50, "test_examples": 500}  # options of the "hybrid_metrics" evaluation
# source -> (few labels n, more labels, every label, unlabelled m for H-VAE(few, m)); H-VAE(more, every - more) also runs
HYBRID_GRID = {"mnist-keypoints": (500, 5000, 50000, 49500), "depth": (500, 5000, 20000, 19500)}


def _hybrid_runs(source: str) -> list[RunSpec]:
    few, more, every, m = HYBRID_GRID[source]
    runs = []
    # H-VAE(few, m) against F-VAE(few) and F-VAE(more); H-VAE(more, every - more) against F-VAE(every),
    # the paper's three comparisons (sec. 4.3).
    for model, n, unlabelled in [("fvae", few, None), ("fvae", more, None), ("fvae", every, None), ("hvae", few, m), ("hvae", more, every - more)]:
        overrides = hybrid_overrides(source, model, n, unlabelled)
        name = f"{source}-{model}-n{n}" + (f"-m{unlabelled}" if unlabelled else "")
        # Every run gets the same CPU time: an H-VAE step (a labelled and an unlabelled minibatch)
        # costs about twice an F-VAE step, so it makes about half the steps on as many images.
        runs.append(RunSpec(name, model=model, source=source, labels=n, unlabelled=unlabelled, model_options=overrides["model"],
                            train_options=overrides["train"], share=1.0, evaluate="hybrid_metrics", evaluate_options=HYBRID_EVALUATION))
    return runs


def _hybrid_rows(source: str) -> list[Row]:
    few, more, every, m = HYBRID_GRID[source]
    p = HYBRID_MULTIPIE
    versus = [  # (labels of the H-VAE, its unlabelled pairs, labels of the F-VAE, what the F-VAE has, the paper's numbers)
        (few, m, few, "the same labels", f"MultiPIE: H-VAE(5K, 30K) {p['H-VAE(5K, 30K)']:.2f} < F-VAE(5K) {p['F-VAE(5K)']:.2f}"),
        (few, m, more, "ten times the labels", f"MultiPIE: H-VAE(500, 30K) {p['H-VAE(500, 30K)']:.2f} < F-VAE(5K) {p['F-VAE(5K)']:.2f}"),
        (more, every - more, every, "every label (the H-VAE's own labels and the rest)", f"MultiPIE: H-VAE(5K, 30K) {p['H-VAE(5K, 30K)']:.2f} < F-VAE(30K) {p['F-VAE(30K)']:.2f}"),
    ]
    # The paper's Table 1a: F-VAE improves with more labelled pairs. Checked so that a budget too
    # short for the larger sets (F-VAE(every) a few epochs behind) shows as a failed row.
    more_labels = f"MultiPIE: F-VAE(30K) {p['F-VAE(30K)']:.2f} < F-VAE(5K) {p['F-VAE(5K)']:.2f}"
    fvae_rows = [
        Row(f"F-VAE({larger}) vs F-VAE({smaller}), {source}", f"F-VAE's test -log p(d,h) (IW, k=50) lower with {larger} labelled pairs than with {smaller}", 1.0,
            Claim(Metric(f"{source}-fvae-n{larger}", "test_nll_iw"), Metric(f"{source}-fvae-n{smaller}", "test_nll_iw"), "lower"),
            direction="higher", unit="claim", paper_detail=more_labels)
        for smaller, larger in ((few, more), (more, every))
    ]
    return fvae_rows + [
        Row(f"H-VAE({n_h}, {m_h}) vs F-VAE({n}), {source}", f"H-VAE's test -log p(d,h) (IW, k=50) below that of F-VAE with {what}", 1.0,
            Claim(Metric(f"{source}-hvae-n{n_h}-m{m_h}", "test_nll_iw"), Metric(f"{source}-fvae-n{n}", "test_nll_iw"), "lower"),
            direction="higher", unit="claim", paper_detail=detail)
        for n_h, m_h, n, what, detail in versus
    ]


HYBRID_VAE = Table(
    name="hybrid-vae",
    description="Hybrid VAE: does F-VAE improve with labels, and H-VAE(n, m) beat F-VAE trained on n, 10n and all labelled pairs (test NLL)?",
    paper=HYBRID_SOURCE,
    runs=tuple(run for source in HYBRID_GRID for run in _hybrid_runs(source)),
    rows=tuple(row for source in HYBRID_GRID for row in _hybrid_rows(source)),
    # CPU-minutes for all 3 seeds (Table.seeds): 60 per seed, 6 per run, equal for F-VAE and H-VAE.
    # At 3 per run the H-VAE rows were decided by run length: doubling the budget of the depth row
    # "H-VAE(500, 19500) vs F-VAE(500)" turned it from 1 of 3 seeds to 3 of 3 (reproduce/hybrid-vae-rows-x2).
    # Measured (seed 0, mnist-keypoints, 3.75 CPU-min): F-VAE(5000) overfits after about 4,700 steps
    # (best validation bound 1,620) while F-VAE(50000) still improves (1,651 at 6,589 steps), so more
    # labels help: test -log p(d,h) -1,649 against -1,686. Shorter runs leave the two within noise.
    default_budget=180.0,
    notes=(
        "The paper's data sets (MultiPIE, CelebA, NYU hands) are not available, so its numbers are not comparable "
        "with ours; each row checks one of its claims (a 'claim' row is 1 when it holds) on MNIST with keypoints "
        "(landmarks, as MultiPIE) and synthetic depth maps of a hand (as NYU hands). -log p(d, h) by importance "
        "sampling (k = 50) on the first 500 test pairs, best validation bound; 32 labelled (+ 32 unlabelled) pairs "
        "a step, one sample per stochastic layer, Adam 1e-3 (the paper's SGD, 0.01 with momentum 0.9, diverges on "
        "this objective). Image likelihood: the paper's predicted variance, with the standard deviation floored at "
        "0.05 on mnist-keypoints (without the floor z collapses: KL of q(z|d,h) 1.8 nats) and at 0.003 on depth, below "
        "the sensor's noise of 0.005 (without it the density is unbounded on the depth values clipped at 0: runs "
        "diverge or stall); the depth runs start the predicted standard deviation at 0.1 (init_std; started at 1, some "
        "runs stall for thousands of steps near a bound of -130, a unit Gaussian on the observed pixels). "
        "Every run trains for the same CPU time, so an H-VAE, whose step also processes an unlabelled minibatch, makes "
        "about half the steps of an F-VAE. Measured on mnist-keypoints, seed 0, 3.75 CPU-min per run: H-VAE(500, 49500) "
        "-1,632 (2,884 steps; 16 + 16 pairs a step: -1,641 at 4,805 steps) against F-VAE(5000) -1,649 (6,495 steps) and "
        "F-VAE(50000) -1,686 (6,589 steps): per step the H-VAE keeps up with F-VAE(50000) (validation bound 1,597 at "
        "2,884 steps against 1,580 at 3,124), per CPU-minute it does not, so at equal budgets the rows against "
        "ten times and every label can fail."
    ),
)
