"""Semi-supervised VAEs: M1, M2 and M1+M2 (Kingma et al. 2014); the auxiliary VAE, ADGM and SDGM
(Maaløe et al. 2016)."""

from pogm.models.semi_supervised import adgm, avae, m1m2, m2, vae  # noqa: F401  (registration)
