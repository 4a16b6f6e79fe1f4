"""Hybrid VAE: F-VAE and H-VAE (Tulyakov, Fitzgibbon & Nowozin), with their figures."""

from pogm.models.hybrid import hybrid  # noqa: F401  (registration)
