"""The papers' numbers for the VAE/GAN family; it has no `pogm reproduce` table, and the benchmark
scripts benchmarks/draw_mnist.py and benchmarks/gan_mnist.py compare with these:

* `DRAW`: negative log-likelihood bounds of DRAW on binarised MNIST (Gregor et al. 2015, Table 2);
* `POSTER_SSL`: semi-supervised test errors on MNIST by number of labels of the SSL VAE (Chen,
  Fang & Ju 2016), with the Kingma et al. (2014) numbers they quote.

Errors are fractions (0.051 = 5.1%); log-likelihoods are in nats.
"""

from __future__ import annotations

# Gregor et al. 2015, Table 2: negative log-likelihood bounds on binarised MNIST, in nats.
DRAW = {"source": "Gregor et al. 2015, Table 2 (binarised MNIST, test set)", "draw-attention": 80.97, "draw-noattention": 87.40}

# Chen, Fang & Ju's semi-supervised MNIST numbers (test errors by number of labels).
POSTER_SSL = {
    "source": "Chen, Fang & Ju 2016, SSL VAE test error on MNIST, 55,000 training examples",
    "fully_connected": {"1000": 0.051, "600": 0.120},
    "convolutional": {"1000": 0.048, "600": 0.062},
    # Their "Kingma et al." row (2.4%, 2.6%) matches Kingma et al.'s M1+M2, not M2.
    "kingma_m1m2_as_quoted": {"1000": 0.024, "600": 0.026},
    "kingma_m2": {"100": 0.1197, "600": 0.0494, "1000": 0.0360},
}
