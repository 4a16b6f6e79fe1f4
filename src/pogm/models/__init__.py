"""Models, one file per paper model, and the registry that the CLI and contract tests use."""

from pogm.models import adgm, avae, cvae, cvaegan, draw, drawgan, factvae, hali, hybrid, m1m2, m2, m2gan, vae, vaegan  # noqa: F401  (registration)
from pogm.models.registry import get_model, list_models, register_model

__all__ = ["get_model", "list_models", "register_model"]
