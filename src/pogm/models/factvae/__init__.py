"""factVAE, JMVAE+ and oi-VAE (Ainsworth, Foti & Fox 2018; Ainsworth, Foti, Lee & Fox 2018), with
their figures (sparsity heat maps, bars completions, motion-capture poses)."""

from pogm.models.factvae import factvae  # noqa: F401  (registration)
