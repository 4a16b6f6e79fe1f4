"""The papers' numbers, in one place: the `pogm reproduce` tables and the benchmark scripts read
them from here.

Errors are fractions (0.1197 = 11.97%); ``pm`` is the paper's reported spread (its "±") in the
same unit, where it gives one. Log-likelihoods are in nats.
"""

from __future__ import annotations

# MNIST with 100 labels (10 per class): test error of the semi-supervised models.
SSL_MNIST = {
    "m2": {"test_error": 0.1197, "pm": 0.0171, "source": "Kingma et al. 2014, Table 1, M2, 100 labels (11.97% +- 1.71)"},
    "m1m2": {"test_error": 0.0333, "pm": 0.0014, "source": "Kingma et al. 2014, Table 1, M1+M2, 100 labels (3.33% +- 0.14)"},
    "adgm": {"test_error": 0.0096, "pm": 0.0002, "source": "Maaløe et al. 2016, poster Table 1, ADGM, 100 labels (0.96% +- 0.02)"},
    "sdgm": {"test_error": 0.0132, "pm": 0.0007, "source": "Maaløe et al. 2016, poster Table 1, SDGM, 100 labels (1.32% +- 0.07)"},
}

# Unsupervised auxiliary VAE on MNIST: importance-weighted test log-likelihood (5000 samples).
AVAE = {
    "avae-mnist": {"iw_log_likelihood": -84.59, "source": "Maaløe et al. 2016, poster Table 2, Auxiliary VAE, L=1, IW=1 (5000 IW samples at test)"},
    "avae2-mnist": {"iw_log_likelihood": -82.97, "source": "Maaløe et al. 2016, poster Table 2, Auxiliary VAE, L=2, IW=1 (5000 IW samples at test)"},
}

# HALI, Table 3: test errors out of 10,000 on MNIST with 100 labels.
HALI = {"source": "HALI (Belghazi et al. 2018), Table 3: MNIST, 100 labels, test errors out of 10,000", "hali": 73, "adgm": 96, "feature_matching_gan": 93, "m1m2": 233}

# factVAE, Table 1: test log-likelihood of a held-out walking trial (CMU subject 07) after
# training on 1, 2, 5 or 10 trials. lambda=0.1 is not in the paper (benchmarks/factvae_mocap.py runs it).
FACTVAE_SOURCE = "Ainsworth, Foti & Fox 2018, Table 1 (CMU subject 07 walking, test log-likelihood of a held-out trial)"
FACTVAE = {
    "JMVAE+": {1: -620, 2: -166, 5: -77, 10: 54},
    "lambda=0": {1: -600, 2: -117, 5: -21, 10: 89},
    "lambda=1": {1: -555, 2: 9, 5: -13, 10: 83},
    "lambda=0.1": {1: None, 2: None, 5: None, 10: None},
}

# Hybrid VAE, Table 1a (MultiPIE): -log p(d, h) of the test pairs by the bound of eq. 2 (lower is
# better; negative because the images are densities). The table's text extraction is garbled;
# these four values are the ones that section 4.3 confirms in words ("H-VAE(500, 30K) outperforms
# F-VAE(5K)", "H-VAE(5K, 30K) shows better NLL as compared to F-VAE(30K)").
HYBRID_SOURCE = "Tulyakov, Fitzgibbon & Nowozin, Hybrid VAE, Table 1a (MultiPIE) and sec. 4.3"
HYBRID_MULTIPIE = {"F-VAE(5K)": -23.00, "F-VAE(30K)": -31.25, "H-VAE(500, 30K)": -25.75, "H-VAE(5K, 30K)": -32.36}
HYBRID_CLAIMS = [
    "H-VAE(n, m) has a better test NLL than F-VAE(n)",
    "H-VAE with few labels and many unlabelled images approaches F-VAE trained on many labels",
]

# Gregor et al. 2015, Table 2: negative log-likelihood bounds on binarised MNIST, in nats.
DRAW = {"source": "Gregor et al. 2015, Table 2 (binarised MNIST, test set)", "draw-attention": 80.97, "draw-noattention": 87.40}

# The VAE/GAN poster's semi-supervised MNIST numbers (test errors by number of labels).
POSTER_SSL = {
    "source": "Chen, Fang & Ju 2016 (Chen, Fang & Ju 2016), SSL VAE test error on MNIST, 55,000 training examples",
    "fully_connected": {"1000": 0.051, "600": 0.120},
    "convolutional": {"1000": 0.048, "600": 0.062},
    # The poster's "Kingma et al." row (2.4%, 2.6%) matches Kingma et al.'s M1+M2, not M2.
    "kingma_m1m2_as_quoted": {"1000": 0.024, "600": 0.026},
    "kingma_m2": {"100": 0.1197, "600": 0.0494, "1000": 0.0360},
}
