"""CVAE, VAE-GAN, CVAE+CGAN, M2+GAN and DRAW, as Chen, Fang & Ju (2016) combine them, with the
models they build on (Sohn et al. 2015; Larsen et al. 2016; Mirza & Osindero 2014; Gregor et al. 2015)."""

from pogm.models.vae_gan import cvae, cvaegan, draw, drawgan, m2gan, vaegan  # noqa: F401  (registration)
