"""The models, one package per model family (each holds its models, their figures and notes):

* `pogm.models.semi_supervised`: VAE (M1), M2, M1+M2 (Kingma et al. 2014); auxiliary VAE, ADGM,
  SDGM (Maaløe et al. 2016);
* `pogm.models.hybrid`: F-VAE and H-VAE (Tulyakov, Fitzgibbon & Nowozin, Hybrid VAE);
* `pogm.models.factvae`: factVAE, JMVAE+ and oi-VAE (Ainsworth, Foti & Fox 2018);
* `pogm.models.vae_gan`: CVAE, VAE-GAN, CVAE+CGAN, M2+GAN, DRAW and their conditional and GAN
  versions (Chen, Fang & Ju 2016, with Sohn et al. 2015, Larsen et al. 2016, Gregor et al. 2015);
* `pogm.models.hali`: ALI, HALI and semi-supervised HALI (Dumoulin et al. 2016; Belghazi et al. 2018).

Importing this package registers every model (`pogm.models.registry`).
"""

from pogm.models import factvae, hali, hybrid, semi_supervised, vae_gan  # noqa: F401  (registration)
from pogm.models.base import Model
from pogm.models.registry import list_models, model_entry, register_model

__all__ = ["Model", "model_entry", "list_models", "register_model"]
