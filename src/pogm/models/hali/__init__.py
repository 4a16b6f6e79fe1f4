"""ALI (Dumoulin et al. 2016), HALI and semi-supervised HALI (Belghazi et al. 2018), with their
figures (reconstructions per level, inpainting, innovation)."""

from pogm.models.hali import hali  # noqa: F401  (registration)
